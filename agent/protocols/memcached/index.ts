/**
 * Memcached, text and binary protocols. Serial: replies come in request order on a connection.
 *
 * Text: one command line (`set k 0 0 3`, `get a b`, `delete k`, `incr k 1`, meta `mg k v`, …), a
 * data block after storage commands whose length the line gives; replies are a status line
 * (`STORED`, `NOT_FOUND`, `CLIENT_ERROR …`) or VALUE blocks closed by `END` (one message for the
 * whole retrieval, even when its values span reads). Binary: 24-byte header (magic 0x80 request /
 * 0x81 response, opcode, key and extras lengths, status, body length, opaque).
 *
 * Fields: request_type = command (lower case; binary opcodes by the same names, quiet ones end in
 * `q`), request_resource = the (first) key — values are never copied, attributes.keys = how many
 * keys a multi-get asked for, attributes.result = the reply word or binary status name,
 * response_code = binary status. `CLIENT_ERROR`/`ERROR` and binary 0x04/0x20/0x81 → client_error,
 * `SERVER_ERROR` and binary 0x82+ → server_error, with the text. A miss is not an error.
 * `noreply` commands and quiet binary opcodes are one-way (their replies, when any, are dropped).
 */

import type { L7Message, ParseContext, ProtocolParser, ResponseStatus } from '../parser.ts';
import { memcachedDescriptor } from './descriptor.ts';
import { text, u16be, u32be } from '../lib/bytes.ts';
import { requestSide } from '../lib/direction.ts';
import { INVALID, NEED_MORE, parseStream } from '../lib/stream.ts';
import type { StreamFramer } from '../lib/stream.ts';

const MAX_LINE = 2048;
const MAX_KEY = 250;
const BIN_HEADER = 24;
/** Largest item memcached accepts (-I tops out at 1 GiB). */
const MAX_VALUE = 1 << 30;

/** Position of the CR of the line at `pos` (CRLF-terminated), NEED_MORE, or INVALID. */
function lineCr(buf: Uint8Array, pos: number, end: number): number {
  const lim = Math.min(end, pos + MAX_LINE);
  for (let i = pos; i < lim; i++) {
    const c = buf[i];
    if (c === 0x0d) {
      if (i + 1 >= end) return NEED_MORE;
      return buf[i + 1] === 0x0a ? i : INVALID;
    }
    if (c === 0x0a || c === 0) return INVALID;
  }
  return lim < end ? INVALID : NEED_MORE;
}

const isNum = (s: string | undefined): boolean => s !== undefined && /^\d{1,20}$/.test(s);
const isSignedNum = (s: string | undefined): boolean => s !== undefined && /^-?\d{1,20}$/.test(s);
/** A key: 1..250 printable bytes without space or control characters. */
const isKey = (s: string | undefined): boolean => s !== undefined && s.length > 0 && s.length <= MAX_KEY && /^[\x21-\x7e\x80-\xff]+$/.test(s);
const isMetaFlag = (s: string): boolean => /^[a-zA-Z][\x21-\x7e]*$/.test(s);

interface TextCommand {
  cmd: string;
  key?: string;
  keys?: number;
  /** Data block after the line (storage commands): its length without the trailing CRLF. */
  data?: number;
  noreply: boolean;
}

const STORAGE = new Set(['set', 'add', 'replace', 'append', 'prepend']);
const RETRIEVAL = new Set(['get', 'gets']);
const TOUCH_GET = new Set(['gat', 'gats']);

/** A text command line (no CRLF) read strictly, or undefined if it is not one. */
function textCommand(line: string): TextCommand | undefined {
  const w = line.split(' ');
  if (w.some((x) => x === '')) {
    // memcached tolerates repeated spaces; clients do not send them, so neither does the check.
    return undefined;
  }
  const cmd = w[0];
  const noreply = w[w.length - 1] === 'noreply';
  const n = noreply ? w.length - 1 : w.length;
  if (STORAGE.has(cmd) || cmd === 'cas') {
    const want = cmd === 'cas' ? 6 : 5;
    if (n !== want || !isKey(w[1]) || !isNum(w[2]) || !isSignedNum(w[3]) || !isNum(w[4]) || (cmd === 'cas' && !isNum(w[5]))) return undefined;
    const data = Number(w[4]);
    if (data > MAX_VALUE) return undefined;
    return { cmd, key: w[1], data, noreply };
  }
  if (RETRIEVAL.has(cmd) || TOUCH_GET.has(cmd)) {
    const first = TOUCH_GET.has(cmd) ? 2 : 1;
    if (first === 2 && !isSignedNum(w[1])) return undefined;
    if (w.length <= first) return undefined;
    for (let i = first; i < w.length; i++) if (!isKey(w[i])) return undefined;
    return { cmd, key: w[first], keys: w.length - first, noreply: false };
  }
  switch (cmd) {
    case 'delete':
      return (n === 2 || (n === 3 && w[2] === '0')) && isKey(w[1]) ? { cmd, key: w[1], noreply } : undefined;
    case 'incr':
    case 'decr':
      return n === 3 && isKey(w[1]) && isNum(w[2]) ? { cmd, key: w[1], noreply } : undefined;
    case 'touch':
      return n === 3 && isKey(w[1]) && isSignedNum(w[2]) ? { cmd, key: w[1], noreply } : undefined;
    case 'version':
    case 'quit':
    case 'shutdown':
    case 'mn':
      return n === 1 && !noreply ? { cmd, noreply: false } : undefined;
    case 'stats':
      return w.length <= 3 && w.slice(1).every((x) => /^[a-z_]{1,32}$|^\d{1,5}$/.test(x)) ? { cmd, key: w[1], noreply: false } : undefined;
    case 'flush_all':
      return n <= 2 && (n === 1 || isSignedNum(w[1])) ? { cmd, noreply } : undefined;
    case 'verbosity':
      return n === 2 && isNum(w[1]) ? { cmd, noreply } : undefined;
    case 'mg':
    case 'md':
    case 'ma':
      return w.length >= 2 && isKey(w[1]) && w.slice(2).every(isMetaFlag) ? { cmd, key: w[1], noreply: w.includes('q') } : undefined;
    case 'ms':
      if (w.length < 3 || !isKey(w[1]) || !isNum(w[2]) || !w.slice(3).every(isMetaFlag) || Number(w[2]) > MAX_VALUE) return undefined;
      return { cmd, key: w[1], data: Number(w[2]), noreply: w.includes('q') };
    default:
      return undefined;
  }
}

type ReplyKind = 'status' | 'value' | 'end' | 'stat' | 'meta-value' | 'number';
interface TextReply {
  kind: ReplyKind;
  word: string;
  status: ResponseStatus;
  exception?: string;
  data?: number;
}

const STATUS_WORDS = new Set(['STORED', 'NOT_STORED', 'EXISTS', 'NOT_FOUND', 'DELETED', 'TOUCHED', 'OK', 'RESET']);
const META_WORDS = new Set(['HD', 'EN', 'NF', 'NS', 'EX', 'MN']);

function textReply(line: string): TextReply | undefined {
  const sp = line.indexOf(' ');
  const word = sp < 0 ? line : line.slice(0, sp);
  const rest = sp < 0 ? '' : line.slice(sp + 1);
  if (STATUS_WORDS.has(word) && sp < 0) return { kind: 'status', word, status: 'ok' };
  if (META_WORDS.has(word) && (sp < 0 || rest.split(' ').every(isMetaFlag))) return { kind: 'status', word, status: 'ok' };
  switch (word) {
    case 'END':
      return sp < 0 ? { kind: 'end', word, status: 'ok' } : undefined;
    case 'ERROR':
      return sp < 0 ? { kind: 'status', word, status: 'client_error', exception: 'ERROR' } : { kind: 'status', word, status: 'client_error', exception: rest };
    case 'CLIENT_ERROR':
      return { kind: 'status', word, status: 'client_error', exception: rest };
    case 'SERVER_ERROR':
      return { kind: 'status', word, status: 'server_error', exception: rest };
    case 'VERSION':
      return rest !== '' ? { kind: 'status', word, status: 'ok' } : undefined;
    case 'STAT':
      return rest !== '' ? { kind: 'stat', word, status: 'ok' } : undefined;
    case 'VALUE': {
      const w = rest.split(' ');
      if ((w.length !== 3 && w.length !== 4) || !isKey(w[0]) || !isNum(w[1]) || !isNum(w[2]) || (w.length === 4 && !isNum(w[3]))) return undefined;
      const data = Number(w[2]);
      return data <= MAX_VALUE ? { kind: 'value', word, status: 'ok', data } : undefined;
    }
    case 'VA': {
      const w = rest.split(' ');
      if (!isNum(w[0]) || !w.slice(1).every(isMetaFlag)) return undefined;
      const data = Number(w[0]);
      return data <= MAX_VALUE ? { kind: 'meta-value', word, status: 'ok', data } : undefined;
    }
    default:
      return /^\d{1,20}$/.test(line) ? { kind: 'number', word: 'NUMBER', status: 'ok' } : undefined;
  }
}

// ---- binary protocol --------------------------------------------------------------------------

const OPCODES: Record<number, string> = {
  0x00: 'get', 0x01: 'set', 0x02: 'add', 0x03: 'replace', 0x04: 'delete', 0x05: 'incr', 0x06: 'decr', 0x07: 'quit',
  0x08: 'flush', 0x09: 'getq', 0x0a: 'noop', 0x0b: 'version', 0x0c: 'getk', 0x0d: 'getkq', 0x0e: 'append', 0x0f: 'prepend',
  0x10: 'stat', 0x11: 'setq', 0x12: 'addq', 0x13: 'replaceq', 0x14: 'deleteq', 0x15: 'incrq', 0x16: 'decrq', 0x17: 'quitq',
  0x18: 'flushq', 0x19: 'appendq', 0x1a: 'prependq', 0x1b: 'verbosity', 0x1c: 'touch', 0x1d: 'gat', 0x1e: 'gatq',
  0x20: 'sasl_list_mechs', 0x21: 'sasl_auth', 0x22: 'sasl_step',
};
/** Quiet opcodes: no reply on success (getq: none on a miss). */
const QUIET = new Set([0x09, 0x0d, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1e]);
/** Extras length a request of each opcode carries (undefined: not checked). */
const REQ_EXTRAS: Record<number, number> = {
  0x00: 0, 0x09: 0, 0x0c: 0, 0x0d: 0, 0x01: 8, 0x11: 8, 0x02: 8, 0x12: 8, 0x03: 8, 0x13: 8, 0x04: 0, 0x14: 0,
  0x05: 20, 0x15: 20, 0x06: 20, 0x16: 20, 0x07: 0, 0x17: 0, 0x0a: 0, 0x0b: 0, 0x0e: 0, 0x19: 0, 0x0f: 0, 0x1a: 0,
  0x10: 0, 0x1b: 4, 0x1c: 4, 0x1d: 4, 0x1e: 4, 0x20: 0,
};
const STATUS_NAMES: Record<number, string> = {
  0x00: 'NO_ERROR', 0x01: 'KEY_NOT_FOUND', 0x02: 'KEY_EXISTS', 0x03: 'VALUE_TOO_LARGE', 0x04: 'INVALID_ARGUMENTS',
  0x05: 'ITEM_NOT_STORED', 0x06: 'NON_NUMERIC_VALUE', 0x07: 'WRONG_VBUCKET', 0x08: 'AUTH_ERROR', 0x09: 'AUTH_CONTINUE',
  0x20: 'AUTH_ERROR', 0x21: 'AUTH_CONTINUE', 0x81: 'UNKNOWN_COMMAND', 0x82: 'OUT_OF_MEMORY', 0x83: 'NOT_SUPPORTED',
  0x84: 'INTERNAL_ERROR', 0x85: 'BUSY', 0x86: 'TEMPORARY_FAILURE',
};

function binaryStatus(code: number): ResponseStatus {
  if (code <= 0x02 || code === 0x05 || code === 0x09 || code === 0x21) return 'ok'; // misses, CAS conflicts, not-stored: answers, not failures
  if (code >= 0x82) return 'server_error';
  return 'client_error';
}

/** The binary header at `off` is self-consistent: [opcode, keyLen, extras, body] or undefined. */
function binaryHeader(buf: Uint8Array, off: number, end: number): [number, number, number, number] | undefined {
  if (end - off < BIN_HEADER) return undefined;
  const magic = buf[off];
  const op = buf[off + 1];
  if ((magic !== 0x80 && magic !== 0x81) || OPCODES[op] === undefined || buf[off + 5] !== 0) return undefined;
  const keyLen = u16be(buf, off + 2);
  const extras = buf[off + 4];
  const body = u32be(buf, off + 8);
  if (keyLen + extras > body || body > MAX_VALUE + MAX_KEY + 64 || keyLen > MAX_KEY) return undefined;
  if (magic === 0x80) {
    const want = REQ_EXTRAS[op];
    if (want !== undefined && extras !== want) return undefined;
  } else if (STATUS_NAMES[u16be(buf, off + 6)] === undefined) return undefined;
  return [op, keyLen, extras, body];
}

function frameBinary(buf: Uint8Array, off: number, end: number, cut: boolean, out: L7Message[]): number {
  if (end - off < BIN_HEADER) return cut ? INVALID : NEED_MORE;
  const h = binaryHeader(buf, off, end);
  if (!h) return INVALID;
  const [op, keyLen, extras, body] = h;
  const len = BIN_HEADER + body;
  const keyAt = off + BIN_HEADER + extras;
  // Wait for the key (requests) or the error text (failed responses) when the read was only split.
  const need = buf[off] === 0x80 ? keyAt + keyLen - off : u16be(buf, off + 6) !== 0 && !QUIET.has(op) ? len : 0;
  if (!cut && off + need > end && need <= 2048) return NEED_MORE;
  if (buf[off] === 0x80) {
    const m: L7Message = { l7Protocol: 'memcached', msgType: 'request', requestType: OPCODES[op], requestLength: len };
    if (keyLen > 0) m.requestResource = text(buf, keyAt, Math.min(keyAt + keyLen, end), MAX_KEY);
    if (QUIET.has(op)) m.oneWay = true;
    out.push(m);
    return len;
  }
  if (QUIET.has(op)) return len; // the answer to a one-way request (getq hit, failed setq): no span of its own
  const code = u16be(buf, off + 6);
  const m: L7Message = { l7Protocol: 'memcached', msgType: 'response', responseCode: code, responseStatus: binaryStatus(code), responseLength: len, attributes: { result: STATUS_NAMES[code] } };
  if (m.responseStatus !== 'ok') {
    const v = keyAt + keyLen;
    const msg = v < end ? text(buf, v, Math.min(off + len, end), 256) : '';
    m.responseException = msg !== '' ? msg : STATUS_NAMES[code];
  }
  out.push(m);
  return len;
}

// ---- framing ----------------------------------------------------------------------------------

interface McState {
  /** A retrieval reply whose VALUE blocks continue until END (already reported). */
  inValues?: boolean;
}

/** Is this read carrying requests? By role when known, else by shape (commands are lower case). */
function isRequest(buf: Uint8Array, off: number, ctx: ParseContext): boolean {
  const side = requestSide(ctx);
  if (side !== undefined) return side;
  const c = buf[off];
  return c === 0x80 || (c >= 0x61 && c <= 0x7a);
}

/** Length of a data block of `n` bytes at `p` plus its CRLF, checked when captured. */
function dataEnd(buf: Uint8Array, p: number, n: number, end: number): number {
  const e = p + n;
  if (e + 2 <= end && (buf[e] !== 0x0d || buf[e + 1] !== 0x0a)) return INVALID;
  if (e + 1 === end && buf[e] !== 0x0d) return INVALID;
  return e + 2;
}

const framer: StreamFramer = {
  frame(buf, off, end, cut, ctx, out) {
    const c0 = buf[off];
    if (c0 === 0x80 || c0 === 0x81) return frameBinary(buf, off, end, cut, out);
    const cr = lineCr(buf, off, end);
    if (cr === INVALID) return INVALID;
    if (cr === NEED_MORE) return cut || end - off >= MAX_LINE ? INVALID : NEED_MORE;
    const line = text(buf, off, cr, MAX_LINE);
    if (isRequest(buf, off, ctx)) {
      let cmd = textCommand(line);
      if (!cmd) {
        // On a known stream, a command this parser does not know still gets its reply (ERROR).
        const seen = (ctx.state.stream as { seen?: boolean } | undefined)?.seen === true;
        const word = /^[a-z_]{1,32}(?= |$)/.exec(line)?.[0];
        if (!seen || word === undefined) return INVALID;
        cmd = { cmd: word, noreply: false };
      }
      const m: L7Message = { l7Protocol: 'memcached', msgType: 'request', requestType: cmd.cmd };
      if (cmd.key !== undefined) m.requestResource = cmd.key;
      if (cmd.keys !== undefined && cmd.keys > 1) m.attributes = { keys: String(cmd.keys) };
      if (cmd.noreply || cmd.cmd === 'quit') m.oneWay = true;
      let e = cr + 2;
      if (cmd.data !== undefined) {
        e = dataEnd(buf, e, cmd.data, end);
        if (e < 0) return INVALID;
      }
      m.requestLength = e - off;
      out.push(m);
      return e - off;
    }
    const r = textReply(line);
    if (!r) return INVALID;
    const st = ctx.state as McState;
    let e = cr + 2;
    if (r.data !== undefined) {
      e = dataEnd(buf, e, r.data, end);
      if (e < 0) return INVALID;
    }
    if (r.kind === 'value' || r.kind === 'stat') {
      if (st.inValues) return e - off; // a further VALUE / STAT line of a reply already reported
      st.inValues = true;
      out.push({ l7Protocol: 'memcached', msgType: 'response', responseStatus: 'ok', attributes: { result: r.kind === 'value' ? 'HIT' : 'STAT' } });
      return e - off;
    }
    if (r.kind === 'end' && st.inValues) {
      st.inValues = false;
      return e - off;
    }
    st.inValues = false;
    const m: L7Message = { l7Protocol: 'memcached', msgType: 'response', responseStatus: r.status, attributes: { result: r.kind === 'end' ? 'MISS' : r.word === 'VA' ? 'HIT' : r.word } };
    if (r.exception !== undefined) m.responseException = r.exception.slice(0, 256);
    out.push(m);
    return e - off;
  },
};

// ---- inference --------------------------------------------------------------------------------

/** Reply words specific enough to claim a stream on (not END, OK, ERROR or a bare number). */
const EVIDENCE_REPLIES = new Set(['STORED', 'NOT_STORED', 'NOT_FOUND', 'DELETED', 'TOUCHED', 'EXISTS', 'VALUE', 'VA', 'VERSION', 'STAT', 'CLIENT_ERROR', 'SERVER_ERROR']);
/** Commands that say nothing on their own (quit, a bare stats or version) are not evidence. */
const WEAK_COMMANDS = new Set(['quit', 'shutdown', 'mn', 'verbosity', 'flush_all', 'version', 'stats']);

/**
 * Claims a stream on evidence specific to memcached, from any point of a connection: a binary
 * header whose opcode, extras length, status and body length agree (and that fills the read
 * exactly when all of it is captured), or a text command/reply line of exact shape — storage
 * commands with a data block of the declared length, keyed commands, VALUE blocks, status words
 * no other protocol here uses — that frames the whole read.
 */
function checkHead(p: Uint8Array): boolean {
  if (p.length < 4) return false;
  if (p[0] === 0x80 || p[0] === 0x81) {
    const h = binaryHeader(p, 0, p.length);
    if (!h) return false;
    let at = 0;
    while (at < p.length) {
      const hh = binaryHeader(p, at, p.length);
      if (!hh) return false;
      at += BIN_HEADER + hh[3];
    }
    return true;
  }
  const cr = lineCr(p, 0, p.length);
  if (cr < 0) return false;
  const line = text(p, 0, cr, MAX_LINE);
  const c0 = p[0];
  let first: TextCommand | TextReply | undefined;
  if (c0 >= 0x61 && c0 <= 0x7a) {
    const cmd = textCommand(line);
    if (!cmd || WEAK_COMMANDS.has(cmd.cmd)) return false;
    first = cmd;
  } else {
    const r = textReply(line);
    if (!r || !EVIDENCE_REPLIES.has(r.word) || (r.word === 'VERSION' && !/^VERSION \d+\.\d+/.test(line))) return false;
    first = r;
  }
  // The whole read must frame as memcached (a pipelined batch, a value split over reads is fine).
  const out: L7Message[] = [];
  const ctx = { state: {}, direction: c0 >= 0x61 ? 'egress' : 'ingress', role: 'client' } as unknown as ParseContext;
  let at = 0;
  while (at < p.length) {
    const n = framer.frame(p, at, p.length, true, ctx, out);
    if (n <= 0) return false;
    at += n;
  }
  return first !== undefined;
}

export const memcachedParser: ProtocolParser = {
  name: 'memcached',
  parallel: memcachedDescriptor.pairing === 'by-id',
  descriptor: memcachedDescriptor,
  transports: ['tcp'],
  check: (payload) => checkHead(payload),
  parse: (payload, ctx) => parseStream(payload, ctx, framer),
  newState: () => ({}),
};

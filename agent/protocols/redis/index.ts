/**
 * Redis RESP2 and RESP3: commands as arrays of bulk strings or inline lines; replies of every RESP3
 * type. Pipelined commands and replies in one read each give their own message. Serial protocol:
 * replies pair with commands in order (RESP3 push messages `>` are not replies and are skipped).
 *
 * Fields: request_type = command (upper case), request_resource = the key (first argument; values
 * are never copied), error replies (`-ERR …`, `!` blob errors) → server_error with the text.
 */

import type { L7Message, ParseContext, ProtocolParser } from '../parser.ts';
import { redisDescriptor } from './descriptor.ts';
import { text } from '../lib/bytes.ts';
import { requestSide } from '../lib/direction.ts';
import { INVALID, NEED_MORE, UNKNOWN_LENGTH, parseStream } from '../lib/stream.ts';
import type { StreamFramer } from '../lib/stream.ts';

const MAX_DEPTH = 8;
const MAX_ELEMENTS = 1 << 20;
/** A value whose end lies past the captured bytes and is followed by more elements: length unknown. */
const UNKNOWN = -3;

/** Read a decimal line (after the type byte) ending in CRLF: [value, position after CRLF]. */
function readNumberLine(buf: Uint8Array, pos: number, end: number): [number, number] | number {
  let i = pos;
  let neg = false;
  if (i < end && buf[i] === 0x2d) {
    neg = true;
    i++;
  }
  let n = 0;
  const start = i;
  while (i < end && buf[i] >= 0x30 && buf[i] <= 0x39) {
    n = n * 10 + (buf[i] - 0x30);
    if (n > 0x7fffffff) return INVALID;
    i++;
  }
  if (i >= end || (i === start && !(i + 1 < end && buf[i] === 0x3f))) return i >= end ? NEED_MORE : INVALID;
  if (buf[i] === 0x3f) return INVALID; // streamed aggregates ("$?") are not supported
  if (i + 1 >= end) return NEED_MORE;
  if (buf[i] !== 0x0d || buf[i + 1] !== 0x0a) return INVALID;
  return [neg ? -n : n, i + 2];
}

/** Position after the CRLF ending the line at `pos`, NEED_MORE, or INVALID if the line holds a bare CR/LF. */
function lineEnd(buf: Uint8Array, pos: number, end: number, maxLen = 1 << 16): number {
  const lim = Math.min(end, pos + maxLen);
  for (let i = pos; i < lim; i++) {
    if (buf[i] === 0x0d) {
      if (i + 1 >= end) return NEED_MORE;
      return buf[i + 1] === 0x0a ? i + 2 : INVALID;
    }
    if (buf[i] === 0x0a) return INVALID;
  }
  return lim < end ? INVALID : NEED_MORE;
}

/** Skip one RESP value: position after it (may exceed `end` for a bulk cut short), or a negative code. */
function skipValue(buf: Uint8Array, pos: number, end: number, depth: number): number {
  if (pos >= end) return NEED_MORE;
  if (depth > MAX_DEPTH) return INVALID;
  const t = buf[pos];
  switch (t) {
    case 0x2b: // + simple string
    case 0x2d: // - error
    case 0x3a: // : integer
    case 0x5f: // _ null
    case 0x2c: // , double
    case 0x23: // # boolean
    case 0x28: // ( big number
      return lineEnd(buf, pos + 1, end);
    case 0x24: // $ bulk
    case 0x21: // ! blob error
    case 0x3d: {
      // = verbatim
      const r = readNumberLine(buf, pos + 1, end);
      if (typeof r === 'number') return r;
      const [n, p] = r;
      if (n === -1 && t === 0x24) return p;
      if (n < 0) return INVALID;
      if (p + n + 2 <= end && (buf[p + n] !== 0x0d || buf[p + n + 1] !== 0x0a)) return INVALID;
      return p + n + 2;
    }
    case 0x2a: // * array
    case 0x7e: // ~ set
    case 0x3e: // > push
    case 0x25: // % map
    case 0x7c: {
      // | attribute
      const r = readNumberLine(buf, pos + 1, end);
      if (typeof r === 'number') return r;
      let [n, p] = r;
      if (n === -1 && t === 0x2a) return p;
      if (n < 0 || n > MAX_ELEMENTS) return INVALID;
      if (t === 0x25 || t === 0x7c) n *= 2;
      for (let i = 0; i < n; i++) {
        if (p > end) return UNKNOWN;
        const q = skipValue(buf, p, end, depth + 1);
        if (q < 0) return q;
        p = q;
      }
      return p;
    }
    default:
      return INVALID;
  }
}

function isCommandByte(c: number): boolean {
  return (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || c === 0x2d || c === 0x5f || c === 0x7c || c === 0x2e;
}

/**
 * The first two bulk strings of a command array: [command, key, complete]. `complete` is false when
 * the key (or the command) runs past the available bytes.
 */
function commandHead(buf: Uint8Array, pos: number, end: number): [string, string | undefined, boolean] | undefined {
  const r = readNumberLine(buf, pos + 1, end);
  if (typeof r === 'number' || r[0] < 1) return undefined;
  const args: string[] = [];
  let p = r[1];
  let complete = true;
  const want = Math.min(r[0], 2);
  for (let i = 0; i < want; i++) {
    if (p >= end || buf[p] !== 0x24) {
      complete = p < end;
      break;
    }
    const b = readNumberLine(buf, p + 1, end);
    if (typeof b === 'number' || b[0] < 0) {
      complete = b !== NEED_MORE;
      break;
    }
    const s = b[1];
    if (s + b[0] > end) complete = false;
    const e = Math.min(s + b[0], end);
    if (i === 0) {
      if (b[0] === 0 || b[0] > 64 || s + b[0] > end) return undefined;
      for (let k = s; k < e; k++) if (!isCommandByte(buf[k])) return undefined;
    }
    args.push(text(buf, s, e, i === 0 ? 64 : 256));
    p = s + b[0] + 2;
  }
  if (args.length === 0) return undefined;
  return [args[0].toUpperCase(), args[1], complete && args.length === want];
}

const INLINE = new Set(['PING', 'QUIT', 'INFO', 'HELLO', 'AUTH', 'SELECT', 'ECHO', 'DBSIZE', 'MONITOR', 'KEYS', 'GET', 'SET', 'DEL', 'EXISTS', 'TYPE', 'TTL', 'INCR', 'FLUSHALL', 'FLUSHDB', 'CLIENT', 'CONFIG', 'COMMAND', 'SUBSCRIBE']);

function inlineHead(buf: Uint8Array, pos: number, end: number): [string, string | undefined] | undefined {
  let i = pos;
  while (i < end && i - pos <= 16 && isCommandByte(buf[i])) i++;
  if (i === pos || i - pos > 16) return undefined;
  const cmd = text(buf, pos, i).toUpperCase();
  if (!INLINE.has(cmd)) return undefined;
  if (i < end && buf[i] !== 0x20 && buf[i] !== 0x0d) return undefined;
  let key: string | undefined;
  if (i < end && buf[i] === 0x20) {
    let j = i + 1;
    while (j < end && buf[j] !== 0x20 && buf[j] !== 0x0d) j++;
    if (j > i + 1) key = text(buf, i + 1, j, 256);
  }
  return [cmd, key];
}

function requestMessage(head: readonly [string, string | undefined, ...unknown[]]): L7Message {
  const m: L7Message = { l7Protocol: 'redis', msgType: 'request', requestType: head[0] };
  if (head[1] !== undefined) m.requestResource = head[1];
  return m;
}

/** Is this read carrying commands? By role when known, else by shape. */
function isRequest(buf: Uint8Array, off: number, end: number, ctx: ParseContext): boolean {
  const side = requestSide(ctx);
  if (side !== undefined) return side;
  if (buf[off] === 0x2a) return commandHead(buf, off, end) !== undefined && ctx.direction === 'egress';
  return isCommandByte(buf[off]);
}

const framer: StreamFramer = {
  frame(buf, off, end, cut, ctx, out) {
    if (isRequest(buf, off, end, ctx)) {
      if (buf[off] === 0x2a) {
        const head = commandHead(buf, off, end);
        const len = skipValue(buf, off, end, 0);
        if (len === INVALID) return INVALID;
        if (!head) {
          // A command whose name is not yet captured.
          return !cut && (len === NEED_MORE || len === UNKNOWN || len > end) ? NEED_MORE : INVALID;
        }
        if (len === NEED_MORE || ((!head[2] || len === UNKNOWN) && !cut)) {
          if (!cut) return NEED_MORE;
          out.push(requestMessage(head));
          return UNKNOWN_LENGTH;
        }
        out.push(requestMessage(head));
        return len === UNKNOWN ? UNKNOWN_LENGTH : len - off;
      }
      let w = off;
      while (w < end && isCommandByte(buf[w])) w++;
      if (w === end && !cut && w - off <= 16) return NEED_MORE; // an inline command split inside its name
      const head = inlineHead(buf, off, end);
      if (!head) return INVALID;
      const e = lineEnd(buf, off, end);
      if (e === INVALID) return INVALID;
      if (e === NEED_MORE) {
        if (!cut) return NEED_MORE;
        out.push(requestMessage(head));
        return UNKNOWN_LENGTH;
      }
      out.push(requestMessage(head));
      return e - off;
    }
    const t = buf[off];
    const len = skipValue(buf, off, end, 0);
    if (len === INVALID) return INVALID;
    if ((len === NEED_MORE || len === UNKNOWN) && !cut) return NEED_MORE;
    if (t === 0x7c) return len >= 0 ? len - off : len === UNKNOWN || len === NEED_MORE ? UNKNOWN_LENGTH : INVALID; // attributes precede a reply
    if (t !== 0x3e) {
      const m: L7Message = { l7Protocol: 'redis', msgType: 'response', responseStatus: 'ok' };
      if (t === 0x2d) {
        const e = lineEnd(buf, off + 1, end);
        m.responseStatus = 'server_error';
        m.responseException = text(buf, off + 1, e > 0 ? e - 2 : end, 256);
      } else if (t === 0x21) {
        const r = readNumberLine(buf, off + 1, end);
        m.responseStatus = 'server_error';
        if (typeof r !== 'number') m.responseException = text(buf, r[1], Math.min(r[1] + r[0], end), 256);
      }
      out.push(m);
    }
    if (len === NEED_MORE || len === UNKNOWN) return UNKNOWN_LENGTH;
    return len - off;
  },
};

/**
 * Inline commands inference accepts: [min, max] arguments. Upper case only (memcached's text
 * protocol is lower case and case-sensitive: `get foo`, `set foo 0 0 3`, `quit`), and none NATS
 * shares (PING, INFO {…}) or that carry no evidence (QUIT).
 */
const INLINE_ARITY: Record<string, readonly [number, number]> = {
  GET: [1, 1], SET: [2, 7], DEL: [1, 64], EXISTS: [1, 64], TYPE: [1, 1], TTL: [1, 1], INCR: [1, 1], KEYS: [1, 1],
  ECHO: [1, 1], SELECT: [1, 1], DBSIZE: [0, 0], FLUSHALL: [0, 1], FLUSHDB: [0, 1], AUTH: [1, 2], HELLO: [0, 6],
  CLIENT: [1, 8], CONFIG: [1, 8], COMMAND: [0, 8], MONITOR: [0, 0], SUBSCRIBE: [1, 64],
};
const SET_OPTIONS = /^(NX|XX|GET|KEEPTTL|EX|PX|EXAT|PXAT)$/i;

/** An inline command line `line` (no CRLF) that is Redis beyond doubt. */
function inlineEvidence(line: string): boolean {
  const words = line.split(' ').filter((w) => w !== '');
  const cmd = words[0];
  const arity = INLINE_ARITY[cmd];
  if (!arity) return false;
  const args = words.length - 1;
  if (args < arity[0] || args > arity[1]) return false;
  if (cmd === 'SELECT') return /^\d{1,2}$/.test(words[1]);
  if (cmd === 'SET') {
    for (let i = 3; i < words.length; i++) {
      if (!SET_OPTIONS.test(words[i])) return false;
      if (/^(EX|PX|EXAT|PXAT)$/i.test(words[i]) && !/^\d+$/.test(words[++i] ?? '')) return false;
    }
  }
  return true;
}

/**
 * Claims a stream only on evidence specific to RESP: a command array (`*<n>\r\n$<len>\r\n<name>`),
 * a whole RESP reply, a Redis error prefix, or an upper-case inline command of known arity. Not
 * `+OK`, `PING` or `-ERR '…'`, which NATS sends too.
 */
function checkHead(p: Uint8Array): boolean {
  if (p.length < 3) return false;
  const t = p[0];
  if (t === 0x2a) return commandHead(p, 0, p.length) !== undefined || (skipValue(p, 0, p.length, 0) === p.length && p.length <= 4096);
  if (t === 0x2b) return lineEnd(p, 1, p.length, 256) === p.length && /^[A-Z]/.test(String.fromCharCode(p[1])) && !(p.length === 5 && p[1] === 0x4f && p[2] === 0x4b);
  if (t === 0x2d) {
    const e = lineEnd(p, 1, p.length, 1024);
    return e === p.length && /^-(ERR|WRONGTYPE|NOAUTH|MOVED|ASK|LOADING|BUSY|NOSCRIPT|READONLY|EXECABORT|NOPERM|OOM|MISCONF|CROSSSLOT|CLUSTERDOWN|NOPROTO) (?!')/.test(text(p, 0, Math.min(e, 16)));
  }
  if (t === 0x24 || t === 0x3a || t === 0x25 || t === 0x7e) return skipValue(p, 0, p.length, 0) === p.length;
  if (t < 0x41 || t > 0x5a) return false;
  const head = inlineHead(p, 0, p.length);
  if (!head) return false;
  const e = lineEnd(p, 0, p.length, 512);
  return e === p.length && inlineEvidence(text(p, 0, e - 2, 512));
}

export const redisParser: ProtocolParser = {
  name: 'redis',
  parallel: redisDescriptor.pairing === 'by-id',
  descriptor: redisDescriptor,
  transports: ['tcp'],
  check: (payload) => checkHead(payload),
  parse: (payload, ctx) => parseStream(payload, ctx, framer),
  newState: () => ({}),
};

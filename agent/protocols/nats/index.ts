/**
 * NATS client protocol (core NATS, text): one control line per operation, ended by CRLF; PUB, HPUB,
 * MSG and HMSG are followed by a payload of the length the line gives, and a CRLF.
 *
 *   client → server: CONNECT {json}, PUB <subject> [reply-to] <size>, HPUB <subject> [reply-to]
 *                    <header size> <total size>, SUB <subject> [queue group] <sid>, UNSUB <sid> [max],
 *                    PING, PONG
 *   server → client: INFO {json}, MSG <subject> <sid> [reply-to] <size>, HMSG … <header size> <total>,
 *                    +OK, -ERR '<message>', PING, PONG
 *
 * Fields: request_type = the operation in upper case; request_resource = the subject (UNSUB: the
 * subject its sid was subscribed to, when the SUB was seen); endpoint = the subject with inbox
 * tokens folded (`_INBOX.*`); attributes: `reply_to`, `queue` (SUB), `sid`, `client` (CONNECT's
 * name). Payloads are never copied. HPUB/HMSG headers carry trace context (`traceparent`, `b3`,
 * `sw8`, …), read like HTTP headers. `-ERR` is a response with the message (quotes removed) as the
 * exception: client_error, except the server-side conditions (Slow Consumer, Stale Connection,
 * Maximum Connections Exceeded), which are server_error. Pairing: see descriptor.ts.
 */

import type { L7Message, ParseContext, ProtocolParser, ResponseStatus } from '../parser.ts';
import { natsDescriptor } from './descriptor.ts';
import { text } from '../lib/bytes.ts';
import { socketState } from '../lib/direction.ts';
import { applyTraceContext, TRACE_HEADERS } from '../lib/trace-context.ts';
import { INVALID, NEED_MORE, UNKNOWN_LENGTH, parseStream } from '../lib/stream.ts';
import type { StreamFramer } from '../lib/stream.ts';

/** Longest control line framed (INFO and CONNECT carry JSON; nats-server's own limit is 4 KiB). */
const MAX_LINE = 4096;
/** Largest payload accepted (nats-server's max_payload tops out at 64 MiB). */
const MAX_PAYLOAD = 64 << 20;
const MAX_SUBS = 1024;

const isSubject = (s: string | undefined): boolean => s !== undefined && s.length > 0 && s.length <= 512 && /^[\x21-\x7e\x80-\uffff]+$/.test(s) && !s.startsWith('.') && !s.endsWith('.') && !s.includes('..');
const isSize = (s: string | undefined): boolean => s !== undefined && /^\d{1,9}$/.test(s);
const isSid = (s: string | undefined): boolean => s !== undefined && /^[\x21-\x7e]{1,64}$/.test(s);

/** Position of the CR of the line at `pos`, NEED_MORE, or INVALID. */
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

interface Line {
  op: string;
  args: string[];
  /** The text after the operation (INFO/CONNECT JSON, -ERR message). */
  rest: string;
}

/** Operations whose text after the name is one value (JSON, a message), not arguments. */
const FREE_TEXT = new Set(['INFO', 'CONNECT', '-ERR']);

function splitLine(line: string): Line {
  let i = 0;
  while (i < line.length && line.charCodeAt(i) !== 0x20 && line.charCodeAt(i) !== 0x09) i++;
  const op = line.slice(0, i);
  if (i === 0 || i > 16 || !/^[A-Za-z+-]+$/.test(op)) return { op: '', args: [], rest: '' };
  while (i < line.length && (line.charCodeAt(i) === 0x20 || line.charCodeAt(i) === 0x09)) i++;
  const rest = line.slice(i);
  const upper = op.toUpperCase();
  if (FREE_TEXT.has(upper) || rest === '') return { op: upper, args: [], rest };
  return { op: upper, args: rest.split(/[ \t]+/).filter((a) => a !== ''), rest };
}

/** Payload-carrying operations: [subject, reply-to, header size, total size] or undefined. */
function payloadArgs(l: Line): { subject: string; sid?: string; reply?: string; hdr: number; total: number } | undefined {
  const a = l.args;
  switch (l.op) {
    case 'PUB':
      if ((a.length !== 2 && a.length !== 3) || !isSubject(a[0]) || !isSize(a.at(-1)) || (a.length === 3 && !isSubject(a[1]))) return undefined;
      return { subject: a[0], reply: a.length === 3 ? a[1] : undefined, hdr: 0, total: Number(a.at(-1)) };
    case 'HPUB':
      if ((a.length !== 3 && a.length !== 4) || !isSubject(a[0]) || !isSize(a.at(-1)) || !isSize(a.at(-2)) || (a.length === 4 && !isSubject(a[1]))) return undefined;
      return { subject: a[0], reply: a.length === 4 ? a[1] : undefined, hdr: Number(a.at(-2)), total: Number(a.at(-1)) };
    case 'MSG':
      if ((a.length !== 3 && a.length !== 4) || !isSubject(a[0]) || !isSid(a[1]) || !isSize(a.at(-1)) || (a.length === 4 && !isSubject(a[2]))) return undefined;
      return { subject: a[0], sid: a[1], reply: a.length === 4 ? a[2] : undefined, hdr: 0, total: Number(a.at(-1)) };
    case 'HMSG':
      if ((a.length !== 4 && a.length !== 5) || !isSubject(a[0]) || !isSid(a[1]) || !isSize(a.at(-1)) || !isSize(a.at(-2)) || (a.length === 5 && !isSubject(a[2]))) return undefined;
      return { subject: a[0], sid: a[1], reply: a.length === 5 ? a[2] : undefined, hdr: Number(a.at(-2)), total: Number(a.at(-1)) };
    default:
      return undefined;
  }
}

/** `_INBOX.<random>[.<n>]` → `_INBOX.*`: reply subjects are unique per request. */
export function subjectEndpoint(subject: string): string {
  return subject.startsWith('_INBOX.') ? '_INBOX.*' : subject;
}

const SERVER_SIDE_ERRORS = /^(slow consumer|stale connection|maximum connections exceeded)/i;

function errStatus(msg: string): ResponseStatus {
  return SERVER_SIDE_ERRORS.test(msg) ? 'server_error' : 'client_error';
}

/** `NATS/1.0[ status]\r\nName: value\r\n…` (as far as captured) → lower-case name → value, trace headers only. */
function readHeaders(buf: Uint8Array, start: number, end: number): Map<string, string> | undefined {
  const s = text(buf, start, end, 4096);
  if (!s.startsWith('NATS/1.0')) return undefined;
  const h = new Map<string, string>();
  const lines = s.split('\r\n');
  const status = /^NATS\/1\.0 (\d{3})/.exec(lines[0]);
  if (status) h.set(':status', status[1]);
  for (let i = 1; i < lines.length; i++) {
    const c = lines[i].indexOf(':');
    if (c <= 0) continue;
    const name = lines[i].slice(0, c).trim().toLowerCase();
    if ((TRACE_HEADERS.has(name) || name === ':status') && !h.has(name)) h.set(name, lines[i].slice(c + 1).trim());
  }
  return h;
}

interface SharedState {
  natsVerbose?: boolean;
  natsSubs?: Map<string, string>;
}

const framer: StreamFramer = {
  frame(buf, off, end, cut, ctx, out) {
    const cr = lineCr(buf, off, end);
    if (cr === INVALID) return INVALID;
    const shared = socketState(ctx) as SharedState;
    if (cr === NEED_MORE) {
      // An INFO or CONNECT line longer than the captured head: report what is there.
      if (cut && end - off >= 8) {
        const l = splitLine(text(buf, off, end, 64).replace(/\{.*$/, ''));
        if ((l.op === 'INFO' || l.op === 'CONNECT') && buf[off + l.op.length + 1] === 0x7b) {
          out.push(control(l.op, shared, text(buf, off, end, MAX_LINE)));
          return UNKNOWN_LENGTH;
        }
      }
      return cut || end - off >= MAX_LINE ? INVALID : NEED_MORE;
    }
    const lineEnd = cr + 2;
    const l = splitLine(text(buf, off, cr, MAX_LINE));
    const p = payloadArgs(l);
    if (p) {
      if (p.total > MAX_PAYLOAD || p.hdr > p.total) return INVALID;
      const dataEnd = lineEnd + p.total;
      // The payload's CRLF, when captured.
      if (dataEnd + 2 <= end && (buf[dataEnd] !== 0x0d || buf[dataEnd + 1] !== 0x0a)) return INVALID;
      if (dataEnd + 1 === end && buf[dataEnd] !== 0x0d) return INVALID;
      // Wait for the headers of a split read (they carry the trace context).
      if (p.hdr > 0 && !cut && lineEnd + p.hdr > end && p.hdr <= 4096) return NEED_MORE;
      const m: L7Message = { l7Protocol: 'nats', msgType: 'request', requestType: l.op, requestResource: p.subject.slice(0, 512), endpoint: subjectEndpoint(p.subject).slice(0, 512), requestLength: dataEnd + 2 - off };
      const attrs: Record<string, string> = {};
      if (p.reply !== undefined) attrs.reply_to = p.reply.slice(0, 256);
      if (p.sid !== undefined) attrs.sid = p.sid;
      if (p.hdr > 0) {
        const h = readHeaders(buf, lineEnd, Math.min(lineEnd + p.hdr, end));
        if (h) {
          applyTraceContext(m, h);
          const st = h.get(':status');
          if (st !== undefined) attrs.status = st;
        }
      }
      if (Object.keys(attrs).length > 0) m.attributes = attrs;
      if (l.op === 'MSG' || l.op === 'HMSG' || shared.natsVerbose !== true) m.oneWay = true;
      out.push(m);
      return dataEnd + 2 - off;
    }
    const a = l.args;
    switch (l.op) {
      case 'SUB': {
        if ((a.length !== 2 && a.length !== 3) || !isSubject(a[0]) || !isSid(a.at(-1)) || (a.length === 3 && !isSubject(a[1]))) return INVALID;
        const sid = a.at(-1) as string;
        const subs = (shared.natsSubs ??= new Map());
        if (subs.size >= MAX_SUBS) subs.clear();
        subs.set(sid, a[0]);
        const attrs: Record<string, string> = { sid };
        if (a.length === 3) attrs.queue = a[1].slice(0, 256);
        out.push({ l7Protocol: 'nats', msgType: 'request', requestType: 'SUB', requestResource: a[0].slice(0, 512), endpoint: subjectEndpoint(a[0]).slice(0, 512), attributes: attrs, requestLength: lineEnd - off, ...(shared.natsVerbose !== true ? { oneWay: true } : {}) });
        return lineEnd - off;
      }
      case 'UNSUB': {
        if ((a.length !== 1 && a.length !== 2) || !isSid(a[0]) || (a.length === 2 && !isSize(a[1]))) return INVALID;
        const subject = shared.natsSubs?.get(a[0]);
        const m: L7Message = { l7Protocol: 'nats', msgType: 'request', requestType: 'UNSUB', attributes: { sid: a[0] }, requestLength: lineEnd - off };
        if (subject !== undefined) {
          m.requestResource = subject.slice(0, 512);
          m.endpoint = subjectEndpoint(subject).slice(0, 512);
        }
        if (shared.natsVerbose !== true) m.oneWay = true;
        out.push(m);
        return lineEnd - off;
      }
      case 'CONNECT':
      case 'INFO':
        if (!l.rest.startsWith('{')) return INVALID;
        out.push(control(l.op, shared, l.rest));
        return lineEnd - off;
      case 'PING':
        if (a.length !== 0) return INVALID;
        out.push({ l7Protocol: 'nats', msgType: 'request', requestType: 'PING', requestLength: 6 });
        return lineEnd - off;
      case 'PONG':
        if (a.length !== 0) return INVALID;
        out.push({ l7Protocol: 'nats', msgType: 'response', responseStatus: 'ok', attributes: { result: 'PONG' }, responseLength: 6 });
        return lineEnd - off;
      case '+OK':
        if (a.length !== 0) return INVALID;
        shared.natsVerbose = true;
        out.push({ l7Protocol: 'nats', msgType: 'response', responseStatus: 'ok', attributes: { result: '+OK' }, responseLength: 5 });
        return lineEnd - off;
      case '-ERR': {
        const msg = l.rest.replace(/^'(.*)'$/, '$1').slice(0, 256);
        out.push({ l7Protocol: 'nats', msgType: 'response', responseStatus: errStatus(msg), responseException: msg || '-ERR', attributes: { result: '-ERR' }, responseLength: lineEnd - off });
        return lineEnd - off;
      }
      default: {
        // On a known stream, an operation this parser does not know still gets its answer (-ERR).
        const seen = (ctx.state.stream as { seen?: boolean } | undefined)?.seen === true;
        if (!seen || !/^[A-Z]{1,16}$/.test(l.op)) return INVALID;
        out.push({ l7Protocol: 'nats', msgType: 'request', requestType: l.op, requestLength: lineEnd - off });
        return lineEnd - off;
      }
    }
  },
};

/** CONNECT (learns verbose mode and the client name) or INFO (server name and version). */
function control(op: string, shared: SharedState, json: string): L7Message {
  if (op === 'INFO') {
    const m: L7Message = { l7Protocol: 'nats', msgType: 'request', requestType: 'INFO', oneWay: true };
    const name = /"server_name"\s*:\s*"([^"]{1,128})"/.exec(json)?.[1];
    const version = /"version"\s*:\s*"([^"]{1,32})"/.exec(json)?.[1];
    if (name !== undefined) m.requestDomain = name;
    if (version !== undefined) m.version = version;
    return m;
  }
  const verbose = /"verbose"\s*:\s*(true|false)/.exec(json)?.[1];
  if (verbose !== undefined) shared.natsVerbose = verbose === 'true';
  const m: L7Message = { l7Protocol: 'nats', msgType: 'request', requestType: 'CONNECT' };
  const name = /"name"\s*:\s*"([^"]{1,128})"/.exec(json)?.[1];
  const lang = /"lang"\s*:\s*"([^"]{1,32})"/.exec(json)?.[1];
  if (name !== undefined || lang !== undefined) m.attributes = { ...(name !== undefined ? { client: name } : {}), ...(lang !== undefined ? { lang } : {}) };
  if (shared.natsVerbose !== true) m.oneWay = true;
  return m;
}

// ---- inference --------------------------------------------------------------------------------

/** Operations specific enough to claim a stream on: not PING, PONG or +OK, which Redis shares. */
const EVIDENCE = new Set(['INFO', 'CONNECT', 'PUB', 'HPUB', 'MSG', 'HMSG', 'SUB', 'UNSUB', '-ERR']);

/**
 * Claims a stream from any point of a connection on a line of exact NATS shape, in upper case as
 * every client and the server send it: INFO/CONNECT with JSON, PUB/HPUB/MSG/HMSG whose payload has
 * the declared length and its CRLF, SUB/UNSUB with their arguments, or `-ERR '…'` (quoted, unlike
 * Redis errors); and the whole read must frame as NATS (a cut tail is fine).
 */
function checkHead(p: Uint8Array): boolean {
  if (p.length < 6) return false;
  const c0 = p[0];
  if (!((c0 >= 0x41 && c0 <= 0x5a) || c0 === 0x2d || c0 === 0x2b)) return false;
  const ctx = { state: {}, socketState: {}, direction: 'egress', role: 'client' } as unknown as ParseContext;
  const out: L7Message[] = [];
  let evidence = false;
  let at = 0;
  while (at < p.length) {
    const sp = p.indexOf(0x20, at);
    const op = sp > at && sp - at <= 7 ? text(p, at, sp, 8) : '';
    if (op === '-ERR' && p[sp + 1] !== 0x27) return false;
    if (EVIDENCE.has(op)) evidence = true;
    else if (!/^(\+OK|PING|PONG)\r\n/.test(text(p, at, Math.min(at + 6, p.length), 6))) return false; // upper case only, no unknown verbs
    const n = framer.frame(p, at, p.length, true, ctx, out);
    if (n === UNKNOWN_LENGTH) break;
    if (n <= 0) return false;
    at += n;
  }
  return evidence;
}

export const natsParser: ProtocolParser = {
  name: 'nats',
  parallel: natsDescriptor.pairing === 'by-id',
  descriptor: natsDescriptor,
  transports: ['tcp'],
  check: (payload) => checkHead(payload),
  parse: (payload, ctx) => parseStream(payload, ctx, framer, 4096),
  newState: () => ({}),
};

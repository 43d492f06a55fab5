/**
 * HTTP/1.0 and 1.1: keep-alive, pipelining (several messages in one read), Content-Length and
 * chunked bodies followed across reads, interim 1xx responses (not reported: the final response is
 * the one that pairs with the request), `101 Switching Protocols` (the stream stops being HTTP/1).
 *
 * Fields: request_type = method, request_domain = Host, request_resource = target,
 * endpoint = path without the query, response_code = status; trace context from headers.
 */

import type { L7Message, ParseContext, ProtocolParser } from '../parser.ts';
import { asciiBytes, indexOfCrlf, startsWithAscii, text } from '../lib/bytes.ts';
import { socketState } from '../lib/direction.ts';
import { httpStatusClass } from '../lib/status.ts';
import { INVALID, NEED_MORE, UNKNOWN_LENGTH, parseStream } from '../lib/stream.ts';
import type { StreamFramer } from '../lib/stream.ts';
import { TRACE_HEADERS, applyTraceContext } from '../lib/trace-context.ts';

const METHODS = new Set([
  'GET', 'POST', 'PUT', 'DELETE', 'HEAD', 'OPTIONS', 'PATCH', 'CONNECT', 'TRACE',
  'PROPFIND', 'PROPPATCH', 'MKCOL', 'COPY', 'MOVE', 'LOCK', 'UNLOCK', 'PURGE',
]);
const MAX_METHOD = 9;
/** Longest header block we look for an end in before calling the stream not HTTP. */
const MAX_HEADER_BYTES = 64 * 1024;

interface ChunkState {
  /** Bytes of chunk data (plus its CRLF) still to skip; -1 while a size line is expected. */
  remaining: number;
  /** After the last chunk: skipping trailer lines until the empty one. */
  trailers: boolean;
}

interface HttpState {
  chunk?: ChunkState;
  upgraded?: boolean;
}

/** Does `buf` start with something that can only be an HTTP/1 start line? */
function startLineKind(buf: Uint8Array, off: number, end: number): 'request' | 'response' | 'partial' | undefined {
  // "HTTP/1.x "
  if (buf[off] === 0x48 /* H */ && end - off >= 5 && buf[off + 1] === 0x54 && buf[off + 2] === 0x54 && buf[off + 3] === 0x50 && buf[off + 4] === 0x2f) {
    if (end - off < 9) return 'partial';
    return buf[off + 5] === 0x31 && buf[off + 6] === 0x2e && buf[off + 8] === 0x20 ? 'response' : undefined;
  }
  let i = off;
  const lim = Math.min(end, off + MAX_METHOD + 1);
  while (i < lim && buf[i] >= 0x41 && buf[i] <= 0x5a) i++;
  if (i === off) return undefined;
  if (i >= end) return end - off <= MAX_METHOD ? 'partial' : undefined;
  if (buf[i] !== 0x20) return undefined;
  return METHODS.has(text(buf, off, i)) ? 'request' : undefined;
}

interface Head {
  kind: 'request' | 'response';
  method: string;
  target: string;
  version: string;
  status: number;
  reason: string;
  headers: Map<string, string>;
  headerEnd: number;
}

/** Header names the parser keeps, as bytes, plus the configured extras (cached per list). */
const BASE_WANTED = ['host', 'content-length', 'transfer-encoding', ...TRACE_HEADERS];
interface WantedName {
  bytes: Uint8Array;
  name: string;
}
/** Wanted names indexed by length, so most header lines are rejected by one array read. */
type WantedTable = Array<WantedName[] | undefined>;

function table(names: readonly string[]): WantedTable {
  const t: WantedTable = [];
  for (const name of new Set(names)) (t[name.length] ??= []).push({ bytes: asciiBytes(name), name });
  return t;
}
const BASE_TABLE = table(BASE_WANTED);
let extraFor: readonly string[] | undefined;
let extraTable: WantedTable = BASE_TABLE;

function wanted(extra: readonly string[] | undefined): WantedTable {
  if (!extra || extra.length === 0) return BASE_TABLE;
  if (extra !== extraFor) {
    extraTable = table([...BASE_WANTED, ...extra.map((e) => e.toLowerCase())]);
    extraFor = extra;
  }
  return extraTable;
}

/** The wanted lower-case name equal (case-insensitively) to buf[s, e), if any. */
function matchName(buf: Uint8Array, s: number, e: number, names: WantedTable): string | undefined {
  const candidates = names[e - s];
  if (candidates === undefined) return undefined;
  outer: for (const w of candidates) {
    const b = w.bytes;
    for (let i = 0; i < b.length; i++) {
      let c = buf[s + i];
      if (c >= 0x41 && c <= 0x5a) c |= 0x20;
      if (c !== b[i]) continue outer;
    }
    return w.name;
  }
  return undefined;
}

/** Parse a start line and the header lines in [off, end); `headerEnd` stays -1 if the block is cut. */
function parseHead(buf: Uint8Array, off: number, end: number, extra: readonly string[] | undefined): Head | undefined {
  const lineEnd = indexOfCrlf(buf, off, end);
  const firstEnd = lineEnd < 0 ? end : lineEnd;
  const head: Head = { kind: 'request', method: '', target: '', version: '', status: 0, reason: '', headers: new Map(), headerEnd: -1 };
  if (startsWithAscii(buf, off, 'HTTP/1.')) {
    // HTTP/1.x SP 3DIGIT [SP reason]
    if (firstEnd - off < 12) return undefined;
    const v = buf[off + 7];
    if ((v !== 0x30 && v !== 0x31) || buf[off + 8] !== 0x20) return undefined;
    let status = 0;
    for (let i = off + 9; i < off + 12; i++) {
      const d = buf[i] - 0x30;
      if (d < 0 || d > 9) return undefined;
      status = status * 10 + d;
    }
    if (firstEnd > off + 12 && buf[off + 12] !== 0x20) return undefined;
    head.kind = 'response';
    head.version = v === 0x31 ? '1.1' : '1.0';
    head.status = status;
    if (firstEnd > off + 13) head.reason = text(buf, off + 13, firstEnd, 128);
  } else {
    let sp1 = off;
    while (sp1 < firstEnd && buf[sp1] !== 0x20) sp1++;
    if (sp1 === off || sp1 - off > MAX_METHOD || sp1 >= firstEnd) return undefined;
    head.method = text(buf, off, sp1, MAX_METHOD);
    if (!METHODS.has(head.method)) return undefined;
    // "… HTTP/1.x" ends a complete request line.
    if (lineEnd >= 0) {
      if (firstEnd - sp1 < 11 || buf[firstEnd - 9] !== 0x20 || !startsWithAscii(buf, firstEnd - 8, 'HTTP/1.')) return undefined;
      const v = buf[firstEnd - 1];
      if (v !== 0x30 && v !== 0x31) return undefined;
      head.version = v === 0x31 ? '1.1' : '1.0';
      head.target = text(buf, sp1 + 1, firstEnd - 9, 4096);
      if (head.target.length === 0) return undefined;
    } else {
      head.target = text(buf, sp1 + 1, firstEnd, 4096); // cut inside the line
    }
  }
  if (lineEnd < 0) return head;
  const names = wanted(extra);
  let pos = lineEnd + 2;
  while (pos < end) {
    const e = indexOfCrlf(buf, pos, end);
    if (e === pos) {
      head.headerEnd = e + 2;
      return head;
    }
    if (e < 0) break; // a cut header line: skip it, its value may be incomplete
    let colon = pos;
    while (colon < e && buf[colon] !== 0x3a) colon++;
    if (colon < e && colon > pos) {
      const name = matchName(buf, pos, colon, names);
      if (name !== undefined && !head.headers.has(name)) head.headers.set(name, text(buf, colon + 1, e, 1024).trim());
    }
    pos = e + 2;
  }
  return head;
}

function toMessage(head: Head, ctx: ParseContext): L7Message {
  const h = head.headers;
  let msg: L7Message;
  if (head.kind === 'request') {
    const q = head.target.indexOf('?');
    msg = {
      l7Protocol: 'http1',
      msgType: 'request',
      requestType: head.method,
      requestResource: head.target.slice(0, 512),
      endpoint: (q >= 0 ? head.target.slice(0, q) : head.target).slice(0, 256),
      version: head.version,
    };
    const host = h.get('host');
    if (host) msg.requestDomain = host.slice(0, 256);
  } else {
    msg = {
      l7Protocol: 'http1',
      msgType: 'response',
      responseCode: head.status,
      responseStatus: httpStatusClass(head.status),
      version: head.version,
    };
    if (head.status >= 400 && head.reason) msg.responseException = head.reason;
  }
  const cl = h.get('content-length');
  if (cl !== undefined && /^\d{1,15}$/.test(cl)) {
    if (head.kind === 'request') msg.requestLength = Number(cl);
    else msg.responseLength = Number(cl);
  }
  applyTraceContext(msg, h, ctx.extraHeaders);
  return msg;
}

function pendingHeads(ctx: ParseContext): boolean[] {
  const ss = socketState(ctx);
  let q = ss.httpHeads as boolean[] | undefined;
  if (!q) ss.httpHeads = q = [];
  return q;
}

const framer: StreamFramer = {
  resume(buf, off, end, wire, ctx) {
    const hs = ctx.state as HttpState;
    if (hs.upgraded) return wire - off;
    const ch = hs.chunk;
    if (!ch) return 0;
    let pos = off;
    while (true) {
      if (ch.remaining > 0) {
        const take = Math.min(ch.remaining, wire - pos);
        ch.remaining -= take;
        pos += take;
        if (ch.remaining > 0 || pos >= end) return pos - off;
        continue;
      }
      if (pos >= end) {
        if (pos < wire) hs.chunk = undefined; // the next size line was not captured: lost track
        return pos - off;
      }
      const e = indexOfCrlf(buf, pos, end);
      if (e < 0) {
        if (end < wire || end - pos > 1024) {
          hs.chunk = undefined;
          return Math.max(wire - off, 1);
        }
        return pos === off ? NEED_MORE : pos - off;
      }
      if (ch.trailers) {
        const empty = e === pos;
        pos = e + 2;
        if (empty) {
          hs.chunk = undefined;
          return pos - off;
        }
        continue;
      }
      let size = 0;
      let i = pos;
      for (; i < e; i++) {
        const c = buf[i];
        const d = c >= 0x30 && c <= 0x39 ? c - 0x30 : c >= 0x61 && c <= 0x66 ? c - 0x57 : c >= 0x41 && c <= 0x46 ? c - 0x37 : -1;
        if (d < 0) break;
        size = size * 16 + d;
        if (size > Number.MAX_SAFE_INTEGER / 32) break;
      }
      if (i === pos || (i < e && buf[i] !== 0x3b && buf[i] !== 0x20)) {
        hs.chunk = undefined; // not a chunk size: resynchronise on the next start line
        return 0;
      }
      pos = e + 2;
      if (size === 0) ch.trailers = true;
      else ch.remaining = size + 2;
    }
  },

  frame(buf, off, end, cut, ctx, out) {
    const kind = startLineKind(buf, off, end);
    if (kind === undefined) return INVALID;
    if (kind === 'partial') return cut ? INVALID : NEED_MORE;
    // One pass over the head: start line, wanted headers, and the blank line that ends it.
    const lim = Math.min(end, off + MAX_HEADER_BYTES);
    const head = parseHead(buf, off, lim, ctx.extraHeaders);
    if (!head) {
      // A start line still being written ("HTTP/1.1 20") is not yet invalid.
      return !cut && indexOfCrlf(buf, off, end) < 0 && looksLikeText(buf, off, end) ? NEED_MORE : INVALID;
    }
    if (head.headerEnd < 0) {
      if (!cut) {
        if (end - off >= MAX_HEADER_BYTES) return INVALID;
        // An unfinished head must at least look like text.
        return looksLikeText(buf, off, end) ? NEED_MORE : INVALID;
      }
      const msg = toMessage(head, ctx);
      if (head.kind === 'response' && head.status >= 100 && head.status < 200 && head.status !== 101) return UNKNOWN_LENGTH;
      if (head.kind === 'request') pendingHeads(ctx).push(head.method === 'HEAD');
      out.push(msg);
      return UNKNOWN_LENGTH;
    }
    const hend = head.headerEnd;
    const headerLen = hend - off;
    let bodyLen = 0;
    let chunked = false;
    const te = head.headers.get('transfer-encoding');
    const cl = head.headers.get('content-length');
    if (head.kind === 'response') {
      const heads = pendingHeads(ctx);
      if (head.status >= 100 && head.status < 200 && head.status !== 101) return headerLen; // interim: not reported
      const wasHead = heads.length > 0 ? heads.shift() === true : false;
      if (head.status === 101) {
        (ctx.state as HttpState).upgraded = true;
      } else if (wasHead || head.status === 204 || head.status === 304) {
        bodyLen = 0;
      } else if (te !== undefined && /chunked/i.test(te)) {
        chunked = true;
      } else if (cl !== undefined) {
        bodyLen = /^\d{1,15}$/.test(cl) ? Number(cl) : 0;
      } else {
        bodyLen = Number.MAX_SAFE_INTEGER; // delimited by connection close
      }
    } else {
      const heads = pendingHeads(ctx);
      if (heads.length < 64) heads.push(head.method === 'HEAD');
      if (te !== undefined && /chunked/i.test(te)) chunked = true;
      else if (cl !== undefined && /^\d{1,15}$/.test(cl)) bodyLen = Number(cl);
    }
    out.push(toMessage(head, ctx));
    if (chunked) (ctx.state as HttpState).chunk = { remaining: 0, trailers: false };
    return headerLen + bodyLen;
  },
};

function looksLikeText(buf: Uint8Array, off: number, end: number): boolean {
  for (let i = off; i < end; i++) {
    const c = buf[i];
    if (c < 0x20 && c !== 9 && c !== 10 && c !== 13) return false;
    if (c === 0x7f) return false;
  }
  return true;
}

export const http1Parser: ProtocolParser = {
  name: 'http1',
  parallel: false,
  transports: ['tcp'],
  check(payload, ctx) {
    const n = payload.length;
    const k = startLineKind(payload, 0, n);
    if (k === 'response') {
      // HTTP/1.x SP 3DIGIT
      if (n < 12 || (payload[7] !== 0x30 && payload[7] !== 0x31)) return false;
      for (let i = 9; i < 12; i++) if (payload[i] < 0x30 || payload[i] > 0x39) return false;
      return true;
    }
    if (k !== 'request') return false;
    // The start line must end in " HTTP/1.x" — or, cut inside it, hold a target after the method.
    const e = indexOfCrlf(payload, 0, Math.min(n, 8192));
    if (e < 0) {
      const sp = payload.indexOf(0x20);
      // Accepted only when the capture limit cut it (a short split line is joined by the registry).
      return sp > 0 && sp + 1 < n && payload[sp + 1] > 0x20 && (ctx.bytes > n || n >= 8192);
    }
    const v = payload[e - 1];
    return e >= 14 && payload[e - 9] === 0x20 && startsWithAscii(payload, e - 8, 'HTTP/1.') && (v === 0x30 || v === 0x31) && payload[e - 10] !== 0x20;
  },
  parse(payload, ctx) {
    return parseStream(payload, ctx, framer);
  },
  newState: () => ({}),
};

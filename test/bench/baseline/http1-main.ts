// Baseline for test/bench/parsers.bench.ts --compare-main: agent/protocols/http1/index.ts as it was on
// main before its head scanner moved to head-scanner.ts (git show 12f47a4:agent/protocols/http1/index.ts,
// import paths adjusted). Not used by any product code.
/**
 * HTTP/1.0 and 1.1: keep-alive, pipelining (several messages in one read), Content-Length and
 * chunked bodies followed across reads, interim 1xx responses (not reported: the final response is
 * the one that pairs with the request), `101 Switching Protocols` (the stream stops being HTTP/1).
 *
 * Fields: request_type = method, request_domain = Host, request_resource = target,
 * endpoint = path without the query, response_code = status; trace context from headers.
 */

import type { L7Message, ParseContext, ProtocolParser } from '../../../agent/protocols/parser.ts';
import { http1Descriptor } from '../../../agent/protocols/http1/descriptor.ts';
import { asciiBytes, indexOfCrlf, startsWithAscii, text } from '../../../agent/protocols/lib/bytes.ts';
import { socketState } from '../../../agent/protocols/lib/direction.ts';
import { httpStatusClass } from '../../../agent/protocols/lib/status.ts';
import { INVALID, NEED_MORE, UNKNOWN_LENGTH, parseStream } from '../../../agent/protocols/lib/stream.ts';
import type { StreamFramer } from '../../../agent/protocols/lib/stream.ts';
import { TRACE_HEADERS, applyTraceContext } from '../../../agent/protocols/lib/trace-context.ts';
import type { HeaderLookup } from '../../../agent/protocols/lib/trace-context.ts';

const METHODS = [
  'GET', 'POST', 'PUT', 'DELETE', 'HEAD', 'OPTIONS', 'PATCH', 'CONNECT', 'TRACE',
  'PROPFIND', 'PROPPATCH', 'MKCOL', 'COPY', 'MOVE', 'LOCK', 'UNLOCK', 'PURGE',
];
const MAX_METHOD = 9;
/** Longest header block we look for an end in before calling the stream not HTTP. */
const MAX_HEADER_BYTES = 64 * 1024;
/** Header values are read from at most this many bytes (then trimmed), as they always were. */
const MAX_HEADER_VALUE = 1024;

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

/** Method names by length, as bytes: a method is recognised without building a string for it. */
const METHODS_BY_LENGTH: Array<Array<{ bytes: Uint8Array; name: string }> | undefined> = [];
for (const m of METHODS) (METHODS_BY_LENGTH[m.length] ??= []).push({ bytes: asciiBytes(m), name: m });

/** The method spelled by buf[s, e) (case-sensitive), as its constant string, or undefined. */
function methodAt(buf: Uint8Array, s: number, e: number): string | undefined {
  const candidates = METHODS_BY_LENGTH[e - s];
  if (candidates === undefined) return undefined;
  outer: for (const m of candidates) {
    const b = m.bytes;
    for (let i = 0; i < b.length; i++) if (buf[s + i] !== b[i]) continue outer;
    return m.name;
  }
  return undefined;
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
  return methodAt(buf, off, i) !== undefined ? 'request' : undefined;
}

// ---------------------------------------------------------------------------------------------
// Strings that repeat from message to message (targets, hosts, reason phrases) are interned: a
// small table keyed by a hash of the bytes hands back the string made last time, so a repeated
// value costs a hash and a compare instead of a new string (and the batch writer's dictionary
// lookup then hits a string whose hash V8 already knows).

const INTERN_SLOTS = 4096;
const INTERN_MAX = 256;
const internKeys: Array<Uint8Array | undefined> = new Array<Uint8Array | undefined>(INTERN_SLOTS).fill(undefined);
const internValues: string[] = new Array<string>(INTERN_SLOTS).fill('');

/** buf[s, e) as a string (ASCII only, at most INTERN_MAX bytes); undefined when not plain ASCII. */
function internAscii(buf: Uint8Array, s: number, e: number): string | undefined {
  const n = e - s;
  if (n <= 0 || n > INTERN_MAX) return undefined;
  let h = 0x811c9dc5 ^ n;
  let high = 0;
  for (let i = s; i < e; i++) {
    const c = buf[i];
    high |= c;
    h = Math.imul(h ^ c, 0x01000193);
  }
  if (high >= 0x80) return undefined;
  const slot = (h ^ (h >>> 15)) & (INTERN_SLOTS - 1);
  const k = internKeys[slot];
  if (k !== undefined && k.length === n) {
    let i = 0;
    while (i < n && k[i] === buf[s + i]) i++;
    if (i === n) return internValues[slot];
  }
  const str = text(buf, s, e, INTERN_MAX);
  internKeys[slot] = buf.slice(s, e);
  internValues[slot] = str;
  return str;
}

/** Decode bytes [s, e) clamped to `max` bytes, interned when short plain ASCII. */
function str(buf: Uint8Array, s: number, e: number, max: number): string {
  if (e - s > max) e = s + max;
  return internAscii(buf, s, e) ?? text(buf, s, e, max);
}

function isSpace(c: number): boolean {
  // The ASCII characters String.prototype.trim removes: HT LF VT FF CR SP.
  return c === 0x20 || (c >= 0x09 && c <= 0x0d);
}

/** A header value: `text(value, 1024).trim()`, without building more than the one string. */
function headerValue(buf: Uint8Array, s: number, e: number, intern: boolean): string {
  if (e - s > MAX_HEADER_VALUE) e = s + MAX_HEADER_VALUE;
  for (let i = s; i < e; i++) if (buf[i] >= 0x80) return text(buf, s, e, MAX_HEADER_VALUE).trim();
  while (s < e && isSpace(buf[s])) s++;
  while (e > s && isSpace(buf[e - 1])) e--;
  return (intern ? internAscii(buf, s, e) : undefined) ?? text(buf, s, e, MAX_HEADER_VALUE);
}

/** Content-Length as a number when its (trimmed) value is 1 to 15 digits, else -1. */
function contentLength(buf: Uint8Array, s: number, e: number): number {
  if (e - s > MAX_HEADER_VALUE) e = s + MAX_HEADER_VALUE;
  for (let i = s; i < e; i++) if (buf[i] >= 0x80) return lengthOf(text(buf, s, e, MAX_HEADER_VALUE).trim());
  while (s < e && isSpace(buf[s])) s++;
  while (e > s && isSpace(buf[e - 1])) e--;
  if (e - s < 1 || e - s > 15) return -1;
  let n = 0;
  for (let i = s; i < e; i++) {
    const d = buf[i] - 0x30;
    if (d < 0 || d > 9) return -1;
    n = n * 10 + d;
  }
  return n;
}

function lengthOf(v: string): number {
  return /^\d{1,15}$/.test(v) ? Number(v) : -1;
}

const CHUNKED = asciiBytes('chunked');

/** Does the Transfer-Encoding value (its first 1024 bytes) say "chunked", in any case? */
function saysChunked(buf: Uint8Array, s: number, e: number): boolean {
  if (e - s > MAX_HEADER_VALUE) e = s + MAX_HEADER_VALUE;
  outer: for (let i = s; i + CHUNKED.length <= e; i++) {
    for (let j = 0; j < CHUNKED.length; j++) {
      let c = buf[i + j];
      if (c >= 0x41 && c <= 0x5a) c |= 0x20;
      if (c !== CHUNKED[j]) continue outer;
    }
    return true;
  }
  return false;
}

// ---------------------------------------------------------------------------------------------
// Header names the parser keeps: Host, Content-Length, Transfer-Encoding, the trace-context
// headers and the configured extras. Each has an id; values of the current head are kept in one
// reused array (parsing is synchronous), read through one reused lookup object — no Map, no
// closure and no object per message.

const H_HOST = 0;
const H_CONTENT_LENGTH = 1;
const H_TRANSFER_ENCODING = 2;
const BASE_WANTED = ['host', 'content-length', 'transfer-encoding', ...TRACE_HEADERS];
const FIRST_TRACE = 3;

interface WantedName {
  bytes: Uint8Array;
  id: number;
}
interface WantedTable {
  /** Wanted names indexed by length, so most header lines are rejected by one array read. */
  byLength: Array<WantedName[] | undefined>;
  /** Lower-case name → id (what applyTraceContext asks for). */
  ids: Map<string, number>;
  size: number;
}

function table(names: readonly string[]): WantedTable {
  const t: WantedTable = { byLength: [], ids: new Map(), size: 0 };
  for (const name of names) {
    if (t.ids.has(name)) continue;
    const id = t.size++;
    t.ids.set(name, id);
    (t.byLength[name.length] ??= []).push({ bytes: asciiBytes(name), id });
  }
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

/** The id of the wanted name equal (case-insensitively) to buf[s, e), or -1. */
function matchName(buf: Uint8Array, s: number, e: number, names: WantedTable): number {
  const candidates = names.byLength[e - s];
  if (candidates === undefined) return -1;
  outer: for (const w of candidates) {
    const b = w.bytes;
    for (let i = 0; i < b.length; i++) {
      let c = buf[s + i];
      if (c >= 0x41 && c <= 0x5a) c |= 0x20;
      if (c !== b[i]) continue outer;
    }
    return w.id;
  }
  return -1;
}

/** The head being parsed. One instance, reset per head: frame() is synchronous and not re-entered. */
interface Head {
  kind: 'request' | 'response';
  method: string;
  /** Request target bytes [targetStart, targetEnd), at most 4096. */
  targetStart: number;
  targetEnd: number;
  version: string;
  status: number;
  /** Reason phrase bytes (response), empty when absent. */
  reasonStart: number;
  reasonEnd: number;
  headerEnd: number;
  names: WantedTable;
  /** Value of each wanted header seen (first occurrence), by id; valid where `seenIn[id] === generation`. */
  values: Array<string | undefined>;
  seenIn: number[];
  /** Bumped per head, so forgetting the last head's headers costs nothing. */
  generation: number;
  /** Content-Length: -2 absent, -1 present but not 1..15 digits, else its value. */
  contentLength: number;
  chunked: boolean;
  /** A trace-context or configured extra header was seen. */
  hasTrace: boolean;
}

const head: Head = {
  kind: 'request', method: '', targetStart: 0, targetEnd: 0, version: '', status: 0, reasonStart: 0, reasonEnd: 0,
  headerEnd: -1, names: BASE_TABLE, values: [], seenIn: [], generation: 1, contentLength: -2, chunked: false, hasTrace: false,
};

/** The headers of `head`, as applyTraceContext reads them (lower-case name → first value). */
const headLookup: HeaderLookup = {
  get(name: string): string | undefined {
    const id = head.names.ids.get(name);
    return id === undefined || head.seenIn[id] !== head.generation ? undefined : head.values[id];
  },
};

function resetHead(names: WantedTable): void {
  if (++head.generation >= 0x40000000) {
    head.generation = 1;
    head.seenIn.fill(0);
  }
  head.names = names;
  head.kind = 'request';
  head.method = '';
  head.targetStart = head.targetEnd = 0;
  head.version = '';
  head.status = 0;
  head.reasonStart = head.reasonEnd = 0;
  head.headerEnd = -1;
  head.contentLength = -2;
  head.chunked = false;
  head.hasTrace = false;
}

/**
 * Parse a start line and the header lines in [off, end) into `head`; false when it is not HTTP/1.
 * `head.headerEnd` stays -1 if the block is cut.
 */
function parseHead(buf: Uint8Array, off: number, end: number, extra: readonly string[] | undefined): boolean {
  const lineEnd = indexOfCrlf(buf, off, end);
  const firstEnd = lineEnd < 0 ? end : lineEnd;
  const names = wanted(extra);
  resetHead(names);
  if (startsWithAscii(buf, off, 'HTTP/1.')) {
    // HTTP/1.x SP 3DIGIT [SP reason]
    if (firstEnd - off < 12) return false;
    const v = buf[off + 7];
    if ((v !== 0x30 && v !== 0x31) || buf[off + 8] !== 0x20) return false;
    let status = 0;
    for (let i = off + 9; i < off + 12; i++) {
      const d = buf[i] - 0x30;
      if (d < 0 || d > 9) return false;
      status = status * 10 + d;
    }
    if (firstEnd > off + 12 && buf[off + 12] !== 0x20) return false;
    head.kind = 'response';
    head.version = v === 0x31 ? '1.1' : '1.0';
    head.status = status;
    if (firstEnd > off + 13) {
      head.reasonStart = off + 13;
      head.reasonEnd = firstEnd;
    }
  } else {
    let sp1 = off;
    while (sp1 < firstEnd && buf[sp1] !== 0x20) sp1++;
    if (sp1 === off || sp1 - off > MAX_METHOD || sp1 >= firstEnd) return false;
    const method = methodAt(buf, off, sp1);
    if (method === undefined) return false;
    head.method = method;
    // "… HTTP/1.x" ends a complete request line.
    if (lineEnd >= 0) {
      if (firstEnd - sp1 < 11 || buf[firstEnd - 9] !== 0x20 || !startsWithAscii(buf, firstEnd - 8, 'HTTP/1.')) return false;
      const v = buf[firstEnd - 1];
      if (v !== 0x30 && v !== 0x31) return false;
      head.version = v === 0x31 ? '1.1' : '1.0';
      head.targetStart = sp1 + 1;
      head.targetEnd = Math.min(firstEnd - 9, sp1 + 1 + 4096);
      if (head.targetEnd <= head.targetStart) return false;
    } else {
      head.targetStart = sp1 + 1; // cut inside the line
      head.targetEnd = Math.min(firstEnd, sp1 + 1 + 4096);
    }
  }
  if (lineEnd < 0) return true;
  let pos = lineEnd + 2;
  while (pos < end) {
    // The first colon is looked for only as far as the longest wanted name reaches (a later one
    // cannot end a wanted name), then the CRLF that ends the line.
    let colon = -1;
    let e = -1;
    let i = pos;
    const nameLim = Math.min(end, pos + names.byLength.length);
    for (; i < nameLim && i + 1 < end; i++) {
      const c = buf[i];
      if (c === 0x3a) {
        colon = i;
        break;
      }
      if (c === 13 && buf[i + 1] === 10) {
        e = i;
        break;
      }
    }
    if (e < 0) {
      for (; i + 1 < end; i++) {
        if (buf[i] === 13 && buf[i + 1] === 10) {
          e = i;
          break;
        }
      }
    }
    if (e === pos) {
      head.headerEnd = e + 2;
      return true;
    }
    if (e < 0) break; // a cut header line: skip it, its value may be incomplete
    if (colon > pos) {
      const id = matchName(buf, pos, colon, names);
      if (id >= 0 && head.seenIn[id] !== head.generation) keep(buf, id, colon + 1, e);
    }
    pos = e + 2;
  }
  return true;
}

/** Record the first value of wanted header `id`, found at buf[s, e). */
function keep(buf: Uint8Array, id: number, s: number, e: number): void {
  head.seenIn[id] = head.generation;
  head.values[id] = undefined;
  if (id === H_CONTENT_LENGTH) head.contentLength = contentLength(buf, s, e);
  else if (id === H_TRANSFER_ENCODING) head.chunked = saysChunked(buf, s, e);
  if (id >= FIRST_TRACE) head.hasTrace = true;
  // Host, trace context and extras are read as strings (an extra may name any header, even these).
  if (id === H_HOST || id >= FIRST_TRACE) head.values[id] = headerValue(buf, s, e, id === H_HOST);
  else if (head.names !== BASE_TABLE) head.values[id] = headerValue(buf, s, e, false);
}

function toMessage(buf: Uint8Array, ctx: ParseContext): L7Message {
  let msg: L7Message;
  if (head.kind === 'request') {
    const ts = head.targetStart;
    const te = head.targetEnd;
    const target = str(buf, ts, te, 4096);
    let q = ts;
    while (q < te && buf[q] !== 0x3f /* ? */) q++;
    // The path before the query, at most 256 characters: when those bytes are plain ASCII they
    // are the characters, so the (interned) string is made from them directly.
    const endpoint = q === te ? target.slice(0, 256) : (internAscii(buf, ts, Math.min(q, ts + 256)) ?? target.slice(0, target.indexOf('?')).slice(0, 256));
    msg = {
      l7Protocol: 'http1',
      msgType: 'request',
      requestType: head.method,
      requestResource: target.slice(0, 512),
      endpoint,
      version: head.version,
    };
    const host = head.seenIn[H_HOST] === head.generation ? head.values[H_HOST] : undefined;
    if (host) msg.requestDomain = host.slice(0, 256);
  } else {
    msg = {
      l7Protocol: 'http1',
      msgType: 'response',
      responseCode: head.status,
      responseStatus: httpStatusClass(head.status),
      version: head.version,
    };
    if (head.status >= 400 && head.reasonEnd > head.reasonStart) msg.responseException = str(buf, head.reasonStart, head.reasonEnd, 128);
  }
  if (head.contentLength >= 0) {
    if (head.kind === 'request') msg.requestLength = head.contentLength;
    else msg.responseLength = head.contentLength;
  }
  if (head.hasTrace || (ctx.extraHeaders !== undefined && ctx.extraHeaders.length > 0)) applyTraceContext(msg, headLookup, ctx.extraHeaders);
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
    if (!parseHead(buf, off, lim, ctx.extraHeaders)) {
      // A start line still being written ("HTTP/1.1 20") is not yet invalid.
      return !cut && indexOfCrlf(buf, off, end) < 0 && looksLikeText(buf, off, end) ? NEED_MORE : INVALID;
    }
    if (head.headerEnd < 0) {
      if (!cut) {
        if (end - off >= MAX_HEADER_BYTES) return INVALID;
        // An unfinished head must at least look like text.
        return looksLikeText(buf, off, end) ? NEED_MORE : INVALID;
      }
      const msg = toMessage(buf, ctx);
      if (head.kind === 'response' && head.status >= 100 && head.status < 200 && head.status !== 101) return UNKNOWN_LENGTH;
      if (head.kind === 'request') pendingHeads(ctx).push(head.method === 'HEAD');
      out.push(msg);
      return UNKNOWN_LENGTH;
    }
    const hend = head.headerEnd;
    const headerLen = hend - off;
    let bodyLen = 0;
    let chunked = false;
    if (head.kind === 'response') {
      const heads = pendingHeads(ctx);
      if (head.status >= 100 && head.status < 200 && head.status !== 101) return headerLen; // interim: not reported
      const wasHead = heads.length > 0 ? heads.shift() === true : false;
      if (head.status === 101) {
        (ctx.state as HttpState).upgraded = true;
      } else if (wasHead || head.status === 204 || head.status === 304) {
        bodyLen = 0;
      } else if (head.chunked) {
        chunked = true;
      } else if (head.contentLength !== -2) {
        bodyLen = Math.max(head.contentLength, 0);
      } else {
        bodyLen = Number.MAX_SAFE_INTEGER; // delimited by connection close
      }
    } else {
      const heads = pendingHeads(ctx);
      if (heads.length < 64) heads.push(head.method === 'HEAD');
      if (head.chunked) chunked = true;
      else if (head.contentLength >= 0) bodyLen = head.contentLength;
    }
    out.push(toMessage(buf, ctx));
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
  parallel: http1Descriptor.pairing === 'by-id',
  descriptor: http1Descriptor,
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

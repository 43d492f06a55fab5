/**
 * The HTTP/1 head scanner: recognises a start line, then walks the header lines once, keeping only
 * the headers the parser wants (Host, Content-Length, Transfer-Encoding, trace context, configured
 * extras) in one reused {@link head} — no Map, closure or object per message. The framer and the
 * message builder around it are in index.ts.
 *
 * @example
 *   if (parseHead(buf, 0, buf.length, undefined) && head.headerEnd > 0) use(head.method, head.version);
 */
import { asciiBytes, indexOfCrlf, startsWithAscii, text } from '../lib/bytes.ts';
import { TRACE_HEADERS } from '../lib/trace-context.ts';
import type { HeaderLookup } from '../lib/trace-context.ts';

const METHODS = [
  'GET', 'POST', 'PUT', 'DELETE', 'HEAD', 'OPTIONS', 'PATCH', 'CONNECT', 'TRACE',
  'PROPFIND', 'PROPPATCH', 'MKCOL', 'COPY', 'MOVE', 'LOCK', 'UNLOCK', 'PURGE',
];
export const MAX_METHOD = 9;
/** Longest header block we look for an end in before calling the stream not HTTP. */
export const MAX_HEADER_BYTES = 64 * 1024;
/** Header values are read from at most this many bytes (then trimmed), as they always were. */
const MAX_HEADER_VALUE = 1024;

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
export function startLineKind(buf: Uint8Array, off: number, end: number): 'request' | 'response' | 'partial' | undefined {
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
export function internAscii(buf: Uint8Array, s: number, e: number): string | undefined {
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
export function str(buf: Uint8Array, s: number, e: number, max: number): string {
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

export const H_HOST = 0;
const H_CONTENT_LENGTH = 1;
const H_TRANSFER_ENCODING = 2;
const BASE_WANTED = ['host', 'content-length', 'transfer-encoding', ...TRACE_HEADERS];
const FIRST_TRACE = 3;

interface WantedName {
  bytes: Uint8Array;
  id: number;
}
export interface WantedTable {
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
export interface Head {
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

export const head: Head = {
  kind: 'request', method: '', targetStart: 0, targetEnd: 0, version: '', status: 0, reasonStart: 0, reasonEnd: 0,
  headerEnd: -1, names: BASE_TABLE, values: [], seenIn: [], generation: 1, contentLength: -2, chunked: false, hasTrace: false,
};

/** The headers of `head`, as applyTraceContext reads them (lower-case name → first value). */
export const headLookup: HeaderLookup = {
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
export function parseHead(buf: Uint8Array, off: number, end: number, extra: readonly string[] | undefined): boolean {
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

/**
 * HTTP/2 (h2c or the plaintext behind TLS uprobes later) and gRPC over it.
 *
 * Frames are walked with the shared stream framer; HEADERS (+ CONTINUATION) blocks are decoded with
 * an HPACK decoder kept per socket direction, so the dynamic table follows the connection. Parallel
 * protocol: request_id = stream id. gRPC (content-type application/grpc*) is reported as `grpc`, and
 * its response is emitted at the trailers, with `grpc-status` as the response code.
 */

import type { L7Message, ParseContext, ProtocolParser } from '../parser.ts';
import { http2Descriptor } from './descriptor.ts';
import { startsWithAscii, u24be } from '../lib/bytes.ts';
import { socketState } from '../lib/direction.ts';
import { grpcStatusClass, httpStatusClass } from '../lib/status.ts';
import { INVALID, NEED_MORE, UNKNOWN_LENGTH, parseStream } from '../lib/stream.ts';
import type { StreamFramer } from '../lib/stream.ts';
import { applyTraceContext } from '../lib/trace-context.ts';
import { HpackDecoder } from './hpack.ts';
import type { HeaderList } from './hpack.ts';

const PREFACE = 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n';
const FRAME_HEADER = 9;
const MAX_FRAME = 1 << 24;
/** Header blocks larger than this are not reassembled across reads. */
const MAX_HEADER_BLOCK = 16384 + FRAME_HEADER;
const MAX_PENDING_STREAMS = 256;

const HEADERS = 1;
const CONTINUATION = 9;
const FLAG_END_STREAM = 0x1;
const FLAG_END_HEADERS = 0x4;
const FLAG_PADDED = 0x8;
const FLAG_PRIORITY = 0x20;

interface H2State {
  hpack: HpackDecoder;
  /** A header block waiting for its CONTINUATION frames. */
  block?: { stream: number; flags: number; parts: Uint8Array[]; size: number };
  /** gRPC responses whose headers came and whose trailers are awaited: stream → http status. */
  grpcPending: Map<number, number>;
}

function h2(ctx: ParseContext): H2State {
  let s = ctx.state.h2 as H2State | undefined;
  if (!s) {
    s = { hpack: new HpackDecoder(), grpcPending: new Map() };
    ctx.state.h2 = s;
  }
  return s;
}

/** First value of a header in a decoded list (lists are short: a scan beats building a map). */
class Headers {
  constructor(private readonly list: HeaderList) {}
  get(name: string): string | undefined {
    for (const [k, v] of this.list) if (k === name) return v;
    return undefined;
  }
}

function percentDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

const GRPC_PATH = /^\/[A-Za-z_][\w.]*\.[A-Za-z_]\w*\/[A-Za-z_]\w*$/;

/** Turn one decoded header block into a message (or nothing, for a gRPC response awaiting trailers). */
function onHeaders(st: H2State, stream: number, flags: number, headers: HeaderList, unresolved: number, ctx: ParseContext, out: L7Message[]): void {
  const h = new Headers(headers);
  const method = h.get(':method');
  const status = h.get(':status');
  const ct = h.get('content-type');
  // Without a content-type (it may be a dynamic-table entry we never saw), gRPC shows in its shape:
  // POST to /package.Service/Method with `te: trailers`, or a path of that shape when fields are missing.
  const calls = grpcCalls(ctx);
  const grpc =
    ct !== undefined
      ? ct.startsWith('application/grpc')
      : method !== undefined
        ? method === 'POST' && (h.get('te') === 'trailers' || unresolved > 0) && GRPC_PATH.test(h.get(':path') ?? '')
        : h.get('grpc-status') !== undefined || calls.has(stream);
  const endStream = (flags & FLAG_END_STREAM) !== 0;
  if (method !== undefined) {
    const p = h.get(':path') ?? '';
    const q = p.indexOf('?');
    const m: L7Message = {
      l7Protocol: grpc ? 'grpc' : 'http2',
      msgType: 'request',
      requestType: method.slice(0, 32),
      requestResource: p.slice(0, 512),
      endpoint: (q >= 0 ? p.slice(0, q) : p).slice(0, 256),
      requestId: stream,
      version: '2',
    };
    const authority = h.get(':authority') ?? h.get('host');
    if (authority) m.requestDomain = authority.slice(0, 256);
    if (grpc) {
      const slash = p.lastIndexOf('/');
      if (slash > 1) (m.attributes ??= {})['rpc.service'] = p.slice(1, slash).slice(0, 256);
    }
    if (unresolved > 0) (m.attributes ??= {})['hpack.unresolved'] = String(unresolved);
    if (grpc && unresolved > 0) {
      if (calls.size >= MAX_PENDING_STREAMS) calls.delete(calls.values().next().value ?? 0);
      calls.add(stream);
    }
    applyTraceContext(m, h, ctx.extraHeaders);
    out.push(m);
    return;
  }
  if (status !== undefined) {
    if (!/^\d{3}$/.test(status)) return;
    const code = Number(status);
    if (code >= 100 && code < 200) return; // interim
    if (grpc) {
      const gs = h.get('grpc-status');
      if (endStream || gs !== undefined) {
        calls.delete(stream);
        out.push(grpcResponse(stream, h, unresolved));
        return;
      }
      if (st.grpcPending.size >= MAX_PENDING_STREAMS) {
        const oldest = st.grpcPending.keys().next().value;
        if (oldest !== undefined) st.grpcPending.delete(oldest);
      }
      st.grpcPending.set(stream, code);
      return;
    }
    const m: L7Message = { l7Protocol: 'http2', msgType: 'response', requestId: stream, responseCode: code, responseStatus: httpStatusClass(code), version: '2' };
    const cl = h.get('content-length');
    if (cl && /^\d{1,15}$/.test(cl)) m.responseLength = Number(cl);
    applyTraceContext(m, h, ctx.extraHeaders);
    out.push(m);
    return;
  }
  // Trailers: the end of a gRPC response.
  const gs = h.get('grpc-status');
  if (st.grpcPending.has(stream) || gs !== undefined || (endStream && calls.has(stream))) {
    st.grpcPending.delete(stream);
    calls.delete(stream);
    out.push(grpcResponse(stream, h, unresolved));
  }
}

/**
 * gRPC calls (stream ids) recognised by their request's shape while some of its fields were
 * dynamic-table entries never seen: their responses may lack a readable content-type too.
 */
function grpcCalls(ctx: ParseContext): Set<number> {
  const ss = socketState(ctx);
  let s = ss.h2GrpcCalls as Set<number> | undefined;
  if (!s) ss.h2GrpcCalls = s = new Set();
  return s;
}

function grpcResponse(stream: number, h: Headers, unresolved = 0): L7Message {
  const gs = h.get('grpc-status');
  const known = gs !== undefined && /^\d{1,3}$/.test(gs);
  // A missing status is UNKNOWN (2) — unless it may be one of the fields we could not resolve.
  const code = known ? Number(gs) : 2;
  const m: L7Message = { l7Protocol: 'grpc', msgType: 'response', requestId: stream, responseCode: code, responseStatus: grpcStatusClass(code), version: '2' };
  if (!known && unresolved > 0) {
    delete m.responseCode;
    m.responseStatus = 'unknown';
    m.attributes = { 'hpack.unresolved': String(unresolved) };
  }
  const msg = h.get('grpc-message');
  if (code !== 0 && msg) m.responseException = percentDecode(msg).slice(0, 512);
  return m;
}

/** The header block fragment inside a HEADERS frame (after padding and priority). */
function fragment(buf: Uint8Array, start: number, len: number, flags: number, type: number): [number, number] | undefined {
  let s = start;
  let e = start + len;
  if (type === HEADERS) {
    if (flags & FLAG_PADDED) {
      if (len < 1) return undefined;
      const pad = buf[s];
      s += 1;
      e -= pad;
    }
    if (flags & FLAG_PRIORITY) s += 5;
  }
  return s <= e ? [s, e] : undefined;
}

const framer: StreamFramer = {
  frame(buf, off, end, cut, ctx, out) {
    if (buf[off] === 0x50 /* P */) {
      if (end - off < PREFACE.length) return !cut && isPrefacePrefix(buf, off, end) ? NEED_MORE : INVALID;
      return startsWithAscii(buf, off, PREFACE) ? PREFACE.length : INVALID;
    }
    if (end - off < FRAME_HEADER) return cut ? INVALID : NEED_MORE;
    const len = u24be(buf, off);
    const type = buf[off + 3];
    const flags = buf[off + 4];
    const stream = ((buf[off + 5] & 0x7f) << 24) | (buf[off + 6] << 16) | (buf[off + 7] << 8) | buf[off + 8];
    if (len >= MAX_FRAME || (buf[off + 5] & 0x80) !== 0 || type > 0x20) return INVALID;
    if (type !== HEADERS && type !== CONTINUATION) return FRAME_HEADER + len;
    const st = h2(ctx);
    const bodyEnd = off + FRAME_HEADER + len;
    if (bodyEnd > end && !cut) return len + FRAME_HEADER <= MAX_HEADER_BLOCK ? NEED_MORE : FRAME_HEADER + len;
    if (stream === 0) return INVALID;
    const avail = Math.min(bodyEnd, end);
    let fStart = off + FRAME_HEADER;
    let fEnd = avail;
    if (type === HEADERS) {
      const f = fragment(buf, fStart, avail - fStart, flags, type);
      if (!f) return INVALID;
      [fStart, fEnd] = [f[0], Math.min(f[1], avail)];
    }
    let block: Uint8Array;
    let blockFlags = flags;
    let blockStream = stream;
    if (type === CONTINUATION) {
      const b = st.block;
      if (!b || b.stream !== stream) return FRAME_HEADER + len; // its HEADERS was not seen
      b.parts.push(buf.slice(fStart, fEnd));
      b.size += fEnd - fStart;
      if ((flags & FLAG_END_HEADERS) === 0 && b.size <= MAX_HEADER_BLOCK) return FRAME_HEADER + len;
      st.block = undefined;
      block = joinParts(b.parts, b.size);
      blockFlags = b.flags;
      blockStream = b.stream;
    } else {
      if ((flags & FLAG_END_HEADERS) === 0 && bodyEnd <= end) {
        st.block = { stream, flags, parts: [buf.slice(fStart, fEnd)], size: fEnd - fStart };
        return FRAME_HEADER + len;
      }
      block = buf.subarray(fStart, fEnd);
    }
    const { headers, unresolved } = st.hpack.decode(block, 0, block.length);
    onHeaders(st, blockStream, blockFlags, headers, unresolved, ctx, out);
    return bodyEnd > end ? UNKNOWN_LENGTH : FRAME_HEADER + len;
  },
};

function joinParts(parts: Uint8Array[], size: number): Uint8Array {
  const out = new Uint8Array(size);
  let p = 0;
  for (const x of parts) {
    out.set(x.subarray(0, size - p), p);
    p += x.length;
    if (p >= size) break;
  }
  return out;
}

function isPrefacePrefix(buf: Uint8Array, off: number, end: number): boolean {
  for (let i = off; i < end; i++) if (buf[i] !== PREFACE.charCodeAt(i - off)) return false;
  return true;
}

/** Walk the frames of a head: all sane, the first one telling (SETTINGS or HEADERS with pseudo-headers). */
function checkFrames(p: Uint8Array): boolean {
  if (p.length < FRAME_HEADER) return false;
  let off = 0;
  let first = true;
  while (off + FRAME_HEADER <= p.length) {
    const len = u24be(p, off);
    const type = p[off + 3];
    const flags = p[off + 4];
    const stream = ((p[off + 5] & 0x7f) << 24) | (p[off + 6] << 16) | (p[off + 7] << 8) | p[off + 8];
    if ((p[off + 5] & 0x80) !== 0 || type > 9 || len > 16384 * 4) return false;
    if (first) {
      if (type === 4) {
        if (stream !== 0 || len % 6 !== 0 || (flags & ~1) !== 0 || (flags === 1 && len !== 0)) return false;
      } else if (type === HEADERS) {
        if (stream === 0) return false;
        const f = fragment(p, off + FRAME_HEADER, Math.min(len, p.length - off - FRAME_HEADER), flags, type);
        if (!f) return false;
        const { headers } = new HpackDecoder().decode(p, f[0], Math.min(f[1], p.length));
        if (!headers.some(([k]) => k === ':method' || k === ':status')) return false;
      } else {
        return false;
      }
      first = false;
    }
    off += FRAME_HEADER + len;
  }
  return off === p.length || off > p.length;
}

export const http2Parser: ProtocolParser = {
  name: 'http2',
  parallel: http2Descriptor.pairing === 'by-id',
  descriptor: http2Descriptor,
  transports: ['tcp'],
  check(payload) {
    if (payload.length >= PREFACE.length && startsWithAscii(payload, 0, PREFACE)) return true;
    return checkFrames(payload);
  },
  parse: (payload, ctx) => parseStream(payload, ctx, framer, MAX_HEADER_BLOCK),
  newState: () => ({}),
};


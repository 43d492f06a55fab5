/**
 * HTTP/1.0 and 1.1: keep-alive, pipelining (several messages in one read), Content-Length and
 * chunked bodies followed across reads, interim 1xx responses (not reported: the final response is
 * the one that pairs with the request), `101 Switching Protocols` (the stream stops being HTTP/1).
 *
 * Fields: request_type = method, request_domain = Host, request_resource = target,
 * endpoint = path without the query, response_code = status; trace context from headers.
 *
 * The head scanner (start line, wanted headers, one reused `head`) is head-scanner.ts; this file
 * frames messages (bodies, chunks, upgrades) and builds the L7 message from the scanned head.
 */

import type { L7Message, ParseContext, ProtocolParser } from '../parser.ts';
import { http1Descriptor } from './descriptor.ts';
import { H_HOST, MAX_HEADER_BYTES, head, headLookup, internAscii, parseHead, startLineKind, str } from './head-scanner.ts';
import { indexOfCrlf, startsWithAscii } from '../lib/bytes.ts';
import { socketState } from '../lib/direction.ts';
import { httpStatusClass } from '../lib/status.ts';
import { INVALID, NEED_MORE, UNKNOWN_LENGTH, parseStream } from '../lib/stream.ts';
import type { StreamFramer } from '../lib/stream.ts';
import { applyTraceContext } from '../lib/trace-context.ts';

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

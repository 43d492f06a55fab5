/**
 * AMQP 0-9-1 (RabbitMQ and compatible brokers): the protocol header, method frames of every class
 * (Connection, Channel, Exchange, Queue, Basic, Confirm, Tx), content header frames for the trace
 * context in a message's `headers` table, heartbeats and bodies skipped.
 *
 * Parallel protocol: a channel carries one synchronous method at a time, so request_id = channel
 * and a `-Ok` (or Basic.Get-Empty) answers the request on its channel. An error the peer raises
 * (Channel.Close or Connection.Close with a reply code other than 200) is the response to whatever
 * was outstanding there — a passive Queue.Declare of a missing queue is answered by Channel.Close
 * 404 — or a response alone (a refused login: Connection.Close 403); its Close-Ok is not reported.
 * Publish, Deliver, Return, Ack, Nack, Reject and methods sent with no-wait are one-way. The login
 * (Start, Start-Ok, Secure, Tune) is not reported; Connection.Open names the virtual host.
 *
 * Fields: request_type = Class.Method, request_domain = virtual host, request_resource = queue,
 * exchange, routing key (Publish, Deliver, Get-Ok, Return) or consumer tag; endpoint = queue or
 * exchange (the routing key on the default exchange); response_code / response_exception = reply
 * code and text (3xx/4xx client errors, 320 and 5xx server errors).
 */

import type { L7Message, ParseContext, ProtocolParser, ResponseStatus } from '../parser.ts';
import { amqpDescriptor } from './descriptor.ts';
import { startsWithAscii, text, u16be, u32be } from '../lib/bytes.ts';
import { socketState } from '../lib/direction.ts';
import { INVALID, NEED_MORE, parseStream } from '../lib/stream.ts';
import type { StreamFramer } from '../lib/stream.ts';
import { TRACE_HEADERS, applyTraceContext } from '../lib/trace-context.ts';

const FRAME_END = 0xce;
const MAX_FRAME = 1 << 24;
/** Bytes of a split method + content header kept for the next read. */
const MAX_PENDING = 64 * 1024;

/** Kind: r = request answered by a -Ok, o = response, w = one-way, s = silent (login bookkeeping). */
const METHODS: Record<number, [string, 'r' | 'o' | 'w' | 's']> = {
  0x000a000a: ['Connection.Start', 's'], 0x000a000b: ['Connection.Start-Ok', 's'], 0x000a0014: ['Connection.Secure', 's'],
  0x000a0015: ['Connection.Secure-Ok', 's'], 0x000a001e: ['Connection.Tune', 's'], 0x000a001f: ['Connection.Tune-Ok', 's'],
  0x000a0028: ['Connection.Open', 'r'], 0x000a0029: ['Connection.Open-Ok', 'o'], 0x000a0032: ['Connection.Close', 'r'],
  0x000a0033: ['Connection.Close-Ok', 'o'], 0x000a003c: ['Connection.Blocked', 'w'], 0x000a003d: ['Connection.Unblocked', 'w'],
  0x000a0046: ['Connection.Update-Secret', 'r'], 0x000a0047: ['Connection.Update-Secret-Ok', 'o'],
  0x0014000a: ['Channel.Open', 'r'], 0x0014000b: ['Channel.Open-Ok', 'o'], 0x00140014: ['Channel.Flow', 'r'],
  0x00140015: ['Channel.Flow-Ok', 'o'], 0x00140028: ['Channel.Close', 'r'], 0x00140029: ['Channel.Close-Ok', 'o'],
  0x0028000a: ['Exchange.Declare', 'r'], 0x0028000b: ['Exchange.Declare-Ok', 'o'], 0x00280014: ['Exchange.Delete', 'r'],
  0x00280015: ['Exchange.Delete-Ok', 'o'], 0x0028001e: ['Exchange.Bind', 'r'], 0x0028001f: ['Exchange.Bind-Ok', 'o'],
  0x00280028: ['Exchange.Unbind', 'r'], 0x00280033: ['Exchange.Unbind-Ok', 'o'],
  0x0032000a: ['Queue.Declare', 'r'], 0x0032000b: ['Queue.Declare-Ok', 'o'], 0x00320014: ['Queue.Bind', 'r'],
  0x00320015: ['Queue.Bind-Ok', 'o'], 0x0032001e: ['Queue.Purge', 'r'], 0x0032001f: ['Queue.Purge-Ok', 'o'],
  0x00320028: ['Queue.Delete', 'r'], 0x00320029: ['Queue.Delete-Ok', 'o'], 0x00320032: ['Queue.Unbind', 'r'],
  0x00320033: ['Queue.Unbind-Ok', 'o'],
  0x003c000a: ['Basic.Qos', 'r'], 0x003c000b: ['Basic.Qos-Ok', 'o'], 0x003c0014: ['Basic.Consume', 'r'],
  0x003c0015: ['Basic.Consume-Ok', 'o'], 0x003c001e: ['Basic.Cancel', 'r'], 0x003c001f: ['Basic.Cancel-Ok', 'o'],
  0x003c0028: ['Basic.Publish', 'w'], 0x003c0032: ['Basic.Return', 'w'], 0x003c003c: ['Basic.Deliver', 'w'],
  0x003c0046: ['Basic.Get', 'r'], 0x003c0047: ['Basic.Get-Ok', 'o'], 0x003c0048: ['Basic.Get-Empty', 'o'],
  0x003c0050: ['Basic.Ack', 'w'], 0x003c005a: ['Basic.Reject', 'w'], 0x003c0064: ['Basic.Recover-Async', 'w'],
  0x003c006e: ['Basic.Recover', 'r'], 0x003c006f: ['Basic.Recover-Ok', 'o'], 0x003c0078: ['Basic.Nack', 'w'],
  0x0055000a: ['Confirm.Select', 'r'], 0x0055000b: ['Confirm.Select-Ok', 'o'],
  0x005a000a: ['Tx.Select', 'r'], 0x005a000b: ['Tx.Select-Ok', 'o'], 0x005a0014: ['Tx.Commit', 'r'],
  0x005a0015: ['Tx.Commit-Ok', 'o'], 0x005a001e: ['Tx.Rollback', 'r'], 0x005a001f: ['Tx.Rollback-Ok', 'o'],
};
/** Methods followed by a content header (and body). */
const CONTENT = new Set([0x003c0028, 0x003c0032, 0x003c003c, 0x003c0047]);
const MAX_CLOSED = 256;

interface AmqpSocket {
  vhost?: string;
  /** Channels the peer closed with an error (reported as the response): their Close-Ok is not. */
  errClosed: Set<number>;
}

function amqpSocket(ctx: ParseContext): AmqpSocket {
  const ss = socketState(ctx);
  let s = ss.amqp as AmqpSocket | undefined;
  if (!s) {
    s = { errClosed: new Set() };
    ss.amqp = s;
  }
  return s;
}

/** Reads AMQP short strings and fixed fields from a method's arguments; undefined past the end. */
class Args {
  constructor(private readonly b: Uint8Array, public p: number, private readonly end: number) {}
  short(): number | undefined {
    if (this.p + 2 > this.end) return undefined;
    const v = u16be(this.b, this.p);
    this.p += 2;
    return v;
  }
  octet(): number | undefined {
    return this.p < this.end ? this.b[this.p++] : undefined;
  }
  skip(n: number): void {
    this.p += n;
  }
  str(): string | undefined {
    if (this.p >= this.end) return undefined;
    const n = this.b[this.p];
    if (this.p + 1 + n > this.end) return undefined;
    const s = text(this.b, this.p + 1, this.p + 1 + n, 256);
    this.p += 1 + n;
    return s;
  }
}

function replyStatus(code: number): ResponseStatus {
  if (code === 200) return 'ok';
  return code >= 300 && code < 500 && code !== 320 ? 'client_error' : 'server_error';
}

/** Fill name fields and say whether the no-wait bit was set. */
function readArgs(key: number, m: L7Message, a: Args): boolean {
  const set = (resource: string | undefined, endpoint = resource): void => {
    if (resource) m.requestResource = resource;
    if (endpoint) m.endpoint = endpoint;
  };
  const bit = (n: number): boolean => ((a.octet() ?? 0) & (1 << n)) !== 0;
  switch (key) {
    case 0x0028000a: { a.skip(2); const ex = a.str(); a.str(); set(ex); return bit(4); }
    case 0x00280014: { a.skip(2); set(a.str()); return bit(1); }
    case 0x0028001e: case 0x00280028: { a.skip(2); const dst = a.str(); a.str(); a.str(); set(dst); return key === 0x0028001e && bit(0); }
    case 0x0032000a: { a.skip(2); set(a.str()); return bit(4); }
    case 0x00320014: { a.skip(2); set(a.str()); a.str(); a.str(); return bit(0); }
    case 0x0032001e: { a.skip(2); set(a.str()); return bit(0); }
    case 0x00320028: { a.skip(2); set(a.str()); return bit(2); }
    case 0x00320032: { a.skip(2); set(a.str()); return false; }
    case 0x003c0014: { a.skip(2); set(a.str()); a.str(); return bit(3); }
    case 0x003c001e: { set(a.str(), undefined); return bit(0); }
    case 0x003c0046: { a.skip(2); set(a.str()); return false; }
    case 0x003c0028: { a.skip(2); const ex = a.str() ?? ''; const rk = a.str(); set(rk, ex || rk); if (ex) (m.attributes ??= {}).exchange = ex; return false; }
    case 0x003c003c: { a.str(); a.skip(9); const ex = a.str() ?? ''; const rk = a.str(); set(rk, ex || rk); if (ex) (m.attributes ??= {}).exchange = ex; return false; }
    case 0x003c0047: { a.skip(9); const ex = a.str() ?? ''; const rk = a.str(); set(rk, ex || rk); return false; }
    case 0x003c0032: {
      const code = a.short();
      const why = a.str();
      const ex = a.str() ?? '';
      const rk = a.str();
      set(rk, ex || rk);
      if (code !== undefined) (m.attributes ??= {}).reply_code = String(code);
      if (why) (m.attributes ??= {}).reply_text = why;
      return false;
    }
    case 0x0055000a: return bit(0);
    default: return false;
  }
}

/** A content header's `headers` table (property flag 0x2000): trace context and configured extra headers. */
function contentHeaders(b: Uint8Array, p: number, end: number, m: L7Message, extra: readonly string[] | undefined): void {
  if (p + 14 > end || u16be(b, p) !== 60) return;
  const flags = u16be(b, p + 12);
  let q = p + 14;
  if (flags & 0x0001) return; // a second flags word: not sent by 0-9-1 clients
  if (flags & 0x8000) q += 1 + (b[q] ?? 0); // content-type
  if (flags & 0x4000) q += 1 + (b[q] ?? 0); // content-encoding
  if (!(flags & 0x2000) || q + 4 > end) return;
  const tEnd = Math.min(end, q + 4 + u32be(b, q));
  q += 4;
  const found = new Map<string, string>();
  const wanted = (k: string): boolean => TRACE_HEADERS.has(k) || (extra?.includes(k) ?? false);
  for (let n = 0; n < 64 && q < tEnd; n++) {
    const kl = b[q];
    if (q + 1 + kl + 1 > tEnd) return;
    const key = text(b, q + 1, q + 1 + kl, 256).toLowerCase();
    q += 1 + kl;
    const t = b[q++];
    let size: number;
    switch (t) {
      case 0x74: case 0x62: case 0x42: size = 1; break; // t b B
      case 0x73: case 0x75: case 0x55: size = 2; break; // s u U
      case 0x49: case 0x69: case 0x66: size = 4; break; // I i f
      case 0x6c: case 0x4c: case 0x64: case 0x54: size = 8; break; // l L d T
      case 0x44: size = 5; break; // D
      case 0x56: size = 0; break; // V
      case 0x53: case 0x78: case 0x41: case 0x46: { // S x A F: 4-byte length
        if (q + 4 > tEnd) return;
        const l = u32be(b, q);
        if ((t === 0x53 || t === 0x78) && wanted(key) && !found.has(key)) found.set(key, text(b, q + 4, Math.min(tEnd, q + 4 + l), 512));
        size = 4 + l;
        break;
      }
      default: return;
    }
    q += size;
  }
  if (found.size > 0) applyTraceContext(m, found, extra);
}

function methodMessage(buf: Uint8Array, off: number, size: number, avail: number, ctx: ParseContext, out: L7Message[]): void {
  const channel = u16be(buf, off + 1);
  const key = u32be(buf, off + 7);
  const [name, kind] = METHODS[key];
  if (kind === 's') return;
  const s = amqpSocket(ctx);
  const argsEnd = Math.min(avail, off + 7 + size);
  const a = new Args(buf, off + 11, argsEnd);
  const isClose = key === 0x000a0032 || key === 0x00140028;
  if (isClose) {
    const code = a.short();
    if (code !== undefined && code !== 200) {
      // An error the peer raised: the answer to what was outstanding on the channel.
      const why = a.str();
      const m: L7Message = { l7Protocol: 'amqp', msgType: 'response', requestType: name, requestId: channel, responseCode: code, responseStatus: replyStatus(code) };
      if (why) m.responseException = why;
      if (s.vhost) m.requestDomain = s.vhost;
      if (s.errClosed.size < MAX_CLOSED) s.errClosed.add(channel);
      out.push(m);
      return;
    }
  }
  if ((key === 0x000a0033 || key === 0x00140029) && s.errClosed.delete(channel)) return;
  const m: L7Message = { l7Protocol: 'amqp', msgType: kind === 'o' ? 'response' : 'request', requestType: name };
  if (key === 0x000a0028) {
    const vh = a.str();
    if (vh) s.vhost = m.requestResource = vh;
  }
  const noWait = readArgs(key, m, a);
  if (s.vhost) m.requestDomain = s.vhost;
  if (kind === 'w' || (kind === 'r' && noWait)) m.oneWay = true;
  else m.requestId = channel;
  if (kind === 'o') m.responseStatus = 'ok';
  out.push(m);
}

const framer: StreamFramer = {
  frame(buf, off, end, cut, ctx, out) {
    if (buf[off] === 0x41) {
      // Protocol header "AMQP" 0 0 9 1 (a server that wants another version answers with its own).
      if (end - off < 8) return cut ? INVALID : NEED_MORE;
      return startsWithAscii(buf, off, 'AMQP') && buf[off + 4] === 0 ? 8 : INVALID;
    }
    if (end - off < 7) return cut ? INVALID : NEED_MORE;
    const type = buf[off];
    if (type !== 1 && type !== 2 && type !== 3 && type !== 8) return INVALID;
    const size = u32be(buf, off + 3);
    if (size > MAX_FRAME) return INVALID;
    const total = 8 + size;
    if (off + total <= end && buf[off + total - 1] !== FRAME_END) return INVALID;
    if (type !== 1) return total;
    if (size < 4) return INVALID;
    if (end - off < 11) return cut ? INVALID : NEED_MORE;
    const key = u32be(buf, off + 7);
    if (!METHODS[key]) return INVALID;
    if (off + total > end) {
      if (!cut) return NEED_MORE;
      methodMessage(buf, off, size, end, ctx, out);
      return total;
    }
    let len = total;
    const before = out.length;
    if (CONTENT.has(key)) {
      // The content header follows at once: read its headers table before reporting the method.
      const h = off + total;
      if (h + 7 > end || (buf[h] === 2 && h + 8 + u32be(buf, h + 3) > end)) {
        if (!cut) return NEED_MORE;
        methodMessage(buf, off, size, end, ctx, out);
        return total;
      }
      methodMessage(buf, off, size, end, ctx, out);
      if (buf[h] === 2 && buf[h + 8 + u32be(buf, h + 3) - 1] === FRAME_END) {
        const hsize = u32be(buf, h + 3);
        if (out.length > before) contentHeaders(buf, h + 7, h + 7 + hsize, out[before], ctx.extraHeaders);
        len += 8 + hsize;
      }
      return len;
    }
    methodMessage(buf, off, size, end, ctx, out);
    return total;
  },
};

/** Frames from the start of a read: known methods, well-formed frame ends (a heartbeat alone too). */
function looksLikeFrames(p: Uint8Array, bytes: number): boolean {
  let off = 0;
  for (let n = 0; n < 8 && off < p.length; n++) {
    if (p.length - off < 8) return n > 0 && bytes > p.length;
    const type = p[off];
    const size = u32be(p, off + 3);
    if ((type !== 1 && type !== 2 && type !== 3 && type !== 8) || size > MAX_FRAME) return false;
    if (n === 0 && type !== 1 && !(type === 8 && size === 0 && u16be(p, 1) === 0)) return false;
    if (type === 1 && (size < 4 || (off + 11 <= p.length && !METHODS[u32be(p, off + 7)]))) return false;
    if (type === 8 && size !== 0) return false;
    const total = 8 + size;
    if (off + total > p.length) return n > 0 || bytes > p.length ? bytes >= off + total : false;
    if (p[off + total - 1] !== FRAME_END) return false;
    off += total;
  }
  return true;
}

export const amqpParser: ProtocolParser = {
  name: 'amqp',
  parallel: amqpDescriptor.pairing === 'by-id',
  descriptor: amqpDescriptor,
  transports: ['tcp'],
  check(payload, ctx) {
    if (payload.length >= 8 && startsWithAscii(payload, 0, 'AMQP') && payload[4] === 0 && payload[5] === 0 && payload[6] === 9 && payload[7] === 1) return payload.length === 8;
    return looksLikeFrames(payload, Math.max(ctx.bytes, payload.length));
  },
  parse: (payload, ctx) => parseStream(payload, ctx, framer, MAX_PENDING),
  newState: () => ({}),
};

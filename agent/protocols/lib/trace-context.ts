/**
 * Trace context carried in HTTP/1 and HTTP/2 headers: W3C `traceparent`, B3 (single `b3` and the
 * `X-B3-*` family), Jaeger `uber-trace-id`, SkyWalking `sw8`, and `X-Request-ID`; plus configured
 * extra headers copied into attributes. The first format found wins, in that order.
 */

import type { L7Message } from '../parser.ts';

/** Headers a parser passes in: lower-case name → value (first occurrence). A Map fits. */
export interface HeaderLookup {
  get(name: string): string | undefined;
}

const HEX = /^[0-9a-f]+$/i;

function isHexId(s: string | undefined, lengths: readonly number[]): s is string {
  return s !== undefined && lengths.includes(s.length) && HEX.test(s) && !/^0+$/.test(s);
}

/** Header names this module reads; parsers use it to keep only the headers that matter. */
export const TRACE_HEADERS: ReadonlySet<string> = new Set([
  'traceparent',
  'b3',
  'x-b3-traceid',
  'x-b3-spanid',
  'x-b3-parentspanid',
  'uber-trace-id',
  'sw8',
  'x-request-id',
]);

/** Fill traceId / spanId / parentSpanId / xRequestId / attributes on `msg` from its headers. */
export function applyTraceContext(msg: L7Message, headers: HeaderLookup, extraHeaders?: readonly string[]): void {
  fillTrace(msg, headers);
  const xrid = headers.get('x-request-id');
  if (xrid) msg.xRequestId = xrid.trim().slice(0, 128);
  if (extraHeaders && extraHeaders.length > 0) {
    for (const name of extraHeaders) {
      const v = headers.get(name);
      if (v !== undefined) (msg.attributes ??= {})[name] = v.slice(0, 256);
    }
  }
}

function fillTrace(msg: L7Message, h: HeaderLookup): void {
  const tp = h.get('traceparent');
  if (tp) {
    // version-traceid-parentid-flags
    const parts = tp.trim().split('-');
    if (parts.length >= 4 && isHexId(parts[1], [32]) && isHexId(parts[2], [16])) {
      msg.traceId = parts[1].toLowerCase();
      msg.spanId = parts[2].toLowerCase();
      return;
    }
  }
  const b3 = h.get('b3');
  if (b3) {
    // traceid-spanid[-sampled[-parentspanid]]; a lone "0"/"1"/"d" only carries the sampling decision
    const parts = b3.trim().split('-');
    if (parts.length >= 2 && isHexId(parts[0], [16, 32]) && isHexId(parts[1], [16])) {
      msg.traceId = parts[0].toLowerCase();
      msg.spanId = parts[1].toLowerCase();
      if (parts.length >= 4 && isHexId(parts[3], [16])) msg.parentSpanId = parts[3].toLowerCase();
      return;
    }
  }
  const xb3 = h.get('x-b3-traceid');
  if (xb3 !== undefined && isHexId(xb3.trim(), [16, 32])) {
    msg.traceId = xb3.trim().toLowerCase();
    const sid = h.get('x-b3-spanid')?.trim();
    if (isHexId(sid, [16])) msg.spanId = sid.toLowerCase();
    const pid = h.get('x-b3-parentspanid')?.trim();
    if (isHexId(pid, [16])) msg.parentSpanId = pid.toLowerCase();
    return;
  }
  const uber = h.get('uber-trace-id');
  if (uber) {
    // trace-id:span-id:parent-span-id:flags; proxies sometimes leave it URL-encoded
    const parts = uber.trim().replace(/%3A/gi, ':').split(':');
    if (parts.length === 4 && isHexId(parts[0], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 32]) && HEX.test(parts[1])) {
      msg.traceId = parts[0].toLowerCase().padStart(parts[0].length > 16 ? 32 : 16, '0');
      msg.spanId = parts[1].toLowerCase().padStart(16, '0');
      if (HEX.test(parts[2]) && !/^0+$/.test(parts[2])) msg.parentSpanId = parts[2].toLowerCase().padStart(16, '0');
      return;
    }
  }
  const sw8 = h.get('sw8');
  if (sw8) {
    // sample-traceId(b64)-segmentId(b64)-spanId-service(b64)-instance(b64)-endpoint(b64)-peer(b64)
    const parts = sw8.trim().split('-');
    if (parts.length >= 4 && (parts[0] === '0' || parts[0] === '1')) {
      const traceId = b64(parts[1]);
      const segment = b64(parts[2]);
      if (traceId && segment && /^\d+$/.test(parts[3])) {
        msg.traceId = traceId;
        msg.spanId = `${segment}-${parts[3]}`;
      }
    }
  }
}

function b64(s: string | undefined): string | undefined {
  if (!s || s.length > 256 || !/^[A-Za-z0-9+/=]+$/.test(s)) return undefined;
  const out = Buffer.from(s, 'base64').toString('utf8');
  return /^[\x20-\x7e]+$/.test(out) ? out : undefined;
}

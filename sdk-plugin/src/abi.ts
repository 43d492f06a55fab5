/**
 * Riptide plugin ABI v1, host side: constants and the codec for the bytes that cross the boundary.
 * The normative description is `sdk-plugin/ABI.md`; the AssemblyScript side is `assembly/abi.ts`.
 * Keep the three in step — a change that is not additive is ABI v2.
 *
 * @example
 *   const input = encodeInput(HOOK_PARSE, ctx, payload, null);
 *   const messages = decodeMessages(outputBytes); // PluginMessage[]
 */

export const ABI_VERSION = 1;
export const ABI_MARKER_EXPORT = 'riptide_abi_v1';
export const ALLOC_EXPORT = 'riptide_alloc';
export const FUEL_EXPORT = 'riptide_fuel';

/** Hook kinds, written in byte 0 of every input. */
export const HOOK_CHECK = 1;
export const HOOK_PARSE = 2;
export const HOOK_HTTP_REQUEST = 3;
export const HOOK_HTTP_RESPONSE = 4;

export type HookName = 'check' | 'parse' | 'http_request' | 'http_response';

/** Manifest hook name → guest export name. */
export const HOOK_EXPORTS: Record<HookName, string> = {
  check: 'riptide_check',
  parse: 'riptide_parse',
  http_request: 'riptide_on_http_request',
  http_response: 'riptide_on_http_response',
};

export const HEADER_SIZE = 32;

/** TLV tags: `[u8 tag][u32 LE length][value]`. Strings are UTF-8, integers little-endian. */
export const Tag = {
  MESSAGE: 0x01,
  REQUEST_TYPE: 0x10,
  REQUEST_DOMAIN: 0x11,
  REQUEST_RESOURCE: 0x12,
  ENDPOINT: 0x13,
  REQUEST_ID: 0x14,
  RESPONSE_CODE: 0x15,
  RESPONSE_STATUS: 0x16,
  RESPONSE_EXCEPTION: 0x17,
  REQUEST_LENGTH: 0x18,
  RESPONSE_LENGTH: 0x19,
  TRACE_ID: 0x1a,
  SPAN_ID: 0x1b,
  PARENT_SPAN_ID: 0x1c,
  X_REQUEST_ID: 0x1d,
  ATTRIBUTE: 0x1e,
  BUSINESS_ID: 0x1f,
  TRUNCATED: 0x20,
  L7_PROTOCOL: 0x21,
} as const;

export type PluginMsgType = 'request' | 'response';
export type PluginStatus = 'ok' | 'client_error' | 'server_error' | 'timeout' | 'unknown';
export const STATUSES: readonly PluginStatus[] = ['ok', 'client_error', 'server_error', 'timeout', 'unknown'];

/** The fields a plugin can return. Names match the agent's `L7Message` one for one. */
export interface PluginFields {
  requestType?: string;
  requestDomain?: string;
  requestResource?: string;
  endpoint?: string;
  requestId?: number;
  responseCode?: number;
  responseStatus?: PluginStatus;
  responseException?: string;
  requestLength?: number;
  responseLength?: number;
  traceId?: string;
  spanId?: string;
  parentSpanId?: string;
  xRequestId?: string;
  attributes?: Record<string, string>;
  truncated?: boolean;
}

/** One message out of a `parse` hook. */
export interface PluginMessage extends PluginFields {
  msgType: PluginMsgType;
}

/** What an HTTP hook returns: fields to override on the parsed HTTP message, plus business ids. */
export interface PluginResult extends PluginFields {
  businessIds?: string[];
}

/** Per-call context passed in the fixed header. */
export interface InputContext {
  direction: 'egress' | 'ingress';
  role: 'client' | 'server' | 'unknown';
  l4: 'tcp' | 'udp';
  localPort: number;
  remotePort: number;
  socketId: number;
  /** Total bytes the syscall moved (≥ payload length). */
  bytes: number;
}

/** The HTTP message fields given to HTTP hooks (the built-in parser's output). */
export interface HttpFieldsInput extends PluginFields {
  l7Protocol?: string;
}

/** Raised for output that breaks the encoding rules; the host disables the plugin (`bad_output`). */
export class AbiError extends Error {}

const utf8 = new TextEncoder();
const utf8d = new TextDecoder('utf-8', { fatal: false });

/** Encodes the fields of an HTTP message as TLV records (the `fields` region of an input). */
export function encodeFields(f: HttpFieldsInput): Uint8Array {
  const parts: Array<[number, Uint8Array]> = [];
  const str = (tag: number, v: string | undefined): void => {
    if (v !== undefined && v !== '') parts.push([tag, utf8.encode(v)]);
  };
  const u32 = (tag: number, v: number | undefined): void => {
    if (v === undefined) return;
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, v >>> 0, true);
    parts.push([tag, b]);
  };
  str(Tag.L7_PROTOCOL, f.l7Protocol);
  str(Tag.REQUEST_TYPE, f.requestType);
  str(Tag.REQUEST_DOMAIN, f.requestDomain);
  str(Tag.REQUEST_RESOURCE, f.requestResource);
  str(Tag.ENDPOINT, f.endpoint);
  u32(Tag.REQUEST_ID, f.requestId);
  if (f.responseCode !== undefined) u32(Tag.RESPONSE_CODE, f.responseCode | 0);
  if (f.responseStatus !== undefined) parts.push([Tag.RESPONSE_STATUS, Uint8Array.of(STATUSES.indexOf(f.responseStatus))]);
  str(Tag.RESPONSE_EXCEPTION, f.responseException);
  u32(Tag.REQUEST_LENGTH, f.requestLength);
  u32(Tag.RESPONSE_LENGTH, f.responseLength);
  str(Tag.TRACE_ID, f.traceId);
  str(Tag.SPAN_ID, f.spanId);
  str(Tag.PARENT_SPAN_ID, f.parentSpanId);
  str(Tag.X_REQUEST_ID, f.xRequestId);
  for (const [k, v] of Object.entries(f.attributes ?? {})) {
    const kb = utf8.encode(k);
    const vb = utf8.encode(v);
    const b = new Uint8Array(4 + kb.length + vb.length);
    new DataView(b.buffer).setUint32(0, kb.length, true);
    b.set(kb, 4);
    b.set(vb, 4 + kb.length);
    parts.push([Tag.ATTRIBUTE, b]);
  }
  const total = parts.reduce((n, [, v]) => n + 5 + v.length, 0);
  const out = new Uint8Array(total);
  const dv = new DataView(out.buffer);
  let o = 0;
  for (const [tag, v] of parts) {
    out[o] = tag;
    dv.setUint32(o + 1, v.length, true);
    out.set(v, o + 5);
    o += 5 + v.length;
  }
  return out;
}

/** Writes the fixed 32-byte header at `off` of `dv`. */
export function writeHeader(dv: DataView, off: number, hook: number, ctx: InputContext, fieldsLen: number, payloadLen: number): void {
  dv.setUint8(off, hook);
  dv.setUint8(off + 1, ctx.direction === 'egress' ? 0 : 1);
  dv.setUint8(off + 2, ctx.role === 'client' ? 1 : ctx.role === 'server' ? 2 : 0);
  dv.setUint8(off + 3, ctx.l4 === 'udp' ? 1 : 0);
  dv.setUint16(off + 4, ctx.localPort, true);
  dv.setUint16(off + 6, ctx.remotePort, true);
  dv.setUint32(off + 8, ctx.bytes >>> 0, true);
  dv.setUint32(off + 12, fieldsLen, true);
  dv.setUint32(off + 16, payloadLen, true);
  dv.setUint32(off + 20, 0, true);
  // socket ids are < 2^53: split into two u32 halves rather than pay for a BigInt
  dv.setUint32(off + 24, ctx.socketId >>> 0, true);
  dv.setUint32(off + 28, Math.floor(ctx.socketId / 0x1_0000_0000) >>> 0, true);
}

/** UTF-8 decode with an ASCII fast path: TextDecoder costs more than the copy for short ids. */
function decodeUtf8(bytes: Uint8Array, start: number, end: number): string {
  const n = end - start;
  if (n <= 16) {
    let ascii = true;
    for (let i = start; i < end; i++) if (bytes[i] >= 0x80) ascii = false;
    if (ascii) return String.fromCharCode.apply(null, bytes.subarray(start, end) as unknown as number[]);
  }
  return utf8d.decode(bytes.subarray(start, end));
}

function readU32(tag: number, dv: DataView, off: number, len: number): number {
  if (len !== 4) throw new AbiError(`tag 0x${tag.toString(16)}: expected 4 bytes, got ${len}`);
  return dv.getUint32(off, true);
}

// Plain functions, no per-call closures: this runs for every field of every plugin result.
function applyField(target: PluginFields & { businessIds?: string[] }, tag: number, bytes: Uint8Array, dv: DataView, off: number, len: number): void {
  const end = off + len;
  switch (tag) {
    case 0x10: target.requestType = decodeUtf8(bytes, off, end); break;
    case 0x11: target.requestDomain = decodeUtf8(bytes, off, end); break;
    case 0x12: target.requestResource = decodeUtf8(bytes, off, end); break;
    case 0x13: target.endpoint = decodeUtf8(bytes, off, end); break;
    case 0x14: target.requestId = readU32(tag, dv, off, len); break;
    case 0x15: target.responseCode = readU32(tag, dv, off, len) | 0; break;
    case 0x16: {
      const st = len === 1 ? STATUSES[bytes[off]] : undefined;
      if (!st) throw new AbiError('bad response status');
      target.responseStatus = st;
      break;
    }
    case 0x17: target.responseException = decodeUtf8(bytes, off, end); break;
    case 0x18: target.requestLength = readU32(tag, dv, off, len); break;
    case 0x19: target.responseLength = readU32(tag, dv, off, len); break;
    case 0x1a: target.traceId = decodeUtf8(bytes, off, end); break;
    case 0x1b: target.spanId = decodeUtf8(bytes, off, end); break;
    case 0x1c: target.parentSpanId = decodeUtf8(bytes, off, end); break;
    case 0x1d: target.xRequestId = decodeUtf8(bytes, off, end); break;
    case 0x1e: {
      if (len < 4) throw new AbiError('attribute too short');
      const kl = dv.getUint32(off, true);
      if (kl > len - 4) throw new AbiError('attribute key overruns its record');
      const k = decodeUtf8(bytes, off + 4, off + 4 + kl);
      (target.attributes ??= {})[k] = decodeUtf8(bytes, off + 4 + kl, end);
      break;
    }
    case 0x1f: (target.businessIds ??= []).push(decodeUtf8(bytes, off, end)); break;
    case 0x20: target.truncated = true; break;
    default: break; // unknown tags are skipped: additive fields stay within v1
  }
}

/** Iterates TLV records; throws {@link AbiError} on a record that overruns the buffer. */
function forEachRecord(bytes: Uint8Array, dv: DataView, fn: (tag: number, off: number, len: number) => void): void {
  let o = 0;
  while (o < bytes.length) {
    if (o + 5 > bytes.length) throw new AbiError('truncated record header');
    const tag = bytes[o];
    const len = dv.getUint32(o + 1, true);
    if (len > bytes.length - o - 5) throw new AbiError(`record 0x${tag.toString(16)} overruns the output`);
    fn(tag, o + 5, len);
    o += 5 + len;
  }
}

/** Decodes the output of a `parse` hook: a MESSAGE record opens each message. */
export function decodeMessages(bytes: Uint8Array): PluginMessage[] {
  const out: PluginMessage[] = [];
  let cur: PluginMessage | undefined;
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  forEachRecord(bytes, dv, (tag, off, len) => {
    if (tag === Tag.MESSAGE) {
      if (len !== 1 || bytes[off] > 1) throw new AbiError('bad message record');
      cur = { msgType: bytes[off] === 0 ? 'request' : 'response' };
      out.push(cur);
      return;
    }
    if (!cur) throw new AbiError('field before the first message record');
    applyField(cur, tag, bytes, dv, off, len);
  });
  return out;
}

/** Decodes the output of an HTTP hook. */
export function decodeResult(bytes: Uint8Array): PluginResult {
  const r: PluginResult = {};
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  forEachRecord(bytes, dv, (tag, off, len) => {
    if (tag !== Tag.MESSAGE) applyField(r, tag, bytes, dv, off, len);
  });
  return r;
}

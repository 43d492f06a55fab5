/**
 * OTLP/HTTP trace ingest: `POST /v1/traces` with an ExportTraceServiceRequest, protobuf
 * (`application/x-protobuf`) or JSON (`application/json`), optionally gzip-compressed. Spans land in
 * `riptide.spans` with `signal_source = 'otel'` through the same writer and tag encoder as captured
 * spans (functions/storage/span-writer.ts): a service gets one id whichever way its spans came. They
 * join eBPF spans at assembly time through the trace context the instrumented request carried
 * (assemble.ts, rules `traceparent` and `otel_parent`).
 *
 * The protobuf decoder is a small reader of the wire format for the few OTLP messages involved
 * (field numbers from opentelemetry-proto `trace/v1/trace.proto`, `common/v1/common.proto`).
 *
 * @example
 *   // OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=http://127.0.0.1:8686/v1/traces node app.js
 */
import { gunzipSync } from 'node:zlib';
import type { Hono } from 'hono';
import type { MetricsRegistry } from '../../agent/metrics.ts';
import type { ResponseStatus } from '../../agent/protocols/parser.ts';
import type { SpanRow } from '../span-builder/span-row.ts';
import type { SpanWriter } from '../storage/span-writer.ts';
import type { ReportedTags } from '../tag-encoder/tag-encoder.ts';
import { DEFAULT_LIMITS, bodyLimit, formatBytes } from '../http/body-limit.ts';

export type AttrValue = string | number | boolean | bigint | null | AttrValue[] | { [k: string]: AttrValue };

export interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId: string;
  name: string;
  /** 0 unspecified, 1 internal, 2 server, 3 client, 4 producer, 5 consumer. */
  kind: number;
  startNs: bigint;
  endNs: bigint;
  attributes: Record<string, AttrValue>;
  /** 0 unset, 1 ok, 2 error. */
  statusCode: number;
  statusMessage: string;
  resource: Record<string, AttrValue>;
}

export class OtlpError extends Error {}

// ---- protobuf wire format -------------------------------------------------------------------

class Reader {
  pos = 0;
  constructor(readonly buf: Uint8Array) {}
  get done(): boolean {
    return this.pos >= this.buf.length;
  }
  varint(): bigint {
    let result = 0n;
    let shift = 0n;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.buf.length) throw new OtlpError('truncated varint');
      const b = this.buf[this.pos++];
      result |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) return result;
      shift += 7n;
    }
    throw new OtlpError('varint longer than 10 bytes');
  }
  uint(): number {
    return Number(BigInt.asUintN(64, this.varint()) & 0xffffffffn);
  }
  fixed64(): bigint {
    if (this.pos + 8 > this.buf.length) throw new OtlpError('truncated fixed64');
    const v = new DataView(this.buf.buffer, this.buf.byteOffset + this.pos, 8).getBigUint64(0, true);
    this.pos += 8;
    return v;
  }
  double(): number {
    if (this.pos + 8 > this.buf.length) throw new OtlpError('truncated double');
    const v = new DataView(this.buf.buffer, this.buf.byteOffset + this.pos, 8).getFloat64(0, true);
    this.pos += 8;
    return v;
  }
  bytes(): Uint8Array {
    const n = Number(this.varint());
    if (n < 0 || this.pos + n > this.buf.length) throw new OtlpError('truncated length-delimited field');
    const b = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return b;
  }
  string(): string {
    return new TextDecoder().decode(this.bytes());
  }
  skip(wire: number): void {
    if (wire === 0) this.varint();
    else if (wire === 1) this.pos += 8;
    else if (wire === 2) this.bytes();
    else if (wire === 5) this.pos += 4;
    else throw new OtlpError(`unsupported wire type ${wire}`);
    if (this.pos > this.buf.length) throw new OtlpError('truncated field');
  }
  /** Iterate the fields of this message: (field number, wire type). */
  *fields(): Generator<[number, number]> {
    while (!this.done) {
      const tag = this.uint();
      yield [tag >>> 3, tag & 7];
    }
  }
}

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

function readAnyValue(buf: Uint8Array): AttrValue {
  const r = new Reader(buf);
  let v: AttrValue = null;
  for (const [f, w] of r.fields()) {
    if (f === 1 && w === 2) v = r.string();
    else if (f === 2 && w === 0) v = r.varint() !== 0n;
    else if (f === 3 && w === 0) {
      const i = BigInt.asIntN(64, r.varint());
      v = i >= BigInt(Number.MIN_SAFE_INTEGER) && i <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(i) : i;
    } else if (f === 4 && w === 1) v = r.double();
    else if (f === 5 && w === 2) {
      const arr: AttrValue[] = [];
      const ar = new Reader(r.bytes());
      for (const [af, aw] of ar.fields()) {
        if (af === 1 && aw === 2) arr.push(readAnyValue(ar.bytes()));
        else ar.skip(aw);
      }
      v = arr;
    } else if (f === 6 && w === 2) v = readKeyValues(r.bytes(), 1);
    else if (f === 7 && w === 2) v = hex(r.bytes());
    else r.skip(w);
  }
  return v;
}

/** Repeated KeyValue at `field` of the message in `buf`. */
function readKeyValues(buf: Uint8Array, field: number): Record<string, AttrValue> {
  const out: Record<string, AttrValue> = {};
  const r = new Reader(buf);
  for (const [f, w] of r.fields()) {
    if (f === field && w === 2) {
      const kv = new Reader(r.bytes());
      let key = '';
      let value: AttrValue = null;
      for (const [kf, kw] of kv.fields()) {
        if (kf === 1 && kw === 2) key = kv.string();
        else if (kf === 2 && kw === 2) value = readAnyValue(kv.bytes());
        else kv.skip(kw);
      }
      if (key) out[key] = value;
    } else r.skip(w);
  }
  return out;
}

function readSpan(buf: Uint8Array, resource: Record<string, AttrValue>): OtlpSpan {
  const s: OtlpSpan = { traceId: '', spanId: '', parentSpanId: '', name: '', kind: 0, startNs: 0n, endNs: 0n, attributes: {}, statusCode: 0, statusMessage: '', resource };
  const attrs: Uint8Array[] = [];
  const r = new Reader(buf);
  for (const [f, w] of r.fields()) {
    if (f === 1 && w === 2) s.traceId = hex(r.bytes());
    else if (f === 2 && w === 2) s.spanId = hex(r.bytes());
    else if (f === 4 && w === 2) s.parentSpanId = hex(r.bytes());
    else if (f === 5 && w === 2) s.name = r.string();
    else if (f === 6 && w === 0) s.kind = r.uint();
    else if (f === 7 && w === 1) s.startNs = r.fixed64();
    else if (f === 8 && w === 1) s.endNs = r.fixed64();
    else if (f === 9 && w === 2) attrs.push(r.bytes());
    else if (f === 15 && w === 2) {
      const st = new Reader(r.bytes());
      for (const [sf, sw] of st.fields()) {
        if (sf === 2 && sw === 2) s.statusMessage = st.string();
        else if (sf === 3 && sw === 0) s.statusCode = st.uint();
        else st.skip(sw);
      }
    } else r.skip(w);
  }
  // Attributes are KeyValue messages at field 9: re-wrap each as a one-field message for the reader.
  for (const a of attrs) Object.assign(s.attributes, readKeyValues(wrapField(1, a), 1));
  return s;
}

function wrapField(field: number, payload: Uint8Array): Uint8Array {
  const head: number[] = [(field << 3) | 2];
  let n = payload.length;
  while (n > 0x7f) {
    head.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  head.push(n);
  const out = new Uint8Array(head.length + payload.length);
  out.set(head, 0);
  out.set(payload, head.length);
  return out;
}

/** Decode an ExportTraceServiceRequest in protobuf. */
export function decodeOtlpProtobuf(buf: Uint8Array): OtlpSpan[] {
  const spans: OtlpSpan[] = [];
  const r = new Reader(buf);
  for (const [f, w] of r.fields()) {
    if (f !== 1 || w !== 2) {
      r.skip(w);
      continue;
    }
    const rs = new Reader(r.bytes()); // ResourceSpans
    let resource: Record<string, AttrValue> = {};
    const scopes: Uint8Array[] = [];
    for (const [rf, rw] of rs.fields()) {
      if (rf === 1 && rw === 2) resource = readKeyValues(rs.bytes(), 1);
      else if (rf === 2 && rw === 2) scopes.push(rs.bytes());
      else rs.skip(rw);
    }
    for (const scope of scopes) {
      const ss = new Reader(scope); // ScopeSpans
      for (const [sf, sw] of ss.fields()) {
        if (sf === 2 && sw === 2) spans.push(readSpan(ss.bytes(), resource));
        else ss.skip(sw);
      }
    }
  }
  return spans;
}

// ---- JSON -------------------------------------------------------------------------------------

type Json = Record<string, unknown>;
const obj = (v: unknown): Json => (v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Json) : {});
const arr = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);

function jsonAny(v: unknown): AttrValue {
  const o = obj(v);
  if ('stringValue' in o) return String(o.stringValue);
  if ('boolValue' in o) return o.boolValue === true || o.boolValue === 'true';
  if ('intValue' in o) return Number(o.intValue);
  if ('doubleValue' in o) return Number(o.doubleValue);
  if ('arrayValue' in o) return arr(obj(o.arrayValue).values).map(jsonAny);
  if ('kvlistValue' in o) return jsonKvs(obj(o.kvlistValue).values);
  if ('bytesValue' in o) return String(o.bytesValue);
  return null;
}

function jsonKvs(v: unknown): Record<string, AttrValue> {
  const out: Record<string, AttrValue> = {};
  for (const kv of arr(v)) {
    const k = obj(kv).key;
    if (typeof k === 'string' && k) out[k] = jsonAny(obj(kv).value);
  }
  return out;
}

const KINDS: Record<string, number> = { SPAN_KIND_UNSPECIFIED: 0, SPAN_KIND_INTERNAL: 1, SPAN_KIND_SERVER: 2, SPAN_KIND_CLIENT: 3, SPAN_KIND_PRODUCER: 4, SPAN_KIND_CONSUMER: 5 };
const STATUS: Record<string, number> = { STATUS_CODE_UNSET: 0, STATUS_CODE_OK: 1, STATUS_CODE_ERROR: 2 };

/** OTLP/JSON ids are hex; some senders use base64 (the protobuf JSON mapping): accept both. */
function jsonId(v: unknown, bytes: number): string {
  if (typeof v !== 'string' || v === '') return '';
  if (new RegExp(`^[0-9a-fA-F]{${bytes * 2}}$`).test(v)) return v.toLowerCase();
  const b = Buffer.from(v, 'base64');
  return b.length === bytes ? b.toString('hex') : '';
}

/** Decode an ExportTraceServiceRequest in OTLP/JSON. */
export function decodeOtlpJson(body: unknown): OtlpSpan[] {
  const root = obj(body);
  if (!Array.isArray(root.resourceSpans)) throw new OtlpError('body must be an ExportTraceServiceRequest: {"resourceSpans": [...]}');
  const out: OtlpSpan[] = [];
  for (const rs of arr(root.resourceSpans)) {
    const resource = jsonKvs(obj(obj(rs).resource).attributes);
    for (const ss of arr(obj(rs).scopeSpans)) {
      for (const sp of arr(obj(ss).spans)) {
        const s = obj(sp);
        const status = obj(s.status);
        const kind = typeof s.kind === 'string' ? (KINDS[s.kind] ?? 0) : Number(s.kind ?? 0);
        const code = typeof status.code === 'string' ? (STATUS[status.code] ?? 0) : Number(status.code ?? 0);
        let startNs: bigint;
        let endNs: bigint;
        try {
          startNs = BigInt(String(s.startTimeUnixNano ?? '0'));
          endNs = BigInt(String(s.endTimeUnixNano ?? '0'));
        } catch {
          throw new OtlpError('startTimeUnixNano/endTimeUnixNano must be integers');
        }
        out.push({
          traceId: jsonId(s.traceId, 16),
          spanId: jsonId(s.spanId, 8),
          parentSpanId: jsonId(s.parentSpanId, 8),
          name: typeof s.name === 'string' ? s.name : '',
          kind,
          startNs,
          endNs,
          attributes: jsonKvs(s.attributes),
          statusCode: code,
          statusMessage: typeof status.message === 'string' ? status.message : '',
          resource,
        });
      }
    }
  }
  return out;
}

// ---- mapping to span rows ---------------------------------------------------------------------

function attrString(v: AttrValue | undefined): string {
  if (v === undefined || v === null) return '';
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint') return String(v);
  return JSON.stringify(v, (_k, x: unknown) => (typeof x === 'bigint' ? x.toString() : x));
}

function first(a: Record<string, AttrValue>, ...keys: string[]): string {
  for (const k of keys) {
    const v = attrString(a[k]);
    if (v !== '') return v;
  }
  return '';
}

function protocolOf(a: Record<string, AttrValue>): string {
  const rpc = first(a, 'rpc.system');
  if (rpc === 'grpc') return 'grpc';
  const db = first(a, 'db.system.name', 'db.system').toLowerCase();
  if (db === 'redis') return 'redis';
  if (db === 'postgresql') return 'postgresql';
  if (db === 'mysql' || db === 'mariadb') return 'mysql';
  const mq = first(a, 'messaging.system').toLowerCase();
  if (mq === 'kafka' || mq === 'mqtt') return mq;
  if (first(a, 'http.request.method', 'http.method')) return first(a, 'network.protocol.version', 'http.flavor') === '2' ? 'http2' : 'http1';
  return 'otel';
}

function statusOf(s: OtlpSpan, code: number): ResponseStatus {
  if (code >= 500) return 'server_error';
  if (code >= 400) return 'client_error';
  if (s.statusCode === 2) return 'server_error';
  return 'ok';
}

/**
 * Which span times are taken: from `maxAgeMs` ago (older rows would land in a partition the table's
 * TTL drops at once) to `maxFutureMs` ahead (clock skew; further is a broken clock or garbage).
 * Outside it a span is refused, never clamped: a made-up time would misplace it in every search.
 */
export interface OtlpTimeWindow {
  maxAgeMs: number;
  maxFutureMs: number;
}

/** 7 days is the default span TTL (`--ttl-days`); a server with another TTL passes its own. */
export const DEFAULT_OTLP_WINDOW: Readonly<OtlpTimeWindow> = { maxAgeMs: 7 * 86400e3, maxFutureMs: 3600e3 };

export type OtlpRefusal = 'bad_ids' | 'time_out_of_range';

/** Why a span is refused, or undefined when it is taken. */
export function refuseSpan(s: OtlpSpan, nowMs: number, w: OtlpTimeWindow = DEFAULT_OTLP_WINDOW): { reason: OtlpRefusal; message: string } | undefined {
  if (!/^[0-9a-f]{16}$/.test(s.spanId) || !/^[0-9a-f]{32}$/.test(s.traceId)) return { reason: 'bad_ids', message: 'spans without valid trace/span ids' };
  // Never before 1970, whatever the retention: the TTL reads the time as a DateTime, which starts there.
  const lo = BigInt(Math.max(0, Math.floor(nowMs - w.maxAgeMs))) * 1_000_000n;
  const hi = BigInt(Math.ceil(nowMs + w.maxFutureMs)) * 1_000_000n;
  const iso = (ms: number): string => new Date(ms).toISOString();
  const range = `${iso(Math.max(0, nowMs - w.maxAgeMs))} .. ${iso(nowMs + w.maxFutureMs)}`;
  if (s.startNs <= 0n || s.startNs < lo || s.startNs > hi) return { reason: 'time_out_of_range', message: `startTimeUnixNano ${s.startNs} is outside the accepted window ${range}` };
  // An end before the start is clamped to it below (a zero-length span); one past the window is garbage.
  if (s.endNs > hi) return { reason: 'time_out_of_range', message: `endTimeUnixNano ${s.endNs} is after the accepted window ${range}` };
  return undefined;
}

/** What {@link otlpToRows} did not take: counts by reason and the first span's reason in words. */
export interface OtlpRefused {
  counts: Partial<Record<OtlpRefusal, number>>;
  total: number;
  first?: string;
}

/** An integer status code that fits `response_code Int32`, else -1 (unknown). */
function responseCode(v: string): number {
  const n = Number(v || -1);
  return Number.isInteger(n) && n >= -1 && n <= 0x7fffffff ? n : -1;
}

/**
 * Map decoded OTLP spans to rows of `riptide.spans` (tag ids 0) and, for each row, who its resource
 * says it is ({@link ReportedTags}: what the tag encoder turns into ids).
 */
export function otlpToRows(
  spans: readonly OtlpSpan[],
  nowSec = Math.floor(Date.now() / 1000),
  window: OtlpTimeWindow = DEFAULT_OTLP_WINDOW,
  nowMs = nowSec * 1000,
): { rows: SpanRow[]; reported: ReportedTags[]; refused: OtlpRefused } {
  const rows: SpanRow[] = [];
  const reported: ReportedTags[] = [];
  const refused: OtlpRefused = { counts: {}, total: 0 };
  for (const s of spans) {
    const no = refuseSpan(s, nowMs, window);
    if (no) {
      refused.counts[no.reason] = (refused.counts[no.reason] ?? 0) + 1;
      refused.total++;
      refused.first ??= no.message;
      continue;
    }
    const a = s.attributes;
    const r = s.resource;
    const serviceName = (first(r, 'service.name') || 'unknown_service').slice(0, 256);
    const ns = first(r, 'k8s.namespace.name', 'service.namespace').slice(0, 256);
    const hostName = first(r, 'host.name').slice(0, 256);
    reported.push({ host: hostName, service: serviceName, namespace: ns });
    const startUs = Number(s.startNs / 1000n);
    const endUs = Math.max(startUs, Number(s.endNs / 1000n));
    const client = s.kind === 3 || s.kind === 4;
    const code = responseCode(first(a, 'http.response.status_code', 'http.status_code', 'rpc.grpc.status_code'));
    const attributes: Record<string, string> = { 'otel.name': s.name.slice(0, 256), 'otel.kind': String(s.kind) };
    for (const [k, v] of Object.entries(a).slice(0, 64)) attributes[k.slice(0, 128)] = attrString(v).slice(0, 256);
    const peerIp = first(a, 'server.address', 'net.peer.name', 'net.peer.ip');
    const peerPort = Number(first(a, 'server.port', 'net.peer.port') || 0);
    const fromIp = first(a, 'client.address', 'net.sock.peer.addr', 'http.client_ip');
    rows.push({
      span_id: s.spanId,
      trace_id: s.traceId,
      app_span_id: s.spanId,
      app_parent_span_id: s.parentSpanId,
      signal_source: 'otel',
      agent_id: hostName || 'otel',
      slot: Math.floor(startUs / 1e6),
      start_time_us: startUs,
      end_time_us: endUs,
      duration_us: endUs - startUs,
      side: client ? 'client' : 'server',
      pair_state: 'paired',
      l7_protocol: protocolOf(a),
      version: '',
      request_type: first(a, 'http.request.method', 'http.method', 'db.operation.name', 'db.operation', 'rpc.method', 'messaging.operation').slice(0, 64),
      request_domain: first(a, 'server.address', 'http.host', 'net.peer.name', 'db.namespace', 'db.name').slice(0, 256),
      request_resource: first(a, 'url.path', 'http.target', 'db.query.text', 'db.statement', 'http.route', 'rpc.service', 'messaging.destination.name').slice(0, 1024),
      endpoint: (first(a, 'http.route') || s.name).slice(0, 256),
      request_id: -1,
      response_code: code,
      response_status: statusOf(s, code),
      response_exception: s.statusMessage.slice(0, 1024),
      request_bytes: 0,
      response_bytes: 0,
      process_name: (first(r, 'process.executable.name') || serviceName).slice(0, 128),
      pid: Number(first(r, 'process.pid') || 0) >>> 0,
      tid: Number(first(a, 'thread.id') || 0) >>> 0,
      resp_tid: 0,
      coroutine_id: 0,
      resp_coroutine_id: 0,
      socket_id: 0,
      l4_protocol: 'tcp',
      client_ip: client ? '' : fromIp,
      client_port: 0,
      server_ip: client ? peerIp : '',
      server_port: client ? peerPort & 0xffff : 0,
      req_tcp_seq: 0,
      resp_tcp_seq: 0,
      syscall_trace_id_req: 0,
      syscall_trace_id_resp: 0,
      x_request_id_req: '',
      x_request_id_resp: '',
      handoff_trace_id: 0,
      observation_point: '',
      tcp_retransmits: 0,
      tcp_srtt_us: 0,
      tcp_connect_failures: 0,
      attributes,
      host_id: 0,
      process_id: 0,
      container_id: 0,
      pod_id: 0,
      service_id: 0,
      node_id: 0,
      namespace_id: 0,
      peer_pod_id: 0,
      peer_service_id: 0,
      _version: 1,
      _deleted: 0,
    });
  }
  return { rows, reported, refused };
}

export const OTLP_PATH = '/v1/traces';

/** 20000 days, the longest TTL migrations take. */
const MAX_WINDOW_MS = 20_000 * 86400e3;

export interface OtlpOptions {
  /** Encodes tags and writes the rows: the functions' writer under `riptide up`, one of the query server's own otherwise. */
  writer: SpanWriter;
  metrics: MetricsRegistry;
  /** Cap on the body, on the wire and after gunzip (default DEFAULT_LIMITS.otlpBytes, 16 MiB). */
  maxBodyBytes?: number;
  window?: Partial<OtlpTimeWindow>;
}

export function mountOtlp(app: Hono, o: OtlpOptions): void {
  const received = o.metrics.counter('riptide_otlp_received_total', 'OTLP spans received');
  const stored = o.metrics.counter('riptide_otlp_sent_total', 'OTLP spans written to riptide.spans');
  const errors = o.metrics.counter('riptide_otlp_errors_total', 'OTLP requests refused, by reason');
  const dropped = o.metrics.counter('riptide_otlp_dropped_total', 'OTLP spans dropped, by reason');
  const maxBody = o.maxBodyBytes ?? DEFAULT_LIMITS.otlpBytes;
  const window: OtlpTimeWindow = { ...DEFAULT_OTLP_WINDOW, ...o.window };
  for (const v of [window.maxAgeMs, window.maxFutureMs]) if (!(v >= 0 && v <= MAX_WINDOW_MS)) throw new RangeError(`OTLP time window bounds must be ms in 0..${MAX_WINDOW_MS}, got ${v}`);
  const limit = bodyLimit({
    maxBytes: maxBody,
    limit: 'otlp',
    metrics: o.metrics,
    respond: (c, message) => {
      errors.inc({ reason: 'too_large' });
      return c.json({ error: message }, 413);
    },
  });

  app.post(OTLP_PATH, limit, async (c) => {
    const type = (c.req.header('content-type') ?? '').split(';')[0].trim().toLowerCase();
    const proto = type === 'application/x-protobuf' || type === 'application/protobuf';
    if (!proto && type !== 'application/json') {
      errors.inc({ reason: 'content_type' });
      return c.json({ error: 'content-type must be application/x-protobuf or application/json' }, 415);
    }
    let body: Uint8Array = new Uint8Array(await c.req.arrayBuffer());
    if ((c.req.header('content-encoding') ?? '').toLowerCase() === 'gzip') {
      try {
        body = gunzipSync(body, { maxOutputLength: maxBody });
      } catch (err) {
        if ((err as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE') {
          errors.inc({ reason: 'too_large' });
          return c.json({ error: `gzip body inflates past ${formatBytes(maxBody)} (the otlp limit)` }, 413);
        }
        errors.inc({ reason: 'gzip' });
        return c.json({ error: `bad gzip body: ${(err as Error).message}` }, 400);
      }
    }
    let spans: OtlpSpan[];
    try {
      spans = proto ? decodeOtlpProtobuf(body) : decodeOtlpJson(JSON.parse(new TextDecoder().decode(body)) as unknown);
    } catch (err) {
      errors.inc({ reason: 'decode' });
      return c.json({ error: `cannot decode ExportTraceServiceRequest: ${(err as Error).message}` }, 400);
    }
    received.inc(undefined, spans.length);
    const { rows, reported, refused } = otlpToRows(spans, Math.floor(Date.now() / 1000), window, Date.now());
    for (const [reason, n] of Object.entries(refused.counts)) dropped.inc({ reason }, n);
    if (rows.length === 0 && refused.total > 0) {
      // Nothing to take: a bad request (OTLP: 400 is final, the exporter does not retry it).
      errors.inc({ reason: 'all_spans_refused' });
      return c.json({ error: `all ${refused.total} spans refused: ${refused.first ?? ''}` }, 400);
    }
    await o.writer.ingestReported(rows, reported, (n) => stored.inc(undefined, n));
    const rejected = refused.total;
    if (proto) {
      // ExportTraceServiceResponse: empty, or partial_success { rejected_spans = 1, error_message = 2 } at field 1.
      const msg = new TextEncoder().encode(refused.first ?? '');
      const partial = Uint8Array.from([0x08, ...varintBytes(rejected), 0x12, ...varintBytes(msg.length), ...msg]);
      const out = rejected > 0 ? wrapField(1, partial) : new Uint8Array(0);
      return c.body(out as Uint8Array<ArrayBuffer>, 200, { 'content-type': 'application/x-protobuf' });
    }
    return c.json(rejected > 0 ? { partialSuccess: { rejectedSpans: String(rejected), errorMessage: refused.first ?? '' } } : {});
  });
}

function varintBytes(n: number): number[] {
  const out: number[] = [];
  while (n > 0x7f) {
    out.push((n & 0x7f) | 0x80);
    n = Math.floor(n / 128);
  }
  out.push(n);
  return out;
}

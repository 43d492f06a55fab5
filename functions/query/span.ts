/**
 * The span as the query side reads it from `riptide.spans` ({@link SpanRecord}) and as the HTTP API
 * returns it ({@link SpanJson}, the "Stable contract" of DESIGN.md plus a few extra fields).
 */

import { SPAN_COLUMNS_CATALOGUE, spanRowKey } from '../../agent/contract/fields.ts';

/** What trace assembly looks at. Every field is a column of `riptide.spans` (times in µs). */
export interface AsmSpan {
  span_id: string;
  /** Application trace id (traceparent, B3, OTel); '' when none. */
  trace_id: string;
  /** eBPF: the parent-id the request carried in its trace header; OTel: the span's own id. */
  app_span_id: string;
  app_parent_span_id: string;
  signal_source: 'ebpf' | 'otel' | 'net';
  agent_id: string;
  start_time_us: number;
  end_time_us: number;
  side: 'client' | 'server';
  l7_protocol: string;
  l4_protocol: string;
  /** DNS id, HTTP/2 stream, Kafka correlation id; -1 when none. */
  request_id: number;
  pid: number;
  tid: number;
  resp_tid: number;
  client_port: number;
  server_port: number;
  req_tcp_seq: number;
  resp_tcp_seq: number;
  syscall_trace_id_req: number;
  syscall_trace_id_resp: number;
  x_request_id_req: string;
  x_request_id_resp: string;
  /** Client span: syscall-trace id a wake-up handed to the thread that sent the request (`handoff` rule); server span: the wake-back its answer carried (`handback` rule). 0 or absent when none. */
  handoff_trace_id?: number;
  /** URL path, Redis command, SQL…: only the `content` rule reads it (ids that reappear in a call). */
  request_resource?: string;
  /** Goroutine of the request bytes and of the response bytes (Go processes, issue 15); 0 or absent elsewhere. */
  coroutine_id?: number;
  resp_coroutine_id?: number;
  /** Smart-encoded host and process: with the minute, the table's sorting key (thread probes use it). */
  host_id: number;
  process_id: number;
}

/** One row of `riptide.spans` as selected by {@link SPAN_COLUMNS}. */
export interface SpanRecord extends AsmSpan {
  duration_us: number;
  pair_state: string;
  version: string;
  request_type: string;
  request_domain: string;
  request_resource: string;
  endpoint: string;
  response_code: number;
  response_status: string;
  response_exception: string;
  request_bytes: number;
  response_bytes: number;
  process_name: string;
  coroutine_id: number;
  client_ip: string;
  server_ip: string;
  attributes: Record<string, string>;
  service_id: number;
  peer_service_id: number;
  pod_id: number;
  _version: number;
  _deleted: number;
}

/** The select list that yields a {@link SpanRecord}: the catalogue's queried columns (agent/contract/fields.ts). */
export const SPAN_COLUMNS = SPAN_COLUMNS_CATALOGUE.filter((c) => c.queried).map((c) => c.select ?? c.column).join(', ');

/** A span in the HTTP API. */
export interface SpanJson {
  span_id: string;
  parent_id: string | null;
  trace_id: string | null;
  start_time_us: number;
  end_time_us: number;
  duration_us: number;
  side: 'client' | 'server';
  signal_source: 'ebpf' | 'otel' | 'net';
  l7_protocol: string;
  request_type: string;
  request_domain: string;
  request_resource: string;
  endpoint: string;
  response_code: number | null;
  response_status: string;
  response_exception: string;
  process_name: string;
  pid: number;
  tid: number;
  client_ip: string;
  client_port: number;
  server_ip: string;
  server_port: number;
  req_tcp_seq: number;
  resp_tcp_seq: number;
  x_request_id: string | null;
  service: string | null;
  /** Extra: which assembly rule chose the parent (docs/TRACE-ASSEMBLY.md); null for a root or a search hit. */
  parent_rule: string | null;
  /** Extra: how likely that parent is right, 0–1 (docs/TRACE-ASSEMBLY.md); null with `parent_rule`. */
  parent_confidence: number | null;
  agent_id: string;
  pair_state: string;
  /** Protocol version the messages said ('1.1', '2', Kafka api_version, MQTT '3.1.1' / '5'); '' when none. */
  version: string;
  syscall_trace_id_req: number;
  syscall_trace_id_resp: number;
  /** Client span: syscall-trace id a wake-up handed to the thread that sent the request; server span: the wake-back its answer carried. 0 when none. */
  handoff_trace_id: number;
  app_span_id: string;
  app_parent_span_id: string;
  request_bytes: number;
  response_bytes: number;
  attributes: Record<string, string>;
  /** Network spans (issue 19): the interface that saw the exchange; '' for process spans. */
  observation_point: string;
  tcp_retransmits: number;
  tcp_srtt_us: number;
  tcp_connect_failures: number;
  /** Extra, on a client span with network spans below it in a trace: where its time went (µs). */
  hop_split?: { client_us: number; network_us: number; server_us: number | null };
}

/** Columns the span JSON passes through as they are: `[json name, SpanRecord key]`, from the catalogue. */
const PASSTHROUGH: ReadonlyArray<readonly [string, keyof SpanRecord]> = SPAN_COLUMNS_CATALOGUE.filter((c) => c.json !== null && c.queried).map((c) => [c.json as string, spanRowKey(c) as keyof SpanRecord]);

export function toSpanJson(r: SpanRecord, service: string | null, extra?: { parent_id: string | null; trace_id: string; parent_rule: string | null; parent_confidence: number | null; hop_split?: SpanJson['hop_split'] }): SpanJson {
  const out: Record<string, unknown> = {
    span_id: r.span_id,
    parent_id: extra ? extra.parent_id : null,
    trace_id: extra ? extra.trace_id : r.trace_id || null,
  };
  for (const [json, key] of PASSTHROUGH) out[json] = r[key];
  // The computed ones.
  out.response_code = r.response_code < 0 ? null : r.response_code;
  out.x_request_id = r.x_request_id_req || r.x_request_id_resp || null;
  out.service = service;
  out.parent_rule = extra ? extra.parent_rule : null;
  out.parent_confidence = extra ? extra.parent_confidence : null;
  out.version = r.version ?? '';
  out.attributes = r.attributes ?? {};
  if (extra?.hop_split) out.hop_split = extra.hop_split;
  return out as unknown as SpanJson;
}

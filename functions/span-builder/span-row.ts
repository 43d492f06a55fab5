/**
 * One row of `riptide.spans`, exactly as inserted (snake_case = column names). The span builder
 * fills the request/response fields, the tag encoder fills the `*_id` tag columns, storage adds
 * nothing: every value here is a pure function of the batches in the slot window, so re-processing
 * yields byte-identical rows (see docs/FUNCTIONS.md, "Idempotency").
 */
import type { ResponseStatus } from '../../agent/protocols/parser.ts';

export type SpanSide = 'client' | 'server';
/**
 * How the span came about: a request and its response (`paired`); a request with no response in
 * the window or within the protocol's timeout (`request_only`, status `timeout`); a response whose
 * request was not seen (`response_only`); a request the protocol never answers (`one_way`).
 */
export type PairState = 'paired' | 'request_only' | 'response_only' | 'one_way';

export interface SpanRow {
  /** 16 lower-case hex digits; deterministic from (agent, socket, request seq/time, index). */
  span_id: string;
  /** Application trace id carried by the request or response (W3C, B3, uber, sw8); '' when none. */
  trace_id: string;
  app_span_id: string;
  app_parent_span_id: string;
  signal_source: 'ebpf' | 'otel';
  agent_id: string;
  /** Slot of the batch that owns the span (the request's slot; the response's for response_only). */
  slot: number;
  /** Microseconds since the epoch. Stored as DateTime64(6). */
  start_time_us: number;
  end_time_us: number;
  duration_us: number;
  side: SpanSide;
  pair_state: PairState;
  l7_protocol: string;
  version: string;
  request_type: string;
  request_domain: string;
  request_resource: string;
  endpoint: string;
  /** For parallel protocols (HTTP/2 stream, DNS id, Kafka correlation id); -1 when none. */
  request_id: number;
  /** -1 when the protocol gave none. */
  response_code: number;
  response_status: ResponseStatus;
  response_exception: string;
  request_bytes: number;
  response_bytes: number;
  process_name: string;
  pid: number;
  /** Thread (and coroutine) that moved the request bytes, and the one that moved the response. */
  tid: number;
  resp_tid: number;
  coroutine_id: number;
  resp_coroutine_id: number;
  socket_id: number;
  l4_protocol: 'tcp' | 'udp';
  client_ip: string;
  client_port: number;
  server_ip: string;
  server_port: number;
  req_tcp_seq: number;
  resp_tcp_seq: number;
  syscall_trace_id_req: number;
  syscall_trace_id_resp: number;
  x_request_id_req: string;
  x_request_id_resp: string;
  attributes: Record<string, string>;
  /** Smart-encoded tags (0 = unknown): dense per-kind ids (functions/tag-encoder/tag-ids.ts); names in `riptide.tag_names`. */
  host_id: number;
  process_id: number;
  container_id: number;
  pod_id: number;
  service_id: number;
  node_id: number;
  namespace_id: number;
  peer_pod_id: number;
  peer_service_id: number;
  /** ReplacingMergeTree version: how many batch objects the window held (more = better informed). */
  _version: number;
  /** 1 = tombstone: hides a row an earlier, less informed run wrote (a response_only later paired). */
  _deleted: number;
}

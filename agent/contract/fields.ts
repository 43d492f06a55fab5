/**
 * The field catalogue: every fact about an application-message (L7) field and a span column, in
 * one place. Everything else is derived from it, at load or by `agent/contract/gen-contract.ts`
 * (generated regions, committed; `agent/contract/gen-contract.test.ts` fails when they drift):
 *
 *   - the RTB batch format's L7 record (presence bit, format version, order): agent/shipping/codec.ts
 *   - the plugin ABI tags: sdk-plugin/src/abi.ts (host) and sdk-plugin/assembly/abi.ts (guest)
 *   - the NDJSON keys of `riptide agent --output`: agent/ndjson-output.ts
 *   - the conformance suite's field checks: agent/protocols/conformance.ts
 *   - `SpanRow` (functions/span-builder/span-row.ts) and `SPAN_COLUMNS` (functions/query/span.ts)
 *   - the `riptide.spans` columns and types the migrations must produce (checked against chDB)
 *
 * How to add an L7 field: one line in {@link L7_FIELDS} (the next free `rtbBit`, `rtbSince` = the
 * new RTB format version if the bit is new to the format, an `abiTag` if plugins may set it), the
 * property in `L7Message`, `npx tsx agent/contract/gen-contract.ts`. A span column: one line in
 * {@link SPAN_COLUMNS_CATALOGUE}, a migration adding it, regenerate. See docs/ARCHITECTURE.md.
 *
 * @example
 *   for (const f of L7_FIELDS) console.log(f.key, f.ndjson, f.rtbBit);
 */
import type { L7Message } from '../protocols/parser.ts';

/** How a field is typed on every wire. */
export type L7FieldKind =
  /** A string. */
  | 'string'
  /** Any JS number (RTB: varint or float64; ABI: u32, i32 for response codes). */
  | 'number'
  /** A boolean that is only ever `true` when present (RTB: the presence bit alone). */
  | 'flag'
  /** `ResponseStatus`, an index into {@link RESPONSE_STATUSES}. */
  | 'status'
  /** `Record<string, string>`. */
  | 'attributes'
  /** `MsgType`: request (bit clear) or response (bit set). */
  | 'msgType';

export interface L7FieldSpec {
  /** The `L7Message` property. */
  readonly key: keyof L7Message;
  readonly kind: L7FieldKind;
  /**
   * RTB presence bit; -1 for `l7Protocol`, which is always written first. Payloads follow the
   * protocol name in bit order. Append only: a bit is part of the format version that introduced it.
   */
  readonly rtbBit: number;
  /** The RTB format version that introduced the field. */
  readonly rtbSince: number;
  /** Key in the NDJSON of `riptide agent --output`. */
  readonly ndjson: string;
  /** Plugin ABI v1 TLV tag, when a plugin may set the field (additive tags stay within v1). */
  readonly abiTag?: number;
  /** Name of the tag constant in the ABI files. */
  readonly abiName?: string;
  /** The span columns the field ends up in ('' = not stored: only the agent's output shows it). */
  readonly spanColumns: readonly string[];
  readonly doc: string;
}

/** In RTB bit order. */
export const L7_FIELDS: readonly L7FieldSpec[] = [
  { key: 'l7Protocol', kind: 'string', rtbBit: -1, rtbSince: 1, ndjson: 'l7_protocol', abiTag: 0x21, abiName: 'L7_PROTOCOL', spanColumns: ['l7_protocol'], doc: 'Protocol name (http1 http2 grpc dns redis mysql postgresql kafka mqtt, or a plugin)' },
  { key: 'msgType', kind: 'msgType', rtbBit: 16, rtbSince: 1, ndjson: 'msg_type', spanColumns: [], doc: 'request or response (decides pairing, not stored)' },
  { key: 'requestType', kind: 'string', rtbBit: 0, rtbSince: 1, ndjson: 'request_type', abiTag: 0x10, abiName: 'REQUEST_TYPE', spanColumns: ['request_type'], doc: 'Method, command, opcode, query type' },
  { key: 'requestDomain', kind: 'string', rtbBit: 1, rtbSince: 1, ndjson: 'request_domain', abiTag: 0x11, abiName: 'REQUEST_DOMAIN', spanColumns: ['request_domain'], doc: 'Host, authority, database, client id, query name' },
  { key: 'requestResource', kind: 'string', rtbBit: 2, rtbSince: 1, ndjson: 'request_resource', abiTag: 0x12, abiName: 'REQUEST_RESOURCE', spanColumns: ['request_resource'], doc: 'Path, statement, key, topic' },
  { key: 'endpoint', kind: 'string', rtbBit: 3, rtbSince: 1, ndjson: 'endpoint', abiTag: 0x13, abiName: 'ENDPOINT', spanColumns: ['endpoint'], doc: 'Normalised resource (route, RPC method)' },
  { key: 'requestId', kind: 'number', rtbBit: 4, rtbSince: 1, ndjson: 'request_id', abiTag: 0x14, abiName: 'REQUEST_ID', spanColumns: ['request_id'], doc: 'Id pairing a response to its request (HTTP/2 stream, DNS id, Kafka correlation id)' },
  { key: 'responseCode', kind: 'number', rtbBit: 5, rtbSince: 1, ndjson: 'response_code', abiTag: 0x15, abiName: 'RESPONSE_CODE', spanColumns: ['response_code'], doc: 'Status code, error number, rcode' },
  { key: 'responseStatus', kind: 'status', rtbBit: 6, rtbSince: 1, ndjson: 'response_status', abiTag: 0x16, abiName: 'RESPONSE_STATUS', spanColumns: ['response_status'], doc: 'ok client_error server_error timeout unknown' },
  { key: 'responseException', kind: 'string', rtbBit: 7, rtbSince: 1, ndjson: 'response_exception', abiTag: 0x17, abiName: 'RESPONSE_EXCEPTION', spanColumns: ['response_exception'], doc: 'Error message' },
  { key: 'requestLength', kind: 'number', rtbBit: 8, rtbSince: 1, ndjson: 'request_length', abiTag: 0x18, abiName: 'REQUEST_LENGTH', spanColumns: ['request_bytes'], doc: 'Request length on the wire when the protocol says' },
  { key: 'responseLength', kind: 'number', rtbBit: 9, rtbSince: 1, ndjson: 'response_length', abiTag: 0x19, abiName: 'RESPONSE_LENGTH', spanColumns: ['response_bytes'], doc: 'Response length on the wire when the protocol says' },
  { key: 'traceId', kind: 'string', rtbBit: 10, rtbSince: 1, ndjson: 'trace_id', abiTag: 0x1a, abiName: 'TRACE_ID', spanColumns: ['trace_id'], doc: 'Trace id the message carried (W3C, B3, uber-trace-id, sw8)' },
  { key: 'spanId', kind: 'string', rtbBit: 11, rtbSince: 1, ndjson: 'span_id', abiTag: 0x1b, abiName: 'SPAN_ID', spanColumns: ['app_span_id'], doc: 'Span id the message carried' },
  { key: 'parentSpanId', kind: 'string', rtbBit: 12, rtbSince: 1, ndjson: 'parent_span_id', abiTag: 0x1c, abiName: 'PARENT_SPAN_ID', spanColumns: ['app_parent_span_id'], doc: 'Parent span id the message carried' },
  { key: 'xRequestId', kind: 'string', rtbBit: 13, rtbSince: 1, ndjson: 'x_request_id', abiTag: 0x1d, abiName: 'X_REQUEST_ID', spanColumns: ['x_request_id_req', 'x_request_id_resp'], doc: 'X-Request-ID header' },
  { key: 'attributes', kind: 'attributes', rtbBit: 14, rtbSince: 1, ndjson: 'attributes', abiTag: 0x1e, abiName: 'ATTRIBUTE', spanColumns: ['attributes'], doc: 'Configured extra headers and plugin attributes' },
  { key: 'truncated', kind: 'flag', rtbBit: 15, rtbSince: 1, ndjson: 'truncated', abiTag: 0x20, abiName: 'TRUNCATED', spanColumns: [], doc: 'Cut short by the capture limit' },
  { key: 'oneWay', kind: 'flag', rtbBit: 17, rtbSince: 2, ndjson: 'one_way', abiTag: 0x22, abiName: 'ONE_WAY', spanColumns: ['pair_state'], doc: 'A request the protocol never answers: its span closes at once (pair_state one_way)' },
  { key: 'version', kind: 'string', rtbBit: 18, rtbSince: 2, ndjson: 'version', abiTag: 0x23, abiName: 'VERSION', spanColumns: ['version'], doc: 'Protocol version (HTTP 1.0/1.1/2, Kafka api_version, MQTT 3.1.1/5.0)' },
  { key: 'tls', kind: 'flag', rtbBit: 19, rtbSince: 3, ndjson: 'tls', spanColumns: ['attributes'], doc: "Decoded from the plaintext of a TLS connection (TLS uprobes; span attribute tls = 'true')" },
];

/** ABI tags that are not L7 fields. */
export const ABI_EXTRA_TAGS: ReadonlyArray<{ name: string; tag: number; doc: string }> = [
  { name: 'MESSAGE', tag: 0x01, doc: 'opens a message of a parse result: u8 0 request, 1 response' },
  { name: 'BUSINESS_ID', tag: 0x1f, doc: 'a business id from an HTTP hook (stored in the biz_id attribute)' },
];

/** `ResponseStatus` values by wire index (RTB and ABI alike). Append only. */
export const RESPONSE_STATUSES = ['ok', 'client_error', 'server_error', 'timeout', 'unknown'] as const;

/**
 * Capture-level message fields added to the RTB format after version 1, written after
 * `syscallTraceId` in this order (agent/shipping/codec.ts writeMessage). Append only.
 */
export const RTB_MESSAGE_FIELDS: ReadonlyArray<{ key: 'handoffTraceId' | 'observationPoint' | 'tcpRetransmits' | 'tcpSrttUs' | 'connectFailed'; rtbSince: number; doc: string }> = [
  { key: 'handoffTraceId', rtbSince: 3, doc: 'Syscall-trace id a wake-up handed to the sending thread (hand-off tracking; on an answer, the wake-back of the thread whose result it waited for); 0 when none' },
  { key: 'observationPoint', rtbSince: 4, doc: "Network messages (issue 19): the interface whose TC hook saw the packet; '' for syscalls" },
  { key: 'tcpRetransmits', rtbSince: 4, doc: "Segments the message's connection retransmitted since its previous message (TCP health: each retransmit is told once); 0 when none or unknown" },
  { key: 'tcpSrttUs', rtbSince: 4, doc: "Smoothed RTT last read from the connection's socket, µs; 0 when unknown" },
  { key: 'connectFailed', rtbSince: 4, doc: 'A connect that failed (SYN_SENT -> CLOSE): a payload-less message with a tcp CONNECT record' },
];

/**
 * Batch-level sections added to the RTB format, written after the closed sockets in this order
 * (agent/shipping/codec/writer.ts writeTail). Append only.
 */
export const RTB_BATCH_SECTIONS: ReadonlyArray<{ key: 'descriptors'; rtbSince: number; doc: string }> = [
  { key: 'descriptors', rtbSince: 4, doc: 'The protocol descriptors of the protocols in the batch (built-ins and plugins): how the span builder pairs them' },
];

/** The RTB format version the writer writes: the highest `rtbSince` of an L7 or message field or a batch section. */
export const RTB_L7_VERSION = Math.max(...L7_FIELDS.map((f) => f.rtbSince), ...RTB_MESSAGE_FIELDS.map((f) => f.rtbSince), ...RTB_BATCH_SECTIONS.map((f) => f.rtbSince));

/** Presence bits a reader of RTB format `version` accepts. */
export function rtbKnownBits(version: number): number {
  let bits = 0;
  for (const f of L7_FIELDS) if (f.rtbBit >= 0 && f.rtbSince <= version) bits |= 1 << f.rtbBit;
  return bits;
}

/** L7 fields of one kind, in catalogue order (the conformance suite's lists). */
export function l7FieldsOfKind(kind: L7FieldKind): Array<keyof L7Message> {
  return L7_FIELDS.filter((f) => f.kind === kind).map((f) => f.key);
}

/** A column of `riptide.spans` and its place in `SpanRow`, the query's select list and the span JSON. */
export interface SpanColumnSpec {
  /** Column name in ClickHouse. */
  readonly column: string;
  /** ClickHouse type after every migration (as `DESCRIBE TABLE` spells it, codecs aside). */
  readonly chType: string;
  /** TypeScript type of the `SpanRow` property. */
  readonly tsType: string;
  /** `SpanRow` property and select alias when it differs from the column (times in µs). */
  readonly rowKey?: string;
  /** Select expression producing `rowKey` (the column when absent). */
  readonly select?: string;
  /** Whether `SPAN_COLUMNS` (the query's select list, {@link SpanRecord}) reads it. */
  readonly queried: boolean;
  /** Key in the API's span JSON when it is passed through as is; null when not exposed or computed. */
  readonly json: string | null;
  readonly doc: string;
}

const tags = ['host', 'process', 'container', 'pod', 'service', 'node', 'namespace', 'peer_pod', 'peer_service'];
const QUERIED_TAGS = new Set(['host', 'process', 'service', 'peer_service', 'pod']);

/** In table order. */
export const SPAN_COLUMNS_CATALOGUE: readonly SpanColumnSpec[] = [
  { column: 'span_id', chType: 'String', tsType: 'string', queried: true, json: 'span_id', doc: '16 lower-case hex digits; deterministic from (agent, socket, request seq/time, index).' },
  { column: 'trace_id', chType: 'String', tsType: 'string', queried: true, json: null, doc: "Application trace id carried by the request or response (W3C, B3, uber, sw8); '' when none." },
  { column: 'app_span_id', chType: 'String', tsType: 'string', queried: true, json: 'app_span_id', doc: 'Span id the request carried in its trace header (OTel: the span\'s own id).' },
  { column: 'app_parent_span_id', chType: 'String', tsType: 'string', queried: true, json: 'app_parent_span_id', doc: 'Parent span id the request carried.' },
  { column: 'signal_source', chType: 'LowCardinality(String)', tsType: "'ebpf' | 'otel' | 'net'", queried: true, json: 'signal_source', doc: 'Where the span came from: ebpf (a process\'s syscalls), net (a network interface, observation_point), otel.' },
  { column: 'agent_id', chType: 'LowCardinality(String)', tsType: 'string', queried: true, json: 'agent_id', doc: 'The agent that captured it.' },
  { column: 'slot', chType: 'UInt64', tsType: 'number', queried: false, json: null, doc: "Slot of the batch that owns the span (the request's slot; the response's for response_only)." },
  { column: 'start_time', chType: "DateTime64(6, 'UTC')", tsType: 'number', rowKey: 'start_time_us', select: 'toUnixTimestamp64Micro(start_time) AS start_time_us', queried: true, json: 'start_time_us', doc: 'Microseconds since the epoch. Stored as DateTime64(6).' },
  { column: 'end_time', chType: "DateTime64(6, 'UTC')", tsType: 'number', rowKey: 'end_time_us', select: 'toUnixTimestamp64Micro(end_time) AS end_time_us', queried: true, json: 'end_time_us', doc: 'Microseconds since the epoch. Stored as DateTime64(6).' },
  { column: 'duration_us', chType: 'UInt64', tsType: 'number', queried: true, json: 'duration_us', doc: 'end - start, µs.' },
  { column: 'side', chType: "Enum8('client' = 1, 'server' = 2)", tsType: 'SpanSide', queried: true, json: 'side', doc: 'Which end of the socket captured it.' },
  { column: 'pair_state', chType: "Enum8('paired' = 0, 'request_only' = 1, 'response_only' = 2, 'one_way' = 3)", tsType: 'PairState', queried: true, json: 'pair_state', doc: 'How the span came about (see PairState).' },
  { column: 'l7_protocol', chType: 'LowCardinality(String)', tsType: 'string', queried: true, json: 'l7_protocol', doc: 'Protocol name.' },
  { column: 'version', chType: 'LowCardinality(String)', tsType: 'string', queried: true, json: 'version', doc: "Protocol version the request (else the response) said; '' when none." },
  { column: 'request_type', chType: 'LowCardinality(String)', tsType: 'string', queried: true, json: 'request_type', doc: 'Method, command, opcode, query type.' },
  { column: 'request_domain', chType: 'String', tsType: 'string', queried: true, json: 'request_domain', doc: 'Host, authority, database, topic, query name.' },
  { column: 'request_resource', chType: 'String', tsType: 'string', queried: true, json: 'request_resource', doc: 'Path, statement, key, topic.' },
  { column: 'endpoint', chType: 'String', tsType: 'string', queried: true, json: 'endpoint', doc: 'Normalised resource.' },
  { column: 'request_id', chType: 'Int64', tsType: 'number', queried: true, json: null, doc: 'For parallel protocols (HTTP/2 stream, DNS id, Kafka correlation id); -1 when none.' },
  { column: 'response_code', chType: 'Int32', tsType: 'number', queried: true, json: null, doc: '-1 when the protocol gave none (JSON: null).' },
  { column: 'response_status', chType: "Enum8('ok' = 0, 'client_error' = 1, 'server_error' = 2, 'timeout' = 3, 'unknown' = 4)", tsType: 'ResponseStatus', queried: true, json: 'response_status', doc: 'ok client_error server_error timeout unknown.' },
  { column: 'response_exception', chType: 'String', tsType: 'string', queried: true, json: 'response_exception', doc: 'Error message.' },
  { column: 'request_bytes', chType: 'UInt64', tsType: 'number', queried: true, json: 'request_bytes', doc: 'Request length (the protocol\'s, else the bytes captured).' },
  { column: 'response_bytes', chType: 'UInt64', tsType: 'number', queried: true, json: 'response_bytes', doc: 'Response length (the protocol\'s, else the bytes captured).' },
  { column: 'process_name', chType: 'LowCardinality(String)', tsType: 'string', queried: true, json: 'process_name', doc: 'Process that moved the bytes.' },
  { column: 'pid', chType: 'UInt32', tsType: 'number', queried: true, json: 'pid', doc: 'Its pid.' },
  { column: 'tid', chType: 'UInt32', tsType: 'number', queried: true, json: 'tid', doc: 'Thread (and coroutine) that moved the request bytes, and the one that moved the response.' },
  { column: 'resp_tid', chType: 'UInt32', tsType: 'number', queried: true, json: null, doc: 'Thread that moved the response bytes.' },
  { column: 'coroutine_id', chType: 'UInt64', tsType: 'number', queried: true, json: null, doc: 'Coroutine (goroutine) of the request.' },
  { column: 'resp_coroutine_id', chType: 'UInt64', tsType: 'number', queried: false, json: null, doc: 'Coroutine of the response.' },
  { column: 'socket_id', chType: 'UInt64', tsType: 'number', queried: false, json: null, doc: 'Kernel socket id.' },
  { column: 'l4_protocol', chType: 'LowCardinality(String)', tsType: "'tcp' | 'udp'", queried: true, json: null, doc: 'tcp or udp.' },
  { column: 'client_ip', chType: 'String', tsType: 'string', queried: true, json: 'client_ip', doc: 'Client address.' },
  { column: 'client_port', chType: 'UInt16', tsType: 'number', queried: true, json: 'client_port', doc: 'Client port.' },
  { column: 'server_ip', chType: 'String', tsType: 'string', queried: true, json: 'server_ip', doc: 'Server address.' },
  { column: 'server_port', chType: 'UInt16', tsType: 'number', queried: true, json: 'server_port', doc: 'Server port.' },
  { column: 'req_tcp_seq', chType: 'UInt32', tsType: 'number', queried: true, json: 'req_tcp_seq', doc: 'TCP sequence of the request bytes.' },
  { column: 'resp_tcp_seq', chType: 'UInt32', tsType: 'number', queried: true, json: 'resp_tcp_seq', doc: 'TCP sequence of the response bytes.' },
  { column: 'syscall_trace_id_req', chType: 'UInt64', tsType: 'number', queried: true, json: 'syscall_trace_id_req', doc: 'Thread-flow id of the request syscall.' },
  { column: 'syscall_trace_id_resp', chType: 'UInt64', tsType: 'number', queried: true, json: 'syscall_trace_id_resp', doc: 'Thread-flow id of the response syscall.' },
  { column: 'x_request_id_req', chType: 'String', tsType: 'string', queried: true, json: null, doc: 'X-Request-ID of the request (JSON: x_request_id, either side).' },
  { column: 'x_request_id_resp', chType: 'String', tsType: 'string', queried: true, json: null, doc: 'X-Request-ID of the response.' },
  { column: 'attributes', chType: 'Map(LowCardinality(String), String)', tsType: 'Record<string, string>', queried: true, json: 'attributes', doc: 'Extra headers and plugin attributes.' },
  ...tags.map((t): SpanColumnSpec => ({ column: `${t}_id`, chType: 'UInt64', tsType: 'number', queried: QUERIED_TAGS.has(t), json: null, doc: t === 'host' ? 'Smart-encoded tags (0 = unknown): dense per-kind ids (functions/tag-encoder/tag-ids.ts); names in `riptide.tag_names`.' : `Smart-encoded ${t.replace('_', ' ')} tag.` })),
  { column: '_version', chType: 'UInt32', tsType: 'number', queried: true, json: null, doc: 'ReplacingMergeTree version: how many batch objects the window held (more = better informed).' },
  { column: '_deleted', chType: 'UInt8', tsType: 'number', queried: true, json: null, doc: '1 = tombstone: hides a row an earlier, less informed run wrote (a response_only later paired).' },
  { column: 'handoff_trace_id', chType: 'UInt64', tsType: 'number', queried: true, json: 'handoff_trace_id', doc: 'Client span: syscall-trace id a wake-up handed to the thread that sent the request (a pool reader waking a worker; `--handoff`). Server span: the id its answer carried from the thread that woke the answering thread right before (a worker completing the result its reader waited for: the response id of that worker\'s last call). 0 when none.' },
  { column: 'observation_point', chType: 'LowCardinality(String)', tsType: 'string', queried: true, json: 'observation_point', doc: "Network spans: the interface that saw the request and response packets; 'tcp' for a failed connect; '' for process spans." },
  { column: 'tcp_retransmits', chType: 'UInt32', tsType: 'number', queried: true, json: 'tcp_retransmits', doc: 'Segments the connection retransmitted up to the request and up to the response, since its previous messages (TCP health, agent --net-interfaces).' },
  { column: 'tcp_srtt_us', chType: 'UInt32', tsType: 'number', queried: true, json: 'tcp_srtt_us', doc: 'Smoothed RTT of the connection, µs, as last read from its socket; 0 when unknown.' },
  { column: 'tcp_connect_failures', chType: 'UInt32', tsType: 'number', queried: true, json: 'tcp_connect_failures', doc: '1 on the span of a failed connect (SYN_SENT -> CLOSE), else 0.' },
];

/** The `SpanRow` property of a column. */
export function spanRowKey(c: SpanColumnSpec): string {
  return c.rowKey ?? c.column;
}

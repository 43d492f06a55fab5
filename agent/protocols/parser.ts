/**
 * The one interface every protocol parser implements: built-in TypeScript parsers in
 * `agent/protocols/<name>/` and WebAssembly plugins (agent/plugins) alike.
 *
 * A parser answers three questions about a payload head captured from one syscall:
 *   1. `check`: is this my protocol? (content-based; ports are only a hint)
 *   2. `parse`: which messages are in it — request or response — and what are their fields?
 *   3. `parallel`: are responses matched to requests by a request id (HTTP/2 stream, DNS id, Kafka
 *      correlation id), or in order on the socket (HTTP/1, Redis, MySQL, PostgreSQL)?
 *
 * Parsers must never throw on bad input (the registry guards anyway, and counts), must not allocate
 * without bound, and must treat the payload as possibly truncated at the capture limit.
 *
 * @example
 *   const parser: ProtocolParser = {
 *     name: 'echo', parallel: false,
 *     check: (p) => p[0] === 0x45,
 *     parse: (p, ctx) => [{ l7Protocol: 'echo', msgType: ctx.direction === 'egress' ? 'request' : 'response' }],
 *   };
 */

import type { Direction, L4Protocol, SocketRole } from '../capture/message.ts';

export type MsgType = 'request' | 'response';
export type ResponseStatus = 'ok' | 'client_error' | 'server_error' | 'timeout' | 'unknown';

/** Fields extracted from one application message. Field names map 1:1 to span columns. */
export interface L7Message {
  /** `http1` `http2` `grpc` `dns` `redis` `mysql` `postgresql` `kafka` `mqtt`, or a plugin's name. */
  l7Protocol: string;
  msgType: MsgType;
  /** Method, command, opcode, query type. */
  requestType?: string;
  /** Host, authority, database, topic, query name. */
  requestDomain?: string;
  /** Path, statement, key, topic. */
  requestResource?: string;
  endpoint?: string;
  /** For parallel protocols: the id pairing a response to its request. */
  requestId?: number;
  responseCode?: number;
  responseStatus?: ResponseStatus;
  responseException?: string;
  /** Length of the message on the wire, when the protocol says (may exceed the captured bytes). */
  requestLength?: number;
  responseLength?: number;
  /** Trace context carried by the message (W3C traceparent, B3, uber-trace-id, sw8). */
  traceId?: string;
  spanId?: string;
  parentSpanId?: string;
  xRequestId?: string;
  /** Configured extra headers and plugin attributes. */
  attributes?: Record<string, string>;
  /** Set when a message is known to be cut short by the capture limit. */
  truncated?: boolean;
  /**
   * A request the protocol never answers (MQTT QoS 0 PUBLISH, MySQL COM_STMT_CLOSE, PostgreSQL
   * Terminate): the span builder should close it at once rather than wait for a timeout.
   */
  oneWay?: boolean;
  /** Protocol version when the message says (Kafka api_version, MQTT protocol level, HTTP/1.0 vs 1.1). */
  version?: string;
  /** Decoded from TLS plaintext (set by the pipeline from the captured message, not by parsers). */
  tls?: boolean;
}

/** Per-call context. `state` belongs to the (socket, direction) pair and persists across calls. */
export interface ParseContext {
  direction: Direction;
  role: SocketRole;
  l4: L4Protocol;
  localPort: number;
  remotePort: number;
  socketId: number;
  /** Total bytes the syscall moved; > payload.length when the head was truncated. */
  bytes: number;
  /** Parser-owned session state for this socket (HPACK tables, prepared statements, …). */
  state: ParserState;
  /** Extra HTTP headers to copy into attributes (lower-case names). */
  extraHeaders?: readonly string[];
  /**
   * State shared by both directions of the socket, for protocols whose responses need what the
   * request said (Kafka api_key by correlation id, MySQL statement text by statement id).
   * Optional: parsers fall back to `state` when a host does not provide it.
   */
  socketState?: ParserState;
}

/** Opaque per-socket state a parser keeps between calls; created by `newState`. */
export type ParserState = Record<string, unknown>;

/** A request a protocol never answers (the parser sets `oneWay` on it). */
export interface OneWayRule {
  /** The `requestType` the parser reports. */
  readonly requestType: string;
  /**
   * When: exactly `'always'` ({@link ONE_WAY_ALWAYS}) when every request of this type goes
   * unanswered — the span builder then closes it as one-way even if the parser did not flag it,
   * and the conformance suite fails a parser that does not; anything else ('QoS 0', 'acks = 0',
   * 'noreply') is a condition in the bytes that only the parser can see and flag (`oneWay`).
   * Explanations belong in a comment beside the rule, not in this text.
   */
  readonly when: string;
}

/** The one `OneWayRule.when` that is unconditional. */
export const ONE_WAY_ALWAYS = 'always';

/**
 * How a protocol's messages become spans: declared once, beside its parser
 * (`agent/protocols/<name>/descriptor.ts`), read by the span builder (pairing, timeouts), trace
 * assembly (aliases, sequence slack), the conformance suite and `GET /api/v1/protocols`.
 */
export interface ProtocolDescriptor {
  /** The `l7Protocol` value. */
  readonly name: string;
  /** Other `l7Protocol` values the same parser reports for the same exchanges (http2: grpc). */
  readonly aliases: readonly string[];
  /**
   * `in-order`: responses answer requests first-in first-out per socket (HTTP/1, Redis, MySQL,
   * PostgreSQL), even when a message carries an id. `by-id`: by `requestId` (HTTP/2 stream, DNS id,
   * Kafka correlation id, MQTT packet id); messages without one pair in order.
   */
  readonly pairing: 'in-order' | 'by-id';
  /** Requests the protocol never answers: their spans close at once (`pair_state = one_way`). */
  readonly oneWay: readonly OneWayRule[];
  /** How long a request waits for its answer before its span is a timeout (default 60 000 ms). */
  readonly timeoutMs?: number;
  /**
   * Offsets at which the two ends of one exchange may see its request TCP sequence (default [0]):
   * protocols framed by a 4-byte length are often read header first, so one side's message starts
   * 4 bytes later.
   */
  readonly sequenceSlack?: readonly number[];
}

export interface ProtocolParser {
  /** The `l7_protocol` value this parser produces (gRPC is reported by the http2 parser). */
  readonly name: string;
  /** True when responses pair with requests by `requestId` rather than in order (= descriptor.pairing 'by-id'). */
  readonly parallel: boolean;
  /** How its messages pair into spans; built-ins declare one, plugins get {@link ProtocolDescriptor} defaults from `parallel`. */
  readonly descriptor?: ProtocolDescriptor;
  /** UDP, TCP or both. */
  readonly transports: readonly L4Protocol[];
  /** Cheap content check on the head of a payload. Must not throw. */
  check(payload: Uint8Array, ctx: ParseContext): boolean;
  /**
   * Extract the messages in this payload (pipelined or coalesced reads can hold several).
   * Returns null when the bytes are not (or no longer) this protocol.
   */
  parse(payload: Uint8Array, ctx: ParseContext): L7Message[] | null;
  /** Fresh per-socket state; omitted when the parser is stateless. */
  newState?(): ParserState;
}

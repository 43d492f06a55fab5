/**
 * Kafka wire protocol: the request header of every API (api_key, api_version, correlation_id,
 * client_id, flexible-version tagged fields), the topic/partition of Produce, Fetch and Metadata, and
 * the error code of the responses that carry one where it is cheap to reach; the consumer group of
 * group-coordinator requests (attributes.group_id) and the trace context (`traceparent`, `sw8`, …)
 * in the headers of a Produce request's first record.
 *
 * Parallel protocol: request_id = correlation id. Responses do not carry the api key, so the socket
 * keeps its outstanding correlation ids (bounded) to name each response and read its body.
 */

import type { L7Message, ParseContext, ProtocolParser } from '../parser.ts';
import { kafkaDescriptor } from './descriptor.ts';
import { i16be, i32be, isPrintable, text, u32be } from '../lib/bytes.ts';
import { requestSide, socketState } from '../lib/direction.ts';
import { applyTraceContext } from '../lib/trace-context.ts';
import { INVALID, NEED_MORE, parseStream } from '../lib/stream.ts';
import type { StreamFramer } from '../lib/stream.ts';

// prettier-ignore
const API_NAMES: readonly string[] = [
  'Produce', 'Fetch', 'ListOffsets', 'Metadata', 'LeaderAndIsr', 'StopReplica', 'UpdateMetadata', 'ControlledShutdown',
  'OffsetCommit', 'OffsetFetch', 'FindCoordinator', 'JoinGroup', 'Heartbeat', 'LeaveGroup', 'SyncGroup', 'DescribeGroups',
  'ListGroups', 'SaslHandshake', 'ApiVersions', 'CreateTopics', 'DeleteTopics', 'DeleteRecords', 'InitProducerId',
  'OffsetForLeaderEpoch', 'AddPartitionsToTxn', 'AddOffsetsToTxn', 'EndTxn', 'WriteTxnMarkers', 'TxnOffsetCommit',
  'DescribeAcls', 'CreateAcls', 'DeleteAcls', 'DescribeConfigs', 'AlterConfigs', 'AlterReplicaLogDirs', 'DescribeLogDirs',
  'SaslAuthenticate', 'CreatePartitions', 'CreateDelegationToken', 'RenewDelegationToken', 'ExpireDelegationToken',
  'DescribeDelegationToken', 'DeleteGroups', 'ElectLeaders', 'IncrementalAlterConfigs', 'AlterPartitionReassignments',
  'ListPartitionReassignments', 'OffsetDelete', 'DescribeClientQuotas', 'AlterClientQuotas', 'DescribeUserScramCredentials',
  'AlterUserScramCredentials', 'Vote', 'BeginQuorumEpoch', 'EndQuorumEpoch', 'DescribeQuorum', 'AlterPartition',
  'UpdateFeatures', 'Envelope', 'FetchSnapshot', 'DescribeCluster', 'DescribeProducers', 'BrokerRegistration',
  'BrokerHeartbeat', 'UnregisterBroker', 'DescribeTransactions', 'ListTransactions', 'AllocateProducerIds',
  'ConsumerGroupHeartbeat', 'ConsumerGroupDescribe', 'ControllerRegistration', 'GetTelemetrySubscriptions',
  'PushTelemetry', 'AssignReplicasToDirs', 'ListClientMetricsResources', 'DescribeTopicPartitions',
];

/** First version of each API that uses flexible (tagged-field) headers; 99 = never. APIs past the list: from v0. */
// prettier-ignore
const FLEXIBLE_FROM: readonly number[] = [
  9, 12, 6, 9, 4, 2, 6, 3, 8, 6, 3, 6, 4, 4, 4, 5, 3, 99, 3, 5, 4, 2, 2, 4, 3, 3, 3, 1, 3, 2, 2, 2, 4, 2, 2, 2, 2, 2,
  2, 2, 2, 2, 2, 2, 1, 0, 0, 99,
];

const MAX_OUTSTANDING = 1024;
const CLIENT_ERRORS = new Set([1, 3, 10, 17, 18, 29, 30, 31, 33, 35, 36, 38, 42, 58]);

function isFlexible(apiKey: number, version: number): boolean {
  const from = apiKey < FLEXIBLE_FROM.length ? FLEXIBLE_FROM[apiKey] : 0;
  return version >= from;
}

interface Outstanding {
  apiKey: number;
  version: number;
}

function outstanding(ctx: ParseContext): Map<number, Outstanding> {
  const ss = socketState(ctx);
  let m = ss.kafka as Map<number, Outstanding> | undefined;
  if (!m) {
    m = new Map();
    ss.kafka = m;
  }
  return m;
}

/** A bounded cursor over the captured bytes; every read returns undefined past the end. */
class Cursor {
  constructor(
    readonly b: Uint8Array,
    public p: number,
    readonly end: number,
  ) {}
  i8(): number | undefined {
    return this.p < this.end ? this.b[this.p++] : undefined;
  }
  i16(): number | undefined {
    if (this.p + 2 > this.end) return undefined;
    const v = i16be(this.b, this.p);
    this.p += 2;
    return v;
  }
  i32(): number | undefined {
    if (this.p + 4 > this.end) return undefined;
    const v = i32be(this.b, this.p);
    this.p += 4;
    return v;
  }
  skip(n: number): boolean {
    this.p += n;
    return this.p <= this.end;
  }
  uvarint(): number | undefined {
    let v = 0;
    for (let shift = 0; shift < 35; shift += 7) {
      if (this.p >= this.end) return undefined;
      const c = this.b[this.p++];
      v += (c & 0x7f) * 2 ** shift;
      if ((c & 0x80) === 0) return v;
    }
    return undefined;
  }
  /** STRING / NULLABLE_STRING (int16 length) or, when flexible, COMPACT_STRING (uvarint length + 1). */
  str(flexible: boolean, max = 256): string | null | undefined {
    let len: number | undefined;
    if (flexible) {
      const l = this.uvarint();
      if (l === undefined) return undefined;
      len = l - 1;
    } else {
      len = this.i16();
      if (len === undefined) return undefined;
    }
    if (len < 0) return null;
    if (this.p + len > this.end) return undefined;
    const s = text(this.b, this.p, this.p + len, max);
    this.p += len;
    return s;
  }
  /** ARRAY (int32 count) or COMPACT_ARRAY (uvarint count + 1). */
  count(flexible: boolean): number | undefined {
    if (flexible) {
      const n = this.uvarint();
      return n === undefined ? undefined : n - 1;
    }
    return this.i32();
  }
  taggedFields(): boolean {
    const n = this.uvarint();
    if (n === undefined || n > 64) return false;
    for (let i = 0; i < n; i++) {
      if (this.uvarint() === undefined) return false;
      const size = this.uvarint();
      if (size === undefined || !this.skip(size)) return false;
    }
    return true;
  }
}

/** A signed (zig-zag) varint of the record format, or undefined past `end` / when too long. */
function varint(b: Uint8Array, at: { p: number }, end: number): number | undefined {
  let v = 0;
  for (let shift = 0; shift < 35; shift += 7) {
    if (at.p >= end) return undefined;
    const c = b[at.p++];
    v += (c & 0x7f) * 2 ** shift;
    if ((c & 0x80) === 0) return v % 2 === 0 ? v / 2 : -(v + 1) / 2;
  }
  return undefined;
}

/** Record headers the parser keeps: trace context (lib/trace-context.ts reads them). */
const RECORD_HEADERS = new Set(['traceparent', 'sw8', 'b3', 'uber-trace-id', 'x-request-id']);
const RECORD_BATCH_HEAD = 61;

/**
 * Trace-context headers of the first record of an uncompressed RecordBatch (magic 2) in [p, end):
 * what a producer instrumented with OpenTelemetry (`traceparent`) or SkyWalking (`sw8`) adds to
 * each record. Compressed batches and the legacy message sets carry none that can be read.
 */
function recordHeaders(b: Uint8Array, p: number, end: number): Map<string, string> | undefined {
  if (p + RECORD_BATCH_HEAD > end || b[p + 16] !== 2) return undefined;
  if ((b[p + 22] & 0x07) !== 0) return undefined; // compressed (attributes is int16 big-endian: codec in the low byte)
  const at = { p: p + RECORD_BATCH_HEAD };
  const len = varint(b, at, end);
  if (len === undefined || len < 0) return undefined;
  const stop = Math.min(end, at.p + len);
  at.p += 1; // attributes
  if (varint(b, at, stop) === undefined || varint(b, at, stop) === undefined) return undefined; // timestamp, offset deltas
  for (let i = 0; i < 2; i++) {
    const n = varint(b, at, stop); // key, then value
    if (n === undefined) return undefined;
    if (n > 0) at.p += n;
  }
  const count = varint(b, at, stop);
  if (count === undefined || count <= 0) return undefined;
  let found: Map<string, string> | undefined;
  for (let i = 0; i < Math.min(count, 64); i++) {
    const kl = varint(b, at, stop);
    if (kl === undefined || kl < 0 || at.p + kl > stop) break;
    const key = text(b, at.p, at.p + kl, 64).toLowerCase();
    at.p += kl;
    const vl = varint(b, at, stop);
    if (vl === undefined || at.p + Math.max(vl, 0) > stop) break;
    if (vl >= 0 && RECORD_HEADERS.has(key)) (found ??= new Map()).set(key, text(b, at.p, at.p + vl, 512));
    if (vl > 0) at.p += vl;
  }
  return found;
}

/** APIs whose body starts with group_id (OffsetFetch until v8 moved it into an array). */
const GROUP_FIRST = new Set([8, 11, 12, 13, 14, 47]);

/** The consumer group a group-coordinator request names, or undefined. */
function groupId(c: Cursor, apiKey: number, version: number, flex: boolean): string | undefined {
  if (GROUP_FIRST.has(apiKey) || (apiKey === 9 && version < 8)) {
    const g = c.str(flex);
    return typeof g === 'string' && g !== '' ? g : undefined;
  }
  if (apiKey === 10 && version < 4) {
    // FindCoordinator: key, then key_type (v1+; 0 = group, 1 = transaction)
    const key = c.str(flex);
    if (typeof key !== 'string' || key === '') return undefined;
    if (version >= 1 && c.i8() !== 0) return undefined;
    return key;
  }
  if (apiKey === 28) {
    // TxnOffsetCommit: transactional_id, then group_id
    if (c.str(flex) === undefined) return undefined;
    const g = c.str(flex);
    return typeof g === 'string' && g !== '' ? g : undefined;
  }
  return undefined;
}

/** Topic and partition (and fetch offset) of the first entry of Produce / Fetch / Metadata. */
function requestTarget(c: Cursor, apiKey: number, version: number, flex: boolean): { topic?: string; partition?: number; offset?: bigint; headers?: Map<string, string> } {
  if (apiKey === 0) {
    if (version >= 3 && c.str(flex) === undefined) return {};
    if (c.i16() === undefined || c.i32() === undefined) return {};
    if ((c.count(flex) ?? 0) < 1) return {};
    const topic = c.str(flex);
    if (typeof topic !== 'string') return {};
    if ((c.count(flex) ?? 0) < 1) return { topic };
    const partition = c.i32();
    if (partition === undefined) return { topic };
    // records: NULLABLE_BYTES (int32 size) or COMPACT_NULLABLE_BYTES (uvarint size + 1)
    const size = flex ? (c.uvarint() ?? 0) - 1 : (c.i32() ?? -1);
    const headers = size > 0 ? recordHeaders(c.b, c.p, Math.min(c.end, c.p + size)) : undefined;
    return { topic, partition, headers };
  }
  if (apiKey === 1) {
    if (version < 15 && c.i32() === undefined) return {}; // replica_id
    if (!c.skip(8)) return {}; // max_wait_ms, min_bytes
    if (version >= 3 && !c.skip(4)) return {};
    if (version >= 4 && !c.skip(1)) return {};
    if (version >= 7 && !c.skip(8)) return {};
    if ((c.count(flex) ?? 0) < 1) return {};
    let topic: string | undefined;
    if (version >= 13) {
      if (!c.skip(16)) return {}; // topic id
    } else {
      const t = c.str(flex);
      if (typeof t !== 'string') return {};
      topic = t;
    }
    if ((c.count(flex) ?? 0) < 1) return { topic };
    const partition = c.i32();
    if (partition === undefined) return { topic };
    if (version >= 9 && !c.skip(4)) return { topic, partition }; // current_leader_epoch
    if (c.p + 8 > c.end) return { topic, partition };
    const hi = i32be(c.b, c.p) ?? 0;
    const lo = u32be(c.b, c.p + 4);
    return { topic, partition, offset: (BigInt(hi) << 32n) + BigInt(lo) };
  }
  if (apiKey === 3) {
    const n = c.count(flex);
    if (n === undefined || n < 1) return {};
    if (version >= 10 && !c.skip(16)) return {};
    const t = c.str(flex);
    return typeof t === 'string' ? { topic: t } : {};
  }
  return {};
}

/** Where the top-level error code sits: [min version with throttle_time_ms first, or -1 if never]. */
const TOP_ERROR: Record<number, number> = { 10: 1, 11: 2, 12: 1, 13: 1, 14: 1, 16: 1, 17: -1, 18: -1, 22: 0, 36: -1 };

function responseError(c: Cursor, apiKey: number, version: number, flex: boolean): number | undefined {
  if (apiKey === 18) return c.i16(); // ApiVersions: error_code first, always
  const throttleFrom = TOP_ERROR[apiKey];
  if (throttleFrom !== undefined) {
    if (throttleFrom >= 0 && version >= throttleFrom && !c.skip(4)) return undefined;
    if (apiKey === 10 && version >= 4) return undefined; // coordinators array
    return c.i16();
  }
  if (apiKey === 0) {
    if ((c.count(flex) ?? 0) < 1) return undefined;
    if (c.str(flex) === undefined) return undefined;
    if ((c.count(flex) ?? 0) < 1) return undefined;
    if (c.i32() === undefined) return undefined;
    return c.i16();
  }
  if (apiKey === 1) {
    if (version >= 1 && !c.skip(4)) return undefined;
    // v7+ has a top-level error_code: it is the answer when non-zero, or when no partition follows
    // (an incremental fetch session with nothing new answers with no partitions at all).
    let top: number | undefined;
    if (version >= 7) {
      top = c.i16();
      if (top === undefined || top !== 0) return top;
      if (!c.skip(4)) return top;
    }
    if ((c.count(flex) ?? 0) < 1) return top;
    if (version >= 13) {
      if (!c.skip(16)) return top;
    } else if (c.str(flex) === undefined) return top;
    if ((c.count(flex) ?? 0) < 1) return top;
    if (c.i32() === undefined) return top;
    return c.i16() ?? top;
  }
  return undefined;
}

function request(buf: Uint8Array, off: number, end: number, len: number, ctx: ParseContext): L7Message | undefined {
  const c = new Cursor(buf, off + 4, end);
  const apiKey = c.i16();
  const version = c.i16();
  const corr = c.i32();
  if (apiKey === undefined || version === undefined || corr === undefined) return undefined;
  if (apiKey < 0 || apiKey >= API_NAMES.length || version < 0 || version > 30 || corr < 0) return undefined;
  const clientId = c.str(false, 128);
  if (clientId === undefined && end - off >= 14) return undefined;
  const flex = isFlexible(apiKey, version);
  const m: L7Message = { l7Protocol: 'kafka', msgType: 'request', requestType: API_NAMES[apiKey], requestId: corr, version: String(version), requestLength: len };
  if (clientId) m.attributes = { client_id: clientId };
  if (clientId !== undefined && (!flex || c.taggedFields())) {
    const body = c.p;
    const t = requestTarget(c, apiKey, version, flex);
    if (t.headers) applyTraceContext(m, t.headers);
    c.p = body;
    const group = groupId(c, apiKey, version, flex);
    if (group) (m.attributes ??= {}).group_id = group;
    if (t.topic) {
      m.requestDomain = t.topic;
      m.requestResource = t.topic;
      if (t.partition !== undefined) {
        m.endpoint = `${t.topic}-${t.partition}`;
        m.requestResource = t.offset !== undefined ? `${t.topic}-${t.partition}:${t.offset}` : m.endpoint;
      }
    }
  }
  const out = outstanding(ctx);
  if (out.size >= MAX_OUTSTANDING) {
    const oldest = out.keys().next().value;
    if (oldest !== undefined) out.delete(oldest);
  }
  // acks=0 Produce gets no response: say so, and do not wait for one.
  if (apiKey === 0 && m.requestDomain !== undefined && ackZero(buf, off + 4, end, version, flex)) m.oneWay = true;
  else out.set(corr, { apiKey, version });
  return m;
}

function ackZero(buf: Uint8Array, p: number, end: number, version: number, flex: boolean): boolean {
  const c = new Cursor(buf, p + 8, end);
  if (c.str(false) === undefined) return false;
  if (flex && !c.taggedFields()) return false;
  if (version >= 3 && c.str(flex) === undefined) return false;
  return c.i16() === 0;
}

function response(buf: Uint8Array, off: number, end: number, len: number, ctx: ParseContext): L7Message | undefined {
  const c = new Cursor(buf, off + 4, end);
  const corr = c.i32();
  if (corr === undefined || corr < 0) return undefined;
  const out = outstanding(ctx);
  const req = out.get(corr);
  const m: L7Message = { l7Protocol: 'kafka', msgType: 'response', requestId: corr, responseLength: len, responseStatus: 'ok' };
  if (!req) return m;
  out.delete(corr);
  m.requestType = API_NAMES[req.apiKey];
  m.version = String(req.version);
  const flex = isFlexible(req.apiKey, req.version) && req.apiKey !== 18;
  if (flex && !c.taggedFields()) return m;
  const err = responseError(c, req.apiKey, req.version, isFlexible(req.apiKey, req.version));
  if (err !== undefined) {
    m.responseCode = err;
    if (err !== 0) m.responseStatus = CLIENT_ERRORS.has(err) ? 'client_error' : 'server_error';
  }
  return m;
}

function looksLikeRequest(buf: Uint8Array, off: number, end: number): boolean {
  if (end - off < 14) return false;
  const apiKey = i16be(buf, off + 4) ?? -1;
  const version = i16be(buf, off + 6) ?? -1;
  const corr = i32be(buf, off + 8) ?? -1;
  const cl = i16be(buf, off + 12) ?? -2;
  if (apiKey < 0 || apiKey >= API_NAMES.length || version < 0 || version > 30 || corr < 0) return false;
  if (cl === -1) return true;
  return cl >= 0 && cl <= 256 && off + 14 + cl <= end && isPrintable(buf, off + 14, off + 14 + cl);
}

const framer: StreamFramer = {
  frame(buf, off, end, cut, ctx, out) {
    if (end - off < 8) return cut ? INVALID : NEED_MORE;
    const len = i32be(buf, off);
    if (len === undefined || len < 4 || len > 0x7ffffff0) return INVALID;
    const whole = 4 + len;
    // Request and response heads are short: wait for them when a read splits one.
    if (off + whole > end && !cut && end - off < 512) return NEED_MORE;
    let side = requestSide(ctx);
    if (side === undefined) side = looksLikeRequest(buf, off, end);
    const stop = Math.min(end, off + whole);
    const m = side ? request(buf, off, stop, len, ctx) : response(buf, off, stop, len, ctx);
    if (!m) return INVALID;
    out.push(m);
    return whole;
  },
};

export const kafkaParser: ProtocolParser = {
  name: 'kafka',
  parallel: kafkaDescriptor.pairing === 'by-id',
  descriptor: kafkaDescriptor,
  transports: ['tcp'],
  check(payload, ctx) {
    const len = i32be(payload, 0);
    if (len === undefined || len < 10 || len + 4 > Math.max(ctx.bytes, payload.length) + 0 || len > 100 << 20) return false;
    // An empty client id is legal but no client sends one by default; requiring a name (or null)
    // keeps length-prefixed neighbours whose third word starts with two zero bytes (ZooKeeper's path length) out.
    const clientId = i16be(payload, 12) ?? -2;
    return looksLikeRequest(payload, 0, payload.length) && (clientId === -1 || clientId > 0);
  },
  parse: (payload, ctx) => parseStream(payload, ctx, framer),
  newState: () => ({}),
};

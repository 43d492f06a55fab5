/**
 * The RTB body writer: varints, the per-batch string dictionary and socket tuple table, the message
 * records and the L7 record (generated from the field catalogue). {@link BatchBodyStream} writes a
 * body one message at a time; {@link serializeBatchBody} writes a whole {@link Batch}; both write
 * the same bytes.
 */
import type { ProcessInfo, SocketClosed } from '../../capture/message.ts';
import type { L7Message, ProtocolDescriptor, ResponseStatus } from '../../protocols/parser.ts';
import { agentDescriptor } from '../../protocols/descriptors.ts';
import type { Batch, ParsedMessage } from '../batch.ts';
import { BATCH_FORMAT_VERSION, BatchEncodeError, DIRECTIONS, FAMILIES, L4S, PAIRINGS, ROLES, STATUSES, SYSCALL_IDS, enumId } from './format.ts';

/** Finds the descriptor of an `l7Protocol` for the batch's descriptor section (default: what this agent process knows). */
export type DescriptorSource = (l7Protocol: string) => ProtocolDescriptor | undefined;

const TWO_52 = 2 ** 52;
const BIG_TWO_64 = 2n ** 64n;

const utf8 = new TextEncoder();

/** The string dictionary and tuple table: per batch, shared by the writers of one batch body. */
interface WriterTables {
  strings: Map<string, number>;
  tuples: Map<number, number[]>;
  tupleData: Array<{ flags: number; localIp: string; localPort: number; remoteIp: string; remotePort: number }>;
  /** The socket whose tuple list was touched last (for rollback). */
  lastTupleSocket: number;
}

interface WriterMark {
  pos: number;
  strings: number;
  tuples: number;
}

class Writer {
  buf: Uint8Array;
  pos = 0;
  private view: DataView;
  private readonly strings: Map<string, number>;
  private readonly tuples: Map<number, number[]>;
  private readonly tupleData: WriterTables['tupleData'];
  readonly tables: WriterTables;

  constructor(initial: number, tables?: WriterTables) {
    this.buf = new Uint8Array(Math.max(1024, initial));
    this.view = new DataView(this.buf.buffer);
    this.tables = tables ?? { strings: new Map(), tuples: new Map(), tupleData: [], lastTupleSocket: -1 };
    this.strings = this.tables.strings;
    this.tuples = this.tables.tuples;
    this.tupleData = this.tables.tupleData;
  }

  mark(): WriterMark {
    return { pos: this.pos, strings: this.strings.size, tuples: this.tupleData.length };
  }

  /** Undo everything written since `m`, dictionary entries included (a message that failed to encode). */
  rollback(m: WriterMark): void {
    this.pos = m.pos;
    if (this.strings.size > m.strings) for (const [k, v] of this.strings) if (v > m.strings) this.strings.delete(k);
    if (this.tupleData.length > m.tuples) {
      this.tupleData.length = m.tuples;
      const list = this.tuples.get(this.tables.lastTupleSocket);
      if (list) {
        const kept = list.filter((i) => i < m.tuples);
        if (kept.length) this.tuples.set(this.tables.lastTupleSocket, kept);
        else this.tuples.delete(this.tables.lastTupleSocket);
      }
    }
  }

  append(bytes: Uint8Array): void {
    this.ensure(bytes.length);
    this.buf.set(bytes, this.pos);
    this.pos += bytes.length;
  }

  ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }

  /** Unsigned varint for a non-negative safe integer; anything else is an encode error. */
  uint(n: number, field: string): void {
    if (n >= 0 && n < 0x80 && (n | 0) === n) {
      this.ensure(1);
      this.buf[this.pos++] = n;
      return;
    }
    if (!Number.isSafeInteger(n) || n < 0) throw new BatchEncodeError(`${field}: expected a non-negative integer, got ${n}`);
    this.ensure(8);
    const b = this.buf;
    let p = this.pos;
    if (n <= 0xffffffff) {
      // Most values (ports, pids, sequence numbers, small deltas) fit 32 bits: shifts instead of
      // the float % and / the general loop needs. Same bytes.
      while (n >= 0x80) {
        b[p++] = (n & 0x7f) | 0x80;
        n >>>= 7;
      }
      b[p++] = n;
      this.pos = p;
      return;
    }
    while (n >= 0x80) {
      b[p++] = (n % 0x80) | 0x80;
      n = Math.floor(n / 0x80);
    }
    b[p++] = n;
    this.pos = p;
  }

  /** Zigzag varint of a bigint delta: the fast path for |d| < 2^52, exact for any 64-bit value. */
  sbig(d: bigint): void {
    // Number() is exact below 2^52 and rounds monotonically, so this one test stands for two
    // BigInt comparisons on the hot path.
    const n = Number(d);
    if (n > -TWO_52 && n < TWO_52) {
      this.uint(n >= 0 ? n * 2 : -n * 2 - 1, 'delta');
      return;
    }
    if (d >= BIG_TWO_64 || d <= -BIG_TWO_64) throw new BatchEncodeError(`timestamp delta ${d} beyond 64 bits`);
    let z = d >= 0n ? d << 1n : (-d << 1n) - 1n;
    this.ensure(10);
    while (z >= 0x80n) {
      this.buf[this.pos++] = Number(z & 0x7fn) | 0x80;
      z >>= 7n;
    }
    this.buf[this.pos++] = Number(z);
  }

  /** Any JS number, lossless: even varint for integers below 2^51, else tag 1 + float64. */
  num(n: number): void {
    if (Number.isSafeInteger(n) && Math.abs(n) < 2 ** 50) {
      this.uint((n >= 0 ? n * 2 : -n * 2 - 1) * 2, 'number');
      return;
    }
    this.ensure(9);
    this.buf[this.pos++] = 1;
    this.view.setFloat64(this.pos, n, true);
    this.pos += 8;
  }

  u8(n: number): void {
    this.ensure(1);
    this.buf[this.pos++] = n;
  }

  bytes(b: Uint8Array): void {
    this.uint(b.length, 'payload length');
    this.ensure(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }

  str(s: string): void {
    const ref = this.strings.get(s);
    if (ref !== undefined) {
      this.uint(ref, 'string ref');
      return;
    }
    if (typeof s !== 'string') throw new BatchEncodeError(`expected a string, got ${typeof s}`);
    this.strings.set(s, this.strings.size + 1);
    this.u8(0);
    // Reserve the worst case, write, then store the real length in front.
    const max = s.length * 3;
    this.ensure(max + 5);
    const lenPos = this.pos;
    const lenBytes = max < 0x80 ? 1 : max < 0x4000 ? 2 : max < 0x200000 ? 3 : max < 0x10000000 ? 4 : 5;
    const { written } = utf8.encodeInto(s, this.buf.subarray(lenPos + lenBytes));
    // Fixed-width (padded) varint so the reservation holds: continuation bits on all but the last.
    let n = written;
    for (let i = 0; i < lenBytes - 1; i++) {
      this.buf[lenPos + i] = (n & 0x7f) | 0x80;
      n >>>= 7;
    }
    this.buf[lenPos + lenBytes - 1] = n;
    this.pos = lenPos + lenBytes + written;
  }

  /** The socket's tuple, spelled once per batch; later messages on the same socket refer to it. */
  tuple(m: ParsedMessage): void {
    const flags = enumId(FAMILIES, m.family, 'family') | (enumId(L4S, m.l4, 'l4') << 1) | (enumId(ROLES, m.role, 'role') << 2);
    let seen = this.tuples.get(m.socketId);
    if (seen) {
      for (const idx of seen) {
        const t = this.tupleData[idx];
        if (t.flags === flags && t.localPort === m.localPort && t.remotePort === m.remotePort && t.localIp === m.localIp && t.remoteIp === m.remoteIp) {
          this.uint(idx + 1, 'tuple ref');
          return;
        }
      }
    } else {
      seen = [];
      this.tuples.set(m.socketId, seen);
    }
    this.tables.lastTupleSocket = m.socketId;
    seen.push(this.tupleData.length);
    this.tupleData.push({ flags, localIp: m.localIp, localPort: m.localPort, remoteIp: m.remoteIp, remotePort: m.remotePort });
    this.u8(0);
    this.uint(m.socketId, 'socketId');
    this.u8(flags);
    this.str(m.localIp);
    this.uint(m.localPort, 'localPort');
    this.str(m.remoteIp);
    this.uint(m.remotePort, 'remotePort');
  }

  finish(): Uint8Array {
    return this.buf.subarray(0, this.pos);
  }
}

/** The uncompressed body. Exported for the benchmark; use {@link encodeBatch}. */
export function serializeBatchBody(batch: Batch, version = BATCH_FORMAT_VERSION): Uint8Array {
  let estimate = 256;
  for (const m of batch.messages) estimate += 64 + m.payload.length;
  const w = new Writer(estimate);
  w.str(batch.agentId);
  w.str(batch.host);
  w.uint(batch.slot, 'slot');
  w.uint(batch.slotSeconds, 'slotSeconds');
  w.uint(batch.part, 'part');
  w.uint(batch.run ?? 0, 'run');

  const base = batch.messages.length > 0 ? batch.messages[0].tsNs : batch.closed.length > 0 ? batch.closed[0].tsNs : 0n;
  w.sbig(base);
  w.uint(batch.messages.length, 'message count');
  let prev = base;
  for (const m of batch.messages) {
    writeMessage(w, m, prev, version);
    prev = m.tsNs;
  }
  writeTail(w, base, batch.processes, batch.closed);
  if (version >= 4) {
    const names = new Set<string>();
    for (const m of batch.messages) for (const l of m.l7) names.add(l.l7Protocol);
    writeDescriptors(w, batch.descriptors ?? describe(names, agentDescriptor));
  }
  return w.finish();
}

/** One message, its timestamp as a delta from the previous message's. */
/** `version` below 3 leaves out the message fields it did not have (tests write older bodies). */
function writeMessage(w: Writer, m: ParsedMessage, prev: bigint, version = BATCH_FORMAT_VERSION): void {
  w.sbig(m.tsNs - prev);
  // tsNs is enterNs or exitNs: a zero delta is written without a BigInt subtraction.
  if (m.enterNs === m.tsNs) w.u8(0);
  else w.sbig(m.enterNs - m.tsNs);
  w.sbig(m.exitNs - m.enterNs);
  w.uint(m.pid, 'pid');
  w.uint(m.tid, 'tid');
  w.uint(m.coroutineId, 'coroutineId');
  w.str(m.processName);
  const sc = SYSCALL_IDS.get(m.syscall);
  if (sc === undefined) throw new BatchEncodeError(`syscall: unknown value ${JSON.stringify(m.syscall)}`);
  w.u8(sc * 2 + enumId(DIRECTIONS, m.direction, 'direction'));
  w.tuple(m);
  w.uint(m.tcpSeq, 'tcpSeq');
  w.uint(m.syscallTraceId, 'syscallTraceId');
  if (version >= 3) w.uint(m.handoffTraceId ?? 0, 'handoffTraceId');
  if (version >= 4) {
    w.str(m.observationPoint ?? '');
    w.uint(m.tcpRetransmits ?? 0, 'tcpRetransmits');
    w.uint(m.tcpSrttUs ?? 0, 'tcpSrttUs');
    w.u8(m.connectFailed ? 1 : 0);
  }
  w.uint(m.bytes, 'bytes');
  w.bytes(m.payload);
  w.uint(m.l7.length, 'l7 count');
  for (const l of m.l7) writeL7(w, l);
}

/** The descriptors covering `names` (each once, in the order the names were first met); names without one are left out. */
function describe(names: Iterable<string>, source: DescriptorSource): ProtocolDescriptor[] {
  const out: ProtocolDescriptor[] = [];
  const seen = new Set<string>();
  for (const n of names) {
    const d = source(n);
    // One that cannot be written is left out rather than failing the batch: readers then use the
    // built-in table or the defaults for that protocol, as for an old batch.
    if (d === undefined || seen.has(d.name) || !writable(d)) continue;
    seen.add(d.name);
    out.push(d);
  }
  return out;
}

function writable(d: ProtocolDescriptor): boolean {
  return (
    PAIRINGS.includes(d.pairing) &&
    (d.timeoutMs === undefined || (Number.isSafeInteger(d.timeoutMs) && d.timeoutMs >= 0)) &&
    (d.sequenceSlack === undefined || d.sequenceSlack.every((x) => Number.isFinite(x))) &&
    typeof d.name === 'string' &&
    d.aliases.every((a) => typeof a === 'string') &&
    d.oneWay.every((r) => typeof r.requestType === 'string' && typeof r.when === 'string')
  );
}

/**
 * The descriptor section (format 4), after the closed sockets: a count, then per descriptor its
 * name, pairing (u8), aliases, one-way rules (requestType, when), timeoutMs + 1 (0 = default) and
 * sequence slack (count + 1, 0 = default; each offset a number).
 */
function writeDescriptors(w: Writer, ds: readonly ProtocolDescriptor[]): void {
  w.uint(ds.length, 'descriptor count');
  for (const d of ds) {
    w.str(d.name);
    w.u8(enumId(PAIRINGS, d.pairing, `${d.name} pairing`));
    w.uint(d.aliases.length, 'alias count');
    for (const a of d.aliases) w.str(a);
    w.uint(d.oneWay.length, 'one-way rule count');
    for (const r of d.oneWay) {
      w.str(r.requestType);
      w.str(r.when);
    }
    w.uint(d.timeoutMs === undefined ? 0 : d.timeoutMs + 1, `${d.name} timeoutMs`);
    if (d.sequenceSlack === undefined) w.u8(0);
    else {
      w.uint(d.sequenceSlack.length + 1, 'sequence slack count');
      for (const x of d.sequenceSlack) w.num(x);
    }
  }
}

/** Processes and closed sockets, after the messages. */
function writeTail(w: Writer, base: bigint, processes: readonly ProcessInfo[], closed: readonly SocketClosed[]): void {
  w.uint(processes.length, 'process count');
  for (const p of processes) {
    w.uint(p.pid, 'process pid');
    w.uint(p.startTime, 'process startTime');
    w.str(p.name);
    w.str(p.cmdline);
    w.str(p.containerId);
    w.str(p.cgroup);
  }

  w.uint(closed.length, 'closed count');
  let prev = base;
  for (const c of closed) {
    w.sbig(c.tsNs - prev);
    prev = c.tsNs;
    w.uint(c.pid, 'closed pid');
    w.uint(c.socketId, 'closed socketId');
  }
}

/** The batch fields written before the messages. */
export type BatchFields = Pick<Batch, 'agentId' | 'host' | 'slot' | 'slotSeconds' | 'part' | 'run'>;

/**
 * A batch body written one message at a time, so the agent keeps bytes rather than message
 * objects while a slot is open (objects held for a whole slot get promoted out of V8's young
 * generation; that was most of shipping's CPU). The output is byte-for-byte what
 * {@link serializeBatchBody} writes for the same batch.
 *
 * @example
 *   const s = new BatchBodyStream(fields);
 *   s.add(message);                              // throws BatchEncodeError; the stream stays valid
 *   const body = s.finish(processes, closed);
 */
export class BatchBodyStream {
  private readonly head: Writer;
  private readonly msgs: Writer;
  private base: bigint | null = null;
  private prev = 0n;
  private count = 0;
  /** The `l7Protocol` names of the messages added, for the descriptor section. */
  private readonly protocols = new Set<string>();
  private lastProtocol = '';

  constructor(
    fields: BatchFields,
    initialBytes = 64 * 1024,
    private readonly descriptors: DescriptorSource = agentDescriptor,
  ) {
    this.head = new Writer(256);
    this.head.str(fields.agentId);
    this.head.str(fields.host);
    this.head.uint(fields.slot, 'slot');
    this.head.uint(fields.slotSeconds, 'slotSeconds');
    this.head.uint(fields.part, 'part');
    this.head.uint(fields.run ?? 0, 'run');
    // Messages go to their own buffer (the count precedes them) but share the dictionaries, whose
    // numbering follows the order a reader meets the strings: head, messages, then the tail.
    this.msgs = new Writer(initialBytes, this.head.tables);
  }

  get messageCount(): number {
    return this.count;
  }

  get byteLength(): number {
    return this.head.pos + this.msgs.pos;
  }

  add(m: ParsedMessage): void {
    const mark = this.msgs.mark();
    const prev = this.base === null ? m.tsNs : this.prev;
    try {
      writeMessage(this.msgs, m, prev);
    } catch (err) {
      this.msgs.rollback(mark);
      throw err;
    }
    if (this.base === null) this.base = m.tsNs;
    this.prev = m.tsNs;
    this.count++;
    const l7 = m.l7;
    for (let i = 0; i < l7.length; i++) {
      const p = l7[i].l7Protocol;
      if (p !== this.lastProtocol) {
        this.lastProtocol = p;
        this.protocols.add(p);
      }
    }
  }

  finish(processes: readonly ProcessInfo[], closed: readonly SocketClosed[]): Uint8Array {
    const base = this.base ?? (closed.length > 0 ? closed[0].tsNs : 0n);
    this.head.sbig(base);
    this.head.uint(this.count, 'message count');
    this.head.append(this.msgs.finish());
    writeTail(this.head, base, processes, closed);
    writeDescriptors(this.head, describe(this.protocols, this.descriptors));
    return this.head.finish();
  }
}

// <contract:rtb-l7-write>
// GENERATED by agent/contract/gen-contract.ts from agent/contract/fields.ts. Do not edit.
// The L7 record: presence bits (uint), the protocol name, then each present field in bit order.
// Flags have no payload. Append only: a bit belongs to the format version that introduced it.
const F_REQUEST_TYPE = 1 << 0; // requestType, since format 1
const F_REQUEST_DOMAIN = 1 << 1; // requestDomain, since format 1
const F_REQUEST_RESOURCE = 1 << 2; // requestResource, since format 1
const F_ENDPOINT = 1 << 3; // endpoint, since format 1
const F_REQUEST_ID = 1 << 4; // requestId, since format 1
const F_RESPONSE_CODE = 1 << 5; // responseCode, since format 1
const F_RESPONSE_STATUS = 1 << 6; // responseStatus, since format 1
const F_RESPONSE_EXCEPTION = 1 << 7; // responseException, since format 1
const F_REQUEST_LENGTH = 1 << 8; // requestLength, since format 1
const F_RESPONSE_LENGTH = 1 << 9; // responseLength, since format 1
const F_TRACE_ID = 1 << 10; // traceId, since format 1
const F_SPAN_ID = 1 << 11; // spanId, since format 1
const F_PARENT_SPAN_ID = 1 << 12; // parentSpanId, since format 1
const F_X_REQUEST_ID = 1 << 13; // xRequestId, since format 1
const F_ATTRIBUTES = 1 << 14; // attributes, since format 1
const F_TRUNCATED = 1 << 15; // truncated, since format 1
const F_MSG_TYPE = 1 << 16; // msgType, since format 1
const F_ONE_WAY = 1 << 17; // oneWay, since format 2
const F_VERSION = 1 << 18; // version, since format 2
const F_TLS = 1 << 19; // tls, since format 3

function writeL7(w: Writer, l: L7Message): void {
  let bits = 0;
  if (l.requestType !== undefined) bits |= F_REQUEST_TYPE;
  if (l.requestDomain !== undefined) bits |= F_REQUEST_DOMAIN;
  if (l.requestResource !== undefined) bits |= F_REQUEST_RESOURCE;
  if (l.endpoint !== undefined) bits |= F_ENDPOINT;
  if (l.requestId !== undefined) bits |= F_REQUEST_ID;
  if (l.responseCode !== undefined) bits |= F_RESPONSE_CODE;
  if (l.responseStatus !== undefined) bits |= F_RESPONSE_STATUS;
  if (l.responseException !== undefined) bits |= F_RESPONSE_EXCEPTION;
  if (l.requestLength !== undefined) bits |= F_REQUEST_LENGTH;
  if (l.responseLength !== undefined) bits |= F_RESPONSE_LENGTH;
  if (l.traceId !== undefined) bits |= F_TRACE_ID;
  if (l.spanId !== undefined) bits |= F_SPAN_ID;
  if (l.parentSpanId !== undefined) bits |= F_PARENT_SPAN_ID;
  if (l.xRequestId !== undefined) bits |= F_X_REQUEST_ID;
  if (l.attributes !== undefined) bits |= F_ATTRIBUTES;
  if (l.truncated) bits |= F_TRUNCATED;
  if (l.oneWay) bits |= F_ONE_WAY;
  if (l.version !== undefined) bits |= F_VERSION;
  if (l.tls) bits |= F_TLS;
  if (l.msgType === 'response') bits |= F_MSG_TYPE;
  else if (l.msgType !== 'request') throw new BatchEncodeError(`msgType: unknown value ${JSON.stringify(l.msgType)}`);
  w.uint(bits, 'l7 flags');
  w.str(l.l7Protocol);
  if (bits & F_REQUEST_TYPE) w.str(l.requestType as string);
  if (bits & F_REQUEST_DOMAIN) w.str(l.requestDomain as string);
  if (bits & F_REQUEST_RESOURCE) w.str(l.requestResource as string);
  if (bits & F_ENDPOINT) w.str(l.endpoint as string);
  if (bits & F_REQUEST_ID) w.num(l.requestId as number);
  if (bits & F_RESPONSE_CODE) w.num(l.responseCode as number);
  if (bits & F_RESPONSE_STATUS) w.u8(enumId(STATUSES, l.responseStatus as ResponseStatus, 'responseStatus'));
  if (bits & F_RESPONSE_EXCEPTION) w.str(l.responseException as string);
  if (bits & F_REQUEST_LENGTH) w.num(l.requestLength as number);
  if (bits & F_RESPONSE_LENGTH) w.num(l.responseLength as number);
  if (bits & F_TRACE_ID) w.str(l.traceId as string);
  if (bits & F_SPAN_ID) w.str(l.spanId as string);
  if (bits & F_PARENT_SPAN_ID) w.str(l.parentSpanId as string);
  if (bits & F_X_REQUEST_ID) w.str(l.xRequestId as string);
  if (bits & F_ATTRIBUTES) {
    const entries = Object.entries(l.attributes as Record<string, string>);
    w.uint(entries.length, 'attribute count');
    for (const [k, v] of entries) {
      w.str(k);
      w.str(String(v));
    }
  }
  if (bits & F_VERSION) w.str(l.version as string);
}
// </contract:rtb-l7-write>

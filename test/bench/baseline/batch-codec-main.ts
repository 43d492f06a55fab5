// Baseline for test/bench/batch-codec.bench.ts: agent/shipping/codec.ts as it was on main before the
// split into agent/shipping/codec/ (git show 12f47a4:agent/shipping/codec.ts, import paths adjusted).
// Not used by any product code.
/**
 * The batch object format ("RTB", version 3): how a {@link Batch} is laid out in object storage.
 * Version 2 added two L7 fields (`oneWay`, `version`); version 3 the message's `handoffTraceId`
 * (after `syscallTraceId`). Readers still read version 1 and 2 objects.
 *
 * Chosen by measurement (see docs/SHIPPING.md and `npx tsx test/bench/batch-codec.bench.ts`):
 * a compact row format with an inline string dictionary, delta-coded timestamps and a socket
 * tuple table, then compressed with brotli at quality 1 (node:zlib). Everything the reader does is bounds-checked:
 * garbage yields a {@link BatchFormatError}, never a crash, a hang or a huge allocation.
 *
 * Object layout (little-endian):
 *
 *   offset size
 *   0      4    magic "RPTB"
 *   4      1    format version (3; 1 and 2 still read)
 *   5      1    compression: 0 none, 1 deflate-raw, 2 gzip, 3 brotli
 *   6      2    flags (0; readers reject unknown bits)
 *   8      4    message count (lets a reader size work without decoding)
 *   12     4    body length before compression
 *   16     4    body length as stored
 *   20     4    CRC-32 of bytes 0..20 followed by the stored body
 *   24     …    stored body
 *
 * The body: batch fields, then messages, processes and closed sockets. Strings are references into
 * a dictionary built while reading (ref 0 = a new string follows, ref k = the (k-1)th string), so a
 * process name or an IP is spelled once per batch. The socket 5-tuple is likewise spelled once per
 * socket. Timestamps are zigzag deltas from the previous message. Numbers are LEB128 varints.
 *
 * @example
 *   const bytes = encodeBatch(batch);            // Uint8Array, ready for store.put
 *   const again = decodeBatch(bytes);            // throws BatchFormatError on corruption
 */
import { brotliCompress, brotliCompressSync, brotliDecompressSync, constants as zc, crc32, deflateRaw, deflateRawSync, gunzipSync, gzip, gzipSync, inflateRawSync } from 'node:zlib';
import { promisify } from 'node:util';
import type { AddressFamily, Direction, L4Protocol, ProcessInfo, SocketClosed, SocketRole, SyscallName } from '../../../agent/capture/message.ts';
import type { L7Message, MsgType, ResponseStatus } from '../../../agent/protocols/parser.ts';
import type { Batch, ParsedMessage } from '../../../agent/shipping/batch.ts';
import { RESPONSE_STATUSES } from '../../../agent/contract/fields.ts';

export const BATCH_MAGIC = 'RPTB';
export const BATCH_FORMAT_VERSION = 3;
/** Every format version this reader decodes (a writer only writes {@link BATCH_FORMAT_VERSION}). */
export const READABLE_FORMAT_VERSIONS: readonly number[] = [1, 2, 3];
export const BATCH_HEADER_BYTES = 24;
/** Readers refuse bodies that claim to be larger than this unless told otherwise (allocation guard). */
export const DEFAULT_MAX_BODY_BYTES = 256 * 1024 * 1024;

export type Compression = 'none' | 'deflate' | 'gzip' | 'brotli';
const COMPRESSION_IDS: Record<Compression, number> = { none: 0, deflate: 1, gzip: 2, brotli: 3 };
const COMPRESSION_NAMES: Compression[] = ['none', 'deflate', 'gzip', 'brotli'];

export interface EncodeOptions {
  /** Default 'brotli' at quality 1: the smallest objects for the least CPU in our measurements. */
  compression?: Compression;
  /** zlib level (1..9) or brotli quality (0..11). Default 1. */
  level?: number;
}

export interface DecodeOptions {
  /** Refuse bodies larger than this before allocating (default {@link DEFAULT_MAX_BODY_BYTES}). */
  maxBodyBytes?: number;
}

export type BatchFormatReason =
  | 'truncated'
  | 'bad_magic'
  | 'unsupported_version'
  | 'bad_header'
  | 'bad_checksum'
  | 'too_large'
  | 'bad_compression'
  | 'malformed';

/** A batch object that cannot be read. `reason` is machine-readable; the message is one clear line. */
export class BatchFormatError extends Error {
  override readonly name = 'BatchFormatError';
  constructor(
    readonly reason: BatchFormatReason,
    detail: string,
    /** The object key, when the error came from reading a store. */
    readonly key?: string,
  ) {
    super(`${key ? `batch ${key}: ` : 'batch: '}${reason.replace(/_/g, ' ')}: ${detail}`);
  }

  /** The same error, attributed to an object key. */
  withKey(key: string): BatchFormatError {
    return new BatchFormatError(this.reason, this.message.replace(/^batch[^:]*: [^:]*: /, ''), key);
  }
}

/** A batch that cannot be written (a field out of its documented range). */
export class BatchEncodeError extends Error {
  override readonly name = 'BatchEncodeError';
}

export interface BatchHeader {
  version: number;
  compression: Compression;
  messageCount: number;
  bodyBytes: number;
  storedBytes: number;
}

// ---------------------------------------------------------------------------------------------
// Enumerations on the wire. Append only: indexes are part of format version 1.

const SYSCALLS: SyscallName[] = ['write', 'writev', 'sendto', 'sendmsg', 'sendmmsg', 'read', 'readv', 'recvfrom', 'recvmsg', 'recvmmsg'];
const SYSCALL_IDS = new Map<string, number>(SYSCALLS.map((s, i) => [s, i]));
const DIRECTIONS: Direction[] = ['egress', 'ingress'];
const FAMILIES: AddressFamily[] = ['ipv4', 'ipv6'];
const L4S: L4Protocol[] = ['tcp', 'udp'];
const ROLES: SocketRole[] = ['unknown', 'client', 'server'];
const STATUSES: readonly ResponseStatus[] = RESPONSE_STATUSES;

function enumId<T extends string>(values: readonly T[], v: T, field: string): number {
  const i = values.indexOf(v);
  if (i < 0) throw new BatchEncodeError(`${field}: unknown value ${JSON.stringify(v)}`);
  return i;
}

const TWO_52 = 2 ** 52;
const BIG_TWO_64 = 2n ** 64n;

// ---------------------------------------------------------------------------------------------
// Writer

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
  w.uint(m.bytes, 'bytes');
  w.bytes(m.payload);
  w.uint(m.l7.length, 'l7 count');
  for (const l of m.l7) writeL7(w, l);
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

  constructor(fields: BatchFields, initialBytes = 64 * 1024) {
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
  }

  finish(processes: readonly ProcessInfo[], closed: readonly SocketClosed[]): Uint8Array {
    const base = this.base ?? (closed.length > 0 ? closed[0].tsNs : 0n);
    this.head.sbig(base);
    this.head.uint(this.count, 'message count');
    this.head.append(this.msgs.finish());
    writeTail(this.head, base, processes, closed);
    return this.head.finish();
  }
}

// ---------------------------------------------------------------------------------------------
// Reader

class Reader {
  pos = 0;
  readonly strings: string[] = [];
  readonly tuples: Tuple[] = [];
  private readonly view: DataView;
  private readonly text: Buffer;

  constructor(readonly buf: Uint8Array) {
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    this.text = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  }

  fail(what: string): never {
    throw new BatchFormatError('malformed', `${what} at body offset ${this.pos}`);
  }

  get remaining(): number {
    return this.buf.length - this.pos;
  }

  u8(): number {
    if (this.pos >= this.buf.length) this.fail('unexpected end of body');
    return this.buf[this.pos++];
  }

  uint(): number {
    const b = this.buf;
    let p = this.pos;
    if (p >= b.length) this.fail('unexpected end of body');
    let byte = b[p++];
    if (byte < 0x80) {
      this.pos = p;
      return byte;
    }
    let n = byte & 0x7f;
    let mul = 0x80;
    for (let i = 1; i < 8; i++) {
      if (p >= b.length) this.fail('unexpected end of body');
      byte = b[p++];
      n += (byte & 0x7f) * mul;
      if (byte < 0x80) {
        this.pos = p;
        if (n > Number.MAX_SAFE_INTEGER) this.fail('integer out of range');
        return n;
      }
      mul *= 0x80;
    }
    this.fail('varint too long');
  }

  /** A count of items each taking at least `minBytes`: bounded by what is left, so garbage cannot over-allocate. */
  count(minBytes: number, what: string): number {
    const n = this.uint();
    if (n * minBytes > this.remaining) this.fail(`${what} count ${n} exceeds the body`);
    return n;
  }

  sbig(): bigint {
    const start = this.pos;
    const b = this.buf;
    // Fast path: up to 7 bytes (49 bits) fits a double exactly.
    let n = 0;
    let mul = 1;
    for (let i = 0; i < 7; i++) {
      if (this.pos >= b.length) this.fail('unexpected end of body');
      const byte = b[this.pos++];
      n += (byte & 0x7f) * mul;
      if (byte < 0x80) return BigInt(n % 2 === 0 ? n / 2 : -(n + 1) / 2);
      mul *= 0x80;
    }
    this.pos = start;
    let z = 0n;
    let shift = 0n;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= b.length) this.fail('unexpected end of body');
      const byte = b[this.pos++];
      z |= BigInt(byte & 0x7f) << shift;
      if (byte < 0x80) return z & 1n ? -((z + 1n) >> 1n) : z >> 1n;
      shift += 7n;
    }
    this.fail('varint too long');
  }

  num(): number {
    const tag = this.buf[this.pos];
    if (tag === 1) {
      if (this.pos + 9 > this.buf.length) this.fail('unexpected end of body');
      const v = this.view.getFloat64(this.pos + 1, true);
      this.pos += 9;
      return v;
    }
    const e = this.uint();
    if (e % 2 !== 0) this.fail('bad number tag');
    const z = e / 2;
    return z % 2 === 0 ? z / 2 : -(z + 1) / 2;
  }

  bytes(): Uint8Array {
    const len = this.uint();
    if (len > this.remaining) this.fail(`payload of ${len} bytes exceeds the body`);
    // A view, not a copy: payloads share the decoded body (readers are short-lived).
    const out = this.buf.subarray(this.pos, this.pos + len);
    this.pos += len;
    return out;
  }

  str(): string {
    const ref = this.uint();
    if (ref !== 0) {
      if (ref > this.strings.length) this.fail(`string ref ${ref} beyond dictionary of ${this.strings.length}`);
      return this.strings[ref - 1];
    }
    const len = this.uint();
    if (len > this.remaining) this.fail(`string of ${len} bytes exceeds the body`);
    const s = this.text.toString('utf8', this.pos, this.pos + len);
    this.pos += len;
    this.strings.push(s);
    return s;
  }

  tuple(): Tuple {
    const ref = this.uint();
    if (ref !== 0) {
      if (ref > this.tuples.length) this.fail(`socket ref ${ref} beyond table of ${this.tuples.length}`);
      return this.tuples[ref - 1];
    }
    const socketId = this.uint();
    const flags = this.u8();
    const family = FAMILIES[flags & 1];
    const l4 = L4S[(flags >> 1) & 1];
    const role = ROLES[(flags >> 2) & 3];
    if (role === undefined || flags >> 4 !== 0) this.fail(`bad socket flags ${flags}`);
    const t: Tuple = { socketId, family, l4, role, localIp: this.str(), localPort: this.uint(), remoteIp: this.str(), remotePort: this.uint() };
    this.tuples.push(t);
    return t;
  }
}

interface Tuple {
  socketId: number;
  family: AddressFamily;
  l4: L4Protocol;
  role: SocketRole;
  localIp: string;
  localPort: number;
  remoteIp: string;
  remotePort: number;
}

// <contract:rtb-l7>
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
/** The presence bits each format version knows. */
const F_KNOWN: Readonly<Record<number, number>> = { 1: 0x1ffff, 2: 0x7ffff, 3: 0xfffff };

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

function readL7(r: Reader, known: number): L7Message {
  const bits = r.uint();
  if (bits & ~known) r.fail(`unknown l7 flags ${bits}`);
  const msgType: MsgType = bits & F_MSG_TYPE ? 'response' : 'request';
  const l: L7Message = { l7Protocol: r.str(), msgType };
  if (bits & F_REQUEST_TYPE) l.requestType = r.str();
  if (bits & F_REQUEST_DOMAIN) l.requestDomain = r.str();
  if (bits & F_REQUEST_RESOURCE) l.requestResource = r.str();
  if (bits & F_ENDPOINT) l.endpoint = r.str();
  if (bits & F_REQUEST_ID) l.requestId = r.num();
  if (bits & F_RESPONSE_CODE) l.responseCode = r.num();
  if (bits & F_RESPONSE_STATUS) {
    const s = STATUSES[r.u8()];
    if (s === undefined) r.fail('bad response status');
    l.responseStatus = s;
  }
  if (bits & F_RESPONSE_EXCEPTION) l.responseException = r.str();
  if (bits & F_REQUEST_LENGTH) l.requestLength = r.num();
  if (bits & F_RESPONSE_LENGTH) l.responseLength = r.num();
  if (bits & F_TRACE_ID) l.traceId = r.str();
  if (bits & F_SPAN_ID) l.spanId = r.str();
  if (bits & F_PARENT_SPAN_ID) l.parentSpanId = r.str();
  if (bits & F_X_REQUEST_ID) l.xRequestId = r.str();
  if (bits & F_ATTRIBUTES) {
    const n = r.count(2, 'attribute');
    const attrs: Record<string, string> = {};
    for (let i = 0; i < n; i++) {
      const k = r.str();
      attrs[k] = r.str();
    }
    l.attributes = attrs;
  }
  if (bits & F_TRUNCATED) l.truncated = true;
  if (bits & F_ONE_WAY) l.oneWay = true;
  if (bits & F_VERSION) l.version = r.str();
  if (bits & F_TLS) l.tls = true;
  return l;
}
// </contract:rtb-l7>

/** Parse an uncompressed body. Exported for the benchmark; use {@link decodeBatch}. */
export function deserializeBatchBody(body: Uint8Array, version = BATCH_FORMAT_VERSION): Batch {
  const known = F_KNOWN[version];
  if (known === undefined) throw new BatchFormatError('unsupported_version', `format version ${version}, this reader knows ${READABLE_FORMAT_VERSIONS.join(', ')}`);
  const r = new Reader(body);
  const agentId = r.str();
  const host = r.str();
  const slot = r.uint();
  const slotSeconds = r.uint();
  const part = r.uint();
  const run = r.uint();
  const base = r.sbig();
  // Each message takes at least 14 bytes on the wire (14 one-byte fields).
  const count = r.count(14, 'message');
  const messages: ParsedMessage[] = new Array<ParsedMessage>(count);
  let prev = base;
  for (let i = 0; i < count; i++) {
    const tsNs = prev + r.sbig();
    prev = tsNs;
    const enterNs = tsNs + r.sbig();
    const exitNs = enterNs + r.sbig();
    const pid = r.uint();
    const tid = r.uint();
    const coroutineId = r.uint();
    const processName = r.str();
    const sd = r.u8();
    const syscall = SYSCALLS[sd >> 1];
    if (syscall === undefined) r.fail(`bad syscall ${sd >> 1}`);
    const t = r.tuple();
    const tcpSeq = r.uint();
    const syscallTraceId = r.uint();
    const handoffTraceId = version >= 3 ? r.uint() : 0;
    const bytes = r.uint();
    const payload = r.bytes();
    const nl7 = r.count(2, 'l7');
    const l7: L7Message[] = new Array<L7Message>(nl7);
    for (let j = 0; j < nl7; j++) l7[j] = readL7(r, known);
    const m: ParsedMessage = {
      tsNs,
      enterNs,
      exitNs,
      pid,
      tid,
      coroutineId,
      processName,
      syscall,
      direction: DIRECTIONS[sd & 1],
      socketId: t.socketId,
      family: t.family,
      l4: t.l4,
      localIp: t.localIp,
      localPort: t.localPort,
      remoteIp: t.remoteIp,
      remotePort: t.remotePort,
      role: t.role,
      tcpSeq,
      syscallTraceId,
      bytes,
      payload,
      l7,
    };
    // Only when there is one: messages without a hand-off read back exactly as they were written.
    if (handoffTraceId !== 0) m.handoffTraceId = handoffTraceId;
    messages[i] = m;
  }

  const np = r.count(6, 'process');
  const processes: ProcessInfo[] = new Array<ProcessInfo>(np);
  for (let i = 0; i < np; i++) {
    processes[i] = { pid: r.uint(), startTime: r.uint(), name: r.str(), cmdline: r.str(), containerId: r.str(), cgroup: r.str() };
  }

  const nc = r.count(3, 'closed socket');
  const closed: SocketClosed[] = new Array<SocketClosed>(nc);
  prev = base;
  for (let i = 0; i < nc; i++) {
    const tsNs = prev + r.sbig();
    prev = tsNs;
    closed[i] = { tsNs, pid: r.uint(), socketId: r.uint() };
  }
  if (r.remaining !== 0) r.fail(`${r.remaining} trailing bytes`);
  const batch: Batch = { version, agentId, host, slot, slotSeconds, part, messages, processes, closed };
  if (run !== 0) batch.run = run;
  return batch;
}

// ---------------------------------------------------------------------------------------------
// Framing

const DEFAULT_COMPRESSION: Compression = 'brotli';

function defaultLevel(_c: Compression): number {
  return 1;
}

function compressSync(body: Uint8Array, c: Compression, level: number): Uint8Array {
  switch (c) {
    case 'none':
      return body;
    case 'deflate':
      return deflateRawSync(body, { level });
    case 'gzip':
      return gzipSync(body, { level });
    case 'brotli':
      return brotliCompressSync(body, { params: { [zc.BROTLI_PARAM_QUALITY]: level, [zc.BROTLI_PARAM_SIZE_HINT]: body.length } });
  }
}

const deflateRawAsync = promisify(deflateRaw);
const gzipAsync = promisify(gzip);
const brotliAsync = promisify(brotliCompress);

async function compressAsync(body: Uint8Array, c: Compression, level: number): Promise<Uint8Array> {
  switch (c) {
    case 'none':
      return body;
    case 'deflate':
      return deflateRawAsync(body, { level });
    case 'gzip':
      return gzipAsync(body, { level });
    case 'brotli':
      return brotliAsync(body, { params: { [zc.BROTLI_PARAM_QUALITY]: level, [zc.BROTLI_PARAM_SIZE_HINT]: body.length } });
  }
}

function frame(body: Uint8Array, stored: Uint8Array, c: Compression, messageCount: number): Uint8Array {
  if (body.length > 0xffffffff || stored.length > 0xffffffff) throw new BatchEncodeError('batch larger than 4 GiB');
  const out = new Uint8Array(BATCH_HEADER_BYTES + stored.length);
  const v = new DataView(out.buffer);
  for (let i = 0; i < 4; i++) out[i] = BATCH_MAGIC.charCodeAt(i);
  out[4] = BATCH_FORMAT_VERSION;
  out[5] = COMPRESSION_IDS[c];
  v.setUint16(6, 0, true);
  v.setUint32(8, messageCount, true);
  v.setUint32(12, body.length, true);
  v.setUint32(16, stored.length, true);
  out.set(stored, BATCH_HEADER_BYTES);
  v.setUint32(20, crc32(out.subarray(BATCH_HEADER_BYTES), crc32(out.subarray(0, 20))), true);
  return out;
}

/** Encode a batch into one object (synchronous: for tests and tools; the agent uses {@link encodeBatchAsync}). */
export function encodeBatch(batch: Batch, options: EncodeOptions = {}): Uint8Array {
  const c = options.compression ?? DEFAULT_COMPRESSION;
  const body = serializeBatchBody(batch);
  return frame(body, compressSync(body, c, options.level ?? defaultLevel(c)), c, batch.messages.length);
}

/** Frame a body from {@link BatchBodyStream}, compressing on the libuv thread pool. */
export async function encodeBodyAsync(body: Uint8Array, messageCount: number, options: EncodeOptions = {}): Promise<Uint8Array> {
  const c = options.compression ?? DEFAULT_COMPRESSION;
  return frame(body, await compressAsync(body, c, options.level ?? defaultLevel(c)), c, messageCount);
}

/** Encode a batch, compressing on the libuv thread pool so the event loop keeps draining capture. */
export async function encodeBatchAsync(batch: Batch, options: EncodeOptions = {}): Promise<Uint8Array> {
  const c = options.compression ?? DEFAULT_COMPRESSION;
  const body = serializeBatchBody(batch);
  return frame(body, await compressAsync(body, c, options.level ?? defaultLevel(c)), c, batch.messages.length);
}

/** Validate and read the 24-byte header (checksum included); throws {@link BatchFormatError}. */
export function readBatchHeader(bytes: Uint8Array, options: DecodeOptions = {}): BatchHeader {
  if (bytes.length < BATCH_HEADER_BYTES) throw new BatchFormatError('truncated', `${bytes.length} bytes, shorter than the ${BATCH_HEADER_BYTES}-byte header`);
  for (let i = 0; i < 4; i++) {
    if (bytes[i] !== BATCH_MAGIC.charCodeAt(i)) throw new BatchFormatError('bad_magic', `not a Riptide batch (first bytes ${Buffer.from(bytes.subarray(0, 4)).toString('hex')})`);
  }
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const version = bytes[4];
  if (!READABLE_FORMAT_VERSIONS.includes(version)) throw new BatchFormatError('unsupported_version', `format version ${version}, this reader knows ${READABLE_FORMAT_VERSIONS.join(', ')}`);
  const compression = COMPRESSION_NAMES[bytes[5]];
  if (compression === undefined) throw new BatchFormatError('bad_header', `unknown compression id ${bytes[5]}`);
  const flags = v.getUint16(6, true);
  if (flags !== 0) throw new BatchFormatError('bad_header', `unknown flags ${flags}`);
  const messageCount = v.getUint32(8, true);
  const bodyBytes = v.getUint32(12, true);
  const storedBytes = v.getUint32(16, true);
  const actual = bytes.length - BATCH_HEADER_BYTES;
  if (actual < storedBytes) throw new BatchFormatError('truncated', `body has ${actual} of ${storedBytes} bytes`);
  if (actual > storedBytes) throw new BatchFormatError('bad_header', `${actual - storedBytes} bytes after the body`);
  const want = v.getUint32(20, true);
  const got = crc32(bytes.subarray(BATCH_HEADER_BYTES), crc32(bytes.subarray(0, 20)));
  if (want !== got) throw new BatchFormatError('bad_checksum', `CRC-32 ${got.toString(16)} does not match ${want.toString(16)}`);
  const max = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  if (bodyBytes > max) throw new BatchFormatError('too_large', `body of ${bodyBytes} bytes exceeds the ${max}-byte limit`);
  if (compression === 'none' && bodyBytes !== storedBytes) throw new BatchFormatError('bad_header', 'uncompressed body with two different lengths');
  return { version, compression, messageCount, bodyBytes, storedBytes };
}

function decompress(stored: Uint8Array, h: BatchHeader): Uint8Array {
  if (h.compression === 'none') return stored;
  // maxOutputLength caps the allocation at what the header declared (+1 to detect a lie).
  const opts = { maxOutputLength: Math.max(1, h.bodyBytes + 1) };
  let out: Buffer;
  try {
    if (h.compression === 'deflate') out = inflateRawSync(stored, opts);
    else if (h.compression === 'gzip') out = gunzipSync(stored, opts);
    else out = brotliDecompressSync(stored, opts);
  } catch (err) {
    throw new BatchFormatError('bad_compression', `${h.compression} stream does not decompress: ${(err as Error).message}`);
  }
  if (out.length !== h.bodyBytes) throw new BatchFormatError('bad_compression', `body is ${out.length} bytes, header says ${h.bodyBytes}`);
  // A plain Uint8Array view: payloads handed to readers are Uint8Array, as the contract says.
  return new Uint8Array(out.buffer, out.byteOffset, out.length);
}

/** Decode one batch object. Throws {@link BatchFormatError} (never anything else) on bad input. */
export function decodeBatch(bytes: Uint8Array, options: DecodeOptions = {}): Batch {
  const h = readBatchHeader(bytes, options);
  const body = decompress(bytes.subarray(BATCH_HEADER_BYTES), h);
  let batch: Batch;
  try {
    batch = deserializeBatchBody(body, h.version);
  } catch (err) {
    if (err instanceof BatchFormatError) throw err;
    throw new BatchFormatError('malformed', (err as Error).message);
  }
  if (batch.messages.length !== h.messageCount) throw new BatchFormatError('malformed', `header counts ${h.messageCount} messages, body holds ${batch.messages.length}`);
  return batch;
}

/**
 * The RTB body reader: bounds-checked varints, the dictionary and tuple table as they are met, the
 * L7 record (generated from the field catalogue) and {@link deserializeBatchBody}. Garbage yields a
 * {@link BatchFormatError}, never a crash, a hang or a huge allocation.
 */
import type { AddressFamily, L4Protocol, ProcessInfo, SocketClosed, SocketRole } from '../../capture/message.ts';
import type { L7Message, MsgType, OneWayRule, ProtocolDescriptor } from '../../protocols/parser.ts';
import type { Batch, ParsedMessage } from '../batch.ts';
import { BATCH_FORMAT_VERSION, BatchFormatError, DIRECTIONS, FAMILIES, L4S, PAIRINGS, READABLE_FORMAT_VERSIONS, ROLES, STATUSES, SYSCALLS } from './format.ts';

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

// <contract:rtb-l7-read>
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
const F_KNOWN: Readonly<Record<number, number>> = { 1: 0x1ffff, 2: 0x7ffff, 3: 0xfffff, 4: 0xfffff };

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
// </contract:rtb-l7-read>

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
    const observationPoint = version >= 4 ? r.str() : '';
    const tcpRetransmits = version >= 4 ? r.uint() : 0;
    const tcpSrttUs = version >= 4 ? r.uint() : 0;
    const connectFailed = version >= 4 ? r.u8() : 0;
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
    if (observationPoint !== '') m.observationPoint = observationPoint;
    if (tcpRetransmits !== 0) m.tcpRetransmits = tcpRetransmits;
    if (tcpSrttUs !== 0) m.tcpSrttUs = tcpSrttUs;
    if (connectFailed !== 0) m.connectFailed = true;
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
  const descriptors = version >= 4 ? readDescriptors(r) : [];
  if (r.remaining !== 0) r.fail(`${r.remaining} trailing bytes`);
  const batch: Batch = { version, agentId, host, slot, slotSeconds, part, messages, processes, closed };
  if (descriptors.length > 0) batch.descriptors = descriptors;
  if (run !== 0) batch.run = run;
  return batch;
}

/** The descriptor section (format 4; layout in writer.ts writeDescriptors). */
function readDescriptors(r: Reader): ProtocolDescriptor[] {
  // name, pairing, alias count, rule count, timeout, slack count: at least 6 bytes each.
  const n = r.count(6, 'descriptor');
  const out: ProtocolDescriptor[] = new Array<ProtocolDescriptor>(n);
  for (let i = 0; i < n; i++) {
    const name = r.str();
    const pairing = PAIRINGS[r.u8()];
    if (pairing === undefined) r.fail(`descriptor ${name}: bad pairing`);
    const aliases: string[] = new Array<string>(r.count(1, 'alias'));
    for (let k = 0; k < aliases.length; k++) aliases[k] = r.str();
    const oneWay: OneWayRule[] = new Array<OneWayRule>(r.count(2, 'one-way rule'));
    for (let k = 0; k < oneWay.length; k++) oneWay[k] = { requestType: r.str(), when: r.str() };
    const d: { -readonly [K in keyof ProtocolDescriptor]: ProtocolDescriptor[K] } = { name, aliases, pairing, oneWay };
    const timeout = r.uint();
    if (timeout > 0) d.timeoutMs = timeout - 1;
    const slack = r.uint();
    if (slack > 0) {
      if (slack - 1 > r.remaining) r.fail(`sequence slack count ${slack - 1} exceeds the body`);
      const xs: number[] = new Array<number>(slack - 1);
      for (let k = 0; k < xs.length; k++) xs[k] = r.num();
      d.sequenceSlack = xs;
    }
    out[i] = d;
  }
  return out;
}

/**
 * Turns ring-buffer records into {@link CapturedMessage}s and lifecycle events. Offsets come from
 * layout.generated.ts (generated from the object's BTF), never from hand-kept numbers.
 *
 * Hot path: one call per record. IP strings are cached by address, comm strings by content, and
 * the payload is the only copy made.
 */
import type { AddressFamily, CapturedMessage, Direction, SocketClosed, SocketRole, SyscallName } from './message.ts';
import {
  RT_EV_CLOSE,
  RT_EV_DATA,
  RT_EV_PROC_EXEC,
  RT_EV_PROC_EXIT,
  RT_EV_TLS_DATA,
  RtCloseEvent as C,
  RtDataEvent as D,
  RtProcEvent as P,
  RtTlsEvent as T,
} from './layout.generated.ts';
import type { TlsPlaintext } from './tls-join.ts';

const SYSCALLS: SyscallName[] = ['write', 'writev', 'sendto', 'sendmsg', 'sendmmsg', 'read', 'readv', 'recvfrom', 'recvmsg', 'recvmmsg'];
const ROLES: SocketRole[] = ['unknown', 'client', 'server'];
const DIRECTIONS: Direction[] = ['egress', 'ingress'];
const AF_INET6 = 10;
const IPPROTO_UDP = 17;

export interface ProcessEvent {
  kind: 'exec' | 'exit';
  pid: number;
  tsNs: bigint;
  comm: string;
}

export type DecodedRecord =
  | { kind: 'data'; message: CapturedMessage }
  | { kind: 'close'; event: SocketClosed }
  | { kind: 'process'; event: ProcessEvent }
  | { kind: 'tls'; plaintext: TlsPlaintext };

/** Maps the kernel's monotonic clock to wall-clock ns. */
export class Clock {
  readonly offsetNs: bigint;
  constructor() {
    // bpf_ktime_get_ns() and process.hrtime use CLOCK_MONOTONIC; take the offset around a Date.now() tick.
    const before = process.hrtime.bigint();
    const wall = BigInt(Date.now()) * 1_000_000n;
    const after = process.hrtime.bigint();
    this.offsetNs = wall - (before + after) / 2n;
  }
  toWall(monoNs: bigint): bigint {
    return monoNs + this.offsetNs;
  }
}

export class DecodeError extends Error {}

/**
 * Hands out payload copies from shared slabs: one ArrayBuffer per 256 KiB of payload instead of one
 * per message (a fresh small ArrayBuffer costs ~0.5 µs; a slab slice a few ns). A slab lives as long
 * as any message that points into it, which batching bounds anyway.
 */
class PayloadSlab {
  private slab = new Uint8Array(0);
  private used = 0;
  constructor(private readonly slabBytes = 256 * 1024) {}
  copy(src: Uint8Array, start: number, end: number): Uint8Array {
    const n = end - start;
    if (n > this.slabBytes / 4) return src.slice(start, end);
    if (this.used + n > this.slab.length) {
      this.slab = new Uint8Array(this.slabBytes);
      this.used = 0;
    }
    // Views made with the constructor: subarray() goes through the species lookup and costs more
    // than the copy itself for a head of a few hundred bytes.
    const out = new Uint8Array(this.slab.buffer, this.used, n);
    out.set(new Uint8Array(src.buffer, src.byteOffset + start, n));
    // Keep 8-byte alignment so typed-array views over payloads stay cheap.
    this.used = (this.used + n + 7) & ~7;
    return out;
  }
}

/** u64 little-endian as a JS number (exact below 2^53, which socket and trace ids are by construction). */
function u64(view: DataView, at: number): number {
  return view.getUint32(at, true) + view.getUint32(at + 4, true) * 4294967296;
}

interface CommEntry {
  w: [number, number, number, number];
  name: string;
}

export class RecordDecoder {
  private readonly v4Cache = new Map<number, string>();
  private readonly v6Cache = new Map<string, string>();
  private readonly commCache = new Map<number, CommEntry>();
  private readonly slab = new PayloadSlab();
  /**
   * Data payloads as views into the ring bytes instead of copies: for a consumer that is done with
   * them before the record is released (Capture sets this for sinks that say so). TLS plaintext is
   * always copied (the joiner keeps it until its ciphertext shows).
   */
  payloadViews = false;
  constructor(private readonly clock = new Clock()) {}

  decode(view: DataView, bytes: Uint8Array, off: number, len: number): DecodedRecord {
    if (len < 8) throw new DecodeError(`record of ${len} bytes is too short`);
    const kind = view.getUint32(off, true);
    switch (kind) {
      case RT_EV_DATA:
        return { kind: 'data', message: this.decodeData(view, bytes, off, len) };
      case RT_EV_CLOSE:
        if (len < C.SIZE) throw new DecodeError(`close record of ${len} bytes, want ${C.SIZE}`);
        return {
          kind: 'close',
          event: {
            tsNs: this.clock.toWall(view.getBigUint64(off + C.ts_ns.offset, true)),
            pid: view.getUint32(off + C.pid.offset, true),
            socketId: u64(view, off + C.socket_id.offset),
          },
        };
      case RT_EV_PROC_EXEC:
      case RT_EV_PROC_EXIT:
        if (len < P.SIZE) throw new DecodeError(`process record of ${len} bytes, want ${P.SIZE}`);
        return {
          kind: 'process',
          event: {
            kind: kind === RT_EV_PROC_EXEC ? 'exec' : 'exit',
            pid: view.getUint32(off + P.pid.offset, true),
            tsNs: this.clock.toWall(view.getBigUint64(off + P.ts_ns.offset, true)),
            comm: this.comm(bytes, off + P.comm.offset, view),
          },
        };
      case RT_EV_TLS_DATA: {
        if (len < T.SIZE) throw new DecodeError(`TLS record of ${len} bytes, want at least ${T.SIZE}`);
        const payloadLen = view.getUint32(off + T.payload_len.offset, true);
        if (T.SIZE + payloadLen > len) throw new DecodeError(`TLS record claims ${payloadLen} payload bytes but has ${len - T.SIZE}`);
        const start = off + T.SIZE;
        return {
          kind: 'tls',
          plaintext: {
            pid: view.getUint32(off + T.pid.offset, true),
            tid: view.getUint32(off + T.tid.offset, true),
            enterNs: this.clock.toWall(view.getBigUint64(off + T.enter_ns.offset, true)),
            exitNs: this.clock.toWall(view.getBigUint64(off + T.exit_ns.offset, true)),
            ssl: view.getBigUint64(off + T.ssl.offset, true),
            coroutineId: u64(view, off + T.coroutine_id.offset),
            direction: DIRECTIONS[bytes[off + T.direction.offset]] ?? 'egress',
            bytes: u64(view, off + T.bytes.offset),
            payload: this.slab.copy(bytes, start, start + payloadLen),
            processName: this.comm(bytes, off + T.comm.offset, view),
          },
        };
      }
      default:
        throw new DecodeError(`unknown record kind ${kind}`);
    }
  }

  private decodeData(view: DataView, bytes: Uint8Array, off: number, len: number): CapturedMessage {
    if (len < D.SIZE) throw new DecodeError(`data record of ${len} bytes, want at least ${D.SIZE}`);
    const payloadLen = view.getUint32(off + D.payload_len.offset, true);
    if (D.SIZE + payloadLen > len) throw new DecodeError(`data record claims ${payloadLen} payload bytes but has ${len - D.SIZE}`);
    const direction = DIRECTIONS[bytes[off + D.direction.offset]] ?? 'egress';
    const enterNs = this.clock.toWall(view.getBigUint64(off + D.enter_ns.offset, true));
    const exitNs = this.clock.toWall(view.getBigUint64(off + D.exit_ns.offset, true));
    let family: AddressFamily = view.getUint16(off + D.family.offset, true) === AF_INET6 ? 'ipv6' : 'ipv4';
    let localIp = this.ip(family, bytes, off + D.local_addr.offset);
    let remoteIp = this.ip(family, bytes, off + D.remote_addr.offset);
    // A dual-stack socket talking IPv4 shows v4-mapped addresses (::ffff:a.b.c.d): report them as IPv4.
    if (family === 'ipv6' && localIp.startsWith('::ffff:') && localIp.includes('.')) {
      family = 'ipv4';
      localIp = localIp.slice(7);
      if (remoteIp.startsWith('::ffff:')) remoteIp = remoteIp.slice(7);
    }
    const payloadStart = off + D.SIZE;
    return {
      tsNs: direction === 'egress' ? enterNs : exitNs,
      enterNs,
      exitNs,
      pid: view.getUint32(off + D.pid.offset, true),
      tid: view.getUint32(off + D.tid.offset, true),
      coroutineId: u64(view, off + D.coroutine_id.offset),
      processName: this.comm(bytes, off + D.comm.offset, view),
      syscall: SYSCALLS[bytes[off + D.syscall.offset]] ?? 'write',
      direction,
      socketId: u64(view, off + D.socket_id.offset),
      family,
      l4: bytes[off + D.l4.offset] === IPPROTO_UDP ? 'udp' : 'tcp',
      localIp,
      localPort: view.getUint16(off + D.local_port.offset, true),
      remoteIp,
      remotePort: view.getUint16(off + D.remote_port.offset, true),
      role: ROLES[bytes[off + D.role.offset]] ?? 'unknown',
      tcpSeq: view.getUint32(off + D.tcp_seq.offset, true),
      syscallTraceId: u64(view, off + D.syscall_trace_id.offset),
      handoffTraceId: u64(view, off + D.handoff_trace_id.offset),
      // Read at the syscall's exit from the socket (0: UDP, or no sample yet); undefined keeps "unknown" out of the output.
      tcpSrttUs: view.getUint32(off + D.tcp_srtt_us.offset, true) || undefined,
      bytes: view.getUint32(off + D.bytes.offset, true) + view.getInt32(off + D.bytes.offset + 4, true) * 4294967296,
      payload: this.payloadViews ? new Uint8Array(bytes.buffer, bytes.byteOffset + payloadStart, payloadLen) : this.slab.copy(bytes, payloadStart, payloadStart + payloadLen),
    };
  }

  private ip(family: AddressFamily, bytes: Uint8Array, at: number): string {
    if (family === 'ipv4') {
      const key = ((bytes[at] << 24) | (bytes[at + 1] << 16) | (bytes[at + 2] << 8) | bytes[at + 3]) >>> 0;
      let s = this.v4Cache.get(key);
      if (s === undefined) {
        s = `${bytes[at]}.${bytes[at + 1]}.${bytes[at + 2]}.${bytes[at + 3]}`;
        if (this.v4Cache.size > 65536) this.v4Cache.clear();
        this.v4Cache.set(key, s);
      }
      return s;
    }
    let hex = '';
    for (let i = 0; i < 16; i++) hex += (bytes[at + i] < 16 ? '0' : '') + bytes[at + i].toString(16);
    let s = this.v6Cache.get(hex);
    if (s === undefined) {
      s = formatIpv6(bytes.subarray(at, at + 16));
      if (this.v6Cache.size > 65536) this.v6Cache.clear();
      this.v6Cache.set(hex, s);
    }
    return s;
  }

  /** comm[16] as a string, cached by its 16 bytes (four u32 reads instead of building a key string). */
  private comm(bytes: Uint8Array, at: number, view: DataView): string {
    const a = view.getUint32(at, true);
    const b = view.getUint32(at + 4, true);
    const c = view.getUint32(at + 8, true);
    const d = view.getUint32(at + 12, true);
    const key = (a ^ Math.imul(b, 0x9e3779b1) ^ Math.imul(c, 0x85ebca6b) ^ Math.imul(d, 0xc2b2ae35)) >>> 0;
    const hit = this.commCache.get(key);
    if (hit !== undefined && hit.w[0] === a && hit.w[1] === b && hit.w[2] === c && hit.w[3] === d) return hit.name;
    let end = at;
    while (end < at + 16 && bytes[end] !== 0) end++;
    const name = Buffer.from(bytes.buffer, bytes.byteOffset + at, end - at).toString('utf8');
    if (this.commCache.size > 4096) this.commCache.clear();
    this.commCache.set(key, { w: [a, b, c, d], name });
    return name;
  }
}

/** RFC 5952 text form: lower case, longest run of zero groups as ::, v4-mapped as ::ffff:a.b.c.d. */
export function formatIpv6(b: Uint8Array): string {
  const isMapped = b.subarray(0, 10).every((x) => x === 0) && b[10] === 0xff && b[11] === 0xff;
  if (isMapped) return `::ffff:${b[12]}.${b[13]}.${b[14]}.${b[15]}`;
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((b[i] << 8) | b[i + 1]);
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(':');
  return hex.slice(0, bestStart).join(':') + '::' + hex.slice(bestStart + bestLen).join(':');
}

/**
 * Network records (bpf/riptide-net.bpf.c) → agent messages (issue 19), without any I/O:
 *
 *   - {@link decodeNetRecord}: one ring record → a packet or a TCP health event.
 *   - {@link NetFlows}: packets → network messages. Per (interface, TCP flow) the endpoint that
 *     sent the first payload is the client. Only the first segment of each run in one direction is
 *     a message — the first packet of a request and of its response — so the parsers see message
 *     heads, as they do from syscalls; continuation segments and retransmits are skipped (counted).
 *   - {@link TcpHealth}: per connection (local → remote tuple) retransmits and smoothed RTT, read
 *     onto the process messages of that connection, and the failed connects.
 */
import type { CapturedMessage } from './message.ts';
import { formatIpv6 } from './decoder.ts';
import { RT_NET_EGRESS, RT_NET_PACKET, RT_NET_RETRANS, RT_NET_RTT, RT_NET_STATE, RT_TCP_CLOSE, RT_TCP_ESTABLISHED, RT_TCP_SYN_SENT, RtNetEvent as E } from './net-layout.generated.ts';

export interface NetPacket {
  kind: 'packet';
  monoNs: bigint;
  ifindex: number;
  direction: 'egress' | 'ingress';
  family: 'ipv4' | 'ipv6';
  srcIp: string;
  srcPort: number;
  dstIp: string;
  dstPort: number;
  seq: number;
  payloadLen: number;
  payload: Uint8Array;
}

export interface NetHealthEvent {
  kind: 'retransmit' | 'state' | 'rtt';
  monoNs: bigint;
  sk: bigint;
  family: 'ipv4' | 'ipv6';
  localIp: string;
  localPort: number;
  remoteIp: string;
  remotePort: number;
  oldState: number;
  newState: number;
  srttUs: number;
  totalRetrans: number;
}

function ip(bytes: Uint8Array, at: number, v4: boolean): string {
  return v4 ? `${bytes[at]}.${bytes[at + 1]}.${bytes[at + 2]}.${bytes[at + 3]}` : formatIpv6(bytes.subarray(at, at + 16));
}

/** Decodes one record; throws on a short or unknown one. */
export function decodeNetRecord(view: DataView, bytes: Uint8Array, off: number, len: number): NetPacket | NetHealthEvent {
  const hdr = E.payload.offset;
  if (len < hdr) throw new Error(`network record of ${len} bytes, shorter than its ${hdr}-byte header`);
  const kind = view.getUint32(off + E.kind.offset, true);
  const v4 = bytes[off + E.family.offset] === 4;
  const family = v4 ? 'ipv4' : 'ipv6';
  const monoNs = view.getBigUint64(off + E.ts_ns.offset, true);
  const sport = view.getUint16(off + E.sport.offset, true);
  const dport = view.getUint16(off + E.dport.offset, true);
  const saddr = ip(bytes, off + E.saddr.offset, v4);
  const daddr = ip(bytes, off + E.daddr.offset, v4);
  if (kind === RT_NET_PACKET) {
    const captured = view.getUint32(off + E.captured.offset, true);
    if (hdr + captured > len) throw new Error(`network record claims ${captured} payload bytes, has ${len - hdr}`);
    return {
      kind: 'packet',
      monoNs,
      ifindex: view.getUint32(off + E.ifindex.offset, true),
      direction: bytes[off + E.direction.offset] === RT_NET_EGRESS ? 'egress' : 'ingress',
      family,
      srcIp: saddr,
      srcPort: sport,
      dstIp: daddr,
      dstPort: dport,
      seq: view.getUint32(off + E.seq.offset, true),
      payloadLen: view.getUint32(off + E.payload_len.offset, true),
      payload: bytes.slice(off + hdr, off + hdr + captured),
    };
  }
  if (kind === RT_NET_RETRANS || kind === RT_NET_STATE || kind === RT_NET_RTT) {
    return {
      kind: kind === RT_NET_RETRANS ? 'retransmit' : kind === RT_NET_STATE ? 'state' : 'rtt',
      monoNs,
      sk: view.getBigUint64(off + E.sk.offset, true),
      family,
      localIp: saddr,
      localPort: sport,
      remoteIp: daddr,
      remotePort: dport,
      oldState: view.getInt32(off + E.old_state.offset, true),
      newState: view.getInt32(off + E.new_state.offset, true),
      srttUs: view.getUint32(off + E.srtt_us.offset, true),
      totalRetrans: view.getUint32(off + E.total_retrans.offset, true),
    };
  }
  throw new Error(`unknown network record kind ${kind}`);
}

interface Flow {
  socketId: number;
  clientIp: string;
  clientPort: number;
  /** Who sent the last message head: true = the client. */
  lastFromClient: boolean | null;
  lastSeq: number;
  lastSeenMs: number;
}

export interface NetFlowStats {
  messages: number;
  continuations: number;
}

/**
 * Socket ids of network flows: above the syscall ids' range (those start at now_ms × 1024, about
 * 2^50.6 today), still below 2^53.
 */
export function netIdSeed(nowMs = Date.now()): number {
  return 2 ** 51 + nowMs * 1024;
}

export class NetFlows {
  private readonly flows = new Map<string, Flow>();
  private nextId: number;
  readonly stats: NetFlowStats = { messages: 0, continuations: 0 };

  constructor(
    private readonly toWall: (monoNs: bigint) => bigint,
    seed = netIdSeed(),
    private readonly maxFlows = 65_536,
  ) {
    this.nextId = seed;
  }

  get size(): number {
    return this.flows.size;
  }

  /** A socket id from the same range, for a message that is not a flow's (a failed connect). */
  newId(): number {
    return this.nextId++;
  }

  /** A network message for the first segment of a request or response; null for the rest. */
  onPacket(p: NetPacket, ifname: string, nowMs = Date.now()): CapturedMessage | null {
    const a = `${p.srcIp}:${p.srcPort}`;
    const b = `${p.dstIp}:${p.dstPort}`;
    const key = `${p.ifindex}|${a < b ? a + '|' + b : b + '|' + a}`;
    let f = this.flows.get(key);
    if (!f) {
      if (this.flows.size >= this.maxFlows) this.expire(nowMs, 0);
      f = { socketId: this.nextId++, clientIp: p.srcIp, clientPort: p.srcPort, lastFromClient: null, lastSeq: -1, lastSeenMs: nowMs };
      this.flows.set(key, f);
    }
    f.lastSeenMs = nowMs;
    const fromClient = p.srcIp === f.clientIp && p.srcPort === f.clientPort;
    if (f.lastFromClient === fromClient) {
      this.stats.continuations++;
      return null;
    }
    f.lastFromClient = fromClient;
    f.lastSeq = p.seq;
    this.stats.messages++;
    const ts = this.toWall(p.monoNs);
    return {
      tsNs: ts,
      enterNs: ts,
      exitNs: ts,
      pid: 0,
      tid: 0,
      coroutineId: 0,
      processName: '',
      // Parsers read direction and role only; the syscall names which way the bytes went.
      syscall: fromClient ? 'write' : 'read',
      direction: fromClient ? 'egress' : 'ingress',
      socketId: f.socketId,
      family: p.family,
      l4: 'tcp',
      localIp: f.clientIp,
      localPort: f.clientPort,
      remoteIp: fromClient ? p.dstIp : p.srcIp,
      remotePort: fromClient ? p.dstPort : p.srcPort,
      role: 'client',
      tcpSeq: p.seq,
      syscallTraceId: 0,
      bytes: p.payloadLen,
      payload: p.payload,
      observationPoint: ifname,
    };
  }

  /** Forgets flows idle for `idleMs` (all with 0); returns their socket ids (to close them downstream). */
  expire(nowMs = Date.now(), idleMs = 60_000): number[] {
    const gone: number[] = [];
    for (const [k, f] of this.flows) {
      if (nowMs - f.lastSeenMs >= idleMs) {
        this.flows.delete(k);
        gone.push(f.socketId);
      }
    }
    return gone;
  }
}

interface ConnHealth {
  retransmits: number;
  /** Retransmits already handed to a message (each is reported once). */
  reported: number;
  srttUs: number;
  seenMs: number;
}

export class TcpHealth {
  private readonly conns = new Map<string, ConnHealth>();
  constructor(private readonly maxConns = 65_536) {}

  private static key(localIp: string, localPort: number, remoteIp: string, remotePort: number): string {
    return `${localIp}:${localPort}>${remoteIp}:${remotePort}`;
  }

  /**
   * Takes a health event; returns true when it is a failed connect (SYN_SENT → CLOSE), which the
   * caller turns into a connect-failure message.
   */
  onEvent(e: NetHealthEvent, nowMs = Date.now()): boolean {
    const k = TcpHealth.key(e.localIp, e.localPort, e.remoteIp, e.remotePort);
    if (e.kind === 'state' && e.oldState === RT_TCP_SYN_SENT && e.newState === RT_TCP_CLOSE) {
      this.conns.delete(k);
      return true;
    }
    let c = this.conns.get(k);
    if (!c) {
      // Only a retransmit opens an entry: the RTT of a message comes with its own capture record
      // (read at the syscall), so connections that never retransmit cost annotate() nothing.
      if (e.kind !== 'retransmit') return false;
      if (this.conns.size >= this.maxConns) this.conns.clear();
      c = { retransmits: 0, reported: 0, srttUs: 0, seenMs: nowMs };
      this.conns.set(k, c);
    }
    c.seenMs = nowMs;
    if (e.kind === 'retransmit') c.retransmits++;
    if (e.srttUs > 0) c.srttUs = e.srttUs;
    // An established connection ending: its last figures were just read; forget it a little later.
    if (e.kind === 'state' && e.oldState === RT_TCP_ESTABLISHED) c.seenMs = nowMs - 50_000;
    return false;
  }

  /**
   * Sets tcpRetransmits (those since the connection's previous message: each retransmit is told
   * once, to the next message of its connection) and tcpSrttUs on a process message.
   */
  annotate(m: CapturedMessage): void {
    if (m.l4 !== 'tcp' || this.conns.size === 0) return;
    const c = this.conns.get(TcpHealth.key(m.localIp, m.localPort, m.remoteIp, m.remotePort));
    if (!c) return;
    if (c.retransmits > c.reported) m.tcpRetransmits = c.retransmits - c.reported;
    c.reported = c.retransmits;
    // The capture record's own RTT (read at this syscall) is fresher than a connect's or a retransmit's.
    if (c.srttUs > 0 && m.tcpSrttUs === undefined) m.tcpSrttUs = c.srttUs;
  }

  expire(nowMs = Date.now(), idleMs = 60_000): void {
    for (const [k, c] of this.conns) if (nowMs - c.seenMs >= idleMs) this.conns.delete(k);
  }
}

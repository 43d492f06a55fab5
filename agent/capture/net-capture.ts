/**
 * Network capture (issue 19): the TC observation points and TCP health of bpf/riptide-net.bpf.o,
 * drained on its own timer beside the syscall capture.
 *
 *   interfaces matching --net-interfaces (rescanned every few seconds: pods come and go)
 *     → rt_net_ingress/egress → net_events ring → {@link NetFlows} → network messages (the
 *       parsers turn them into L7 messages like any other; `observationPoint` = interface name)
 *   tcp:tcp_retransmit_skb, sock:inet_sock_set_state → {@link TcpHealth} → retransmits and RTT on
 *     the process messages of the same connection ({@link NetCapture.annotate}); failed connects
 *     become connect-failure messages.
 *
 * The agent's filters apply here too (network records have no pid): its --filter-port goes into
 * the kernel when it is the only filter (other ports' packets and health events are counted, not
 * copied); with a pid or name filter, a network message is kept when its port matches or when the
 * agent's own (filtered) process messages have shown its connection, and held up to
 * {@link HOLD_MS} for them to arrive (the packet usually wins the race to user space).
 *
 * A kernel that refuses TC programs on the first interface costs network spans only: one line on
 * stderr, no further attempts; TCP health stays on.
 *
 * Counters: riptide_net_packets_total{result} (message, continuation), riptide_net_dropped_total
 * {reason} (ringbuf_full, decode, hold_full), riptide_net_filtered_total{where} (kernel, agent),
 * riptide_net_interfaces (attached now), riptide_net_attach_failures_total,
 * riptide_net_tcp_events_total{event}.
 */
import { Clock } from './decoder.ts';
import type { CapturedMessage, SocketClosed } from './message.ts';
import type { InterfacePattern, NetInterface } from './net-interfaces.ts';
import { listInterfaces, selectInterfaces } from './net-interfaces.ts';
import { NetFlows, TcpHealth, decodeNetRecord } from './net-flows.ts';
import type { NetProgramOptions } from './net-program.ts';
import { NetProgram } from './net-program.ts';
import type { RingReader } from './ring-reader.ts';
import type { L7Message } from '../protocols/parser.ts';
import { BurstLogger, metrics } from '../metrics.ts';

export interface NetCaptureSink {
  /** A network message to parse (the first segment of a request or response on the wire). */
  onMessage(m: CapturedMessage): void;
  /** A message that needs no parser (a failed connect), with its L7 record. */
  onParsed(m: CapturedMessage, l7: L7Message[]): void;
  onSocketClosed(e: SocketClosed): void;
}

export interface NetCaptureOptions extends NetProgramOptions {
  pattern: InterfacePattern;
  /** Interface rescan period (ms, default 3000; 0 = never). */
  rescanMs?: number;
  pollMs?: number;
  /** Interface lister (tests). */
  list?: () => NetInterface[];
  /**
   * The agent's --filter-port: network messages and failed connects of other ports are not
   * reported (in the kernel, unless {@link processFilter}).
   */
  ports?: readonly number[];
  /**
   * The agent also filters by pid or process name: keep the network messages of connections its
   * process messages ({@link NetCapture.annotate}) have shown, besides those of `ports`.
   */
  processFilter?: boolean;
  /** Program loader (tests). */
  load?: (o: NetProgramOptions) => NetProgramLike;
  /** Says once that the kernel refuses TC programs (default: a line on stderr). */
  onTcRefused?: (reason: string) => void;
}

/** What {@link NetCapture} uses of {@link NetProgram}. */
export type NetProgramLike = Pick<NetProgram, 'interfaces' | 'mode' | 'tcUnavailable' | 'attach' | 'detach' | 'ringReader' | 'counters' | 'close'>;

/** How long a network message of an unknown connection waits for a process message to claim it. */
export const HOLD_MS = 2000;

const packets = metrics.counter('riptide_net_packets_total', 'TCP segments with payload seen at the network observation points, by result (message: first segment of a request or response; continuation: skipped)');
const netDropped = metrics.counter('riptide_net_dropped_total', 'Network records lost, by reason');
const interfacesGauge = metrics.gauge('riptide_net_interfaces', 'Interfaces with the network observation programs attached');
const attachFailures = metrics.counter('riptide_net_attach_failures_total', 'Interfaces the network programs could not be attached to');
const filtered = metrics.counter('riptide_net_filtered_total', 'Network records left out by the agent\'s filters, by where (kernel: --filter-port in the kernel, never copied; agent: network messages of connections no filtered process has)');
const tcpEvents = metrics.counter('riptide_net_tcp_events_total', 'TCP health events from the kernel, by event (retransmit, connect_failed, state)');

/** The connect-failure record a failed connect becomes (pair_state one_way, status server_error). */
export const CONNECT_FAILED_L7: L7Message = {
  l7Protocol: 'tcp',
  msgType: 'request',
  requestType: 'CONNECT',
  oneWay: true,
  responseStatus: 'server_error',
  responseException: 'connect failed',
};

const MAX_OWNED = 65_536;
const MAX_HELD = 16_384;
const OWNED_IDLE_MS = 120_000;

/** A connection either way round; IPv4-mapped IPv6 addresses (a dual-stack socket's view) as IPv4. */
export function connKey(ipA: string, portA: number, ipB: string, portB: number): string {
  const v4 = (ip: string): string => (ip.startsWith('::ffff:') && ip.includes('.') ? ip.slice(7) : ip);
  const a = `${v4(ipA)}:${portA}`;
  const b = `${v4(ipB)}:${portB}`;
  return a < b ? `${a}|${b}` : `${b}|${a}`;
}

/**
 * Whether an attach error says the kernel refuses TC programs as such (not this interface): no
 * permission, no support (EOPNOTSUPP, ENOTSUPP 524), or an attach type or qdisc it does not know.
 */
export function isKernelRefusal(message: string): boolean {
  return /EPERM|EACCES|EOPNOTSUPP|ENOTSUPP|\b524\b|EINVAL|ENOSYS|not supported|Operation not permitted|Invalid argument/i.test(message);
}

export class NetCapture {
  private readonly clock = new Clock();
  private readonly flows: NetFlows;
  readonly health = new TcpHealth();
  private readonly names = new Map<number, string>();
  private timer: NodeJS.Timeout | null = null;
  private rescanTimer: NodeJS.Timeout | null = null;
  private stopped = false;
  private readonly decodeDrops = new BurstLogger('net capture: undecodable records');
  private readonly attachLog = new BurstLogger('net capture: cannot attach to an interface');
  private lastSweepMs = Date.now();
  private failedIfs = new Set<number>();
  /** Why TC attaches are refused on this kernel, once the first one was (no further attempts). */
  tcRefused: string | undefined;
  private attachedOnce = false;
  /** With a process filter: connections (either way round) the filtered processes have, last seen (ms). */
  private readonly owned = new Map<string, number>();
  private readonly held: Array<{ m: CapturedMessage; key: string; atMs: number }> = [];

  private constructor(
    private readonly program: NetProgramLike,
    private readonly reader: RingReader,
    private readonly sink: NetCaptureSink,
    private readonly options: NetCaptureOptions,
  ) {
    this.flows = new NetFlows((mono) => this.clock.toWall(mono));
  }

  static start(options: NetCaptureOptions, sink: NetCaptureSink): NetCapture {
    const ports = options.ports ?? [];
    // Ports go into the kernel only when they are the agent's only filter (filters are OR-ed).
    const program = (options.load ?? ((o) => NetProgram.load(o)))({ ...options, kernelPorts: options.processFilter ? [] : ports });
    let reader: RingReader;
    try {
      reader = program.ringReader();
    } catch (err) {
      program.close();
      throw err;
    }
    const cap = new NetCapture(program, reader, sink, options);
    if (program.tcUnavailable !== undefined) cap.refuseTc(program.tcUnavailable);
    try {
      cap.rescan();
    } catch (err) {
      cap.stop();
      throw err;
    }
    metrics.onCollect(() => cap.collect());
    cap.schedule();
    const every = options.rescanMs ?? 3000;
    if (every > 0) {
      cap.rescanTimer = setInterval(() => {
        try {
          cap.rescan();
        } catch (err) {
          cap.attachLog.record(1, (err as Error).message);
        }
      }, every);
      cap.rescanTimer.unref();
    }
    return cap;
  }

  /** Interfaces attached now (name by ifindex). */
  get interfaces(): ReadonlyMap<number, string> {
    return this.program.interfaces;
  }

  get mode(): string {
    return this.program.mode;
  }

  /** Attaches to new matching interfaces, forgets vanished ones. */
  rescan(): void {
    const all = (this.options.list ?? listInterfaces)();
    const want = selectInterfaces(all, this.options.pattern);
    const wantIdx = new Set(want.map((i) => i.ifindex));
    for (const [ifindex] of this.program.interfaces) {
      if (!wantIdx.has(ifindex)) {
        this.program.detach(ifindex);
        this.names.delete(ifindex);
      }
    }
    for (const i of want) {
      if (this.tcRefused !== undefined) break;
      if (this.program.interfaces.has(i.ifindex) || this.failedIfs.has(i.ifindex)) continue;
      try {
        this.program.attach(i.ifindex, i.name);
        this.names.set(i.ifindex, i.name);
        this.attachedOnce = true;
      } catch (err) {
        this.failedIfs.add(i.ifindex);
        attachFailures.inc();
        const msg = (err as Error).message;
        // Nothing attached yet and the kernel says no: it will say no to every interface.
        if (!this.attachedOnce && isKernelRefusal(msg)) this.refuseTc(msg);
        else this.attachLog.record(1, msg);
      }
    }
    interfacesGauge.set(this.program.interfaces.size);
  }

  /** No TC here (the programs did not load, or the first attach was refused): said once, never retried. */
  private refuseTc(reason: string): void {
    this.tcRefused = reason;
    (this.options.onTcRefused ?? ((r) => process.stderr.write(`riptide agent: no network spans: TC programs cannot run here (${r}; they need CAP_NET_ADMIN and tcx or clsact); TCP health stays on\n`)))(reason);
  }

  /** Sets TCP health figures on a process message of a known connection (and, with a process filter, claims its connection's network messages). */
  annotate(m: CapturedMessage, nowMs = Date.now()): void {
    this.health.annotate(m);
    if (!this.options.processFilter || m.l4 !== 'tcp') return;
    const key = connKey(m.localIp, m.localPort, m.remoteIp, m.remotePort);
    this.owned.delete(key);
    this.owned.set(key, nowMs);
    if (this.owned.size > MAX_OWNED) this.owned.delete(this.owned.keys().next().value as string);
  }

  /** Whether a port filter lets this tuple through (no port filter: no). */
  private portWanted(a: number, b: number): boolean {
    const ports = this.options.ports;
    return !!ports?.length && (ports.includes(a) || ports.includes(b));
  }

  /** Network messages of connections now claimed go on; those held too long are filtered. */
  private releaseHeld(nowMs: number): void {
    while (this.held.length) {
      const h = this.held[0];
      if (this.owned.has(h.key)) this.sink.onMessage(h.m);
      else if (nowMs - h.atMs < HOLD_MS) break;
      else filtered.inc({ where: 'agent' });
      this.held.shift();
    }
    // Claimed ones behind an unclaimed head need not wait for it.
    for (let i = 0; i < this.held.length; ) {
      if (this.owned.has(this.held[i].key)) {
        this.sink.onMessage(this.held[i].m);
        this.held.splice(i, 1);
      } else i++;
    }
  }

  /** A network message through the agent's filters: emitted, held for a claim, or filtered. */
  private offer(m: CapturedMessage, nowMs: number): void {
    const noFilter = !this.options.processFilter && !this.options.ports?.length;
    if (noFilter || this.portWanted(m.localPort, m.remotePort)) return this.sink.onMessage(m);
    if (!this.options.processFilter) {
      filtered.inc({ where: 'agent' });
      return;
    }
    const key = connKey(m.localIp, m.localPort, m.remoteIp, m.remotePort);
    if (this.owned.has(key)) return this.sink.onMessage(m);
    if (this.held.length >= MAX_HELD) {
      this.held.shift();
      netDropped.inc({ reason: 'hold_full' });
    }
    this.held.push({ m, key, atMs: nowMs });
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      const n = this.drainOnce();
      if (n === 0) this.schedule();
      else setImmediate(() => this.schedule());
    }, this.options.pollMs ?? 10);
  }

  drainOnce(now = Date.now()): number {
    const n = this.reader.drain((view, bytes, off, len) => this.handle(view, bytes, off, len, now), 8192);
    if (this.held.length) this.releaseHeld(now);
    if (now - this.lastSweepMs > 5000) {
      this.lastSweepMs = now;
      for (const [k, seen] of this.owned) {
        if (now - seen < OWNED_IDLE_MS) break; // oldest first (re-inserted on every use)
        this.owned.delete(k);
      }
      for (const socketId of this.flows.expire(now)) this.sink.onSocketClosed({ tsNs: BigInt(now) * 1_000_000n, pid: 0, socketId });
      this.health.expire(now);
    }
    return n;
  }

  private handle(view: DataView, bytes: Uint8Array, off: number, len: number, now: number): void {
    let rec;
    try {
      rec = decodeNetRecord(view, bytes, off, len);
    } catch (err) {
      netDropped.inc({ reason: 'decode' });
      this.decodeDrops.record(1, (err as Error).message);
      return;
    }
    if (rec.kind === 'packet') {
      const name = this.names.get(rec.ifindex) ?? `if${rec.ifindex}`;
      const m = this.flows.onPacket(rec, name);
      packets.inc({ result: m ? 'message' : 'continuation' });
      if (m) this.offer(m, now);
      return;
    }
    const failed = this.health.onEvent(rec);
    tcpEvents.inc({ event: failed ? 'connect_failed' : rec.kind });
    if (!failed) return;
    // A failed connect has no process message to claim it: with any filter, its port must match.
    if ((this.options.ports?.length || this.options.processFilter) && !this.portWanted(rec.localPort, rec.remotePort)) {
      filtered.inc({ where: 'agent' });
      return;
    }
    const ts = this.clock.toWall(rec.monoNs);
    this.sink.onParsed(
      {
        tsNs: ts,
        enterNs: ts,
        exitNs: ts,
        pid: 0,
        tid: 0,
        coroutineId: 0,
        processName: '',
        syscall: 'write',
        direction: 'egress',
        socketId: this.flows.newId(),
        family: rec.family,
        l4: 'tcp',
        localIp: rec.localIp,
        localPort: rec.localPort,
        remoteIp: rec.remoteIp,
        remotePort: rec.remotePort,
        role: 'client',
        tcpSeq: 0,
        syscallTraceId: 0,
        bytes: 0,
        payload: new Uint8Array(0),
        observationPoint: 'tcp',
        connectFailed: true,
      },
      [{ ...CONNECT_FAILED_L7 }],
    );
  }

  private collect(): void {
    if (this.stopped) return;
    const k = this.program.counters();
    netDropped.setTotal(k.ringbufFull, { reason: 'ringbuf_full' });
    filtered.setTotal(k.filtered, { where: 'kernel' });
    interfacesGauge.set(this.program.interfaces.size);
  }

  stop(): void {
    if (this.stopped) return;
    if (this.timer) clearTimeout(this.timer);
    if (this.rescanTimer) clearInterval(this.rescanTimer);
    while (this.drainOnce() > 0) {
      /* flush */
    }
    this.releaseHeld(Number.POSITIVE_INFINITY);
    this.collect();
    this.stopped = true;
    this.reader.close();
    this.program.close();
  }
}

export interface NetProbe {
  /** Loading the network object and its TCP health tracepoints: null when it worked. */
  loadError: string | null;
  loadMs: number;
  /** TCP health: retransmit/state tracepoints attached. */
  tcpHealth: boolean;
  /** TC on `lo`: how it attached ('tcx' or 'clsact'), or why it did not. */
  tc: { ok: true; mode: string } | { ok: false; reason: string } | null;
  /** Interfaces the default pattern (`veth`) matches now. */
  defaultMatches: string[];
}

/**
 * `riptide doctor`'s network check: loads the object with a kernel port filter that matches no
 * port (0), attaches ingress/egress to `lo` for a moment and detaches: nothing is copied.
 */
export function probeNetCapture(pattern: InterfacePattern): NetProbe {
  const out: NetProbe = { loadError: null, loadMs: 0, tcpHealth: false, tc: null, defaultMatches: [] };
  let all: NetInterface[] = [];
  try {
    all = listInterfaces();
    out.defaultMatches = selectInterfaces(all, pattern).map((i) => i.name);
  } catch (err) {
    out.loadError = `cannot list interfaces: ${(err as Error).message}`;
    return out;
  }
  const t0 = performance.now();
  let program: NetProgram;
  try {
    program = NetProgram.load({ kernelPorts: [0], ringBytes: 4096 });
  } catch (err) {
    out.loadError = (err as Error).message;
    return out;
  }
  out.loadMs = performance.now() - t0;
  try {
    out.tcpHealth = program.tcpHealth;
    const lo = all.find((i) => i.name === 'lo');
    if (!lo) out.tc = { ok: false, reason: 'no lo interface to try on' };
    else {
      try {
        program.attach(lo.ifindex, lo.name);
        out.tc = { ok: true, mode: program.mode };
      } catch (err) {
        out.tc = { ok: false, reason: (err as Error).message };
      }
    }
  } finally {
    program.close();
  }
  return out;
}

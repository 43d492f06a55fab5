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
 * Counters: riptide_net_packets_total{result} (message, continuation), riptide_net_dropped_total
 * {reason} (ringbuf_full, decode), riptide_net_interfaces (attached now),
 * riptide_net_attach_failures_total, riptide_net_tcp_events_total{event}.
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
   * The agent's --filter-port: failed connects (the only health events that become messages) of
   * other ports are not reported. Packets need no filter: only chosen interfaces see the programs.
   */
  ports?: readonly number[];
}

const packets = metrics.counter('riptide_net_packets_total', 'TCP segments with payload seen at the network observation points, by result (message: first segment of a request or response; continuation: skipped)');
const netDropped = metrics.counter('riptide_net_dropped_total', 'Network records lost, by reason');
const interfacesGauge = metrics.gauge('riptide_net_interfaces', 'Interfaces with the network observation programs attached');
const attachFailures = metrics.counter('riptide_net_attach_failures_total', 'Interfaces the network programs could not be attached to');
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

  private constructor(
    private readonly program: NetProgram,
    private readonly reader: RingReader,
    private readonly sink: NetCaptureSink,
    private readonly options: NetCaptureOptions,
  ) {
    this.flows = new NetFlows((mono) => this.clock.toWall(mono));
  }

  static start(options: NetCaptureOptions, sink: NetCaptureSink): NetCapture {
    const program = NetProgram.load(options);
    let reader: RingReader;
    try {
      reader = program.ringReader();
    } catch (err) {
      program.close();
      throw err;
    }
    const cap = new NetCapture(program, reader, sink, options);
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
      if (this.program.interfaces.has(i.ifindex) || this.failedIfs.has(i.ifindex)) continue;
      try {
        this.program.attach(i.ifindex, i.name);
        this.names.set(i.ifindex, i.name);
      } catch (err) {
        this.failedIfs.add(i.ifindex);
        attachFailures.inc();
        this.attachLog.record(1, (err as Error).message);
      }
    }
    interfacesGauge.set(this.program.interfaces.size);
  }

  /** Sets TCP health figures on a process message of a known connection. */
  annotate(m: CapturedMessage): void {
    this.health.annotate(m);
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      const n = this.drainOnce();
      if (n === 0) this.schedule();
      else setImmediate(() => this.schedule());
    }, this.options.pollMs ?? 10);
  }

  drainOnce(): number {
    const n = this.reader.drain((view, bytes, off, len) => this.handle(view, bytes, off, len), 8192);
    const now = Date.now();
    if (now - this.lastSweepMs > 5000) {
      this.lastSweepMs = now;
      for (const socketId of this.flows.expire(now)) this.sink.onSocketClosed({ tsNs: BigInt(now) * 1_000_000n, pid: 0, socketId });
      this.health.expire(now);
    }
    return n;
  }

  private handle(view: DataView, bytes: Uint8Array, off: number, len: number): void {
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
      if (m) this.sink.onMessage(m);
      return;
    }
    const failed = this.health.onEvent(rec);
    tcpEvents.inc({ event: failed ? 'connect_failed' : rec.kind });
    if (!failed) return;
    const ports = this.options.ports;
    if (ports?.length && !ports.includes(rec.remotePort) && !ports.includes(rec.localPort)) return;
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
    interfacesGauge.set(this.program.interfaces.size);
  }

  stop(): void {
    if (this.stopped) return;
    if (this.timer) clearTimeout(this.timer);
    if (this.rescanTimer) clearInterval(this.rescanTimer);
    while (this.drainOnce() > 0) {
      /* flush */
    }
    this.collect();
    this.stopped = true;
    this.reader.close();
    this.program.close();
  }
}

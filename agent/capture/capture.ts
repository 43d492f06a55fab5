/**
 * The capture stage: BPF program → mapped ring buffer → decoded messages, with process metadata,
 * drained on a short timer off any per-event foreign call. It has one job; what happens to a
 * message next (parse, batch, print) is the sink's business.
 *
 * Counters (on /metrics): riptide_capture_received_total (records read from the ring),
 * riptide_capture_dropped_total{reason} (ringbuf_full and args_map_full from the kernel,
 * decode in user space), riptide_capture_ring_backlog_bytes, riptide_capture_handoffs_total{event,reason}
 * (with --handoff); goroutines (issue 15): riptide_capture_go_processes_total{result},
 * riptide_capture_goroutine_reads_total{result=ok|failed|state_full}; per-socket verdicts (issue 18,
 * agent/capture/verdicts.ts): riptide_capture_not_sent_total{reason} and _bytes_total (messages the
 * kernel counted instead of sending), riptide_capture_capped_total and _bytes_total.
 *
 * @example
 *   const cap = await Capture.start({ filter: { ports: [8080] } }, { onMessage: (m) => console.log(m.syscall) });
 *   …
 *   cap.stop();
 */
import type { CaptureOptions, KernelCounters, VerdictCounters } from './bpf-program.ts';
import { CaptureProgram, NO_HANDOFF_COUNTERS } from './bpf-program.ts';
import type { ProcessEvent } from './decoder.ts';
import { RecordDecoder } from './decoder.ts';
import type { CapturedMessage, ProcessInfo, SocketClosed, SocketRole } from './message.ts';
import { ProcessMetadata } from './process-meta.ts';
import { SocketRoles } from './socket-roles.ts';
import { GoProcesses } from './go-processes.ts';
import type { RingReader } from './ring-reader.ts';
import { TlsJoiner } from './tls-join.ts';
import { TlsLibraries } from './tls-libraries.ts';
import { GoReadMerger } from './go-tls.ts';
import { BurstLogger, metrics } from '../metrics.ts';
import type { VerdictTarget } from './verdicts.ts';
import { beginSlice, endSlice } from './slice-clock.ts';

export interface CaptureSink {
  onMessage(message: CapturedMessage, process: ProcessInfo | undefined): void;
  onSocketClosed?(event: SocketClosed): void;
  onProcessEvent?(event: ProcessEvent): void;
  /**
   * True when the sink reads each message's payload only while onMessage runs and keeps no
   * reference to it: payloads are then views into the mapped ring (valid until the call returns)
   * instead of copies. Only honoured while the TLS uprobes are not loaded.
   */
  readonly payloadViews?: boolean;
  /** Given the loaded program when it takes per-socket verdicts (agent/capture/verdicts.ts). */
  useVerdicts?(target: VerdictTarget): void;
}

export interface CaptureRunOptions extends CaptureOptions {
  /** Drain period when the ring is idle (ms, default 10). */
  pollMs?: number;
  /** Records handled per drain slice before yielding to the event loop (default 8192). */
  sliceRecords?: number;
  /**
   * Read goroutine ids of Go processes (default true): the syscall-trace ids of a Go process follow
   * its goroutines instead of its threads. false keeps thread ids only (`--no-goroutines`).
   */
  goroutines?: boolean;
}

/** Sockets whose inferred role is remembered at once (pre-existing and fork-inherited ones only). */
const MAX_INFERRED_ROLES = 65_536;

const received = metrics.counter('riptide_capture_received_total', 'Records read from the BPF ring buffer');
const dropped = metrics.counter('riptide_capture_dropped_total', 'Messages lost in capture, by reason');
const backlogGauge = metrics.gauge('riptide_capture_ring_backlog_bytes', 'Bytes in the ring buffer not yet read');
const handoffs = metrics.counter(
  'riptide_capture_handoffs_total',
  'Hand-offs between threads (sched_waking, --handoff): recorded, carried by a send, ended, or skipped by reason (socket, stale, not_request, other_process); wake-backs (a thread that had just read a reply woke another): back_recorded, back_carried by the wakee\'s answer, back_dropped',
);
const goroutineReads = metrics.counter('riptide_capture_goroutine_reads_total', 'Goroutine id reads at syscalls of Go processes, by result (failed and state_full fell back to thread ids)');
const notSent = metrics.counter(
  'riptide_capture_not_sent_total',
  'Messages the kernel counted and did not send, by reason (unparseable: the socket has a count-only verdict, nothing parses it)',
);
const notSentBytes = metrics.counter('riptide_capture_not_sent_bytes_total', 'Bytes moved by the messages in riptide_capture_not_sent_total, by reason');
const capped = metrics.counter('riptide_capture_capped_total', 'Messages sent with a payload cut shorter than the capture limit by their socket\'s protocol cap (--capture-sizes)');
const cappedBytes = metrics.counter('riptide_capture_capped_bytes_total', 'Payload bytes those caps left uncopied');
const lastDrainGauge = metrics.gauge('riptide_capture_last_drain_timestamp_seconds', 'When the ring buffer was last drained (unix seconds): the agent is live while this keeps moving');

export class Capture {
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;
  /** Date.now() of the last drain pass: liveness (/healthz) is "this keeps moving". */
  lastDrainMs = Date.now();
  private readonly decoder = new RecordDecoder();
  readonly processes = new ProcessMetadata();
  private readonly roles = new SocketRoles();
  /**
   * Roles inferred so far, by socket id (forgotten on close): a socket is looked up once, not on
   * every message — a client socket's port never listens, so each lookup would re-read the
   * namespace's /proc/net/tcp (1 MB and more with many TIME_WAIT entries) once a second.
   */
  private readonly inferredRoles = new Map<number, SocketRole>();
  private readonly decodeDrops = new BurstLogger('capture: undecodable ring records');
  private lastKernel: KernelCounters = { ringbufFull: 0, emitted: 0, argsMapFull: 0, handoff: NO_HANDOFF_COUNTERS };
  private readonly kernelDropLog = new BurstLogger('capture: kernel dropped messages');
  /** TLS library files with uprobes (null when the uprobe programs are not loaded). */
  readonly tlsLibraries: TlsLibraries | null;
  private readonly tls: TlsJoiner;
  /** Go's one-byte background reads put back in front of the request they belong to (go-tls.ts). */
  private readonly goReads: GoReadMerger;
  /** Go processes whose goroutine ids the kernel reads; undefined when that is off. */
  go: GoProcesses | undefined;

  private constructor(
    private readonly program: CaptureProgram,
    private readonly reader: RingReader,
    private readonly sink: CaptureSink,
    private readonly pollMs: number,
    private readonly sliceRecords: number,
  ) {
    this.tlsLibraries = program.uprobePrograms.length > 0 ? new TlsLibraries(program) : null;
    this.tls = new TlsJoiner(
      (m) => this.sink.onMessage(m, this.processes.get(m.pid)),
      (pid) => this.tlsLibraries?.onTlsTraffic(pid),
    );
    this.goReads = new GoReadMerger((p) => this.tls.onPlaintext(p));
  }

  /** Why TLS plaintext is not captured ('' when it is). */
  get tlsUnavailable(): string {
    return this.program.tlsUnavailable;
  }

  /** Loads and attaches the program; capture is live when this returns. */
  static start(options: CaptureRunOptions, sink: CaptureSink): Capture {
    const program = CaptureProgram.load(options);
    let reader: RingReader;
    try {
      reader = program.ringReader();
    } catch (err) {
      program.close();
      throw err;
    }
    const cap = new Capture(program, reader, sink, options.pollMs ?? 10, options.sliceRecords ?? 8192);
    if (options.goroutines !== false && program.hasGoroutines) {
      cap.go = new GoProcesses((pid, info) => program.setGoProcess(pid, info));
      // Processes already running: their first request must not miss its goroutine id.
      cap.go.scan(options.filter?.pids?.length ? options.filter.pids : undefined);
    }
    if (program.verdictsOn && sink.useVerdicts) sink.useVerdicts(program);
    if (sink.payloadViews === true && cap.tlsLibraries === null) cap.decoder.payloadViews = true;
    metrics.onCollect(() => cap.collectKernelCounters());
    if (program.tlsUnavailable && !program.tlsTurnedOff) process.stderr.write(`riptide agent: TLS plaintext not captured: ${program.tlsUnavailable}\n`);
    // Processes that were running before the agent: attach to the TLS libraries they map.
    cap.tlsLibraries?.start();
    cap.schedule(0);
    return cap;
  }

  /** Null while the ring is being drained; otherwise why capture is not live (stopped, or no drain for `maxAgeMs`). */
  liveness(maxAgeMs = 5000): string | null {
    if (this.stopped) return 'capture stopped';
    const age = Date.now() - this.lastDrainMs;
    return age > maxAgeMs ? `ring buffer not drained for ${(age / 1000).toFixed(1)} s` : null;
  }

  get attachedPrograms(): number {
    return this.program.attached.length;
  }

  private schedule(delay: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => this.tick(), delay);
  }

  private tick(): void {
    const n = this.drainOnce();
    // A full slice means a backlog: come back at once (after I/O), otherwise sleep.
    this.schedule(n >= this.sliceRecords ? 0 : this.pollMs);
  }

  /** Reads up to one slice of records. Exposed for tests and benchmarks. */
  drainOnce(): number {
    // One clock read per slice: the batcher's slot check reads it per message (slice-clock.ts).
    beginSlice(Date.now());
    let n: number;
    try {
      n = this.reader.drain(this.onRecord, this.sliceRecords);
    } finally {
      endSlice();
    }
    received.inc(undefined, n);
    this.lastDrainMs = Date.now();
    return n;
  }

  private readonly onRecord = (view: DataView, bytes: Uint8Array, off: number, len: number): void => this.handle(view, bytes, off, len);

  private handle(view: DataView, bytes: Uint8Array, off: number, len: number): void {
    let rec;
    try {
      rec = this.decoder.decode(view, bytes, off, len);
    } catch (err) {
      dropped.inc({ reason: 'decode' });
      this.decodeDrops.record(1, (err as Error).message);
      return;
    }
    switch (rec.kind) {
      case 'data': {
        const m = rec.message;
        let info = this.processes.get(m.pid);
        // A process may rename itself after exec (prctl, process.title): when its main thread's
        // name no longer matches what /proc said, read the metadata again.
        if (info && m.tid === m.pid && info.name !== m.processName) {
          this.processes.invalidate(m.pid);
          info = this.processes.get(m.pid);
        }
        this.go?.check(m.pid, info?.startTime);
        // Sockets from before the agent started, or inherited across fork(), have no role from
        // the kernel side: the listening ports of the process's namespace tell.
        if (m.role === 'unknown' && m.l4 === 'tcp') {
          let role = this.inferredRoles.get(m.socketId);
          if (role === undefined) {
            role = this.roles.infer(m.pid, m.localPort);
            if (role !== 'unknown') {
              if (this.inferredRoles.size >= MAX_INFERRED_ROLES) this.inferredRoles.clear();
              this.inferredRoles.set(m.socketId, role);
            }
          }
          m.role = role;
        }
        // TLS ciphertext never reaches the parsers; its plaintext comes joined from the uprobes.
        if (this.tls.onSyscall(m)) break;
        this.sink.onMessage(m, info);
        break;
      }
      case 'tls':
        this.goReads.push(rec.plaintext);
        break;
      case 'close':
        this.tls.onSocketClosed(rec.event.socketId);
        this.inferredRoles.delete(rec.event.socketId);
        this.sink.onSocketClosed?.(rec.event);
        break;
      case 'process':
        this.processes.invalidate(rec.event.pid);
        this.roles.forget(rec.event.pid);
        this.go?.forget(rec.event.pid);
        if (rec.event.kind === 'exec') this.go?.check(rec.event.pid);
        // Read a new program's metadata right away: short-lived processes may be gone by their first message.
        if (rec.event.kind === 'exec') this.processes.get(rec.event.pid);
        if (rec.event.kind === 'exec') this.tlsLibraries?.onExec(rec.event.pid);
        else this.tlsLibraries?.onExit(rec.event.pid);
        this.sink.onProcessEvent?.(rec.event);
        break;
    }
  }

  /** What per-socket verdicts saved in the kernel (zeros for an object without them). */
  verdictCounters(): VerdictCounters {
    return this.program.verdictCounters();
  }

  /** Pulls the kernel-side counters into /metrics and logs new kernel drops once per burst. */
  collectKernelCounters(): KernelCounters {
    if (this.stopped) return this.lastKernel;
    const k = this.program.counters();
    const newDrops = k.ringbufFull - this.lastKernel.ringbufFull + (k.argsMapFull - this.lastKernel.argsMapFull);
    if (newDrops > 0) this.kernelDropLog.record(newDrops, 'ring buffer full or in-flight map full; raise --ring-mb or lower the capture limit');
    this.lastKernel = k;
    dropped.setTotal(k.ringbufFull, { reason: 'ringbuf_full' });
    dropped.setTotal(k.argsMapFull, { reason: 'args_map_full' });
    if (this.program.handoff) {
      const h = k.handoff;
      handoffs.setTotal(h.recorded, { event: 'recorded' });
      handoffs.setTotal(h.carried, { event: 'carried' });
      handoffs.setTotal(h.ended, { event: 'ended' });
      handoffs.setTotal(h.otherProcess, { event: 'skipped', reason: 'other_process' });
      handoffs.setTotal(h.skipSocket, { event: 'skipped', reason: 'socket' });
      handoffs.setTotal(h.skipStale, { event: 'skipped', reason: 'stale' });
      handoffs.setTotal(h.skipNotRequest, { event: 'skipped', reason: 'not_request' });
      handoffs.setTotal(h.backRecorded, { event: 'back_recorded' });
      handoffs.setTotal(h.backCarried, { event: 'back_carried' });
      handoffs.setTotal(h.backDropped, { event: 'back_dropped' });
    }
    if (this.go) {
      const g = this.program.goCounters();
      goroutineReads.setTotal(g.readOk, { result: 'ok' });
      goroutineReads.setTotal(g.readFailed, { result: 'failed' });
      goroutineReads.setTotal(g.stateFull, { result: 'state_full' });
    }
    if (this.program.verdictsOn) {
      const v = this.program.verdictCounters();
      notSent.setTotal(v.skipped, { reason: 'unparseable' });
      notSentBytes.setTotal(v.skippedBytes, { reason: 'unparseable' });
      capped.setTotal(v.capped);
      cappedBytes.setTotal(v.cappedBytes);
    }
    backlogGauge.set(this.reader.backlog());
    lastDrainGauge.set(Math.floor(this.lastDrainMs / 1000));
    return k;
  }

  /** Drains what is left, detaches everything. Safe to call twice. */
  stop(): void {
    if (this.stopped) return;
    if (this.timer) clearTimeout(this.timer);
    while (this.drainOnce() > 0) {
      /* flush the backlog */
    }
    this.collectKernelCounters();
    this.stopped = true;
    this.tlsLibraries?.close();
    this.reader.close();
    this.program.close();
  }
}

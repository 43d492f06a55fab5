/**
 * Loads the capture program (bpf/riptide.bpf.o) through libbpf: open → set load-time constants →
 * size the ring buffer → load (verifier) → attach every tracepoint → fill filter maps.
 * Everything it creates is released by {@link CaptureProgram.close}; links are fd-based, so even a
 * killed agent leaves nothing attached (no pinning anywhere).
 *
 * @example
 *   using prog = CaptureProgram.load({ captureLimit: 1024, filter: { ports: [8080] } });
 *   const reader = prog.ringReader();
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Libbpf, Ptr } from './libbpf.ts';
import { captureLibbpfLog, check, checkPtr, errnoText, libbpf } from './libbpf.ts';
import { RingReader } from './ring-reader.ts';
import { checkTracefs } from './preflight.ts';
import {
  RT_CNT_ARGS_FULL,
  RT_CNT_EMITTED,
  RT_CNT_RINGBUF_FULL,
  RT_COMM_LEN,
  RT_GO_CNT_READ_FAILED,
  RT_GO_CNT_READ_OK,
  RT_GO_CNT_STATE_FULL,
  RT_HO_BACK_CARRIED,
  RT_HO_BACK_DROPPED,
  RT_HO_BACK_RECORDED,
  RT_HO_CARRIED,
  RT_HO_ENDED,
  RT_HO_OTHER_PROCESS,
  RT_HO_RECORDED,
  RT_HO_SKIP_NOT_REQUEST,
  RT_HO_SKIP_SOCKET,
  RT_HO_SKIP_STALE,
  RT_MAX_PAYLOAD,
  Rodata,
  RtGoProc,
  RtVerdict,
  RT_VD_SKIPPED,
  RT_VD_SKIPPED_BYTES,
  RT_VD_CAPPED,
  RT_VD_CAPPED_BYTES,
} from './layout.generated.ts';
import type { GoBinaryInfo } from './go-runtime.ts';

/** The wake-up hook of hand-off tracking: loaded always, attached only when asked for. */
export const HANDOFF_PROGRAM = 'rt_sched_waking';

export const DEFAULT_OBJECT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bpf', 'riptide.bpf.o');

export interface CaptureFilter {
  /** Process ids (tgids) to capture. */
  pids?: number[];
  /** Local or remote ports to capture. */
  ports?: number[];
  /** Process (thread) names to capture, as in /proc/pid/comm (at most 15 bytes). */
  comms?: string[];
  /** Processes never captured, whatever the other filters say (the agent itself always is). */
  excludePids?: number[];
}

export interface CaptureOptions {
  /** Payload bytes copied per message (default 1024, at most 8192). */
  captureLimit?: number;
  /** Ring buffer size in bytes, a power of two ≥ 4096 (default 8 MiB). */
  ringBytes?: number;
  /** When any filter list is non-empty, a message must match at least one of them (OR). */
  filter?: CaptureFilter;
  /** First socket / trace id; defaults to a value derived from the current time so ids are unique across runs. */
  idSeed?: bigint;
  /** Path of the compiled object. */
  objectPath?: string;
  /**
   * Read kernel structs (file, socket, sock) with direct loads where the kernel offers
   * bpf_rdonly_cast (default true; without the kfunc the program uses probe reads whatever this
   * says). false forces the probe-read path; so does RIPTIDE_BPF_DIRECT_READS=0.
   */
  directReads?: boolean;
  /**
   * Hand-offs between threads (sched_waking): a thread that wakes another right after receiving a
   * request passes it its syscall-trace id, carried as `handoffTraceId` on the wakee's sends.
   * Default false; also RIPTIDE_BPF_HANDOFF=1.
   */
  handoff?: boolean;
  /** How fresh the waker's received request must be for a hand-off (ms, default 50). */
  handoffWindowMs?: number;
  /**
   * Load the TLS uprobe programs (default false; RIPTIDE_TLS=1 says true: they cost every SSL_* call of every process using the library a uprobe trap, docs/TLS.md). When the kernel refuses
   * them the object is loaded again without them and {@link CaptureProgram.tlsUnavailable} says why.
   */
  tls?: boolean;
  /**
   * Per-socket capture verdicts (issue 18, default true; RIPTIDE_SOCKET_VERDICTS=0 says false): user
   * space may tell the kernel to count a socket's messages without sending them, or to copy fewer
   * payload bytes for it. false: the kernel never looks verdicts up.
   */
  verdicts?: boolean;
  /** Where libbpf's log lines go (default: warnings to stderr as one line each). */
  log?: (level: 'warn' | 'info' | 'debug', line: string) => void;
}

export interface KernelCounters {
  ringbufFull: number;
  emitted: number;
  argsMapFull: number;
  /** Hand-off hook (all 0 when it is off or the object predates it). */
  handoff: HandoffCounters;
}

export interface HandoffCounters {
  recorded: number;
  carried: number;
  ended: number;
  otherProcess: number;
  skipSocket: number;
  skipStale: number;
  skipNotRequest: number;
  /** Wake-backs: a thread that had just read a reply woke another (stamped), carried by the wakee's answer, or dropped. */
  backRecorded: number;
  backCarried: number;
  backDropped: number;
}

export const NO_HANDOFF_COUNTERS: HandoffCounters = { recorded: 0, carried: 0, ended: 0, otherProcess: 0, skipSocket: 0, skipStale: 0, skipNotRequest: 0, backRecorded: 0, backCarried: 0, backDropped: 0 };

/** Kernel-side goroutine counters (issue 15): goid reads at syscalls of Go processes. */
export interface GoCounters {
  readOk: number;
  readFailed: number;
  stateFull: number;
}

/** Kernel-side verdict counters (issue 18): messages counted and not sent, payloads cut by a cap. */
export interface VerdictCounters {
  skipped: number;
  skippedBytes: number;
  capped: number;
  cappedBytes: number;
}

export interface AttachedProgram {
  name: string;
  section: string;
}

/**
 * Ids seeded from the wall clock: 1024 ids per millisecond of uptime before two runs of the agent
 * could overlap, and the result stays below 2^53 so it is exact as a JS number.
 */
export function defaultIdSeed(nowMs = Date.now()): bigint {
  return BigInt(nowMs) * 1024n;
}

export class CaptureProgram implements Disposable {
  private links: bigint[] = [];
  private closed = false;
  readonly attached: AttachedProgram[] = [];
  /** Uprobe programs by name: attached per library file by agent/capture/tls.ts, never here. */
  private readonly uprobes = new Map<string, bigint>();
  private readonly uprobeLinks = new Set<bigint>();
  /** Why TLS plaintext capture is off ('' while the uprobe programs are loaded). */
  tlsUnavailable = '';
  /** TLS capture was turned off on purpose (no failure to report). */
  tlsTurnedOff = false;

  private constructor(
    private readonly lib: Libbpf,
    private obj: Ptr,
    readonly ringBytes: number,
    readonly captureLimit: number,
    /** Whether the hand-off hook is attached. */
    readonly handoff: boolean,
  ) {}

  /**
   * The verifier gives up with EAGAIN when a signal arrives mid-verification (a profiler's SIGPROF,
   * a SIGCHLD); libbpf's own retries are few and immediate, so try the whole load a few times.
   */
  static load(options: CaptureOptions = {}): CaptureProgram {
    const wantTls = options.tls ?? process.env.RIPTIDE_TLS === '1';
    let tlsError = wantTls ? '' : 'TLS capture is off (turn it on with --tls or RIPTIDE_TLS=1)';
    for (let attempt = 1; ; attempt++) {
      try {
        const prog = CaptureProgram.loadOnce(options, tlsError === '');
        prog.tlsUnavailable = tlsError;
        prog.tlsTurnedOff = !wantTls;
        return prog;
      } catch (err) {
        if (!(err instanceof Error)) throw err;
        if (err.message.includes('EAGAIN') && attempt < 8) continue;
        // Probe and fall back: a kernel that refuses the uprobe programs still gets syscall capture.
        if (tlsError === '') {
          tlsError = `the kernel refused the TLS uprobe programs (${err.message})`;
          continue;
        }
        throw err;
      }
    }
  }

  private static loadOnce(options: CaptureOptions, withTls: boolean): CaptureProgram {
    const lib = libbpf();
    const objectPath = options.objectPath ?? process.env.RIPTIDE_BPF_OBJECT ?? DEFAULT_OBJECT;
    if (!existsSync(objectPath)) throw new Error(`BPF object ${objectPath} is missing (build it with: npm run bpf:build)`);
    const log = options.log ?? ((level, line) => level === 'warn' && process.stderr.write(`libbpf: ${line}\n`));
    captureLibbpfLog(log);

    const captureLimit = options.captureLimit ?? 1024;
    if (!Number.isInteger(captureLimit) || captureLimit < 0 || captureLimit > RT_MAX_PAYLOAD) {
      throw new Error(`capture limit must be an integer between 0 and ${RT_MAX_PAYLOAD}, got ${captureLimit}`);
    }
    const ringBytes = options.ringBytes ?? 8 << 20;
    if (ringBytes < 4096 || ringBytes & (ringBytes - 1)) throw new Error(`ring buffer size must be a power of two ≥ 4096, got ${ringBytes}`);

    const handoffWindowMs = options.handoffWindowMs ?? 50;
    if (!(handoffWindowMs > 0 && handoffWindowMs <= 60_000)) throw new Error(`hand-off window must be between 0 and 60000 ms, got ${handoffWindowMs}`);
    const obj = checkPtr(lib.object_open_file(objectPath, null), `opening ${objectPath}`);
    const handoff = options.handoff ?? process.env.RIPTIDE_BPF_HANDOFF === '1';
    const prog = new CaptureProgram(lib, obj, ringBytes, captureLimit, handoff);
    try {
      const filter = options.filter ?? {};
      // Sized from the object, not the generated layout, so an older object (A/B benchmarks with
      // RIPTIDE_BPF_OBJECT) still loads: constants it does not have are skipped.
      const rodataMap = prog.map('.rodata');
      const rodata = Buffer.alloc(Math.max(lib.map_value_size(rodataMap), Rodata.SIZE));
      rodata.writeUInt32LE(captureLimit, Rodata.capture_limit.offset);
      rodata.writeUInt32LE(process.pid, Rodata.self_tgid.offset);
      rodata.writeBigUInt64LE(options.idSeed ?? defaultIdSeed(), Rodata.id_seed.offset);
      rodata.writeUInt8(filter.pids?.length ? 1 : 0, Rodata.filter_pids.offset);
      rodata.writeUInt8(filter.ports?.length ? 1 : 0, Rodata.filter_ports.offset);
      rodata.writeUInt8(filter.comms?.length ? 1 : 0, Rodata.filter_comms.offset);
      rodata.writeUInt8(filter.excludePids?.length ? 1 : 0, Rodata.exclude_pids.offset);
      const directReads = options.directReads ?? process.env.RIPTIDE_BPF_DIRECT_READS !== '0';
      rodata.writeUInt8(directReads ? 1 : 0, Rodata.direct_reads.offset);
      rodata.writeUInt8(handoff ? 1 : 0, Rodata.handoff_enabled.offset);
      rodata.writeBigUInt64LE(BigInt(Math.round(handoffWindowMs * 1e6)), Rodata.handoff_window_ns.offset);
      const verdicts = options.verdicts ?? process.env.RIPTIDE_SOCKET_VERDICTS !== '0';
      rodata.writeUInt8(verdicts ? 1 : 0, Rodata.verdicts_on.offset);
      prog.verdictsOn = verdicts && prog.hasVerdicts;
      const size = lib.map_value_size(rodataMap);
      check(lib.map_set_initial_value(rodataMap, rodata, size), 'setting load-time constants');
      check(lib.map_set_max_entries(prog.map('events'), ringBytes), 'sizing the ring buffer');
      prog.collectUprobes(withTls);

      const loaded = lib.object_load(obj);
      if (loaded < 0) throw new Error(`loading the BPF program was refused by the kernel: ${errnoText(-loaded)}`);
      prog.fillFilters(filter);
      // Tracepoint ids are read from tracefs; a freshly booted machine may not have it mounted yet,
      // and every caller (the agent, tests, benchmarks) needs it, not only the agent's preflight.
      const tracefs = checkTracefs();
      if (!tracefs.ok) throw new Error(tracefs.line);
      prog.attachAll();
      return prog;
    } catch (err) {
      prog.close();
      throw err;
    }
  }

  private map(name: string): bigint {
    return checkPtr(this.lib.object_find_map_by_name(this.obj, name), `finding map ${name}`);
  }

  mapFd(name: string): number {
    return check(this.lib.map_fd(this.map(name)), `fd of map ${name}`);
  }

  private fillFilters(filter: CaptureFilter): void {
    const one = Buffer.from([1]);
    const put = (mapName: string, key: Buffer): void => {
      check(this.lib.map_update_elem(this.mapFd(mapName), key, one, 0n), `adding to ${mapName}`);
    };
    for (const pid of filter.pids ?? []) {
      const k = Buffer.alloc(4);
      k.writeUInt32LE(pid);
      put('pid_filter', k);
    }
    for (const pid of filter.excludePids ?? []) {
      const k = Buffer.alloc(4);
      k.writeUInt32LE(pid);
      put('pid_exclude', k);
    }
    for (const port of filter.ports ?? []) {
      if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`invalid port in filter: ${port}`);
      const k = Buffer.alloc(2);
      k.writeUInt16LE(port);
      put('port_filter', k);
    }
    for (const comm of filter.comms ?? []) {
      const k = Buffer.alloc(RT_COMM_LEN);
      k.write(comm.slice(0, RT_COMM_LEN - 1), 'utf8');
      put('comm_filter', k);
    }
  }

  private static isUprobe(section: string): boolean {
    return section.startsWith('uprobe') || section.startsWith('uretprobe');
  }

  /** Remembers the uprobe programs; without TLS they are not loaded at all. */
  private collectUprobes(withTls: boolean): void {
    let p: Ptr = null;
    while ((p = this.lib.object_next_program(this.obj, p)) !== null && p !== 0n) {
      if (!CaptureProgram.isUprobe(this.lib.program_section_name(p))) continue;
      if (withTls) this.uprobes.set(this.lib.program_name(p), p);
      else check(this.lib.program_set_autoload(p, false), 'leaving out the TLS uprobe programs');
    }
  }

  /** Names of the loaded uprobe programs (empty when TLS capture is unavailable). */
  get uprobePrograms(): string[] {
    return [...this.uprobes.keys()];
  }

  /**
   * Attaches a uprobe program (a uretprobe when its section says so) to `offset` in the ELF file
   * `path`, for every process that maps it. Returns the link for {@link detach}.
   */
  attachUprobe(program: string, path: string, offset: number): bigint {
    const p = this.uprobes.get(program);
    if (p === undefined) throw new Error(`no uprobe program ${program} (TLS capture: ${this.tlsUnavailable || 'on'})`);
    const retprobe = this.lib.program_section_name(p).startsWith('uretprobe');
    const link = checkPtr(this.lib.program_attach_uprobe(p, retprobe, -1, path, offset), `attaching ${program} to ${path}+0x${offset.toString(16)}`);
    this.uprobeLinks.add(link);
    return link;
  }

  /** Destroys a link made by {@link attachUprobe}. */
  detach(link: bigint): void {
    if (this.uprobeLinks.delete(link)) this.lib.link_destroy(link);
  }

  private attachAll(): void {
    let p: Ptr = null;
    while ((p = this.lib.object_next_program(this.obj, p)) !== null && p !== 0n) {
      const name = this.lib.program_name(p);
      const section = this.lib.program_section_name(p);
      if (name === HANDOFF_PROGRAM && !this.handoff) continue;
      if (CaptureProgram.isUprobe(section)) continue;
      const link = this.lib.program_attach(p);
      if (link === null || link === 0n) throw new Error(`attaching ${name} (${section}) failed: ${errnoText()}`);
      this.links.push(link);
      this.attached.push({ name, section });
    }
  }

  /** A reader over the mapped ring buffer (the caller closes it before the program). */
  ringReader(): RingReader {
    return new RingReader(this.lib, this.mapFd('events'), this.ringBytes);
  }

  /** Whether the loaded object reads goroutine ids (an older one, in A/B benchmarks, does not). */
  get hasGoroutines(): boolean {
    return this.obj !== null && this.lib.object_find_map_by_name(this.obj, 'go_procs') !== null && this.lib.object_find_map_by_name(this.obj, 'go_procs') !== 0n;
  }

  /** Tells the kernel where pid's goroutine id lives (undefined: forget the pid). */
  setGoProcess(pid: number, info: GoBinaryInfo | undefined): void {
    const key = Buffer.alloc(4);
    key.writeUInt32LE(pid);
    const fd = this.mapFd('go_procs');
    if (!info) {
      this.lib.map_delete_elem(fd, key);
      return;
    }
    const v = Buffer.alloc(RtGoProc.SIZE);
    v.writeUInt32LE(info.goidOffset, RtGoProc.goid_offset.offset);
    v.writeInt32LE(info.gTlsOffset, RtGoProc.g_tls_offset.offset);
    check(this.lib.map_update_elem(fd, key, v, 0n), `adding pid ${pid} to go_procs`);
  }

  /** Per-socket verdicts are on: the object has them and the loader did not turn them off. */
  verdictsOn = false;

  /** Whether the object has per-socket verdicts (older objects, A/B benchmarks: no). */
  get hasVerdicts(): boolean {
    if (this.obj === null) return false;
    const m = this.lib.object_find_map_by_name(this.obj, 'verdicts');
    return m !== null && m !== 0n;
  }

  private verdictKey = Buffer.alloc(8);
  private verdictValue = Buffer.alloc(RtVerdict.SIZE);
  private verdictFd = -1;
  private verdictGenFd = -1;
  private verdictGen = 0;
  private readonly verdictGenKey = Buffer.alloc(4);
  private readonly verdictGenValue = Buffer.alloc(8);

  /**
   * Sets socket `socketId`'s verdict in the kernel (RT_VERDICT_*; caps in bytes, 0 = the capture
   * limit). False when the kernel refused it (the map full of live sockets): the socket stays fully
   * captured, which loses nothing.
   */
  setVerdict(socketId: number, mode: number, capEgress: number, capIngress: number): boolean {
    if (this.verdictFd < 0) this.verdictFd = this.mapFd('verdicts');
    this.verdictKey.writeBigUInt64LE(BigInt(socketId));
    const v = this.verdictValue;
    v.fill(0);
    v.writeUInt8(mode, RtVerdict.mode.offset);
    v.writeUInt16LE(Math.min(capEgress, 0xffff), RtVerdict.cap_egress.offset);
    v.writeUInt16LE(Math.min(capIngress, 0xffff), RtVerdict.cap_ingress.offset);
    if (this.lib.map_update_elem(this.verdictFd, this.verdictKey, v, 0n) !== 0) return false;
    // Sockets re-read their verdict when the generation moves (bpf/riptide.bpf.c, verdict_for).
    if (this.verdictGenFd < 0) this.verdictGenFd = this.mapFd('verdict_gen');
    this.verdictGenValue.writeBigUInt64LE(BigInt(++this.verdictGen));
    check(this.lib.map_update_elem(this.verdictGenFd, this.verdictGenKey, this.verdictGenValue, 0n), 'bumping verdict_gen');
    return true;
  }

  /** What verdicts saved in the kernel, summed over CPUs (zeros for an object without them). */
  verdictCounters(): VerdictCounters {
    if (!this.hasVerdicts) return { skipped: 0, skippedBytes: 0, capped: 0, cappedBytes: 0 };
    const read = this.percpuReader('verdict_counters');
    return { skipped: read(RT_VD_SKIPPED), skippedBytes: read(RT_VD_SKIPPED_BYTES), capped: read(RT_VD_CAPPED), cappedBytes: read(RT_VD_CAPPED_BYTES) };
  }

  /** Goroutine counters, summed over CPUs (zeros for an object without them). */
  goCounters(): GoCounters {
    if (!this.hasGoroutines) return { readOk: 0, readFailed: 0, stateFull: 0 };
    const read = this.percpuReader('go_counters');
    return { readOk: read(RT_GO_CNT_READ_OK), readFailed: read(RT_GO_CNT_READ_FAILED), stateFull: read(RT_GO_CNT_STATE_FULL) };
  }

  private percpuReader(mapName: string): (idx: number) => number {
    const fd = this.mapFd(mapName);
    const ncpu = this.lib.num_possible_cpus();
    const value = Buffer.alloc(8 * ncpu);
    const key = Buffer.alloc(4);
    return (idx: number): number => {
      key.writeUInt32LE(idx);
      if (this.lib.map_lookup_elem(fd, key, value) < 0) return 0;
      let sum = 0;
      for (let c = 0; c < ncpu; c++) sum += Number(value.readBigUInt64LE(c * 8));
      return sum;
    };
  }

  /** Kernel-side counters, summed over CPUs. */
  counters(): KernelCounters {
    const fd = this.mapFd('counters');
    const ncpu = this.lib.num_possible_cpus();
    const value = Buffer.alloc(8 * ncpu);
    const key = Buffer.alloc(4);
    const read = (idx: number): number => {
      key.writeUInt32LE(idx);
      if (this.lib.map_lookup_elem(fd, key, value) < 0) return 0;
      let sum = 0;
      for (let c = 0; c < ncpu; c++) sum += Number(value.readBigUInt64LE(c * 8));
      return sum;
    };
    return { ringbufFull: read(RT_CNT_RINGBUF_FULL), emitted: read(RT_CNT_EMITTED), argsMapFull: read(RT_CNT_ARGS_FULL), handoff: this.handoffCounters() };
  }

  private handoffCounters(): HandoffCounters {
    if (!this.handoff) return NO_HANDOFF_COUNTERS;
    const fd = this.mapFd('handoff_counters');
    const ncpu = this.lib.num_possible_cpus();
    const value = Buffer.alloc(8 * ncpu);
    const key = Buffer.alloc(4);
    const read = (idx: number): number => {
      key.writeUInt32LE(idx);
      if (this.lib.map_lookup_elem(fd, key, value) < 0) return 0;
      let sum = 0;
      for (let c = 0; c < ncpu; c++) sum += Number(value.readBigUInt64LE(c * 8));
      return sum;
    };
    return {
      recorded: read(RT_HO_RECORDED),
      carried: read(RT_HO_CARRIED),
      ended: read(RT_HO_ENDED),
      otherProcess: read(RT_HO_OTHER_PROCESS),
      skipSocket: read(RT_HO_SKIP_SOCKET),
      skipStale: read(RT_HO_SKIP_STALE),
      skipNotRequest: read(RT_HO_SKIP_NOT_REQUEST),
      backRecorded: read(RT_HO_BACK_RECORDED),
      backCarried: read(RT_HO_BACK_CARRIED),
      backDropped: read(RT_HO_BACK_DROPPED),
    };
  }

  /** Detaches every program and frees the object. Safe to call twice. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const link of this.links.splice(0)) this.lib.link_destroy(link);
    for (const link of this.uprobeLinks) this.lib.link_destroy(link);
    this.uprobeLinks.clear();
    if (this.obj !== null) this.lib.object_close(this.obj);
    this.obj = null;
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

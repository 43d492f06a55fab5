/**
 * Loads bpf/riptide-net.bpf.o (issue 19): TC observation points on the interfaces the user chose
 * and the TCP health tracepoints. Separate from {@link CaptureProgram} so that a kernel refusing
 * TC programs costs network spans only, never syscall capture.
 *
 * Attach: tcx links (`BPF_LINK_CREATE` with `BPF_TCX_INGRESS/EGRESS`, kernel 6.6+) through
 * libbpf's `bpf_link_create`. A link is an fd: closing it (or the agent dying) detaches the program,
 * and it sits beside any other tc program on the interface without touching it. Kernels before tcx
 * fall back to a clsact filter (`bpf_tc_attach`), which is netlink state, not an fd: it is removed
 * by {@link NetProgram.close}, and a killed agent leaves it attached until the interface goes
 * away (the qdisc is created only when missing, and removed again only if we created it).
 *
 * Only interfaces that are attached ever copy a packet: the programs run nowhere else.
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import koffi from 'koffi';
import type { Libbpf, Ptr } from './libbpf.ts';
import { captureLibbpfLog, check, checkPtr, errnoText, libbpf } from './libbpf.ts';
import { RingReader } from './ring-reader.ts';
import { checkTracefs } from './preflight.ts';
import { RT_NET_CNT_FILTERED, RT_NET_CNT_NO_PAYLOAD, RT_NET_CNT_NOT_TCP, RT_NET_CNT_PACKETS, RT_NET_CNT_RINGBUF_FULL, RT_NET_MAX_PAYLOAD, Rodata } from './net-layout.generated.ts';

export const DEFAULT_NET_OBJECT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bpf', 'riptide-net.bpf.o');

const BPF_TCX_INGRESS = 46;
const BPF_TCX_EGRESS = 47;
/** enum bpf_tc_attach_point */
const BPF_TC_INGRESS = 1;
const BPF_TC_EGRESS = 2;
const TC_PRIORITY = 0x7219;
const TC_PROGRAMS = ['rt_net_ingress', 'rt_net_egress'];
const TC_HANDLE = 0x7219;

interface NetLib {
  program_fd(prog: Ptr): number;
  link_create(progFd: number, targetFd: number, attachType: number, opts: null): number;
  tc_hook_create(hook: Buffer): number;
  tc_hook_destroy(hook: Buffer): number;
  tc_attach(hook: Buffer, opts: Buffer): number;
  tc_detach(hook: Buffer, opts: Buffer): number;
  close(fd: number): number;
}

let netLib: NetLib | null = null;
function bindNetLib(): NetLib {
  if (netLib) return netLib;
  libbpf();
  const bpf = koffi.load('libbpf.so.1');
  const libc = koffi.load('libc.so.6');
  netLib = {
    program_fd: bpf.func('int bpf_program__fd(void *prog)'),
    link_create: bpf.func('int bpf_link_create(int prog_fd, int target_fd, int attach_type, void *opts)'),
    tc_hook_create: bpf.func('int bpf_tc_hook_create(uint8_t *hook)'),
    tc_hook_destroy: bpf.func('int bpf_tc_hook_destroy(uint8_t *hook)'),
    tc_attach: bpf.func('int bpf_tc_attach(uint8_t *hook, uint8_t *opts)'),
    tc_detach: bpf.func('int bpf_tc_detach(uint8_t *hook, uint8_t *opts)'),
    close: libc.func('int close(int fd)'),
  } as NetLib;
  return netLib;
}

/** struct bpf_tc_hook { size_t sz; int ifindex; enum attach_point; __u32 parent; } (24 bytes). */
function tcHook(ifindex: number, point: number): Buffer {
  const b = Buffer.alloc(24);
  b.writeBigUInt64LE(24n, 0);
  b.writeInt32LE(ifindex, 8);
  b.writeUInt32LE(point, 12);
  return b;
}

/** struct bpf_tc_opts { size_t sz; int prog_fd; __u32 flags, prog_id, handle, priority; } (32 bytes). */
function tcOpts(progFd: number): Buffer {
  const b = Buffer.alloc(32);
  b.writeBigUInt64LE(32n, 0);
  b.writeInt32LE(progFd, 8);
  b.writeUInt32LE(TC_HANDLE, 20);
  b.writeUInt32LE(TC_PRIORITY, 24);
  return b;
}

export interface NetProgramOptions {
  /** Payload bytes copied per packet (default 256, at most 1024). */
  captureLimit?: number;
  /** Ring buffer bytes, a power of two (default 4 MiB). */
  ringBytes?: number;
  objectPath?: string;
  /** Attach the TCP health tracepoints (default true). */
  tcpHealth?: boolean;
  /**
   * Keep only packets and TCP health events with one of these local or remote ports; the kernel
   * counts the rest (`filtered`) and copies nothing of them. Undefined or empty: every port.
   */
  kernelPorts?: readonly number[];
}

export interface NetCounters {
  packets: number;
  ringbufFull: number;
  notTcp: number;
  noPayload: number;
  /** Packets and health events the kernel's port filter left out. */
  filtered: number;
}

interface Attachment {
  ifindex: number;
  name: string;
  /** tcx link fds, or -1 with the clsact fallback. */
  fds: number[];
  /** With the clsact fallback: the hooks to detach, and whether we created the qdisc. */
  tc?: { created: boolean };
}

export class NetProgram implements Disposable {
  private closed = false;
  private readonly attachments = new Map<number, Attachment>();
  private readonly tracepointLinks: bigint[] = [];
  /** 'tcx' or 'clsact': how interfaces are attached on this kernel (decided at the first attach). */
  mode: 'tcx' | 'clsact' | '' = '';

  private constructor(
    private readonly lib: Libbpf,
    private obj: Ptr,
    readonly ringBytes: number,
    readonly captureLimit: number,
  ) {}

  static load(options: NetProgramOptions = {}): NetProgram {
    const lib = libbpf();
    const path = options.objectPath ?? process.env.RIPTIDE_NET_BPF_OBJECT ?? DEFAULT_NET_OBJECT;
    if (!existsSync(path)) throw new Error(`BPF object ${path} is missing (build it with: npm run bpf:build)`);
    // libbpf's warnings are held until the outcome is known: a refused TC program that the
    // fallback below copes with is one line from the agent, not libbpf's three.
    const warnings: string[] = [];
    captureLibbpfLog((level, line) => level === 'warn' && warnings.push(line));
    const flush = (): void => {
      for (const w of warnings.splice(0)) process.stderr.write(`libbpf: ${w}\n`);
    };
    const captureLimit = options.captureLimit ?? 256;
    if (!Number.isInteger(captureLimit) || captureLimit < 0 || captureLimit > RT_NET_MAX_PAYLOAD) {
      throw new Error(`network capture limit must be an integer between 0 and ${RT_NET_MAX_PAYLOAD}, got ${captureLimit}`);
    }
    const ringBytes = options.ringBytes ?? 4 << 20;
    if (ringBytes < 4096 || ringBytes & (ringBytes - 1)) throw new Error(`ring buffer size must be a power of two ≥ 4096, got ${ringBytes}`);
    /** Set once a load with the TC programs failed: the retry loads the TCP health programs only. */
    let tcRefused: string | undefined;
    for (let attempt = 1; ; attempt++) {
      const obj = checkPtr(lib.object_open_file(path, null), `opening ${path}`);
      const prog = new NetProgram(lib, obj, ringBytes, captureLimit);
      try {
        const rodataMap = prog.map('.rodata');
        const rodata = Buffer.alloc(Math.max(lib.map_value_size(rodataMap), Rodata.SIZE));
        rodata.writeUInt32LE(captureLimit, Rodata.net_capture_limit.offset);
        const ports = options.kernelPorts ?? [];
        rodata.writeUInt32LE(ports.length ? 1 : 0, Rodata.net_filter_ports.offset);
        check(lib.map_set_initial_value(rodataMap, rodata, lib.map_value_size(rodataMap)), 'setting load-time constants');
        check(lib.map_set_max_entries(prog.map('net_events'), ringBytes), 'sizing the network ring buffer');
        if (tcRefused !== undefined) for (const name of TC_PROGRAMS) check(lib.program_set_autoload(prog.program(name), false), `leaving ${name} out`);
        const loaded = lib.object_load(obj);
        if (loaded < 0) {
          const why = `loading the network BPF programs was refused by the kernel: ${errnoText(-loaded)}`;
          // TC programs need CAP_NET_ADMIN (or a kernel that has them): try TCP health alone.
          if (tcRefused === undefined && options.tcpHealth !== false && !why.includes('EAGAIN')) {
            tcRefused = why;
            prog.close();
            continue;
          }
          throw new Error(tcRefused ?? why);
        }
        prog.tcUnavailable = tcRefused;
        prog.setPorts(ports);
        if (options.tcpHealth !== false) prog.attachTracepoints();
        if (tcRefused === undefined) flush();
        warnings.length = 0;
        captureLibbpfLog((level, line) => level === 'warn' && process.stderr.write(`libbpf: ${line}\n`));
        return prog;
      } catch (err) {
        prog.close();
        // the verifier gives up with EAGAIN when a signal arrives mid-verification
        if (err instanceof Error && err.message.includes('EAGAIN') && attempt < 8) continue;
        flush();
        throw err;
      }
    }
  }

  /** Why the TC programs are not loaded (the kernel refused them; TCP health alone), or undefined. */
  tcUnavailable: string | undefined;

  private setPorts(ports: readonly number[]): void {
    if (ports.length > 1024) throw new Error(`network capture filters at most 1024 ports, got ${ports.length}`);
    const fd = check(this.lib.map_fd(this.map('net_ports')), 'fd of map net_ports');
    const key = Buffer.alloc(2);
    const one = Buffer.from([1]);
    for (const p of ports) {
      key.writeUInt16LE(p);
      check(this.lib.map_update_elem(fd, key, one, 0n), `adding port ${p} to the network port filter`);
    }
  }

  private map(name: string): bigint {
    return checkPtr(this.lib.object_find_map_by_name(this.obj, name), `finding map ${name}`);
  }

  private program(name: string): bigint {
    let p: Ptr = null;
    while ((p = this.lib.object_next_program(this.obj, p)) !== null && p !== 0n) if (this.lib.program_name(p) === name) return p;
    throw new Error(`no program ${name} in the network object`);
  }

  private attachTracepoints(): void {
    const tracefs = checkTracefs();
    if (!tracefs.ok) throw new Error(tracefs.line);
    for (const name of ['rt_tcp_retransmit', 'rt_tcp_set_state']) {
      const link = this.lib.program_attach(this.program(name));
      if (link === null || link === 0n) throw new Error(`attaching ${name} failed: ${errnoText()}`);
      this.tracepointLinks.push(link);
    }
  }

  /** Whether the TCP health tracepoints are attached. */
  get tcpHealth(): boolean {
    return this.tracepointLinks.length > 0;
  }

  /** Interfaces attached now, by ifindex. */
  get interfaces(): ReadonlyMap<number, string> {
    return new Map([...this.attachments.values()].map((a) => [a.ifindex, a.name]));
  }

  /** Attaches ingress and egress to an interface (idempotent). Throws with the reason on failure. */
  attach(ifindex: number, name: string): void {
    if (this.closed) throw new Error('network capture is closed');
    if (this.tcUnavailable !== undefined) throw new Error(this.tcUnavailable);
    if (this.attachments.has(ifindex)) return;
    const n = bindNetLib();
    const ing = n.program_fd(this.program('rt_net_ingress'));
    const eg = n.program_fd(this.program('rt_net_egress'));
    if (this.mode !== 'clsact') {
      const a = n.link_create(ing, ifindex, BPF_TCX_INGRESS, null);
      if (a >= 0) {
        const b = n.link_create(eg, ifindex, BPF_TCX_EGRESS, null);
        if (b < 0) {
          n.close(a);
          throw new Error(`attaching tc egress to ${name} failed: ${errnoText(-b)}`);
        }
        this.mode = 'tcx';
        this.attachments.set(ifindex, { ifindex, name, fds: [a, b] });
        return;
      }
      // EINVAL: no tcx in this kernel; anything else is about this interface.
      if (this.mode === 'tcx' || -a !== 22) throw new Error(`attaching tc ingress to ${name} failed: ${errnoText(-a)}`);
      this.mode = 'clsact';
    }
    const hook = tcHook(ifindex, BPF_TC_INGRESS | BPF_TC_EGRESS);
    const rc = n.tc_hook_create(hook);
    if (rc < 0 && -rc !== 17) throw new Error(`creating the clsact qdisc on ${name} failed: ${errnoText(-rc)}`);
    const created = rc >= 0;
    for (const [point, fd] of [[BPF_TC_INGRESS, ing], [BPF_TC_EGRESS, eg]] as const) {
      const r = n.tc_attach(tcHook(ifindex, point), tcOpts(fd));
      if (r < 0) {
        this.detachClsact(ifindex, created);
        throw new Error(`attaching a tc filter to ${name} failed: ${errnoText(-r)}`);
      }
    }
    this.attachments.set(ifindex, { ifindex, name, fds: [], tc: { created } });
  }

  private detachClsact(ifindex: number, created: boolean): void {
    const n = bindNetLib();
    for (const point of [BPF_TC_INGRESS, BPF_TC_EGRESS]) {
      const o = tcOpts(0);
      n.tc_detach(tcHook(ifindex, point), o);
    }
    if (created) n.tc_hook_destroy(tcHook(ifindex, BPF_TC_INGRESS | BPF_TC_EGRESS));
  }

  /** Detaches an interface (a vanished one included). */
  detach(ifindex: number): void {
    const a = this.attachments.get(ifindex);
    if (!a) return;
    this.attachments.delete(ifindex);
    const n = bindNetLib();
    for (const fd of a.fds) n.close(fd);
    if (a.tc) this.detachClsact(ifindex, a.tc.created);
  }

  ringReader(): RingReader {
    return new RingReader(this.lib, check(this.lib.map_fd(this.map('net_events')), 'fd of map net_events'), this.ringBytes);
  }

  counters(): NetCounters {
    const fd = check(this.lib.map_fd(this.map('net_counters')), 'fd of map net_counters');
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
    return { packets: read(RT_NET_CNT_PACKETS), ringbufFull: read(RT_NET_CNT_RINGBUF_FULL), notTcp: read(RT_NET_CNT_NOT_TCP), noPayload: read(RT_NET_CNT_NO_PAYLOAD), filtered: read(RT_NET_CNT_FILTERED) };
  }

  /** Detaches every interface and tracepoint and frees the object. Safe to call twice. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const ifindex of [...this.attachments.keys()]) this.detach(ifindex);
    for (const link of this.tracepointLinks.splice(0)) this.lib.link_destroy(link);
    if (this.obj !== null) this.lib.object_close(this.obj);
    this.obj = null;
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

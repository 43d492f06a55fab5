/**
 * Start-up checks before loading BPF: privileges, kernel BTF, tracefs (tracepoint ids), libbpf and
 * the bpf() syscall. Each failure is one line naming what is missing and how to get it.
 * Optional hook kinds are probed and reported, never required.
 */
import { execFileSync } from 'node:child_process';
import { accessSync, constants, existsSync, readFileSync } from 'node:fs';
import { BpfProgType, libbpf } from './libbpf.ts';

export interface CheckResult {
  ok: boolean;
  /** One line: what was checked and what was found. */
  line: string;
}

export interface Preflight {
  ok: boolean;
  checks: CheckResult[];
  /** The first failure as a single line, for the user. */
  problem?: string;
}

const CAP_SYS_ADMIN = 21n;
const CAP_PERFMON = 38n;
const CAP_BPF = 39n;
const TRACEFS = ['/sys/kernel/tracing', '/sys/kernel/debug/tracing'];

function effectiveCaps(status: string): bigint {
  const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(status);
  return m ? BigInt('0x' + m[1]) : 0n;
}

function hasCap(caps: bigint, bit: bigint): boolean {
  return ((caps >> bit) & 1n) === 1n;
}

export function checkPrivileges(status = readFileSync('/proc/self/status', 'utf8'), euid = process.geteuid?.() ?? -1): CheckResult {
  const caps = effectiveCaps(status);
  if (euid === 0 && hasCap(caps, CAP_SYS_ADMIN)) return { ok: true, line: 'privileges: root' };
  if (hasCap(caps, CAP_BPF) && hasCap(caps, CAP_PERFMON)) return { ok: true, line: 'privileges: CAP_BPF + CAP_PERFMON' };
  if (hasCap(caps, CAP_SYS_ADMIN)) return { ok: true, line: 'privileges: CAP_SYS_ADMIN' };
  return { ok: false, line: 'privileges: not root and missing CAP_BPF + CAP_PERFMON (run as root, or grant them: setcap cap_bpf,cap_perfmon+ep)' };
}

export function checkBtf(path = '/sys/kernel/btf/vmlinux'): CheckResult {
  try {
    accessSync(path, constants.R_OK);
    return { ok: true, line: `kernel BTF: ${path}` };
  } catch {
    return { ok: false, line: `kernel BTF: ${path} is missing (a kernel built with CONFIG_DEBUG_INFO_BTF=y is needed for CO-RE)` };
  }
}

/** Tracepoint ids come from tracefs; mount it when we may (root) and it is not mounted yet. */
export function checkTracefs(): CheckResult {
  const found = TRACEFS.find((d) => existsSync(`${d}/events/syscalls/sys_enter_write/id`));
  if (found) return { ok: true, line: `tracefs: ${found}` };
  try {
    execFileSync('mount', ['-t', 'tracefs', 'nodev', '/sys/kernel/tracing'], { stdio: 'ignore' });
    if (existsSync('/sys/kernel/tracing/events/syscalls/sys_enter_write/id')) return { ok: true, line: 'tracefs: mounted at /sys/kernel/tracing' };
  } catch {
    /* fall through to the clear message */
  }
  return { ok: false, line: 'tracefs: not mounted and could not be mounted (mount -t tracefs nodev /sys/kernel/tracing); syscall tracepoints need it' };
}

export function checkLibbpf(): CheckResult {
  try {
    const lib = libbpf();
    const tp = lib.probe_bpf_prog_type(BpfProgType.TRACEPOINT, null);
    if (tp === 1) return { ok: true, line: 'bpf: libbpf.so.1 loaded; tracepoint programs load' };
    return { ok: false, line: `bpf: the kernel refuses tracepoint BPF programs (probe returned ${tp}); is BPF disabled or are we in a restricted container?` };
  } catch (err) {
    return { ok: false, line: `bpf: ${(err as Error).message}` };
  }
}

/** Everything the capture path needs, in order; stops at the first failure that makes later checks meaningless. */
export function runPreflight(): Preflight {
  const checks: CheckResult[] = [];
  for (const check of [checkPrivileges, checkBtf, checkTracefs, checkLibbpf]) {
    const r = check();
    checks.push(r);
    if (!r.ok) return { ok: false, checks, problem: r.line };
  }
  return { ok: true, checks };
}

export interface FeatureProbe {
  name: string;
  available: boolean;
  detail: string;
}

/**
 * Optional accelerators and future hooks. The capture program needs none of them; `riptide doctor`
 * prints this so operators know what a host offers.
 */
export function probeFeatures(): FeatureProbe[] {
  const lib = libbpf();
  const progType = (name: string, type: number): FeatureProbe => {
    const r = lib.probe_bpf_prog_type(type, null);
    return { name, available: r === 1, detail: r === 1 ? 'program type loads' : `program type refused (${r})` };
  };
  const tracefs = TRACEFS.find((d) => existsSync(d + '/events')) ?? '/sys/kernel/tracing';
  const kprobes = existsSync(`${tracefs}/kprobe_events`) || existsSync('/sys/bus/event_source/devices/kprobe');
  return [
    progType('syscall tracepoints (baseline)', BpfProgType.TRACEPOINT),
    progType('raw tracepoints', BpfProgType.RAW_TRACEPOINT),
    {
      name: 'kprobes',
      available: kprobes,
      detail: kprobes ? 'kprobe PMU present' : 'not built into this kernel (no kprobe PMU, no kprobe_events)',
    },
    // libbpf's probe loads a tracing program as fentry: it says nothing of tp_btf, which may load where fentry is refused.
    progType('fentry/fexit (tracing programs)', BpfProgType.TRACING),
    progType('perf-event', BpfProgType.PERF_EVENT),
    progType('socket filter', BpfProgType.SOCKET_FILTER),
    progType('TC classifier', BpfProgType.SCHED_CLS),
  ];
}

/**
 * What tests and benchmarks read about processes from /proc: stat fields, CPU time, children,
 * and the BPF programs and links a process holds (from its fd table).
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';

/** Fields of /proc/<pid>/stat after the name: [0] is field 3 (state), [1] the parent pid, … */
export function statFields(pid: number): string[] {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
}

/** User + system CPU seconds of a process so far. */
export function cpuSeconds(pid: number): number {
  const f = statFields(pid);
  return (Number(f[11]) + Number(f[12])) / 100; // utime + stime, in clock ticks of 1/100 s
}

export function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      if (Number(statFields(Number(d))[1]) === pid) out.push(Number(d));
    } catch {
      /* gone meanwhile */
    }
  }
  return out;
}

/** Alive and not a zombie. */
export function isAlive(pid: number): boolean {
  try {
    return statFields(pid)[0] !== 'Z';
  } catch {
    return false;
  }
}

/** BPF program and link ids a process holds, read from its fd table (fdinfo). */
export function bpfObjectsOf(pid: number): { progs: number[]; links: number[] } {
  const progs: number[] = [];
  const links: number[] = [];
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const target = readlinkSync(`/proc/${pid}/fd/${fd}`);
      if (target !== 'anon_inode:bpf_link' && target !== 'anon_inode:bpf-prog') continue;
      const info = readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8');
      const link = /^link_id:\s*(\d+)/m.exec(info);
      const prog = /^prog_id:\s*(\d+)/m.exec(info);
      if (link) links.push(Number(link[1]));
      else if (prog) progs.push(Number(prog[1]));
    } catch {
      /* closed meanwhile */
    }
  }
  return { progs, links };
}

/** Whether the kernel still has a BPF program / link with this id. */
export function bpfExists(kind: 'prog' | 'link', id: number): boolean {
  try {
    execFileSync('bpftool', [kind, 'show', 'id', String(id)], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

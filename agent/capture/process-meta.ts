/**
 * Process metadata from /proc: name, command line, container id (from the cgroup path) and start
 * time. Cached per pid; an entry is dropped when the kernel reports exec or exit for that pid, and
 * revalidated by start time after `revalidateMs`, so a reused pid never inherits the old metadata.
 *
 * @example
 *   const meta = new ProcessMetadata();
 *   meta.get(1234)?.containerId;
 */
import { readFileSync } from 'node:fs';
import type { ProcessInfo } from './message.ts';

interface Entry {
  info: ProcessInfo;
  checkedAt: number;
}

const CONTAINER_ID = /(?:^|[/-])([0-9a-f]{64})(?:\.scope)?$/;

/** Container id from a cgroup v1/v2 path: docker-<id>.scope, cri-containerd-<id>.scope, /docker/<id>, … */
export function containerIdFromCgroup(cgroupFile: string): string {
  for (const line of cgroupFile.split('\n')) {
    const path = line.split(':').slice(2).join(':');
    for (const part of path.split('/').reverse()) {
      const m = CONTAINER_ID.exec(part);
      if (m) return m[1];
    }
  }
  return '';
}

/** Field 22 of /proc/pid/stat (start time in clock ticks); the name field may hold spaces and parens. */
export function startTimeFromStat(stat: string): number {
  const close = stat.lastIndexOf(')');
  const fields = stat.slice(close + 2).split(' ');
  // fields[0] is field 3 (state); start time is field 22.
  return Number(fields[19]);
}

export class ProcessMetadata {
  private readonly cache = new Map<number, Entry>();

  constructor(
    private readonly procRoot = '/proc',
    private readonly revalidateMs = 2000,
    private readonly maxEntries = 65536,
  ) {}

  /** Metadata for a pid, or undefined when the process is gone. */
  get(pid: number, now = Date.now()): ProcessInfo | undefined {
    const hit = this.cache.get(pid);
    if (hit) {
      if (now - hit.checkedAt < this.revalidateMs) return hit.info;
      const start = this.readStartTime(pid);
      if (start === hit.info.startTime) {
        hit.checkedAt = now;
        return hit.info;
      }
      this.cache.delete(pid);
    }
    const info = this.read(pid);
    if (!info) return undefined;
    if (this.cache.size >= this.maxEntries) this.cache.delete(this.cache.keys().next().value as number);
    this.cache.set(pid, { info, checkedAt: now });
    return info;
  }

  /** The kernel said this pid exec'd or exited: forget it. */
  invalidate(pid: number): void {
    this.cache.delete(pid);
  }

  get size(): number {
    return this.cache.size;
  }

  private readStartTime(pid: number): number | undefined {
    try {
      return startTimeFromStat(readFileSync(`${this.procRoot}/${pid}/stat`, 'utf8'));
    } catch {
      return undefined;
    }
  }

  private read(pid: number): ProcessInfo | undefined {
    try {
      const stat = readFileSync(`${this.procRoot}/${pid}/stat`, 'utf8');
      const name = readFileSync(`${this.procRoot}/${pid}/comm`, 'utf8').trimEnd();
      let cmdline = '';
      let cgroup = '';
      try {
        cmdline = readFileSync(`${this.procRoot}/${pid}/cmdline`, 'utf8').replace(/\0+$/, '').replace(/\0/g, ' ');
      } catch {
        /* kernel threads and zombies have none */
      }
      try {
        cgroup = readFileSync(`${this.procRoot}/${pid}/cgroup`, 'utf8').trim();
      } catch {
        /* no cgroup file (unusual): host process */
      }
      return { pid, startTime: startTimeFromStat(stat), name, cmdline, containerId: containerIdFromCgroup(cgroup), cgroup };
    } catch {
      return undefined;
    }
  }
}

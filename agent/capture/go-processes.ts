/**
 * Which captured processes are Go programs, and where their goroutine id lives (issue 15). For each
 * pid seen (at start-up, on exec, on its first message) the executable is checked once: its ELF
 * section names say whether it is Go (cheap: headers only), and for a Go binary
 * {@link inspectGoBinary} reads the goid offset and the TLS slot of g, cached per executable
 * (device and inode). The result goes to the kernel (`go_procs`) through `write`; a failure is
 * counted and the process is captured as before, with thread ids.
 *
 * Counters (on /metrics): riptide_capture_go_processes_total{result=tracked|no_dwarf|…}.
 *
 * @example
 *   const go = new GoProcesses((pid, info) => program.setGoProcess(pid, info));
 *   go.check(1234);
 */
import { closeSync, openSync, readFileSync, readSync, readdirSync, statSync } from 'node:fs';
import type { GoBinaryInfo } from './go-runtime.ts';
import { GoBinaryError, inspectGoBinary } from './go-runtime.ts';
import { BurstLogger, metrics } from '../metrics.ts';

const goProcesses = metrics.counter('riptide_capture_go_processes_total', 'Go processes seen: tracked (goroutine ids captured) or why not (no_dwarf, bad_dwarf, tls_layout, …)');

/** Whether an ELF file has a `.go.buildinfo` section: reads the section headers and their names only. */
export function isGoElf(path: string): boolean {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return false;
  }
  try {
    const read = (len: number, pos: number): Buffer => {
      const b = Buffer.alloc(len);
      const n = readSync(fd, b, 0, len, pos);
      return b.subarray(0, n);
    };
    const h = read(64, 0);
    if (h.length < 64 || h.readUInt32BE(0) !== 0x7f454c46 || h[4] !== 2 || h[5] !== 1) return false;
    const shoff = Number(h.readBigUInt64LE(0x28));
    const shentsize = h.readUInt16LE(0x3a);
    const shnum = h.readUInt16LE(0x3c);
    const shstrndx = h.readUInt16LE(0x3e);
    if (shoff === 0 || shentsize < 64 || shnum === 0 || shnum > 4096 || shstrndx >= shnum) return false;
    const sh = read(shentsize * shnum, shoff);
    if (sh.length < shentsize * shnum) return false;
    const so = shstrndx * shentsize;
    const strOff = Number(sh.readBigUInt64LE(so + 0x18));
    const strSize = Math.min(Number(sh.readBigUInt64LE(so + 0x20)), 1 << 20);
    return read(strSize, strOff).includes('\0.go.buildinfo\0', 0, 'latin1');
  } catch {
    return false;
  } finally {
    closeSync(fd);
  }
}

export class GoProcesses {
  /** pid → what was written for it (undefined: checked, not a Go process we can read). */
  private readonly checked = new Map<number, GoBinaryInfo | undefined>();
  /** pid → the process start time it was checked for (a reused pid is another process). */
  private readonly started = new Map<number, number>();
  /** `${dev}:${ino}` of an executable → its result (a failure as its reason). */
  private readonly byExe = new Map<string, GoBinaryInfo | string>();
  private readonly log = new BurstLogger('capture: Go process without goroutine ids');

  constructor(
    private readonly write: (pid: number, info: GoBinaryInfo | undefined) => void,
    private readonly procRoot = '/proc',
    private readonly maxPids = 65_536,
  ) {}

  /**
   * Checks a pid once (again after {@link forget}, or when `startTime` — /proc/pid/stat's, from the
   * process metadata — says the pid now names another process: its exit record may have been lost).
   * Returns what it found for it.
   */
  check(pid: number, startTime?: number): GoBinaryInfo | undefined {
    if (startTime !== undefined) {
      const was = this.started.get(pid);
      if (was !== undefined && was !== startTime) this.forget(pid);
      this.started.set(pid, startTime);
    }
    if (this.checked.has(pid)) return this.checked.get(pid);
    if (this.checked.size >= this.maxPids) {
      const oldest = this.checked.keys().next().value as number;
      this.forget(oldest);
      this.started.delete(oldest);
    }
    const exe = `${this.procRoot}/${pid}/exe`;
    let key: string;
    try {
      const st = statSync(exe);
      key = `${st.dev}:${st.ino}`;
    } catch {
      this.checked.set(pid, undefined); // gone, a kernel thread, or not ours to read
      return undefined;
    }
    let r = this.byExe.get(key);
    if (r === undefined) {
      if (!isGoElf(exe)) r = 'not_go';
      else {
        try {
          r = inspectGoBinary(readFileSync(exe));
        } catch (err) {
          r = err instanceof GoBinaryError ? err.reason : 'unreadable';
          this.log.record(1, `pid ${pid}: ${(err as Error).message}`);
        }
      }
      this.byExe.set(key, r);
    }
    const info = typeof r === 'string' ? undefined : r;
    if (r !== 'not_go') {
      goProcesses.inc({ result: info ? 'tracked' : (r as string) });
      if (info) {
        try {
          this.write(pid, info);
        } catch (err) {
          goProcesses.inc({ result: 'map_full' });
          this.log.record(1, `pid ${pid}: ${(err as Error).message}`);
          this.checked.set(pid, undefined);
          return undefined;
        }
      }
    }
    this.checked.set(pid, info);
    return info;
  }

  /** The pid exec'd or exited: drop it from the kernel map and check it again when seen next. */
  forget(pid: number): void {
    const had = this.checked.get(pid);
    this.checked.delete(pid);
    if (had) this.write(pid, undefined);
  }

  /** Checks every process already running (pids: only these). */
  scan(pids?: readonly number[]): void {
    let list = pids ? [...pids] : [];
    if (!pids) {
      try {
        list = readdirSync(this.procRoot).filter((d) => /^\d+$/.test(d)).map(Number);
      } catch {
        return;
      }
    }
    for (const pid of list) this.check(pid);
  }

  get tracked(): number {
    let n = 0;
    for (const v of this.checked.values()) if (v) n++;
    return n;
  }
}

/**
 * Finds the OpenSSL-compatible TLS libraries processes use and attaches the TLS uprobe programs
 * to each library file once (by device and inode, not per process): `libssl.so.*` mapped by a
 * process, and executables that link OpenSSL statically and export its symbols (node does).
 * A library is detached when the last process seen using it exits.
 *
 * Processes are scanned when the agent starts (so those running before it are covered), when one
 * calls exec (again shortly after: the dynamic loader and dlopen map libssl later), and when one
 * of its sockets carries TLS records before its library is known (Python loads `_ssl` on import).
 *
 * @example
 *   const libs = new TlsLibraries(program);
 *   libs.start();
 *   libs.onExec(pid); libs.onExit(pid);
 */
import { closeSync, openSync, readdirSync, readFileSync, readlinkSync, readSync, realpathSync, statSync } from 'node:fs';
import { metrics } from '../metrics.ts';
import type { GoUprobeHost } from './go-tls.ts';
import { GoTlsError, attachGoTls } from './go-tls.ts';
import { isGoElf } from './go-processes.ts';

/** The functions hooked and the uprobe programs (bpf/riptide.bpf.c) for their entry and return. */
export const TLS_FUNCTIONS: ReadonlyArray<{ symbol: string; enter: string; exit: string }> = [
  { symbol: 'SSL_write', enter: 'rt_ssl_write_enter', exit: 'rt_ssl_write_exit' },
  { symbol: 'SSL_read', enter: 'rt_ssl_read_enter', exit: 'rt_ssl_read_exit' },
  { symbol: 'SSL_write_ex', enter: 'rt_ssl_write_ex_enter', exit: 'rt_ssl_write_ex_exit' },
  { symbol: 'SSL_read_ex', enter: 'rt_ssl_read_ex_enter', exit: 'rt_ssl_read_ex_exit' },
];

/** What attaching needs from the loaded program (CaptureProgram). */
export interface UprobeHost {
  attachUprobe(program: string, path: string, offset: number): bigint;
  detach(link: bigint): void;
  /** Loaded uprobe program names (the Go TLS programs are looked for here; absent: OpenSSL only). */
  readonly uprobePrograms?: readonly string[];
}

export interface TlsLibrary {
  /** `dev:inode` from /proc/pid/maps. */
  key: string;
  /** Path as the first process that mapped it names it (in its mount namespace). */
  path: string;
  /** Hooked symbols found in it. */
  symbols: string[];
  users: Set<number>;
  links: bigint[];
  /** A system libssl attached at start: kept for the agent's life (short-lived curl runs use it). */
  pinned: boolean;
}

const attachedGauge = metrics.gauge('riptide_tls_libraries', 'TLS library files with uprobes attached');
const goUnprobed = metrics.counter('riptide_tls_go_unprobed_total', 'Go executables with crypto/tls whose TLS stays ciphertext, by reason (no_symtab, go_version, not_amd64, decode)');
const attachFailures = metrics.counter('riptide_tls_attach_failures_total', 'TLS library files whose uprobes could not be attached');

/** Candidate file names: libssl of OpenSSL 1.1 / 3 (and compatible forks shipping the same name). */
const LIBSSL = /\/libssl\.so(\.[0-9.]+)?$/;
/** Negative cache of executables without the symbols (bounded). */
const MAX_NEGATIVE = 16_384;
/** Where the system's libssl lives (attached at start, whether or not a process maps it yet). */
const SYSTEM_LIB_DIRS = ['/lib/x86_64-linux-gnu', '/usr/lib/x86_64-linux-gnu', '/lib/aarch64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/usr/lib64', '/lib64', '/usr/lib', '/usr/local/lib'];
/** A library file whose attach failed is tried again after this long. */
const RETRY_MS = 10_000;

/** `dev:inode` as /proc/pid/maps spells it (major:minor in hex, inode in decimal). */
export function fileKey(path: string): string {
  const st = statSync(path);
  const major = (st.dev >> 8) & 0xfff;
  const minor = (st.dev & 0xff) | ((st.dev >> 12) & 0xfff00);
  return `${major.toString(16).padStart(2, '0')}:${minor.toString(16).padStart(2, '0')}:${st.ino}`;
}

export class TlsLibraries {
  readonly libraries = new Map<string, TlsLibrary>();
  /** Files looked at that have none of the symbols (or could not be attached): not again. */
  private readonly negative = new Set<string>();
  /** Keys whose attach failed, with when (retried after RETRY_MS). */
  private readonly failed = new Map<string, number>();
  /** pid → library keys it maps. */
  private readonly byPid = new Map<number, Set<string>>();
  private readonly lastScan = new Map<number, number>();
  private readonly timers = new Set<NodeJS.Timeout>();
  /** Last attach failure, for `riptide doctor` and the log. */
  lastError = '';

  constructor(
    private readonly host: UprobeHost,
    private readonly selfPid = process.pid,
    private readonly log: (line: string) => void = (l) => process.stderr.write(`${l}\n`),
  ) {}

  /** The system's libssl files (so a short-lived client's first connection is seen), then every process. */
  start(): void {
    for (const dir of SYSTEM_LIB_DIRS) {
      let names: string[];
      try {
        names = readdirSync(dir).filter((n) => /^libssl\.so(\.[0-9.]+)?$/.test(n));
      } catch {
        continue;
      }
      for (const n of names) {
        let path: string;
        let key: string;
        try {
          path = realpathSync(`${dir}/${n}`);
          key = fileKey(path);
        } catch {
          continue;
        }
        if (this.libraries.has(key)) continue;
        const lib = this.tryAttach(key, path, path);
        if (lib) lib.pinned = true;
      }
    }
    this.scanAll();
  }

  /** Every process on the machine (those running before the agent). */
  scanAll(): void {
    let pids: string[];
    try {
      pids = readdirSync('/proc').filter((d) => /^[0-9]+$/.test(d));
    } catch {
      return;
    }
    for (const p of pids) this.scan(Number(p));
  }

  /** A process called exec: its libraries now, and again once the loader and dlopen have run. */
  onExec(pid: number): void {
    this.scan(pid);
    for (const ms of [50, 500, 2000]) {
      const t = setTimeout(() => {
        this.timers.delete(t);
        this.scan(pid);
      }, ms);
      t.unref();
      this.timers.add(t);
    }
  }

  /** A process carried TLS records: scan it unless that was done in the last second. */
  onTlsTraffic(pid: number, nowMs = Date.now()): void {
    const last = this.lastScan.get(pid);
    if (last !== undefined && nowMs - last < 1000) return;
    this.scan(pid);
  }

  onExit(pid: number): void {
    this.lastScan.delete(pid);
    const keys = this.byPid.get(pid);
    this.byPid.delete(pid);
    if (!keys) return;
    for (const key of keys) {
      const lib = this.libraries.get(key);
      if (!lib) continue;
      lib.users.delete(pid);
      if (lib.users.size === 0 && !lib.pinned) {
        for (const link of lib.links) this.host.detach(link);
        this.libraries.delete(key);
      }
    }
    attachedGauge.set(this.libraries.size);
  }

  /** Reads /proc/pid/maps and attaches to new TLS library files it maps. */
  scan(pid: number): void {
    if (pid === this.selfPid) return;
    this.lastScan.set(pid, Date.now());
    if (this.lastScan.size > 65_536) this.lastScan.clear();
    let maps: string;
    let exe = '';
    try {
      maps = readFileSync(`/proc/${pid}/maps`, 'utf8');
    } catch {
      return; // gone already, or not ours to read
    }
    try {
      exe = readlinkSync(`/proc/${pid}/exe`);
    } catch {
      /* kernel thread or gone */
    }
    const seen = new Set<string>();
    for (const line of maps.split('\n')) {
      // address perms offset dev inode path
      const m = /^\S+ \S+ \S+ (\S+) (\d+)\s+(\/.*)$/.exec(line);
      if (!m || m[2] === '0') continue;
      const path = m[3];
      if (path !== exe && !LIBSSL.test(path)) continue;
      const key = `${m[1]}:${m[2]}`;
      if (seen.has(key)) continue;
      seen.add(key);
      const lib = this.libraries.get(key) ?? this.tryAttach(key, path, this.openPath(pid, path, key));
      if (!lib) continue;
      lib.users.add(pid);
      let mine = this.byPid.get(pid);
      if (!mine) this.byPid.set(pid, (mine = new Set()));
      mine.add(key);
    }
  }

  /**
   * The path to open a process's library by: as named when it is the same file in our mount
   * namespace (it outlives the process), else through the process's root (containers).
   */
  private openPath(pid: number, path: string, key: string): string {
    try {
      if (fileKey(path) === key) return path;
    } catch {
      /* not in our namespace */
    }
    return `/proc/${pid}/root${path}`;
  }

  private tryAttach(key: string, path: string, file: string): TlsLibrary | undefined {
    if (this.negative.has(key)) return undefined;
    const failedAt = this.failed.get(key);
    if (failedAt !== undefined && Date.now() - failedAt < RETRY_MS) return undefined;
    let offsets: Map<string, number>;
    try {
      offsets = elfSymbolOffsets(file, TLS_FUNCTIONS.map((f) => f.symbol));
    } catch {
      offsets = new Map();
    }
    if (offsets.size === 0) {
      // Not OpenSSL: a Go executable with crypto/tls gets its own probes (agent/capture/go-tls.ts).
      const go = this.tryAttachGo(key, path, file);
      if (go) return go;
      if (this.negative.size >= MAX_NEGATIVE) this.negative.clear();
      this.negative.add(key);
      return undefined;
    }
    const links: bigint[] = [];
    try {
      for (const f of TLS_FUNCTIONS) {
        const off = offsets.get(f.symbol);
        if (off === undefined) continue;
        links.push(this.host.attachUprobe(f.enter, file, off));
        links.push(this.host.attachUprobe(f.exit, file, off));
      }
    } catch (err) {
      for (const l of links) this.host.detach(l);
      this.lastError = (err as Error).message;
      attachFailures.inc();
      if (this.failed.size > MAX_NEGATIVE) this.failed.clear();
      this.failed.set(key, Date.now());
      this.log(`riptide agent: TLS uprobes on ${path} failed, its TLS traffic stays ciphertext: ${this.lastError}`);
      return undefined;
    }
    this.failed.delete(key);
    const lib: TlsLibrary = { key, path, symbols: [...offsets.keys()], users: new Set(), links, pinned: false };
    this.libraries.set(key, lib);
    attachedGauge.set(this.libraries.size);
    return lib;
  }

  /** Go crypto/tls in an executable: undefined when it is not one (or cannot be probed: one log line). */
  private tryAttachGo(key: string, path: string, file: string): TlsLibrary | undefined {
    if (!this.host.uprobePrograms || !isGoElf(file)) return undefined;
    let go;
    try {
      go = attachGoTls(this.host as GoUprobeHost, file);
    } catch (err) {
      this.lastError = (err as Error).message;
      if (!(err instanceof GoTlsError)) {
        attachFailures.inc();
        if (this.failed.size > MAX_NEGATIVE) this.failed.clear();
        this.failed.set(key, Date.now());
        this.log(`riptide agent: Go TLS uprobes on ${path} failed, its TLS traffic stays ciphertext: ${this.lastError}`);
        return undefined;
      }
      goUnprobed.inc({ reason: err.reason });
      this.log(`riptide agent: Go TLS plaintext of ${path} not captured: ${this.lastError}`);
      return undefined;
    }
    if (!go) return undefined;
    this.failed.delete(key);
    const lib: TlsLibrary = { key, path, symbols: go.symbols, users: new Set(), links: go.links, pinned: false };
    this.libraries.set(key, lib);
    attachedGauge.set(this.libraries.size);
    return lib;
  }

  /** Detaches everything (the program's close would too). */
  close(): void {
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    for (const lib of this.libraries.values()) for (const link of lib.links) this.host.detach(link);
    this.libraries.clear();
    this.byPid.clear();
    attachedGauge.set(0);
  }
}

/**
 * File offsets of the named function symbols of a 64-bit little-endian ELF file (what a uprobe
 * wants): from .dynsym, else .symtab; symbol value → offset through the PT_LOAD that holds it.
 * Symbols not defined in the file are left out.
 */
export function elfSymbolOffsets(path: string, names: readonly string[]): Map<string, number> {
  const fd = openSync(path, 'r');
  try {
    const read = (off: number, len: number): Buffer => {
      const b = Buffer.alloc(len);
      let got = 0;
      while (got < len) {
        const n = readSync(fd, b, got, len - got, off + got);
        if (n <= 0) break;
        got += n;
      }
      if (got < len) throw new Error(`${path}: short read at ${off}`);
      return b;
    };
    const eh = read(0, 64);
    if (eh.readUInt32BE(0) !== 0x7f454c46) throw new Error(`${path} is not ELF`);
    if (eh[4] !== 2 || eh[5] !== 1) throw new Error(`${path} is not 64-bit little-endian ELF`);
    const phoff = Number(eh.readBigUInt64LE(0x20));
    const shoff = Number(eh.readBigUInt64LE(0x28));
    const phentsize = eh.readUInt16LE(0x36);
    const phnum = eh.readUInt16LE(0x38);
    const shentsize = eh.readUInt16LE(0x3a);
    const shnum = eh.readUInt16LE(0x3c);

    const loads: Array<{ vaddr: number; offset: number; memsz: number }> = [];
    const ph = read(phoff, phentsize * phnum);
    for (let i = 0; i < phnum; i++) {
      const o = i * phentsize;
      if (ph.readUInt32LE(o) !== 1) continue; // PT_LOAD
      loads.push({ offset: Number(ph.readBigUInt64LE(o + 8)), vaddr: Number(ph.readBigUInt64LE(o + 16)), memsz: Number(ph.readBigUInt64LE(o + 40)) });
    }
    const sh = read(shoff, shentsize * shnum);
    const section = (i: number): { type: number; offset: number; size: number; link: number; entsize: number } => {
      const o = i * shentsize;
      return {
        type: sh.readUInt32LE(o + 4),
        offset: Number(sh.readBigUInt64LE(o + 24)),
        size: Number(sh.readBigUInt64LE(o + 32)),
        link: sh.readUInt32LE(o + 40),
        entsize: Number(sh.readBigUInt64LE(o + 56)),
      };
    };
    const wanted = new Set(names);
    const out = new Map<string, number>();
    for (const symType of [11, 2]) {
      // SHT_DYNSYM, then SHT_SYMTAB
      for (let i = 0; i < shnum && out.size < wanted.size; i++) {
        const s = section(i);
        if (s.type !== symType || s.entsize !== 24) continue;
        const strtab = section(s.link);
        const strs = read(strtab.offset, strtab.size);
        const syms = read(s.offset, s.size);
        for (let o = 0; o + 24 <= syms.length; o += 24) {
          const nameOff = syms.readUInt32LE(o);
          const info = syms[o + 4];
          const shndx = syms.readUInt16LE(o + 6);
          if ((info & 0xf) !== 2 || shndx === 0) continue; // STT_FUNC, defined here
          const end = strs.indexOf(0, nameOff);
          const name = strs.toString('latin1', nameOff, end < 0 ? strs.length : end);
          if (!wanted.has(name) || out.has(name)) continue;
          const value = Number(syms.readBigUInt64LE(o + 8));
          const seg = loads.find((l) => value >= l.vaddr && value < l.vaddr + l.memsz);
          if (seg) out.set(name, value - seg.vaddr + seg.offset);
        }
      }
      if (out.size > 0) break;
    }
    return out;
  } finally {
    closeSync(fd);
  }
}

export interface TlsProbe {
  /** Whether the TLS uprobes loaded and attached to at least one library file here. */
  ok: boolean;
  detail: string;
  libraries: Array<{ path: string; symbols: string[]; processes: number }>;
}

/**
 * What `riptide doctor` reports: loads the capture program (filtered to no process, so nothing is
 * captured), finds the TLS libraries as the agent would and attaches to them, then detaches.
 */
export async function probeTlsCapture(): Promise<TlsProbe> {
  const { CaptureProgram } = await import('./bpf-program.ts');
  let prog;
  try {
    // pid 0 never makes a system call from user space: the filter admits nothing.
    prog = CaptureProgram.load({ filter: { pids: [0] }, ringBytes: 1 << 16, tls: true, log: () => {} });
  } catch (err) {
    return { ok: false, detail: `the capture program does not load: ${(err as Error).message}`, libraries: [] };
  }
  try {
    if (prog.tlsUnavailable) return { ok: false, detail: prog.tlsUnavailable, libraries: [] };
    const libs = new TlsLibraries(prog, process.pid, () => {});
    libs.start();
    const libraries = [...libs.libraries.values()].map((l) => ({ path: l.path, symbols: l.symbols, processes: l.users.size }));
    libs.close();
    const go = libraries.filter((l) => l.symbols.some((s) => s.startsWith('crypto/tls.'))).length;
    const what = `OpenSSL's SSL_read/SSL_write${go ? `, ${go} Go executable${go === 1 ? '' : 's'} with crypto/tls` : ''}`;
    if (libraries.length > 0) return { ok: true, detail: `attach (${libraries.length} file${libraries.length === 1 ? '' : 's'}: ${what})`, libraries };
    return { ok: false, detail: libs.lastError ? `uprobes do not attach: ${libs.lastError}` : 'no OpenSSL-compatible library found (libssl.so.* or a binary exporting SSL_write) and no running Go program with crypto/tls', libraries };
  } finally {
    prog.close();
  }
}

/**
 * Go crypto/tls plaintext (issue 17): where to put the uprobes in a Go executable, attaching them
 * per executable file, and one Go-specific fix-up of the plaintext stream.
 *
 * - Functions: `crypto/tls.(*Conn).Write` and `crypto/tls.(*Conn).Read`, from the ELF `.symtab`
 *   (Go keeps it unless linked with `-s`). The entry program goes on the first byte, the return
 *   program on every RET instruction of the function, found by decoding it from its first byte
 *   (agent/capture/x86-decode.ts): uretprobes rewrite the return address on the stack, which Go
 *   moves when it grows a goroutine's stack, so they are not used.
 * - ABI: arguments and results in registers (ABIInternal) need Go >= 1.17; the version comes from
 *   `.go.buildinfo`, which states it inline from Go 1.18 on, so a binary that does not say (Go
 *   <= 1.17) is left alone. amd64 only (arm64 would need its own decoder and registers).
 * - Pairing entry and return by goroutine, and joining to the socket by goroutine, needs the goid
 *   offset the goroutine support (go-processes.ts) writes for the process from the DWARF; a binary
 *   without DWARF is paired by thread, which is wrong when Read blocks and resumes elsewhere.
 *
 * @example
 *   const points = goTlsProbePoints(readFileSync('/proc/1234/exe'));
 *   // [{ symbol: 'crypto/tls.(*Conn).Write', entry: 0x1a5920, returns: [0x1a59d0, …] }, …]
 */
import { readFileSync } from 'node:fs';
import type { Section } from './go-runtime.ts';
import { buildVersion, sectionBytes, sections } from './go-runtime.ts';
import type { TlsPlaintext } from './tls-join.ts';
import { X86DecodeError, findReturns } from './x86-decode.ts';

/** The Go functions hooked and the uprobe programs for their entry (bpf/riptide.bpf.c, Go section). */
export const GO_TLS_FUNCTIONS: ReadonlyArray<{ symbol: string; enter: string }> = [
  { symbol: 'crypto/tls.(*Conn).Write', enter: 'rt_go_tls_write_enter' },
  { symbol: 'crypto/tls.(*Conn).Read', enter: 'rt_go_tls_read_enter' },
];
/** The program attached at every return instruction of both functions. */
export const GO_TLS_RETURN_PROGRAM = 'rt_go_tls_ret';

/** Why a Go binary gets no TLS uprobes: `reason` labels the counter, the text is the one log line. */
export class GoTlsError extends Error {
  constructor(
    readonly reason: 'no_symtab' | 'not_amd64' | 'go_version' | 'decode',
    message: string,
  ) {
    super(message);
  }
}

export interface GoTlsProbePoint {
  symbol: string;
  /** File offset of the entry probe: the function's first byte or its stack check's branch. */
  entry: number;
  /** File offsets of its return instructions. */
  returns: number[];
}

export interface GoFunction {
  name: string;
  /** Virtual address and size from the symbol table. */
  address: number;
  size: number;
  /** File offset of the first byte. */
  offset: number;
}

const EM_X86_64 = 62;
const SHT_SYMTAB = 2;
const STT_FUNC = 2;

/** Function symbols of an ELF64 LE file (`names`: only those), with their file offsets. */
export function elfFunctions(b: Buffer, names?: ReadonlySet<string>): GoFunction[] {
  const secs = sections(b);
  const phoff = Number(b.readBigUInt64LE(0x20));
  const phentsize = b.readUInt16LE(0x36);
  const phnum = b.readUInt16LE(0x38);
  const loads: Array<{ vaddr: number; offset: number; filesz: number }> = [];
  for (let i = 0; i < phnum; i++) {
    const o = phoff + i * phentsize;
    if (b.readUInt32LE(o) !== 1) continue; // PT_LOAD
    loads.push({ offset: Number(b.readBigUInt64LE(o + 8)), vaddr: Number(b.readBigUInt64LE(o + 16)), filesz: Number(b.readBigUInt64LE(o + 32)) });
  }
  const symtab = secs.find((s: Section) => s.type === SHT_SYMTAB && s.entsize === 24);
  if (!symtab) return [];
  const syms = sectionBytes(b, symtab);
  const strs = sectionBytes(b, secs[symtab.link]);
  const out: GoFunction[] = [];
  for (let o = 0; o + 24 <= syms.length; o += 24) {
    if ((syms[o + 4] & 0xf) !== STT_FUNC || syms.readUInt16LE(o + 6) === 0) continue;
    const nameOff = syms.readUInt32LE(o);
    const end = strs.indexOf(0, nameOff);
    const name = strs.toString('latin1', nameOff, end < 0 ? strs.length : end);
    if (names && !names.has(name)) continue;
    const address = Number(syms.readBigUInt64LE(o + 8));
    const size = Number(syms.readBigUInt64LE(o + 16));
    const seg = loads.find((l) => address >= l.vaddr && address + size <= l.vaddr + l.filesz);
    if (!seg || size === 0) continue;
    out.push({ name, address, size, offset: address - seg.vaddr + seg.offset });
  }
  return out;
}

/**
 * Where the entry uprobe goes in a function's code: on the conditional branch of Go's stack check
 * (`[lea -N(%rsp),%r12;] cmp 0x10(%r14),%rsp|%r12; jbe morestack`) when the function starts with
 * it, else on its first byte. The instructions before it write only R12 and the flags, so the
 * argument registers (RAX, RBX, RCX) and g (R14) are as at entry, and the kernel emulates a
 * branch where it must single-step most other instructions (one trap instead of two).
 */
export function entryProbeOffset(code: Uint8Array): number {
  const at = (p: number, ...bytes: number[]): boolean => bytes.every((b, i) => code[p + i] === b);
  let p = 0;
  if (at(0, 0x4c, 0x8d, 0x64, 0x24)) p = 5; // lea disp8(%rsp),%r12
  else if (at(0, 0x4c, 0x8d, 0xa4, 0x24)) p = 8; // lea disp32(%rsp),%r12
  if (!(at(p, 0x49, 0x3b, 0x66, 0x10) || (p > 0 && at(p, 0x4d, 0x3b, 0x66, 0x10)))) return 0; // cmp 0x10(%r14),%rsp / %r12
  p += 4;
  return at(p, 0x76) || at(p, 0x0f, 0x86) ? p : 0; // jbe rel8 / rel32
}

/** `go1.21.3` → [1, 21]; undefined when it is not a release version string. */
export function goVersion(v: string): [number, number] | undefined {
  const m = /^go(\d+)\.(\d+)/.exec(v);
  return m ? [Number(m[1]), Number(m[2])] : undefined;
}

/**
 * Where the uprobes go in a Go executable; [] when it does not contain crypto/tls's Conn.
 * Throws {@link GoTlsError} for a binary that uses crypto/tls but cannot be probed (why in the text).
 */
export function goTlsProbePoints(b: Buffer): GoTlsProbePoint[] {
  if (b.length < 64 || b.readUInt32BE(0) !== 0x7f454c46 || b[4] !== 2 || b[5] !== 1) return [];
  const secs = sections(b);
  const buildinfo = secs.find((s) => s.name === '.go.buildinfo');
  if (!buildinfo) return [];
  const version = buildVersion(sectionBytes(b, buildinfo));
  const fns = elfFunctions(b, new Set(GO_TLS_FUNCTIONS.map((f) => f.symbol)));
  if (fns.length === 0) {
    if (!secs.some((s) => s.type === SHT_SYMTAB)) {
      // Stripped: say so only when crypto/tls is in (its package path is in the binary's strings).
      if (b.includes('crypto/tls.(*Conn)', 0, 'latin1')) throw new GoTlsError('no_symtab', `${version || 'Go'} binary without a symbol table (linked with -s)`);
    }
    return [];
  }
  if (b.readUInt16LE(0x12) !== EM_X86_64) throw new GoTlsError('not_amd64', `machine ${b.readUInt16LE(0x12)} is not x86-64 (Go TLS uprobes are amd64 only)`);
  const v = goVersion(version);
  if (!v || v[0] < 1 || (v[0] === 1 && v[1] < 17)) throw new GoTlsError('go_version', `Go version ${version || 'not stated (Go < 1.18)'}: the register ABI (Go >= 1.17, stated in the binary from 1.18) is needed`);
  const out: GoTlsProbePoint[] = [];
  for (const f of GO_TLS_FUNCTIONS) {
    const fn = fns.find((x) => x.name === f.symbol);
    if (!fn) continue;
    let rets: number[];
    try {
      rets = findReturns(b.subarray(fn.offset, fn.offset + fn.size));
    } catch (err) {
      if (err instanceof X86DecodeError) throw new GoTlsError('decode', `${f.symbol}: ${err.message}`);
      throw err;
    }
    if (rets.length === 0) throw new GoTlsError('decode', `${f.symbol}: no return instruction found`);
    out.push({ symbol: f.symbol, entry: fn.offset + entryProbeOffset(b.subarray(fn.offset, fn.offset + fn.size)), returns: rets.map((r) => fn.offset + r) });
  }
  return out;
}

/** What attaching needs (CaptureProgram). */
export interface GoUprobeHost {
  attachUprobe(program: string, path: string, offset: number): bigint;
  detach(link: bigint): void;
  readonly uprobePrograms: readonly string[];
}

/**
 * Attaches the Go TLS programs to a Go executable `file`: links and the hooked symbols, or
 * undefined when it has no crypto/tls. Throws {@link GoTlsError} when it cannot be probed and on an
 * attach failure (every link made is undone first).
 */
export function attachGoTls(host: GoUprobeHost, file: string): { symbols: string[]; links: bigint[] } | undefined {
  if (!host.uprobePrograms.includes(GO_TLS_RETURN_PROGRAM)) return undefined; // an object without the Go programs
  const points = goTlsProbePoints(readFileSync(file));
  if (points.length === 0) return undefined;
  const links: bigint[] = [];
  try {
    for (const p of points) {
      const enter = GO_TLS_FUNCTIONS.find((f) => f.symbol === p.symbol)?.enter as string;
      links.push(host.attachUprobe(enter, file, p.entry));
      for (const r of p.returns) links.push(host.attachUprobe(GO_TLS_RETURN_PROGRAM, file, r));
    }
  } catch (err) {
    for (const l of links) host.detach(l);
    throw err;
  }
  return { symbols: points.map((p) => p.symbol), links };
}

/** A held one-byte read is given up after this long without a follower. */
const HOLD_NS = 2_000_000_000n;
const MAX_HELD = 4096;

/**
 * net/http's server reads the first byte of the next request on a keep-alive connection in a
 * background goroutine (a `Read` of one byte), and the serving goroutine reads the rest: two
 * plaintext records for one request, the second without a syscall of its goroutine to join to.
 * This holds a Go one-byte ingress read per Conn and puts it in front of the next ingress read of
 * the same Conn, so the request reaches the parsers whole, joined through the goroutine that read
 * its ciphertext. Other plaintext passes through.
 */
export class GoReadMerger {
  private readonly held = new Map<string, TlsPlaintext>();

  constructor(private readonly out: (p: TlsPlaintext) => void) {}

  push(p: TlsPlaintext): void {
    if (!p.coroutineId || p.direction !== 'ingress') {
      this.out(p);
      return;
    }
    const key = `${p.pid}:${p.ssl}`;
    // A held byte whose request never came (a one-byte message, a closed connection) goes on alone.
    if (this.held.size > 0) {
      for (const [k, old] of this.held) {
        if (k !== key && p.enterNs - old.exitNs > HOLD_NS) {
          this.held.delete(k);
          this.out(old);
        }
      }
    }
    const h = this.held.get(key);
    if (h) {
      this.held.delete(key);
      if (p.enterNs - h.exitNs <= HOLD_NS) {
        const payload = new Uint8Array(h.payload.length + p.payload.length);
        payload.set(h.payload);
        payload.set(p.payload, h.payload.length);
        this.out({ ...h, exitNs: p.exitNs, bytes: h.bytes + p.bytes, payload });
        return;
      }
      this.out(h);
    }
    if (p.bytes === 1) {
      if (this.held.size >= MAX_HELD) this.flush();
      this.held.set(key, p);
      return;
    }
    this.out(p);
  }

  /** Passes on what is held (it had no follower). */
  flush(): void {
    const held = [...this.held.values()];
    this.held.clear();
    for (const h of held) this.out(h);
  }
}

/**
 * What capture needs to know about a Go binary to read the running goroutine's id at a syscall,
 * learned from the binary itself (issue 15): no instrumentation, no table of Go versions.
 *
 * - Go or not: the ELF has a `.go.buildinfo` section (its header also names the Go version).
 * - `goid` offset: the DW_TAG_member `goid` of the DW_TAG_structure_type `runtime.g` in
 *   `.debug_info` (DWARF 2–5, zlib-compressed sections as Go writes them since 1.11).
 * - Where `g` lives: Go keeps the current g in thread-local storage (besides R14 under the register
 *   ABI, which is not the user's R14 at a syscall tracepoint). The slot is `runtime.tlsg`: at -8 from
 *   the thread pointer (fs_base on amd64) for Go's own linker; with external (cgo) linking the
 *   executable's TLS block holds it, so its offset follows from the `runtime.tlsg` symbol and the
 *   PT_TLS segment.
 * A stripped binary (`-ldflags=-s -w`) has no DWARF: {@link GoBinaryError} `no_dwarf`, and capture
 * behaves as for any other process (thread ids).
 *
 * @example
 *   const info = inspectGoBinary(fs.readFileSync('/proc/1234/exe'));
 *   // { version: 'go1.19.8', goidOffset: 152, gTlsOffset: -8 }
 */
import { inflateSync } from 'node:zlib';

export interface GoBinaryInfo {
  /** `go1.19.8`; '' when the build info does not say (Go < 1.18 keeps it behind a pointer). */
  version: string;
  /** Byte offset of `goid` (int64) in `runtime.g`. */
  goidOffset: number;
  /** Offset of the g pointer from the thread pointer (fs_base), negative. */
  gTlsOffset: number;
}

/** Why a binary yields no goroutine ids; the reason is the label of the agent's counter. */
export type GoBinaryFailure = 'not_elf' | 'not_amd64' | 'not_go' | 'no_dwarf' | 'no_goid' | 'tls_layout' | 'bad_dwarf';

export class GoBinaryError extends Error {
  constructor(
    readonly reason: GoBinaryFailure,
    message: string,
  ) {
    super(message);
  }
}

export interface Section {
  name: string;
  type: number;
  flags: number;
  offset: number;
  size: number;
  link: number;
  entsize: number;
}

const SHF_COMPRESSED = 0x800;
const SHT_SYMTAB = 2;
const SHT_NOBITS = 8;
const PT_TLS = 7;
const STT_TLS = 6;
const EM_X86_64 = 62;

export function sections(b: Buffer): Section[] {
  const shoff = Number(b.readBigUInt64LE(0x28));
  const shentsize = b.readUInt16LE(0x3a);
  const shnum = b.readUInt16LE(0x3c);
  const shstrndx = b.readUInt16LE(0x3e);
  if (shoff === 0 || shoff + shnum * shentsize > b.length) throw new GoBinaryError('not_elf', 'section headers lie outside the file');
  const raw = Array.from({ length: shnum }, (_, i) => {
    const o = shoff + i * shentsize;
    return {
      nameOff: b.readUInt32LE(o),
      type: b.readUInt32LE(o + 4),
      flags: Number(b.readBigUInt64LE(o + 8)),
      offset: Number(b.readBigUInt64LE(o + 0x18)),
      size: Number(b.readBigUInt64LE(o + 0x20)),
      link: b.readUInt32LE(o + 0x28),
      entsize: Number(b.readBigUInt64LE(o + 0x38)),
    };
  });
  const strtab = raw[shstrndx];
  if (!strtab) throw new GoBinaryError('not_elf', 'no section name table');
  return raw.map((s) => {
    const start = strtab.offset + s.nameOff;
    const end = b.indexOf(0, start);
    return { ...s, name: b.toString('latin1', start, end < 0 ? start : end) };
  });
}

export function sectionBytes(b: Buffer, s: Section): Buffer {
  if (s.type === SHT_NOBITS) return Buffer.alloc(0);
  if (s.offset + s.size > b.length) throw new GoBinaryError('bad_dwarf', `section ${s.name} lies outside the file`);
  const data = b.subarray(s.offset, s.offset + s.size);
  if (!(s.flags & SHF_COMPRESSED)) return data;
  // Elf64_Chdr: ch_type (1 = zlib), reserved, ch_size, ch_addralign.
  if (data.readUInt32LE(0) !== 1) throw new GoBinaryError('bad_dwarf', `section ${s.name}: compression type ${data.readUInt32LE(0)} is not zlib`);
  return inflateSync(data.subarray(24));
}

/** The Go version in `.go.buildinfo` (Go ≥ 1.18 inlines it after the 32-byte header). */
export function buildVersion(info: Buffer): string {
  if (info.length < 33 || info.toString('latin1', 0, 14) !== '\xff Go buildinf:') return '';
  if (!(info[15] & 2)) return '';
  let len = 0;
  let shift = 0;
  let p = 32;
  for (; p < info.length; p++) {
    len |= (info[p] & 0x7f) << shift;
    shift += 7;
    if (!(info[p] & 0x80)) break;
  }
  return info.toString('utf8', p + 1, Math.min(info.length, p + 1 + len));
}

/** Offset of `runtime.tlsg` from the thread pointer (TLS variant II: the executable's block ends at it). */
function tlsOffset(b: Buffer, secs: Section[]): number {
  const phoff = Number(b.readBigUInt64LE(0x20));
  const phentsize = b.readUInt16LE(0x36);
  const phnum = b.readUInt16LE(0x38);
  let tls: { memsz: number; align: number } | undefined;
  for (let i = 0; i < phnum; i++) {
    const o = phoff + i * phentsize;
    if (b.readUInt32LE(o) === PT_TLS) tls = { memsz: Number(b.readBigUInt64LE(o + 0x28)), align: Math.max(1, Number(b.readBigUInt64LE(o + 0x30))) };
  }
  // Go's own linker without a TLS segment: the slot is at -8 by its convention (cmd/link Tlsoffset).
  if (!tls) return -8;
  const block = Math.ceil(tls.memsz / tls.align) * tls.align;
  const symtab = secs.find((s) => s.type === SHT_SYMTAB);
  if (symtab && symtab.entsize === 24) {
    const syms = sectionBytes(b, symtab);
    const strs = sectionBytes(b, secs[symtab.link]);
    for (let o = 0; o + 24 <= syms.length; o += 24) {
      if ((syms[o + 4] & 0xf) !== STT_TLS) continue;
      const nameOff = syms.readUInt32LE(o);
      const end = strs.indexOf(0, nameOff);
      if (strs.toString('latin1', nameOff, end) === 'runtime.tlsg') return Number(syms.readBigUInt64LE(o + 8)) - block;
    }
  }
  // No symbol: only an 8-byte TLS block (the g slot alone) says where it is.
  if (tls.memsz === 8) return -8;
  throw new GoBinaryError('tls_layout', `TLS segment of ${tls.memsz} bytes without a runtime.tlsg symbol`);
}

class Reader {
  constructor(
    readonly b: Buffer,
    public p = 0,
  ) {}
  u8(): number {
    return this.b[this.p++];
  }
  u16(): number {
    const v = this.b.readUInt16LE(this.p);
    this.p += 2;
    return v;
  }
  u32(): number {
    const v = this.b.readUInt32LE(this.p);
    this.p += 4;
    return v;
  }
  u64(): number {
    const v = Number(this.b.readBigUInt64LE(this.p));
    this.p += 8;
    return v;
  }
  uleb(): number {
    let v = 0;
    let mul = 1;
    for (;;) {
      const x = this.b[this.p++];
      if (x === undefined) throw new GoBinaryError('bad_dwarf', 'LEB128 runs past the section');
      v += (x & 0x7f) * mul;
      mul *= 128;
      if (!(x & 0x80)) return v;
    }
  }
  sleb(): number {
    let v = 0;
    let mul = 1;
    let x: number;
    do {
      x = this.b[this.p++];
      if (x === undefined) throw new GoBinaryError('bad_dwarf', 'LEB128 runs past the section');
      v += (x & 0x7f) * mul;
      mul *= 128;
    } while (x & 0x80);
    return x & 0x40 ? v - mul : v;
  }
  cstr(): string {
    const end = this.b.indexOf(0, this.p);
    if (end < 0) throw new GoBinaryError('bad_dwarf', 'unterminated string');
    const s = this.b.toString('utf8', this.p, end);
    this.p = end + 1;
    return s;
  }
}

interface Abbrev {
  tag: number;
  children: boolean;
  attrs: Array<[attr: number, form: number, implicit: number]>;
}

function abbrevs(data: Buffer, offset: number): Map<number, Abbrev> {
  const r = new Reader(data, offset);
  const out = new Map<number, Abbrev>();
  for (;;) {
    const code = r.uleb();
    if (code === 0) return out;
    const tag = r.uleb();
    const children = r.u8() === 1;
    const attrs: Abbrev['attrs'] = [];
    for (;;) {
      const attr = r.uleb();
      const form = r.uleb();
      if (attr === 0 && form === 0) break;
      attrs.push([attr, form, form === 0x21 ? r.sleb() : 0]);
    }
    out.set(code, { tag, children, attrs });
  }
}

const DW_TAG_structure_type = 0x13;
const DW_TAG_member = 0x0d;
const DW_AT_name = 0x03;
const DW_AT_data_member_location = 0x38;
const DW_OP_plus_uconst = 0x23;

/** Reads one attribute value: numbers for constants, strings for names, undefined for the rest. */
function readForm(r: Reader, form: number, implicit: number, ctx: { addrSize: number; offSize: number; str: Buffer | undefined; version: number }): number | string | Buffer | undefined {
  const off = (): number => (ctx.offSize === 8 ? r.u64() : r.u32());
  switch (form) {
    case 0x01: return r.p += ctx.addrSize, undefined; // addr
    case 0x03: { const n = r.u16(); const v = r.b.subarray(r.p, r.p + n); r.p += n; return v; } // block2
    case 0x04: { const n = r.u32(); const v = r.b.subarray(r.p, r.p + n); r.p += n; return v; } // block4
    case 0x05: return r.u16(); // data2
    case 0x06: return r.u32(); // data4
    case 0x07: return r.u64(); // data8
    case 0x08: return r.cstr(); // string
    case 0x09: case 0x18: { const n = r.uleb(); const v = r.b.subarray(r.p, r.p + n); r.p += n; return v; } // block, exprloc
    case 0x0a: { const n = r.u8(); const v = r.b.subarray(r.p, r.p + n); r.p += n; return v; } // block1
    case 0x0b: return r.u8(); // data1
    case 0x0c: return r.u8(); // flag
    case 0x0d: return r.sleb(); // sdata
    case 0x0e: { const o = off(); if (!ctx.str) return undefined; const e = ctx.str.indexOf(0, o); return ctx.str.toString('utf8', o, e); } // strp
    case 0x0f: return r.uleb(); // udata
    case 0x10: return ctx.version <= 2 ? (r.p += ctx.addrSize, undefined) : (off(), undefined); // ref_addr
    case 0x11: return r.u8(), undefined; // ref1
    case 0x12: return r.u16(), undefined; // ref2
    case 0x13: return r.u32(), undefined; // ref4
    case 0x14: return r.u64(), undefined; // ref8
    case 0x15: return r.uleb(), undefined; // ref_udata
    case 0x17: return off(), undefined; // sec_offset
    case 0x19: return 1; // flag_present
    case 0x20: return r.u64(), undefined; // ref_sig8
    case 0x21: return implicit; // implicit_const
    case 0x1e: return r.p += 16, undefined; // data16
    case 0x1a: case 0x1b: case 0x25: case 0x26: case 0x27: case 0x28: case 0x29: case 0x2a: case 0x2b: case 0x2c: // strx*, addrx*, loclistx, rnglistx
      if (form === 0x1a || form === 0x1b) return r.uleb(), undefined;
      return r.p += [1, 2, 3, 4][(form - 0x25) % 4], undefined;
    case 0x1f: case 0x23: case 0x22: return r.uleb(), undefined; // line_strp? (0x1f), rnglistx, loclistx
    default:
      throw new GoBinaryError('bad_dwarf', `DWARF form 0x${form.toString(16)} is not understood`);
  }
}

/** `goid`'s offset in `runtime.g`, from `.debug_info`. */
function goidOffset(info: Buffer, abbrev: Buffer, str: Buffer | undefined): number {
  const r = new Reader(info);
  while (r.p < info.length) {
    const unitStart = r.p;
    let len = r.u32();
    let offSize = 4;
    if (len === 0xffffffff) {
      len = r.u64();
      offSize = 8;
    }
    const unitEnd = r.p + len;
    const version = r.u16();
    let addrSize: number;
    let abbrevOff: number;
    if (version >= 5) {
      r.u8(); // unit type
      addrSize = r.u8();
      abbrevOff = offSize === 8 ? r.u64() : r.u32();
    } else {
      abbrevOff = offSize === 8 ? r.u64() : r.u32();
      addrSize = r.u8();
    }
    if (version < 2 || version > 5 || unitEnd > info.length) throw new GoBinaryError('bad_dwarf', `compilation unit at ${unitStart}: version ${version}`);
    const table = abbrevs(abbrev, abbrevOff);
    const ctx = { addrSize, offSize, str, version };
    // Depth of the DIE we are in, and the depth of runtime.g's children when inside it.
    let depth = 0;
    let inG = -1;
    while (r.p < unitEnd) {
      const code = r.uleb();
      if (code === 0) {
        if (inG === depth) inG = -1;
        depth--;
        continue;
      }
      const a = table.get(code);
      if (!a) throw new GoBinaryError('bad_dwarf', `abbreviation ${code} missing`);
      let name: string | undefined;
      let loc: number | string | Buffer | undefined;
      for (const [attr, form, implicit] of a.attrs) {
        const v = readForm(r, form, implicit, ctx);
        if (attr === DW_AT_name && typeof v === 'string') name = v;
        else if (attr === DW_AT_data_member_location) loc = v;
      }
      if (inG === depth && a.tag === DW_TAG_member && name === 'goid') {
        if (typeof loc === 'number') return loc;
        if (Buffer.isBuffer(loc) && loc[0] === DW_OP_plus_uconst) return new Reader(loc, 1).uleb();
        throw new GoBinaryError('no_goid', 'runtime.g.goid has no constant location');
      }
      if (a.children) {
        depth++;
        if (a.tag === DW_TAG_structure_type && name === 'runtime.g') inG = depth;
      }
    }
    r.p = unitEnd;
  }
  throw new GoBinaryError('no_goid', 'no runtime.g with a goid member in the DWARF');
}

/** Reads a Go executable (amd64 ELF); throws {@link GoBinaryError} when goroutine ids cannot be read. */
export function inspectGoBinary(b: Buffer): GoBinaryInfo {
  if (b.length < 64 || b.readUInt32BE(0) !== 0x7f454c46) throw new GoBinaryError('not_elf', 'not an ELF file');
  if (b[4] !== 2 || b[5] !== 1) throw new GoBinaryError('not_amd64', 'not a 64-bit little-endian ELF');
  if (b.readUInt16LE(0x12) !== EM_X86_64) throw new GoBinaryError('not_amd64', `machine ${b.readUInt16LE(0x12)} is not x86-64 (the g slot is read from fs_base)`);
  const secs = sections(b);
  const byName = (n: string): Section | undefined => secs.find((s) => s.name === n);
  const buildinfo = byName('.go.buildinfo');
  if (!buildinfo) throw new GoBinaryError('not_go', 'no .go.buildinfo section');
  const version = buildVersion(sectionBytes(b, buildinfo));
  const info = byName('.debug_info') ?? byName('.zdebug_info');
  const abbrev = byName('.debug_abbrev') ?? byName('.zdebug_abbrev');
  if (!info || !abbrev) throw new GoBinaryError('no_dwarf', `${version || 'Go'} binary without DWARF (stripped)`);
  if (info.name.startsWith('.z')) throw new GoBinaryError('bad_dwarf', '.zdebug sections (Go < 1.11) are not read');
  const strSec = byName('.debug_str');
  let off: number;
  try {
    off = goidOffset(sectionBytes(b, info), sectionBytes(b, abbrev), strSec ? sectionBytes(b, strSec) : undefined);
  } catch (err) {
    if (err instanceof GoBinaryError) throw err;
    throw new GoBinaryError('bad_dwarf', `reading DWARF: ${(err as Error).message}`);
  }
  return { version, goidOffset: off, gTlsOffset: tlsOffset(b, secs) };
}

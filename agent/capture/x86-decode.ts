/**
 * x86-64 instruction lengths: enough of the encoding (legacy prefixes, REX, VEX, EVEX, the one-byte,
 * 0F, 0F38 and 0F3A opcode maps, ModRM/SIB/displacement, immediates) to walk compiled code one
 * instruction at a time. Used to find a Go function's return instructions (agent/capture/go-tls.ts:
 * a uprobe goes on each RET, since uretprobes break Go's movable stacks). It decodes lengths only,
 * not operands; checked against binutils `objdump -d` on a whole Go binary (test/capture/tls-go.test.ts).
 *
 * @example
 *   const rets = findReturns(code); // offsets of C3 / C2 iw at instruction boundaries
 */

/** Thrown at an opcode this decoder does not know (or one invalid in 64-bit mode). */
export class X86DecodeError extends Error {
  constructor(
    readonly offset: number,
    message: string,
  ) {
    super(`offset 0x${offset.toString(16)}: ${message}`);
  }
}

const enum Imm {
  None = 0,
  B = 1, // imm8 / rel8
  W = 2, // imm16
  Z = 3, // imm16 with 66, else imm32
  V = 4, // imm16 / imm32 / imm64 with REX.W (mov r, imm)
  Moffs = 5, // 8-byte address (4 with 67)
  EnterIwIb = 6, // enter: imm16 + imm8
  Group3 = 7, // F6/F7: test has an immediate (reg 0/1), the others not
}

interface OneByte {
  modrm: boolean;
  imm: Imm;
  invalid?: boolean;
}

/** The one-byte opcode map in 64-bit mode (prefixes, REX and the VEX/EVEX escapes are handled before). */
const ONE: OneByte[] = (() => {
  const t: OneByte[] = Array.from({ length: 256 }, () => ({ modrm: false, imm: Imm.None }));
  const set = (op: number, modrm: boolean, imm: Imm = Imm.None): void => {
    t[op] = { modrm, imm };
  };
  // ALU rows 00-3F: op r/m,r (x0-x3), AL,imm8 (x4), eAX,imm (x5); 06/07/0E/16/17/1E/1F/27/2F/37/3F invalid.
  for (let row = 0; row < 8; row++) {
    const b = row * 8;
    for (let i = 0; i < 4; i++) set(b + i, true);
    set(b + 4, false, Imm.B);
    set(b + 5, false, Imm.Z);
  }
  for (const op of [0x06, 0x07, 0x0e, 0x16, 0x17, 0x1e, 0x1f, 0x27, 0x2f, 0x37, 0x3f, 0x60, 0x61, 0x82, 0x9a, 0xc4, 0xc5, 0xce, 0xd4, 0xd5, 0xd6, 0xea]) t[op].invalid = true;
  set(0x63, true); // movsxd
  set(0x68, false, Imm.Z);
  set(0x69, true, Imm.Z);
  set(0x6a, false, Imm.B);
  set(0x6b, true, Imm.B);
  for (let op = 0x70; op <= 0x7f; op++) set(op, false, Imm.B); // jcc rel8
  set(0x80, true, Imm.B);
  set(0x81, true, Imm.Z);
  set(0x83, true, Imm.B);
  for (let op = 0x84; op <= 0x8f; op++) set(op, true);
  for (let op = 0xa0; op <= 0xa3; op++) set(op, false, Imm.Moffs);
  set(0xa8, false, Imm.B);
  set(0xa9, false, Imm.Z);
  for (let op = 0xb0; op <= 0xb7; op++) set(op, false, Imm.B);
  for (let op = 0xb8; op <= 0xbf; op++) set(op, false, Imm.V);
  set(0xc0, true, Imm.B);
  set(0xc1, true, Imm.B);
  set(0xc2, false, Imm.W); // ret imm16
  set(0xc6, true, Imm.B);
  set(0xc7, true, Imm.Z);
  set(0xc8, false, Imm.EnterIwIb);
  set(0xca, false, Imm.W);
  set(0xcd, false, Imm.B);
  for (let op = 0xd0; op <= 0xd3; op++) set(op, true);
  for (let op = 0xd8; op <= 0xdf; op++) set(op, true); // x87
  for (let op = 0xe0; op <= 0xe7; op++) set(op, false, Imm.B); // loop/jrcxz rel8, in/out imm8
  set(0xe8, false, Imm.Z); // call rel32 (66 is ignored for near branches in 64-bit mode; Go never emits it)
  set(0xe9, false, Imm.Z);
  set(0xeb, false, Imm.B);
  set(0xf6, true, Imm.Group3);
  set(0xf7, true, Imm.Group3);
  set(0xfe, true);
  set(0xff, true);
  return t;
})();

/** 0F xx opcodes without a ModRM byte. */
const TWO_NO_MODRM = new Set([0x05, 0x06, 0x07, 0x08, 0x09, 0x0b, 0x0e, 0x30, 0x31, 0x32, 0x33, 0x34, 0x35, 0x37, 0x77, 0xa0, 0xa1, 0xa2, 0xa8, 0xa9, 0xaa, 0xc8, 0xc9, 0xca, 0xcb, 0xcc, 0xcd, 0xce, 0xcf]);
/** 0F xx opcodes with an imm8 after the ModRM. */
const TWO_IMM8 = new Set([0x0f, 0x70, 0x71, 0x72, 0x73, 0xa4, 0xac, 0xba, 0xc2, 0xc4, 0xc5, 0xc6]);
/** 0F xx opcodes that do not exist. */
const TWO_INVALID = new Set([0x04, 0x0a, 0x0c, 0x24, 0x25, 0x26, 0x27, 0x36, 0x39, 0x3b, 0x3c, 0x3d, 0x3e, 0x3f, 0x7a, 0x7b]);
/** VEX/EVEX map 1 (0F) opcodes with an imm8. */
const VEX_MAP1_IMM8 = new Set([0x70, 0x71, 0x72, 0x73, 0xc2, 0xc4, 0xc5, 0xc6]);

const PREFIXES = new Set([0xf0, 0xf2, 0xf3, 0x2e, 0x36, 0x3e, 0x26, 0x64, 0x65, 0x66, 0x67]);

/** Bytes taken by a ModRM byte at `p` and what follows it (SIB, displacement), with 32/64-bit addressing. */
function modrmLength(code: Uint8Array, p: number, start: number): number {
  if (p >= code.length) throw new X86DecodeError(start, 'ModRM past the end');
  const m = code[p];
  const mod = m >> 6;
  const rm = m & 7;
  if (mod === 3) return 1;
  let n = 1;
  if (rm === 4) {
    if (p + 1 >= code.length) throw new X86DecodeError(start, 'SIB past the end');
    n++;
    if (mod === 0 && (code[p + 1] & 7) === 5) n += 4;
  } else if (mod === 0 && rm === 5) {
    n += 4; // RIP-relative
  }
  if (mod === 1) n += 1;
  else if (mod === 2) n += 4;
  return n;
}

/** Length in bytes of the instruction at `start`. Throws {@link X86DecodeError} on what it cannot decode. */
export function instructionLength(code: Uint8Array, start: number): number {
  let p = start;
  let opsize16 = false;
  let addr32 = false;
  let rexW = false;
  const need = (n: number): void => {
    if (p + n > code.length) throw new X86DecodeError(start, 'instruction runs past the end');
  };
  for (let i = 0; ; i++) {
    need(1);
    const b = code[p];
    if (!PREFIXES.has(b)) break;
    if (i >= 14) throw new X86DecodeError(start, 'too many prefixes');
    if (b === 0x66) opsize16 = true;
    if (b === 0x67) addr32 = true;
    p++;
  }
  need(1);
  if ((code[p] & 0xf0) === 0x40) {
    rexW = (code[p] & 8) !== 0;
    p++;
    need(1);
  }
  const op = code[p];
  // VEX (C5: 2-byte, C4: 3-byte) and EVEX (62): the map and the ModRM always follow.
  if (op === 0xc5 || op === 0xc4 || op === 0x62) {
    let map: number;
    if (op === 0xc5) {
      need(3);
      map = 1;
      p += 2;
    } else if (op === 0xc4) {
      need(4);
      map = code[p + 1] & 0x1f;
      p += 3;
    } else {
      need(5);
      map = code[p + 1] & 0x07;
      p += 4;
    }
    const vop = code[p];
    p++;
    if (map < 1 || map > 3) throw new X86DecodeError(start, `VEX/EVEX map ${map}`);
    if (map === 1 && vop === 0x77 && op !== 0x62) return p - start; // vzeroupper / vzeroall: no ModRM
    p += modrmLength(code, p, start);
    if (map === 3 || (map === 1 && VEX_MAP1_IMM8.has(vop))) p += 1;
    need(0);
    return p - start;
  }
  p++;
  let imm = Imm.None;
  if (op === 0x0f) {
    need(1);
    const op2 = code[p];
    p++;
    if (op2 === 0x38) {
      need(1);
      p++;
      p += modrmLength(code, p, start);
    } else if (op2 === 0x3a) {
      need(1);
      p++;
      p += modrmLength(code, p, start);
      imm = Imm.B;
    } else if (op2 >= 0x80 && op2 <= 0x8f) {
      imm = Imm.Z; // jcc rel32
    } else if (TWO_INVALID.has(op2)) {
      throw new X86DecodeError(start, `opcode 0f ${op2.toString(16)}`);
    } else if (!TWO_NO_MODRM.has(op2)) {
      p += modrmLength(code, p, start);
      if (TWO_IMM8.has(op2)) imm = Imm.B;
    }
  } else {
    const e = ONE[op];
    if (e.invalid) throw new X86DecodeError(start, `opcode ${op.toString(16)} is invalid in 64-bit mode`);
    if (e.modrm) {
      if (e.imm === Imm.Group3) {
        need(1);
        const reg = (code[p] >> 3) & 7;
        imm = reg < 2 ? (op === 0xf6 ? Imm.B : Imm.Z) : Imm.None;
      } else imm = e.imm;
      p += modrmLength(code, p, start);
    } else imm = e.imm;
  }
  switch (imm) {
    case Imm.None:
      break;
    case Imm.B:
      p += 1;
      break;
    case Imm.W:
      p += 2;
      break;
    case Imm.Z:
      p += opsize16 && !rexW ? 2 : 4;
      break;
    case Imm.V:
      p += rexW ? 8 : opsize16 ? 2 : 4;
      break;
    case Imm.Moffs:
      p += addr32 ? 4 : 8;
      break;
    case Imm.EnterIwIb:
      p += 3;
      break;
    default:
      break;
  }
  need(0);
  return p - start;
}

/** Offsets of every instruction of `code` (from 0 to its end), walking one length at a time. */
export function instructionStarts(code: Uint8Array): number[] {
  const out: number[] = [];
  for (let p = 0; p < code.length; p += instructionLength(code, p)) out.push(p);
  return out;
}

/**
 * Offsets of the return instructions (C3 ret, C2 ret imm16, with any prefixes: `rep ret`) of one
 * function's code, found at instruction boundaries from its first byte.
 */
export function findReturns(code: Uint8Array): number[] {
  const out: number[] = [];
  for (let p = 0; p < code.length; ) {
    const n = instructionLength(code, p);
    let q = p;
    while (q < p + n - 1 && PREFIXES.has(code[q])) q++;
    if (code[q] === 0xc3 || code[q] === 0xc2) out.push(p);
    p += n;
  }
  return out;
}

/**
 * Load-time instrumentation of a plugin module: instruction metering and a memory cap.
 *
 * Why metering and not a worker + watchdog: the agent calls parsers synchronously per message, and
 * a round trip to a worker costs microseconds; metering keeps the call in-thread (sub-microsecond
 * overhead, see docs/BENCHMARKS.md "Plugins") and still guarantees that every call ends.
 *
 * How: a mutable i32 global `riptide_fuel` is added and exported. At every function entry and at
 * the top of every `loop` body, the static instruction count of that region (excluding nested
 * loops, which charge for themselves) is subtracted; when fuel goes negative the code hits
 * `unreachable`. Any unbounded execution must pass a loop header or a call, so every call ends
 * within `fuel` instructions plus one region. The host tells a metering trap from a plugin's own
 * trap by the sign of the fuel left.
 *
 * Operations whose cost grows with an operand are charged that operand at run time, so a loop of
 * them cannot outrun the budget either: memory.copy/fill/init len/64, memory.grow 1024 per page,
 * table.grow/fill/copy/init 1 per element.
 *
 * The module is validated as uploaded (WebAssembly.validate) before anything else: the injected
 * globals are appended after the module's own, so a valid module cannot name them, and the
 * instrumented module is validated again. The fuel and "memory.grow was refused" globals are
 * exported to the host only. A start function is not left to the engine (a trap there could not
 * be told from a timeout): it is exported as `riptide_start` and the host calls it, metered.
 *
 * The memory section is rewritten so its maximum is at most the cap; tables likewise (at most
 * {@link MAX_TABLES}, each clamped to {@link MAX_TABLE_ENTRIES}). A module whose initial size
 * exceeds a cap, that imports memory or a table, that uses an instruction we do not decode (SIMD,
 * threads, exceptions, multi-memory), that imports anything but allowlisted functions, or that
 * exports a name the host reserves is rejected.
 *
 * @example
 *   const { bytes } = instrument(wasm, { maxMemoryPages: 16, startFuel: 10_000_000 });
 *   const module = await WebAssembly.compile(bytes);
 */

import { FUEL_EXPORT } from './abi.ts';
import { Wasm } from './wasm-api.ts';

export class ModuleRejected extends Error {
  constructor(
    readonly reason: 'wrong_abi' | 'memory_limit' | 'invalid_module',
    message: string,
  ) {
    super(message);
  }
}

/** Largest module accepted (compiling is not metered; bound it by size). */
export const MAX_MODULE_BYTES = 16 * 1024 * 1024;
/** Tables a module may define (AssemblyScript emits one). */
export const MAX_TABLES = 4;
/** Largest size, in elements, a table may have or grow to. */
export const MAX_TABLE_ENTRIES = 65536;

/** Export names the instrumented module adds for the host; a plugin may not use them. */
export const FUEL_GLOBAL_EXPORT = FUEL_EXPORT;
export const GROW_REFUSED_EXPORT = 'riptide_grow_refused';
export const START_EXPORT = 'riptide_start';
const RESERVED_EXPORTS = new Set([FUEL_GLOBAL_EXPORT, GROW_REFUSED_EXPORT, START_EXPORT]);

export interface InstrumentOptions {
  /** Cap on linear memory, in 64 KiB pages. */
  maxMemoryPages: number;
  /** Fuel available to the start function (module initialisation). */
  startFuel: number;
  /** `module.name` pairs a plugin may import; anything else is rejected. */
  allowedImports: ReadonlySet<string>;
  /** Skip metering (benchmarks only: measures what metering costs). */
  meter?: boolean;
}

export interface InstrumentResult {
  bytes: Uint8Array;
  /** Export names the module declares (before instrumentation). */
  exports: string[];
  memoryPages: { initial: number; maximum: number };
  /** The module had a start function, now exported as {@link START_EXPORT} for the host to call. */
  hasStart: boolean;
}

class Reader {
  o = 0;
  constructor(readonly b: Uint8Array) {}
  byte(): number {
    if (this.o >= this.b.length) throw new ModuleRejected('invalid_module', 'unexpected end of module');
    return this.b[this.o++];
  }
  u32(): number {
    let result = 0;
    let shift = 0;
    for (;;) {
      const x = this.byte();
      result += (x & 0x7f) * 2 ** shift;
      if ((x & 0x80) === 0) break;
      shift += 7;
      if (shift > 35) throw new ModuleRejected('invalid_module', 'LEB128 too long');
    }
    return result;
  }
  /** Skips a signed LEB128 of up to `bits` bits. */
  sleb(bits: number): void {
    const maxBytes = Math.ceil(bits / 7);
    for (let i = 0; i < maxBytes; i++) if ((this.byte() & 0x80) === 0) return;
    throw new ModuleRejected('invalid_module', 'LEB128 too long');
  }
  name(): string {
    const n = this.u32();
    const s = this.bytes(n);
    return new TextDecoder().decode(s);
  }
  bytes(n: number): Uint8Array {
    if (this.o + n > this.b.length) throw new ModuleRejected('invalid_module', 'section overruns the module');
    const s = this.b.subarray(this.o, this.o + n);
    this.o += n;
    return s;
  }
}

class Writer {
  private buf = new Uint8Array(1024);
  len = 0;
  private ensure(n: number): void {
    if (this.len + n <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < this.len + n) cap *= 2;
    const nb = new Uint8Array(cap);
    nb.set(this.buf.subarray(0, this.len));
    this.buf = nb;
  }
  byte(x: number): void {
    this.ensure(1);
    this.buf[this.len++] = x;
  }
  u32(v: number): void {
    do {
      let x = v & 0x7f;
      v = Math.floor(v / 128);
      if (v !== 0) x |= 0x80;
      this.byte(x);
    } while (v !== 0);
  }
  s32(v: number): void {
    for (;;) {
      const x = v & 0x7f;
      v >>= 7;
      const done = (v === 0 && (x & 0x40) === 0) || (v === -1 && (x & 0x40) !== 0);
      this.byte(done ? x : x | 0x80);
      if (done) return;
    }
  }
  bytes(b: Uint8Array): void {
    this.ensure(b.length);
    this.buf.set(b, this.len);
    this.len += b.length;
  }
  take(): Uint8Array {
    return this.buf.slice(0, this.len);
  }
}

function section(out: Writer, id: number, body: Uint8Array): void {
  out.byte(id);
  out.u32(body.length);
  out.bytes(body);
}

/** Canonical order of known sections (data count, 12, sits before code, 10). */
const SECTION_ORDER = [1, 2, 3, 4, 5, 13, 6, 7, 8, 9, 12, 10, 11];

const VALTYPES = new Set([0x7f, 0x7e, 0x7d, 0x7c, 0x7b, 0x70, 0x6f]);

function skipBlockType(r: Reader): void {
  const b = r.b[r.o];
  if (b === 0x40 || VALTYPES.has(b)) r.o++;
  else r.sleb(33);
}

/**
 * Decodes one function body's instructions and returns where to insert charges: the offset right
 * after each `loop` blocktype (plus the body start) with the instruction count of its region.
 */
interface Point {
  at: number;
  cost: number;
  /**
   * A charge computed at run time from the i32 on top of the stack: `bytes` (memory.copy/fill/init
   * length, len/64), `elems` (table.grow/fill/copy/init count, 1 each), `pages` (memory.grow delta,
   * 1024 each); or `grown`, after memory.grow, which records a refused growth.
   */
  dyn?: 'bytes' | 'elems' | 'pages' | 'grown';
}

function scanBody(r: Reader, end: number): Point[] {
  const points: Point[] = [{ at: r.o, cost: 0 }];
  // control stack: for each open block, the index in `points` that pays for instructions in it
  const payer: number[] = [0];
  while (r.o < end) {
    const opStart = r.o;
    const op = r.byte();
    points[payer[payer.length - 1]].cost++;
    switch (op) {
      case 0x02: case 0x04: // block, if
        skipBlockType(r);
        payer.push(payer[payer.length - 1]);
        break;
      case 0x03: // loop
        skipBlockType(r);
        points.push({ at: r.o, cost: 0 });
        payer.push(points.length - 1);
        break;
      case 0x0b: // end
        payer.pop();
        if (payer.length === 0 && r.o !== end) throw new ModuleRejected('invalid_module', 'code after function end');
        break;
      case 0x00: case 0x01: case 0x05: case 0x0f: case 0x1a: case 0x1b: case 0xd1:
        break;
      case 0x0c: case 0x0d: case 0x10: case 0x12: case 0x20: case 0x21: case 0x22: case 0x23: case 0x24:
      case 0x25: case 0x26: case 0xd2: case 0x3f:
        r.u32();
        break;
      case 0x40: // memory.grow: charge the delta before, note a refusal after
        points.push({ at: opStart, cost: 0, dyn: 'pages' });
        r.u32();
        points.push({ at: r.o, cost: 0, dyn: 'grown' });
        break;
      case 0x0e: { // br_table
        const n = r.u32();
        for (let i = 0; i <= n; i++) r.u32();
        break;
      }
      case 0x11: case 0x13: // call_indirect, return_call_indirect
        r.u32();
        r.u32();
        break;
      case 0x1c: { // select t*
        const n = r.u32();
        r.bytes(n);
        break;
      }
      case 0x41: r.sleb(32); break;
      case 0x42: r.sleb(64); break;
      case 0x43: r.bytes(4); break;
      case 0x44: r.bytes(8); break;
      case 0xd0: r.sleb(33); break; // ref.null heaptype
      case 0xfc: {
        const sub = r.u32();
        if (sub <= 7) break; // saturating truncation
        if (sub === 8 || sub === 10 || sub === 11) points.push({ at: opStart, cost: 0, dyn: 'bytes' });
        if (sub === 12 || sub === 14 || sub === 15 || sub === 17) points.push({ at: opStart, cost: 0, dyn: 'elems' });
        switch (sub) {
          case 8: r.u32(); r.u32(); break; // memory.init
          case 9: case 11: case 13: case 15: case 16: case 17: r.u32(); break;
          case 10: case 12: case 14: r.u32(); r.u32(); break;
          default: throw new ModuleRejected('invalid_module', `unsupported instruction 0xfc ${sub}`);
        }
        break;
      }
      default:
        if (op >= 0x28 && op <= 0x3e) { // loads and stores: memarg
          const align = r.u32();
          if (align & 0x40) throw new ModuleRejected('invalid_module', 'multi-memory is not supported');
          r.u32();
        } else if (op >= 0x45 && op <= 0xc4) {
          // numeric, no immediates
        } else {
          throw new ModuleRejected('invalid_module', `unsupported instruction 0x${op.toString(16)} (SIMD, threads and exceptions are not allowed)`);
        }
    }
  }
  if (payer.length !== 0) throw new ModuleRejected('invalid_module', 'unbalanced blocks');
  return points;
}

/** Indices of the globals the meter adds after the module's own. */
interface MeterGlobals {
  fuel: number;
  /** Scratch: parks an operand while it is charged. */
  scratch: number;
  /** Set to 1 when a memory.grow is refused (the host resets it per call). */
  growRefused: number;
}

/**
 * Charges the i32 on top of the stack (left in place): park it, subtract its cost from the fuel,
 * trap when the fuel runs out, push it back. Costs stay below 2^30, so the subtraction cannot wrap.
 */
function emitDynamicCharge(w: Writer, g: MeterGlobals, kind: 'bytes' | 'elems' | 'pages'): void {
  w.byte(0x24); w.u32(g.scratch);
  w.byte(0x23); w.u32(g.fuel);
  if (kind === 'bytes') {
    w.byte(0x23); w.u32(g.scratch);
    w.byte(0x41); w.s32(6);
    w.byte(0x76); // i32.shr_u
  } else {
    // min_u(n, cap) with select, then scale
    const cap = kind === 'elems' ? 0x40000000 : 0x10000;
    w.byte(0x41); w.s32(cap);
    w.byte(0x23); w.u32(g.scratch);
    w.byte(0x23); w.u32(g.scratch);
    w.byte(0x41); w.s32(cap);
    w.byte(0x4b); // i32.gt_u
    w.byte(0x1b); // select
    if (kind === 'pages') {
      w.byte(0x41); w.s32(10);
      w.byte(0x74); // i32.shl
    }
  }
  w.byte(0x6b); // i32.sub
  w.byte(0x24); w.u32(g.fuel);
  w.byte(0x23); w.u32(g.fuel);
  w.byte(0x41); w.s32(0);
  w.byte(0x48);
  w.byte(0x04); w.byte(0x40);
  w.byte(0x00);
  w.byte(0x0b);
  w.byte(0x23); w.u32(g.scratch);
}

/** After memory.grow (result on the stack, left in place): a result of -1 sets the refused flag. */
function emitGrowCheck(w: Writer, g: MeterGlobals): void {
  w.byte(0x24); w.u32(g.scratch);
  w.byte(0x23); w.u32(g.scratch);
  w.byte(0x41); w.s32(-1);
  w.byte(0x46); // i32.eq
  w.byte(0x04); w.byte(0x40);
  w.byte(0x41); w.s32(1);
  w.byte(0x24); w.u32(g.growRefused);
  w.byte(0x0b);
  w.byte(0x23); w.u32(g.scratch);
}

/** `global.get F; i32.const cost; i32.sub; global.set F; global.get F; i32.const 0; i32.lt_s; if; unreachable; end` */
function emitCharge(w: Writer, fuelGlobal: number, cost: number): void {
  w.byte(0x23); w.u32(fuelGlobal);
  w.byte(0x41); w.s32(cost);
  w.byte(0x6b);
  w.byte(0x24); w.u32(fuelGlobal);
  w.byte(0x23); w.u32(fuelGlobal);
  w.byte(0x41); w.s32(0);
  w.byte(0x48);
  w.byte(0x04); w.byte(0x40);
  w.byte(0x00);
  w.byte(0x0b);
}

/** The engine's reason for refusing a module validate() said no to (compiling stops at the first error). */
function whyInvalid(wasm: Uint8Array): string {
  try {
    new Wasm.Module(wasm);
  } catch (err) {
    return (err instanceof Error ? err.message : String(err)).replace(/^WebAssembly\.Module\(\): /, '');
  }
  return 'WebAssembly.validate refused it';
}

function exportEntry(w: Writer, name: string, kind: number, index: number): void {
  const b = new TextEncoder().encode(name);
  w.u32(b.length); w.bytes(b); w.byte(kind); w.u32(index);
}

/** Reads a table type's limits; the caller has read the reference type. */
function tableLimits(r: Reader): { initial: number; maximum: number } {
  const flags = r.byte();
  if (flags & ~1) throw new ModuleRejected('invalid_module', 'shared or 64-bit tables are not allowed');
  const initial = r.u32();
  const maximum = flags & 1 ? r.u32() : Infinity;
  if (initial > MAX_TABLE_ENTRIES) throw new ModuleRejected('memory_limit', `needs a table of ${initial} elements at start, the cap is ${MAX_TABLE_ENTRIES}`);
  return { initial, maximum };
}

/** Validates and instruments a plugin module. Throws {@link ModuleRejected}. */
export function instrument(wasm: Uint8Array, opts: InstrumentOptions): InstrumentResult {
  const meter = opts.meter !== false;
  if (wasm.length > MAX_MODULE_BYTES) throw new ModuleRejected('invalid_module', `module is ${wasm.length} bytes, the cap is ${MAX_MODULE_BYTES}`);
  const r = new Reader(wasm);
  const magic = r.bytes(8);
  if (magic[0] !== 0 || magic[1] !== 0x61 || magic[2] !== 0x73 || magic[3] !== 0x6d || magic[4] !== 1 || magic[5] | magic[6] | magic[7]) {
    throw new ModuleRejected('invalid_module', 'not a WebAssembly module (bad magic or version)');
  }
  // The engine's validation first: every index the code uses then names something the module
  // itself declares, never what the meter appends.
  if (!Wasm.validate(wasm)) throw new ModuleRejected('invalid_module', `is not a valid WebAssembly module (${whyInvalid(wasm)})`);
  const sections: Array<{ id: number; body: Uint8Array }> = [];
  while (r.o < wasm.length) {
    const id = r.byte();
    const size = r.u32();
    const body = r.bytes(size);
    if (id !== 0) sections.push({ id, body }); // custom sections (names, source maps) are dropped
  }

  let definedGlobals = 0;
  let hasMemory = false;
  const exports: string[] = [];
  let memoryPages = { initial: 0, maximum: 0 };
  const out = new Writer();
  out.bytes(magic);

  const find = (id: number): Uint8Array | undefined => sections.find((s) => s.id === id)?.body;

  // imports: allowlisted functions only (no memory, table or global imports)
  const imp = find(2);
  if (imp) {
    const ir = new Reader(imp);
    const n = ir.u32();
    for (let i = 0; i < n; i++) {
      const mod = ir.name();
      const name = ir.name();
      const kind = ir.byte();
      if (!opts.allowedImports.has(`${mod}.${name}`)) throw new ModuleRejected('wrong_abi', `imports ${mod}.${name}, which the host does not provide`);
      if (kind === 0) ir.u32();
      else throw new ModuleRejected('wrong_abi', `imports ${mod}.${name} as a ${['function', 'table', 'memory', 'global'][kind] ?? 'thing'}; the host provides it as a function${kind === 1 || kind === 2 ? ' (plugins must define their own memory and tables)' : ''}`);
    }
  }
  const glob = find(6);
  if (glob) definedGlobals = new Reader(glob).u32();
  // no global can be imported (above), so the module's globals are 0..definedGlobals-1
  const g: MeterGlobals = { fuel: definedGlobals, scratch: definedGlobals + 1, growRefused: definedGlobals + 2 };

  const exp = find(7);
  if (exp) {
    const er = new Reader(exp);
    const n = er.u32();
    for (let i = 0; i < n; i++) {
      const name = er.name();
      if (RESERVED_EXPORTS.has(name)) throw new ModuleRejected('invalid_module', `exports "${name}", a name the host reserves`);
      exports.push(name);
      er.byte();
      er.u32();
    }
  }
  const startSection = find(8);
  const startFunc = startSection ? new Reader(startSection).u32() : -1;
  const hasStart = meter && startFunc >= 0;

  let wroteGlobals = false;
  const writeGlobals = (): void => {
    if (wroteGlobals || !meter) return;
    wroteGlobals = true;
    const w = new Writer();
    w.u32(definedGlobals + 3);
    if (glob) {
      const gr = new Reader(glob);
      gr.u32();
      w.bytes(glob.subarray(gr.o));
    }
    w.byte(0x7f); w.byte(0x01); // fuel: mut i32
    w.byte(0x41); w.s32(Math.min(opts.startFuel, 0x7fffffff)); w.byte(0x0b);
    w.byte(0x7f); w.byte(0x01); w.byte(0x41); w.s32(0); w.byte(0x0b); // scratch for charged operands
    w.byte(0x7f); w.byte(0x01); w.byte(0x41); w.s32(0); w.byte(0x0b); // memory.grow refused
    section(out, 6, w.take());
  };
  let wroteExports = false;
  const writeExports = (): void => {
    if (wroteExports || !meter) return;
    wroteExports = true;
    const w = new Writer();
    let n = 0;
    let rest: Uint8Array = new Uint8Array(0);
    if (exp) {
      const er = new Reader(exp);
      n = er.u32();
      rest = exp.subarray(er.o);
    }
    w.u32(n + 2 + (hasStart ? 1 : 0));
    w.bytes(rest);
    exportEntry(w, FUEL_GLOBAL_EXPORT, 0x03, g.fuel);
    exportEntry(w, GROW_REFUSED_EXPORT, 0x03, g.growRefused);
    if (hasStart) exportEntry(w, START_EXPORT, 0x00, startFunc);
    section(out, 7, w.take());
  };

  for (const s of sections) {
    if (s.id === 5) {
      const mr = new Reader(s.body);
      const n = mr.u32();
      if (n !== 1) throw new ModuleRejected('invalid_module', `defines ${n} memories; exactly one is required`);
      const flags = mr.byte();
      if (flags & ~1) throw new ModuleRejected('invalid_module', 'shared or 64-bit memory is not allowed');
      const initial = mr.u32();
      const maximum = flags & 1 ? mr.u32() : Infinity;
      if (initial > opts.maxMemoryPages) {
        throw new ModuleRejected('memory_limit', `needs ${initial} pages of memory at start, the cap is ${opts.maxMemoryPages}`);
      }
      const capped = Math.min(maximum, opts.maxMemoryPages);
      memoryPages = { initial, maximum: capped };
      hasMemory = true;
      const w = new Writer();
      w.u32(1); w.byte(1); w.u32(initial); w.u32(capped);
      section(out, 5, w.take());
      continue;
    }
    if (s.id === 4) {
      // tables live outside linear memory: without a cap, table.grow is memory the cap never sees
      const tr = new Reader(s.body);
      const n = tr.u32();
      if (n > MAX_TABLES) throw new ModuleRejected('invalid_module', `defines ${n} tables, at most ${MAX_TABLES} are allowed`);
      const w = new Writer();
      w.u32(n);
      for (let i = 0; i < n; i++) {
        const ref = tr.byte();
        if (ref !== 0x70 && ref !== 0x6f) throw new ModuleRejected('invalid_module', `table ${i} has an unsupported type 0x${ref.toString(16)}`);
        const { initial, maximum } = tableLimits(tr);
        w.byte(ref); w.byte(1); w.u32(initial); w.u32(Math.min(maximum, MAX_TABLE_ENTRIES));
      }
      section(out, 4, w.take());
      continue;
    }
    if (SECTION_ORDER.indexOf(s.id) > SECTION_ORDER.indexOf(6)) writeGlobals(); // keep the canonical section order
    if (SECTION_ORDER.indexOf(s.id) > SECTION_ORDER.indexOf(7)) writeExports();
    if (s.id === 6) {
      if (meter) writeGlobals();
      else section(out, 6, s.body);
      continue;
    }
    if (s.id === 7 && meter) {
      writeExports();
      continue;
    }
    if (s.id === 8 && meter) continue; // the host calls it as riptide_start, metered
    if (s.id === 10 && meter) {
      const cr = new Reader(s.body);
      const n = cr.u32();
      const w = new Writer();
      w.u32(n);
      for (let i = 0; i < n; i++) {
        const size = cr.u32();
        const end = cr.o + size;
        const start = cr.o;
        const br = new Reader(s.body.subarray(0, end));
        br.o = start;
        const groups = br.u32();
        for (let gi = 0; gi < groups; gi++) { br.u32(); br.byte(); }
        const points = scanBody(br, end);
        const fw = new Writer();
        let from = start;
        for (const p of points) {
          fw.bytes(s.body.subarray(from, p.at));
          if (p.dyn === 'grown') emitGrowCheck(fw, g);
          else if (p.dyn) emitDynamicCharge(fw, g, p.dyn);
          else emitCharge(fw, g.fuel, p.cost);
          from = p.at;
        }
        fw.bytes(s.body.subarray(from, end));
        const body = fw.take();
        w.u32(body.length);
        w.bytes(body);
        cr.o = end;
      }
      section(out, 10, w.take());
      continue;
    }
    section(out, s.id, s.body);
  }
  writeGlobals();
  writeExports();
  if (!hasMemory) throw new ModuleRejected('wrong_abi', 'defines no memory (the ABI passes bytes through an exported memory)');
  const bytes = out.take();
  if (!Wasm.validate(bytes)) throw new ModuleRejected('invalid_module', 'does not validate after instrumentation (an instruction the meter mishandles; please report it)');
  return { bytes, exports, memoryPages, hasStart };
}

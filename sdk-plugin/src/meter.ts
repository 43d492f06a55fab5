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
 * memory.copy, memory.fill and memory.init are charged len/64 at run time, so bulk operations in
 * a loop cannot outrun the budget either.
 *
 * The memory section is rewritten so its maximum is at most the cap; a module whose initial size
 * exceeds the cap, that imports memory, that uses an instruction we do not decode (SIMD, threads,
 * exceptions, multi-memory), or that imports anything outside the allowlist is rejected.
 *
 * @example
 *   const { bytes } = instrument(wasm, { maxMemoryPages: 16, startFuel: 10_000_000 });
 *   const module = await WebAssembly.compile(bytes);
 */

export class ModuleRejected extends Error {
  constructor(
    readonly reason: 'wrong_abi' | 'memory_limit' | 'invalid_module',
    message: string,
  ) {
    super(message);
  }
}

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
  /** `bulk`: a memory.copy/fill/init whose length operand is charged at run time. */
  bulk?: boolean;
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
      case 0x25: case 0x26: case 0xd2: case 0x3f: case 0x40:
        r.u32();
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
        if (sub === 8 || sub === 10 || sub === 11) points.push({ at: opStart, cost: 0, bulk: true });
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

/**
 * Before memory.copy/fill/init (stack: dst, src|value, len): park len in S, charge len/64, push it
 * back — a bulk copy of the whole memory costs what copying it byte-wise in a loop would, roughly.
 */
function emitBulkCharge(w: Writer, fuelGlobal: number): void {
  const s = fuelGlobal + 1;
  w.byte(0x24); w.u32(s);
  w.byte(0x23); w.u32(fuelGlobal);
  w.byte(0x23); w.u32(s);
  w.byte(0x41); w.s32(6);
  w.byte(0x76); // i32.shr_u
  w.byte(0x6b);
  w.byte(0x24); w.u32(fuelGlobal);
  w.byte(0x23); w.u32(fuelGlobal);
  w.byte(0x41); w.s32(0);
  w.byte(0x48);
  w.byte(0x04); w.byte(0x40);
  w.byte(0x00);
  w.byte(0x0b);
  w.byte(0x23); w.u32(s);
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

/** Validates and instruments a plugin module. Throws {@link ModuleRejected}. */
export function instrument(wasm: Uint8Array, opts: InstrumentOptions): InstrumentResult {
  const meter = opts.meter !== false;
  const r = new Reader(wasm);
  const magic = r.bytes(8);
  if (magic[0] !== 0 || magic[1] !== 0x61 || magic[2] !== 0x73 || magic[3] !== 0x6d || magic[4] !== 1 || magic[5] | magic[6] | magic[7]) {
    throw new ModuleRejected('invalid_module', 'not a WebAssembly module (bad magic or version)');
  }
  const sections: Array<{ id: number; body: Uint8Array }> = [];
  while (r.o < wasm.length) {
    const id = r.byte();
    const size = r.u32();
    const body = r.bytes(size);
    if (id !== 0) sections.push({ id, body }); // custom sections (names, source maps) are dropped
  }

  let importedGlobals = 0;
  let definedGlobals = 0;
  let hasMemory = false;
  const exports: string[] = [];
  let memoryPages = { initial: 0, maximum: 0 };
  const out = new Writer();
  out.bytes(magic);

  let fuelGlobal = -1;
  const find = (id: number): Uint8Array | undefined => sections.find((s) => s.id === id)?.body;

  // imports: allowlist, no memory import
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
      else if (kind === 3) { ir.byte(); ir.byte(); importedGlobals++; }
      else throw new ModuleRejected('wrong_abi', `imports a ${kind === 2 ? 'memory' : 'table'} (${mod}.${name}); plugins must define their own`);
    }
  }
  const glob = find(6);
  if (glob) definedGlobals = new Reader(glob).u32();
  fuelGlobal = importedGlobals + definedGlobals;

  const exp = find(7);
  if (exp) {
    const er = new Reader(exp);
    const n = er.u32();
    for (let i = 0; i < n; i++) {
      exports.push(er.name());
      er.byte();
      er.u32();
    }
  }

  let wroteGlobals = false;
  const writeGlobals = (): void => {
    if (wroteGlobals || !meter) return;
    wroteGlobals = true;
    const w = new Writer();
    w.u32(definedGlobals + 2);
    if (glob) {
      const gr = new Reader(glob);
      gr.u32();
      w.bytes(glob.subarray(gr.o));
    }
    w.byte(0x7f); w.byte(0x01); // mut i32
    w.byte(0x41); w.s32(Math.min(opts.startFuel, 0x7fffffff)); w.byte(0x0b);
    w.byte(0x7f); w.byte(0x01); w.byte(0x41); w.s32(0); w.byte(0x0b); // scratch for bulk-memory lengths
    section(out, 6, w.take());
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
    if (SECTION_ORDER.indexOf(s.id) > SECTION_ORDER.indexOf(6)) writeGlobals(); // keep the canonical section order
    if (s.id === 6) {
      if (meter) writeGlobals();
      else section(out, 6, s.body);
      continue;
    }
    if (s.id === 7 && meter) {
      const er = new Reader(s.body);
      const n = er.u32();
      const w = new Writer();
      w.u32(n + 1);
      w.bytes(s.body.subarray(er.o));
      const name = new TextEncoder().encode('riptide_fuel');
      w.u32(name.length); w.bytes(name); w.byte(0x03); w.u32(fuelGlobal);
      section(out, 7, w.take());
      continue;
    }
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
        for (let g = 0; g < groups; g++) { br.u32(); br.byte(); }
        const points = scanBody(br, end);
        const fw = new Writer();
        let from = start;
        for (const p of points) {
          fw.bytes(s.body.subarray(from, p.at));
          if (p.bulk) emitBulkCharge(fw, fuelGlobal);
          else emitCharge(fw, fuelGlobal, p.cost);
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
  if (!hasMemory) throw new ModuleRejected('wrong_abi', 'defines no memory (the ABI passes bytes through an exported memory)');
  return { bytes: out.take(), exports, memoryPages };
}

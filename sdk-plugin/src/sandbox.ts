/**
 * One loaded plugin module, guarded: metered (every call ends within its fuel), memory-capped,
 * traps caught and classified. Calls are synchronous and in-thread.
 *
 * Any broken rule throws a {@link PluginFault} with a reason; the caller (the agent's plugin host,
 * or the test helper) decides what to do — the agent disables the plugin.
 *
 * @example
 *   const sb = await PluginSandbox.load(wasmBytes, { memoryPages: 16, timeBudgetMs: 2, maxOutputBytes: 65536 }, ['parse']);
 *   const msgs = sb.parse(ctx, payload); // PluginMessage[]
 */
import {
  ABI_MARKER_EXPORT,
  ALLOC_EXPORT,
  AbiError,
  HEADER_SIZE,
  HOOK_CHECK,
  HOOK_EXPORTS,
  HOOK_HTTP_REQUEST,
  HOOK_HTTP_RESPONSE,
  HOOK_PARSE,
  decodeMessages,
  decodeResult,
  encodeFields,
  writeHeader,
} from './abi.ts';
import type { HookName, HttpFieldsInput, InputContext, PluginMessage, PluginResult } from './abi.ts';
import { FUEL_GLOBAL_EXPORT, GROW_REFUSED_EXPORT, ModuleRejected, START_EXPORT, instrument } from './meter.ts';
import { Wasm } from './wasm-api.ts';
import type { WasmGlobal, WasmInstance, WasmMemory, WasmModule } from './wasm-api.ts';

export type FaultReason =
  | 'timeout'
  | 'memory_limit'
  | 'trap'
  | 'oversized_output'
  | 'bad_output'
  | 'wrong_abi'
  | 'hash_mismatch'
  | 'invalid_module'
  | 'load_error';

/** A plugin broke a rule. `reason` is the `reason` label of `riptide_plugin_disabled_total`. */
export class PluginFault extends Error {
  constructor(
    readonly reason: FaultReason,
    message: string,
  ) {
    super(message);
  }
}

export interface SandboxLimits {
  /** Linear memory cap in 64 KiB pages. */
  memoryPages: number;
  /** Per-call budget, converted to fuel at {@link FUEL_PER_MS}. */
  timeBudgetMs: number;
  /** Largest result a call may return. */
  maxOutputBytes: number;
}

/**
 * Fuel units (≈ wasm instructions) per millisecond of budget. Measured on the bench machine: a
 * metered tight loop runs ~2.5 M units/ms under V8's optimising tier, so 500 k/ms keeps a plugin
 * that exhausts its fuel well under its budget even in the baseline tier (see docs/BENCHMARKS.md).
 */
export const FUEL_PER_MS = 500_000;

/**
 * What the host's own work on a call costs in fuel, so that it is on the plugin's clock too (at
 * {@link FUEL_PER_MS}, 1 fuel = 2 ns): copying the input into guest memory (memcpy, ~1 ns per
 * 16 bytes) and decoding the result — UTF-8 decoding of non-ASCII text measured 10-21 ns a byte,
 * and each record ~0.6 µs when a result is a thousand attributes (docs/SECURITY.md "Plugins").
 * The rates are the measured worst cases, so a result that costs the host more than the plugin's
 * remaining budget is a timeout like a slow plugin.
 */
export const HOST_COPY_BYTES_PER_FUEL = 16;
export const HOST_DECODE_FUEL_PER_BYTE = 12;
export const HOST_DECODE_FUEL_PER_RECORD = 300;

/**
 * The agent's cap on one call's result, whatever the manifest's `maxOutputBytes` says: what a
 * span can carry. An HTTP hook's result is merged into one span; a parse call may return several
 * messages of one payload (at most 64 KiB of it). See docs/SECURITY.md "Plugins".
 */
export const HOST_OUTPUT_CAP_BYTES = 16 * 1024;

/** What a plugin may import (AssemblyScript's runtime hooks). */
export const ALLOWED_IMPORTS: ReadonlySet<string> = new Set(['env.abort', 'env.trace', 'env.seed']);

const PAGE = 65536;

export class PluginSandbox {
  private view: Uint8Array;
  private dv: DataView;
  private readonly fuelPerCall: number;
  /** Fuel the last call used (≈ instructions executed, plus the host's copying and decoding). */
  lastFuelUsed = 0;
  /** Bytes of output the last call returned (0 for none). */
  lastOutputBytes = 0;

  private constructor(
    private readonly memory: WasmMemory,
    private readonly fuel: WasmGlobal | undefined,
    private readonly growRefused: WasmGlobal | undefined,
    private readonly alloc: (n: number) => number,
    private readonly hookFns: Map<HookName, (ptr: number, len: number) => number>,
    readonly limits: SandboxLimits,
  ) {
    this.view = new Uint8Array(memory.buffer);
    this.dv = new DataView(memory.buffer);
    this.fuelPerCall = Math.max(1, Math.min(0x7fffffff, Math.round(limits.timeBudgetMs * FUEL_PER_MS)));
  }

  /**
   * Validates, instruments, compiles and instantiates a module; checks the ABI marker and that
   * every hook in `hooks` is exported. Throws {@link PluginFault}.
   */
  static async load(wasm: Uint8Array, limits: SandboxLimits, hooks: readonly HookName[], opts: { meter?: boolean } = {}): Promise<PluginSandbox> {
    let instrumented;
    const startFuel = Math.min(0x7fffffff, Math.round(Math.max(limits.timeBudgetMs, 1) * FUEL_PER_MS * 10));
    try {
      instrumented = instrument(wasm, {
        maxMemoryPages: limits.memoryPages,
        startFuel,
        allowedImports: ALLOWED_IMPORTS,
        meter: opts.meter,
      });
    } catch (err) {
      if (err instanceof ModuleRejected) throw new PluginFault(err.reason, err.message);
      throw err;
    }
    const ex = instrumented.exports;
    if (!ex.includes(ABI_MARKER_EXPORT)) {
      const other = ex.find((e) => /^riptide_abi_v\d+$/.test(e));
      throw new PluginFault('wrong_abi', other ? `module speaks ${other}, this host speaks ${ABI_MARKER_EXPORT}` : `module has no ${ABI_MARKER_EXPORT} export (not built with the Riptide SDK?)`);
    }
    for (const h of hooks) {
      if (!ex.includes(HOOK_EXPORTS[h])) throw new PluginFault('wrong_abi', `manifest declares hook "${h}" but the module does not export ${HOOK_EXPORTS[h]}`);
    }
    let module: WasmModule;
    try {
      module = await Wasm.compile(instrumented.bytes);
    } catch (err) {
      throw new PluginFault('invalid_module', `does not compile: ${(err as Error).message}`);
    }
    const ref: { memory?: WasmMemory } = {};
    const readString = (ptr: number): string => {
      // AssemblyScript strings are UTF-16 with their byte length 4 bytes before the pointer
      const memory = ref.memory;
      if (!memory || ptr < 4 || ptr >= memory.buffer.byteLength) return '';
      const dv = new DataView(memory.buffer);
      const bytes = Math.min(dv.getUint32(ptr - 4, true), 400, memory.buffer.byteLength - ptr);
      let s = '';
      for (let i = 0; i + 1 < bytes; i += 2) s += String.fromCharCode(dv.getUint16(ptr + i, true));
      return s;
    };
    const imports = {
      env: {
        abort: (msg: number, file: number, line: number, col: number): never => {
          throw new PluginFault('trap', `abort: ${readString(msg) || 'no message'} at ${readString(file)}:${line}:${col}`);
        },
        trace: (): void => {},
        seed: (): number => Date.now(),
      },
    };
    let instance: WasmInstance;
    try {
      instance = await Wasm.instantiate(module, imports);
    } catch (err) {
      if (err instanceof PluginFault) throw err;
      throw new PluginFault('trap', `failed to start: ${(err as Error).message}`);
    }
    const e = instance.exports;
    const mem = e.memory;
    if (!(mem instanceof Wasm.Memory)) throw new PluginFault('wrong_abi', 'module does not export its memory as "memory"');
    ref.memory = mem;
    const marker = e[ABI_MARKER_EXPORT];
    if (typeof marker !== 'function' || (marker as () => number)() !== 1) throw new PluginFault('wrong_abi', `${ABI_MARKER_EXPORT} must be a function returning 1`);
    const alloc = e[ALLOC_EXPORT];
    if (typeof alloc !== 'function') throw new PluginFault('wrong_abi', `module does not export ${ALLOC_EXPORT}`);
    const fuel = e[FUEL_GLOBAL_EXPORT];
    const grow = e[GROW_REFUSED_EXPORT];
    const hookFns = new Map<HookName, (ptr: number, len: number) => number>();
    for (const h of hooks) hookFns.set(h, e[HOOK_EXPORTS[h]] as (ptr: number, len: number) => number);
    const sb = new PluginSandbox(mem, fuel instanceof Wasm.Global ? fuel : undefined, grow instanceof Wasm.Global ? grow : undefined, alloc as (n: number) => number, hookFns, limits);
    const start = e[START_EXPORT];
    if (instrumented.hasStart && typeof start === 'function') {
      // the module's start function, which the meter took from the engine: metered with the
      // start fuel the global was created with, and a fault here is classified like any call's
      sb.guard(() => (start as () => void)(), startFuel);
    }
    return sb;
  }

  has(hook: HookName): boolean {
    return this.hookFns.has(hook);
  }

  /** `check` hook: 0 when the payload is not this plugin's protocol, else 1 + protocol index. */
  check(ctx: InputContext, payload: Uint8Array): number {
    const fn = this.hookFns.get('check');
    if (!fn) return 0;
    return this.guard(() => {
      const ptr = this.writeInput(HOOK_CHECK, ctx, null, payload);
      const r = fn(ptr, HEADER_SIZE + payload.length) | 0;
      if (this.fuel) this.lastFuelUsed = this.fuelPerCall - this.fuel.value;
      return r;
    });
  }

  /** `parse` hook: the messages in the payload (empty when it is not this protocol). */
  parse(ctx: InputContext, payload: Uint8Array): PluginMessage[] {
    const fn = this.hookFns.get('parse');
    if (!fn) return [];
    const out = this.guard(() => this.readOutput(fn(this.writeInput(HOOK_PARSE, ctx, null, payload), HEADER_SIZE + payload.length)));
    if (!out) return [];
    try {
      return decodeMessages(out);
    } catch (err) {
      if (err instanceof AbiError) throw new PluginFault('bad_output', `malformed result: ${err.message}`);
      throw err;
    }
  }

  /** An HTTP hook: overrides and business ids for a parsed HTTP message, or null for none. */
  http(hook: 'http_request' | 'http_response', ctx: InputContext, fields: HttpFieldsInput, payload: Uint8Array): PluginResult | null {
    const fn = this.hookFns.get(hook);
    if (!fn) return null;
    const f = encodeFields(fields);
    const kind = hook === 'http_request' ? HOOK_HTTP_REQUEST : HOOK_HTTP_RESPONSE;
    const out = this.guard(() => this.readOutput(fn(this.writeInput(kind, ctx, f, payload), HEADER_SIZE + f.length + payload.length)));
    if (!out) return null;
    try {
      return decodeResult(out);
    } catch (err) {
      if (err instanceof AbiError) throw new PluginFault('bad_output', `malformed result: ${err.message}`);
      throw err;
    }
  }

  private refresh(): void {
    if (this.view.buffer !== this.memory.buffer) {
      this.view = new Uint8Array(this.memory.buffer);
      this.dv = new DataView(this.memory.buffer);
    }
  }

  /**
   * Starts a call: sets the fuel (less the host's copy of the input), asks the guest for an input
   * buffer (which frees the last call's heap), writes the input.
   */
  private writeInput(hook: number, ctx: InputContext, fields: Uint8Array | null, payload: Uint8Array): number {
    const fl = fields ? fields.length : 0;
    const size = HEADER_SIZE + fl + payload.length;
    if (this.fuel) this.fuel.value = this.fuelPerCall - Math.ceil(size / HOST_COPY_BYTES_PER_FUEL);
    if (this.growRefused) this.growRefused.value = 0;
    const ptr = this.alloc(size) >>> 0;
    this.refresh();
    if (ptr === 0 || ptr + size > this.view.length) throw new PluginFault('bad_output', `${ALLOC_EXPORT}(${size}) returned an out-of-bounds pointer`);
    writeHeader(this.dv, ptr, hook, ctx, fl, payload.length);
    if (fields) this.view.set(fields, ptr + HEADER_SIZE);
    this.view.set(payload, ptr + HEADER_SIZE + fl);
    return ptr;
  }

  /**
   * Validates the result pointer: `[u32 length][bytes]`, in bounds and under the output cap, and
   * charges the host's decoding of it to the call's fuel.
   */
  private readOutput(res: number): Uint8Array | null {
    res >>>= 0;
    this.lastOutputBytes = 0;
    if (res === 0) return null;
    this.refresh();
    if (res + 4 > this.view.length) throw new PluginFault('bad_output', `result pointer ${res} is outside its ${this.view.length}-byte memory`);
    const len = this.dv.getUint32(res, true);
    if (len > this.limits.maxOutputBytes) throw new PluginFault('oversized_output', `returned ${len} bytes, the cap is ${this.limits.maxOutputBytes} per call`);
    if (res + 4 + len > this.view.length) throw new PluginFault('bad_output', `result of ${len} bytes at ${res} overruns its ${this.view.length}-byte memory`);
    if (this.fuel) {
      // records are counted by their headers (no decoding) so the whole cost is charged up front
      let records = 0;
      for (let o = res + 4, end = res + 4 + len; o + 5 <= end; o += 5 + this.dv.getUint32(o + 1, true)) records++;
      this.fuel.value -= len * HOST_DECODE_FUEL_PER_BYTE + records * HOST_DECODE_FUEL_PER_RECORD;
      if (this.fuel.value < 0) throw new PluginFault('timeout', `ran past its time budget of ${this.limits.timeBudgetMs} ms (${this.fuelPerCall} fuel), counting the host's decoding of its ${len}-byte result (${records} records)`);
    }
    this.lastOutputBytes = len;
    return this.view.subarray(res + 4, res + 4 + len);
  }

  /**
   * Runs one call into the guest; turns whatever it throws into a {@link PluginFault} with the true
   * reason. `startFuel` is set when this is the module's start function.
   */
  private guard<T>(fn: () => T, startFuel?: number): T {
    let result: T;
    try {
      result = fn();
    } catch (err) {
      if (err instanceof PluginFault) throw err;
      const msg = err instanceof Error ? err.message : String(err);
      const where = startFuel === undefined ? '' : 'its start function ';
      if (this.fuel && this.fuel.value < 0) {
        throw new PluginFault('timeout', startFuel === undefined
          ? `ran past its time budget of ${this.limits.timeBudgetMs} ms (${this.fuelPerCall} fuel)`
          : `its start function ran past its budget of ${startFuel} fuel (10 calls' worth)`);
      }
      if (this.growRefused) {
        // metered: memory.grow was refused at the cap during this call and then it trapped
        // (AssemblyScript's allocator traps when it cannot grow) — anything else is a plain trap
        if (this.growRefused.value !== 0) throw new PluginFault('memory_limit', `${where}trapped after memory.grow was refused at its cap of ${this.limits.memoryPages} pages (${msg})`);
      } else if (this.memory.buffer.byteLength >= this.limits.memoryPages * PAGE) {
        // unmetered (benchmarks only): no record of refused growth, a trap at the cap is the best guess
        throw new PluginFault('memory_limit', `${where}trapped with memory at its cap of ${this.limits.memoryPages} pages (${msg})`);
      }
      throw new PluginFault('trap', startFuel === undefined ? msg : `its start function trapped: ${msg}`);
    }
    if (this.fuel && startFuel === undefined) this.lastFuelUsed = this.fuelPerCall - this.fuel.value;
    return result;
  }
}

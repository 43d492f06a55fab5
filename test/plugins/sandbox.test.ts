// The sandbox against hand-assembled hostile modules: each class is refused or disabled with its
// true reason, promptly, and the escapes found in review stay closed (self-refuel through the
// meter's global, unbounded tables, uncharged grow/bulk ops, output charged by its head,
// one plugin's output fed to the next, unreachable misreported as memory_limit).
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HOST_OUTPUT_CAP_BYTES, loadPlugins } from '../../agent/plugins/host.ts';
import { runHttpHooks } from '../../agent/plugins/types.ts';
import type { HttpHookPlugin } from '../../agent/plugins/types.ts';
import { MetricsRegistry } from '../../agent/metrics.ts';
import type { L7Message, ParseContext } from '../../agent/protocols/parser.ts';
import { ModuleRejected, MAX_TABLE_ENTRIES, instrument } from '../../sdk-plugin/src/meter.ts';
import { ALLOWED_IMPORTS, HOST_COPY_BYTES_PER_FUEL, HOST_DECODE_FUEL_PER_BYTE, HOST_DECODE_FUEL_PER_RECORD, PluginFault, PluginSandbox } from '../../sdk-plugin/src/sandbox.ts';
import type { SandboxLimits } from '../../sdk-plugin/src/sandbox.ts';
import type { HookName, InputContext } from '../../sdk-plugin/src/abi.ts';
import { Wasm } from '../../sdk-plugin/src/wasm-api.ts';
import type { WasmGlobal } from '../../sdk-plugin/src/wasm-api.ts';
import { GOOD, HOSTILE, LOOP_PARSE_MAGIC } from './fixtures/hostile-modules.ts';
import type { Hostile } from './fixtures/hostile-modules.ts';
import { abiModule, op, resultBytes, tlv, writePlugin } from './fixtures/wasm.ts';

const ctx: InputContext = { direction: 'ingress', role: 'server', l4: 'tcp', localPort: 8080, remotePort: 40000, socketId: 1, bytes: 40 };
const req = new TextEncoder().encode('GET /x HTTP/1.1\r\nHost: a\r\n\r\n');
const http = { l7Protocol: 'http1', requestType: 'GET', requestResource: '/x' };

function limitsOf(h: Pick<Hostile, 'manifest'>): SandboxLimits {
  return { memoryPages: h.manifest.memoryPages ?? 2, timeBudgetMs: h.manifest.timeBudgetMs ?? 1, maxOutputBytes: Math.min(h.manifest.maxOutputBytes ?? 4096, HOST_OUTPUT_CAP_BYTES) };
}

async function fault(f: () => unknown): Promise<PluginFault> {
  try {
    await f();
  } catch (err) {
    if (err instanceof PluginFault) return err;
    throw err;
  }
  throw new Error('no fault');
}

/** Loads the module and drives the hook that makes it misbehave; returns the fault. */
async function provoke(h: Hostile): Promise<PluginFault> {
  const hooks = h.manifest.hooks as HookName[];
  return fault(async () => {
    const sb = await PluginSandbox.load(h.wasm, limitsOf(h), hooks);
    if (hooks.includes('check')) {
      const payload = Uint8Array.of(LOOP_PARSE_MAGIC, 1, 2, 3);
      if (sb.check(ctx, payload) !== 0) sb.parse(ctx, payload);
    } else sb.http('http_request', ctx, http, req);
  });
}

describe('hostile modules in the sandbox', () => {
  it.each(HOSTILE.filter((h) => h.name !== 'tampered').map((h) => [h.name, h.reason, h] as const))('%s → %s', async (_n, reason, h) => {
    const t0 = performance.now();
    const f = await provoke(h);
    expect(f.reason, f.message).toBe(reason);
    expect(performance.now() - t0).toBeLessThan(1000);
  });

  it('a well-behaved module still loads and answers', async () => {
    const sb = await PluginSandbox.load(GOOD.wasm, limitsOf(GOOD), ['http_request']);
    expect(sb.http('http_request', ctx, http, req)).toEqual({ xRequestId: 'hand-ok' });
  });
});

describe('closed escapes', () => {
  const opts = { maxMemoryPages: 4, startFuel: 1000, allowedImports: ALLOWED_IMPORTS };
  const hostile = (name: string): Hostile => HOSTILE.find((h) => h.name === name)!;

  it('refuses a module that writes a global it never declared (the fuel counter), before instrumenting it', () => {
    const e = (() => {
      try {
        instrument(hostile('refuel').wasm, opts);
      } catch (err) {
        return err as ModuleRejected;
      }
      throw new Error('accepted');
    })();
    expect(e).toBeInstanceOf(ModuleRejected);
    expect(e.reason).toBe('invalid_module');
    expect(e.message).toMatch(/not a valid WebAssembly module \(.*global.*\)/);
  });

  it('gives a module that declares globals no way to reach the injected ones', async () => {
    // one global of its own: global 1 (where the fuel counter goes) is out of its range
    const wasm = abiModule({ globals: [{ mutable: true, init: 0 }], hooks: { riptide_on_http_request: [op.i32(0x7fffffff), op.globalSet(1), op.i32(0)] } });
    expect((await fault(() => PluginSandbox.load(wasm, { memoryPages: 2, timeBudgetMs: 1, maxOutputBytes: 64 }, ['http_request']))).reason).toBe('invalid_module');
    // its own global keeps working after instrumentation
    const own = abiModule({ globals: [{ mutable: true, init: 0 }], hooks: { riptide_on_http_request: [op.globalGet(0), op.i32(1), op.i32Add, op.globalSet(0), op.i32(0)] } });
    const sb = await PluginSandbox.load(own, { memoryPages: 2, timeBudgetMs: 1, maxOutputBytes: 64 }, ['http_request']);
    expect(sb.http('http_request', ctx, http, req)).toBeNull();
  });

  it('refuses exports that shadow the names the meter adds', async () => {
    const wasm = abiModule({ globals: [{ mutable: true, init: 5 }], hooks: { riptide_on_http_request: [op.i32(0)] }, exports: [{ name: 'riptide_fuel', kind: 'global', index: 0 }] });
    const f = await fault(() => PluginSandbox.load(wasm, { memoryPages: 2, timeBudgetMs: 1, maxOutputBytes: 64 }, ['http_request']));
    expect(f.reason).toBe('invalid_module');
    expect(f.message).toMatch(/reserves/);
  });

  it('refuses too many tables and clamps a table without a maximum', async () => {
    expect(() => instrument(hostile('tables').wasm, opts)).toThrow(/40 tables, at most 4/);
    const { bytes } = instrument(hostile('table-grow').wasm, { ...opts, startFuel: 1_000_000 });
    const inst = await Wasm.instantiate(await Wasm.compile(bytes), {});
    const ex = inst.exports;
    const table = ex.table as { length: number };
    const fuel = ex.riptide_fuel as WasmGlobal;
    fuel.value = 100_000_000;
    // a 10 M-element grow costs 10 M fuel and is refused at the cap
    expect(() => (ex.riptide_on_http_request as (a: number, b: number) => number)(0, 0)).toThrow();
    expect(table.length).toBeLessThanOrEqual(MAX_TABLE_ENTRIES);
    expect(fuel.value).toBeLessThan(0);
  });

  it('charges memory.grow by the pages asked for', async () => {
    const wasm = abiModule({ hooks: { riptide_on_http_request: [op.i32(-1), op.memoryGrow, op.drop, op.i32(0)] } });
    const f = await fault(async () => (await PluginSandbox.load(wasm, { memoryPages: 2, timeBudgetMs: 1, maxOutputBytes: 64 }, ['http_request'])).http('http_request', ctx, http, req));
    expect(f.reason).toBe('timeout');
  });

  it('reports an unreachable as a trap, and a trap after refused growth as memory_limit', async () => {
    const trap = await provoke(hostile('trap'));
    expect(trap.reason).toBe('trap');
    expect(trap.message).toMatch(/unreachable/);
    const oom = await provoke(hostile('oom'));
    expect(oom.reason).toBe('memory_limit');
    expect(oom.message).toMatch(/memory\.grow was refused at its cap of 4 pages/);
  });

  it('meters the start function and reports it as a timeout', async () => {
    const f = await provoke(hostile('loop-start'));
    expect(f.reason).toBe('timeout');
    expect(f.message).toMatch(/start function/);
    // a start function that behaves still runs (before any hook), and its effects are kept
    const wasm = abiModule({
      globals: [{ mutable: true, init: 0 }],
      start: [op.i32(7), op.globalSet(0)],
      hooks: { riptide_check: [op.globalGet(0)], riptide_parse: [op.i32(0)] },
    });
    const sb = await PluginSandbox.load(wasm, { memoryPages: 2, timeBudgetMs: 1, maxOutputBytes: 64 }, ['check', 'parse']);
    expect(sb.check(ctx, Uint8Array.of(1))).toBe(7);
  });

  it('charges the host\'s copying and decoding to the call', async () => {
    const value = new Array(3000).fill(0x61);
    const wasm = abiModule({ data: [{ offset: 70000, bytes: resultBytes(tlv(0x1e, [1, 0, 0, 0, 0x6b, ...value])) }], hooks: { riptide_on_http_request: [op.i32(70000)] } });
    const sb = await PluginSandbox.load(wasm, { memoryPages: 2, timeBudgetMs: 1, maxOutputBytes: 8192 }, ['http_request']);
    expect(sb.http('http_request', ctx, http, new Uint8Array(64000))?.attributes?.k).toHaveLength(3000);
    expect(sb.lastOutputBytes).toBe(3010);
    // the guest ran one instruction; the rest is the host copying 64 KB in and decoding 3 KB out
    expect(sb.lastFuelUsed).toBeGreaterThanOrEqual(3010 * HOST_DECODE_FUEL_PER_BYTE + HOST_DECODE_FUEL_PER_RECORD + 64000 / HOST_COPY_BYTES_PER_FUEL);
    // a result whose decoding would run past the budget is a timeout
    const tight = await PluginSandbox.load(wasm, { memoryPages: 2, timeBudgetMs: 0.005, maxOutputBytes: 8192 }, ['http_request']);
    expect((await fault(() => tight.http('http_request', ctx, http, req))).reason).toBe('timeout');
  });
});

describe('the agent host', () => {
  let work: string;
  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'riptide-sandbox-'));
  });
  afterAll(async () => {
    await rm(work, { recursive: true, force: true });
  });

  it('caps a call\'s output at what a span carries, whatever the manifest allows, and counts what it copies', async () => {
    const huge = HOSTILE.find((h) => h.name === 'huge')!;
    const paths = [await writePlugin(work, huge.name, huge.wasm, huge.manifest), await writePlugin(work, GOOD.name, GOOD.wasm, GOOD.manifest)];
    const lines: string[] = [];
    const metrics = new MetricsRegistry();
    const plugins = await loadPlugins({ paths, reloadIntervalMs: 0, metrics, log: (l) => lines.push(l) });
    const msg: L7Message = { l7Protocol: 'http1', msgType: 'request', requestType: 'GET', requestResource: '/x' };
    const pctx: ParseContext = { ...ctx, state: {} };
    runHttpHooks(plugins.httpHooks, msg, req, pctx);
    expect(msg.attributes).toBeUndefined();
    expect(msg.xRequestId).toBe('hand-ok');
    expect(plugins.host.status().map((s) => [s.name, s.state, s.reason])).toEqual([['huge', 'disabled', 'oversized_output'], ['good', 'active', undefined]]);
    expect(lines.join('\n')).toMatch(new RegExp(`plugin huge@1.0.0 disabled \\(oversized_output\\): returned 1000010 bytes, the cap is ${HOST_OUTPUT_CAP_BYTES} per call`));
    const text = metrics.render();
    expect(text).toContain('riptide_plugin_disabled_total{plugin="huge",reason="oversized_output"} 1');
    expect(text).toMatch(/riptide_plugin_output_bytes_total\{plugin="good"\} \d+/);
    plugins.close();
  });

  it('shows each HTTP hook the parser\'s message, not what the hooks before it added', () => {
    const seen: Array<Record<string, string> | undefined> = [];
    const hook = (name: string, attrs: Record<string, string>): HttpHookPlugin => ({
      name,
      onHttpRequest: (m) => {
        seen.push(m.attributes);
        return { attributes: attrs, traceId: name };
      },
      onHttpResponse: () => null,
    });
    const msg: L7Message = { l7Protocol: 'http1', msgType: 'request', attributes: { from_parser: '1' } };
    runHttpHooks([hook('a', { a: 'x'.repeat(1000) }), hook('b', { b: '2' })], msg, req, { ...ctx, state: {} });
    expect(seen).toEqual([{ from_parser: '1' }, { from_parser: '1' }]);
    expect(msg.attributes).toEqual({ from_parser: '1', a: 'x'.repeat(1000), b: '2' });
    expect(msg.traceId).toBe('b');
  });
});


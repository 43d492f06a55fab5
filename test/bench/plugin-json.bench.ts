/**
 * What HTTP-hook plugins that read JSON fields cost on realistic API bodies (1–16 KiB), in fuel
 * (the metering unit, ≈ wasm instructions: deterministic, so it is what a time budget must cover)
 * and in wall time per call. The plugins are built from source with the SDK in this checkout, so
 * a change to sdk-plugin/assembly shows up here directly. Run:
 *
 *   npx tsx test/bench/plugin-json.bench.ts [iterations]
 *
 * Cases: the template's response hook (one field, "status"), plugins/http-error-200 ("error"),
 * plugins/biz-trace-id (up to four paths tried in order, the last one nested). Bodies are a list
 * API's response — `{"data":[…records…],"page":…,"status":…}` — so the fields a plugin looks for
 * come after the bulk of the body, or are absent (the common case: most responses are fine).
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { HookName, HttpFieldsInput, InputContext } from '../../sdk-plugin/src/abi.ts';
import { buildPlugin } from '../../sdk-plugin/src/build.ts';
import { HOST_CEILINGS } from '../../sdk-plugin/src/manifest.ts';
import { FUEL_PER_MS, PluginSandbox } from '../../sdk-plugin/src/sandbox.ts';
import { apiBody, httpRequest, httpResponse } from '../helpers/api-bodies.ts';

const N = Number(process.argv[2] ?? 2000);
const root = new URL('../../', import.meta.url).pathname;

interface Case {
  name: string;
  plugin: string;
  hook: HookName;
  payload: (size: number) => Uint8Array;
  fields: HttpFieldsInput;
}

const CASES: Case[] = [
  { name: 'template: "status" (present, after the records)', plugin: 'sdk-plugin/template', hook: 'http_response', payload: (n) => httpResponse(apiBody(n, { status: 'failed' })), fields: { responseCode: 200 } },
  { name: 'http-error-200: "error" (absent)', plugin: 'plugins/http-error-200', hook: 'http_response', payload: (n) => httpResponse(apiBody(n, { status: 'ok' })), fields: { responseCode: 200 } },
  { name: 'biz-trace-id: 4 paths (last one, "order.txn_id")', plugin: 'plugins/biz-trace-id', hook: 'http_request', payload: (n) => httpRequest(apiBody(n, { order: { txn_id: 'TX-2026-000042' } })), fields: {} },
  { name: 'biz-trace-id: 4 paths (all absent)', plugin: 'plugins/biz-trace-id', hook: 'http_request', payload: (n) => httpRequest(apiBody(n, {})), fields: {} },
];
const SIZES = [1024, 4096, 8192, 16384];
const ctx: InputContext = { direction: 'ingress', role: 'client', l4: 'tcp', localPort: 50000, remotePort: 8080, socketId: 1, bytes: 0 };

async function main(): Promise<void> {
  process.stdout.write(`plugin-json bench: ${N} calls per case, node ${process.version}, ${FUEL_PER_MS} fuel per ms of budget\n`);
  const tmp = await mkdtemp(join(tmpdir(), 'riptide-bench-'));
  try {
    const sandboxes = new Map<string, PluginSandbox>();
    for (const c of CASES) {
      if (sandboxes.has(c.plugin)) continue;
      const built = await buildPlugin(join(root, c.plugin), { outDir: join(tmp, c.plugin.replace(/\//g, '_')) });
      const limits = { memoryPages: HOST_CEILINGS.memoryPages, timeBudgetMs: HOST_CEILINGS.timeBudgetMs, maxOutputBytes: 65536 };
      sandboxes.set(c.plugin, await PluginSandbox.load(await readFile(built.wasmPath), limits, built.manifest.hooks));
    }
    process.stdout.write(`\n${'case'.padEnd(52)} ${'body'.padStart(6)} ${'fuel'.padStart(9)} ${'ms@500k'.padStart(8)} ${'µs/call'.padStart(8)}\n`);
    for (const c of CASES) {
      const sb = sandboxes.get(c.plugin)!;
      for (const size of SIZES) {
        const payload = c.payload(size);
        const bodyLen = payload.length - (payload.indexOf(0x7b) >= 0 ? payload.indexOf(0x7b) : 0);
        const call = (): unknown => (c.hook === 'http_request' || c.hook === 'http_response' ? sb.http(c.hook, { ...ctx, bytes: payload.length }, c.fields, payload) : null);
        call();
        const fuel = sb.lastFuelUsed;
        for (let i = 0; i < Math.min(N, 500); i++) call(); // warm up (tier-up)
        const t0 = process.hrtime.bigint();
        for (let i = 0; i < N; i++) call();
        const us = Number(process.hrtime.bigint() - t0) / N / 1000;
        process.stdout.write(`${c.name.padEnd(52)} ${String(bodyLen).padStart(6)} ${String(fuel).padStart(9)} ${(fuel / FUEL_PER_MS).toFixed(2).padStart(8)} ${us.toFixed(1).padStart(8)}\n`);
      }
    }
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

await main();

/**
 * Cost per message of a Wasm plugin call vs a built-in TypeScript parser doing the same work,
 * side by side in one run, plus what the metering costs. Run:
 *
 *   npx tsx test/bench/plugin-call.bench.ts [iterations]
 *
 * Plugins are loaded the way the agent loads them (loadPlugins → ProtocolParser / HttpHookPlugin).
 */
import { readFile } from 'node:fs/promises';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadPlugins } from '../../agent/plugins/host.ts';
import { MetricsRegistry } from '../../agent/metrics.ts';
import type { L7Message, ParseContext } from '../../agent/protocols/parser.ts';
import { PluginSandbox } from '../../sdk-plugin/src/sandbox.ts';
import { parseManifest } from '../../sdk-plugin/src/manifest.ts';
import { buildPlugin } from '../../sdk-plugin/src/build.ts';
import { encodeRequest, encodeResponse } from '../../plugins/tinyrpc/demo/protocol.ts';

const N = Number(process.argv[2] ?? 200_000);
const root = new URL('../../', import.meta.url).pathname;

function bench(name: string, fn: () => unknown): number {
  for (let i = 0; i < Math.min(N, 20_000); i++) fn(); // warm up (tier-up to optimised code)
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < N; i++) fn();
  const ns = Number(process.hrtime.bigint() - t0) / N;
  process.stdout.write(`  ${name.padEnd(58)} ${ns.toFixed(0).padStart(7)} ns/msg\n`);
  return ns;
}

// --- the same work in TypeScript, as a built-in parser would do it ------------------------------

function tinyrpcTs(payload: Uint8Array): L7Message[] | null {
  const dv = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  const out: L7Message[] = [];
  let o = 0;
  while (payload.length - o >= 11) {
    const len = dv.getUint32(o);
    if (payload[o + 4] !== 0x54 || payload[o + 5] !== 0x52 || len < 7) break;
    const kind = payload[o + 6];
    const id = dv.getUint32(o + 7);
    const bodyStart = o + 11;
    const avail = Math.min(len - 7, payload.length - bodyStart);
    if (kind === 1) {
      const ml = payload[bodyStart];
      const method = new TextDecoder().decode(payload.subarray(bodyStart + 1, bodyStart + 1 + ml));
      out.push({ l7Protocol: 'tinyrpc', msgType: 'request', requestId: id, requestLength: len + 4, requestType: 'CALL', requestResource: method, endpoint: method });
    } else if (kind === 2) {
      const st = payload[bodyStart];
      const m: L7Message = { l7Protocol: 'tinyrpc', msgType: 'response', requestId: id, responseLength: len + 4, responseCode: st, responseStatus: st === 0 ? 'ok' : st === 1 ? 'client_error' : 'server_error' };
      if (st !== 0) m.responseException = new TextDecoder().decode(payload.subarray(bodyStart + 1, bodyStart + avail));
      out.push(m);
    } else break;
    o += 4 + len;
  }
  return out.length ? out : null;
}

function bizTs(payload: Uint8Array): { traceId: string } | null {
  const text = new TextDecoder().decode(payload);
  const sep = text.indexOf('\r\n\r\n');
  if (sep < 0 || !/\r\ncontent-type:[^\r]*json/i.test(text.slice(0, sep))) return null;
  try {
    const body = JSON.parse(text.slice(sep + 4)) as Record<string, unknown>;
    const id = body.txn_id ?? body.transaction_id ?? body.transactionId;
    return typeof id === 'string' ? { traceId: id } : null;
  } catch {
    return null;
  }
}

const ctx: ParseContext = { direction: 'egress', role: 'client', l4: 'tcp', localPort: 50000, remotePort: 7070, socketId: 1, bytes: 0, state: {} };

async function main(): Promise<void> {
  process.stdout.write(`plugin-call bench: ${N} messages per case, node ${process.version}\n`);
  const plugins = await loadPlugins({ paths: [join(root, 'plugins/tinyrpc'), join(root, 'plugins/biz-trace-id')], reloadIntervalMs: 0, metrics: new MetricsRegistry(), log: (l) => process.stderr.write(l + '\n') });
  const parser = plugins.parsers[0];
  const hook = plugins.httpHooks[0];

  const req = new Uint8Array(encodeRequest(42, 'getUser', Buffer.from('{"id":7}')));
  const resp = new Uint8Array(encodeResponse(42, 2, Buffer.from('user store unavailable')));
  const body = JSON.stringify({ amount: 12.5, txn_id: 'TX-2024-000042', user: 'a', items: [1, 2, 3] });
  const http = new TextEncoder().encode(`POST /api/pay HTTP/1.1\r\nHost: payments\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
  const httpMsg: L7Message = { l7Protocol: 'http1', msgType: 'request', requestType: 'POST', requestDomain: 'payments', requestResource: '/api/pay' };

  process.stdout.write('\ntinyrpc request (check + parse), 27 B:\n');
  const a = bench('built-in TS parser', () => tinyrpcTs(req));
  const b = bench('Wasm plugin via host (check + parse)', () => parser.check(req, ctx) && parser.parse(req, ctx));
  process.stdout.write(`  → plugin / built-in: ${(b / a).toFixed(1)}x\n`);
  process.stdout.write('tinyrpc error response (parse), 34 B:\n');
  const c = bench('built-in TS parser', () => tinyrpcTs(resp));
  const d = bench('Wasm plugin via host (parse only)', () => parser.parse(resp, ctx));
  process.stdout.write(`  → plugin / built-in: ${(d / c).toFixed(1)}x\n`);

  process.stdout.write(`HTTP request hook: txn id from a JSON body, ${http.length} B:\n`);
  const e = bench('TS (decode + JSON.parse)', () => bizTs(http));
  const f = bench('Wasm plugin via host (onHttpRequest)', () => hook.onHttpRequest(httpMsg, http, ctx));
  process.stdout.write(`  → plugin / built-in: ${(f / e).toFixed(1)}x\n`);

  process.stdout.write('Metering cost (tinyrpc parse, sandbox direct):\n');
  const manifest = parseManifest(JSON.parse(await readFile(join(root, 'plugins/tinyrpc/build/manifest.json'), 'utf8')));
  const wasm = await readFile(join(root, 'plugins/tinyrpc/build', manifest.module));
  const plain = await PluginSandbox.load(wasm, manifest, manifest.hooks, { meter: false });
  const metered = await PluginSandbox.load(wasm, manifest, manifest.hooks);
  const g = bench('unmetered', () => plain.parse(ctx, req));
  const h = bench('metered', () => metered.parse(ctx, req));
  process.stdout.write(`  → metering adds ${(h - g).toFixed(0)} ns/call (${(((h - g) / g) * 100).toFixed(0)}%); fuel used per call: ${metered.lastFuelUsed}\n`);
  const mh = await PluginSandbox.load(await readFile(join(root, 'plugins/biz-trace-id/build/biz-trace-id.wasm')), { memoryPages: 4, timeBudgetMs: 1, maxOutputBytes: 4096 }, ['http_request']);
  const ph = await PluginSandbox.load(await readFile(join(root, 'plugins/biz-trace-id/build/biz-trace-id.wasm')), { memoryPages: 4, timeBudgetMs: 1, maxOutputBytes: 4096 }, ['http_request'], { meter: false });
  const i = bench('unmetered (biz-trace-id hook)', () => ph.http('http_request', ctx, httpMsg, http));
  const j = bench('metered (biz-trace-id hook)', () => mh.http('http_request', ctx, httpMsg, http));
  process.stdout.write(`  → metering adds ${(j - i).toFixed(0)} ns/call (${(((j - i) / i) * 100).toFixed(0)}%); fuel used per call: ${mh.lastFuelUsed}\n`);

  if (!process.argv.includes('--no-runtime')) {
    process.stdout.write('AssemblyScript runtime (tinyrpc module size):\n');
    const tmp = await mkdtemp(join(tmpdir(), 'riptide-bench-'));
    for (const runtime of ['stub', 'incremental'] as const) {
      const r = await buildPlugin(join(root, 'plugins/tinyrpc'), { outDir: join(tmp, runtime), runtime });
      process.stdout.write(`  --runtime ${runtime.padEnd(12)} ${(await readFile(r.wasmPath)).length} bytes\n`);
    }
    await rm(tmp, { recursive: true, force: true });
  }
  plugins.close();
}

await main();

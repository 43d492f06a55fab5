/**
 * Readiness of the functions and the query (GET /readyz): 200 only when the polling runtime has
 * completed a poll and ClickHouse answers; 503 with each reason (JSON) otherwise. /healthz stays
 * liveness. Against embedded chDB, and a ClickHouse that fails or never answers.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFunctions } from '../../functions/runtime/functions-runtime.ts';
import type { Functions } from '../../functions/runtime/functions-runtime.ts';
import { LocalRuntime } from '../../functions/runtime/local-runtime.ts';
import { createQueryApp } from '../../functions/query/app.ts';
import type { ClickHouse } from '../../functions/storage/clickhouse.ts';
import { clickhousePing } from '../../functions/storage/ping.ts';
import { MemoryStore, testKeys } from './memory-store.ts';

let dir: string;
let fx: Functions;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'riptide-readiness-'));
  fx = await startFunctions({ dataDir: dir, adapter: 'local', pollMs: 50, kubernetes: 'off', rollupMs: 0, log: () => {} });
});
afterAll(async () => {
  await fx?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** A ClickHouse whose every query fails with `error`, or never answers when `error` is undefined. */
function brokenClickHouse(error?: string): ClickHouse {
  const query = (): Promise<never> => (error ? Promise.reject(new Error(`${error}\nstack`)) : new Promise<never>(() => {}));
  return { client: { query } as unknown as ClickHouse['client'], mode: 'server', close: async () => {} };
}

describe('polling runtime readiness', () => {
  it('is not ready before it polls, nor while its polls fail, and ready after one completes', async () => {
    const store = new MemoryStore();
    let failing = true;
    const list = store.list.bind(store);
    store.list = (p) => (failing ? Promise.reject(new Error('store down')) : list(p));
    const rt = new LocalRuntime({ process: () => Promise.reject(new Error('unused')), store, keys: testKeys, log: () => {} });
    expect(rt.readiness()).toBe('functions runtime is not polling the store');
    void rt.start();
    await new Promise((r) => setTimeout(r, 20));
    expect(rt.readiness()).toBe('functions runtime has not completed a poll of the store yet');
    failing = false;
    await rt.tick();
    expect(rt.readiness()).toBeNull();
    await rt.stop();
  });
});

describe('ClickHouse ping', () => {
  it('is null when ClickHouse answers', async () => {
    expect(await clickhousePing(fx.ch)()).toBeNull();
  });
  it('gives the first line of the error when a query fails', async () => {
    expect(await clickhousePing(brokenClickHouse('connect ECONNREFUSED 127.0.0.1:8123'))()).toBe('ClickHouse does not answer: connect ECONNREFUSED 127.0.0.1:8123');
  });
  it('gives up after its deadline when ClickHouse never answers, and remembers the answer briefly', async () => {
    const ping = clickhousePing(brokenClickHouse(), { timeoutMs: 100, cacheMs: 60_000 });
    const t0 = Date.now();
    expect(await ping()).toBe('ClickHouse does not answer within 100 ms');
    expect(Date.now() - t0).toBeLessThan(1000);
    const t1 = Date.now();
    expect(await ping()).toBe('ClickHouse does not answer within 100 ms');
    expect(Date.now() - t1).toBeLessThan(50);
  });
});

describe('GET /readyz', () => {
  it('on the functions app: 200 once the runtime has polled and ClickHouse answers', async () => {
    const before = await fx.app.request('/readyz');
    expect(before.status).toBe(503);
    expect(await before.json()).toEqual({ status: 'not ready', reasons: ['functions runtime is not polling the store'] });
    void fx.runtime!.start();
    const end = Date.now() + 10_000;
    let r = await fx.app.request('/readyz');
    while (r.status !== 200 && Date.now() < end) {
      await new Promise((res) => setTimeout(res, 50));
      r = await fx.app.request('/readyz');
    }
    expect(r.status).toBe(200);
    expect(await r.json()).toEqual({ status: 'ready' });
    expect((await fx.app.request('/healthz')).status).toBe(200);
    await fx.runtime!.stop();
  });

  it('on the query app: 200 when ClickHouse answers, 503 with the reason when not; no token needed', async () => {
    const ok = createQueryApp({ clickhouse: fx.ch, token: 's3cret' });
    const r = await ok.request('/readyz');
    expect(r.status).toBe(200);
    expect(await r.json()).toEqual({ status: 'ready' });
    const down = createQueryApp({ clickhouse: brokenClickHouse('Code: 516. Authentication failed'), token: 's3cret' });
    const d = await down.request('/readyz');
    expect(d.status).toBe(503);
    expect(await d.json()).toEqual({ status: 'not ready', reasons: ['ClickHouse does not answer: Code: 516. Authentication failed'] });
    // Liveness is not readiness: the process serves.
    expect(await (await down.request('/healthz')).json()).toEqual({ status: 'ok' });
  });

  it('on the query app: /healthz says degraded (200) with the reasons a host passes', async () => {
    const app = createQueryApp({ clickhouse: fx.ch, degraded: () => ['agent down: restarting'] });
    const r = await app.request('/healthz');
    expect(r.status).toBe(200);
    expect(await r.json()).toEqual({ status: 'degraded', reasons: ['agent down: restarting'] });
  });
});

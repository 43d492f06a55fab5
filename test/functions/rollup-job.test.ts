// The local function runtime keeps the service-map rollups of the last two hours current by itself.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startFunctions } from '../../functions/runtime/functions-runtime.ts';
import type { Functions } from '../../functions/runtime/functions-runtime.ts';
import { queryRows } from '../../functions/storage/clickhouse.ts';
import { insertSpans } from '../../functions/storage/span-store.ts';
import { requestSpans } from '../query/fixtures.ts';

let dir: string;
let fx: Functions;
const logs: string[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'riptide-rollup-job-'));
  fx = await startFunctions({ dataDir: dir, kubernetes: 'off', rollupMs: 200, log: (l) => logs.push(l) });
}, 120_000);

afterAll(async () => {
  await fx?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

it('rolls up settled minutes in the background, and again after a late write', async () => {
  const t0 = (Math.floor(Date.now() / 60e3) - 30) * 60e6;
  await insertSpans(fx.ch, [...requestSpans(1, t0), ...requestSpans(2, t0 + 60e6)]);
  const rolled = async (): Promise<Array<{ m: number; n: number }>> =>
    (await queryRows<{ m: number; n: number }>(fx.ch, 'SELECT toUInt32(minute) AS m, count() AS n FROM riptide.rollup_minutes GROUP BY m ORDER BY m')).map((r) => ({ m: Number(r.m), n: Number(r.n) }));
  const until = async (ok: (r: Array<{ m: number; n: number }>) => boolean): Promise<Array<{ m: number; n: number }>> => {
    const deadline = Date.now() + 20_000;
    for (;;) {
      const r = await rolled();
      if (ok(r) || Date.now() > deadline) return r;
      await new Promise((res) => setTimeout(res, 100));
    }
  };
  expect(await until((r) => r.length === 2)).toEqual([{ m: t0 / 1e6, n: 1 }, { m: t0 / 1e6 + 60, n: 1 }]);
  const edges = async (): Promise<number> => Number((await queryRows<{ n: number }>(fx.ch, `SELECT sum(requests) AS n FROM riptide.edge_minutes WHERE minute = toDateTime(${t0 / 1e6 + 60}, 'UTC') AND computed_at = (SELECT max(computed_at) FROM riptide.rollup_minutes WHERE minute = toDateTime(${t0 / 1e6 + 60}, 'UTC'))`))[0].n);
  const before = await edges();
  await insertSpans(fx.ch, requestSpans(3, t0 + 90e6));
  expect(await until((r) => r[1]?.n === 2)).toEqual([{ m: t0 / 1e6, n: 1 }, { m: t0 / 1e6 + 60, n: 2 }]);
  expect(await edges()).toBe(before + 12); // one more request: the client and server spans of its six hops
  expect(logs.filter((l) => l.includes('rollup failed'))).toEqual([]);
}, 60_000);

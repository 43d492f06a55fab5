// Service-map rollups (riptide.edge_minutes) against the spans themselves, on embedded chDB: the same
// map either way; computed once, recomputed after a late write to a minute, re-run spans counted once.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TagNames } from '../../functions/query/names.ts';
import { refreshRollups, serviceMap } from '../../functions/query/service-map.ts';
import type { ServiceMapEdge } from '../../functions/query/service-map.ts';
import { openClickHouse } from '../../functions/storage/clickhouse.ts';
import type { ClickHouse } from '../../functions/storage/clickhouse.ts';
import { migrate } from '../../functions/storage/migrations.ts';
import { insertSpans, insertTagNames } from '../../functions/storage/span-store.ts';
import { requestSpans, serviceTagRows } from './fixtures.ts';

let dir: string;
let ch: ClickHouse;
let names: TagNames;
// Whole minutes, an hour ago: settled.
const T0 = (Math.floor(Date.now() / 60e3) - 60) * 60e6;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'riptide-rollup-'));
  ch = await openClickHouse({ dataDir: dir });
  await migrate(ch);
  await insertTagNames(ch, serviceTagRows());
  names = new TagNames(ch);
  // Five requests in each of three minutes; every third fails.
  const rows = [];
  for (let k = 0; k < 15; k++) rows.push(...requestSpans(k + 1, T0 + Math.floor(k / 5) * 60e6 + (k % 5) * 13e6, { fail: k % 3 === 2 }));
  await insertSpans(ch, rows);
}, 120_000);

afterAll(async () => {
  await ch?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const key = (e: ServiceMapEdge): string => `${e.source} → ${e.target} ${e.protocol}`;
const red = (edges: ServiceMapEdge[]): Record<string, [number, number, number, number]> =>
  Object.fromEntries(edges.map((e) => [key(e), [e.requests, e.errors, e.p50_us, e.p99_us]]));

describe('service map rollups', () => {
  it('give the same map as the spans, and are computed once', async () => {
    // Ragged ends: 30 s into the first minute to 50 s into the third (requests at 0, 13, … 52 s).
    const [from, to] = [T0 + 30e6, T0 + 170e6];
    const raw = await serviceMap(ch, names, from, to, { rollups: false });
    expect(raw.sources).toEqual({ rolledMinutes: 0, computedMinutes: 0 });
    expect(raw.edges.find((e) => e.source === 'service-a' && e.target === 'service-b')).toMatchObject({ requests: 2 + 5 + 4 });
    const first = await serviceMap(ch, names, from, to);
    expect(first.sources).toEqual({ rolledMinutes: 1, computedMinutes: 1 });
    expect(red(first.edges)).toEqual(red(raw.edges));
    expect(first.nodes).toEqual(raw.nodes);
    const again = await serviceMap(ch, names, from, to);
    expect(again.sources).toEqual({ rolledMinutes: 1, computedMinutes: 0 });
    expect(red(again.edges)).toEqual(red(raw.edges));
  });

  it('recomputes a minute written to again, and counts re-run spans once', async () => {
    const [from, to] = [T0, T0 + 180e6];
    const before = await serviceMap(ch, names, from, to);
    expect(before.sources).toEqual({ rolledMinutes: 3, computedMinutes: 2 });
    // A late batch adds a request to the second minute; a re-run writes the first minute's spans
    // again with a higher version (ReplacingMergeTree keeps one).
    const late = requestSpans(99, T0 + 60e6 + 50e6, { fail: true });
    await insertSpans(ch, late);
    const rerun = requestSpans(1, T0, { fail: false }).map((r) => ({ ...r, _version: 2 }));
    await insertSpans(ch, rerun);
    const raw = await serviceMap(ch, names, from, to, { rollups: false });
    const after = await serviceMap(ch, names, from, to);
    expect(after.sources).toEqual({ rolledMinutes: 3, computedMinutes: 2 });
    expect(red(after.edges)).toEqual(red(raw.edges));
    const ab = (m: { edges: ServiceMapEdge[] }): ServiceMapEdge | undefined => m.edges.find((e) => e.source === 'service-a' && e.target === 'service-b');
    expect(ab(after)?.requests).toBe((ab(before)?.requests ?? 0) + 1);
    expect(ab(after)?.errors).toBe((ab(before)?.errors ?? 0) + 1);
  });

  it('falls back to the spans when it cannot write rollups (a read-only user), and says why', async () => {
    // A minute nobody has rolled up yet, then a client that may only read.
    await insertSpans(ch, requestSpans(200, T0 + 240e6 + 5e6));
    const readOnly: ClickHouse = {
      ...ch,
      client: new Proxy(ch.client, {
        get(target, prop) {
          if (prop === 'command' || prop === 'insert') return () => Promise.reject(new Error('Code: 164. readonly mode'));
          const v = Reflect.get(target, prop) as unknown;
          return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
        },
      }),
    };
    const [from, to] = [T0, T0 + 300e6];
    const m = await serviceMap(readOnly, names, from, to);
    expect(m.sources).toEqual({ rolledMinutes: 0, computedMinutes: 0, rollupError: 'Code: 164. readonly mode' });
    expect(red(m.edges)).toEqual(red((await serviceMap(ch, names, from, to, { rollups: false })).edges));
    await expect(refreshRollups(readOnly, from, to)).rejects.toThrow(/readonly/);
  });

  it('reads the minutes that have not settled from the spans', async () => {
    // As if it were 90 s after T0: with the default 120 s settle time no minute has settled yet.
    const now = T0 + 90e6;
    const m = await serviceMap(ch, names, T0, T0 + 180e6, { now: () => now / 1000 });
    expect(m.sources.rolledMinutes).toBe(0);
    const settledFirst = await serviceMap(ch, names, T0, T0 + 180e6, { now: () => now / 1000, settleMs: 30_000 });
    expect(settledFirst.sources.rolledMinutes).toBe(1);
    expect(red(settledFirst.edges)).toEqual(red(m.edges));
  });
});

/**
 * Plain SQL counts every span once: `SELECT count() FROM riptide.spans` over settled slots equals the
 * number of spans, with background merges stopped (so ReplacingMergeTree cannot collapse duplicates
 * behind the test's back) — whatever the delivery order, with responses pairing across slot
 * boundaries, batches processed twice, two replicas on the same batches, and an object that arrives
 * after its neighbour settled. Time is a test clock: objects "arrive" when their slot has ended.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Batch, ParsedMessage } from '../../agent/shipping/batch.ts';
import { openClickHouse, queryRows } from '../../functions/storage/clickhouse.ts';
import type { ClickHouse } from '../../functions/storage/clickhouse.ts';
import { migrate } from '../../functions/storage/migrations.ts';
import { BatchProcessor } from '../../functions/runtime/processor.ts';
import { LocalRuntime } from '../../functions/runtime/local-runtime.ts';
import { TagEncoder } from '../../functions/tag-encoder/tag-encoder.ts';
import { DenseTagIds } from '../../functions/tag-encoder/tag-ids.ts';
import { BASE_SLOT, SLOT_SECONDS, cutBatches, httpReq, httpResp, msg, proc } from './fixtures.ts';
import { decodeJson, encodeJson, MemoryStore, testKey, testKeys } from './memory-store.ts';

let dir: string;
let ch: ClickHouse;
let registry: DenseTagIds;

const DERIVED = ['spans', 'spans_recent', 'settled_slots', 'processed_slots', 'processed_batches', 'tag_names', 'tag_labels', 'span_writes'];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'riptide-exact-'));
  ch = await openClickHouse({ dataDir: dir });
  await migrate(ch, { ttlDays: 20000 });
  registry = await DenseTagIds.load(ch);
  // Every row inserted stays a row of its own: only what was written once counts once.
  await ch.client.command({ query: 'SYSTEM STOP MERGES riptide.spans' });
});
afterAll(async () => {
  await ch.close();
  rmSync(dir, { recursive: true, force: true });
});
beforeEach(async () => {
  const tables = new Set((await queryRows<{ name: string }>(ch, "SELECT name FROM system.tables WHERE database = 'riptide'")).map((t) => t.name));
  for (const t of DERIVED) if (tables.has(t)) await ch.client.command({ query: `TRUNCATE TABLE riptide.${t}` });
});

/** Start of slot k of the fixture, in unix ms. */
const slotMs = (k: number): number => (BASE_SLOT + k) * SLOT_SECONDS * 1000;

/**
 * curl → nginx on one host over three 5 s slots: 12 requests, two of them answered across a slot
 * boundary (request at 4.9 s, response at 5.15 s; 9.9 s → 10.2 s), plus one never answered: 13
 * requests seen by the client and by the server, 26 spans.
 */
const REQUESTS = 13;
function stream(agent = 'node-x'): Batch[] {
  const client = { socketId: 101, pid: 100, processName: 'curl', role: 'client' as const, localIp: '10.1.0.1', localPort: 50000, remoteIp: '10.1.0.2', remotePort: 80 };
  const server = { socketId: 202, pid: 200, processName: 'nginx', role: 'server' as const, localIp: '10.1.0.2', localPort: 80, remoteIp: '10.1.0.1', remotePort: 50000 };
  const at = [300, 1500, 2700, 3900, 4900, 6000, 7200, 8400, 9900, 11000, 12200, 13400, 14500];
  const msgs: ParsedMessage[] = [];
  at.forEach((t, i) => {
    const lat = t === 4900 ? 250 : t === 9900 ? 300 : 5;
    msgs.push(msg(client, t, 'egress', [httpReq(`/r/${i}`)], { tcpSeq: 1000 + i * 90, tid: 100 }));
    msgs.push(msg(server, t + 0.2, 'ingress', [httpReq(`/r/${i}`)], { tcpSeq: 1000 + i * 90, tid: 201 }));
    if (i === at.length - 1) return; // the last one is never answered
    msgs.push(msg(server, t + lat, 'egress', [httpResp(200)], { tcpSeq: 9000 + i * 700, tid: 201 }));
    msgs.push(msg(client, t + lat + 0.2, 'ingress', [httpResp(200)], { tcpSeq: 9000 + i * 700, tid: 100 }));
  });
  const out = [...cutBatches(agent, msgs, [proc(100, 'curl'), proc(200, 'nginx')], 'host-x').values()];
  expect(out.map((b) => b.slot - BASE_SLOT)).toEqual([0, 1, 2]);
  return out;
}

/** One replica: a processor on the test clock and the polling runtime around it. */
function replica(store: MemoryStore, clock: { now: number }, graceSeconds: number): { p: BatchProcessor; rt: LocalRuntime } {
  const p = new BatchProcessor({ ch, store, keys: testKeys, decode: decodeJson, log: () => {}, encoder: new TagEncoder({ ids: registry }), now: () => clock.now, settleGraceSeconds: graceSeconds });
  const rt = new LocalRuntime({
    process: (k) => p.processBatch(k),
    processMany: (ks) => p.processKeys(ks),
    settle: () => p.settleDue(),
    store,
    keys: testKeys,
    log: () => {},
  });
  return { p, rt };
}

async function put(store: MemoryStore, b: Batch): Promise<string> {
  const k = testKey(b);
  await store.put(k, encodeJson(b));
  return k;
}

interface Counts {
  rows: number;
  ids: number;
  final: number;
  deleted: number;
}

/** Plain count() (what a user types), distinct span ids, and what FINAL would make of it. */
async function counts(agent = 'node-x'): Promise<Counts> {
  const [plain] = await queryRows<{ rows: number; ids: number; deleted: number }>(
    ch,
    'SELECT count() AS rows, uniqExact(span_id) AS ids, countIf(_deleted = 1) AS deleted FROM riptide.spans WHERE agent_id = {a:String}',
    { a: agent },
  );
  const [fin] = await queryRows<{ n: number }>(ch, 'SELECT count() AS n FROM riptide.spans FINAL WHERE agent_id = {a:String} AND _deleted = 0', { a: agent });
  return { rows: Number(plain.rows), ids: Number(plain.ids), final: Number(fin.n), deleted: Number(plain.deleted) };
}

/** Every request once per side: resource → how many client and server rows name it. */
async function perRequest(agent = 'node-x'): Promise<Array<{ r: string; client: number; server: number }>> {
  return queryRows(
    ch,
    "SELECT request_resource AS r, countIf(side = 'client') AS client, countIf(side = 'server') AS server FROM riptide.spans WHERE agent_id = {a:String} GROUP BY r ORDER BY r",
    { a: agent },
  );
}

const everyRequestOnce = Array.from({ length: REQUESTS }, (_, i) => ({ r: `/r/${i}`, client: 1, server: 1 })).sort((a, b) => (a.r < b.r ? -1 : 1));
const exact: Counts = { rows: 2 * REQUESTS, ids: 2 * REQUESTS, final: 2 * REQUESTS, deleted: 0 };

describe('riptide.spans holds each span once (merges stopped)', () => {
  it('objects arriving as their slots end: plain count() equals the spans, also across slot boundaries', async () => {
    const [s0, s1, s2] = stream();
    const store = new MemoryStore();
    const clock = { now: 0 };
    const { rt } = replica(store, clock, 5);
    for (const [k, b] of [s0, s1, s2].entries()) {
      clock.now = slotMs(k + 1) + 500; // uploaded half a second after the slot ended
      await put(store, b);
      expect((await rt.tick()).failed).toBe(0);
    }
    clock.now = slotMs(3) + 120_000; // every window closed, and the longest wait for a later batch over
    await rt.tick();
    expect(await counts()).toEqual(exact);
    expect(await perRequest()).toEqual(everyRequestOnce);
    const cross = await queryRows<{ st: string; d: number }>(ch, "SELECT toString(pair_state) AS st, duration_us AS d FROM riptide.spans WHERE request_resource IN ('/r/4', '/r/8') AND side = 'client' ORDER BY start_time");
    expect(cross).toEqual([
      { st: 'paired', d: 250_200 },
      { st: 'paired', d: 300_200 },
    ]);
  });

  it('out of order and processed twice, one event at a time: same count, same rows as in order', async () => {
    const [s0, s1, s2] = stream();
    const store = new MemoryStore();
    const clock = { now: slotMs(3) + 500 };
    const { p } = replica(store, clock, 30);
    // Slot 1 first: its responses to slot 0's requests are response_only until slot 0 arrives.
    const keys: string[] = [];
    for (const b of [s1, s2, s0]) {
      keys.push(await put(store, b));
      await p.processBatch(keys[keys.length - 1]);
    }
    for (const k of [...keys, ...keys.reverse()]) await p.processBatch(k); // twice more
    expect((await counts()).rows).toBe(0); // nothing settled yet: the windows are open
    clock.now = slotMs(3) + 120_000;
    await p.settleDue();
    expect(await counts()).toEqual(exact);
    expect(await perRequest()).toEqual(everyRequestOnce);
    // Processing everything again after settling changes nothing.
    for (const k of keys) await p.processBatch(k);
    await p.processKeys(keys);
    await p.settleDue();
    expect(await counts()).toEqual(exact);
  });

  it('two replicas taking the same batches and settling at once write each span once', async () => {
    const [s0, s1, s2] = stream();
    const store = new MemoryStore();
    const clock = { now: slotMs(1) + 500 };
    const a = replica(store, clock, 5);
    const b = replica(store, clock, 5);
    const k0 = await put(store, s0);
    await a.p.processBatch(k0);
    clock.now = slotMs(2) + 500;
    const k1 = await put(store, s1);
    await Promise.all([a.p.processBatch(k1), b.p.processBatch(k1), b.p.processBatch(k0)]);
    clock.now = slotMs(3) + 500;
    const k2 = await put(store, s2);
    await b.p.processBatch(k2);
    clock.now = slotMs(3) + 120_000;
    await Promise.all([a.p.settleDue(), b.p.settleDue(), a.rt.tick(), b.rt.tick()]);
    expect(await counts()).toEqual(exact);
    expect(await perRequest()).toEqual(everyRequestOnce);
  });

  it('a replica that restarts before its slots settle: the ledger sweep settles them once', async () => {
    const [s0, s1, s2] = stream();
    const store = new MemoryStore();
    const clock = { now: slotMs(2) + 500 };
    const first = replica(store, clock, 5);
    for (const b of [s0, s1]) await first.p.processBatch(await put(store, b));
    clock.now = slotMs(3) + 500;
    await first.p.processBatch(await put(store, s2));
    // Slot 0's window is closed at this time: it settled; 1 and 2 wait in spans_recent.
    expect((await counts()).rows).toBeGreaterThan(0);
    expect((await counts()).rows).toBeLessThan(2 * REQUESTS);
    clock.now = slotMs(3) + 120_000; // past the longest wait: nothing says the agent went on
    const second = replica(store, clock, 5); // the first one is gone, with its memory
    await second.p.settleDue();
    expect(await counts()).toEqual(exact);
  });

  it('a slot whose window closed by the clock waits for a later batch while the agent lags (at most a minute)', async () => {
    const [s0, s1, s2] = stream();
    const store = new MemoryStore();
    const clock = { now: slotMs(1) + 500 };
    const { rt } = replica(store, clock, 5);
    await put(store, s0);
    await rt.tick();
    clock.now = slotMs(2) + 500;
    await put(store, s1);
    await rt.tick();
    clock.now = slotMs(3) + 25_000; // slot 0's window closed 20 s ago, but slot 2 has not come
    await rt.tick();
    expect((await counts()).rows).toBe(0);
    await put(store, s2);
    await rt.tick(); // slot 2 shows the agent went on: slot 0 settles, with slot 1 in its window
    const paired = await queryRows<{ st: string }>(ch, "SELECT toString(pair_state) AS st FROM riptide.spans WHERE request_resource = '/r/4'");
    expect(paired).toEqual([{ st: 'paired' }, { st: 'paired' }]);
    clock.now = slotMs(3) + 120_000;
    await rt.tick();
    expect(await counts()).toEqual(exact);
  });

  it('an object arriving after its neighbour settled: each span still once (the neighbour does not change)', async () => {
    const [s0, s1, s2] = stream();
    const store = new MemoryStore();
    const clock = { now: slotMs(1) + 500 };
    const { rt } = replica(store, clock, 1);
    await put(store, s0);
    await rt.tick();
    clock.now = slotMs(3) + 500; // slot 1 is late; slot 0's window closed meanwhile
    await put(store, s2);
    await rt.tick();
    clock.now = slotMs(3) + 1500;
    await put(store, s1);
    await rt.tick();
    clock.now = slotMs(3) + 120_000;
    await rt.tick();
    expect(await counts()).toEqual(exact);
    expect(await perRequest()).toEqual(everyRequestOnce);
    // /r/4 was settled in slot 0 before its response's slot arrived: a timeout, stored once.
    const late = await queryRows<{ side: string; st: string }>(ch, "SELECT toString(side) AS side, toString(pair_state) AS st FROM riptide.spans WHERE request_resource = '/r/4' ORDER BY side");
    expect(late).toEqual([
      { side: 'client', st: 'request_only' },
      { side: 'server', st: 'request_only' },
    ]);
  });
});

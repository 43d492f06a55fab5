/**
 * store → functions → chDB: batches in an object store, processed by BatchProcessor into
 * riptide.spans; re-processing and out-of-order delivery leave exactly the same rows; malformed
 * batches are quarantined and processing carries on. Batches arrive while their windows are open
 * (a test clock just after the stream, a long settle grace); a snapshot settles every slot first.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Batch, ParsedMessage } from '../../agent/shipping/batch.ts';
import { metrics } from '../../agent/metrics.ts';
import { openClickHouse, queryRows } from '../../functions/storage/clickhouse.ts';
import type { ClickHouse } from '../../functions/storage/clickhouse.ts';
import { migrate } from '../../functions/storage/migrations.ts';
import { BatchProcessor } from '../../functions/runtime/processor.ts';
import { createFunctionsApp } from '../../functions/runtime/http-adapter.ts';
import { TagEncoder } from '../../functions/tag-encoder/tag-encoder.ts';
import { DenseTagIds } from '../../functions/tag-encoder/tag-ids.ts';
import { BASE_SLOT, SLOT_SECONDS, cutBatches, httpReq, httpResp, msg, proc } from './fixtures.ts';
import { decodeJson, encodeJson, MemoryStore, testKey, testKeys } from './memory-store.ts';

let dir: string;
let ch: ClickHouse;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'riptide-e2e-'));
  ch = await openClickHouse({ dataDir: dir });
  await migrate(ch, { ttlDays: 20000 });
  registry = await DenseTagIds.load(ch);
});
afterAll(async () => {
  await ch.close();
  rmSync(dir, { recursive: true, force: true });
});

/** A client (curl) calling nginx on the same host, one request every 400 ms for 4 slots (20 s). */
function stream(): Batch[] {
  const client = { socketId: 1001, pid: 100, processName: 'curl', role: 'client' as const, localIp: '10.1.0.1', localPort: 50000, remoteIp: '10.1.0.2', remotePort: 80 };
  const server = { socketId: 2002, pid: 200, processName: 'nginx', role: 'server' as const, localIp: '10.1.0.2', localPort: 80, remoteIp: '10.1.0.1', remotePort: 50000 };
  const msgs: ParsedMessage[] = [];
  for (let i = 0; i < 50; i++) {
    const t = 150 + i * 400; // some requests land 150 ms before a slot boundary with a 300 ms answer
    const seq = 1000 + i * 90;
    const rseq = 9000 + i * 700;
    const lat = i % 7 === 0 ? 300 : 3;
    msgs.push(msg(client, t, 'egress', [httpReq(`/r/${i}`, { xRequestId: `x${i}` })], { tcpSeq: seq, tid: 100 }));
    msgs.push(msg(server, t + 0.2, 'ingress', [httpReq(`/r/${i}`, { xRequestId: `x${i}` })], { tcpSeq: seq, tid: 201, syscallTraceId: 5000 + i }));
    if (i !== 49) msgs.push(msg(server, t + lat, 'egress', [httpResp(i % 10 === 3 ? 500 : 200)], { tcpSeq: rseq, tid: 201, syscallTraceId: 5000 + i }));
    if (i !== 49) msgs.push(msg(client, t + lat + 0.2, 'ingress', [httpResp(i % 10 === 3 ? 500 : 200)], { tcpSeq: rseq, tid: 100 }));
  }
  return [...cutBatches('node-a', msgs, [proc(100, 'curl'), proc(200, 'nginx')], 'host-a').values()];
}

/** Just after the stream's last slot ended: every window still open (the grace is an hour). */
const LIVE_MS = (BASE_SLOT + 4) * SLOT_SECONDS * 1000 + 500;
const clock = { now: LIVE_MS };
let current: BatchProcessor | undefined;

/** Let every window close, settle, and read what plain SQL sees in riptide.spans. */
async function snapshot(): Promise<unknown[]> {
  clock.now = 1e15;
  await current?.settleDue();
  const [c] = await queryRows<{ rows: number; ids: number }>(ch, 'SELECT count() AS rows, uniqExact(span_id) AS ids FROM riptide.spans');
  expect(Number(c.rows)).toBe(Number(c.ids)); // each span once, before any merge
  return queryRows(ch, 'SELECT * FROM riptide.spans FINAL ORDER BY span_id');
}

let registry: DenseTagIds;

async function reset(): Promise<void> {
  // The id registry survives (as in production); only the derived tables are emptied.
  for (const t of ['spans', 'spans_recent', 'settled_slots', 'tag_names', 'tag_labels', 'processed_slots']) await ch.client.command({ query: `TRUNCATE TABLE riptide.${t}` });
  registry = await DenseTagIds.load(ch);
  clock.now = LIVE_MS;
}

function storeWith(batches: Batch[]): { store: MemoryStore; keys: string[]; p: BatchProcessor } {
  const store = new MemoryStore();
  const keys = batches.map((b) => {
    const k = testKey(b);
    void store.put(k, encodeJson(b));
    return k;
  });
  // Dense ids from the registry in ClickHouse, as `riptide functions` runs: a fresh registry per
  // processor stands for a restarted (or another) replica.
  const ids = registry;
  current = new BatchProcessor({ ch, store, keys: testKeys, decode: decodeJson, log: () => {}, encoder: new TagEncoder({ ids }), now: () => clock.now, settleGraceSeconds: 3600 });
  return { store, keys, p: current };
}

describe('store → functions → chDB', () => {
  let inOrder: unknown[] = [];

  it('writes every span of the stream with tags that resolve to names', async () => {
    const batches = stream();
    expect(batches.length).toBe(4);
    const { keys, p } = storeWith(batches);
    for (const k of keys) {
      const r = await p.processBatch(k);
      expect(r.status).toBe('processed');
    }
    inOrder = await snapshot();
    const stats = await queryRows<{ side: string; pair_state: string; n: number }>(ch, 'SELECT side, pair_state, count() AS n FROM riptide.spans FINAL GROUP BY side, pair_state ORDER BY side, pair_state');
    expect(stats).toEqual([
      { side: 'client', pair_state: 'paired', n: 49 },
      { side: 'client', pair_state: 'request_only', n: 1 },
      { side: 'server', pair_state: 'paired', n: 49 },
      { side: 'server', pair_state: 'request_only', n: 1 },
    ]);
    const named = await queryRows<{ service: string; host: string; process: string; n: number }>(
      ch,
      `SELECT sv.name AS service, h.name AS host, pr.name AS process, count() AS n
       FROM riptide.spans AS s FINAL
       JOIN (SELECT id, any(name) AS name FROM riptide.tag_names GROUP BY id) AS sv ON sv.id = s.service_id
       JOIN (SELECT id, any(name) AS name FROM riptide.tag_names GROUP BY id) AS h ON h.id = s.host_id
       JOIN (SELECT id, any(name) AS name FROM riptide.tag_names GROUP BY id) AS pr ON pr.id = s.process_id
       GROUP BY service, host, process ORDER BY service`,
    );
    const ids = await queryRows<{ m: number }>(ch, 'SELECT max(greatest(host_id, process_id, service_id)) AS m FROM riptide.spans');
    expect(ids[0].m).toBeLessThan(10); // dense ids, not hashes
    expect(named).toEqual([
      { service: 'curl', host: 'host-a', process: 'curl', n: 50 },
      { service: 'nginx', host: 'host-a', process: 'nginx', n: 50 },
    ]);
    const view = await queryRows<{ service: string; x_request_id: string; start_time_us: number }>(ch, "SELECT service, x_request_id, start_time_us FROM riptide.spans_view WHERE request_resource = '/r/7' AND side = 'server'");
    expect(view).toEqual([{ service: 'nginx', x_request_id: 'x7', start_time_us: 1700000000000000 + 150_000 + 7 * 400_000 + 200 }]);
  });

  it('re-processing and any delivery order leave exactly the same rows', async () => {
    const batches = stream();
    // Reverse order, each slot before its predecessor exists, then everything twice more.
    await reset();
    const { store, keys, p } = storeWith([]);
    for (const b of [...batches].reverse()) {
      const k = testKey(b);
      await store.put(k, encodeJson(b));
      await p.processBatch(k);
    }
    expect(await snapshot()).toEqual(inOrder);
    for (const k of [...keys, ...(await store.list('batches/'))]) await p.processBatch(k);
    expect(await snapshot()).toEqual(inOrder);
    // A shuffled order with gaps filled late (slot 2, 0, 3, 1).
    await reset();
    const s2 = storeWith([]);
    for (const i of [2, 0, 3, 1]) {
      const k = testKey(batches[i]);
      await s2.store.put(k, encodeJson(batches[i]));
      await s2.p.processBatch(k);
    }
    expect(await snapshot()).toEqual(inOrder);
    // Many keys at once (a poll, a catch-up): each affected slot built once, same rows.
    await reset();
    const s3 = storeWith([]);
    for (const i of [3, 1, 0, 2]) await s3.store.put(testKey(batches[i]), encodeJson(batches[i]));
    const many = await s3.p.processKeys([3, 1, 0, 2].map((i) => testKey(batches[i])));
    expect(many.map((x) => x.status)).toEqual(['processed', 'processed', 'processed', 'processed']);
    expect(await snapshot()).toEqual(inOrder);
    // Nothing a reader can see differs; the merged table holds no duplicate either.
    await ch.client.command({ query: 'OPTIMIZE TABLE riptide.spans FINAL' });
    const live = await queryRows<{ n: number }>(ch, 'SELECT count() AS n FROM riptide.spans WHERE _deleted = 0');
    expect(live[0].n).toBe(inOrder.length);
  });

  it('with 1 s slots, the window spans enough slots to pair a 2.5 s request, in any delivery order', async () => {
    await reset();
    const c = { socketId: 31, pid: 100, processName: 'curl', role: 'client' as const };
    const msgs = [msg(c, 800, 'egress', [httpReq('/slow')], { tcpSeq: 1 }), msg(c, 3300, 'ingress', [httpResp(200)], { tcpSeq: 2 }), msg(c, 3400, 'egress', [httpReq('/fast')], { tcpSeq: 3 }), msg(c, 3401, 'ingress', [httpResp(204)], { tcpSeq: 4 })];
    const one = [...cutBatches('node-1s', msgs, [proc(100, 'curl')], 'host-1s', 1).values()];
    expect(one.map((b) => b.slot - one[0].slot)).toEqual([0, 3]); // two empty slots between
    const rows = async () => queryRows<{ r: string; st: string; d: number }>(ch, "SELECT request_resource AS r, toString(pair_state) AS st, duration_us AS d FROM riptide.spans FINAL WHERE agent_id = 'node-1s' ORDER BY start_time");
    for (const order of [[0, 1], [1, 0]]) {
      await reset();
      const { store, p } = storeWith([]);
      for (const i of order) {
        await store.put(testKey(one[i]), encodeJson(one[i]));
        await p.processBatch(testKey(one[i]));
      }
      await snapshot();
      expect(await rows()).toEqual([
        { r: '/slow', st: 'paired', d: 2_500_000 },
        { r: '/fast', st: 'paired', d: 1000 },
      ]);
    }
  });

  it('quarantines a malformed batch with a reason and carries on', async () => {
    await reset();
    const batches = stream();
    const { store, keys, p } = storeWith(batches);
    const bad = testKeys.slotPrefix('node-a', BASE_SLOT + 1, 5) + '0001.json';
    await store.put(bad, new TextEncoder().encode('{"not": "a batch"'));
    const before = metrics.counter('riptide_functions_dropped_total', '').get({ reason: 'quarantined' });
    const beforeMalformed = metrics.counter('riptide_functions_quarantined_total', '').get({ reason: 'malformed' });
    const r = await p.processBatch(bad);
    expect(r.status).toBe('quarantined');
    expect(await store.list(bad)).toEqual([]);
    expect(await store.list('quarantine/')).toEqual([`quarantine/${bad}`, `quarantine/${bad}.reason.json`]);
    const note = JSON.parse(new TextDecoder().decode(await store.get(`quarantine/${bad}.reason.json`))) as { key: string; reason: string; error: string };
    expect(note.key).toBe(bad);
    expect(note.reason).toBe('malformed');
    expect(metrics.counter('riptide_functions_dropped_total', '').get({ reason: 'quarantined' })).toBe(before + 1);
    // On the functions' /metrics, by reason.
    const app = createFunctionsApp({ process: (k) => p.processBatch(k), ch });
    const text = await (await app.request('/metrics')).text();
    expect(text).toContain(`riptide_functions_quarantined_total{reason="malformed"} ${beforeMalformed + 1}`);
    expect(text).toContain(`riptide_functions_dropped_total{reason="quarantined"} ${before + 1}`);
    for (const k of keys) expect((await p.processBatch(k)).status).toBe('processed');
    expect(await snapshot()).toEqual(inOrder);
  });
});

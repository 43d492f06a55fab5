/**
 * The freshest spans, before their slots settle, through the query API: each span once, no
 * superseded version (a response_only row a later neighbour paired), in span search, Jaeger's
 * services and operations, traces and the service map — and the same answers after the slots
 * settled into riptide.spans. The stream is dated now (spans_recent keeps an hour); the
 * processor's clock decides when windows close.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Batch, ParsedMessage } from '../../agent/shipping/batch.ts';
import { createQueryApp } from '../../functions/query/app.ts';
import type { SpanJson } from '../../functions/query/span.ts';
import { BatchProcessor } from '../../functions/runtime/processor.ts';
import { openClickHouse, queryRows } from '../../functions/storage/clickhouse.ts';
import type { ClickHouse } from '../../functions/storage/clickhouse.ts';
import { migrate } from '../../functions/storage/migrations.ts';
import { liveSpans } from '../../functions/storage/span-store.ts';
import { TagEncoder } from '../../functions/tag-encoder/tag-encoder.ts';
import { DenseTagIds } from '../../functions/tag-encoder/tag-ids.ts';
import { cutBatches, httpReq, httpResp, msg, proc } from '../functions/fixtures.ts';
import { decodeJson, encodeJson, MemoryStore, testKey, testKeys } from '../functions/memory-store.ts';

let dir: string;
let ch: ClickHouse;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'riptide-live-'));
  ch = await openClickHouse({ dataDir: dir });
  await migrate(ch);
});
afterAll(async () => {
  await ch.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Three 5 s slots ending before now; 6 requests, one answered across the slot 0 → 1 boundary. */
const BASE_MS = Math.floor(Date.now() / 5000) * 5000 - 15_000;
function stream(): Batch[] {
  const client = { socketId: 11, pid: 100, processName: 'shop', role: 'client' as const, localIp: '10.2.0.1', localPort: 51000, remoteIp: '10.2.0.2', remotePort: 8080 };
  const server = { socketId: 22, pid: 200, processName: 'pay', role: 'server' as const, localIp: '10.2.0.2', localPort: 8080, remoteIp: '10.2.0.1', remotePort: 51000 };
  const m = (sock: typeof client | typeof server, ms: number, dir: 'egress' | 'ingress', l7: ParsedMessage['l7'], seq: number): ParsedMessage => {
    const ts = BigInt(BASE_MS + Math.floor(ms)) * 1_000_000n + BigInt(Math.round((ms % 1) * 1e6));
    return msg(sock, 0, dir, l7, { tsNs: ts, enterNs: ts, exitNs: ts + 1000n, tcpSeq: seq, tid: sock.pid });
  };
  const msgs: ParsedMessage[] = [];
  [1000, 4900, 6000, 8000, 11000, 13000].forEach((t, i) => {
    const lat = t === 4900 ? 300 : 4;
    msgs.push(m(client, t, 'egress', [httpReq(`/pay/${i}`)], 100 + i), m(server, t + 0.2, 'ingress', [httpReq(`/pay/${i}`)], 100 + i));
    msgs.push(m(server, t + lat, 'egress', [httpResp(200)], 900 + i), m(client, t + lat + 0.2, 'ingress', [httpResp(200)], 900 + i));
  });
  const out = [...cutBatches('node-live', msgs, [proc(100, 'shop'), proc(200, 'pay')], 'host-live').values()];
  expect(out).toHaveLength(3);
  return out;
}

describe('query API over unsettled and settled slots', () => {
  it('shows every fresh span once, and the same after the slots settle', async () => {
    const [s0, s1, s2] = stream();
    const store = new MemoryStore();
    const clock = { now: BASE_MS + 15_500 };
    const ids = await DenseTagIds.load(ch);
    const p = new BatchProcessor({ ch, store, keys: testKeys, decode: decodeJson, log: () => {}, encoder: new TagEncoder({ ids }), now: () => clock.now, settleGraceSeconds: 3600 });
    // Slot 1 before slot 0: its answer to slot 0's request is response_only until slot 0 comes.
    for (const b of [s1, s0, s2, s1]) {
      await store.put(testKey(b), encodeJson(b));
      await p.processBatch(testKey(b));
    }
    const superseded = await queryRows<{ n: number }>(ch, "SELECT count() AS n FROM riptide.spans_recent WHERE pair_state = 'response_only'");
    expect(Number(superseded[0].n)).toBeGreaterThan(0); // written, then tombstoned: what must not show

    const app = createQueryApp({ clickhouse: ch });
    const get = async <T>(path: string): Promise<T> => {
      const res = await app.request(path);
      expect(res.status, path).toBe(200);
      return (await res.json()) as T;
    };
    const start = BASE_MS / 1000 - 10;
    const view = async () => {
      const { spans } = await get<{ spans: SpanJson[] }>(`/api/v1/spans?start=${start}&limit=1000`);
      const ops = await get<{ data: string[] }>('/api/services/pay/operations');
      const services = await get<{ data: string[] }>('/api/services');
      const map = await get<{ edges: Array<{ source: string; target: string; requests: number }> }>(`/api/v1/service-map?start=${start}`);
      const cross = spans.find((s) => s.side === 'client' && s.request_resource === '/pay/1');
      const trace = cross ? await get<{ spans: SpanJson[] }>(`/api/v1/traces/${cross.span_id}`) : undefined;
      const [live] = await queryRows<{ n: number }>(ch, `SELECT count() AS n FROM ${liveSpans()} WHERE agent_id = 'node-live'`);
      return {
        spans: spans.length,
        unique: new Set(spans.map((s) => s.span_id)).size,
        states: [...new Set(spans.map((s) => s.pair_state))],
        ops: ops.data,
        services: services.data,
        edges: map.edges.map((e) => `${e.source}->${e.target}:${e.requests}`),
        trace: trace?.spans.map((s) => `${s.side} ${s.request_resource} ${s.pair_state}`).sort(),
        live: Number(live.n),
      };
    };
    const expected = {
      spans: 12,
      unique: 12,
      states: ['paired'],
      ops: [0, 1, 2, 3, 4, 5].map((i) => `GET /pay/${i}`),
      services: ['pay', 'shop'],
      edges: ['shop->pay:6'],
      trace: ['client /pay/1 paired', 'server /pay/1 paired'],
      live: 12,
    };
    const fresh = await view();
    expect(fresh).toEqual(expected);
    expect(Number((await queryRows<{ n: number }>(ch, 'SELECT count() AS n FROM riptide.spans'))[0].n)).toBe(0); // nothing settled yet

    clock.now = BASE_MS + 2 * 3_600_000; // past every window and its hour of grace
    expect(await p.settleDue()).toBe(3);
    expect(Number((await queryRows<{ n: number }>(ch, 'SELECT count() AS n FROM riptide.spans'))[0].n)).toBe(12);
    expect(await view()).toEqual(expected);
  });
});

// OTLP ingest and captured (eBPF) spans go through one tag encoder and one storage writer: an OTLP
// span and a captured span of the same service carry the same service id (and host id) — sharing
// the writer as `riptide up` does, and as separate writers (`riptide functions` + `riptide query`)
// in either order, through the id registry in ClickHouse. Real chDB, the real query app.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createQueryApp } from '../../functions/query/app.ts';
import { BatchProcessor } from '../../functions/runtime/processor.ts';
import { openClickHouse, queryRows } from '../../functions/storage/clickhouse.ts';
import type { ClickHouse } from '../../functions/storage/clickhouse.ts';
import { migrate } from '../../functions/storage/migrations.ts';
import type { SpanWriter } from '../../functions/storage/span-writer.ts';
import { TagEncoder } from '../../functions/tag-encoder/tag-encoder.ts';
import { MetadataIndex } from '../../functions/tag-encoder/metadata.ts';
import { DenseTagIds, STRIPE_SIZE } from '../../functions/tag-encoder/tag-ids.ts';
import { tagId } from '../../functions/tag-encoder/tag-id.ts';
import { cutBatches, httpReq, httpResp, msg, proc } from '../functions/fixtures.ts';
import { MemoryStore, decodeJson, encodeJson, testKey, testKeys } from '../functions/memory-store.ts';

let dir: string;
let ch: ClickHouse;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'riptide-otlp-tags-'));
  ch = await openClickHouse({ dataDir: dir });
  await migrate(ch, { ttlDays: 20000 });
});
afterAll(async () => {
  await ch.close();
  rmSync(dir, { recursive: true, force: true });
});
beforeEach(async () => {
  for (const t of ['spans', 'spans_recent', 'settled_slots', 'processed_slots', 'tag_names', 'tag_labels', 'tag_ids']) await ch.client.command({ query: `TRUNCATE TABLE riptide.${t}` });
});

/** The functions: a dense registry loaded from ClickHouse now, as `riptide functions` starts. */
async function functions(source?: MetadataIndex): Promise<BatchProcessor> {
  const ids = await DenseTagIds.load(ch);
  return new BatchProcessor({ ch, store: new MemoryStore(), keys: testKeys, decode: decodeJson, encoder: new TagEncoder({ ids, source }), log: () => {}, now: () => 1e15 });
}

/** `checkout` (pid 200, in container c0ffee) on host node-1 answers one captured HTTP request; settled into riptide.spans. */
async function capture(p: BatchProcessor): Promise<void> {
  const server = { socketId: 2002, pid: 200, processName: 'checkout', role: 'server' as const, localIp: '10.1.0.2', localPort: 80, remoteIp: '10.1.0.1', remotePort: 50000 };
  const batches = [...cutBatches('node-1', [msg(server, 100, 'ingress', [httpReq('/pay')], { tcpSeq: 10 }), msg(server, 103, 'egress', [httpResp(200)], { tcpSeq: 90 })], [proc(200, 'checkout', 'c0ffee')], 'node-1').values()];
  const store = (p as unknown as { o: { store: MemoryStore } }).o.store;
  for (const b of batches) await store.put(testKey(b), encodeJson(b));
  for (const b of batches) expect((await p.processBatch(testKey(b))).status).toBe('processed');
  await p.settleDue();
}

/** One OTLP/JSON span of service `checkout` on host node-1, through the query app's POST /v1/traces. */
async function otlp(writer?: SpanWriter, namespace?: string): Promise<void> {
  const app = createQueryApp({ clickhouse: ch, writer });
  const now = BigInt(Date.now()) * 1_000_000n;
  const attr = (key: string, v: string) => ({ key, value: { stringValue: v } });
  const body = {
    resourceSpans: [
      {
        resource: { attributes: [attr('service.name', 'checkout'), attr('host.name', 'node-1'), ...(namespace ? [attr('k8s.namespace.name', namespace)] : [])] },
        scopeSpans: [{ spans: [{ traceId: 'ab'.repeat(16), spanId: 'cd'.repeat(8), name: 'POST /pay', kind: 2, startTimeUnixNano: String(now - 5_000_000n), endTimeUnixNano: String(now) }] }],
      },
    ],
  };
  const r = await app.request('/v1/traces', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  expect(r.status).toBe(200);
}

/** service_id and host_id of each signal source's spans, and how many distinct ids each took. */
async function ids(): Promise<Record<string, { service_id: number; host_id: number; n: number }>> {
  const rows = await queryRows<{ signal_source: string; service_id: number; host_id: number; services: number; n: number }>(
    ch,
    'SELECT signal_source, any(s.service_id) AS service_id, any(s.host_id) AS host_id, uniqExact(s.service_id) AS services, count() AS n FROM riptide.spans AS s FINAL GROUP BY signal_source ORDER BY signal_source',
  );
  const out: Record<string, { service_id: number; host_id: number; n: number }> = {};
  for (const r of rows) {
    expect(Number(r.services)).toBe(1);
    out[r.signal_source] = { service_id: Number(r.service_id), host_id: Number(r.host_id), n: Number(r.n) };
  }
  return out;
}

/** The one name every id of the service resolves to, and how many dictionary ids it has. */
async function serviceNames(): Promise<Array<{ name: string; ids: number }>> {
  return queryRows(ch, "SELECT name, uniqExact(id) AS ids FROM riptide.tag_names WHERE kind = 'service' GROUP BY name ORDER BY name");
}

describe('OTLP and captured spans: one tag encoder, one writer, one id per service', () => {
  it('sharing the functions\' writer (riptide up): the same dense service and host ids', async () => {
    const p = await functions();
    await capture(p);
    await otlp(p.writer);
    const got = await ids();
    expect(Object.keys(got)).toEqual(['ebpf', 'otel']);
    expect(got.otel.service_id).toBe(got.ebpf.service_id);
    expect(got.otel.host_id).toBe(got.ebpf.host_id);
    expect(got.ebpf.service_id).toBeLessThan(STRIPE_SIZE); // dense, stripe 0: not a hash
    expect(await serviceNames()).toEqual([{ name: 'checkout', ids: 1 }]);
  });

  it('the query server on its own after the functions: takes the id the functions claimed', async () => {
    const p = await functions();
    await capture(p);
    await otlp(); // createQueryApp's own writer, as `riptide query` runs it
    const got = await ids();
    expect(got.otel.service_id).toBe(got.ebpf.service_id);
    expect(got.otel.host_id).toBe(got.ebpf.host_id);
    expect(await serviceNames()).toEqual([{ name: 'checkout', ids: 1 }]);
  });

  it('OTLP first, the functions (registry loaded before) after: the functions take the query server\'s id', async () => {
    const p = await functions(); // its registry knows nothing of what OTLP will claim
    await otlp();
    await capture(p);
    const got = await ids();
    expect(got.ebpf.service_id).toBe(got.otel.service_id);
    expect(got.ebpf.host_id).toBe(got.otel.host_id);
    expect(got.otel.service_id).toBe(tagId('service', 'checkout')); // minted by the query server: a hash, no stripe
    expect(await serviceNames()).toEqual([{ name: 'checkout', ids: 1 }]);
    // And the registry says so to a replica that starts now.
    const again = await DenseTagIds.load(ch);
    expect(again.id('service', 'checkout')).toBe(got.otel.service_id);
  });

  it('in Kubernetes: the pod\'s workload and the resource\'s k8s.namespace.name + service.name are one service', async () => {
    const index = new MetadataIndex();
    index.upsertPod({ uid: 'u1', name: 'checkout-7d9f8c6b5-x2x4q', namespace: 'shop', nodeName: '', ips: ['10.1.0.2'], containerIds: ['c0ffee'], labels: {}, annotations: {}, ownerKind: 'ReplicaSet', ownerName: 'checkout-7d9f8c6b5', hostNetwork: false });
    const p = await functions(index);
    await capture(p);
    await otlp(undefined, 'shop');
    const got = await ids();
    expect(got.otel.service_id).toBe(got.ebpf.service_id);
    expect(await queryRows(ch, "SELECT key, name FROM riptide.tag_names WHERE kind = 'service' GROUP BY key, name")).toEqual([{ key: 'shop/checkout', name: 'checkout' }]);
  });
});

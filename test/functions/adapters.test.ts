/**
 * The three adapters around the same processor, against embedded chDB: the polling runtime with
 * its ledger, the HTTP (CloudEvents / S3 notification) app, and the Lambda S3 handler.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Batch } from '../../agent/shipping/batch.ts';
import { openClickHouse, queryRows } from '../../functions/storage/clickhouse.ts';
import type { ClickHouse } from '../../functions/storage/clickhouse.ts';
import { migrate } from '../../functions/storage/migrations.ts';
import { BatchProcessor } from '../../functions/runtime/processor.ts';
import { ClickHouseLedger, LocalRuntime } from '../../functions/runtime/local-runtime.ts';
import { createFunctionsApp } from '../../functions/runtime/http-adapter.ts';
import { createS3Handler } from '../../functions/runtime/lambda-adapter.ts';
import { tagId } from '../../functions/tag-encoder/tag-id.ts';
import { cutBatches, httpReq, httpResp, msg, proc } from './fixtures.ts';
import { decodeJson, encodeJson, MemoryStore, testKey, testKeys } from './memory-store.ts';

let dir: string;
let ch: ClickHouse;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'riptide-adapters-'));
  ch = await openClickHouse({ dataDir: dir });
  await migrate(ch, { ttlDays: 20000 });
});
afterAll(async () => {
  await ch.close();
  rmSync(dir, { recursive: true, force: true });
});
beforeEach(async () => {
  for (const t of ['spans', 'spans_recent', 'settled_slots', 'tag_names', 'tag_labels', 'processed_slots', 'processed_batches', 'custom_tags']) await ch.client.command({ query: `TRUNCATE TABLE riptide.${t}` });
});

function batches(agent = 'node-b'): Batch[] {
  const c = { socketId: 7, pid: 70, processName: 'checkout', role: 'client' as const, remoteIp: '10.0.0.3', remotePort: 5432 };
  const msgs = [];
  for (let i = 0; i < 12; i++) {
    msgs.push(msg(c, 100 + i * 1000, 'egress', [httpReq(`/p/${i}`)], { tcpSeq: i * 10 }));
    msgs.push(msg(c, 102 + i * 1000, 'ingress', [httpResp(200)], { tcpSeq: i * 20 }));
  }
  return [...cutBatches(agent, msgs, [proc(70, 'checkout')]).values()];
}

async function spanCount(): Promise<number> {
  return (await queryRows<{ n: number }>(ch, 'SELECT count() AS n FROM riptide.spans FINAL'))[0].n;
}

function setup() {
  const store = new MemoryStore();
  const processor = new BatchProcessor({ ch, store, keys: testKeys, decode: decodeJson, log: () => {} });
  return { store, processor, process: (k: string) => processor.processBatch(k) };
}

describe('polling runtime', () => {
  it('processes new objects once, survives a restart through its ledger, quarantines and carries on', async () => {
    const { store, process } = setup();
    const bs = batches();
    for (const b of bs) await store.put(testKey(b), encodeJson(b));
    const logs: string[] = [];
    const rt = new LocalRuntime({ process, store, keys: testKeys, ledger: new ClickHouseLedger(ch), log: (l) => logs.push(l) });
    expect(await rt.tick()).toEqual({ seen: 3, processed: 3, quarantined: 0, failed: 0, settled: 0 });
    expect(await spanCount()).toBe(12);
    expect(await rt.tick()).toEqual({ seen: 0, processed: 0, quarantined: 0, failed: 0, settled: 0 });

    const restarted = new LocalRuntime({ process, store, keys: testKeys, ledger: new ClickHouseLedger(ch), log: (l) => logs.push(l) });
    await store.put('batches/node-b/000340000009/0000.json', new TextEncoder().encode('garbage'));
    const extra = batches('node-c')[0];
    await store.put(testKey(extra), encodeJson(extra));
    expect(await restarted.tick()).toEqual({ seen: 2, processed: 1, quarantined: 1, failed: 0, settled: 0 });
    expect(await store.list('quarantine/')).toHaveLength(2);
    expect(await spanCount()).toBe(12 + 5);
  });

  it('takes a whole poll at once through processKeys', async () => {
    const { store, processor } = setup();
    const bs = batches('node-many');
    for (const b of bs) await store.put(testKey(b), encodeJson(b));
    await store.put('batches/node-many/000340000007/0000.json', new TextEncoder().encode('bad'));
    const rt = new LocalRuntime({ process: (k) => processor.processBatch(k), processMany: (ks) => processor.processKeys(ks), store, keys: testKeys, log: () => {} });
    expect(await rt.tick()).toEqual({ seen: 4, processed: 3, quarantined: 1, failed: 0, settled: 0 });
    expect(await spanCount()).toBe(12);
  });

  it('retries on the next poll when ClickHouse fails, without losing the batch', async () => {
    const { store, processor } = setup();
    const b = batches()[0];
    await store.put(testKey(b), encodeJson(b));
    let fail = true;
    const rt = new LocalRuntime({ process: async (k) => (fail ? Promise.reject(new Error('ClickHouse unavailable')) : processor.processBatch(k)), store, keys: testKeys, log: () => {} });
    expect((await rt.tick()).failed).toBe(1);
    fail = false;
    expect(await rt.tick()).toEqual({ seen: 1, processed: 1, quarantined: 0, failed: 0, settled: 0 });
    expect(await spanCount()).toBe(5);
  });

  it('polls on its own once started and reports health', async () => {
    const { store, process } = setup();
    const rt = new LocalRuntime({ process, store, keys: testKeys, intervalMs: 50, log: () => {} });
    await rt.start();
    const b = batches()[1];
    await store.put(testKey(b), encodeJson(b));
    const end = Date.now() + 5000;
    while ((await spanCount()) < 5 && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
    expect(rt.healthy()).toBe(true);
    await rt.stop();
    expect(await spanCount()).toBe(5);
  });
});

describe('HTTP adapter (CloudEvents, S3 notifications)', () => {
  it('takes structured, batched and binary CloudEvents and S3-style bodies', async () => {
    const { store, process } = setup();
    const bs = batches();
    for (const b of bs) await store.put(testKey(b), encodeJson(b));
    const app = createFunctionsApp({ process, ch, filter: { prefix: 'riptide' } });
    const structured = await app.request('/events', {
      method: 'POST',
      headers: { 'content-type': 'application/cloudevents+json' },
      body: JSON.stringify({ specversion: '1.0', id: '1', source: '//storage.googleapis.com/projects/_/buckets/b', type: 'google.cloud.storage.object.v1.finalized', data: { bucket: 'b', name: `riptide/${testKey(bs[0])}` } }),
    });
    expect(structured.status).toBe(200);
    expect(((await structured.json()) as { results: Array<{ status: string }> }).results.map((r) => r.status)).toEqual(['processed']);
    const batch = await app.request('/events', {
      method: 'POST',
      headers: { 'content-type': 'application/cloudevents-batch+json' },
      body: JSON.stringify([{ specversion: '1.0', id: '2', source: 'minio', type: 'com.example.object.created', subject: `riptide/${testKey(bs[1])}` }]),
    });
    expect(batch.status).toBe(200);
    const binary = await app.request('/events', {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'ce-specversion': '1.0', 'ce-id': '3', 'ce-source': 'aws:s3', 'ce-type': 'aws.s3.ObjectCreated:Put' },
      body: JSON.stringify({ key: `riptide/${testKey(bs[2])}` }),
    });
    expect(binary.status).toBe(200);
    expect(await spanCount()).toBe(12);
    const s3 = await app.request('/events', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ Records: [{ eventName: 'ObjectCreated:Put', s3: { bucket: { name: 'b' }, object: { key: `riptide/${testKey(bs[0])}` } } }] }) });
    expect(s3.status).toBe(200);
    expect(await spanCount()).toBe(12);
    const other = await app.request('/events', { method: 'POST', headers: { 'content-type': 'application/cloudevents+json' }, body: JSON.stringify({ specversion: '1.0', id: '4', source: 's', type: 'object.deleted', subject: 'x' }) });
    expect(((await other.json()) as { results: unknown[] }).results).toEqual([]);
    expect((await app.request('/events', { method: 'POST', body: 'nope' })).status).toBe(400);
  });

  it('answers 500 so the source retries when processing fails; serves /healthz and /metrics', async () => {
    const app = createFunctionsApp({ process: () => Promise.reject(new Error('ClickHouse down')), ch });
    const r = await app.request('/events', { method: 'POST', headers: { 'content-type': 'application/cloudevents+json' }, body: JSON.stringify({ specversion: '1.0', id: '1', source: 's', type: 'ObjectCreated', subject: 'batches/a/000000000001/0000.json' }) });
    expect(r.status).toBe(500);
    expect((await app.request('/healthz')).status).toBe(200);
    const m = await (await app.request('/metrics')).text();
    expect(m).toMatch(/riptide_functions_events_total\{outcome="error"\} 1/);
    expect(m).toMatch(/# TYPE riptide_functions_dropped_total counter/);
  });

  it('injects custom tags for a service without rewriting spans', async () => {
    const { store, process } = setup();
    const b = batches()[0];
    await store.put(testKey(b), encodeJson(b));
    await process(testKey(b));
    const app = createFunctionsApp({ process, ch });
    const put = await app.request('/api/v1/custom-tags', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ kind: 'service', key: 'checkout', tags: { owner: 'team-pay', tier: '1' } }) });
    expect(put.status).toBe(200);
    expect(await put.json()).toEqual({ id: tagId('service', 'checkout'), kind: 'service', key: 'checkout', tags: { owner: 'team-pay', tier: '1' } });
    await app.request('/api/v1/custom-tags', { method: 'POST', body: JSON.stringify({ kind: 'service', key: 'checkout', tags: { tier: null } }) });
    const got = await app.request('/api/v1/custom-tags?kind=service&key=checkout');
    expect(((await got.json()) as { tags: unknown }).tags).toEqual({ owner: 'team-pay' });
    const joined = await queryRows<{ owner: string; n: number }>(ch, "SELECT t.value AS owner, count() AS n FROM riptide.spans AS s FINAL JOIN (SELECT id, value FROM riptide.custom_tags FINAL WHERE key = 'owner') AS t ON t.id = s.service_id GROUP BY owner");
    expect(joined).toEqual([{ owner: 'team-pay', n: 5 }]);
    expect((await app.request('/api/v1/custom-tags', { method: 'POST', body: JSON.stringify({ kind: 'planet', key: 'x', tags: { a: 'b' } }) })).status).toBe(400);
    expect((await app.request('/api/v1/custom-tags', { method: 'POST', body: JSON.stringify({ kind: 'service', key: 'x', tags: { 'bad key!': 'b' } }) })).status).toBe(400);
  });
});

describe('AWS Lambda adapter (S3 event notifications)', () => {
  it('processes the keys of a real S3 event, URL-decoded and relative to the store prefix', async () => {
    const { store, process } = setup();
    const b = batches('node with space')[0];
    await store.put(testKey(b), encodeJson(b));
    const handler = createS3Handler({ process, filter: { bucket: 'riptide-batches', prefix: 'prod' } });
    const event = {
      Records: [
        {
          eventVersion: '2.1',
          eventSource: 'aws:s3',
          awsRegion: 'eu-west-1',
          eventTime: '2026-11-21T05:00:00.000Z',
          eventName: 'ObjectCreated:Put',
          userIdentity: { principalId: 'AWS:AIDAEXAMPLE' },
          requestParameters: { sourceIPAddress: '10.0.0.1' },
          responseElements: { 'x-amz-request-id': 'C3D13FE58DE4C810', 'x-amz-id-2': 'FMyUVURIY8/IgAtTv8xRjskZQpcIZ9KG4V5Wp6S7S/JRWeUWerMUE5JgHvANOjpD' },
          s3: {
            s3SchemaVersion: '1.0',
            configurationId: 'riptide-batches',
            bucket: { name: 'riptide-batches', ownerIdentity: { principalId: 'A3NL1KOZZKExample' }, arn: 'arn:aws:s3:::riptide-batches' },
            object: { key: `prod/${testKey(b).replace(/ /g, '+')}`, size: 1024, eTag: 'd41d8cd98f00b204e9800998ecf8427e', sequencer: '0055AED6DCD90281E5' },
          },
        },
        { eventSource: 'aws:s3', eventName: 'ObjectRemoved:Delete', s3: { bucket: { name: 'riptide-batches' }, object: { key: 'prod/x' } } },
      ],
    };
    const r = await handler(event);
    expect([r.processed, r.quarantined, r.ignored]).toEqual([1, 0, 0]);
    expect(await spanCount()).toBe(5);
    await expect(createS3Handler({ process: () => Promise.reject(new Error('down')) })(event)).rejects.toThrow('down');
  });
});

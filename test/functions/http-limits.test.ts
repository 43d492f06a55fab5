// Issue #12 on the functions' HTTP adapter: `POST /events` and `POST /api/v1/custom-tags` bodies are
// capped while they stream in, and input at fault — odd events, odd object keys, odd tag queries —
// gets a 4xx with a reason (a 5xx there would make the event source retry it forever).
import { mkdtempSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { serve } from '@hono/node-server';
import type { ServerType } from '@hono/node-server';
import type { Hono } from 'hono';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MetricsRegistry } from '../../agent/metrics.ts';
import { FileStore } from '../../agent/shipping/store.ts';
import { createFunctionsApp } from '../../functions/runtime/http-adapter.ts';
import { BatchProcessor } from '../../functions/runtime/processor.ts';
import { shippingDecoder, shippingKeys, storePort } from '../../functions/runtime/shipping.ts';
import { openClickHouse } from '../../functions/storage/clickhouse.ts';
import type { ClickHouse } from '../../functions/storage/clickhouse.ts';
import { migrate } from '../../functions/storage/migrations.ts';
import { ABSURD_VALUES, fuzzNo5xx, fuzzUrls, postChunked } from '../helpers/http-limits.ts';

const MiB = 1 << 20;
let dir: string;
let ch: ClickHouse;
let store: FileStore;
let app: Hono;
let metrics: MetricsRegistry;
let server: ServerType;
let base: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'riptide-fx-limits-'));
  ch = await openClickHouse({ dataDir: join(dir, 'ch') });
  await migrate(ch);
  store = new FileStore(join(dir, 'store'));
  const processor = new BatchProcessor({ ch, store: storePort(store), keys: shippingKeys, decode: shippingDecoder, log: () => {} });
  metrics = new MetricsRegistry();
  app = createFunctionsApp({ process: (k) => processor.processBatch(k), ch, metrics });
  server = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' });
  await new Promise<void>((r) => server.once('listening', () => r()));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  await new Promise<void>((r) => server.close(() => r()));
  await store.close();
  await ch.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('functions bodies are capped while they stream', () => {
  it.each([
    ['/events', 'events', '{"Records": ['],
    ['/api/v1/custom-tags', 'json', '{"kind": "service", "key": "'],
  ])('POST %s: 413 at 1 MiB before the body is sent', async (path, limit, prefix) => {
    const r = await postChunked(`${base}${path}`, { totalBytes: 256 * MiB, prefix, headers: { 'content-type': 'application/json' } });
    expect(r.status, r.body).toBe(413);
    expect(JSON.parse(r.body)).toEqual({ error: `request body larger than 1 MiB (the ${limit} limit)` });
    expect(r.sentBytes).toBeLessThan(32 * MiB);
    expect(r.peakRssGrowth).toBeLessThan(96 * MiB);
    expect(metrics.render()).toContain(`riptide_http_bodies_refused_total{limit="${limit}"}`);
  });

  it('caps are configurable', async () => {
    const small = createFunctionsApp({ process: () => Promise.reject(new Error('not called')), ch, limits: { eventsBytes: 100, jsonBytes: 100 } });
    const ev = await small.request('/events', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ Records: [{ s3: { object: { key: 'x'.repeat(200) } } }] }) });
    expect(ev.status).toBe(413);
    const tags = await small.request('/api/v1/custom-tags', { method: 'POST', body: JSON.stringify({ kind: 'service', key: 'k', tags: { a: 'b'.repeat(200) } }) });
    expect(tags.status).toBe(413);
  });
});

describe('functions bad input gets a 4xx with a reason', () => {
  const post = async (path: string, body: string, headers: Record<string, string> = { 'content-type': 'application/json' }): Promise<{ status: number; body: Record<string, unknown> }> => {
    const res = await app.request(path, { method: 'POST', headers, body });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };
  const s3 = (key: string): string => JSON.stringify({ Records: [{ eventName: 'ObjectCreated:Put', s3: { bucket: { name: 'b' }, object: { key } } }] });

  it.each([
    ['a key whose slot time is past year 275760', s3('batches/2026-01-01/00/node-a/000000000001/0000000000000-000000-99999999999999999999s.rtb')],
    ['a key with a 40-digit slot', s3(`batches/2026-01-01/00/node-a/${'9'.repeat(40)}/0000000000000-000000-1s.rtb`)],
    ['a key with broken URL escapes', s3('batches/%E0%A4%A')],
    ['a 100 KiB key', s3(`batches/${'x'.repeat(100 << 10)}.rtb`)],
    ['a key with a path trick', s3('batches/../../../../etc/passwd')],
  ])('POST /events, %s: no 5xx', async (_what, body) => {
    const r = await post('/events', body);
    expect(r.status, JSON.stringify(r.body).slice(0, 300)).toBeLessThan(500);
    if (r.status >= 400) expect(String(r.body.error)).not.toBe('');
  });

  it.each([
    ['[]', /.+/],
    ['null', /JSON array/],
    ['"x"', /JSON array/],
    ['{"specversion": "1.0", "type": "ObjectCreated", "subject": 5}', /.+/],
    ['[1, 2]', /.+/],
  ])('POST /events %s → 400', async (body, reason) => {
    const r = await post('/events', body, { 'content-type': 'application/cloudevents-batch+json' });
    if (r.status === 200) expect(r.body).toEqual({ results: [] });
    else {
      expect(r.status).toBe(400);
      expect(String(r.body.error)).toMatch(reason);
    }
  });

  it('custom tags: an over-long key or a non-object body is a 400 with a reason', async () => {
    const long = await app.request(`/api/v1/custom-tags?kind=service&key=${'k'.repeat(600)}`);
    expect(long.status).toBe(400);
    expect(((await long.json()) as { error: string }).error).toMatch(/at most 512 characters/);
    for (const body of ['[]', 'null', '5', '{"kind":"service","key":"k","tags":{"a":5}}', '{"kind":"service","key":"k","tags":[]}']) {
      const r = await post('/api/v1/custom-tags', body);
      expect(r.status, body).toBe(400);
      expect(String(r.body.error)).not.toBe('');
    }
  });

  it('fuzz: GET /api/v1/custom-tags, /healthz and /metrics never answer odd input with a 5xx', async () => {
    const urls = fuzzUrls([
      { path: '/api/v1/custom-tags', params: ['kind', 'key'], base: { kind: 'service', key: 'checkout' } },
      { path: '/healthz', params: ['x'] },
      { path: '/metrics', params: ['x'] },
    ], ABSURD_VALUES);
    expect(await fuzzNo5xx(urls, (u) => Promise.resolve(app.request(u)))).toEqual([]);
  });
});

// Issue #12 on the marketplace: the publish body is capped while it streams in (and not read at all
// without a publish token), an over-long version is a 400 (it was ENAMETOOLONG, a 500), and no
// read route answers odd input with a 5xx.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { KeyObject } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileStore } from '../../agent/shipping/store.ts';
import { generatePublisherKey } from '../../lib/marketplace/signing.ts';
import { TOKEN, example, publishBody, serveMarketplace, withVersion } from './fixtures.ts';
import type { Served } from './fixtures.ts';
import { ABSURD_VALUES, fuzzNo5xx, fuzzUrls, postChunked } from '../helpers/http-limits.ts';

const API = '/api/v1/marketplace';
const MiB = 1 << 20;
let dir: string;
let store: FileStore;
let served: Served;
let key: KeyObject;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'riptide-market-limits-'));
  store = new FileStore(dir);
  key = generatePublisherKey().privateKey;
  // 64 KiB modules: the publish body may be 64 KiB * 4/3 + 256 KiB = 341.3 KiB
  served = await serveMarketplace({ store, publishTokens: [TOKEN], maxModuleBytes: 64 << 10 });
});
afterAll(async () => {
  await served?.close();
  await store?.close();
  await rm(dir, { recursive: true, force: true });
});

const publish = (body: unknown): Promise<Response> =>
  fetch(`${served.url}${API}/plugins`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });

describe('marketplace publish body', () => {
  it('a chunked body past the cap gets its 413 while it is still being sent', async () => {
    const r = await postChunked(`${served.url}${API}/plugins`, { totalBytes: 256 * MiB, prefix: '{"module": "', fill: 0x41, headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' } });
    expect(r.status, r.body).toBe(413);
    expect(JSON.parse(r.body)).toEqual({ error: 'the request is larger than a 64 KiB module allows', reason: 'too_large' });
    expect(r.sentBytes).toBeLessThan(32 * MiB);
    expect(r.peakRssGrowth).toBeLessThan(96 * MiB);
    expect(served.metrics.render()).toMatch(/riptide_http_bodies_refused_total\{limit="marketplace_publish"\} [1-9]/);
  });

  it('without a publish token nothing of the body is read: 401 at once', async () => {
    const r = await postChunked(`${served.url}${API}/plugins`, { totalBytes: 256 * MiB, headers: { authorization: 'Bearer wrong', 'content-type': 'application/json' } });
    expect(r.status, r.body).toBe(401);
    expect(JSON.parse(r.body)).toMatchObject({ reason: 'unauthorized' });
    expect(r.sentBytes).toBeLessThan(32 * MiB);
  });
});

describe('marketplace versions', () => {
  const long = `1.0.0-${'a'.repeat(300)}`;

  it('a 300-character pre-release version is a 400 with the reason, on publish and on fetch', async () => {
    const r = await publish(publishBody(withVersion(example('tinyrpc'), long), key));
    expect(r.status, await r.clone().text()).toBe(400);
    expect(await r.json()).toEqual({ error: expect.stringMatching(/is 306 characters; at most 64 are allowed/) as unknown, reason: 'invalid_version' });
    for (const path of [`/plugins/tinyrpc/${long}`, `/plugins/tinyrpc/${long}/module.wasm`]) {
      const g = await fetch(`${served.url}${API}${path}`);
      expect(g.status).toBe(400);
      expect(((await g.json()) as { reason: string }).reason).toBe('invalid_version');
    }
  });

  it('a 64-character version still publishes', async () => {
    const v = `1.0.0-${'b'.repeat(58)}`;
    expect(v.length).toBe(64);
    const r = await publish(publishBody(withVersion(example('tinyrpc'), v), key));
    expect(r.status, await r.clone().text()).toBe(201);
  });

  it('fuzz: no read route answers absurd or odd input with a 5xx', async () => {
    const urls = fuzzUrls([
      { path: `${API}/plugins`, params: ['q', 'protocol', 'hook', 'name'] },
      { path: `${API}/plugins/{}`, params: [] },
      { path: `${API}/plugins/tinyrpc/resolve`, params: ['range'] },
      { path: `${API}/plugins/{}/resolve`, params: [], base: { range: '^1' } },
      { path: `${API}/plugins/tinyrpc/{}`, params: [] },
      { path: `${API}/plugins/tinyrpc/{}/module.wasm`, params: [] },
      { path: '/marketplace', params: ['x'] },
    ], [long, `1.0.0-${'x.'.repeat(200)}x`, '1.0.0-' + '9'.repeat(300), '99999999999.0.0', ...ABSURD_VALUES]);
    const bad = await fuzzNo5xx(urls, (u) => fetch(`${served.url}${u}`));
    expect(bad).toEqual([]);
  }, 120_000);
});

/**
 * The marketplace API conformance suite, run against every store (FileStore, S3 on s3rver).
 * Goes through `app.request` (no sockets) except where a test needs an HTTP client.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KeyObject } from 'node:crypto';
import type { Hono } from 'hono';
import type { ObjectStore } from '../../agent/shipping/store.ts';
import { MetricsRegistry } from '../../agent/metrics.ts';
import { generatePublisherKey } from '../../lib/marketplace/signing.ts';
import { sha256Hex } from '../../sdk-plugin/src/hash.ts';
import { createMarketplaceApp } from '../../functions/marketplace/app.ts';
import { EXAMPLES, TOKEN, example, publishBody, withVersion } from './fixtures.ts';

export interface SuiteStore {
  open(): Promise<ObjectStore>;
  dispose(): Promise<void>;
}

const API = '/api/v1/marketplace';
const auth = { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' };

export function marketplaceSuite(label: string, setup: () => Promise<SuiteStore>, opts: { full: boolean }): void {
  describe(`marketplace API on ${label}`, () => {
    let env: SuiteStore;
    let store: ObjectStore;
    let app: Hono;
    let metrics: MetricsRegistry;
    let key: KeyObject;

    const publish = (body: unknown, headers: Record<string, string> = auth): Promise<Response> =>
      Promise.resolve(app.request(`${API}/plugins`, { method: 'POST', headers, body: typeof body === 'string' ? body : JSON.stringify(body) }));
    const get = (path: string): Promise<Response> => Promise.resolve(app.request(path));

    beforeAll(async () => {
      env = await setup();
      store = await env.open();
      metrics = new MetricsRegistry();
      key = generatePublisherKey().privateKey;
      app = createMarketplaceApp({ store, publishTokens: [TOKEN], maxModuleBytes: 64 << 10, metrics });
    });
    afterAll(async () => {
      await store?.close();
      await env?.dispose();
    });

    it('publishes the example plugins and lists, searches and serves them', async () => {
      for (const name of EXAMPLES) {
        const r = await publish(publishBody(example(name), key, { description: `${name} example` }));
        expect(r.status, await r.clone().text()).toBe(201);
      }
      const all = (await (await get(`${API}/plugins`)).json()) as { plugins: Array<{ name: string; latest: string }> };
      expect(all.plugins.map((p) => p.name)).toEqual(['biz-trace-id', 'http-error-200', 'tinyrpc']);
      const byProto = (await (await get(`${API}/plugins?protocol=tinyrpc`)).json()) as { plugins: Array<{ name: string }> };
      expect(byProto.plugins.map((p) => p.name)).toEqual(['tinyrpc']);
      const byHook = (await (await get(`${API}/plugins?hook=http_response`)).json()) as { plugins: Array<{ name: string }> };
      expect(byHook.plugins.map((p) => p.name).sort()).toEqual(['http-error-200']);
      const byText = (await (await get(`${API}/plugins?q=trace`)).json()) as { plugins: Array<{ name: string }> };
      expect(byText.plugins.map((p) => p.name)).toEqual(['biz-trace-id']);

      const v = (await (await get(`${API}/plugins/tinyrpc/1.0.0`)).json()) as { manifest: { sha256: string }; module_url: string };
      const mod = new Uint8Array(await (await get(v.module_url)).arrayBuffer());
      expect(sha256Hex(mod)).toBe(v.manifest.sha256);
      expect(sha256Hex(mod)).toBe(example('tinyrpc').manifest.sha256);
    });

    it('resolves the newest version matching a range, and a yank steps back', async () => {
      const tiny = example('tinyrpc');
      for (const v of ['1.1.0', '2.0.0', '1.2.0-rc.1']) expect((await publish(publishBody(withVersion(tiny, v), key))).status).toBe(201);
      const resolve = async (range: string): Promise<string> => ((await (await get(`${API}/plugins/tinyrpc/resolve?range=${encodeURIComponent(range)}`)).json()) as { version: string }).version;
      expect(await resolve('^1')).toBe('1.1.0');
      expect(await resolve('*')).toBe('2.0.0');
      expect(await resolve('~1.0')).toBe('1.0.0');
      expect(await resolve('1.2.0-rc.1')).toBe('1.2.0-rc.1');
      const y = await app.request(`${API}/plugins/tinyrpc/1.1.0/yank`, { method: 'POST', headers: auth });
      expect(y.status).toBe(200);
      expect(await resolve('^1')).toBe('1.0.0');
      const exact = (await (await get(`${API}/plugins/tinyrpc/1.1.0`)).json()) as { yanked: boolean };
      expect(exact.yanked).toBe(true);
      expect((await get(`${API}/plugins/tinyrpc/resolve?range=^3`)).status).toBe(404);
    });

    it('concurrent publishes of one version from two replicas leave exactly one', async () => {
      // two apps on one store: two API replicas that share nothing but the bucket
      const other = createMarketplaceApp({ store, publishTokens: [TOKEN], metrics: new MetricsRegistry() });
      const b = withVersion(example('http-error-200'), '1.5.0');
      const bodies = Array.from({ length: 6 }, () => JSON.stringify(publishBody(b, key, { description: 'race' })));
      const rs = await Promise.all(bodies.map((body, i) => (i % 2 ? other : app).request(`${API}/plugins`, { method: 'POST', headers: auth, body })));
      const statuses = rs.map((r) => r.status).sort();
      expect(statuses).toEqual([201, 409, 409, 409, 409, 409]);
      const manifests = (await store.list('plugins/http-error-200/')).filter((k) => k.endsWith('/manifest.json'));
      expect(manifests).toEqual(['plugins/http-error-200/1.0.0/manifest.json', 'plugins/http-error-200/1.5.0/manifest.json']);
      const detail = (await (await get(`${API}/plugins/http-error-200`)).json()) as { versions: Array<{ version: string }> };
      expect(detail.versions.map((v) => v.version)).toEqual(['1.0.0', '1.5.0']);
      expect(await store.list('plugins/_locks/')).toEqual([]);
    });

    it('refuses bad input with a 4xx and a reason, and counts every refusal', async () => {
      const tiny = example('tinyrpc');
      const refusals: Array<[string, Promise<Response>, number, string]> = [];
      const add = (what: string, r: Promise<Response> | Response, status: number, reason: string): void => void refusals.push([what, Promise.resolve(r), status, reason]);
      const good = publishBody(withVersion(tiny, '9.0.0'), key);

      add('no token', publish(good, { 'content-type': 'application/json' }), 401, 'unauthorized');
      add('wrong token', publish(good, { ...auth, authorization: 'Bearer nope' }), 401, 'unauthorized');
      add('not JSON', publish('{"manifest":'), 400, 'invalid_body');
      add('duplicate version', publish(publishBody(tiny, key)), 409, 'duplicate_version');
      add('invalid manifest', publish({ ...good, manifest: { ...good.manifest, hooks: ['teleport'] } }), 400, 'invalid_manifest');
      add('wrong ABI in the manifest', publish({ ...good, manifest: { ...good.manifest, abi: 2 } }), 400, 'wrong_abi');
      // a valid but empty Wasm module: no riptide_abi_v1 export
      const empty = new Uint8Array([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0]);
      const emptyBuilt = { manifest: { ...tiny.manifest, version: '9.0.1', sha256: sha256Hex(empty) }, module: empty };
      add('module without our ABI', publish(publishBody(emptyBuilt, key)), 422, 'wrong_abi');
      const junk = new Uint8Array([1, 2, 3, 4]);
      add('not WebAssembly', publish(publishBody({ manifest: { ...tiny.manifest, version: '9.0.2', sha256: sha256Hex(junk) }, module: junk }, key)), 422, 'invalid_module');
      const big = new Uint8Array(70 << 10);
      add('oversized module', publish(publishBody({ manifest: { ...tiny.manifest, version: '9.0.3', sha256: sha256Hex(big) }, module: big }, key)), 413, 'too_large');
      add('oversized body', publish(JSON.stringify({ pad: 'x'.repeat(400 << 10) })), 413, 'too_large');
      add('hash mismatch', publish({ ...good, module: Buffer.from(example('biz-trace-id').module).toString('base64') }), 422, 'hash_mismatch');
      add('unsigned', publish({ ...good, signature: undefined }), 400, 'unsigned');
      const otherSig = publishBody(withVersion(tiny, '9.9.9'), key).signature;
      add('signature over another manifest', publish({ ...good, signature: otherSig }), 422, 'bad_signature');
      add('name owned by another key', publish(publishBody(withVersion(tiny, '9.0.4'), generatePublisherKey().privateKey)), 403, 'owner_mismatch');
      for (const bad of ['../etc', 'a/b', 'Tiny', 'tіnyrpc' /* Cyrillic і */, 'tiny.rpc', 'tiny_rpc', '-x']) {
        add(`name ${bad}`, publish({ ...good, manifest: { ...good.manifest, name: bad } }), 400, 'invalid_name');
      }
      add('module file with a path', publish({ ...good, manifest: { ...good.manifest, module: 'x/../../y.wasm' } }), 400, 'invalid_manifest');
      add('path trick in a fetch', get(`${API}/plugins/..%2F..%2Fetc/1.0.0`), 400, 'invalid_name');
      add('bad version in a fetch', get(`${API}/plugins/tinyrpc/1.0`), 400, 'invalid_version');
      add('bad range', get(`${API}/plugins/tinyrpc/resolve?range=${encodeURIComponent('>>1 &&')}`), 400, 'invalid_range');
      add('unknown plugin', get(`${API}/plugins/nothing-here`), 404, 'not_found');
      add('yank without token', app.request(`${API}/plugins/tinyrpc/1.0.0/yank`, { method: 'POST' }), 401, 'unauthorized');

      const refused = metrics.counter('riptide_marketplace_api_refused_total', '');
      const before = new Map<string, number>();
      for (const [, , , reason] of refusals) before.set(reason, 0);
      for (const [what, rp, status, reason] of refusals) {
        const r = await rp;
        const body = (await r.json()) as { reason?: string; error?: string };
        expect({ what, status: r.status, reason: body.reason }).toEqual({ what, status, reason });
        expect(body.error, what).toBeTruthy();
        before.set(reason, (before.get(reason) ?? 0) + 1);
      }
      for (const [reason, n] of before) expect(refused.get({ reason }), reason).toBeGreaterThanOrEqual(n);
      // nothing of the refused uploads was stored
      expect((await store.list('plugins/tinyrpc/')).filter((k) => k.includes('/9.'))).toEqual([]);
    });

    if (opts.full) {
      it('never serves a half-written version (module without manifest)', async () => {
        await store.put('plugins/tinyrpc/7.0.0/module.wasm', example('tinyrpc').module);
        expect((await get(`${API}/plugins/tinyrpc/7.0.0`)).status).toBe(404);
        expect((await get(`${API}/plugins/tinyrpc/7.0.0/module.wasm`)).status).toBe(404);
        // and the next publish of that version goes through, overwriting the leftover
        expect((await publish(publishBody(withVersion(example('tinyrpc'), '7.0.0'), key))).status).toBe(201);
      });

      it('mends the index after a crash between manifest and index', async () => {
        expect((await publish(publishBody(withVersion(example('tinyrpc'), '7.1.0'), key))).status).toBe(201);
        const idx = JSON.parse(new TextDecoder().decode(await store.get('plugins/_index/tinyrpc.json'))) as { versions: Array<{ version: string }> };
        idx.versions = idx.versions.filter((v) => v.version !== '7.1.0');
        await store.put('plugins/_index/tinyrpc.json', new TextEncoder().encode(JSON.stringify(idx)));
        const resolve = async (): Promise<string> => ((await (await get(`${API}/plugins/tinyrpc/resolve?range=^7`)).json()) as { version: string }).version;
        expect(await resolve()).toBe('7.0.0');
        // the retry of the crashed publish answers 409 and puts the version back in the index
        expect((await publish(publishBody(withVersion(example('tinyrpc'), '7.1.0'), key))).status).toBe(409);
        expect(await resolve()).toBe('7.1.0');
      });
    }
  });
}

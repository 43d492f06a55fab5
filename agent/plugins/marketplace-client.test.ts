import { mkdtemp, readFile, readlink, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { MetricsRegistry } from '../metrics.ts';
import { sha256Hex } from '../../sdk-plugin/src/hash.ts';
import { example, withVersion } from '../../test/marketplace/fixtures.ts';
import { FileStore } from '../shipping/store.ts';
import { TOKEN, publishBody, serveMarketplace } from '../../test/marketplace/fixtures.ts';
import { MarketplaceClient, MarketplaceRefused, MarketplaceWatcher, installedVersion, parsePluginSpec } from './marketplace-client.ts';
import { canonicalJson, generatePublisherKey, signPlugin, trustedKeys } from '../../lib/marketplace/signing.ts';

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

describe('marketplace client verification', () => {
  const publisher = generatePublisherKey();
  const tiny = example('tinyrpc');
  const metrics = new MetricsRegistry();
  const lines: string[] = [];
  const client = new MarketplaceClient({ url: 'http://127.0.0.1:9', trusted: trustedKeys([publisher.publicPem]), metrics, log: (l) => lines.push(l) });
  const refusedCount = (reason: string): number => metrics.counter('riptide_marketplace_refused_total', '').get({ reason });

  const refusal = (f: () => unknown): MarketplaceRefused => {
    try {
      f();
    } catch (err) {
      if (err instanceof MarketplaceRefused) return err;
      throw err;
    }
    throw new Error('not refused');
  };

  it('accepts a module signed by a trusted key, whichever way its manifest is serialised', () => {
    const sig = signPlugin(tiny.manifest, publisher.privateKey);
    const reordered: unknown = JSON.parse(canonicalJson(tiny.manifest));
    expect(client.verify('tinyrpc', reordered, tiny.module, sig).keyId).toBe(publisher.keyId);
  });

  it('refuses unsigned, tampered, untrusted and mislabelled downloads — each logged and counted', () => {
    const sig = signPlugin(tiny.manifest, publisher.privateKey);
    expect(refusal(() => client.verify('tinyrpc', tiny.manifest, tiny.module, undefined)).reason).toBe('unsigned');

    const evil = new Uint8Array(tiny.module);
    evil[10] ^= 1;
    expect(refusal(() => client.verify('tinyrpc', tiny.manifest, evil, sig)).reason).toBe('hash_mismatch');
    // tampered module AND a manifest re-hashed to match: only the signature catches it
    expect(refusal(() => client.verify('tinyrpc', { ...tiny.manifest, sha256: sha256Hex(evil) }, evil, sig)).reason).toBe('bad_signature');
    // a signature lifted from another version
    const other = signPlugin(withVersion(tiny, '2.0.0').manifest, publisher.privateKey);
    expect(refusal(() => client.verify('tinyrpc', tiny.manifest, tiny.module, other)).reason).toBe('bad_signature');

    const stranger = generatePublisherKey();
    const e = refusal(() => client.verify('tinyrpc', tiny.manifest, tiny.module, signPlugin(tiny.manifest, stranger.privateKey)));
    expect(e.reason).toBe('untrusted_key');
    expect(e.message).toContain(stranger.keyId);
    // an embedded public key proves nothing: a stranger's key id with a trusted key's bytes still fails
    const forged = { ...signPlugin(tiny.manifest, stranger.privateKey), keyId: publisher.keyId };
    expect(refusal(() => client.verify('tinyrpc', tiny.manifest, tiny.module, forged)).reason).toBe('bad_signature');

    expect(refusal(() => client.verify('biz-trace-id', tiny.manifest, tiny.module, sig)).reason).toBe('name_mismatch');
    expect(refusal(() => client.verify('tinyrpc', { ...tiny.manifest, module: '../x.wasm' }, tiny.module, sig)).reason).toBe('invalid_manifest');

    for (const r of ['unsigned', 'hash_mismatch', 'untrusted_key', 'name_mismatch', 'invalid_manifest']) expect(refusedCount(r), r).toBe(1);
    expect(refusedCount('bad_signature')).toBe(3);
    expect(lines.every((l) => /^riptide: marketplace plugin refused \(\w+\): /.test(l))).toBe(true);
  });

  it('re-verifies what is installed on disk and notices local tampering', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'riptide-mclient-'));
    dirs.push(dir);
    const { mkdir, symlink } = await import('node:fs/promises');
    const vdir = join(dir, 'tinyrpc', '1.0.0');
    await mkdir(vdir, { recursive: true });
    await writeFile(join(vdir, tiny.manifest.module), tiny.module);
    await writeFile(join(vdir, 'manifest.json'), canonicalJson(tiny.manifest));
    await writeFile(join(vdir, 'signature.json'), JSON.stringify(signPlugin(tiny.manifest, publisher.privateKey)));
    await symlink('1.0.0', join(dir, 'tinyrpc', 'current'));
    expect(await readlink(join(dir, 'tinyrpc', 'current'))).toBe('1.0.0');
    expect(await client.verifyInstalled(dir, 'tinyrpc')).toBe('1.0.0');
    const m = JSON.parse(await readFile(join(vdir, 'manifest.json'), 'utf8')) as Record<string, unknown>;
    await writeFile(join(vdir, 'manifest.json'), JSON.stringify({ ...m, timeBudgetMs: 50 }));
    await expect(client.verifyInstalled(dir, 'tinyrpc')).rejects.toThrow(/does not match this module and manifest/);
  });

  it('parses name@range entries and leaves paths alone', () => {
    expect(parsePluginSpec('tinyrpc@^1.2')).toEqual({ name: 'tinyrpc', range: '^1.2' });
    expect(parsePluginSpec('tinyrpc@')).toEqual({ name: 'tinyrpc', range: '*' });
    expect(parsePluginSpec('plugins/tinyrpc')).toBeUndefined();
    expect(parsePluginSpec('/opt/x@1/manifest.json')).toBeUndefined();
    expect(() => parsePluginSpec('tinyrpc@latest')).toThrow(/not a version range/);
  });

  it('follows new versions, rolls back on a yank, and logs an outage once', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'riptide-mwatch-'));
    dirs.push(dir);
    const market = await serveMarketplace({ store: new FileStore(join(dir, 'store')), publishTokens: [TOKEN] });
    const post = (path: string, body?: unknown): Promise<Response> =>
      fetch(market.url + path, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
    try {
      expect((await post('/api/v1/marketplace/plugins', publishBody(tiny, publisher.privateKey))).status).toBe(201);
      const log: string[] = [];
      const c = new MarketplaceClient({ url: market.url, trusted: trustedKeys([publisher.publicPem]), metrics: new MetricsRegistry(), log: (l) => log.push(l) });
      const w = new MarketplaceWatcher({ client: c, specs: [{ name: 'tinyrpc', range: '^1' }], pluginsDir: join(dir, 'plugins'), intervalMs: 0, log: (l) => log.push(l) });
      await w.start();
      expect(w.paths()).toEqual([join(dir, 'plugins', 'tinyrpc', 'current')]);
      expect(await installedVersion(join(dir, 'plugins'), 'tinyrpc')).toBe('1.0.0');
      expect((await post('/api/v1/marketplace/plugins', publishBody(withVersion(tiny, '1.1.0'), publisher.privateKey))).status).toBe(201);
      await w.poll();
      expect(await installedVersion(join(dir, 'plugins'), 'tinyrpc')).toBe('1.1.0');
      expect((await post('/api/v1/marketplace/plugins/tinyrpc/1.1.0/yank')).status).toBe(200);
      await w.poll();
      expect(await installedVersion(join(dir, 'plugins'), 'tinyrpc')).toBe('1.0.0');
      await market.close();
      const before = log.length;
      await w.poll();
      await w.poll();
      expect(log.slice(before), log.slice(before).join('\n')).toHaveLength(1);
      expect(log.at(-1)).toMatch(/cannot reach the marketplace .*; keeping what runs$/);
      // what is installed still verifies from disk
      expect(await c.verifyInstalled(join(dir, 'plugins'), 'tinyrpc')).toBe('1.0.0');
    } finally {
      await market.close().catch(() => undefined);
    }
  });
});

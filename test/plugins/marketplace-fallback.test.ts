// A tampered newest version in the marketplace must not leave an agent with nothing: the agent
// installs the newest version that verifies, and one already running keeps what it has.
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MetricsRegistry } from '../../agent/metrics.ts';
import { MarketplaceClient, MarketplaceWatcher, installedVersion } from '../../agent/plugins/marketplace-client.ts';
import { generatePublisherKey, trustedKeys } from '../../lib/marketplace/signing.ts';
import { FileStore } from '../../agent/shipping/store.ts';
import { TOKEN, example, publishBody, serveMarketplace, withVersion } from '../marketplace/fixtures.ts';
import type { Served } from '../marketplace/fixtures.ts';

describe('marketplace: a tampered newest version', () => {
  const publisher = generatePublisherKey();
  const tiny = example('tinyrpc');
  let dir: string;
  let market: Served;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'riptide-mfallback-'));
    market = await serveMarketplace({ store: new FileStore(join(dir, 'store')), publishTokens: [TOKEN] });
    for (const v of ['1.0.0', '1.1.0', '1.2.0']) {
      const res = await fetch(`${market.url}/api/v1/marketplace/plugins`, {
        method: 'POST',
        headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
        body: JSON.stringify(publishBody(withVersion(tiny, v), publisher.privateKey)),
      });
      expect(res.status).toBe(201);
    }
    // the stored 1.2.0 module is altered after publication (a compromised bucket, a bad mirror)
    const stored = join(dir, 'store', 'plugins', 'tinyrpc', '1.2.0', 'module.wasm');
    const bytes = await readFile(stored);
    bytes[bytes.length - 1] ^= 0xff;
    await writeFile(stored, bytes);
  });
  afterAll(async () => {
    await market.close();
    await rm(dir, { recursive: true, force: true });
  });

  const agentSide = (pluginsDir: string) => {
    const log: string[] = [];
    const metrics = new MetricsRegistry();
    const client = new MarketplaceClient({ url: market.url, trusted: trustedKeys([publisher.publicPem]), metrics, log: (l) => log.push(l) });
    const watcher = new MarketplaceWatcher({ client, specs: [{ name: 'tinyrpc', range: '^1' }], pluginsDir, intervalMs: 0, log: (l) => log.push(l) });
    return { log, metrics, watcher };
  };

  it('a fresh agent installs the newest version that verifies, and says so', async () => {
    const pluginsDir = join(dir, 'fresh');
    const a = agentSide(pluginsDir);
    await a.watcher.start();
    expect(await installedVersion(pluginsDir, 'tinyrpc')).toBe('1.1.0');
    expect(a.log.some((l) => /^riptide: marketplace plugin refused \(hash_mismatch\): tinyrpc@1\.2\.0/.test(l))).toBe(true);
    expect(a.log).toContain('riptide: marketplace plugin tinyrpc@^1: 1.2.0 refused; fell back to 1.1.0');
    expect(a.metrics.render()).toContain('riptide_marketplace_refused_total{reason="hash_mismatch"} 1');
    // later polls neither re-download the bad version nor count it again, and keep 1.1.0
    await a.watcher.poll();
    await a.watcher.poll();
    expect(await installedVersion(pluginsDir, 'tinyrpc')).toBe('1.1.0');
    expect(a.metrics.render()).toContain('riptide_marketplace_refused_total{reason="hash_mismatch"} 1');
  });

  it('an agent on an older version moves up to the newest good one, not onto the bad one', async () => {
    const pluginsDir = join(dir, 'older');
    const first = new MarketplaceWatcher({
      client: new MarketplaceClient({ url: market.url, trusted: trustedKeys([publisher.publicPem]), metrics: new MetricsRegistry(), log: () => {} }),
      specs: [{ name: 'tinyrpc', range: '~1.0' }],
      pluginsDir,
      intervalMs: 0,
      log: () => {},
    });
    await first.start();
    expect(await installedVersion(pluginsDir, 'tinyrpc')).toBe('1.0.0');
    const a = agentSide(pluginsDir);
    await a.watcher.poll();
    expect(await installedVersion(pluginsDir, 'tinyrpc')).toBe('1.1.0');
  });
});

// The marketplace inside the query server: its routes answer next to the query API, with its own
// auth (the query token does not gate it, the publish token does), and its page — plugins,
// versions, protocols, hooks, description and install line — renders in Debian's Chromium.
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { serve } from '@hono/node-server';
import type { ServerType } from '@hono/node-server';
import { chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MetricsRegistry } from '../../agent/metrics.ts';
import { FileStore } from '../../agent/shipping/store.ts';
import { generatePublisherKey } from '../../lib/marketplace/signing.ts';
import { createQueryApp } from '../../functions/query/app.ts';
import type { ClickHouse } from '../../functions/storage/clickhouse.ts';
import { EXAMPLES, TOKEN, example, publishBody, withVersion } from './fixtures.ts';

const CHROMIUM = '/usr/bin/chromium';
const API = '/api/v1/marketplace';

describe('marketplace mounted in the query server', () => {
  let dir: string;
  let server: ServerType;
  let base: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'riptide-market-ui-'));
    // the marketplace routes never touch ClickHouse
    const app = createQueryApp({
      clickhouse: {} as ClickHouse,
      token: 'query-secret',
      metrics: new MetricsRegistry(),
      marketplace: { store: new FileStore(dir), publishTokens: [TOKEN] },
    });
    server = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' });
    await new Promise<void>((r) => server.once('listening', () => r()));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const key = generatePublisherKey().privateKey;
    const bodies = EXAMPLES.map((n) => publishBody(example(n), key, { description: `The ${n} example plugin` }));
    bodies.push(publishBody(withVersion(example('tinyrpc'), '1.1.0'), key));
    for (const b of bodies) {
      const r = await fetch(`${base}${API}/plugins`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' }, body: JSON.stringify(b) });
      expect(r.status, await r.text()).toBe(201);
    }
  });
  afterAll(async () => {
    if (server) await new Promise<void>((r) => server.close(() => r()));
    await rm(dir, { recursive: true, force: true });
  });

  it('serves the marketplace beside the query API; the query token gates only the query API', async () => {
    expect((await fetch(`${base}/api/v1/spans`)).status).toBe(401);
    const list = (await (await fetch(`${base}${API}/plugins`)).json()) as { plugins: Array<{ name: string }> };
    expect(list.plugins.map((p) => p.name)).toEqual(['biz-trace-id', 'http-error-200', 'tinyrpc']);
    const noToken = await fetch(`${base}${API}/plugins`, { method: 'POST', body: '{}', headers: { 'content-type': 'application/json', authorization: 'Bearer query-secret' } });
    expect(noToken.status).toBe(401);
    expect(await (await fetch(`${base}/`)).text()).toContain('href="/marketplace"');
  });

  it.skipIf(!existsSync(CHROMIUM))('shows plugins, versions, protocols, hooks, description and the install line', async () => {
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--no-first-run'] });
    try {
      const page = await browser.newPage();
      await page.goto(`${base}/marketplace`);
      const card = page.getByTestId('plugin-tinyrpc');
      await card.waitFor();
      await expect.poll(() => card.innerText()).toContain('1.0.0');
      const text = await card.innerText();
      expect(text).toContain('The tinyrpc example plugin');
      expect(text).toContain('protocol: tinyrpc');
      expect(text).toContain('hook: parse');
      expect(text).toMatch(/1\.1\.0[\s\S]*1\.0\.0/); // newest first
      // The whole command: where the marketplace is and the key the versions are signed with.
      const install = await page.getByTestId('install-tinyrpc').innerText();
      expect(install).toMatch(/^npx riptide plugin install tinyrpc@\^1 --marketplace http:\/\/127\.0\.0\.1:\d+ --trusted-key [A-Za-z0-9+/]+=*$/);
      // search narrows the list
      await page.fill('input[name=protocol]', 'tinyrpc');
      await page.click('button.go');
      await expect.poll(async () => page.locator('.card').count()).toBe(1);
      await page.fill('input[name=protocol]', '');
      await page.click('button.go');
      await expect.poll(async () => page.locator('.card').count()).toBe(3);
      await page.screenshot({ path: 'test-results/marketplace-ui.png', fullPage: true });
    } finally {
      await browser.close();
    }
  });
});

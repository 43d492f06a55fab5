// `riptide up --demo` seeds its marketplace with the example plugins, through the same publish route
// as any upload, signed by a demo key that stays the same across restarts; the page of an empty
// marketplace says how to publish; the install line a card shows works as printed.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { serve } from '@hono/node-server';
import type { ServerType } from '@hono/node-server';
import { chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MetricsRegistry } from '../../agent/metrics.ts';
import { FileStore } from '../../agent/shipping/store.ts';
import { createQueryApp } from '../../functions/query/app.ts';
import { seedExamplePlugins } from '../../functions/marketplace/seed.ts';
import type { ClickHouse } from '../../functions/storage/clickhouse.ts';

const CHROMIUM = '/usr/bin/chromium';
const RIPTIDE = join(import.meta.dirname, '..', '..', 'agent', 'cli', 'riptide.mjs');

describe('marketplace seeded with the example plugins', () => {
  let dir: string;
  let server: ServerType;
  let base: string;
  let store: FileStore;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'riptide-seed-'));
    store = new FileStore(join(dir, 'store'));
    // the marketplace routes never touch ClickHouse
    const app = createQueryApp({ clickhouse: {} as ClickHouse, metrics: new MetricsRegistry(), marketplace: { store, publishTokens: [] } });
    server = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' });
    await new Promise<void>((r) => server.once('listening', () => r()));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    if (server) await new Promise<void>((r) => server.close(() => r()));
    await rm(dir, { recursive: true, force: true });
  });

  it.skipIf(!existsSync(CHROMIUM))('an empty marketplace page says how to publish', async () => {
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--no-first-run'] });
    try {
      const page = await browser.newPage();
      await page.goto(`${base}/marketplace`);
      const hint = page.getByTestId('empty-hint');
      await hint.waitFor();
      const text = await hint.innerText();
      expect(text).toContain('riptide plugin keygen');
      expect(text).toContain(`riptide plugin publish plugins/my-plugin --key my-publisher.key --marketplace ${base} --token`);
    } finally {
      await browser.close();
    }
  });

  it('publishes every example once, with a key kept for the next start', async () => {
    const keyPrefix = join(dir, 'demo-publisher');
    const first = await seedExamplePlugins({ store, keyPrefix });
    expect(first.refused).toEqual([]);
    expect(first.published.sort()).toEqual(['biz-trace-id@1.0.0', 'http-error-200@1.0.0', 'tinyrpc@1.0.0']);
    const again = await seedExamplePlugins({ store, keyPrefix });
    expect(again).toMatchObject({ published: [], refused: [], keyId: first.keyId });
    expect(again.present.sort()).toEqual(first.published);
    expect(await readFile(`${keyPrefix}.pub`, 'utf8')).toMatch(/BEGIN PUBLIC KEY/);
    const list = (await (await fetch(`${base}/api/v1/marketplace/plugins`)).json()) as { plugins: Array<{ name: string; owner_key_id: string }> };
    expect(list.plugins.map((p) => [p.name, p.owner_key_id])).toEqual(['biz-trace-id', 'http-error-200', 'tinyrpc'].map((n) => [n, first.keyId]));
  });

  it.skipIf(!existsSync(CHROMIUM))('shows an install line that works as printed', async () => {
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--no-first-run'] });
    let line: string;
    try {
      const page = await browser.newPage();
      await page.goto(`${base}/marketplace`);
      const install = page.getByTestId('install-tinyrpc');
      await install.waitFor();
      line = (await install.innerText()).trim();
      expect(await page.getByTestId('agent-tinyrpc').innerText()).toContain(`--plugin tinyrpc@^1 --marketplace ${base} --trusted-key `);
    } finally {
      await browser.close();
    }
    expect(line).toMatch(new RegExp(`^npx riptide plugin install tinyrpc@\\^1 --marketplace ${base.replace(/[.]/g, '\\.')} --trusted-key \\S+$`));
    const args = line.split(' ').slice(2); // after "npx riptide"
    // Not spawnSync: the marketplace answering the command is served by this process's event loop.
    const r = await promisify(execFile)(process.execPath, [RIPTIDE, ...args, '--data-dir', join(dir, 'data')], { encoding: 'utf8', timeout: 60_000 });
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(/^installed tinyrpc@1\.0\.0 \(hash and signature verified\)/);
  });
});

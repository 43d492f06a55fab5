// The web UI in Debian's Chromium (playwright-core, no downloaded browser): search, service map,
// click an edge → its slowest trace as a waterfall → a span's fields. Keeps a screenshot.
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { serve } from '@hono/node-server';
import type { ServerType } from '@hono/node-server';
import { chromium } from 'playwright-core';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createQueryApp } from '../../functions/query/app.ts';
import { openClickHouse } from '../../functions/storage/clickhouse.ts';
import type { ClickHouse } from '../../functions/storage/clickhouse.ts';
import { migrate } from '../../functions/storage/migrations.ts';
import { insertSpans, insertTagNames } from '../../functions/storage/span-store.ts';
import { requestSpans, serviceTagRows } from './fixtures.ts';

const CHROMIUM = '/usr/bin/chromium';
const have = existsSync(CHROMIUM);

let dir: string;
let ch: ClickHouse;
let server: ServerType;
let browser: Browser | undefined;
let base: string;

beforeAll(async () => {
  if (!have) return;
  dir = mkdtempSync(join(tmpdir(), 'riptide-ui-'));
  ch = await openClickHouse({ dataDir: dir });
  await migrate(ch);
  await insertTagNames(ch, serviceTagRows());
  const t0 = Math.floor(Date.now() / 1000 - 300) * 1e6;
  await insertSpans(ch, [0, 1, 2, 3].flatMap((k) => requestSpans(k + 1, t0 + k * 20_000, { fail: k === 3 })));
  server = serve({ fetch: createQueryApp({ clickhouse: ch }).fetch, port: 0, hostname: '127.0.0.1' });
  await new Promise<void>((r) => server.once('listening', () => r()));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
});
afterAll(async () => {
  await browser?.close();
  if (server) await new Promise<void>((r) => server.close(() => r()));
  await ch?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe.skipIf(!have)('web UI in Chromium', () => {
  it('goes from the service map to a trace waterfall and a span\'s fields', async () => {
    const page = await (browser as Browser).newPage({ viewport: { width: 1400, height: 900 } });
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(base + '/');
    // The landing search lists recent spans.
    await page.getByTestId('span-row').first().waitFor();
    expect(await page.getByTestId('span-row').count()).toBe(48);

    await page.getByTestId('tab-map').click();
    await page.getByTestId('map-edge').first().waitFor();
    expect(await page.getByTestId('map-node').count()).toBe(7);
    const edge = page.getByTestId('map-edge').filter({ hasText: 'mysql' });
    expect(await edge.textContent()).toMatch(/mysql · 4 req · 0 err/);
    await edge.click();

    await page.getByTestId('waterfall-row').first().waitFor();
    expect(await page.getByTestId('waterfall-row').count()).toBe(12);
    expect(await page.getByTestId('trace-id').textContent()).toMatch(/^[0-9a-f]{32}$/);
    await page.getByTestId('waterfall-row').filter({ hasText: 'redis' }).first().click();
    const details = await page.getByTestId('span-details').textContent();
    expect(details).toContain('cart:42');
    expect(details).toContain('parent_rule');

    mkdirSync('test-results', { recursive: true });
    await page.screenshot({ path: 'test-results/query-ui-trace.png', fullPage: true });
    await page.getByTestId('tab-map').click();
    await page.getByTestId('map-edge').first().waitFor();
    await page.screenshot({ path: 'test-results/query-ui-map.png', fullPage: true });
    expect(errors).toEqual([]);
  });
});

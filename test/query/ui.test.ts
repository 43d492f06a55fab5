// The web UI in Debian's Chromium (playwright-core, no downloaded browser): it opens on traces (one row
// per trace), a trace opens as a waterfall with a time axis, status codes and exceptions, the trace id
// it shows opens the same trace again, the detail panel stays in the viewport and shows local times
// with their zone, and the service map lays its labels out without overlaps, with rates, focused on
// the configured services with a toggle for all. Screenshots are kept in test-results/.
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { serve } from '@hono/node-server';
import type { ServerType } from '@hono/node-server';
import { chromium } from 'playwright-core';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createQueryApp } from '../../functions/query/app.ts';
import type { SpanRow } from '../../functions/span-builder/span-row.ts';
import { openClickHouse } from '../../functions/storage/clickhouse.ts';
import type { ClickHouse } from '../../functions/storage/clickhouse.ts';
import { migrate } from '../../functions/storage/migrations.ts';
import { insertSpans, insertTagNames } from '../../functions/storage/span-store.ts';
import { exchange, requestSpans, serviceTagRows } from './fixtures.ts';

const CHROMIUM = '/usr/bin/chromium';
const have = existsSync(CHROMIUM);
if (!have) console.warn(`ui.test: skipped: no ${CHROMIUM} (test/run.sh installs Debian's chromium)`);

const ZONE = 'Asia/Kolkata'; // UTC+05:30: a half-hour offset shows whether the UI really converts
const EXCEPTION = 'price service unavailable: upstream reset';

let dir: string;
let ch: ClickHouse;
let server: ServerType;
let browser: Browser | undefined;
let base: string;
let failing: SpanRow[];

/** Two tools that each call two servers: crossing edges whose middles coincide (labels would overlap). */
function crossingSpans(t: number): SpanRow[] {
  const tool = (n: string, pid: number): { name: string; pid: number; tid: number } => ({ name: n, pid, tid: pid });
  const [a, b, p, q] = [tool('tool-a', 900), tool('tool-b', 901), tool('srv-p', 902), tool('srv-q', 903)];
  const pairs: Array<[typeof a, typeof a, number]> = [[a, p, 9001], [a, q, 9002], [b, p, 9001], [b, q, 9002]];
  return pairs.flatMap(([c, s, port], i) =>
    exchange({ id: `e${i}`, client: c, server: s, start: t + i * 1000, end: t + i * 1000 + 500, proto: 'http1', port, seq: 3_000_000_000 + i * 7777, csys: [0, 0], ssys: [0, 0], req: ['GET', `/x${i}`], code: 200 }),
  );
}

beforeAll(async () => {
  if (!have) return;
  dir = mkdtempSync(join(tmpdir(), 'riptide-ui-'));
  ch = await openClickHouse({ dataDir: dir });
  await migrate(ch);
  await insertTagNames(ch, serviceTagRows());
  const t0 = Math.floor(Date.now() / 1000 - 300) * 1e6;
  const rows = [0, 1, 2, 3].flatMap((k) => requestSpans(k + 1, t0 + k * 20_000, { fail: k === 3 }));
  failing = rows.slice(36);
  failing[9].response_exception = EXCEPTION; // service-b's server span of the failing request
  failing[9].attributes = { 'http.url': 'https://shop.example/' + 'very-long-path-segment/'.repeat(20) };
  await insertSpans(ch, [...rows, ...crossingSpans(t0 + 200_000)]);
  // No time budget on the trace list: a loaded test machine must not shorten it.
  const app = createQueryApp({ clickhouse: ch, traceListBudgetMs: 120_000, ui: { focus: { label: 'the test services', prefixes: ['tool-', 'srv-'] } } });
  server = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' });
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

async function newPage(): Promise<{ page: Page; errors: string[] }> {
  const context = await (browser as Browser).newContext({ viewport: { width: 1400, height: 760 }, timezoneId: ZONE });
  const page = await context.newPage();
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  return { page, errors };
}

function shot(page: Page, name: string): Promise<Buffer> {
  mkdirSync('test-results', { recursive: true });
  return page.screenshot({ path: `test-results/${name}.png`, fullPage: true });
}

describe.skipIf(!have)('web UI in Chromium', () => {
  it('opens on traces, one row per trace, and a trace as a waterfall with axis, status codes and exceptions', async () => {
    const { page, errors } = await newPage();
    await page.goto(base + '/');
    const rows = page.getByTestId('trace-row');
    await rows.first().waitFor();
    // One row per trace: every span is in exactly one listed trace (4 requests through the 6-service
    // topology, 12 spans each, and the 8 spans of the crossing tools' calls).
    const list = (await (await fetch(`${base}/api/v1/traces?limit=50`)).json()) as { traces: Array<{ trace_id: string; span_count: number }> };
    expect(list.traces.reduce((n, t) => n + t.span_count, 0)).toBe(56);
    expect(new Set(list.traces.map((t) => t.trace_id)).size).toBe(list.traces.length);
    expect(await rows.count()).toBe(list.traces.length);
    const texts = await rows.allInnerTexts();
    const topo = texts.filter((t) => t.includes('GET /checkout'));
    expect(topo).toHaveLength(4);
    for (const t of topo) {
      expect(t).toMatch(/\b12\b/); // spans
      for (const s of ['nginx', 'service-a', 'redis', 'postgres', 'service-b', 'mariadb']) expect(t).toContain(s);
    }
    expect(topo.filter((t) => /error/.test(t))).toHaveLength(1);

    await rows.filter({ hasText: 'error' }).first().click();
    const wf = page.getByTestId('waterfall-row');
    await wf.first().waitFor();
    expect(await wf.count()).toBe(12);
    const ticks = await page.getByTestId('waterfall-axis').locator('.wf-tick').allInnerTexts();
    expect(ticks.length).toBeGreaterThanOrEqual(3);
    expect(ticks[0]).toBe('0 µs');
    expect(ticks.at(-1)).toBe('10.00 ms'); // the root client span lasts 10 ms
    const statuses = await page.getByTestId('waterfall-status').allInnerTexts();
    expect(statuses.filter((s) => s === '500').length).toBeGreaterThanOrEqual(2);
    expect(statuses).toContain('502');
    expect(await page.getByTestId('waterfall-exception').innerText()).toBe(EXCEPTION);
    await shot(page, 'query-ui-trace');
    expect(errors).toEqual([]);
  });

  it('offers the protocols the API describes in its filters, aliases with their protocol', async () => {
    const { page, errors } = await newPage();
    await page.goto(base + '/');
    const filter = page.getByTestId('protocol-filter').first();
    await filter.locator('option[value="grpc"]').waitFor({ state: 'attached' });
    const { protocols } = (await (await fetch(`${base}/api/v1/protocols`)).json()) as { protocols: Array<{ name: string; aliases: string[] }> };
    const values = await filter.locator('option').evaluateAll((os) => os.map((o) => (o as unknown as { value: string }).value));
    expect(values).toEqual(['', ...protocols.flatMap((d) => [d.name, ...d.aliases])]);
    expect(values).toContain('memcached'); // not in the list the page used to hard-code
    expect(await filter.locator('option[value="grpc"]').innerText()).toBe('grpc (http2)');
    expect(errors).toEqual([]);
  });

  it('accepts the trace id it shows, in the UI and in the API', async () => {
    const { page, errors } = await newPage();
    await page.goto(base + '/');
    await page.getByTestId('trace-row').first().click();
    await page.getByTestId('waterfall-row').first().waitFor();
    const traceId = (await page.getByTestId('trace-id').innerText()).trim();
    expect(traceId).toMatch(/^[0-9a-f]{32}$/);
    const rowsBefore = await page.getByTestId('waterfall-row').evaluateAll((els) => els.map((e) => e.getAttribute('data-id')));

    await page.reload();
    await page.getByTestId('trace-row').first().waitFor();
    await page.getByTestId('trace-id-input').fill(traceId);
    await page.getByTestId('trace-search-button').click();
    await expect.poll(() => page.getByTestId('trace-id').innerText()).toBe(traceId);
    const rowsAfter = await page.getByTestId('waterfall-row').evaluateAll((els) => els.map((e) => e.getAttribute('data-id')));
    expect(rowsAfter).toEqual(rowsBefore);

    const api = (await (await fetch(`${base}/api/v1/traces/${traceId}`)).json()) as { trace_id: string; spans: Array<{ span_id: string }> };
    expect(api.trace_id).toBe(traceId);
    expect(api.spans.map((s) => s.span_id)).toEqual(rowsBefore);
    expect((await fetch(`${base}/api/v1/traces/${'f'.repeat(32)}`)).status).toBe(404);
    expect(errors).toEqual([]);
  });

  it('keeps the detail panel in the viewport and shows local times with their zone', async () => {
    const { page, errors } = await newPage();
    await page.goto(base + '/');
    await page.getByTestId('trace-row').filter({ hasText: 'error' }).first().click();
    await page.getByTestId('waterfall-row').filter({ hasText: 'POST /price' }).filter({ hasText: 'service-b' }).click();
    const details = page.getByTestId('span-details');
    await expect.poll(() => details.innerText()).toContain(EXCEPTION);
    const box = await details.boundingBox();
    const vp = page.viewportSize();
    expect(box && vp).toBeTruthy();
    if (!box || !vp) return;
    expect(box.x + box.width).toBeLessThanOrEqual(vp.width);
    expect(box.height).toBeLessThanOrEqual(vp.height);
    expect(await details.evaluate((e) => e.scrollWidth <= e.clientWidth)).toBe(true); // the long URL wraps

    const span = failing[9];
    const expected = new Intl.DateTimeFormat('en-GB', { timeZone: ZONE, hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23' }).format(new Date(span.start_time_us / 1000));
    const start = await page.getByTestId('detail-start_time_us').innerText();
    expect(start).toContain(`${expected}.`);
    // Chromium may name the zone by an alias (Asia/Calcutta): take the name the page itself resolves.
    const zone = await page.evaluate(() => Intl.DateTimeFormat().resolvedOptions().timeZone);
    expect(['Asia/Kolkata', 'Asia/Calcutta']).toContain(zone);
    expect(start).toContain(`${zone} (UTC+05:30)`);
    expect(start).not.toContain(String(span.start_time_us));
    expect(await page.getByTestId('time-zone').innerText()).toContain(zone);
    await shot(page, 'query-ui-details');
    expect(errors).toEqual([]);
  });

  it('draws the map without overlapping labels, with rates, focused with a toggle for all', async () => {
    const { page, errors } = await newPage();
    await page.goto(base + '/');
    await page.getByTestId('tab-map').click();
    await page.getByTestId('map-edge').first().waitFor();
    // Focused: the configured services only.
    expect(await page.getByTestId('map-node').count()).toBe(4);
    expect(await page.getByTestId('map-edge').count()).toBe(4);
    await assertNoOverlaps(page);
    await shot(page, 'query-ui-map-focused');

    await page.getByTestId('map-focus').uncheck();
    await expect.poll(() => page.getByTestId('map-node').count(), { timeout: 15_000 }).toBe(11);
    const mysql = page.getByTestId('map-edge').filter({ hasText: 'mysql' });
    expect(await mysql.textContent()).toMatch(/mysql · 4 req · [0-9.]+\/(s|min|h) · 0 err/);
    await assertNoOverlaps(page);
    await shot(page, 'query-ui-map');

    await mysql.click();
    await page.getByTestId('waterfall-row').first().waitFor();
    expect(await page.getByTestId('waterfall-row').count()).toBe(12);
    expect(errors).toEqual([]);
  });
});

async function assertNoOverlaps(page: Page): Promise<void> {
  const boxes = await page.locator('[data-testid=map-edge-label] rect, [data-testid=map-node] rect').evaluateAll((rects) =>
    rects.map((r) => {
      const b = r.getBoundingClientRect();
      return { x: b.x, y: b.y, w: b.width, h: b.height, label: r.parentElement?.textContent ?? '' };
    }),
  );
  expect(boxes.length).toBeGreaterThan(0);
  const hits: string[] = [];
  for (let i = 0; i < boxes.length; i++) {
    for (let j = i + 1; j < boxes.length; j++) {
      const a = boxes[i];
      const b = boxes[j];
      if (a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h) hits.push(`${a.label} × ${b.label}`);
    }
  }
  expect(hits).toEqual([]);
}

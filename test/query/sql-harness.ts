/**
 * A query app over real embedded chDB for the SQL endpoint's attack, fuzz and limit tests: spans in
 * riptide.spans, a directory attacks aim files at (`PWN`), a loopback HTTP server attacks aim url()
 * and remote() at (`PORT`), and a snapshot of everything an attack could change outside the read.
 */
import { mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Hono } from 'hono';
import { createQueryApp } from '../../functions/query/app.ts';
import type { QueryAppOptions } from '../../functions/query/app.ts';
import { openClickHouse, queryRows } from '../../functions/storage/clickhouse.ts';
import type { ClickHouse } from '../../functions/storage/clickhouse.ts';
import { migrate } from '../../functions/storage/migrations.ts';
import { insertSpans, insertTagNames } from '../../functions/storage/span-store.ts';
import { requestSpans, serviceTagRows } from './fixtures.ts';

export interface SqlHarness {
  ch: ClickHouse;
  app: Hono;
  /** Where attacks try to write files (empty unless one got through). */
  pwnDir: string;
  /** Port of a loopback HTTP server that counts the requests it gets. */
  port: number;
  hits(): number;
  /** Replace PWN and PORT in an attack. */
  fill(sql: string): string;
  sql(q: string): Promise<{ status: number; error?: string; rows?: unknown[]; truncated?: boolean; ms: number }>;
  /** What an attack could change: files, databases, tables, row counts, the writer's settings, HTTP hits. */
  snapshot(): Promise<string>;
  close(): Promise<void>;
}

export async function openSqlHarness(options: Partial<QueryAppOptions> = {}): Promise<SqlHarness> {
  const dir = mkdtempSync(join(tmpdir(), 'riptide-sql-'));
  const pwnDir = join(dir, 'pwn');
  mkdirSync(pwnDir);
  let hits = 0;
  const server: Server = createServer((req, res) => {
    hits++;
    res.end('1\n');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  const ch = await openClickHouse({ dataDir: join(dir, 'data') });
  await migrate(ch);
  await insertTagNames(ch, serviceTagRows());
  const t0 = Math.floor(Date.now() / 1000 - 600) * 1e6;
  await insertSpans(ch, [1, 2, 3].flatMap((k) => requestSpans(k, t0 + k * 3_000)));
  const app = createQueryApp({ clickhouse: ch, ...options });
  const fill = (s: string): string => s.replaceAll('PWN', pwnDir).replaceAll('PORT', String(port));
  return {
    ch,
    app,
    pwnDir,
    port,
    hits: () => hits,
    fill,
    async sql(q) {
      const t = performance.now();
      const res = await app.request('/api/v1/sql', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ sql: fill(q) }) });
      const body = (await res.json()) as { error?: string; rows?: unknown[]; truncated?: boolean };
      return { status: res.status, ...body, ms: performance.now() - t };
    },
    async snapshot() {
      const files = readdirSync(pwnDir);
      const dbs = await queryRows<{ name: string }>(ch, 'SELECT name FROM system.databases ORDER BY name');
      const tables = await queryRows<{ t: string }>(ch, "SELECT concat(database, '.', name) AS t FROM system.tables WHERE database NOT IN ('system', 'INFORMATION_SCHEMA', 'information_schema') ORDER BY t");
      const counts = await queryRows<{ n: number }>(ch, 'SELECT count() AS n FROM riptide.spans');
      const settings = await queryRows<Record<string, unknown>>(
        ch,
        "SELECT getSetting('readonly') AS ro, getSetting('max_memory_usage') AS mem, getSetting('max_execution_time') AS t, getSetting('max_result_rows') AS r, currentDatabase() AS db",
      );
      return JSON.stringify({ files, dbs, tables, counts, settings, hits });
    },
    async close() {
      await ch.close();
      await new Promise<void>((r) => server.close(() => r()));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * Versioned schema migrations from `infra/clickhouse/`: `single/NNNN_name.sql` for one node and
 * embedded chDB, `cluster/NNNN_name.sql` (Replicated* + Distributed, ON CLUSTER) rendered from it by
 * functions/storage/cluster-ddl.ts (never edited by hand; a test fails when stale). Applied in
 * version order; applied versions are recorded in `riptide.schema_migrations`. Statements are
 * idempotent (IF NOT EXISTS), so two replicas migrating at once is harmless.
 *
 * @example
 *   await migrate(ch, { ttlDays: 7 });                           // single / embedded
 *   await migrate(ch, { mode: 'cluster', cluster: 'prod' });     // a cluster
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ClickHouse } from './clickhouse.ts';
import { queryRows } from './clickhouse.ts';

export const MIGRATIONS_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'infra', 'clickhouse');

export interface MigrateOptions {
  mode?: 'single' | 'cluster';
  /** Cluster name for ON CLUSTER (cluster mode). */
  cluster?: string;
  /** Span retention in days (default 7); dictionaries keep one day more. */
  ttlDays?: number;
  dir?: string;
}

export interface Migration {
  version: number;
  name: string;
  statements: string[];
}

/** Split a .sql file into statements: `;` at the end of a line ends one; `--` comments dropped. */
export function splitStatements(sql: string): string[] {
  const out: string[] = [];
  let cur: string[] = [];
  for (const line of sql.split('\n')) {
    const trimmed = line.trim();
    if (trimmed.startsWith('--') || trimmed === '') continue;
    cur.push(line);
    if (trimmed.endsWith(';')) {
      out.push(cur.join('\n').replace(/;\s*$/, ''));
      cur = [];
    }
  }
  if (cur.join('').trim()) out.push(cur.join('\n'));
  return out;
}

export function loadMigrations(options: MigrateOptions = {}): Migration[] {
  const mode = options.mode ?? 'single';
  const dir = join(options.dir ?? MIGRATIONS_DIR, mode);
  const ttl = options.ttlDays ?? 7;
  // DateTime ends in 2106: a TTL past it wraps around and expires every row at insert time.
  if (!Number.isInteger(ttl) || ttl < 1 || ttl > 20_000) throw new RangeError(`ttlDays must be an integer in 1..20000, got ${ttl}`);
  const vars: Record<string, string> = { ttl_days: String(ttl), tag_ttl_days: String(ttl + 1), cluster: options.cluster ?? 'default' };
  return readdirSync(dir)
    .filter((f) => /^\d{4}_.+\.sql$/.test(f))
    .sort()
    .map((f) => {
      const text = readFileSync(join(dir, f), 'utf8').replace(/\{(ttl_days|tag_ttl_days|cluster)\}/g, (_, k: string) => vars[k]);
      return { version: Number(f.slice(0, 4)), name: f.replace(/\.sql$/, ''), statements: splitStatements(text) };
    });
}

/** Apply every migration not yet recorded. Returns the versions applied now. */
export async function migrate(ch: ClickHouse, options: MigrateOptions = {}): Promise<number[]> {
  const migrations = loadMigrations(options);
  const onCluster = options.mode === 'cluster' ? ` ON CLUSTER '${options.cluster ?? 'default'}'` : '';
  await ch.client.command({ query: `CREATE DATABASE IF NOT EXISTS riptide${onCluster}` });
  await ch.client.command({
    query: `CREATE TABLE IF NOT EXISTS riptide.schema_migrations${onCluster} (version UInt32, name String, applied_at DateTime('UTC'))
            ENGINE = ReplacingMergeTree(applied_at) PARTITION BY toYYYYMM(applied_at) ORDER BY version`,
  });
  const done = new Set((await queryRows<{ version: number }>(ch, 'SELECT DISTINCT version FROM riptide.schema_migrations')).map((r) => Number(r.version)));
  const applied: number[] = [];
  for (const m of migrations) {
    if (done.has(m.version)) continue;
    for (const statement of m.statements) await ch.client.command({ query: statement });
    await ch.client.insert({ table: 'riptide.schema_migrations', values: [{ version: m.version, name: m.name, applied_at: Math.floor(Date.now() / 1000) }], format: 'JSONEachRow' });
    applied.push(m.version);
  }
  return applied;
}

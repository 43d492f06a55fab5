/**
 * The cluster schema is rendered from the single-node one, never written by hand:
 * `infra/clickhouse/cluster/NNNN_name.sql` = {@link renderClusterMigration} of `single/NNNN_name.sql`.
 *
 *   - `CREATE DATABASE|VIEW … riptide.x` gain `ON CLUSTER '{cluster}'`;
 *   - each `CREATE TABLE riptide.x` becomes the replica-local `riptide.x_local ON CLUSTER` with the
 *     Replicated engine of the same family (same engine arguments after the ZooKeeper path and
 *     replica), minus settings that only exist for non-replicated tables, followed by a
 *     `Distributed` table under the name the code uses, sharded by {@link SHARD_KEYS};
 *   - `INSERT INTO riptide.x …` stays as it is (it goes through the Distributed tables);
 *   - each `ALTER TABLE riptide.x` runs on the local table, and when it changes columns, also on the
 *     Distributed one (without codecs, which Distributed tables do not store).
 *
 *   npx tsx functions/storage/cluster-ddl.ts           # rewrite infra/clickhouse/cluster/
 *   npx tsx functions/storage/cluster-ddl.ts --check   # exit 1 when a cluster file is stale
 *
 * A new table needs a line in {@link SHARD_KEYS} (rendering fails without one): how rows are
 * spread decides which rows one shard's ReplacingMergeTree can collapse.
 */
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MIGRATIONS_DIR } from './migrations.ts';

/** Sharding key of each table's Distributed table. Versions of one row must land on one shard. */
export const SHARD_KEYS: Readonly<Record<string, string>> = {
  spans: 'sipHash64(span_id)',
  tag_names: 'id',
  tag_labels: 'id',
  custom_tags: 'id',
  processed_slots: 'sipHash64(agent_id)',
  processed_batches: 'sipHash64(key)',
  tag_ids: 'sipHash64(kind, key)',
  span_writes: 'toUInt32(minute)',
  rollup_minutes: 'toUInt32(minute)',
  edge_minutes: 'toUInt32(minute)',
  spans_recent: 'sipHash64(span_id)',
  settled_slots: 'sipHash64(agent_id)',
  protocol_descriptors: 'sipHash64(name)',
};

const ON = "ON CLUSTER '{cluster}'";
const ZK = "'/clickhouse/tables/{shard}/riptide/{table}', '{replica}'";
/** Settings a Replicated table refuses or ignores. */
const NON_REPLICATED_SETTINGS = ['non_replicated_deduplication_window'];

/** One statement of a .sql file with the comment lines right before it. */
interface Chunk {
  comments: string[];
  statement: string;
}

function chunks(sql: string): { header: string[]; chunks: Chunk[] } {
  const lines = sql.split('\n');
  const header: string[] = [];
  let i = 0;
  while (i < lines.length && lines[i].startsWith('--')) header.push(lines[i++]);
  const out: Chunk[] = [];
  let comments: string[] = [];
  let cur: string[] = [];
  for (; i < lines.length; i++) {
    const line = lines[i];
    const t = line.trim();
    if (cur.length === 0 && (t === '' || t.startsWith('--'))) {
      if (t.startsWith('--')) comments.push(line);
      continue;
    }
    cur.push(line);
    if (t.endsWith(';')) {
      out.push({ comments, statement: cur.join('\n') });
      comments = [];
      cur = [];
    }
  }
  if (cur.length) throw new Error(`statement without a closing ";": ${cur[0]}`);
  return { header, chunks: out };
}

function renderCreateTable(s: string, file: string): string[] {
  // `CREATE TABLE riptide.x (columns…)` or `CREATE TABLE riptide.x AS riptide.y` (y's columns).
  const m = /^CREATE TABLE IF NOT EXISTS riptide\.(\w+)(?: AS riptide\.(\w+))?\n/.exec(s);
  if (!m) throw new Error(`${file}: unexpected CREATE TABLE form: ${s.split('\n')[0]}`);
  const table = m[1];
  const shard = SHARD_KEYS[table];
  if (shard === undefined) throw new Error(`${file}: no sharding key for riptide.${table} (add it to SHARD_KEYS in functions/storage/cluster-ddl.ts)`);
  let local = s.replace(m[0], `CREATE TABLE IF NOT EXISTS riptide.${table}_local ${ON}${m[2] ? ` AS riptide.${m[2]}_local` : ''}\n`);
  local = local.replace(/^ENGINE = (\w*MergeTree)(?:\((.*)\))?$/m, (_all, engine: string, args?: string) => `ENGINE = Replicated${engine}(${ZK}${args ? `, ${args}` : ''})`);
  if (!/ENGINE = Replicated/.test(local)) throw new Error(`${file}: riptide.${table} has no MergeTree engine line to replicate`);
  local = local.replace(/^SETTINGS (.*);$/m, (_all, list: string) => {
    const kept = list.split(/,\s*/).filter((kv) => !NON_REPLICATED_SETTINGS.includes(kv.split('=')[0].trim()));
    return kept.length ? `SETTINGS ${kept.join(', ')};` : ';';
  });
  local = local.replace(/\n;$/, ';');
  const dist = `CREATE TABLE IF NOT EXISTS riptide.${table} ${ON} AS riptide.${table}_local\nENGINE = Distributed('{cluster}', 'riptide', '${table}_local', ${shard});`;
  return [local, dist];
}

function renderAlter(s: string): string[] {
  const m = /^ALTER TABLE riptide\.(\w+)/.exec(s) as RegExpExecArray;
  const table = m[1];
  const local = s.replace(m[0], `ALTER TABLE riptide.${table}_local ${ON}`);
  if (!/\b(ADD|MODIFY|DROP|RENAME) COLUMN\b/.test(s)) return [local];
  // Distributed tables hold no data: the column list follows the local one, codecs do not apply.
  const dist = s.replace(m[0], `ALTER TABLE riptide.${table} ${ON}`).replace(/\s+CODEC\([^()]*(?:\([^()]*\)[^()]*)*\)/g, '');
  return [local, dist];
}

/** The cluster variant of one single-node migration file. */
export function renderClusterMigration(sql: string, file: string): string {
  const { header, chunks: parts } = chunks(sql);
  const out: string[] = [
    `-- GENERATED from ../single/${file} by functions/storage/cluster-ddl.ts. Do not edit: change the single-node file and regenerate.`,
    "-- Replicated* local tables on every replica, Distributed tables under the names the code uses ({cluster} is substituted by the runner).",
    ...header,
  ];
  for (const c of parts) {
    const s = c.statement;
    let rendered: string[];
    if (/^CREATE DATABASE IF NOT EXISTS riptide;$/.test(s)) rendered = [s.replace(/;$/, ` ${ON};`)];
    else if (/^CREATE TABLE /.test(s)) rendered = renderCreateTable(s, file);
    else if (/^ALTER TABLE riptide\.\w+/.test(s)) rendered = renderAlter(s);
    else if (/^CREATE VIEW IF NOT EXISTS riptide\.\w+ AS/.test(s)) rendered = [s.replace(/^(CREATE VIEW IF NOT EXISTS riptide\.\w+) AS/, `$1 ${ON} AS`)];
    // Data statements go through the Distributed tables, as they are.
    else if (/^INSERT INTO riptide\.\w+ /.test(s)) rendered = [s];
    else throw new Error(`${file}: no cluster rendering for: ${s.split('\n')[0]}`);
    out.push('', ...c.comments, rendered.join('\n\n'));
  }
  return out.join('\n') + '\n';
}

/** Every cluster file as rendered from the single-node directory: file name → text. */
export function renderClusterDir(dir = MIGRATIONS_DIR): Map<string, string> {
  const out = new Map<string, string>();
  for (const f of readdirSync(join(dir, 'single')).filter((x) => /^\d{4}_.+\.sql$/.test(x)).sort()) {
    out.set(f, renderClusterMigration(readFileSync(join(dir, 'single', f), 'utf8'), f));
  }
  return out;
}

function main(): void {
  const check = process.argv.includes('--check');
  let stale = 0;
  for (const [f, text] of renderClusterDir()) {
    const path = join(MIGRATIONS_DIR, 'cluster', f);
    let old = '';
    try {
      old = readFileSync(path, 'utf8');
    } catch {
      // a new migration
    }
    if (old === text) continue;
    stale++;
    if (check) console.error(`functions/storage/cluster-ddl.ts: infra/clickhouse/cluster/${f} is stale; run npx tsx functions/storage/cluster-ddl.ts`);
    else {
      writeFileSync(path, text);
      console.log(`functions/storage/cluster-ddl.ts: wrote infra/clickhouse/cluster/${f}`);
    }
  }
  if (check && stale > 0) process.exitCode = 1;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) main();

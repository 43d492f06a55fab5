import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { renderClusterDir, renderClusterMigration } from './cluster-ddl.ts';
import { MIGRATIONS_DIR, splitStatements } from './migrations.ts';

describe('cluster DDL rendered from the single-node migrations', () => {
  it('infra/clickhouse/cluster/ is what functions/storage/cluster-ddl.ts renders (regenerate after editing single/)', () => {
    for (const [f, text] of renderClusterDir()) expect(readFileSync(join(MIGRATIONS_DIR, 'cluster', f), 'utf8'), f).toBe(text);
  });

  it('replicates each table, adds its Distributed table, alters both, and drops non-replicated settings', () => {
    const sql = [
      'CREATE TABLE IF NOT EXISTS riptide.spans\n(\n    span_id String,\n    n UInt64\n)\nENGINE = ReplacingMergeTree(_version, _deleted)\nORDER BY span_id\nSETTINGS non_replicated_deduplication_window = 1000, index_granularity = 8192;',
      'ALTER TABLE riptide.spans\n    MODIFY COLUMN n UInt64 CODEC(ZSTD(1));',
      'ALTER TABLE riptide.spans MATERIALIZE INDEX idx;',
    ].join('\n\n');
    const out = splitStatements(renderClusterMigration(sql, '0099_test.sql'));
    expect(out[0]).toMatch(/^CREATE TABLE IF NOT EXISTS riptide\.spans_local ON CLUSTER '\{cluster\}'/);
    expect(out[0]).toMatch(/ENGINE = ReplicatedReplacingMergeTree\('\/clickhouse\/tables\/\{shard\}\/riptide\/\{table\}', '\{replica\}', _version, _deleted\)/);
    expect(out[0]).toMatch(/SETTINGS index_granularity = 8192$/);
    expect(out[1]).toBe("CREATE TABLE IF NOT EXISTS riptide.spans ON CLUSTER '{cluster}' AS riptide.spans_local\nENGINE = Distributed('{cluster}', 'riptide', 'spans_local', sipHash64(span_id))");
    expect(out[2]).toBe("ALTER TABLE riptide.spans_local ON CLUSTER '{cluster}'\n    MODIFY COLUMN n UInt64 CODEC(ZSTD(1))");
    expect(out[3]).toBe("ALTER TABLE riptide.spans ON CLUSTER '{cluster}'\n    MODIFY COLUMN n UInt64");
    expect(out[4]).toBe("ALTER TABLE riptide.spans_local ON CLUSTER '{cluster}' MATERIALIZE INDEX idx");
    expect(out).toHaveLength(5);
  });

  it('refuses a table without a sharding key rather than guess one', () => {
    expect(() => renderClusterMigration('CREATE TABLE IF NOT EXISTS riptide.mystery\n(\n    a UInt8\n)\nENGINE = MergeTree\nORDER BY a;', '0099_x.sql')).toThrow(/no sharding key for riptide\.mystery/);
  });
});

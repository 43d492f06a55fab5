import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openClickHouse, queryRows } from '../../functions/storage/clickhouse.ts';
import type { ClickHouse } from '../../functions/storage/clickhouse.ts';
import { loadMigrations, migrate } from '../../functions/storage/migrations.ts';
import { dt64, insertSpans } from '../../functions/storage/span-store.ts';
import { buildSpans } from '../../functions/span-builder/span-builder.ts';
import { DenseTagIds } from '../../functions/tag-encoder/tag-ids.ts';
import { tagId } from '../../functions/tag-encoder/tag-id.ts';
import { BASE_SLOT, cutBatches, httpReq, httpResp, msg, proc } from './fixtures.ts';

let dir: string;
let ch: ClickHouse;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'riptide-storage-'));
  ch = await openClickHouse({ dataDir: dir });
});
afterAll(async () => {
  await ch.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('ClickHouse storage (embedded chDB through @clickhouse/client)', () => {
  it('applies the versioned migrations once', async () => {
    // The fixtures are dated 2023: a long TTL keeps FINAL (which applies TTL) from hiding them.
    // Every numbered file in infra/clickhouse/single, in order, exactly once.
    const files = readdirSync(join(import.meta.dirname, '../../infra/clickhouse/single')).filter((f) => /^\d{4}_.*\.sql$/.test(f)).sort();
    expect(files.length).toBeGreaterThanOrEqual(8);
    expect(await migrate(ch, { ttlDays: 20000 })).toEqual(files.map((f) => Number(f.slice(0, 4))));
    expect(await migrate(ch)).toEqual([]);
    const tables = await queryRows<{ name: string; engine: string; partition_key: string }>(ch, "SELECT name, engine, partition_key FROM system.tables WHERE database = 'riptide' AND engine LIKE '%MergeTree' ORDER BY name");
    expect(tables.map((t) => t.name)).toEqual(['custom_tags', 'edge_minutes', 'processed_batches', 'processed_slots', 'protocol_descriptors', 'rollup_minutes', 'schema_migrations', 'settled_slots', 'span_writes', 'spans', 'spans_recent', 'tag_ids', 'tag_labels', 'tag_names']);
    for (const t of tables) expect(t.partition_key, t.name).not.toBe('');
    const ttl = await queryRows<{ name: string; create_table_query: string }>(ch, "SELECT name, create_table_query FROM system.tables WHERE database = 'riptide' AND engine LIKE '%MergeTree' AND name != 'schema_migrations'");
    for (const t of ttl) expect(t.create_table_query, t.name).toMatch(/ TTL /);
  });

  it('has a cluster variant for every single-node migration', () => {
    const single = loadMigrations({ mode: 'single' });
    const cluster = loadMigrations({ mode: 'cluster', cluster: 'prod' });
    expect(cluster.map((m) => m.version)).toEqual(single.map((m) => m.version));
    const text = cluster.flatMap((m) => m.statements).join('\n');
    expect(text).toMatch(/ReplicatedReplacingMergeTree/);
    expect(text).toMatch(/ON CLUSTER 'prod'/);
    expect(text).toMatch(/Distributed\('prod', 'riptide', 'spans_local'/);
  });

  it('stores spans with microsecond times; a re-inserted batch adds no duplicate', async () => {
    const c = { socketId: 5, pid: 9, processName: 'curl', role: 'client' as const };
    const batches = cutBatches('n1', [msg(c, 10, 'egress', [httpReq('/a')], { tcpSeq: 3 }), msg(c, 12.5, 'ingress', [httpResp(200)], { tcpSeq: 9 })], [proc(9, 'curl')]);
    const { spans } = buildSpans({ agentId: 'n1', slot: BASE_SLOT, prev: [], cur: [batches.get(BASE_SLOT)!], next: [] });
    await insertSpans(ch, spans, 'n1/1');
    await insertSpans(ch, spans, 'n1/1'); // a retried insert: dropped by the dedup token
    await insertSpans(ch, spans, 'n1/1-again'); // a re-run: collapsed by ReplacingMergeTree
    const raw = await queryRows<{ c: string }>(ch, 'SELECT count() AS c FROM riptide.spans');
    expect(Number(raw[0].c)).toBeLessThanOrEqual(2); // 1 once a background merge ran
    const rows = await queryRows<{ span_id: string; us: number; duration_us: number; side: string; x: number }>(
      ch,
      'SELECT span_id, toUnixTimestamp64Micro(start_time) AS us, duration_us, side, req_tcp_seq AS x FROM riptide.spans FINAL',
    );
    expect(rows).toEqual([{ span_id: spans[0].span_id, us: spans[0].start_time_us, duration_us: 2500, side: 'client', x: 3 }]);
    const view = await queryRows<{ n: string }>(ch, 'SELECT count() AS n FROM riptide.spans_view');
    expect(Number(view[0].n)).toBe(1);
  });

  it('hands out dense tag ids, records them before use, and keeps them across restarts', async () => {
    const ids = await DenseTagIds.load(ch);
    expect([ids.id('service', 'shop/cart'), ids.id('service', 'shop/checkout'), ids.id('pod', 'shop/cart-1'), ids.id('service', 'shop/cart')]).toEqual([1, 2, 3, 1]);
    await ids.flush(ch);
    const again = await DenseTagIds.load(ch);
    expect([again.id('service', 'shop/checkout'), again.id('service', 'shop/new')]).toEqual([2, 4]);
    const striped = await DenseTagIds.load(ch, { stripe: 3 });
    expect(striped.id('service', 'shop/cart')).toBe(1); // known ids are shared across stripes
    expect(striped.id('service', 'shop/other')).toBe(3 * 2 ** 24 + 1);
    const rows = await queryRows<{ kind: string; key: string; id: number; entity: number }>(ch, 'SELECT kind, key, id, entity FROM riptide.tag_ids ORDER BY kind, key');
    expect(rows).toEqual([
      { kind: 'pod', key: 'shop/cart-1', id: 3, entity: tagId('pod', 'shop/cart-1') },
      { kind: 'service', key: 'shop/cart', id: 1, entity: tagId('service', 'shop/cart') },
      { kind: 'service', key: 'shop/checkout', id: 2, entity: tagId('service', 'shop/checkout') },
    ]);
  });

  it('formats DateTime64(6) exactly', () => {
    expect(dt64(1700000000000001)).toBe('1700000000.000001');
    expect(dt64(1700000000123456)).toBe('1700000000.123456');
  });
});

/**
 * Smart encoding on disk: the same synthetic spans stored three ways, in one run —
 *   int:  tags as the dense integer ids the tag encoder writes (UInt64 CODEC(ZSTD(1)), migration 0003),
 *   str:  the same tags as String columns,
 *   lc:   the same tags as LowCardinality(String) columns —
 * reporting bytes on disk (tag columns and whole table, after merges) and the CPU of each insert.
 *
 *   npx tsx test/bench/tag-storage.bench.ts [--rows 1000000]      (the spec: --rows 10000000)
 *
 * Runs in embedded chDB through @clickhouse/client (the same path as the functions). CPU is this
 * process's CPU time (chDB runs in-process) around each INSERT … SELECT from a Memory table that
 * holds the spans with both the names and the ids, so every variant pays the same read cost.
 *
 * Dense ids are simulated in SQL as what DenseTagIds hands out (small integers, one sequence for all
 * kinds: offsets keep kinds apart); hash ids as
 * sipHash64 truncated to 53 bits, statistically what tag-id.ts produces.
 *
 * The shape: 50 hosts/nodes, 20 namespaces, 200 services, 2,000 pods (one container and two
 * processes each), Zipf-like popularity; rows time-ordered over one hour; the table keeps the
 * production ORDER BY (minute, host, process, span_id) for each variant.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openClickHouse, queryRows } from '../../functions/storage/clickhouse.ts';

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : def;
}
const ROWS = arg('rows', 1_000_000);

const TAGS = ['host', 'process', 'container', 'pod', 'service', 'node', 'namespace', 'peer_pod', 'peer_service'];
const dir = mkdtempSync(join(tmpdir(), 'riptide-tagbench-'));
const ch = await openClickHouse({ dataDir: dir });
const cmd = (query: string) => ch.client.command({ query });

try {
  // Indices: pod p (skewed), its service p % 200, namespace service % 20, node p % 50, processes 2p, 2p+1.
  const idExpr = (kind: string, key: string) => `bitAnd(sipHash64(concat('${kind}:', ${key})), 9007199254740991)`;
  const names = {
    host: `concat('ip-10-0-', toString(pod % 50), '-', toString(17 + pod % 50), '.eu-west-1.compute.internal')`,
    process: `concat(['java', 'node', 'python3', 'nginx', 'envoy'][(pod * 2 + proc) % 5 + 1], ' pid ', toString(1000 + pod * 2 + proc))`,
    container: `lower(hex(sipHash128(toString(pod))))`,
    pod: `concat(svc_name, '-', substring(lower(hex(sipHash64(svc))), 1, 9), '-', substring(lower(hex(sipHash64(pod))), 1, 5))`,
    service: `svc_name`,
    node: `concat('ip-10-0-', toString(pod % 50), '-', toString(17 + pod % 50), '.eu-west-1.compute.internal')`,
    namespace: `concat('team-', toString(svc % 20))`,
    peer_pod: `concat(peer_svc_name, '-', substring(lower(hex(sipHash64(peer_svc))), 1, 9), '-', substring(lower(hex(sipHash64(peer))), 1, 5))`,
    peer_service: `peer_svc_name`,
  } as Record<string, string>;
  const words = `['checkout', 'cart', 'catalog', 'payments', 'shipping', 'users', 'auth', 'search', 'recommendations', 'inventory']`;
  process.stdout.write(`generating ${ROWS.toLocaleString('en-US')} synthetic spans…\n`);
  await cmd(`CREATE TABLE src ENGINE = Memory AS
    SELECT ts, span_id, ${TAGS.map((t) => `${names[t]} AS ${t}_name`).join(', ')},
           ${TAGS.map((t) => `${idExpr(t, names[t])} AS ${t}_id`).join(', ')},
           ${TAGS.map((t) => `toUInt32(dense_${t}) AS ${t}_dense`).join(', ')}
    FROM (
      SELECT toDateTime64('2026-11-20 10:00:00', 6, 'UTC') + toIntervalMicrosecond(intDiv(number * 3600000000, ${ROWS})) AS ts,
             lower(hex(sipHash64(number))) AS span_id,
             toUInt32(floor(pow(randCanonical(number), 2.5) * 2000)) AS pod,
             number % 2 AS proc,
             pod % 200 AS svc,
             concat(${words}[svc % 10 + 1], '-', toString(intDiv(svc, 10))) AS svc_name,
             toUInt32(floor(pow(randCanonical(number + 7), 2.5) * 2000)) AS peer,
             peer % 200 AS peer_svc,
             concat(${words}[peer_svc % 10 + 1], '-', toString(intDiv(peer_svc, 10))) AS peer_svc_name,
             pod % 50 + 1 AS dense_host, 100 + pod * 2 + proc AS dense_process, 5000 + pod AS dense_container, 7000 + pod AS dense_pod,
             9000 + svc AS dense_service, 9400 + pod % 50 AS dense_node, 9300 + svc % 20 AS dense_namespace, 7000 + peer AS dense_peer_pod, 9000 + peer_svc AS dense_peer_service
      FROM numbers(${ROWS}))`);

  const variants = [
    // What riptide.spans stores (migration 0003): dense per-kind ids (tag-ids.ts) in UInt64 + ZSTD.
    { name: 'int', type: 'UInt64 CODEC(ZSTD(1))', col: (t: string) => `${t}_dense`, label: 'integer ids, as stored (dense, UInt64 ZSTD)' },
    { name: 'str', type: 'String', col: (t: string) => `${t}_name`, label: 'String' },
    { name: 'lc', type: 'LowCardinality(String)', col: (t: string) => `${t}_name`, label: 'LowCardinality(String)' },
    // For the record: the alternatives we measured before choosing.
    { name: 'hash', type: 'UInt64', col: (t: string) => `${t}_id`, label: '(alt) 53-bit hash ids, UInt64 LZ4' },
    { name: 'hashz', type: 'UInt64 CODEC(ZSTD(1))', col: (t: string) => `${t}_id`, label: '(alt) 53-bit hash ids, UInt64 ZSTD' },
    { name: 'd32', type: 'UInt32 CODEC(ZSTD(1))', col: (t: string) => `${t}_dense`, label: '(alt) dense ids, UInt32 ZSTD' },
    { name: 'strz', type: 'String CODEC(ZSTD(1))', col: (t: string) => `${t}_name`, label: '(alt) String ZSTD' },
  ];

  const results: Array<{ label: string; tagBytes: number; tableBytes: number; cpu: number; wall: number }> = [];
  for (const v of variants) {
    await cmd(`CREATE TABLE t_${v.name} (start_time DateTime64(6, 'UTC'), span_id String, ${TAGS.map((t) => `${t} ${v.type}`).join(', ')})
      ENGINE = MergeTree ORDER BY (toStartOfMinute(start_time), host, process, span_id)`);
    const c0 = process.cpuUsage();
    const w0 = Date.now();
    await cmd(`INSERT INTO t_${v.name} SELECT ts, span_id, ${TAGS.map((t) => v.col(t)).join(', ')} FROM src`);
    const cpu = process.cpuUsage(c0);
    const wall = (Date.now() - w0) / 1000;
    await cmd(`OPTIMIZE TABLE t_${v.name} FINAL`);
    const [sizes] = await queryRows<{ tag: number; total: number }>(
      ch,
      `SELECT sumIf(data_compressed_bytes, name NOT IN ('start_time', 'span_id')) AS tag, sum(data_compressed_bytes) AS total FROM system.columns WHERE database = currentDatabase() AND table = 't_${v.name}'`,
    );
    const [disk] = await queryRows<{ bytes: number }>(ch, `SELECT sum(bytes_on_disk) AS bytes FROM system.parts WHERE active AND table = 't_${v.name}'`);
    results.push({ label: v.label, tagBytes: Number(sizes.tag), tableBytes: Number(disk.bytes), cpu: (cpu.user + cpu.system) / 1e6, wall });
  }
  const mib = (b: number) => (b / 1048576).toFixed(1);
  const int = results[0];
  process.stdout.write(`\n${ROWS.toLocaleString('en-US')} spans, ${TAGS.length} tag columns\n`);
  process.stdout.write(`| tags as | tag columns on disk | whole table on disk | vs integer (tag columns) | insert CPU | insert wall |\n|---|---|---|---|---|---|\n`);
  for (const r of results) {
    process.stdout.write(`| ${r.label} | ${mib(r.tagBytes)} MiB | ${mib(r.tableBytes)} MiB | ${(r.tagBytes / int.tagBytes).toFixed(2)}x | ${r.cpu.toFixed(2)} s | ${r.wall.toFixed(2)} s |\n`);
  }
  process.stdout.write(`\nString / integer: ${(results[1].tagBytes / int.tagBytes).toFixed(2)}x on the tag columns (target >= 4x), ${(results[1].tableBytes / int.tableBytes).toFixed(2)}x on the whole table; insert CPU ${(results[1].cpu / int.cpu).toFixed(2)}x\n`);
  process.stdout.write(`LowCardinality / integer: ${(results[2].tagBytes / int.tagBytes).toFixed(2)}x on the tag columns; insert CPU ${(results[2].cpu / int.cpu).toFixed(2)}x\n`);
} finally {
  await ch.close();
  rmSync(dir, { recursive: true, force: true });
}

/**
 * Trace assembly and service-map latency on embedded chDB.
 *
 *   npx tsx test/bench/trace-assembly.ts                       # 1M background spans (quick)
 *   npx tsx test/bench/trace-assembly.ts --spans 10000000      # the DESIGN.md target: 10M
 *
 * Background: N spans spread over one hour (4 hosts, 200 processes, random TCP sequences and
 * syscall-trace ids, five protocols), generated inside ClickHouse with INSERT … SELECT. Foreground:
 * 20 requests of 50 spans each (curl → nginx → service-a → 23 Redis calls), inserted through the
 * storage module at random times in the hour. Each is assembled from 5 random seed spans; every
 * result must hold exactly its 50 spans. Then the service map over the whole hour, 5 times.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ClickHouseSpanSource, assembleRecords } from '../../functions/query/clickhouse-source.ts';
import { TagNames } from '../../functions/query/names.ts';
import { serviceMap } from '../../functions/query/service-map.ts';
import type { SpanRow } from '../../functions/span-builder/span-row.ts';
import { openClickHouse, queryRows } from '../../functions/storage/clickhouse.ts';
import { migrate } from '../../functions/storage/migrations.ts';
import { insertSpans, insertTagNames } from '../../functions/storage/span-store.ts';
import { exchange, serviceTagRows } from '../query/fixtures.ts';

const args = process.argv.slice(2);
const flag = (name: string, def: number): number => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : def;
};
const N = flag('spans', 1_000_000);
/** --dir PATH keeps the data between runs (loaded once, reused when it already holds N spans). */
const keepDir = args.includes('--dir') ? args[args.indexOf('--dir') + 1] : undefined;
const TRACES = flag('traces', 20);
const SEEDS = flag('seeds', 5);
/** --window-ms overrides the short search window (default: the library's). */
const OPTS = args.includes('--window-ms') ? { windowUs: flag('window-ms', 2000) * 1000 } : {};
const HOUR = 3600e6;

/** One 50-span request: curl → nginx → service-a, which makes 23 Redis calls in a chain of syscall ids. */
function wideRequest(k: number, t: number): SpanRow[] {
  const id = (x: number): number => 9e12 + k * 1000 + x;
  const seq = (x: number): number => ((k * 7919 + x * 104729 + 12345) % 4_000_000_000) + 1;
  const hex = (x: number): string => `${(0xb000 + k).toString(16)}${x.toString(16).padStart(6, '0')}`;
  const a = { name: 'python3', service: 'service-a', pid: 3, tid: 30 + k };
  const rows = [
    ...exchange({ id: hex(1), client: { name: 'curl', pid: 5000 + k, tid: 5000 + k }, server: { name: 'nginx', service: 'nginx', pid: 2, tid: 2 }, start: t, end: t + 50_000, proto: 'http1', port: 80, seq: seq(1), csys: [0, id(900)], ssys: [id(1), id(2)], req: ['GET', '/wide'], code: 200 }),
    ...exchange({ id: hex(2), client: { name: 'nginx', service: 'nginx', pid: 2, tid: 2 }, server: a, start: t + 100, end: t + 49_900, proto: 'http1', port: 8080, seq: seq(2), csys: [id(1), id(2)], ssys: [id(10), id(10 + 23)], req: ['GET', '/wide'], code: 200 }),
  ];
  for (let i = 0; i < 23; i++) {
    const s = t + 200 + i * 2000;
    rows.push(...exchange({ id: hex(10 + i), client: a, server: { name: 'redis-server', service: 'redis', pid: 4, tid: 4 }, start: s, end: s + 1500, proto: 'redis', port: 6379, seq: seq(10 + i), csys: [id(10 + i), id(11 + i)], ssys: [id(500 + i), id(500 + i)], req: ['GET', `key:${i}`], code: -1 }));
  }
  return rows;
}

const pct = (xs: number[], p: number): number => {
  const s = [...xs].sort((x, y) => x - y);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};

async function main(): Promise<void> {
  const dir = keepDir ?? mkdtempSync(join(tmpdir(), 'riptide-bench-trace-'));
  const ch = await openClickHouse({ dataDir: dir });
  try {
    await migrate(ch);
    const existing = Number((await queryRows<{ n: number }>(ch, 'SELECT count() AS n FROM riptide.spans'))[0].n);
    const reuse = keepDir !== undefined && existing >= N;
    const T0 = reuse
      ? Number((await queryRows<{ t: number }>(ch, 'SELECT toUnixTimestamp64Micro(min(start_time)) AS t FROM riptide.spans'))[0].t)
      : Math.floor(Date.now() / 1000 - 2 * 3600) * 1e6;
    if (!reuse) await insertTagNames(ch, serviceTagRows());
    let t = performance.now();
    // Background traffic, generated in ClickHouse (a batch per 1M rows keeps memory flat).
    for (let off = 0; off < (reuse ? 0 : N); off += 1_000_000) {
      const n = Math.min(1_000_000, N - off);
      await ch.client.command({
        query: `INSERT INTO riptide.spans (span_id, signal_source, agent_id, slot, start_time, end_time, duration_us, side, pair_state, l7_protocol,
            request_type, request_resource, endpoint, request_id, response_code, response_status, process_name, pid, tid, resp_tid, socket_id,
            l4_protocol, client_ip, client_port, server_ip, server_port, req_tcp_seq, resp_tcp_seq, syscall_trace_id_req, syscall_trace_id_resp,
            host_id, process_id, service_id, _version)
          SELECT leftPad(lower(hex(cityHash64(g, 1))), 16, '0'), 'ebpf', concat('node-', toString(g % 4)), 0,
            fromUnixTimestamp64Micro(toInt64(${T0} + intDiv(g * ${HOUR}, ${N}))) AS st,
            fromUnixTimestamp64Micro(toInt64(${T0} + intDiv(g * ${HOUR}, ${N}) + d)), d,
            if(g % 2 = 0, 'client', 'server'), 'paired', ['http1', 'redis', 'mysql', 'postgresql', 'http2'][g % 5 + 1],
            'GET', concat('/bg/', toString(g % 1000)), concat('/bg/', toString(g % 1000)), -1, 200, 'ok', concat('proc-', toString(p)), p, p * 10 + (cityHash64(g, 4) % 16), p * 10 + (cityHash64(g, 4) % 16), g,
            'tcp', '10.0.0.1', 30000 + g % 30000, '10.0.0.2', 80 + g % 50,
            toUInt32(cityHash64(g, 5) % 4294967295) + 1, toUInt32(cityHash64(g, 6) % 4294967295) + 1,
            cityHash64(g, 7) % 9000000000000000 + 1, cityHash64(g, 8) % 9000000000000000 + 1,
            g % 4 + 1, p, p % 20 + 1, 1
          FROM (SELECT number + ${off} AS g, 1000 + cityHash64(number + ${off}, 3) % 200 AS p, cityHash64(number + ${off}, 2) % 20000 AS d FROM numbers(${n}))`,
      });
    }
    // Written straight into the table, not through insertSpans: mark the minutes written (as the
    // schema migration does for data that predates the service-map rollups).
    if (!reuse) await ch.client.command({ query: 'INSERT INTO riptide.span_writes SELECT DISTINCT toStartOfMinute(start_time), now64(3) FROM riptide.spans' });
    const loadS = (performance.now() - t) / 1000;
    const traces: SpanRow[][] = [];
    for (let k = 0; k < TRACES; k++) traces.push(wideRequest(k, T0 + Math.floor(((k + 0.5) / TRACES) * (HOUR - 100_000))));
    if (!reuse) await insertSpans(ch, traces.flat());
    const total = Number((await queryRows<{ n: number }>(ch, 'SELECT count() AS n FROM riptide.spans'))[0].n);
    console.log(`loaded ${total} spans (${N} background + ${TRACES}×50) in ${loadS.toFixed(1)} s`);

    const source = new ClickHouseSpanSource(ch);
    // Time spent waiting on ClickHouse, apart from the in-process linking.
    let dbMs = 0;
    let rowsFetched = 0;
    const find = source.find.bind(source);
    const byId = source.bySpanId.bind(source);
    source.find = async (...a) => {
      const t1 = performance.now();
      const r = await find(...a);
      dbMs += performance.now() - t1;
      if (process.env.RIPTIDE_BENCH_VERBOSE) {
        const k = a[0];
        console.log(`find ${(performance.now() - t1).toFixed(1)} ms: sys ${k.syscallIds.length} seq ${k.tcpSeqs.length} inside ${k.inside.length} containing ${k.containing.length} -> ${r.length}`);
      }
      rowsFetched += r.length;
      return r;
    };
    const records = source.records.bind(source);
    source.records = async (...a) => {
      const t1 = performance.now();
      const r = await records(...a);
      dbMs += performance.now() - t1;
      if (process.env.RIPTIDE_BENCH_VERBOSE) console.log(`records ${(performance.now() - t1).toFixed(1)} ms -> ${r.length}`);
      return r;
    };
    source.bySpanId = async (id) => {
      const t1 = performance.now();
      const r = await byId(id);
      dbMs += performance.now() - t1;
      if (process.env.RIPTIDE_BENCH_VERBOSE) console.log(`bySpanId ${(performance.now() - t1).toFixed(1)} ms`);
      return r;
    };
    // Warm up (first query loads marks and index files).
    await assembleRecords(source, traces[0][0].span_id, OPTS);
    dbMs = 0;
    rowsFetched = 0;
    const lat: number[] = [];
    const queries: number[] = [];
    let wrong = 0;
    for (const tr of traces) {
      const want = new Set(tr.map((r) => r.span_id));
      for (let i = 0; i < SEEDS; i++) {
        const seed = tr[Math.floor(Math.random() * tr.length)].span_id;
        const q0 = source.queries;
        t = performance.now();
        const got = await assembleRecords(source, seed, OPTS);
        lat.push(performance.now() - t);
        queries.push(source.queries - q0);
        const ids = new Set(got?.spans.map((s) => s.span.span_id));
        if (ids.size !== want.size || [...want].some((x) => !ids.has(x))) wrong++;
      }
    }
    // The floor: one trivial round trip through @clickhouse/client + chDB, under the same load.
    const floor: number[] = [];
    for (let i = 0; i < 20; i++) {
      t = performance.now();
      await queryRows(ch, 'SELECT 1');
      floor.push(performance.now() - t);
    }
    const names = new TagNames(ch);
    // The service map over the hour, side by side: from the spans alone (what every call did before
    // rollups), the first call with rollups (computes every minute), then calls that read them.
    const timed = async (opts: { rollups: boolean }): Promise<[number, number]> => {
      const t1 = performance.now();
      const m = await serviceMap(ch, names, T0, T0 + HOUR, opts);
      return [performance.now() - t1, m.edges.length];
    };
    const mapRaw: number[] = [];
    for (let i = 0; i < 3; i++) mapRaw.push((await timed({ rollups: false }))[0]);
    // Start from no rollups, whatever an earlier run with --dir left.
    await ch.client.command({ query: 'TRUNCATE TABLE riptide.rollup_minutes' });
    await ch.client.command({ query: 'TRUNCATE TABLE riptide.edge_minutes' });
    const [mapFirst, edges] = await timed({ rollups: true });
    const mapLat: number[] = [];
    for (let i = 0; i < 5; i++) mapLat.push((await timed({ rollups: true }))[0]);
    const result = {
      spans: total,
      assemblies: lat.length,
      wrong_traces: wrong,
      assembly_median_ms: +pct(lat, 50).toFixed(1),
      assembly_p99_ms: +pct(lat, 99).toFixed(1),
      queries_per_assembly_median: pct(queries, 50),
      clickhouse_ms_per_assembly: +(dbMs / lat.length).toFixed(1),
      rows_fetched_per_assembly: Math.round(rowsFetched / lat.length),
      select1_median_ms: +pct(floor, 50).toFixed(1),
      load_average_1m: +(await import('node:os')).loadavg()[0].toFixed(1),
      service_map_hour_from_spans_median_ms: +pct(mapRaw, 50).toFixed(1),
      service_map_hour_first_call_ms: +mapFirst.toFixed(1),
      service_map_hour_from_rollups_median_ms: +pct(mapLat, 50).toFixed(1),
      service_map_hour_from_rollups_max_ms: +Math.max(...mapLat).toFixed(1),
      service_map_edges: edges,
    };
    console.log(JSON.stringify(result, null, 2));
    if (wrong > 0) process.exitCode = 1;
  } finally {
    await ch.close();
    if (!keepDir) rmSync(dir, { recursive: true, force: true });
  }
}

await main();

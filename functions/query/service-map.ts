/**
 * The service map: nodes (services; a process name where no service is known; an address for what
 * was never captured) and directed edges with RED metrics (requests, errors, p50/p99 duration).
 *
 * Each request counts once, from the caller's view when the caller was captured (its client span),
 * else from the server's view (server spans whose client address belongs to no captured client).
 * The callee of a client span is, in this order: the peer service the tag encoder resolved, the
 * service listening on that address in the same range (from server spans), the address itself.
 * Errors are server errors and timeouts (a 4xx is the caller's fault, not the edge's).
 *
 * Whole minutes that have settled are read from per-minute rollups (`riptide.edge_minutes`), computed
 * here on first use from `spans FINAL` and again whenever spans of that minute are written after the
 * rollup was made (`riptide.span_writes`); the ragged ends of the range and the recent minutes come
 * from the spans themselves. Either way each span counts once, in its latest version.
 */
import type { ClickHouse } from '../storage/clickhouse.ts';
import { queryRows } from '../storage/clickhouse.ts';
import { liveSpans } from '../storage/span-store.ts';
import { usTime } from './clickhouse-source.ts';
import type { TagNames } from './names.ts';

export interface ServiceMapNode {
  id: string;
  name: string;
}

export interface ServiceMapEdge {
  source: string;
  target: string;
  protocol: string;
  requests: number;
  errors: number;
  p50_us: number;
  p99_us: number;
  /** Extra: the slowest span of the edge, a starting point for its trace. */
  slowest_span_id: string;
  /**
   * TCP health of the edge's connections (agent --net-interfaces; 0 without it): segments
   * retransmitted, connects that failed, mean smoothed RTT in µs (0 = never read).
   */
  tcp_retransmits: number;
  tcp_connect_failures: number;
  tcp_srtt_us: number;
}

export interface ServiceMap {
  nodes: ServiceMapNode[];
  edges: ServiceMapEdge[];
}

/** `start_time` inside [fromUs, toUs). */
const RANGE = (fromUs: number, toUs: number): string => `start_time >= ${usTime(fromUs)} AND start_time < ${usTime(toUs)}`;

/** The raw identity of a group of spans; hashed the same way in SQL and resolved to names in TS. */
const RAW_KEY = 'cityHash64(side, service_id, peer_service_id, process_name, client_ip, server_ip, server_port)';
const GROUP_COLUMNS = 'side, service_id, peer_service_id, process_name, client_ip, server_ip, server_port';
const ERRORS = "countIf(response_status IN ('server_error', 'timeout'))";

interface RawGroup {
  h: string;
  side: 'client' | 'server';
  service_id: number;
  peer_service_id: number;
  process_name: string;
  client_ip: string;
  server_ip: string;
  server_port: number;
}

export interface ServiceMapOptions {
  /** Use and maintain per-minute rollups (default true); false reads every span of the range. */
  rollups?: boolean;
  /** A minute is rolled up once it ended this long ago (default 120 s: late slots and re-runs land first). */
  settleMs?: number;
  /** Wall clock in ms (tests). */
  now?: () => number;
  /**
   * When computing rollups fails (a read-only ClickHouse user, a full disk), read the spans instead
   * (default true). The background refresh sets false so that it can log the failure.
   */
  failOpen?: boolean;
}

/** What came from where: for metrics, tests and the benchmark. */
export interface ServiceMapSources {
  /** Whole minutes read from rollups. */
  rolledMinutes: number;
  /** Minutes (re)computed into rollups by this call. */
  computedMinutes: number;
  /** Why rollups could not be brought up to date (the map then came from the spans alone). */
  rollupError?: string;
}

interface Plan {
  /** SQL predicate on spans for the parts of the range not covered by rollups ('0' when none). */
  raw: string;
  /** SQL predicate on edge_minutes selecting the latest rollup of every covered minute ('0' when none). */
  rolled: string;
  sources: ServiceMapSources;
}

const sec = (s: number): string => `toDateTime(${Math.trunc(s)}, 'UTC')`;

/**
 * Split [fromUs, toUs) into settled whole minutes, made fresh in `edge_minutes` here if needed, and
 * the rest, read from spans.
 */
async function plan(ch: ClickHouse, fromUs: number, toUs: number, o: ServiceMapOptions): Promise<Plan> {
  const first = Math.ceil(fromUs / 60e6) * 60;
  const settled = Math.floor(((o.now ?? Date.now)() - (o.settleMs ?? 120_000)) / 60e3) * 60;
  const end = Math.min(Math.floor(toUs / 60e6) * 60, settled);
  const rawOnly = (): Plan => ({ raw: `(${RANGE(fromUs, toUs)})`, rolled: '0', sources: { rolledMinutes: 0, computedMinutes: 0 } });
  if (o.rollups === false || end <= first) return rawOnly();
  const minutes = `minute >= ${sec(first)} AND minute < ${sec(end)}`;
  const status = await queryRows<{ m: number; w: string; dirty: number }>(
    ch,
    `SELECT toUInt32(w.minute) AS m, toString(w.written_at) AS w, r.has = 0 OR r.sw < w.written_at AS dirty
     FROM (SELECT minute, max(written_at) AS written_at FROM riptide.span_writes WHERE ${minutes} GROUP BY minute) AS w
     LEFT JOIN (SELECT minute, argMax(source_written_at, computed_at) AS sw, toUInt8(1) AS has FROM riptide.rollup_minutes WHERE ${minutes} GROUP BY minute) AS r
     ON w.minute = r.minute`,
  );
  const dirty = status.filter((r) => Number(r.dirty) === 1);
  if (dirty.length > 0) {
    try {
      await computeRollups(ch, first, end, dirty, (o.now ?? Date.now)());
    } catch (err) {
      if (o.failOpen === false) throw err;
      return { ...rawOnly(), sources: { rolledMinutes: 0, computedMinutes: 0, rollupError: err instanceof Error ? err.message : String(err) } };
    }
  }
  const raw = [`(${RANGE(fromUs, first * 1e6)})`, `(${RANGE(end * 1e6, toUs)})`].join(' OR ');
  // GLOBAL: on a cluster both tables are Distributed, and a plain IN would be a denied double-distributed subquery.
  const rolled = `${minutes} AND (minute, computed_at) GLOBAL IN (SELECT minute, max(computed_at) FROM riptide.rollup_minutes WHERE ${minutes} GROUP BY minute)`;
  return { raw, rolled, sources: { rolledMinutes: (end - first) / 60, computedMinutes: dirty.length } };
}

/** RED states of the given minutes from `spans FINAL`, then the markers that make them current. */
async function computeRollups(ch: ClickHouse, first: number, end: number, dirty: Array<{ m: number; w: string }>, computedAt: number): Promise<void> {
  const list = dirty.map((r) => sec(Number(r.m))).join(', ');
  await ch.client.command({
    query: `INSERT INTO riptide.edge_minutes
      SELECT toStartOfMinute(start_time) AS minute, fromUnixTimestamp64Milli(toInt64(${Math.trunc(computedAt)}), 'UTC'), ${RAW_KEY}, ${GROUP_COLUMNS}, l7_protocol,
             count(), ${ERRORS}, quantilesState(0.5, 0.99)(duration_us), argMaxState(span_id, duration_us)
      FROM riptide.spans FINAL
      WHERE ${RANGE(first * 1e6, end * 1e6)} AND toStartOfMinute(start_time) IN (${list}) AND signal_source = 'ebpf'
      GROUP BY minute, ${GROUP_COLUMNS}, l7_protocol`,
  });
  // Only now, with its edge rows in, does the rollup of each minute become visible to readers.
  await ch.client.insert({
    table: 'riptide.rollup_minutes',
    values: dirty.map((r) => ({ minute: Number(r.m), computed_at: (computedAt / 1000).toFixed(3), source_written_at: r.w })),
    format: 'JSONEachRow',
    clickhouse_settings: { date_time_input_format: 'best_effort' },
  });
}

/**
 * Bring the rollups of the settled whole minutes of [fromUs, toUs) up to date: what the local
 * function runtime does in the background, so maps rarely pay for computing them. Returns the
 * minutes computed.
 */
export async function refreshRollups(ch: ClickHouse, fromUs: number, toUs: number, options: ServiceMapOptions = {}): Promise<number> {
  return (await plan(ch, fromUs, toUs, { ...options, failOpen: false })).sources.computedMinutes;
}

/**
 * Build the map for [fromUs, toUs). Two passes: the first finds the distinct (side, service, peer,
 * process, addresses) groups, which TypeScript resolves to named edges (listeners, captured client
 * addresses, tag names); the second aggregates RED per edge, each row finding its edge by the hash
 * of its group. Both read rollup rows for the settled whole minutes and spans for the rest.
 */
export async function serviceMap(ch: ClickHouse, names: TagNames, fromUs: number, toUs: number, options: ServiceMapOptions = {}): Promise<ServiceMap & { sources: ServiceMapSources }> {
  const p = await plan(ch, fromUs, toUs, options);
  const groups = await queryRows<RawGroup>(
    ch,
    `SELECT toString(h) AS h, ${GROUP_COLUMNS} FROM (
       SELECT ${RAW_KEY} AS h, ${GROUP_COLUMNS} FROM ${liveSpans(`(${p.raw}) AND signal_source = 'ebpf'`, { final: true, fromUs, toUs })}
       UNION ALL
       SELECT h, ${GROUP_COLUMNS} FROM riptide.edge_minutes WHERE ${p.rolled}
     ) GROUP BY h, ${GROUP_COLUMNS} LIMIT 200000`,
  );
  const resolved = await names.resolve(groups.flatMap((g) => [Number(g.service_id), Number(g.peer_service_id)]));
  const self = (g: RawGroup): string => (Number(g.service_id) !== 0 ? resolved.get(Number(g.service_id)) : undefined) ?? g.process_name;
  const listeners = new Map<string, string>();
  const clientIps = new Set<string>();
  for (const g of groups) {
    if (g.side === 'server') listeners.set(`${g.server_ip}:${g.server_port}`, self(g));
    else clientIps.add(g.client_ip);
  }
  const edgeOf = new Map<string, number>();
  const edgeKeys: Array<[string, string]> = [];
  const hashes: string[] = [];
  const idx: number[] = [];
  for (const g of groups) {
    let source: string;
    let target: string;
    if (g.side === 'client') {
      source = self(g);
      const addr = `${g.server_ip}:${g.server_port}`;
      target = (Number(g.peer_service_id) !== 0 ? resolved.get(Number(g.peer_service_id)) : undefined) ?? listeners.get(addr) ?? addr;
    } else {
      // Counted from the server only when no captured client made the call.
      if (clientIps.has(g.client_ip)) continue;
      source = g.client_ip;
      target = self(g);
    }
    const k = `${source}\u0000${target}`;
    let i = edgeOf.get(k);
    if (i === undefined) {
      i = edgeKeys.length + 1;
      edgeOf.set(k, i);
      edgeKeys.push([source, target]);
    }
    hashes.push(g.h);
    idx.push(i);
  }
  if (hashes.length === 0) return { nodes: [], edges: [], sources: p.sources };
  const rows = await queryRows<{ e: number; protocol: string; requests: number; errors: number; q: number[]; slowest: string }>(
    ch,
    `SELECT transform(h, arrayMap(x -> toUInt64(x), {hashes:Array(String)}), {idx:Array(UInt32)}, toUInt32(0)) AS e, protocol,
            sum(n) AS requests, sum(err) AS errors, quantilesMerge(0.5, 0.99)(qs) AS q, argMaxMerge(slow) AS slowest
     FROM (
       SELECT ${RAW_KEY} AS h, l7_protocol AS protocol, count() AS n, ${ERRORS} AS err,
              quantilesState(0.5, 0.99)(duration_us) AS qs, argMaxState(span_id, duration_us) AS slow
       FROM ${liveSpans(`(${p.raw}) AND signal_source = 'ebpf'`, { final: true, fromUs, toUs })} GROUP BY h, protocol
       UNION ALL
       SELECT h, l7_protocol, requests, errors, q, slowest FROM riptide.edge_minutes WHERE ${p.rolled}
     )
     GROUP BY e, protocol HAVING e != 0 ORDER BY requests DESC LIMIT 5000`,
    { hashes, idx },
  );
  const edges: ServiceMapEdge[] = rows.map((r) => ({
    source: edgeKeys[Number(r.e) - 1][0],
    target: edgeKeys[Number(r.e) - 1][1],
    protocol: r.protocol,
    requests: Number(r.requests),
    errors: Number(r.errors),
    p50_us: Math.round(Number(r.q[0])),
    p99_us: Math.round(Number(r.q[1])),
    slowest_span_id: r.slowest,
    tcp_retransmits: 0,
    tcp_connect_failures: 0,
    tcp_srtt_us: 0,
  }));
  await addTcpHealth(ch, edges, { hashes, idx, edgeKeys, listeners }, fromUs, toUs);
  const nodes = [...new Set(edges.flatMap((e) => [e.source, e.target]))].sort().map((id) => ({ id, name: id }));
  return { nodes, edges, sources: p.sources };
}

/**
 * TCP health per edge (issue 19), from the spans of the whole range (the rollups do not carry it;
 * only spans with a figure are read, so a map without network capture reads no rows here): each
 * group's retransmits, failed connects and RTT go to its edge's busiest protocol row. A failed
 * connect has no process (the kernel reports it from the socket, not a syscall): its edge runs from
 * the client address to the service listening on the address, else the address; an edge with
 * nothing else on it is added with 0 requests.
 */
async function addTcpHealth(
  ch: ClickHouse,
  edges: ServiceMapEdge[],
  g: { hashes: string[]; idx: number[]; edgeKeys: Array<[string, string]>; listeners: Map<string, string> },
  fromUs: number,
  toUs: number,
): Promise<void> {
  const rows = await queryRows<{ h: string; cip: string; sip: string; sport: number; r: number; cf: number; rtt_sum: number; rtt_n: number }>(
    ch,
    `SELECT toString(${RAW_KEY}) AS h, any(client_ip) AS cip, any(server_ip) AS sip, any(server_port) AS sport,
            sum(tcp_retransmits) AS r, sum(tcp_connect_failures) AS cf, sumIf(tcp_srtt_us, tcp_srtt_us > 0) AS rtt_sum, countIf(tcp_srtt_us > 0) AS rtt_n
     FROM ${liveSpans(`${RANGE(fromUs, toUs)} AND signal_source != 'otel' AND (tcp_retransmits > 0 OR tcp_connect_failures > 0 OR tcp_srtt_us > 0)`, { final: true, fromUs, toUs })}
     GROUP BY h LIMIT 200000`,
  );
  if (rows.length === 0) return;
  const edgeOfHash = new Map(g.hashes.map((h, i) => [h, g.idx[i]]));
  const rtt = new Map<ServiceMapEdge, [number, number]>();
  const rowOf = (source: string, target: string, protocol?: string): ServiceMapEdge => {
    let e = edges.find((x) => x.source === source && x.target === target && (protocol === undefined || x.protocol === protocol));
    if (!e) {
      e = { source, target, protocol: protocol ?? 'tcp', requests: 0, errors: 0, p50_us: 0, p99_us: 0, slowest_span_id: '', tcp_retransmits: 0, tcp_connect_failures: 0, tcp_srtt_us: 0 };
      edges.push(e);
    }
    return e;
  };
  for (const r of rows) {
    const i = edgeOfHash.get(r.h);
    let e: ServiceMapEdge | undefined;
    if (i !== undefined) {
      const [source, target] = g.edgeKeys[i - 1];
      e = edges.find((x) => x.source === source && x.target === target);
    } else if (Number(r.cf) > 0) {
      const addr = `${r.sip}:${r.sport}`;
      e = rowOf(r.cip, g.listeners.get(addr) ?? addr, 'tcp');
    }
    if (!e) continue;
    e.tcp_retransmits += Number(r.r);
    e.tcp_connect_failures += Number(r.cf);
    const acc = rtt.get(e) ?? [0, 0];
    rtt.set(e, [acc[0] + Number(r.rtt_sum), acc[1] + Number(r.rtt_n)]);
  }
  for (const [e, [sum, n]] of rtt) e.tcp_srtt_us = n > 0 ? Math.round(sum / n) : 0;
}

/**
 * The service map: nodes (services; a process name where no service is known; an address for what
 * was never captured) and directed edges with RED metrics (requests, errors, p50/p99 duration).
 *
 * Each request counts once, from the caller's view when the caller was captured (its client span),
 * else from the server's view (server spans whose client address belongs to no captured client).
 * The callee of a client span is, in this order: the peer service the tag encoder resolved, the
 * service listening on that address in the same range (from server spans), the address itself.
 * Errors are server errors and timeouts (a 4xx is the caller's fault, not the edge's).
 */
import type { ClickHouse } from '../storage/clickhouse.ts';
import { queryRows } from '../storage/clickhouse.ts';
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
}

export interface ServiceMap {
  nodes: ServiceMapNode[];
  edges: ServiceMapEdge[];
}

const RANGE = (fromUs: number, toUs: number): string => `start_time >= ${usTime(fromUs)} AND start_time < ${usTime(toUs)}`;

/** Build the map for [fromUs, toUs). Three small lookups, then one aggregate over the range. */
export async function serviceMap(ch: ClickHouse, names: TagNames, fromUs: number, toUs: number): Promise<ServiceMap> {
  const range = RANGE(fromUs, toUs);
  // Who listens where (captured servers), and which addresses captured clients call from.
  const listeners = await queryRows<{ addr: string; service_id: number; process_name: string }>(
    ch,
    `SELECT concat(server_ip, ':', toString(server_port)) AS addr, any(service_id) AS service_id, any(process_name) AS process_name
     FROM riptide.spans WHERE ${range} AND side = 'server' AND signal_source = 'ebpf' GROUP BY addr LIMIT 100000`,
  );
  const clientIps = await queryRows<{ ip: string }>(ch, `SELECT DISTINCT client_ip AS ip FROM riptide.spans WHERE ${range} AND side = 'client' AND signal_source = 'ebpf' LIMIT 100000`);
  const ids = await queryRows<{ id: number }>(
    ch,
    `SELECT DISTINCT arrayJoin([service_id, peer_service_id]) AS id FROM riptide.spans WHERE ${range} AND signal_source = 'ebpf' LIMIT 100000`,
  );
  const resolved = await names.resolve([...ids.map((r) => Number(r.id)), ...listeners.map((l) => Number(l.service_id))]);
  const sids: number[] = [];
  const snames: string[] = [];
  for (const [id, name] of resolved) {
    if (id !== 0 && name) {
      sids.push(id);
      snames.push(name);
    }
  }
  const laddrs = listeners.map((l) => l.addr);
  const lnames = listeners.map((l) => resolved.get(Number(l.service_id)) ?? l.process_name);
  const self = `if(service_id != 0 AND has({sids:Array(UInt64)}, service_id), transform(service_id, {sids:Array(UInt64)}, {snames:Array(String)}, ''), process_name)`;
  const addr = `concat(server_ip, ':', toString(server_port))`;
  const callee = `multiIf(peer_service_id != 0 AND has({sids:Array(UInt64)}, peer_service_id), transform(peer_service_id, {sids:Array(UInt64)}, {snames:Array(String)}, ''),
                          has({laddrs:Array(String)}, ${addr}), transform(${addr}, {laddrs:Array(String)}, {lnames:Array(String)}, ''), ${addr})`;
  const rows = await queryRows<{ source: string; target: string; protocol: string; requests: number; errors: number; q: number[]; slowest: string }>(
    ch,
    `SELECT source, target, protocol, count() AS requests, countIf(response_status IN ('server_error', 'timeout')) AS errors,
            quantiles(0.5, 0.99)(duration_us) AS q, argMax(span_id, duration_us) AS slowest
     FROM (
       SELECT ${self} AS source, ${callee} AS target, l7_protocol AS protocol, response_status, duration_us, span_id
       FROM riptide.spans WHERE ${range} AND side = 'client' AND signal_source = 'ebpf'
       UNION ALL
       SELECT client_ip AS source, ${self} AS target, l7_protocol AS protocol, response_status, duration_us, span_id
       FROM riptide.spans WHERE ${range} AND side = 'server' AND signal_source = 'ebpf' AND NOT has({cips:Array(String)}, client_ip)
     )
     GROUP BY source, target, protocol ORDER BY requests DESC LIMIT 5000`,
    { sids, snames, laddrs, lnames, cips: clientIps.map((r) => r.ip) },
  );
  const edges: ServiceMapEdge[] = rows.map((r) => ({
    source: r.source,
    target: r.target,
    protocol: r.protocol,
    requests: Number(r.requests),
    errors: Number(r.errors),
    p50_us: Math.round(Number(r.q[0])),
    p99_us: Math.round(Number(r.q[1])),
    slowest_span_id: r.slowest,
  }));
  const nodes = [...new Set(edges.flatMap((e) => [e.source, e.target]))].sort().map((id) => ({ id, name: id }));
  return { nodes, edges };
}

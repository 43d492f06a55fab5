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

/** The raw identity of a group of spans; hashed the same way in SQL and resolved to names in TS. */
const RAW_KEY = 'cityHash64(side, service_id, peer_service_id, process_name, client_ip, server_ip, server_port)';

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

/**
 * Build the map for [fromUs, toUs). Two passes over the range's integer and low-cardinality columns:
 * the first finds the distinct (side, service, peer, process, addresses) groups, which TypeScript
 * resolves to named edges (listeners, captured client addresses, tag names); the second aggregates
 * RED per edge, each row finding its edge by the hash of its group.
 */
export async function serviceMap(ch: ClickHouse, names: TagNames, fromUs: number, toUs: number): Promise<ServiceMap> {
  const range = RANGE(fromUs, toUs);
  const groups = await queryRows<RawGroup>(
    ch,
    `SELECT toString(${RAW_KEY}) AS h, side, service_id, peer_service_id, process_name, client_ip, server_ip, server_port
     FROM riptide.spans WHERE ${range} AND signal_source = 'ebpf'
     GROUP BY side, service_id, peer_service_id, process_name, client_ip, server_ip, server_port LIMIT 200000`,
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
  if (hashes.length === 0) return { nodes: [], edges: [] };
  const rows = await queryRows<{ e: number; protocol: string; requests: number; errors: number; q: number[]; slowest: string }>(
    ch,
    `SELECT transform(${RAW_KEY}, arrayMap(x -> toUInt64(x), {hashes:Array(String)}), {idx:Array(UInt32)}, toUInt32(0)) AS e, l7_protocol AS protocol,
            count() AS requests, countIf(response_status IN ('server_error', 'timeout')) AS errors,
            quantiles(0.5, 0.99)(duration_us) AS q, argMax(span_id, duration_us) AS slowest
     FROM riptide.spans WHERE ${range} AND signal_source = 'ebpf'
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
  }));
  const nodes = [...new Set(edges.flatMap((e) => [e.source, e.target]))].sort().map((id) => ({ id, name: id }));
  return { nodes, edges };
}

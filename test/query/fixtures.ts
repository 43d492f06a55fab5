/**
 * Synthetic spans for the query tests and benchmarks: the acceptance topology
 * curl → nginx → service-a → (redis, postgres, service-b → mariadb), as the capture path would
 * record it (TCP sequences shared by both ends, syscall-trace ids chained per thread).
 */
import type { SpanRow } from '../../functions/span-builder/span-row.ts';
import type { TagNameRow } from '../../functions/storage/span-store.ts';

export const SERVICES: Record<string, number> = { nginx: 1, 'service-a': 2, redis: 3, postgres: 4, 'service-b': 5, mariadb: 6 };

export function serviceTagRows(nowSec = Math.floor(Date.now() / 1000)): TagNameRow[] {
  return Object.entries(SERVICES).map(([name, id]) => ({ id, kind: 'service', key: name, name, parent_ids: {}, updated_at: nowSec }));
}

let counter = 0;

export function spanRow(p: Partial<SpanRow>): SpanRow {
  counter++;
  const start = p.start_time_us ?? 0;
  const end = p.end_time_us ?? start;
  return {
    trace_id: '',
    app_span_id: '',
    app_parent_span_id: '',
    signal_source: 'ebpf',
    agent_id: 'node-1',
    slot: Math.floor(start / 5e6),
    side: 'client',
    pair_state: 'paired',
    l7_protocol: 'http1',
    version: '1.1',
    request_type: '',
    request_domain: '',
    request_resource: '',
    endpoint: '',
    request_id: -1,
    response_code: -1,
    response_status: 'ok',
    response_exception: '',
    request_bytes: 100,
    response_bytes: 200,
    process_name: '',
    pid: 0,
    tid: 0,
    resp_tid: 0,
    coroutine_id: 0,
    resp_coroutine_id: 0,
    socket_id: counter,
    l4_protocol: 'tcp',
    client_ip: '127.0.0.1',
    client_port: 40000 + (counter % 20000),
    server_ip: '127.0.0.1',
    server_port: 80,
    req_tcp_seq: 0,
    resp_tcp_seq: 0,
    syscall_trace_id_req: 0,
    syscall_trace_id_resp: 0,
    x_request_id_req: '',
    x_request_id_resp: '',
    handoff_trace_id: 0,
    observation_point: '',
    tcp_retransmits: 0,
    tcp_srtt_us: 0,
    tcp_connect_failures: 0,
    attributes: {},
    host_id: 0,
    process_id: 0,
    container_id: 0,
    pod_id: 0,
    service_id: 0,
    node_id: 0,
    namespace_id: 0,
    peer_pod_id: 0,
    peer_service_id: 0,
    _version: 1,
    _deleted: 0,
    ...p,
    span_id: p.span_id ?? (0x1000000000 + counter).toString(16).padStart(16, '0'),
    start_time_us: start,
    end_time_us: end,
    duration_us: end - start,
  };
}

interface Proc {
  name: string;
  service?: string;
  pid: number;
  tid: number;
}

/** Both ends of one exchange. */
export function exchange(o: {
  id: string;
  client: Proc;
  server: Proc;
  start: number;
  end: number;
  proto: string;
  port: number;
  seq: number;
  csys: [number, number];
  ssys: [number, number];
  req: [string, string];
  code: number;
  status?: SpanRow['response_status'];
  agent?: string;
}): [SpanRow, SpanRow] {
  const common: Partial<SpanRow> = {
    l7_protocol: o.proto,
    request_type: o.req[0],
    request_resource: o.req[1],
    endpoint: o.req[1],
    response_code: o.code,
    response_status: o.status ?? (o.code >= 500 ? 'server_error' : 'ok'),
    server_port: o.port,
    client_port: 30000 + (o.seq % 30000),
    req_tcp_seq: o.seq,
    resp_tcp_seq: (o.seq + 1_000_003) >>> 0,
    agent_id: o.agent ?? 'node-1',
  };
  const c = spanRow({ ...common, span_id: `c${o.id}`.padStart(16, '0').slice(-16), side: 'client', process_name: o.client.name, service_id: SERVICES[o.client.service ?? ''] ?? 0, pid: o.client.pid, tid: o.client.tid, resp_tid: o.client.tid, start_time_us: o.start, end_time_us: o.end, syscall_trace_id_req: o.csys[0], syscall_trace_id_resp: o.csys[1] });
  const s = spanRow({ ...common, span_id: `d${o.id}`.padStart(16, '0').slice(-16), side: 'server', process_name: o.server.name, service_id: SERVICES[o.server.service ?? ''] ?? 0, pid: o.server.pid, tid: o.server.tid, resp_tid: o.server.tid, start_time_us: o.start + 30, end_time_us: o.end - 30, syscall_trace_id_req: o.ssys[0], syscall_trace_id_resp: o.ssys[1] });
  return [c, s];
}

/**
 * One request through the whole topology, starting at `t` (µs). Ids are derived from `k`, so
 * requests never share keys by accident. `fail` makes service-b answer 500.
 */
export function requestSpans(k: number, t: number, o: { fail?: boolean; agent?: string } = {}): SpanRow[] {
  const id = (x: number): number => k * 1000 + x + 1;
  const hex = (x: number): string => `${k.toString(16).padStart(8, '0')}${x.toString(16).padStart(4, '0')}`;
  const seq = (x: number): number => ((k * 7919 + x * 104729) % 4_000_000_000) + 1;
  const conn = k % 8;
  const curl = { name: 'curl', pid: 100_000 + k, tid: 100_000 + k };
  const nginx = { name: 'nginx', service: 'nginx', pid: 200, tid: 200 };
  const a = { name: 'python3', service: 'service-a', pid: 300, tid: 3000 + conn };
  const redis = { name: 'redis-server', service: 'redis', pid: 400, tid: 400 };
  const pg = { name: 'postgres', service: 'postgres', pid: 500 + conn, tid: 500 + conn };
  const b = { name: 'node', service: 'service-b', pid: 600, tid: 6000 + conn };
  const maria = { name: 'mariadbd', service: 'mariadb', pid: 700, tid: 7000 + conn };
  const ag = o.agent;
  return [
    ...exchange({ id: hex(1), client: curl, server: nginx, start: t, end: t + 10_000, proto: 'http1', port: 80, seq: seq(1), csys: [0, id(90)], ssys: [id(1), id(2)], req: ['GET', '/checkout'], code: o.fail ? 502 : 200, agent: ag }),
    ...exchange({ id: hex(2), client: nginx, server: a, start: t + 200, end: t + 9_800, proto: 'http1', port: 8080, seq: seq(2), csys: [id(1), id(2)], ssys: [id(10), id(13)], req: ['GET', '/checkout'], code: o.fail ? 500 : 200, agent: ag }),
    ...exchange({ id: hex(3), client: a, server: redis, start: t + 400, end: t + 1_000, proto: 'redis', port: 6379, seq: seq(3), csys: [id(10), id(11)], ssys: [id(40), id(40)], req: ['GET', 'cart:42'], code: -1, agent: ag }),
    ...exchange({ id: hex(4), client: a, server: pg, start: t + 1_200, end: t + 3_000, proto: 'postgresql', port: 5432, seq: seq(4), csys: [id(11), id(12)], ssys: [id(50), id(50)], req: ['SELECT', 'SELECT * FROM carts WHERE id = $1'], code: -1, agent: ag }),
    ...exchange({ id: hex(5), client: a, server: b, start: t + 3_200, end: t + 9_500, proto: 'http1', port: 8081, seq: seq(5), csys: [id(12), id(13)], ssys: [id(60), id(61)], req: ['POST', '/price'], code: o.fail ? 500 : 200, agent: ag }),
    ...exchange({ id: hex(6), client: b, server: maria, start: t + 3_500, end: t + 9_000, proto: 'mysql', port: 3306, seq: seq(6), csys: [id(60), id(61)], ssys: [id(70), id(70)], req: ['QUERY', 'SELECT price FROM items'], code: -1, agent: ag }),
  ];
}

/** span id → expected parent id for {@link requestSpans} (same order as the rows). */
export function expectedParents(rows: SpanRow[]): Record<string, string | null> {
  const [c0, s1, c1, s2, c2, s3, c3, s4, c4, s5, c5, s6] = rows.map((r) => r.span_id);
  return { [c0]: null, [s1]: c0, [c1]: s1, [s2]: c1, [c2]: s2, [s3]: c2, [c3]: s2, [s4]: c3, [c4]: s2, [s5]: c4, [c5]: s5, [s6]: c5 };
}

import { describe, expect, it } from 'vitest';
import type { SpanJson } from './span.ts';
import { listTraces, summarizeTrace } from './trace-list.ts';

function span(id: string, p: Partial<SpanJson>): SpanJson {
  return {
    span_id: id, parent_id: null, trace_id: null, start_time_us: 0, end_time_us: 0, duration_us: 0, side: 'server', signal_source: 'ebpf',
    l7_protocol: 'http1', request_type: 'GET', request_domain: '', request_resource: '/', endpoint: '/', response_code: 200, response_status: 'ok',
    response_exception: '', process_name: 'p', pid: 1, tid: 1, client_ip: '', client_port: 0, server_ip: '', server_port: 0, req_tcp_seq: 0,
    resp_tcp_seq: 0, x_request_id: null, service: null, parent_rule: null, agent_id: 'a', pair_state: 'paired', syscall_trace_id_req: 0,
    syscall_trace_id_resp: 0, app_span_id: '', app_parent_span_id: '', request_bytes: 0, response_bytes: 0, attributes: {},
    ...p,
  } as SpanJson;
}

// Two traces: a → b (a's client span c1 inside), and d alone.
const traces: Record<string, { trace_id: string; spans: SpanJson[] }> = {};
const t1 = [
  span('a', { service: 'gw', start_time_us: 100, end_time_us: 900, duration_us: 800 }),
  span('c1', { parent_id: 'a', side: 'client', service: 'gw', start_time_us: 200, end_time_us: 800 }),
  span('b', { parent_id: 'c1', service: 'db', start_time_us: 250, end_time_us: 950, response_status: 'server_error', response_code: 500 }),
];
const t2 = [span('d', { service: 'solo', start_time_us: 2000, end_time_us: 2100 })];
for (const s of t1) traces[s.span_id] = { trace_id: 'T1', spans: t1 };
for (const s of t2) traces[s.span_id] = { trace_id: 'T2', spans: t2 };

describe('trace list', () => {
  it('summarises a trace from its root: services, extent, errors', () => {
    const s = summarizeTrace('T1', t1);
    expect(s).toMatchObject({ trace_id: 'T1', root_span_id: 'a', services: ['gw', 'db'], start_time_us: 100, duration_us: 850, span_count: 3, error_count: 1, status: 'error' });
    expect(s.root.service).toBe('gw');
  });

  it('lists each trace once, newest first, assembling only spans not yet covered', async () => {
    const assembled: string[] = [];
    const r = await listTraces(
      { search: async () => [...t1, ...t2], trace: async (id) => (assembled.push(id), traces[id]) },
      { limit: 10 },
    );
    expect(r.traces.map((t) => t.trace_id)).toEqual(['T2', 'T1']);
    expect(r.truncated).toBe(false);
    expect(assembled).toHaveLength(2); // one assembly per trace: its other spans are skipped
  });

  it('stops at the limit, and at the time budget with truncated set', async () => {
    const deps = { search: async () => [...t1, ...t2], trace: async (id: string) => traces[id] };
    expect((await listTraces(deps, { limit: 1 })).traces).toHaveLength(1);
    const r = await listTraces(deps, { limit: 10, budgetMs: -1 });
    expect(r).toEqual({ traces: [], truncated: true });
  });
});

import { describe, expect, it } from 'vitest';
import { ArraySpanSource, RULE_CONFIDENCE, assembleTrace, linkParents } from './assemble.ts';
import { hopSplits } from './net-hops.ts';
import type { AsmSpan } from './span.ts';

let n = 0;
function span(p: Partial<AsmSpan>): AsmSpan {
  n++;
  return {
    trace_id: '', app_span_id: '', app_parent_span_id: '', signal_source: 'ebpf', agent_id: 'h1', start_time_us: 0, end_time_us: 0, side: 'client',
    l7_protocol: 'http1', l4_protocol: 'tcp', request_id: -1, pid: 0, tid: 0, resp_tid: 0, client_port: 40000, server_port: 80, req_tcp_seq: 0, resp_tcp_seq: 0,
    syscall_trace_id_req: 0, syscall_trace_id_resp: 0, x_request_id_req: '', x_request_id_resp: '', host_id: 0, process_id: 0,
    ...p,
    span_id: p.span_id ?? n.toString(16).padStart(16, '0'),
  };
}

/** curl → client-side veth → (40 ms of wire) → server-side veth → server, one request. */
function path(seq: number, t0: number) {
  const common = { req_tcp_seq: seq, resp_tcp_seq: seq + 999 };
  const client = span({ ...common, pid: 10, tid: 10, start_time_us: t0, end_time_us: t0 + 45_000 });
  const vethC = span({ ...common, signal_source: 'net', start_time_us: t0 + 50, end_time_us: t0 + 44_950 });
  const vethS = span({ ...common, signal_source: 'net', start_time_us: t0 + 20_050, end_time_us: t0 + 24_950 });
  const server = span({ ...common, side: 'server', pid: 20, tid: 20, start_time_us: t0 + 20_100, end_time_us: t0 + 24_900 });
  return { client, vethC, vethS, server };
}

describe('network hops between client and server', () => {
  it('chains client → interfaces in the order the request crossed them → server', () => {
    const p = path(5000, 1_000_000);
    const links = linkParents([p.server, p.vethS, p.client, p.vethC]);
    expect(links.get(p.vethC.span_id)).toEqual({ parent: p.client.span_id, rule: 'net_hop', confidence: RULE_CONFIDENCE.net_hop });
    expect(links.get(p.vethS.span_id)).toEqual({ parent: p.vethC.span_id, rule: 'net_hop', confidence: RULE_CONFIDENCE.net_hop });
    expect(links.get(p.server.span_id)).toMatchObject({ parent: p.vethS.span_id, rule: 'tcp_seq' });
    expect(links.has(p.client.span_id)).toBe(false);
  });

  it('leaves other sequences and far-away times alone', () => {
    const p = path(6000, 1_000_000);
    const stray = span({ signal_source: 'net', req_tcp_seq: 6000, start_time_us: 9_000_000, end_time_us: 9_000_100 });
    const other = span({ signal_source: 'net', req_tcp_seq: 7000, start_time_us: 1_000_100, end_time_us: 1_000_200 });
    const links = linkParents([p.client, p.server, stray, other]);
    expect(links.get(p.server.span_id)).toMatchObject({ parent: p.client.span_id, rule: 'tcp_seq' });
    expect(links.has(stray.span_id)).toBe(false);
    expect(links.has(other.span_id)).toBe(false);
  });

  it('puts the hops above a server span whose caller was not captured', () => {
    const p = path(8000, 1_000_000);
    const links = linkParents([p.server, p.vethS, p.vethC]);
    expect(links.get(p.server.span_id)).toMatchObject({ parent: p.vethS.span_id, rule: 'net_hop' });
    expect(links.get(p.vethS.span_id)).toMatchObject({ parent: p.vethC.span_id });
    expect(links.has(p.vethC.span_id)).toBe(false);
  });

  it('assembles the whole path from the server span and splits the client time', async () => {
    const p = path(9000, 2_000_000);
    const t = await assembleTrace(new ArraySpanSource([p.client, p.vethC, p.vethS, p.server]), p.server.span_id);
    expect(t?.spans.map((s) => [s.span.span_id, s.depth])).toEqual([
      [p.client.span_id, 0],
      [p.vethC.span_id, 1],
      [p.vethS.span_id, 2],
      [p.server.span_id, 3],
    ]);
    const split = hopSplits(t?.spans ?? []).get(p.client.span_id);
    // client: 45 000 − 44 900 (first hop); network: 44 900 − 4 800 (server); server 4 800
    expect(split).toEqual({ client_us: 100, network_us: 40_100, server_us: 4_800 });
  });
});

import { describe, expect, it } from 'vitest';
import { buildSpans } from '../../functions/span-builder/span-builder.ts';
import type { SlotWindow } from '../../functions/span-builder/span-builder.ts';
import type { SpanRow } from '../../functions/span-builder/span-row.ts';
import type { Batch } from '../../agent/shipping/batch.ts';
import { decodeBatch, encodeBatch } from '../../agent/shipping/codec.ts';
import { BASE_SLOT, cutBatches as cutRawBatches, httpReq, httpResp, msg, proc } from './fixtures.ts';
import type { SocketSpec } from './fixtures.ts';

/** The batches as the functions get them: through the RTB codec (a field it dropped would change the goldens). */
function cutBatches(...args: Parameters<typeof cutRawBatches>): Map<number, Batch> {
  return new Map([...cutRawBatches(...args)].map(([slot, b]) => [slot, decodeBatch(encodeBatch(b))]));
}

const client: SocketSpec = { socketId: 11, pid: 100, processName: 'curl', role: 'client', localIp: '10.0.0.1', localPort: 40000, remoteIp: '10.0.0.2', remotePort: 80 };
const server: SocketSpec = { socketId: 22, pid: 200, processName: 'nginx', role: 'server', localIp: '10.0.0.2', localPort: 80, remoteIp: '10.0.0.1', remotePort: 40000 };
const procs = [proc(100, 'curl'), proc(200, 'nginx'), proc(300, 'app')];

function windowFor(batches: Map<number, Batch>, slot: number, present: { prev?: boolean; next?: boolean } = {}): SlotWindow {
  const get = (s: number) => (batches.has(s) ? [batches.get(s) as Batch] : []);
  return { agentId: 'node-1', slot, prev: present.prev === false ? [] : get(slot - 1), cur: get(slot), next: present.next === false ? [] : get(slot + 1) };
}

/** The fields a reader checks by eye; the full rows go to the golden files. */
function brief(s: SpanRow) {
  return [s.side, s.l7_protocol, s.pair_state, s.request_resource || s.request_type, s.response_status, s.duration_us];
}

function allSlots(batches: Map<number, Batch>): SpanRow[] {
  const out: SpanRow[] = [];
  for (const slot of [...batches.keys()].sort()) out.push(...buildSpans(windowFor(batches, slot)).spans);
  return out;
}

describe('span builder golden streams', () => {
  it('keep-alive HTTP/1: serial pairing on both sides, x-request-id and trace context per side', async () => {
    const msgs = [];
    for (let i = 0; i < 3; i++) {
      const t = 100 + i * 50;
      const trace = { traceId: `0af7651916cd43dd8448eb211c80319${i}`, spanId: `b7ad6b716920333${i}`, xRequestId: `xr-${i}` };
      msgs.push(msg(client, t, 'egress', [httpReq(`/item/${i}`, trace)], { tcpSeq: 1000 + i * 100, tid: 101, syscallTraceId: 0 }));
      msgs.push(msg(server, t + 1, 'ingress', [httpReq(`/item/${i}`, trace)], { tcpSeq: 1000 + i * 100, tid: 201, syscallTraceId: 7000 + i }));
      msgs.push(msg(server, t + 10, 'egress', [httpResp(i === 2 ? 503 : 200, { xRequestId: `xr-${i}` })], { tcpSeq: 5000 + i * 200, tid: 202, syscallTraceId: 7000 + i }));
      msgs.push(msg(client, t + 11, 'ingress', [httpResp(i === 2 ? 503 : 200)], { tcpSeq: 5000 + i * 200, tid: 101, syscallTraceId: 9000 + i }));
    }
    const spans = allSlots(cutBatches('node-1', msgs, procs));
    expect(spans.map(brief)).toEqual([
      ['client', 'http1', 'paired', '/item/0', 'ok', 11000],
      ['client', 'http1', 'paired', '/item/1', 'ok', 11000],
      ['client', 'http1', 'paired', '/item/2', 'server_error', 11000],
      ['server', 'http1', 'paired', '/item/0', 'ok', 9000],
      ['server', 'http1', 'paired', '/item/1', 'ok', 9000],
      ['server', 'http1', 'paired', '/item/2', 'server_error', 9000],
    ]);
    const s = spans[4];
    expect([s.req_tcp_seq, s.resp_tcp_seq, s.syscall_trace_id_req, s.syscall_trace_id_resp, s.tid, s.resp_tid]).toEqual([1100, 5200, 7001, 7001, 201, 202]);
    expect([s.client_ip, s.client_port, s.server_ip, s.server_port]).toEqual(['10.0.0.1', 40000, '10.0.0.2', 80]);
    expect([s.trace_id, s.app_span_id, s.x_request_id_req, s.x_request_id_resp]).toEqual(['0af7651916cd43dd8448eb211c803191', 'b7ad6b7169203331', 'xr-1', 'xr-1']);
    // Client and server of one exchange share the TCP sequences: the link trace assembly uses.
    expect(spans[1].req_tcp_seq).toBe(spans[4].req_tcp_seq);
    await expect(JSON.stringify(spans, null, 1)).toMatchFileSnapshot('golden/keep-alive.json');
  });

  it('pipelining: three requests in one write pair in order with responses split over two reads', async () => {
    const sock: SocketSpec = { socketId: 33, pid: 300, processName: 'app', role: 'unknown', remotePort: 6379 };
    const redis = (cmd: string) => ({ l7Protocol: 'redis', msgType: 'request' as const, requestType: cmd, requestResource: `${cmd} k` });
    const ok = (code = 0) => ({ l7Protocol: 'redis', msgType: 'response' as const, responseStatus: code ? ('server_error' as const) : ('ok' as const), responseException: code ? 'ERR wrong type' : undefined });
    const msgs = [
      msg(sock, 200, 'egress', [redis('GET'), redis('SET'), redis('INCR')], { tcpSeq: 1 }),
      msg(sock, 201, 'ingress', [ok(), ok()], { tcpSeq: 1 }),
      msg(sock, 203, 'ingress', [ok(1)], { tcpSeq: 40 }),
    ];
    const spans = allSlots(cutBatches('node-1', msgs, procs));
    expect(spans.map(brief)).toEqual([
      ['client', 'redis', 'paired', 'GET k', 'ok', 1000],
      ['client', 'redis', 'paired', 'SET k', 'ok', 1000],
      ['client', 'redis', 'paired', 'INCR k', 'server_error', 3000],
    ]);
    expect(spans[2].response_exception).toBe('ERR wrong type');
    expect(new Set(spans.map((s) => s.span_id)).size).toBe(3);
    await expect(JSON.stringify(spans, null, 1)).toMatchFileSnapshot('golden/pipelining.json');
  });

  it('slot boundary: a request at the end of a slot pairs with its response in the next one', async () => {
    const msgs = [
      msg(client, 4999, 'egress', [httpReq('/slow')], { tcpSeq: 77 }),
      msg(client, 5003, 'ingress', [httpResp(200)], { tcpSeq: 88 }),
    ];
    const batches = cutBatches('node-1', msgs, procs);
    expect([...batches.keys()]).toEqual([BASE_SLOT, BASE_SLOT + 1]);
    const first = buildSpans(windowFor(batches, BASE_SLOT));
    const second = buildSpans(windowFor(batches, BASE_SLOT + 1));
    expect(first.spans.map(brief)).toEqual([['client', 'http1', 'paired', '/slow', 'ok', 4000]]);
    expect(first.spans[0]._version).toBe(2);
    // The next slot owns nothing here, but hides the response_only row a run without the request made.
    expect(second.spans).toEqual([]);
    expect(second.tombstones.map((t) => [t.pair_state, t._deleted, t._version])).toEqual([['response_only', 1, 2]]);

    // Out of order: each slot processed before its neighbour existed.
    const early = buildSpans(windowFor(batches, BASE_SLOT, { next: false }));
    const late = buildSpans(windowFor(batches, BASE_SLOT + 1, { prev: false }));
    expect(early.spans.map(brief)).toEqual([['client', 'http1', 'request_only', '/slow', 'timeout', 0]]);
    expect(early.spans[0].span_id).toBe(first.spans[0].span_id);
    expect(early.spans[0]._version).toBeLessThan(first.spans[0]._version);
    expect(late.spans.map(brief)).toEqual([['client', 'http1', 'response_only', '', 'ok', 0]]);
    expect(late.spans[0].span_id).toBe(second.tombstones[0].span_id);
    expect(late.spans[0]._version).toBeLessThan(second.tombstones[0]._version);
    await expect(JSON.stringify({ first, second }, null, 1)).toMatchFileSnapshot('golden/slot-boundary.json');
  });

  it('parallel protocols: HTTP/2 streams answered out of order, DNS ids over one UDP socket', async () => {
    const h2: SocketSpec = { socketId: 44, pid: 300, processName: 'app', role: 'client', remotePort: 443 };
    const dns: SocketSpec = { socketId: 55, pid: 300, processName: 'app', role: 'unknown', remotePort: 53, l4: 'udp' };
    const req = (id: number, path: string) => ({ l7Protocol: 'grpc', msgType: 'request' as const, requestId: id, requestResource: path });
    const resp = (id: number, code = 0) => ({ l7Protocol: 'grpc', msgType: 'response' as const, requestId: id, responseCode: code, responseStatus: code ? ('server_error' as const) : ('ok' as const) });
    const q = (id: number, name: string) => ({ l7Protocol: 'dns', msgType: 'request' as const, requestId: id, requestType: 'A', requestDomain: name, requestResource: name });
    const a = (id: number) => ({ l7Protocol: 'dns', msgType: 'response' as const, requestId: id, responseCode: 0, responseStatus: 'ok' as const });
    const msgs = [
      msg(h2, 300, 'egress', [req(1, '/a.A/One'), req(3, '/a.A/Two')]),
      msg(h2, 301, 'egress', [req(5, '/a.A/Three')]),
      msg(h2, 305, 'ingress', [resp(5), resp(1, 14)]),
      msg(h2, 309, 'ingress', [resp(3)]),
      msg(dns, 400, 'egress', [q(0x1234, 'db.local')]),
      msg(dns, 400.1, 'egress', [q(0x5678, 'cache.local')]),
      msg(dns, 401, 'ingress', [a(0x5678)]),
      msg(dns, 402, 'ingress', [a(0x1234)]),
    ];
    const spans = allSlots(cutBatches('node-1', msgs, procs));
    expect(spans.map(brief)).toEqual([
      ['client', 'grpc', 'paired', '/a.A/One', 'server_error', 5000],
      ['client', 'grpc', 'paired', '/a.A/Two', 'ok', 9000],
      ['client', 'grpc', 'paired', '/a.A/Three', 'ok', 4000],
      ['client', 'dns', 'paired', 'db.local', 'ok', 2000],
      ['client', 'dns', 'paired', 'cache.local', 'ok', 900],
    ]);
    expect(spans.map((s) => s.request_id)).toEqual([1, 3, 5, 0x1234, 0x5678]);
    await expect(JSON.stringify(spans, null, 1)).toMatchFileSnapshot('golden/parallel.json');
  });

  it('timeouts: unanswered requests and answers later than the protocol timeout', async () => {
    const dns: SocketSpec = { socketId: 66, pid: 300, processName: 'app', role: 'client', remotePort: 53, l4: 'udp' };
    const q = (id: number) => ({ l7Protocol: 'dns', msgType: 'request' as const, requestId: id, requestResource: `h${id}.local` });
    const a = (id: number) => ({ l7Protocol: 'dns', msgType: 'response' as const, requestId: id, responseStatus: 'ok' as const });
    const msgs = [
      msg(dns, 100, 'egress', [q(1)]), // never answered
      msg(dns, 200, 'egress', [q(2)]),
      msg(dns, 6300, 'ingress', [a(2)]), // 6.1 s later: past the 5 s DNS timeout
      msg(client, 300, 'egress', [httpReq('/hang')]), // HTTP: unanswered to the end of the window
      msg(client, 320, 'egress', [{ l7Protocol: 'mqtt', msgType: 'request', requestType: 'PUBLISH', requestResource: 't/1', oneWay: true }]),
    ];
    const batches = cutBatches('node-1', msgs, procs);
    const spans = allSlots(batches);
    expect(spans.map(brief)).toEqual([
      ['client', 'http1', 'request_only', '/hang', 'timeout', 0],
      ['client', 'mqtt', 'one_way', 't/1', 'ok', 0],
      ['client', 'dns', 'request_only', 'h1.local', 'timeout', 0],
      ['client', 'dns', 'request_only', 'h2.local', 'timeout', 0],
      ['client', 'dns', 'response_only', '', 'ok', 0],
    ]);
    await expect(JSON.stringify(spans, null, 1)).toMatchFileSnapshot('golden/timeouts.json');
  });

  it('side from direction when the socket role is unknown; span ids are stable and unique', () => {
    const unknownSrv: SocketSpec = { socketId: 77, pid: 200, processName: 'nginx', role: 'unknown', localPort: 80, remotePort: 51000, remoteIp: '10.0.0.9' };
    const msgs = [msg(unknownSrv, 10, 'ingress', [httpReq('/x')]), msg(unknownSrv, 12, 'egress', [httpResp(404)])];
    const [s] = allSlots(cutBatches('node-1', msgs, procs));
    expect([s.side, s.client_ip, s.client_port, s.server_port, s.response_status]).toEqual(['server', '10.0.0.9', 51000, 80, 'client_error']);
    const again = allSlots(cutBatches('node-1', msgs, procs))[0];
    expect(again.span_id).toBe(s.span_id);
    const otherAgent = buildSpans({ ...windowFor(cutBatches('node-1', msgs, procs), BASE_SLOT), agentId: 'node-2' }).spans[0];
    expect(otherAgent.span_id).not.toBe(s.span_id);
  });
});

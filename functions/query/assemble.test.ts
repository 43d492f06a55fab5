import { describe, expect, it } from 'vitest';
import { ArraySpanSource, HANDBACK_CHAIN_PENALTY, HANDBACK_CONFIDENCE, HANDOFF_INFERRED_CONFIDENCE, RULE_CONFIDENCE, TCP_SEQ_EXACT, assembleTrace, derivedTraceId, idTokens, linkParents } from './assemble.ts';
import type { AssembleOptions, Link, ParentRule, SpanSource } from './assemble.ts';
import { TIMING_MIN_SAMPLES, resourceShape, timingLinks } from './timing.ts';
import type { ShapeModel } from './timing.ts';
import type { AsmSpan } from './span.ts';

// Synthetic spans with the fields the capture path fills. Times in µs.
let n = 0;
function span(p: Partial<AsmSpan>): AsmSpan {
  n++;
  return {
    trace_id: '',
    app_span_id: '',
    app_parent_span_id: '',
    signal_source: 'ebpf',
    agent_id: 'h1',
    start_time_us: 0,
    end_time_us: 0,
    side: 'client',
    l7_protocol: 'http1',
    l4_protocol: 'tcp',
    request_id: -1,
    pid: 0,
    tid: 0,
    resp_tid: 0,
    client_port: 0,
    server_port: 0,
    req_tcp_seq: 0,
    resp_tcp_seq: 0,
    syscall_trace_id_req: 0,
    syscall_trace_id_resp: 0,
    x_request_id_req: '',
    x_request_id_resp: '',
    host_id: 0,
    process_id: 0,
    ...p,
    span_id: p.span_id ?? n.toString(16).padStart(16, '0'),
  };
}

interface Proc {
  agent?: string;
  pid: number;
  tid: number;
}
interface Side extends Proc {
  sys?: [number, number];
}

let seq = 100_000;
/** One network exchange seen at both ends: the client span and the server span share TCP sequences. */
function exchange(o: { c: Side; s: Side; start: number; end: number; proto?: string; cport?: number; sport?: number; skew?: number; names?: [string, string] }): [AsmSpan, AsmSpan] {
  const reqSeq = (seq += 1000);
  const respSeq = seq + 7_777_777;
  const common = { l7_protocol: o.proto ?? 'http1', client_port: o.cport ?? 40000 + (n % 1000), server_port: o.sport ?? 80, req_tcp_seq: reqSeq, resp_tcp_seq: respSeq };
  const skew = o.skew ?? 0;
  const c = span({ ...common, span_id: o.names?.[0], side: 'client', agent_id: o.c.agent ?? 'h1', pid: o.c.pid, tid: o.c.tid, resp_tid: o.c.tid, start_time_us: o.start, end_time_us: o.end, syscall_trace_id_req: o.c.sys?.[0] ?? 0, syscall_trace_id_resp: o.c.sys?.[1] ?? 0 });
  const s = span({ ...common, span_id: o.names?.[1], side: 'server', agent_id: o.s.agent ?? 'h1', pid: o.s.pid, tid: o.s.tid, resp_tid: o.s.tid, start_time_us: o.start + 5 + skew, end_time_us: o.end - 5 + skew, syscall_trace_id_req: o.s.sys?.[0] ?? 0, syscall_trace_id_resp: o.s.sys?.[1] ?? 0 });
  return [c, s];
}

const parentsOf = (spans: AsmSpan[]): Record<string, string | undefined> => {
  const l = linkParents(spans);
  return Object.fromEntries(spans.map((s) => [s.span_id, l.get(s.span_id)?.parent]));
};

async function assembled(spans: AsmSpan[], seed: string, options: Partial<AssembleOptions> = {}): Promise<Map<string, string | null>> {
  const t = await assembleTrace(new ArraySpanSource(spans), seed, options);
  return new Map((t?.spans ?? []).map((s) => [s.span.span_id, s.parent_id]));
}

/**
 * One request of the acceptance topology: curl → nginx → A → (Redis, PostgreSQL, B → MariaDB).
 * nginx is an event loop (one thread for all requests); A and B use a thread per connection, and
 * nginx keeps `conns` keep-alive connections to A, so A's threads serve many requests one after another.
 */
function request(k: number, t: number, o: { conns: number; interleave?: boolean }): { spans: AsmSpan[]; expect: Record<string, string | null> } {
  const id = (x: number): number => k * 100 + x;
  const conn = k % o.conns;
  const nm = (x: string): string => `${x}-${k}`.padStart(16, '0');
  const curl = { pid: 10 + k, tid: 10 + k };
  // nginx: under interleaving the upstream write carries the id of a *later* request's read (the
  // event loop read it in between); the response side stays exact.
  const [c0, s1] = exchange({ c: { ...curl, sys: [0, id(90)] }, s: { pid: 20, tid: 20, sys: [id(1), id(2)] }, start: t, end: t + 1000, names: [nm('c0'), nm('s1')] });
  const [c1, s2] = exchange({
    c: { pid: 20, tid: 20, sys: [o.interleave ? id(1) + 100 : id(1), id(2)] },
    s: { pid: 30, tid: 300 + conn, sys: [id(10), id(13)] },
    start: t + 20,
    end: t + 980,
    cport: 41000 + conn,
    sport: 8080,
    names: [nm('c1'), nm('s2')],
  });
  const [c2, s3] = exchange({ c: { pid: 30, tid: 300 + conn, sys: [id(10), id(11)] }, s: { pid: 40, tid: 40, sys: [id(40), id(40)] }, start: t + 40, end: t + 100, proto: 'redis', sport: 6379, names: [nm('c2'), nm('s3')] });
  const [c3, s4] = exchange({ c: { pid: 30, tid: 300 + conn, sys: [id(11), id(12)] }, s: { pid: 50 + conn, tid: 50 + conn, sys: [id(50), id(50)] }, start: t + 110, end: t + 300, proto: 'postgresql', sport: 5432, names: [nm('c3'), nm('s4')] });
  const [c4, s5] = exchange({ c: { pid: 30, tid: 300 + conn, sys: [id(12), id(13)] }, s: { pid: 60, tid: 600 + conn, sys: [id(60), id(61)] }, start: t + 310, end: t + 900, sport: 8081, names: [nm('c4'), nm('s5')] });
  const [c5, s6] = exchange({ c: { pid: 60, tid: 600 + conn, sys: [id(60), id(61)] }, s: { pid: 70, tid: 700 + conn, sys: [id(70), id(70)] }, start: t + 330, end: t + 880, proto: 'mysql', sport: 3306, names: [nm('c5'), nm('s6')] });
  const expect = {
    [c0.span_id]: null,
    [s1.span_id]: c0.span_id,
    [c1.span_id]: s1.span_id,
    [s2.span_id]: c1.span_id,
    [c2.span_id]: s2.span_id,
    [s3.span_id]: c2.span_id,
    [c3.span_id]: s2.span_id,
    [s4.span_id]: c3.span_id,
    [c4.span_id]: s2.span_id,
    [s5.span_id]: c4.span_id,
    [c5.span_id]: s5.span_id,
    [s6.span_id]: c5.span_id,
  };
  return { spans: [c0, s1, c1, s2, c2, s3, c3, s4, c4, s5, c5, s6], expect };
}

describe('trace assembly rules', () => {
  it('tcp_seq: a server span is the child of the client span of the same exchange', () => {
    const [c, s] = exchange({ c: { pid: 1, tid: 1 }, s: { pid: 2, tid: 2 }, start: 1000, end: 2000 });
    const l = linkParents([s, c]);
    expect(l.get(s.span_id)).toMatchObject({ parent: c.span_id, rule: 'tcp_seq' });
    expect(l.has(c.span_id)).toBe(false);
  });

  it('keep-alive: requests reusing one connection link by sequence, not by socket or ports', () => {
    const spans: AsmSpan[] = [];
    for (let i = 0; i < 5; i++) spans.push(...exchange({ c: { pid: 1, tid: 1 }, s: { pid: 2, tid: 2 }, start: i * 10_000, end: i * 10_000 + 3000, cport: 45678, sport: 80 }));
    const p = parentsOf(spans);
    for (let i = 0; i < 5; i++) expect(p[spans[2 * i + 1].span_id]).toBe(spans[2 * i].span_id);
    // A response read in pieces: the sides keep different response sequences; the request one decides.
    const [c, s] = exchange({ c: { pid: 1, tid: 1 }, s: { pid: 2, tid: 2 }, start: 0, end: 100 });
    expect(parentsOf([c, { ...s, resp_tcp_seq: s.resp_tcp_seq - 409 }])[s.span_id]).toBe(c.span_id);
    // Two client spans with the request sequence (a duplicate): the equal response sequence wins.
    const dup = { ...c, span_id: 'dup', resp_tcp_seq: c.resp_tcp_seq + 1, start_time_us: c.start_time_us + 1 };
    expect(parentsOf([dup, c, s])[s.span_id]).toBe(c.span_id);
  });

  it('tcp_seq, header-first protocols: a MySQL server reading the 4-byte header first sees the sequence 4 bytes on', () => {
    const [c, s] = exchange({ c: { pid: 1, tid: 1 }, s: { pid: 2, tid: 2 }, start: 0, end: 100, proto: 'mysql' });
    const shifted = { ...s, req_tcp_seq: s.req_tcp_seq + 4, resp_tcp_seq: s.resp_tcp_seq - 4 };
    expect(linkParents([c, shifted]).get(s.span_id)).toMatchObject({ parent: c.span_id, rule: 'tcp_seq' });
    expect(linkParents([c, { ...shifted, l7_protocol: 'http1' }, { ...c, l7_protocol: 'http1' }]).has(s.span_id)).toBe(false);
  });

  it('reverse proxy: the request taken on one socket and forwarded on another links through the thread\'s syscall ids', () => {
    const [c0, s1] = exchange({ c: { pid: 1, tid: 1 }, s: { pid: 20, tid: 20, sys: [7, 8] }, start: 0, end: 1000, sport: 80 });
    const [c1, s2] = exchange({ c: { pid: 20, tid: 20, sys: [7, 8] }, s: { pid: 30, tid: 30 }, start: 100, end: 900, sport: 8080 });
    const l = linkParents([c0, s1, c1, s2]);
    expect(l.get(c1.span_id)).toMatchObject({ parent: s1.span_id, rule: 'syscall_response' });
    expect(l.get(s2.span_id)?.parent).toBe(c1.span_id);
    expect(l.get(s1.span_id)?.parent).toBe(c0.span_id);
  });

  it('syscall_chain: calls after the first follow the chain of ids; a DNS lookup in the middle keeps the chain', () => {
    // A receives (id 1), asks DNS (sends with 1, the reply starts id 2), calls Redis with 2 (reply 3),
    // then answers with 3.
    const srv = span({ side: 'server', pid: 30, tid: 31, start_time_us: 0, end_time_us: 1000, syscall_trace_id_req: 1, syscall_trace_id_resp: 3, req_tcp_seq: 5, resp_tcp_seq: 6 });
    const dnsC = span({ side: 'client', pid: 30, tid: 31, l4_protocol: 'udp', l7_protocol: 'dns', request_id: 4242, client_port: 51000, server_port: 53, start_time_us: 100, end_time_us: 200, syscall_trace_id_req: 1, syscall_trace_id_resp: 2 });
    const dnsS = span({ side: 'server', pid: 90, tid: 90, l4_protocol: 'udp', l7_protocol: 'dns', request_id: 4242, client_port: 51000, server_port: 53, start_time_us: 110, end_time_us: 190 });
    const redis = span({ side: 'client', pid: 30, tid: 31, l7_protocol: 'redis', start_time_us: 300, end_time_us: 400, syscall_trace_id_req: 2, syscall_trace_id_resp: 9, req_tcp_seq: 77, resp_tcp_seq: 78 });
    const pg = span({ side: 'client', pid: 30, tid: 31, l7_protocol: 'postgresql', start_time_us: 500, end_time_us: 900, syscall_trace_id_req: 9, syscall_trace_id_resp: 3, req_tcp_seq: 87, resp_tcp_seq: 88 });
    const l = linkParents([srv, dnsC, dnsS, redis, pg]);
    expect(l.get(dnsC.span_id)).toMatchObject({ parent: srv.span_id, rule: 'syscall_chain' });
    expect(l.get(dnsS.span_id)).toMatchObject({ parent: dnsC.span_id, rule: 'udp_request_id' });
    expect(l.get(redis.span_id)).toMatchObject({ parent: srv.span_id, rule: 'syscall_chain' });
    expect(l.get(pg.span_id)).toMatchObject({ parent: srv.span_id, rule: 'syscall_response' });
    // A DNS reply with another id (a retry, another lookup) is not this exchange.
    expect(linkParents([dnsC, { ...dnsS, request_id: 4243 }]).get(dnsS.span_id)).toBeUndefined();
  });

  it('concurrent requests on one thread: syscall evidence beats "innermost server span"; no evidence, no guess', () => {
    // An event loop serves S1 [0,1000] and S2 [100,900]. C1 [200,800] belongs to S1, C2 [300,700] to S2.
    const s1 = span({ side: 'server', pid: 20, tid: 20, start_time_us: 0, end_time_us: 1000, syscall_trace_id_req: 1, syscall_trace_id_resp: 11 });
    const s2 = span({ side: 'server', pid: 20, tid: 20, start_time_us: 100, end_time_us: 900, syscall_trace_id_req: 2, syscall_trace_id_resp: 12 });
    // The event loop read S2's request before writing C1: C1 carries S2's request id, but S1 answered
    // right after C1's response came back.
    const c1 = span({ side: 'client', pid: 20, tid: 20, start_time_us: 200, end_time_us: 800, syscall_trace_id_req: 2, syscall_trace_id_resp: 11, req_tcp_seq: 3 });
    const c2 = span({ side: 'client', pid: 20, tid: 20, start_time_us: 300, end_time_us: 700, syscall_trace_id_req: 2, syscall_trace_id_resp: 12, req_tcp_seq: 4 });
    const p = parentsOf([s1, s2, c1, c2]);
    expect(p[c1.span_id]).toBe(s1.span_id);
    expect(p[c2.span_id]).toBe(s2.span_id);
    const bare = [s1, s2, c1, c2].map((s) => ({ ...s, syscall_trace_id_req: 0, syscall_trace_id_resp: 0 }));
    const q = parentsOf(bare);
    expect(q[c1.span_id]).toBeUndefined(); // both S1 and S2 contain it: ambiguous
    expect(q[c2.span_id]).toBeUndefined();
  });

  it('event loop: a call sent with an id of another request\'s chain is not guessed into it (recorded from nginx)', async () => {
    // nginx (pid 20, one thread) reads requests A, B, C (ids 1, 2, 3). Right after reading A it
    // writes B's upstream call (id 1); reading that call's reply starts id 7, and the next writes are
    // A's and C's upstream calls (id 7). So A's chain {1, 7} holds the request id of all three calls.
    const [ca, sa] = exchange({ c: { pid: 1, tid: 1 }, s: { pid: 20, tid: 20, sys: [1, 8] }, start: 0, end: 1000 });
    const [cb, sb] = exchange({ c: { pid: 2, tid: 2 }, s: { pid: 20, tid: 20, sys: [2, 7] }, start: 10, end: 1000 });
    const [cc, sc] = exchange({ c: { pid: 3, tid: 3 }, s: { pid: 20, tid: 20, sys: [3, 9] }, start: 20, end: 1000 });
    const [ub, ubs] = exchange({ c: { pid: 20, tid: 20, sys: [1, 7] }, s: { pid: 30, tid: 31 }, start: 30, end: 500 });
    const [ua, uas] = exchange({ c: { pid: 20, tid: 20, sys: [7, 8] }, s: { pid: 30, tid: 32 }, start: 510, end: 900 });
    const [uc, ucs] = exchange({ c: { pid: 20, tid: 20, sys: [7, 9] }, s: { pid: 30, tid: 33 }, start: 520, end: 950 });
    // C's server span as a reader sees it before C's response is stored: request only.
    const scEarly = { ...sc, syscall_trace_id_resp: 0, resp_tcp_seq: 0, end_time_us: sc.start_time_us };
    const all = [ca, sa, cb, sb, cc, scEarly, ub, ubs, ua, uas, uc, ucs];
    const a = await assembled(all, ca.span_id);
    expect([...a.keys()].sort()).toEqual([ca.span_id, sa.span_id, ua.span_id, uas.span_id].sort());
    expect(a.get(ua.span_id)).toBe(sa.span_id);
    // With every span stored, each call goes to its own request by the response-side id.
    const full = parentsOf([ca, sa, cb, sb, cc, sc, ub, ubs, ua, uas, uc, ucs]);
    expect([full[ua.span_id], full[ub.span_id], full[uc.span_id]]).toEqual([sa.span_id, sb.span_id, sc.span_id]);
  });

  it('content: on an event loop, an id of exactly one open request that reappears in the call links it', () => {
    // A Node.js gateway (one thread) serves /orders/1001 and /orders/1002 at once; both requests' calls
    // carry no usable syscall id (the loop read the other request in between).
    const s1 = span({ side: 'server', pid: 20, tid: 20, start_time_us: 0, end_time_us: 1000, request_resource: '/orders/1001', syscall_trace_id_req: 1, syscall_trace_id_resp: 9 });
    const s2 = span({ side: 'server', pid: 20, tid: 20, start_time_us: 50, end_time_us: 900, request_resource: '/orders/1002', syscall_trace_id_req: 2, syscall_trace_id_resp: 8 });
    const c1 = span({ side: 'client', pid: 20, tid: 20, start_time_us: 100, end_time_us: 300, request_resource: '/stock/1001/a', syscall_trace_id_req: 2, syscall_trace_id_resp: 5, req_tcp_seq: 3 });
    const c2 = span({ side: 'client', pid: 20, tid: 20, start_time_us: 110, end_time_us: 320, request_resource: '/stock/v1?order=1002', syscall_trace_id_req: 2, syscall_trace_id_resp: 6, req_tcp_seq: 4 });
    const l = linkParents([s1, s2, c1, c2]);
    expect(l.get(c1.span_id)).toEqual({ parent: s1.span_id, rule: 'content', confidence: RULE_CONFIDENCE.content });
    expect(l.get(c2.span_id)).toMatchObject({ parent: s2.span_id, rule: 'content' });
    // No guess: an id both open requests hold, ids pointing at two requests, no id at all, or a
    // threshold above the rule's confidence.
    const both = { ...s2, request_resource: '/orders/1001/again' };
    expect(linkParents([s1, both, c1]).has(c1.span_id)).toBe(false);
    const twoWays = { ...c1, request_resource: '/stock/1001/1002' };
    expect(linkParents([s1, s2, twoWays]).has(c1.span_id)).toBe(false);
    const bare = { ...c1, request_resource: '/stock/a' };
    expect(linkParents([s1, s2, bare]).has(c1.span_id)).toBe(false);
    expect(linkParents([s1, s2, c1], { minConfidence: 0.75 }).has(c1.span_id)).toBe(false);
    // The response-side syscall id, when the content agrees or says nothing, is the stronger link.
    expect(linkParents([s1, s2, { ...c1, syscall_trace_id_resp: 9 }]).get(c1.span_id)).toMatchObject({ parent: s1.span_id, rule: 'syscall_response' });
    expect(linkParents([s1, s2, { ...bare, syscall_trace_id_resp: 8 }]).get(c1.span_id)).toMatchObject({ parent: s2.span_id, rule: 'syscall_response' });
  });

  it('shared loop: when the response-side id and the content name two open requests, the content links the call (recorded shape of Python asyncio)', () => {
    // An asyncio gateway (one thread) serves /seq/3016 and /seq/3017. One select() returns the reply
    // to 3017's /down/3017/b (read: id 5) and then the reply to 3016's /down/3016/a (id 6): both
    // reads run before either task. Then 3017's task writes its response — with id 6, the last read
    // — and 3016's task writes /down/3016/b, also with id 6.
    const s16 = span({ side: 'server', pid: 20, tid: 20, start_time_us: 0, end_time_us: 2000, request_resource: '/seq/3016', syscall_trace_id_req: 1, syscall_trace_id_resp: 7 });
    const s17 = span({ side: 'server', pid: 20, tid: 20, start_time_us: 10, end_time_us: 1200, request_resource: '/seq/3017', syscall_trace_id_req: 2, syscall_trace_id_resp: 6 });
    const a16 = span({ side: 'client', pid: 20, tid: 20, start_time_us: 100, end_time_us: 1100, request_resource: '/down/3016/a', syscall_trace_id_req: 2, syscall_trace_id_resp: 6, req_tcp_seq: 3 });
    const b17 = span({ side: 'client', pid: 20, tid: 20, start_time_us: 200, end_time_us: 1090, request_resource: '/down/3017/b', syscall_trace_id_req: 3, syscall_trace_id_resp: 5, req_tcp_seq: 4 });
    const b16 = span({ side: 'client', pid: 20, tid: 20, start_time_us: 1150, end_time_us: 1900, request_resource: '/down/3016/b', syscall_trace_id_req: 6, syscall_trace_id_resp: 7, req_tcp_seq: 5 });
    const l = linkParents([s16, s17, a16, b17, b16]);
    // The response id alone would give /down/3016/a to 3017 (whose response went out with id 6).
    expect(l.get(a16.span_id)).toEqual({ parent: s16.span_id, rule: 'content', confidence: RULE_CONFIDENCE.content });
    expect(l.get(b17.span_id)).toMatchObject({ parent: s17.span_id, rule: 'content' });
    expect(l.get(b16.span_id)).toMatchObject({ parent: s16.span_id, rule: 'syscall_response' });
    // Without content (a threshold above it) the conflicting call stays unattached, not wrong.
    const strict = linkParents([s16, s17, a16, b17, b16], { minConfidence: RULE_CONFIDENCE.content + 0.01 });
    expect(strict.has(a16.span_id)).toBe(false);
    expect(strict.get(b16.span_id)?.parent).toBe(s16.span_id);
  });

  it('idTokens: ids, not words or versions', () => {
    expect(idTokens('/down/1001/a')).toEqual(['1001']);
    expect(idTokens('/api/v1/users/42?session=a3f9c2d1e&page=7')).toEqual(['42', 'a3f9c2d1e']);
    expect(idTokens('GET user:17')).toEqual(['17']);
    expect(idTokens('/health')).toEqual([]);
    expect(idTokens(undefined)).toEqual([]);
  });

  it('thread: one server span of the thread contains the call and nothing else says otherwise', () => {
    const s = span({ side: 'server', pid: 5, tid: 6, start_time_us: 0, end_time_us: 100 });
    const c = span({ side: 'client', pid: 5, tid: 6, start_time_us: 10, end_time_us: 20, req_tcp_seq: 9 });
    const other = span({ side: 'client', pid: 5, tid: 7, start_time_us: 10, end_time_us: 20, req_tcp_seq: 10 });
    const l = linkParents([s, c, other]);
    expect(l.get(c.span_id)).toMatchObject({ parent: s.span_id, rule: 'thread' });
    expect(l.has(other.span_id)).toBe(false);
  });

  it('thread reuse: a pooled thread serving request after request gives each call to the request it lies in', async () => {
    const [r1c, r1s] = exchange({ c: { pid: 1, tid: 1 }, s: { pid: 2, tid: 22, sys: [1, 1] }, start: 0, end: 1000 });
    const [r2c, r2s] = exchange({ c: { pid: 1, tid: 1 }, s: { pid: 2, tid: 22, sys: [2, 3] }, start: 2000, end: 3000 });
    const [dbc, dbs] = exchange({ c: { pid: 2, tid: 22, sys: [2, 3] }, s: { pid: 3, tid: 3 }, start: 2200, end: 2800, proto: 'mysql' });
    const all = [r1c, r1s, r2c, r2s, dbc, dbs];
    expect(parentsOf(all)[dbc.span_id]).toBe(r2s.span_id);
    expect([...(await assembled(all, r1s.span_id)).keys()].sort()).toEqual([r1c.span_id, r1s.span_id].sort());
    expect([...(await assembled(all, dbs.span_id)).keys()].sort()).toEqual([r2c.span_id, r2s.span_id, dbc.span_id, dbs.span_id].sort());
  });

  it('hosts apart: spans seen by two agents link through the TCP sequence within the clock tolerance', () => {
    const [c, s] = exchange({ c: { agent: 'h1', pid: 1, tid: 1 }, s: { agent: 'h2', pid: 1, tid: 1 }, start: 10_000, end: 20_000, skew: -8_000 });
    expect(linkParents([c, s]).get(s.span_id)).toMatchObject({ parent: c.span_id, rule: 'tcp_seq' });
    // The same sequence a minute later is a wrapped-around or unrelated exchange.
    const late = { ...s, start_time_us: s.start_time_us + 60_000_000, end_time_us: s.end_time_us + 60_000_000 };
    expect(linkParents([c, late]).has(s.span_id)).toBe(false);
  });

  it('x_request_id: a proxy passing the id on links the forwarded call even without syscall ids', () => {
    const s1 = span({ side: 'server', pid: 20, tid: 20, start_time_us: 0, end_time_us: 1000, x_request_id_req: 'abc' });
    const s2 = span({ side: 'server', pid: 20, tid: 20, start_time_us: 10, end_time_us: 990, x_request_id_req: 'def' });
    const c = span({ side: 'client', pid: 20, tid: 20, start_time_us: 100, end_time_us: 900, x_request_id_req: 'abc', req_tcp_seq: 3 });
    expect(linkParents([s1, s2, c]).get(c.span_id)).toMatchObject({ parent: s1.span_id, rule: 'x_request_id' });
  });

  it('OTel spans join eBPF spans through the traceparent they carried', () => {
    const trace = 'ab'.repeat(16);
    // Instrumented caller: OTel client span oc (id 1111…) injects traceparent; the eBPF client span
    // of that request carries 1111… as app_span_id, so does the eBPF server span at the callee, whose
    // OTel server span os has parent 1111….
    const oc = span({ signal_source: 'otel', side: 'client', trace_id: trace, app_span_id: '1'.repeat(16), span_id: '1'.repeat(16), start_time_us: 0, end_time_us: 1000 });
    const [ec, es] = exchange({ c: { pid: 1, tid: 1 }, s: { pid: 2, tid: 2 }, start: 10, end: 990 });
    ec.trace_id = es.trace_id = trace;
    ec.app_span_id = es.app_span_id = '1'.repeat(16);
    const os = span({ signal_source: 'otel', side: 'server', trace_id: trace, app_span_id: '2'.repeat(16), span_id: '2'.repeat(16), app_parent_span_id: '1'.repeat(16), start_time_us: 30, end_time_us: 900 });
    const l = linkParents([oc, ec, es, os]);
    expect(l.get(ec.span_id)).toMatchObject({ parent: oc.span_id, rule: 'traceparent' });
    expect(l.get(es.span_id)).toMatchObject({ parent: ec.span_id, rule: 'tcp_seq' });
    expect(l.get(os.span_id)).toMatchObject({ parent: es.span_id, rule: 'otel_parent' });
    // Without the eBPF side, OTel spans link to each other.
    expect(linkParents([oc, os]).get(os.span_id)).toMatchObject({ parent: oc.span_id, rule: 'otel_parent' });
  });

  it('never makes a cycle', () => {
    // Two spans that would each be the other's parent by some rule.
    const a = span({ side: 'server', pid: 1, tid: 1, start_time_us: 0, end_time_us: 100, req_tcp_seq: 5, resp_tcp_seq: 6 });
    const b = span({ side: 'client', pid: 1, tid: 1, start_time_us: 0, end_time_us: 100, req_tcp_seq: 5, resp_tcp_seq: 6 });
    const l = linkParents([a, b]);
    expect(l.get(a.span_id)?.parent).toBe(b.span_id);
    expect(l.has(b.span_id)).toBe(false);
  });
});

describe('parent confidence', () => {
  it('every link carries its rule\'s confidence; an exact sequence pair is certain, a request-only one is not', () => {
    const [c, s] = exchange({ c: { pid: 1, tid: 1 }, s: { pid: 2, tid: 2 }, start: 1000, end: 2000 });
    expect(linkParents([c, s]).get(s.span_id)).toEqual({ parent: c.span_id, rule: 'tcp_seq', confidence: TCP_SEQ_EXACT });
    const early = { ...s, resp_tcp_seq: 0 };
    expect(linkParents([c, early]).get(s.span_id)).toEqual({ parent: c.span_id, rule: 'tcp_seq', confidence: RULE_CONFIDENCE.tcp_seq });
    // The order of the rules is the order of their confidence: a rule tried later never outranks one tried first.
    const { tcp_seq, udp_request_id, traceparent, x_request_id, syscall_response, syscall_chain, content, thread } = RULE_CONFIDENCE;
    expect([traceparent, x_request_id, syscall_response, syscall_chain, content, thread]).toEqual([traceparent, x_request_id, syscall_response, syscall_chain, content, thread].sort((a, b) => b - a));
    expect(tcp_seq).toBeGreaterThanOrEqual(udp_request_id);
    for (const v of Object.values(RULE_CONFIDENCE)) expect(v > 0 && v <= 1).toBe(true);
  });

  it('a link below minConfidence is left unattached, not guessed; the default keeps every rule', () => {
    const s = span({ side: 'server', pid: 5, tid: 6, start_time_us: 0, end_time_us: 100 });
    const c = span({ side: 'client', pid: 5, tid: 6, start_time_us: 10, end_time_us: 20, req_tcp_seq: 9 });
    expect(linkParents([s, c]).get(c.span_id)).toEqual({ parent: s.span_id, rule: 'thread', confidence: RULE_CONFIDENCE.thread });
    expect(linkParents([s, c], { minConfidence: RULE_CONFIDENCE.thread + 0.01 }).has(c.span_id)).toBe(false);
    // A weak rule's failure does not stop a stronger one: the syscall response id still links.
    const s2 = { ...s, syscall_trace_id_req: 1, syscall_trace_id_resp: 2 };
    const c2 = { ...c, syscall_trace_id_req: 1, syscall_trace_id_resp: 2 };
    expect(linkParents([s2, c2], { minConfidence: 0.85 }).get(c.span_id)).toMatchObject({ parent: s.span_id, rule: 'syscall_response' });
    expect(linkParents([s2, c2], { minConfidence: 0.95 }).has(c.span_id)).toBe(false);
  });

  it('the assembled trace reports each span\'s confidence, null for the root', async () => {
    const { spans } = request(1, 10_000, { conns: 1 });
    const t = await assembleTrace(new ArraySpanSource(spans), spans[0].span_id);
    expect(t?.spans).toHaveLength(12);
    for (const m of t?.spans ?? []) {
      if (m.parent_id === null) expect(m.confidence).toBeNull();
      else expect(m.confidence).toBe(m.rule === 'tcp_seq' ? TCP_SEQ_EXACT : RULE_CONFIDENCE[m.rule as ParentRule]);
    }
    // With only exact evidence allowed, the tree breaks where a rule was weaker: fewer spans, no wrong ones.
    const strict = await assembleTrace(new ArraySpanSource(spans), spans[0].span_id, { minConfidence: 1 });
    expect(strict?.spans.map((m) => m.span.span_id)).toEqual([spans[0].span_id, spans[1].span_id]);
  });
});

describe('assembleTrace', () => {
  it('assembles the whole multi-hop request from any of its spans', async () => {
    const { spans, expect: want } = request(1, 1_000_000, { conns: 1 });
    for (const seed of spans) {
      const got = await assembled(spans, seed.span_id);
      expect(Object.fromEntries(got)).toEqual(want);
    }
    const t = await assembleTrace(new ArraySpanSource(spans), spans[5].span_id);
    expect(t?.trace_id).toBe(derivedTraceId(spans[0].span_id));
    expect(t?.spans[0].span.span_id).toBe(spans[0].span_id);
    // parents come before children, each child starts inside its parent (here: same clock)
    const pos = new Map(t?.spans.map((s, i) => [s.span.span_id, i]));
    for (const s of t?.spans ?? []) if (s.parent_id) expect(pos.get(s.parent_id)).toBeLessThan(pos.get(s.span.span_id) as number);
  });

  it('100 concurrent requests through keep-alive connections and an event-loop proxy give 100 separate traces', async () => {
    const all: AsmSpan[] = [];
    const wants: Array<Record<string, string | null>> = [];
    for (let k = 0; k < 100; k++) {
      // requests overlap (a new one every 50 µs, each lasts 1 ms); 25 connections to A
      const r = request(k, 5_000_000 + k * 50, { conns: 25, interleave: k % 2 === 1 });
      all.push(...r.spans);
      wants.push(r.expect);
    }
    const source = new ArraySpanSource(all);
    for (let k = 0; k < 100; k++) {
      const ids = Object.keys(wants[k]);
      for (const seed of [ids[0], ids[5], ids[11]]) {
        const t = await assembleTrace(source, seed);
        expect(Object.fromEntries((t?.spans ?? []).map((s) => [s.span.span_id, s.parent_id])), `request ${k} from ${seed}`).toEqual(wants[k]);
      }
    }
  });

  it('searches again with a wide window when the trace reaches the short window\'s edge', async () => {
    // A slow request: the call to B starts 5 s after the root, beyond the 2 s short window.
    const { spans, expect: want } = request(7, 20_000_000, { conns: 1 });
    const stretched = spans.map((s) => {
      const late = s.start_time_us > 20_000_000 + 300;
      const shift = (t: number): number => (t > 20_000_000 + 300 ? t + 5_000_000 : t);
      return { ...s, start_time_us: shift(s.start_time_us), end_time_us: late || s.end_time_us > 20_000_000 + 900 ? s.end_time_us + 5_000_000 : s.end_time_us };
    });
    const leaf = stretched[11]; // MariaDB's server span, 5 s after the root
    const t = await assembleTrace(new ArraySpanSource(stretched), leaf.span_id);
    expect(Object.fromEntries((t?.spans ?? []).map((s) => [s.span.span_id, s.parent_id]))).toEqual(want);
    const narrow = await assembleTrace(new ArraySpanSource(stretched), leaf.span_id, { wideWindowUs: 1 });
    expect(narrow?.spans.length).toBeLessThan(12);
  });

  it('is bounded: span count and iterations', async () => {
    const { spans } = request(3, 9_000_000, { conns: 1 });
    const t = await assembleTrace(new ArraySpanSource(spans), spans[0].span_id, { maxSpans: 4 });
    expect(t?.truncated).toBe(true);
    expect(t?.fetched).toBe(4);
    const u = await assembleTrace(new ArraySpanSource(spans), spans[0].span_id, { maxIterations: 1 });
    expect(u?.iterations).toBe(1);
    expect(await assembleTrace(new ArraySpanSource(spans), 'nope')).toBeUndefined();
  });
});

describe('handoff: a request read on one thread, served on another (thread pools)', () => {
  // Reader thread 10 reads requests A (syscall id 100) and B (200); worker threads 21 and 22 make the
  // database calls with ids of their own (the last reply they read), and a writer thread 30 answers.
  // Only the wake-up evidence (handoff_trace_id) says which request a call belongs to.
  const pool = (): { a: AsmSpan; b: AsmSpan; callA: [AsmSpan, AsmSpan]; callB: [AsmSpan, AsmSpan] } => {
    const [, a] = exchange({ c: { pid: 1, tid: 1 }, s: { pid: 2, tid: 10, sys: [100, 900] }, start: 0, end: 1000 });
    const [, b] = exchange({ c: { pid: 1, tid: 1 }, s: { pid: 2, tid: 10, sys: [200, 901] }, start: 50, end: 1100 });
    for (const s of [a, b]) s.resp_tid = 30;
    const callA = exchange({ c: { pid: 2, tid: 21, sys: [555, 556] }, s: { pid: 3, tid: 3 }, start: 300, end: 400, proto: 'postgresql' });
    const callB = exchange({ c: { pid: 2, tid: 22, sys: [557, 558] }, s: { pid: 3, tid: 4 }, start: 310, end: 420, proto: 'postgresql' });
    callA[0].handoff_trace_id = 100;
    callB[0].handoff_trace_id = 200;
    return { a, b, callA, callB };
  };

  it('links a worker call to the request its waker had just read when that is the only open request, with the rule and its confidence', async () => {
    const { a, callA } = pool();
    const one = [a, ...callA];
    // Below the default floor (a wake-up does not say which queued task the worker took: measured wrong under load).
    expect(linkParents(one).has(callA[0].span_id)).toBe(false);
    expect(linkParents(one, { minConfidence: 0.45 }).get(callA[0].span_id)).toEqual({ parent: a.span_id, rule: 'handoff', confidence: RULE_CONFIDENCE.handoff });
    // Found by the search too: from the request down (its id is the call's handoff id) and back up.
    expect([...(await assembled(one, a.span_id, { minConfidence: 0.45 })).keys()].sort()).toEqual([a.span_id, ...callA.map((s) => s.span_id)].sort());
    expect([...(await assembled(one, callA[1].span_id, { minConfidence: 0.45 })).keys()].sort()).toEqual([a.span_id, ...callA.map((s) => s.span_id)].sort());
  });

  it('with other requests open, the accounting is inferred: below the default floor, linked only when the user lowers it', () => {
    // A and B are both answered by writer thread 30: that says nothing of which worker served which.
    const { a, b, callA, callB } = pool();
    const all = [a, b, ...callA, ...callB];
    expect(linkParents(all).has(callA[0].span_id)).toBe(false);
    expect(linkParents(all).has(callB[0].span_id)).toBe(false);
    const low = linkParents(all, { minConfidence: 0.4 });
    expect(low.get(callA[0].span_id)).toEqual({ parent: a.span_id, rule: 'handoff', confidence: HANDOFF_INFERRED_CONFIDENCE });
    expect(low.get(callB[0].span_id)).toMatchObject({ parent: b.span_id, rule: 'handoff' });
  });

  it('without the evidence the calls stay unattached: nothing else names their request', () => {
    const { a, b, callA, callB } = pool();
    callA[0].handoff_trace_id = 0;
    delete callB[0].handoff_trace_id;
    const l = linkParents([a, b, ...callA, ...callB]);
    expect(l.has(callA[0].span_id)).toBe(false);
    expect(l.has(callB[0].span_id)).toBe(false);
  });

  it('a wake-up for work the worker did not take is not believed: the worker answered another open request', () => {
    // Worker 21 was woken after A was read, but the queue gave it B: it answers B itself.
    const { a, b, callA } = pool();
    b.resp_tid = 21;
    const l = linkParents([a, b, ...callA]);
    expect(l.get(callA[0].span_id)).toMatchObject({ parent: b.span_id, rule: 'thread' });
  });

  it('a woken worker may have taken another queued task: an open request nobody is seen working on makes it ambiguous', () => {
    // Reader 10 read A and woke worker 21 (handoff 100); B (read by 11) is open too and no thread is
    // seen working on it: 21 may have taken B from the queue. The reader answers both (futures).
    const { a, callA } = pool();
    const [, b] = exchange({ c: { pid: 1, tid: 1 }, s: { pid: 2, tid: 11, sys: [200, 902] }, start: 60, end: 1100 });
    a.resp_tid = a.tid;
    b.resp_tid = b.tid;
    expect(linkParents([a, b, ...callA]).has(callA[0].span_id)).toBe(false);
    // Someone else is seen working on B (a call of worker 22 handed off from B, sent earlier): A is the
    // only candidate left, but only as sure as 22's own hand-off (which may name the wrong task too):
    // below the default floor, so unattached unless the user lowers it.
    const [b22, bdb] = exchange({ c: { pid: 2, tid: 22, sys: [600, 601] }, s: { pid: 3, tid: 5 }, start: 250, end: 350, proto: 'postgresql' });
    b22.handoff_trace_id = 200;
    expect(linkParents([a, b, ...callA, b22, bdb]).has(callA[0].span_id)).toBe(false);
    expect(linkParents([a, b, ...callA, b22, bdb], { minConfidence: 0.4 }).get(callA[0].span_id)).toEqual({ parent: a.span_id, rule: 'handoff', confidence: HANDOFF_INFERRED_CONFIDENCE });
    // So is a request a worker answered (resp_tid neither its reader nor the call's thread) — as sure.
    b.resp_tid = 22;
    expect(linkParents([a, b, ...callA]).has(callA[0].span_id)).toBe(false);
    expect(linkParents([a, b, ...callA], { minConfidence: 0.4 }).get(callA[0].span_id)).toMatchObject({ parent: a.span_id, rule: 'handoff' });
  });

  it('an id that names no open request of the process links nothing (a request already answered, another process)', () => {
    const { a, b, callA, callB } = pool();
    a.end_time_us = 250; // answered before the call went out
    callB[0].handoff_trace_id = 999; // no server span read with it
    const l = linkParents([a, b, ...callA, ...callB]);
    expect(l.has(callA[0].span_id)).toBe(false);
    expect(l.has(callB[0].span_id)).toBe(false);
    const other = { ...b, span_id: 'ffff000000000001', pid: 9 };
    callB[0].handoff_trace_id = 200;
    expect(linkParents([other, ...callB]).has(callB[0].span_id)).toBe(false);
  });

  it('response-side evidence still comes first: the thread answered right after the call returned', () => {
    const { a, b, callA } = pool();
    b.syscall_trace_id_resp = 556; // worker 21 answered B right after reading callA's reply
    b.resp_tid = 21;
    const l = linkParents([a, b, ...callA]);
    expect(l.get(callA[0].span_id)).toMatchObject({ parent: b.span_id, rule: 'syscall_response' });
  });
});

describe('handback: a reader waits for the worker that ran its task (the wake-back of a completed future)', () => {
  // Readers 10 and 11 read A (id 100) and B (200) and wait; worker 21 runs A's task, then B's without
  // sleeping: each call is sent with the id of the worker's previous reply. Completing a future wakes
  // its reader, stamping it with the worker's id at that moment (its last reply), which the reader's
  // answer carries as handoff_trace_id. Before A's task the worker's previous call P (reply 555)
  // belonged to request C, whose reader was stamped with 555.
  const shape = () => {
    const [curlA, a] = exchange({ c: { pid: 1, tid: 1 }, s: { pid: 2, tid: 10, sys: [100, 100] }, start: 0, end: 2000 });
    const [curlB, b] = exchange({ c: { pid: 1, tid: 1 }, s: { pid: 2, tid: 11, sys: [200, 200] }, start: 50, end: 2100 });
    const [, c] = exchange({ c: { pid: 1, tid: 1 }, s: { pid: 2, tid: 12, sys: [300, 300] }, start: 20, end: 320 });
    const p = exchange({ c: { pid: 2, tid: 21, sys: [550, 555] }, s: { pid: 3, tid: 3 }, start: 200, end: 300, proto: 'postgresql' });
    const q1a = exchange({ c: { pid: 2, tid: 21, sys: [555, 556] }, s: { pid: 3, tid: 3 }, start: 400, end: 500, proto: 'postgresql' });
    const q2a = exchange({ c: { pid: 2, tid: 21, sys: [556, 557] }, s: { pid: 3, tid: 3 }, start: 600, end: 700, proto: 'postgresql' });
    const q1b = exchange({ c: { pid: 2, tid: 21, sys: [557, 558] }, s: { pid: 3, tid: 3 }, start: 800, end: 900, proto: 'postgresql' });
    const q2b = exchange({ c: { pid: 2, tid: 21, sys: [558, 559] }, s: { pid: 3, tid: 3 }, start: 1000, end: 1100, proto: 'postgresql' });
    c.handoff_trace_id = 555;
    a.handoff_trace_id = 557;
    b.handoff_trace_id = 559;
    // The worker was asleep before A's task and woken by A's reader: its calls carry A's id forward.
    for (const q of [q1a, q2a]) q[0].handoff_trace_id = 100;
    return { curlA, curlB, a, b, c, p, q1a, q2a, q1b, q2b };
  };

  it('names the task: the last call by the answer\'s wake-back id, the earlier ones along the worker\'s chain, with the confidence the forward evidence gives', () => {
    const { a, b, c, p, q1a, q2a, q1b, q2b } = shape();
    const l = linkParents([a, b, c, ...p, ...q1a, ...q2a, ...q1b, ...q2b]);
    expect(l.get(q2a[0].span_id)).toEqual({ parent: a.span_id, rule: 'handback', confidence: HANDBACK_CONFIDENCE.agree });
    expect(l.get(q1a[0].span_id)).toEqual({ parent: a.span_id, rule: 'handback', confidence: HANDBACK_CONFIDENCE.agree - HANDBACK_CHAIN_PENALTY });
    expect(l.get(q2b[0].span_id)).toEqual({ parent: b.span_id, rule: 'handback', confidence: HANDBACK_CONFIDENCE.alone });
    // The chain stops at A's last call: A's reader was woken with its reply id.
    expect(l.get(q1b[0].span_id)).toEqual({ parent: b.span_id, rule: 'handback', confidence: HANDBACK_CONFIDENCE.alone - HANDBACK_CHAIN_PENALTY });
    expect(l.get(p[0].span_id)).toMatchObject({ parent: c.span_id, rule: 'handback' });
    expect(RULE_CONFIDENCE.handback).toBe(HANDBACK_CONFIDENCE.alone);
  });

  it('stops at the previous task without its reader: a forward hand-off id that changes means the worker slept in between', () => {
    const { a, p, q1a, q2a } = shape();
    p[0].handoff_trace_id = 300; // C's reader had woken the worker for C's task; C itself is not fetched
    const l = linkParents([a, ...p, ...q1a, ...q2a]);
    expect(l.get(q1a[0].span_id)).toMatchObject({ parent: a.span_id, rule: 'handback' });
    expect(l.has(p[0].span_id)).toBe(false);
  });

  it('the forward hand-off naming another open request lowers the confidence; the wake-back still decides', () => {
    const { a, b, q1a, q2a, q1b, q2b } = shape();
    for (const q of [q1b, q2b]) q[0].handoff_trace_id = 100; // woken by A's reader, took B's task
    const l = linkParents([a, b, ...q1a, ...q2a, ...q1b, ...q2b]);
    expect(l.get(q2b[0].span_id)).toEqual({ parent: b.span_id, rule: 'handback', confidence: HANDBACK_CONFIDENCE.disagree });
    expect(l.get(q1b[0].span_id)).toMatchObject({ parent: b.span_id, rule: 'handback' });
  });

  it('ambiguous evidence links nothing: two answers stamped with one id, a stamp naming no call inside the request', () => {
    const { a, b, q1a, q2a } = shape();
    b.handoff_trace_id = 557;
    let l = linkParents([a, b, ...q1a, ...q2a]);
    expect(l.has(q2a[0].span_id)).toBe(false);
    expect(l.has(q1a[0].span_id)).toBe(false);
    b.handoff_trace_id = 559;
    a.end_time_us = 650; // answered before the named call returned: not its task
    l = linkParents([a, ...q1a, ...q2a]);
    expect(l.has(q2a[0].span_id)).toBe(false);
    // A server span whose answer carries its own request id (an older agent carried the forward
    // hand-off on a worker's answer) names nothing.
    const { a: a2, q1a: r1, q2a: r2 } = shape();
    a2.handoff_trace_id = 100;
    expect(linkParents([a2, ...r1, ...r2]).get(r2[0].span_id)?.rule).not.toBe('handback');
  });

  it('the chain stops before a call another open request may own: that request has no wake-back (its task finished before its reader parked)', () => {
    const { a, b, q1a, q2a, q1b, q2b } = shape();
    a.handoff_trace_id = 0; // A's reader was never woken back
    for (const q of [q1a, q2a]) q[0].handoff_trace_id = 0; // the worker was busy: no forward hand-offs either
    const l = linkParents([a, b, ...q1a, ...q2a, ...q1b, ...q2b]);
    // B's named call is exact; its earlier call lies inside A too, which nobody's wake-back names:
    // it could be the end of A's task, so it stays unattached (never guessed), and the chain goes no
    // further into A's calls.
    expect(l.get(q2b[0].span_id)).toMatchObject({ parent: b.span_id, rule: 'handback' });
    expect(l.has(q1b[0].span_id)).toBe(false);
    expect(l.has(q2a[0].span_id)).toBe(false);
    expect(l.has(q1a[0].span_id)).toBe(false);
    // With A's wake-back back, every call is named again.
    a.handoff_trace_id = 557;
    const l2 = linkParents([a, b, ...q1a, ...q2a, ...q1b, ...q2b]);
    expect(l2.get(q1b[0].span_id)).toMatchObject({ parent: b.span_id, rule: 'handback' });
    expect(l2.get(q1a[0].span_id)).toMatchObject({ parent: a.span_id, rule: 'handback' });
  });

  it('assembleTrace finds the task from the request and the request from the task, and leaves the other request out', async () => {
    const { curlA, a, b, c, p, q1a, q2a, q1b, q2b } = shape();
    const all = [curlA, a, b, c, ...p, ...q1a, ...q2a, ...q1b, ...q2b];
    const want = [curlA, a, ...q1a, ...q2a].map((x) => x.span_id).sort();
    expect([...(await assembled(all, curlA.span_id)).keys()].sort()).toEqual(want);
    expect([...(await assembled(all, q1a[1].span_id)).keys()].sort()).toEqual(want);
  });
});

// Go (issue 15): the kernel gives each syscall its goroutine id; goroutines move between threads.
describe('goroutine rule', () => {
  /** A Go handler on goroutine `g` serving /go/<id>, whose Redis call runs on goroutine g but on other threads. */
  function goRequest(id: number, g: number, t0: number, threads: [number, number]): { srv: AsmSpan; redis: AsmSpan; down: AsmSpan } {
    const srv = span({ side: 'server', pid: 7, tid: threads[0], resp_tid: threads[1], coroutine_id: g, resp_coroutine_id: g, start_time_us: t0, end_time_us: t0 + 1000, request_resource: `/go/${id}`, syscall_trace_id_req: id * 10, syscall_trace_id_resp: id * 10 + 1 });
    const redis = span({ side: 'client', pid: 7, tid: threads[1], resp_tid: threads[0], coroutine_id: g, resp_coroutine_id: g, start_time_us: t0 + 100, end_time_us: t0 + 200, l7_protocol: 'redis', request_resource: `GET req:${id}`, syscall_trace_id_req: 0, syscall_trace_id_resp: 0 });
    // The transport's writeLoop (goroutine 900+) writes the call; its readLoop (800+) reads the answer.
    const down = span({ side: 'client', pid: 7, tid: threads[0], resp_tid: threads[1], coroutine_id: 900 + id, resp_coroutine_id: 800 + id, start_time_us: t0 + 300, end_time_us: t0 + 800, request_resource: `/down/${id}` });
    return { srv, redis, down };
  }

  it('a call of the server span\'s goroutine is its child, whatever threads either ran on', () => {
    // Two requests interleaved on the same two threads: thread ids would say nothing (or lie).
    const a = goRequest(17, 40, 0, [101, 102]);
    const b = goRequest(18, 41, 50, [102, 101]);
    const l = linkParents([a.srv, a.redis, b.srv, b.redis]);
    expect(l.get(a.redis.span_id)).toEqual({ parent: a.srv.span_id, rule: 'goroutine', confidence: RULE_CONFIDENCE.goroutine });
    expect(l.get(b.redis.span_id)).toMatchObject({ parent: b.srv.span_id, rule: 'goroutine' });
  });

  it('a call written by another goroutine (Go\'s HTTP transport) goes by content only, else stays unattached', () => {
    const a = goRequest(17, 40, 0, [101, 102]);
    const b = goRequest(18, 41, 50, [101, 102]);
    const l = linkParents([a.srv, a.down, b.srv, b.down]);
    expect(l.get(a.down.span_id)).toMatchObject({ parent: a.srv.span_id, rule: 'content' });
    expect(l.get(b.down.span_id)).toMatchObject({ parent: b.srv.span_id, rule: 'content' });
    // No id in the call: two open requests, one thread each would have guessed — the rule does not.
    const bare = span({ ...a.down, span_id: 'bare', request_resource: '/down' });
    expect(linkParents([a.srv, b.srv, bare]).get('bare')).toBeUndefined();
    // Even with one open request, a call of another goroutine without shared content is not attached
    // by the thread it ran on (the thread rule would have).
    expect(linkParents([a.srv, bare]).get('bare')).toBeUndefined();
  });

  it('assembleTrace finds the transport\'s call of a Go server span on any thread, and leaves other requests\' calls out', async () => {
    const a = goRequest(17, 40, 0, [101, 102]);
    const b = goRequest(18, 41, 50, [103, 104]);
    const [root, srvA] = exchange({ c: { pid: 1, tid: 1 }, s: { pid: 7, tid: 101 }, start: -10, end: 1010 });
    Object.assign(srvA, a.srv, { span_id: srvA.span_id, req_tcp_seq: srvA.req_tcp_seq, resp_tcp_seq: srvA.resp_tcp_seq, client_port: srvA.client_port, server_port: srvA.server_port, start_time_us: 0, end_time_us: 1000 });
    const t = await assembleTrace(new ArraySpanSource([root, srvA, a.redis, a.down, b.srv, b.redis, b.down]), root.span_id);
    const got = Object.fromEntries((t?.spans ?? []).map((s) => [s.span.span_id, s.rule]));
    expect(got).toEqual({ [root.span_id]: null, [srvA.span_id]: 'tcp_seq', [a.redis.span_id]: 'goroutine', [a.down.span_id]: 'content' });
  });

  it('spans without goroutine ids keep the thread rules', () => {
    const s = span({ side: 'server', pid: 9, tid: 5, resp_tid: 5, start_time_us: 0, end_time_us: 100 });
    const c = span({ side: 'client', pid: 9, tid: 5, resp_tid: 5, start_time_us: 10, end_time_us: 20 });
    expect(linkParents([s, c]).get(c.span_id)).toMatchObject({ parent: s.span_id, rule: 'thread' });
  });
});

describe('timing: an event loop whose calls carry nothing of the request (order and delay learned from the data)', () => {
  // A Node.js-like loop (pid 50, one thread) reads request k at 1 ms intervals, each open 20 ms, and
  // right after reading it queues /stock then /price on one destination (FIFO). The call answered
  // last links by `syscall_response`: /stock for most requests, /price for the `loose` ones — whose
  // /stock (and every other request's /price) is then left without evidence but for time and order.
  const loop = (count: number, o: { loose?: (k: number) => boolean; drop?: number; swap?: number } = {}): { spans: AsmSpan[]; truth: Map<string, string> } => {
    const spans: AsmSpan[] = [];
    const truth = new Map<string, string>();
    for (let k = 0; k < count; k++) {
      const t = 1_000_000 + k * 1000;
      const loose = o.loose?.(k) ?? false;
      const srv = span({ span_id: `srv-${k}`.padStart(16, '0'), side: 'server', pid: 50, tid: 50, resp_tid: 50, server_port: 8080, request_resource: `/par/${1000 + k}`, start_time_us: t, end_time_us: t + 20_000, syscall_trace_id_req: 90_000 + k * 10 });
      // A swapped pair: request `swap`'s /stock leaves after request swap+1's (not FIFO).
      const stockAt = o.swap === k ? t + 1500 : t + 100;
      const stock = span({ span_id: `stock-${k}`.padStart(16, '0'), pid: 50, tid: 50, resp_tid: 50, server_port: 9000, request_resource: '/stock', start_time_us: stockAt, end_time_us: t + (loose ? 5000 : 9000), syscall_trace_id_req: 70_000 + k * 10, syscall_trace_id_resp: 70_001 + k * 10 });
      const price = span({ span_id: `price-${k}`.padStart(16, '0'), pid: 50, tid: 50, resp_tid: 50, server_port: 9000, request_resource: '/price', start_time_us: t + 200, end_time_us: t + (loose ? 9000 : 5000), syscall_trace_id_req: 70_002 + k * 10, syscall_trace_id_resp: 70_003 + k * 10 });
      srv.syscall_trace_id_resp = loose ? price.syscall_trace_id_resp : stock.syscall_trace_id_resp;
      spans.push(srv, price);
      truth.set(price.span_id, srv.span_id);
      if (o.drop !== k) {
        spans.push(stock);
        truth.set(stock.span_id, srv.span_id);
      }
    }
    return { spans, truth };
  };
  const loose = (k: number): boolean => k % 5 === 2;
  /** The links timing decides: on a complete sample of the thread (all spans) over the base rules. */
  const decide = (spans: AsmSpan[]): Map<string, Link> => timingLinks({ spans, from: 0, to: 1e12 }, linkParents(spans, { timing: false }), RULE_CONFIDENCE.timing);

  it('decisive: the unattached calls between two linked ones go, in order, to the requests read between theirs that lack such a call', async () => {
    const { spans, truth } = loop(30, { loose });
    const base = linkParents(spans, { timing: false });
    const open = spans.filter((s) => s.side === 'client' && !base.has(s.span_id));
    // 6 loose /stock and 24 /price, less request 0's /price: it leaves before request 1 is read (`thread`).
    expect(open.length, 'calls the other rules leave unattached').toBe(6 + 24 - 1);
    const t = decide(spans);
    // Every unattached call between the first and last anchor of its shape is decided, and rightly.
    expect(t.size).toBeGreaterThanOrEqual(open.length - 4);
    for (const [id, l] of t) {
      expect(l.parent, id).toBe(truth.get(id));
      expect(l.rule).toBe('timing');
      expect(l.confidence).toBe(RULE_CONFIDENCE.timing);
    }
    // Through assembly: the array source samples the loop thread; request 8's /price (answered
    // first, nothing but time and order names its request) joins its trace, request 7's /stock too.
    for (const [k, rule, by] of [[8, 'syscall_response', 'timing'], [7, 'timing', 'syscall_response']] as const) {
      const trace = await assembleTrace(new ArraySpanSource(spans), `srv-${k}`.padStart(16, '0'));
      const got = new Map((trace?.spans ?? []).map((s) => [s.span.span_id, s]));
      expect(got.get(`stock-${k}`.padStart(16, '0'))?.rule, `stock-${k}`).toBe(rule);
      expect(got.get(`price-${k}`.padStart(16, '0'))?.rule, `price-${k}`).toBe(by);
      expect(got.get(`price-${k}`.padStart(16, '0'))?.parent_id).toBe(`srv-${k}`.padStart(16, '0'));
      expect([...got.keys()].filter((id) => !id.endsWith(`-${k}`)), 'nothing of another request').toEqual([]);
    }
    // The rules before it (timing off) leave it out of the trace.
    const before = await assembleTrace(new ArraySpanSource(spans), 'srv-8'.padStart(16, '0'), { timing: false });
    expect(before?.spans.map((s) => s.span.span_id)).toContain('stock-8'.padStart(16, '0'));
    expect(before?.spans.map((s) => s.span.span_id)).not.toContain('price-8'.padStart(16, '0'));
  });

  it('ambiguous: a request that made no such call breaks the count between its anchors, and that segment stays unattached', () => {
    const { spans, truth } = loop(30, { loose, drop: 12 });
    const t = decide(spans);
    // Request 12 is loose (its /stock unanchored) and made no /stock: between the /stock anchors of
    // requests 11 and 13 one request lacks a call and no call is open — nothing to match; but the
    // /price calls are unaffected. No decision is wrong.
    for (const [id, l] of t) expect(l.parent, id).toBe(truth.get(id));
    const { spans: s2, truth: t2 } = loop(30, { loose, drop: 11 });
    // Request 11 (anchored /stock) made none: between the /stock anchors of 10 and 13 are two requests
    // without one (11, 12) and one open call (12's): counts differ, 12's /stock stays unattached; the
    // segment 6 → 8 is untouched and still decides 7's.
    const d2 = decide(s2);
    for (const [id, l] of d2) expect(l.parent, id).toBe(t2.get(id));
    expect(d2.has('stock-12'.padStart(16, '0'))).toBe(false);
    expect(d2.get('stock-7'.padStart(16, '0'))?.parent).toBe('srv-7'.padStart(16, '0'));
  });

  it('ambiguous: calls that leave out of read order (not a FIFO loop) teach nothing, and nothing is linked by timing', () => {
    const { spans } = loop(30, { loose, swap: 10 });
    const models: ShapeModel[] = [];
    const t = timingLinks({ spans, from: 0, to: 1e12 }, linkParents(spans, { timing: false }), RULE_CONFIDENCE.timing, models);
    expect(models.every((m) => !m.fifo)).toBe(true);
    expect(t.size).toBe(0);
  });

  it('not enough samples: fewer than TIMING_MIN_SAMPLES exact links to the destination, nothing is learned', () => {
    const { spans } = loop(15, { loose });
    expect(decide(spans).size).toBe(0);
    const l = linkParents(spans);
    expect(spans.filter((s) => s.side === 'client' && !l.has(s.span_id)).length, 'still unattached').toBeGreaterThan(0);
    expect(TIMING_MIN_SAMPLES).toBe(20);
  });

  it('without a sample of the thread (a source that cannot sample, or linkParents on a trace\'s spans) timing links nothing', async () => {
    const { spans } = loop(30, { loose });
    expect([...linkParents(spans).values()].some((l) => l.rule === 'timing')).toBe(false);
    const array = new ArraySpanSource(spans);
    const src: SpanSource<AsmSpan> = { bySpanId: (id) => array.bySpanId(id), find: (k, w, l) => array.find(k, w, l) };
    const trace = await assembleTrace(src, 'srv-8'.padStart(16, '0'));
    expect(trace?.spans.map((s) => s.span.span_id)).toContain('stock-8'.padStart(16, '0'));
    expect(trace?.spans.map((s) => s.span.span_id)).not.toContain('price-8'.padStart(16, '0'));
  });

  it('resourceShape masks ids and drops the query', () => {
    expect(resourceShape('/orders/1017/items?x=12')).toBe('/orders/{id}/items');
    expect(resourceShape('/stock')).toBe('/stock');
    expect(resourceShape('GET user:a3f9c2d1e')).toBe('GET user:{id}');
  });
});

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Hono } from 'hono';
import { createQueryApp } from '../../functions/query/app.ts';
import { createQueryLambdaHandler } from '../../functions/query/lambda-adapter.ts';
import { openClickHouse } from '../../functions/storage/clickhouse.ts';
import type { ClickHouse } from '../../functions/storage/clickhouse.ts';
import { migrate } from '../../functions/storage/migrations.ts';
import { insertSpans, insertTagNames } from '../../functions/storage/span-store.ts';
import type { SpanRow } from '../../functions/span-builder/span-row.ts';
import { expectedParents, requestSpans, serviceTagRows } from './fixtures.ts';

let dir: string;
let ch: ClickHouse;
let app: Hono;
const requests: SpanRow[][] = [];
const T0 = Math.floor(Date.now() / 1000 - 600) * 1e6; // ten minutes ago, whole seconds

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'riptide-query-'));
  ch = await openClickHouse({ dataDir: dir });
  await migrate(ch);
  await insertTagNames(ch, serviceTagRows());
  // Three requests a few ms apart (keep-alive to A on shared connections), the last one failing.
  for (let k = 0; k < 3; k++) requests.push(requestSpans(k + 1, T0 + k * 3_000, { fail: k === 2 }));
  await insertSpans(ch, requests.flat());
  app = createQueryApp({ clickhouse: ch, token: 's3cret' });
});
afterAll(async () => {
  await ch.close();
  rmSync(dir, { recursive: true, force: true });
});

const auth = { authorization: 'Bearer s3cret' };
async function get(path: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await app.request(path, { headers: auth });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}
async function sql(q: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await app.request('/api/v1/sql', { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify({ sql: q }) });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}
const range = `start=${T0 / 1e6 - 1}&end=${T0 / 1e6 + 60}`;

const CONTRACT_FIELDS = [
  'span_id', 'parent_id', 'trace_id', 'start_time_us', 'end_time_us', 'duration_us', 'side', 'signal_source', 'l7_protocol',
  'request_type', 'request_domain', 'request_resource', 'endpoint', 'response_code', 'response_status', 'process_name', 'pid',
  'client_ip', 'client_port', 'server_ip', 'server_port', 'req_tcp_seq', 'resp_tcp_seq', 'x_request_id', 'service',
];

describe('query API over chDB', () => {
  it('GET /api/v1/traces/{span_id}: the whole request from any span, parents right, names resolved', async () => {
    for (const r of requests) {
      const want = expectedParents(r);
      for (const seed of [r[0], r[5], r[11]]) {
        const { status, body } = await get(`/api/v1/traces/${seed.span_id}`);
        expect(status).toBe(200);
        const spans = body.spans as Array<Record<string, unknown>>;
        expect(Object.fromEntries(spans.map((s) => [s.span_id, s.parent_id]))).toEqual(want);
        for (const f of CONTRACT_FIELDS) expect(spans[0], f).toHaveProperty(f);
        const traceIds = new Set(spans.map((s) => s.trace_id));
        expect(traceIds.size).toBe(1);
        expect(spans.find((s) => s.span_id === r[3].span_id)?.service).toBe('service-a');
      }
    }
    expect((await get('/api/v1/traces/00000000deadbeef')).status).toBe(404);
    expect((await get('/api/v1/traces/bad%20id')).status).toBe(400);
  });

  it('GET /api/v1/spans filters by time, protocol, process, resource substring, trace id and limit', async () => {
    const all = await get(`/api/v1/spans?${range}&limit=1000`);
    expect(all.status).toBe(200);
    expect((all.body.spans as unknown[]).length).toBe(36);
    const redis = (await get(`/api/v1/spans?${range}&protocol=redis`)).body.spans as Array<Record<string, unknown>>;
    expect(redis).toHaveLength(6);
    expect(redis.every((s) => s.l7_protocol === 'redis' && s.parent_id === null)).toBe(true);
    const byProc = (await get(`/api/v1/spans?${range}&process=mariadbd`)).body.spans as Array<Record<string, unknown>>;
    expect(byProc.map((s) => s.service)).toEqual(['mariadb', 'mariadb', 'mariadb']);
    const byRes = (await get(`/api/v1/spans?${range}&resource=FROM%20carts`)).body.spans as unknown[];
    expect(byRes).toHaveLength(6);
    const limited = (await get(`/api/v1/spans?${range}&limit=2`)).body.spans as Array<Record<string, number>>;
    expect(limited).toHaveLength(2);
    expect(limited[0].start_time_us).toBeGreaterThanOrEqual(limited[1].start_time_us);
    expect(((await get(`/api/v1/spans?${range}&trace_id=nope`)).body.spans as unknown[]).length).toBe(0);
    expect(((await get(`/api/v1/spans?start=${T0 / 1e6 + 100}&end=${T0 / 1e6 + 200}`)).body.spans as unknown[]).length).toBe(0);
    for (const bad of ['start=yesterday', 'limit=0', 'limit=abc', `start=${T0 / 1e6 + 10}&end=${T0 / 1e6}`, 'side=middle']) {
      const r = await get(`/api/v1/spans?${bad}`);
      expect(r.status, bad).toBe(400);
      expect(typeof r.body.error).toBe('string');
    }
  });

  it('GET /api/v1/service-map: nodes, edges and RED per edge', async () => {
    const { status, body } = await get(`/api/v1/service-map?${range}`);
    expect(status).toBe(200);
    const nodes = (body.nodes as Array<{ id: string; name: string }>).map((n) => n.id);
    expect(nodes.sort()).toEqual(['curl', 'mariadb', 'nginx', 'postgres', 'redis', 'service-a', 'service-b']);
    const edges = body.edges as Array<Record<string, number | string>>;
    const edge = (s: string, t: string): Record<string, number | string> | undefined => edges.find((e) => e.source === s && e.target === t);
    expect(edges).toHaveLength(6);
    const ab = edge('service-a', 'service-b');
    expect(ab).toMatchObject({ protocol: 'http1', requests: 3, errors: 1 });
    expect(ab?.p50_us).toBe(6300);
    expect(Number(ab?.p99_us)).toBeGreaterThanOrEqual(6300);
    expect(edge('service-a', 'redis')).toMatchObject({ protocol: 'redis', requests: 3, errors: 0 });
    expect(edge('curl', 'nginx')).toMatchObject({ requests: 3 });
    expect(typeof ab?.slowest_span_id).toBe('string');
    expect((await get('/api/v1/service-map?start=10&end=5')).status).toBe(400);
  });

  it('POST /api/v1/sql answers reads and refuses the rest with a reason', async () => {
    const ok = await sql("SELECT l7_protocol, count() AS n FROM riptide.spans WHERE side = 'client' GROUP BY l7_protocol ORDER BY l7_protocol");
    expect(ok.status).toBe(200);
    expect(ok.body.rows).toEqual([
      { l7_protocol: 'http1', n: 9 },
      { l7_protocol: 'mysql', n: 3 },
      { l7_protocol: 'postgresql', n: 3 },
      { l7_protocol: 'redis', n: 3 },
    ]);
    expect((await sql('SHOW TABLES FROM riptide')).status).toBe(200);
    expect((await sql("SELECT ';' AS semi -- a comment; DROP TABLE x")).status).toBe(200);
    const refused: Array<[string, RegExp]> = [
      ['INSERT INTO riptide.spans (span_id) VALUES (1)', /read/],
      ['DROP TABLE riptide.spans', /read/],
      ['ALTER TABLE riptide.spans DELETE WHERE 1', /read/],
      ['SELECT 1; DROP TABLE riptide.spans', /multiple statements/],
      ["SELECT * FROM url('http://127.0.0.1:9/', 'CSV', 'x String')", /url\(\)/],
      ["SELECT * FROM file('/etc/passwd', 'LineAsString')", /file\(\)/],
      ["SELECT * FROM s3('http://x/y', 'CSV')", /s3\(\)/],
      ["SELECT * FROM remote('10.0.0.1', system.one)", /remote\(\)/],
      ['SELECT 1 SETTINGS readonly = 0', /SETTINGS/],
      ['SELECT 1 INTO OUTFILE \'/tmp/x\'', /OUTFILE/],
      ['SELEC 1', /Syntax error/],
      ['SELECT nope FROM riptide.spans', /nope|Unknown|Missing/i],
      ['', /body/],
    ];
    for (const [q, why] of refused) {
      const r = await sql(q);
      expect(r.status, q).toBe(400);
      expect(String(r.body.error), q).toMatch(why);
    }
    const count = await sql('SELECT count() AS n FROM riptide.spans');
    expect(count.body.rows).toEqual([{ n: 36 }]);
  });

  it('wants the bearer token on the API, not on /healthz, /metrics and the UI shell', async () => {
    expect((await app.request('/api/v1/spans')).status).toBe(401);
    expect((await app.request('/api/v1/spans', { headers: { authorization: 'Bearer wrong' } })).status).toBe(401);
    expect((await app.request('/api/services')).status).toBe(401);
    expect((await app.request('/v1/traces', { method: 'POST' })).status).toBe(401);
    expect((await app.request('/healthz')).status).toBe(200);
    const ui = await app.request('/');
    expect(ui.status).toBe(200);
    expect(await ui.text()).toContain('Riptide');
    const metrics = await (await app.request('/metrics')).text();
    expect(metrics).toMatch(/riptide_query_requests_total\{[^}]*route="\/api\/v1\/spans"[^}]*\} \d+/);
    expect(metrics).toMatch(/riptide_query_assembly_total \d+/);
  });

  it('Jaeger API: services, operations, trace search and trace by id in the documented shapes', async () => {
    const services = await get('/api/services');
    expect(services.status).toBe(200);
    expect(services.body).toMatchObject({ total: expect.any(Number), limit: 0, offset: 0, errors: null });
    expect(services.body.data).toEqual(expect.arrayContaining(['nginx', 'service-a', 'service-b', 'curl']));
    const ops = await get('/api/services/service-a/operations');
    expect(ops.body.data).toEqual(expect.arrayContaining(['GET /checkout', 'GET cart:42', 'POST /price']));
    const ops2 = await get('/api/operations?service=service-a&spanKind=server');
    expect(ops2.body.data).toEqual([{ name: 'GET /checkout', spanKind: 'server' }]);

    const found = await get(`/api/traces?service=service-b&start=${T0 - 1e6}&end=${T0 + 60e6}&limit=10`);
    expect(found.status).toBe(200);
    const traces = found.body.data as Array<{ traceID: string; spans: Array<Record<string, unknown>>; processes: Record<string, { serviceName: string }> }>;
    expect(traces).toHaveLength(3);
    for (const t of traces) {
      expect(t.traceID).toMatch(/^[0-9a-f]{32}$/);
      expect(t.spans).toHaveLength(12);
      for (const s of t.spans) {
        expect(Object.keys(s).sort()).toEqual(['duration', 'flags', 'logs', 'operationName', 'processID', 'references', 'spanID', 'startTime', 'tags', 'traceID', 'warnings']);
        expect(t.processes[s.processID as string]).toBeDefined();
        expect(typeof s.startTime).toBe('number');
      }
      const roots = t.spans.filter((s) => (s.references as unknown[]).length === 0);
      expect(roots).toHaveLength(1);
      const child = t.spans.find((s) => (s.references as unknown[]).length > 0) as { references: Array<Record<string, string>> };
      expect(child.references[0]).toMatchObject({ refType: 'CHILD_OF', traceID: t.traceID });
      expect(Object.values(t.processes).map((p) => p.serviceName)).toEqual(expect.arrayContaining(['service-a', 'mariadb']));
    }
    const errOnly = await get(`/api/traces?service=service-b&start=${T0 - 1e6}&end=${T0 + 60e6}&tags=${encodeURIComponent('{"error":"true"}')}`);
    expect((errOnly.body.data as unknown[]).length).toBe(1);
    const slow = await get(`/api/traces?service=service-b&start=${T0 - 1e6}&end=${T0 + 60e6}&minDuration=1h`);
    expect((slow.body.data as unknown[]).length).toBe(0);

    const one = await get(`/api/traces/${traces[0].traceID}`);
    expect(one.status).toBe(200);
    expect((one.body.data as Array<{ traceID: string }>)[0].traceID).toBe(traces[0].traceID);
    const missing = await get(`/api/traces/${'0'.repeat(16)}ffffffffffffffff`);
    expect(missing.status).toBe(404);
    expect(missing.body).toMatchObject({ data: null, errors: [{ code: 404, msg: 'trace not found' }] });
    const deps = await get(`/api/dependencies?endTs=${T0 / 1000 + 60_000}&lookback=120000`);
    expect(deps.body.data).toEqual(expect.arrayContaining([{ parent: 'service-a', child: 'service-b', callCount: 3 }, { parent: 'nginx', child: 'service-a', callCount: 3 }]));
    expect((await get('/api/dependencies?lookback=soon')).status).toBe(400);
    expect((await get('/api/traces')).status).toBe(400);
    expect((await get('/api/traces?service=x&minDuration=fast')).status).toBe(400);
  });

  it('runs on Lambda behind API Gateway (v2 event)', async () => {
    const handler = createQueryLambdaHandler({ app });
    const event = {
      version: '2.0',
      routeKey: '$default',
      rawPath: '/api/v1/spans',
      rawQueryString: `${range}&protocol=mysql`,
      headers: { host: 'x.execute-api.amazonaws.com', authorization: 'Bearer s3cret' },
      requestContext: { http: { method: 'GET', path: '/api/v1/spans', protocol: 'HTTP/1.1', sourceIp: '1.2.3.4', userAgent: 'test' }, domainName: 'x.execute-api.amazonaws.com', stage: '$default', requestId: 'r', routeKey: '$default', accountId: '1', apiId: 'x', domainPrefix: 'x', time: '', timeEpoch: 0 },
      isBase64Encoded: false,
    };
    const res = (await handler(event as never, {} as never)) as { statusCode: number; body: string };
    expect(res.statusCode).toBe(200);
    expect((JSON.parse(res.body) as { spans: unknown[] }).spans).toHaveLength(6);
  });
});

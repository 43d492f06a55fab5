// Issue #12: request bodies are capped while they stream in, and input at fault gets a 4xx with a
// reason — never a 5xx — on the query API, the Jaeger API and OTLP ingest.
import { mkdtempSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { serve } from '@hono/node-server';
import type { ServerType } from '@hono/node-server';
import type { Hono } from 'hono';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MetricsRegistry } from '../../agent/metrics.ts';
import { createQueryApp } from '../../functions/query/app.ts';
import { createQueryLambdaHandler } from '../../functions/query/lambda-adapter.ts';
import { openClickHouse, queryRows } from '../../functions/storage/clickhouse.ts';
import type { ClickHouse } from '../../functions/storage/clickhouse.ts';
import { migrate } from '../../functions/storage/migrations.ts';
import { insertSpans, insertTagNames } from '../../functions/storage/span-store.ts';
import { fuzzNo5xx, fuzzUrls, postChunked } from '../helpers/http-limits.ts';
import { requestSpans, serviceTagRows } from './fixtures.ts';

let dir: string;
let ch: ClickHouse;
let app: Hono;
let metrics: MetricsRegistry;
let server: ServerType;
let base: string;
const TOKEN = 'limits-token';
const auth = { authorization: `Bearer ${TOKEN}` };
const MiB = 1 << 20;
const T0 = Math.floor(Date.now() / 1000 - 600) * 1e6;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'riptide-limits-'));
  ch = await openClickHouse({ dataDir: dir });
  await migrate(ch);
  await insertTagNames(ch, serviceTagRows());
  await insertSpans(ch, requestSpans(1, T0));
  metrics = new MetricsRegistry();
  app = createQueryApp({ clickhouse: ch, token: TOKEN, metrics });
  server = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' });
  await new Promise<void>((r) => server.once('listening', () => r()));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  await new Promise<void>((r) => server.close(() => r()));
  await ch.close();
  rmSync(dir, { recursive: true, force: true });
});

const get = async (path: string): Promise<{ status: number; body: Record<string, unknown> }> => {
  const res = await app.request(path, { headers: auth });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
};
const metric = (name: string, labels: string): number => {
  const line = metrics.render().split('\n').find((l) => l.startsWith(`${name}{${labels}}`));
  return line ? Number(line.split(' ').pop()) : 0;
};

describe('request bodies are capped while they stream', () => {
  // A body 16x the OTLP cap (256x the JSON cap), chunked, no Content-Length.
  const TOTAL = 256 * MiB;

  it('POST /v1/traces: 413 before the body is sent, memory stays flat', async () => {
    const r = await postChunked(`${base}/v1/traces`, { totalBytes: TOTAL, headers: { ...auth, 'content-type': 'application/json' } });
    expect(r.status, r.body).toBe(413);
    expect(JSON.parse(r.body)).toEqual({ error: 'request body larger than 16 MiB (the otlp limit)' });
    expect(r.sentBytes).toBeLessThan(64 * MiB);
    expect(r.peakRssGrowth).toBeLessThan(128 * MiB);
    expect(metric('riptide_otlp_errors_total', 'reason="too_large"')).toBeGreaterThanOrEqual(1);
    expect(metric('riptide_http_bodies_refused_total', 'limit="otlp"')).toBeGreaterThanOrEqual(1);
  });

  it('POST /api/v1/sql: 413 at 1 MiB before the body is sent', async () => {
    const r = await postChunked(`${base}/api/v1/sql`, { totalBytes: TOTAL, prefix: '{"sql": "SELECT 1 ', headers: { ...auth, 'content-type': 'application/json' } });
    expect(r.status, r.body).toBe(413);
    expect(JSON.parse(r.body)).toEqual({ error: 'request body larger than 1 MiB (the json limit)' });
    expect(r.sentBytes).toBeLessThan(32 * MiB);
    expect(r.peakRssGrowth).toBeLessThan(96 * MiB);
    expect(metric('riptide_http_bodies_refused_total', 'limit="json"')).toBeGreaterThanOrEqual(1);
  });

  it('refuses a declared Content-Length over the cap without reading, and takes bodies within it', async () => {
    const small = createQueryApp({ clickhouse: ch, limits: { jsonBytes: 64, otlpBytes: 128 } });
    const sql = (body: string, headers: Record<string, string> = {}): Promise<Response> =>
      Promise.resolve(small.request('/api/v1/sql', { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body }));
    const ok = await sql(JSON.stringify({ sql: 'SELECT 1 AS one' }));
    expect(ok.status, await ok.clone().text()).toBe(200);
    expect(await ok.json()).toEqual({ rows: [{ one: 1 }], truncated: false });
    const big = await sql(JSON.stringify({ sql: `SELECT '${'x'.repeat(100)}'` }));
    expect(big.status).toBe(413);
    expect(((await big.json()) as { error: string }).error).toBe('request body larger than 64 bytes (the json limit)');
    // A Content-Length that says too much is refused before the (here empty) body is looked at.
    const declared = await sql('{}', { 'content-length': '1000000' });
    expect(declared.status).toBe(413);
    const otlp = await small.request('/v1/traces', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ resourceSpans: [], pad: 'x'.repeat(200) }) });
    expect(otlp.status).toBe(413);
    // Gzip does not get around the cap: what it inflates to is capped the same.
    const bomb = gzipSync(Buffer.from(JSON.stringify({ resourceSpans: [], pad: ' '.repeat(4096) })));
    expect(bomb.length).toBeLessThan(128);
    const inflated = await small.request('/v1/traces', { method: 'POST', headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' }, body: bomb });
    expect(inflated.status).toBe(413);
    expect(((await inflated.json()) as { error: string }).error).toMatch(/inflates past 128 bytes/);
  });

  it('the same caps on Lambda (API Gateway v2 event with a 2 MiB body)', async () => {
    const handler = createQueryLambdaHandler({ app });
    const event = {
      version: '2.0',
      routeKey: '$default',
      rawPath: '/api/v1/sql',
      rawQueryString: '',
      headers: { host: 'x.execute-api.amazonaws.com', authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
      requestContext: { http: { method: 'POST', path: '/api/v1/sql', protocol: 'HTTP/1.1', sourceIp: '1.2.3.4', userAgent: 'test' }, domainName: 'x.execute-api.amazonaws.com', stage: '$default', requestId: 'r', routeKey: '$default', accountId: '1', apiId: 'x', domainPrefix: 'x', time: '', timeEpoch: 0 },
      body: JSON.stringify({ sql: `SELECT '${'x'.repeat(2 * MiB)}'` }),
      isBase64Encoded: false,
    };
    const res = (await handler(event as never, {} as never)) as { statusCode: number; body: string };
    expect(res.statusCode).toBe(413);
    expect(JSON.parse(res.body)).toEqual({ error: 'request body larger than 1 MiB (the json limit)' });
  });

  it('refuses caps that are not positive integers', () => {
    expect(() => createQueryApp({ clickhouse: ch, limits: { jsonBytes: 0 } })).toThrow(/jsonBytes must be a positive integer/);
  });
});

describe('bad query strings get a 4xx with a reason', () => {
  it.each([
    ['/api/v1/spans?end=1e11', /end must be unix seconds/],
    ['/api/v1/spans?start=0&end=9999999999', /end must be unix seconds/],
    ['/api/v1/spans?min_duration_us=1e300', /min_duration_us must be/],
    ['/api/v1/service-map?end=1e11', /end must be unix seconds/],
    ['/api/traces?service=nginx&end=1e30', /end must be/],
    ['/api/traces?service=nginx&start=1e30', /start must be/],
    ['/api/traces?service=nginx&lookback=99999999999999h', /lookback/],
    ['/api/traces?service=nginx&minDuration=1e300ms', /minDuration must be/],
    ['/api/traces?service=nginx&minDuration=' + '9'.repeat(400), /minDuration must be/],
    ['/api/traces?service=nginx&tags=null', /tags must be a JSON object/],
    ['/api/traces?service=nginx&tags=%7B%22http.status_code%22%3A%221e30%22%7D', /http.status_code/],
    ['/api/dependencies?endTs=1e300', /endTs/],
    ['/api/dependencies?endTs=1e16', /endTs/],
  ])('%s', async (path, reason) => {
    const r = await get(path);
    expect(r.status, JSON.stringify(r.body)).toBe(400);
    expect(String(r.body.error)).toMatch(reason);
  });

  it('the clamped Jaeger search range still answers (start = end - lookback before 1970)', async () => {
    const r = await get('/api/traces?service=nginx&end=1000000&lookback=2h');
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    expect(r.body.data).toEqual([]);
  });

  it('fuzz: no GET route answers absurd numbers, NaN, huge or odd strings with a 5xx', async () => {
    const urls = fuzzUrls([
      { path: '/api/v1/spans', params: ['start', 'end', 'limit', 'side', 'protocol', 'process', 'resource', 'trace_id', 'service', 'endpoint', 'min_duration_us', 'max_duration_us'] },
      { path: '/api/v1/traces', params: ['start', 'end', 'limit', 'side', 'trace_id', 'service', 'min_duration_us', 'max_duration_us'] },
      { path: '/api/v1/service-map', params: ['start', 'end'] },
      { path: '/api/v1/ui-config', params: ['x'] },
      { path: '/readyz', params: ['x'] },
      { path: '/api/v1/traces/{}', params: [] },
      { path: '/api/services', params: ['x'] },
      { path: '/api/services/{}/operations', params: [] },
      { path: '/api/operations', params: ['service', 'spanKind'], base: { service: 'nginx' } },
      { path: '/api/dependencies', params: ['endTs', 'lookback'] },
      { path: '/api/traces/{}', params: [] },
      { path: '/api/traces', params: ['traceID'] },
      { path: '/api/traces', params: ['service', 'start', 'end', 'lookback', 'limit', 'minDuration', 'maxDuration', 'tags', 'operation'], base: { service: 'nginx' } },
      { path: '/healthz', params: ['x'] },
      { path: '/metrics', params: ['x'] },
    ]);
    expect(urls.length).toBeGreaterThan(1500);
    const bad = await fuzzNo5xx(urls, (u) => Promise.resolve(app.request(u, { headers: auth })));
    expect(bad).toEqual([]);
    expect(metrics.render()).not.toMatch(/riptide_query_errors_total\{/);
  }, 300_000);
});

// ---- OTLP span times ------------------------------------------------------------------------

const hex = (n: number, bytes: number): string => n.toString(16).padStart(bytes * 2, '0');
function jsonSpans(times: Array<[string, string]>, seed: number): unknown {
  return {
    resourceSpans: [
      {
        resource: { attributes: [{ key: 'service.name', value: { stringValue: 'clock-test' } }] },
        scopeSpans: [{ spans: times.map(([s, e], i) => ({ traceId: hex(seed, 16), spanId: hex(seed * 1000 + i + 1, 8), name: `op${i}`, kind: 2, startTimeUnixNano: s, endTimeUnixNano: e })) }],
      },
    ],
  };
}
const postJson = (a: Hono, body: unknown): Promise<Response> =>
  Promise.resolve(a.request('/v1/traces', { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify(body) }));

/** A protobuf ExportTraceServiceRequest with one span and raw fixed64 times. */
function protoSpan(startNs: bigint, endNs: bigint, seed: number): Uint8Array {
  const field = (n: number, payload: Uint8Array): Buffer => {
    const len: number[] = [];
    let l = payload.length;
    while (l > 0x7f) {
      len.push((l & 0x7f) | 0x80);
      l >>>= 7;
    }
    len.push(l);
    return Buffer.concat([Buffer.from([(n << 3) | 2, ...len]), payload]);
  };
  const fixed = (n: number, v: bigint): Buffer => {
    const b = Buffer.alloc(9);
    b[0] = (n << 3) | 1;
    b.writeBigUInt64LE(BigInt.asUintN(64, v), 1);
    return b;
  };
  const span = Buffer.concat([field(1, Buffer.from(hex(seed, 16), 'hex')), field(2, Buffer.from(hex(seed, 8), 'hex')), field(5, Buffer.from('op')), fixed(7, startNs), fixed(8, endNs)]);
  return field(1, field(2, field(2, span)));
}

describe('OTLP span times outside a sane window are refused, with a reason, never stored', () => {
  const nowNs = (): bigint => BigInt(Date.now()) * 1_000_000n;

  it.each([
    ['start 0', '0', '1000'],
    ['start u64 max', '18446744073709551615', '18446744073709551615'],
    ['negative start', '-5000000000', '1000'],
    ['40-digit start', '1'.repeat(40), '1'.repeat(40)],
    ['a day in the future', String(nowNs() + 86400n * 1_000_000_000n), String(nowNs() + 86401n * 1_000_000_000n)],
    ['a year ago', String(nowNs() - 365n * 86400n * 1_000_000_000n), String(nowNs() - 365n * 86400n * 1_000_000_000n + 1000n)],
    ['sane start, end u64 max', String(nowNs()), '18446744073709551615'],
  ])('JSON: %s → 400', async (_what, s, e) => {
    const res = await postJson(app, jsonSpans([[s, e]], 7));
    expect(res.status, await res.clone().text()).toBe(400);
    expect(((await res.json()) as { error: string }).error).toMatch(/^all 1 spans refused: (start|end)TimeUnixNano .* is (outside|after) the accepted window/);
  });

  it('protobuf: start 0 and u64 max → 400; refused spans count on /metrics; nothing stored', async () => {
    const before = metric('riptide_otlp_dropped_total', 'reason="time_out_of_range"');
    for (const [s, e] of [
      [0n, 1n],
      [2n ** 64n - 1n, 2n ** 64n - 1n],
    ] as const) {
      const res = await app.request('/v1/traces', { method: 'POST', headers: { ...auth, 'content-type': 'application/x-protobuf' }, body: protoSpan(s, e, 9) });
      expect(res.status, await res.clone().text()).toBe(400);
    }
    expect(metric('riptide_otlp_dropped_total', 'reason="time_out_of_range"') - before).toBe(2);
    const rows = await queryRows<{ n: string }>(ch, "SELECT count() AS n FROM riptide.spans WHERE signal_source = 'otel' AND trace_id = {t:String}", { t: hex(9, 16) });
    expect(Number(rows[0].n)).toBe(0);
  });

  it('150 spans on 150 different days: the out-of-window ones refused (partial success), no 5xx', async () => {
    const day = 86400n * 1_000_000_000n;
    const times: Array<[string, string]> = Array.from({ length: 150 }, (_, i) => [String(nowNs() - BigInt(i) * day - 1_000_000_000n), String(nowNs() - BigInt(i) * day)]);
    const res = await postJson(app, jsonSpans(times, 11));
    expect(res.status, await res.clone().text()).toBe(200);
    const body = (await res.json()) as { partialSuccess: { rejectedSpans: string; errorMessage: string } };
    // Within the last 7 days: i = 0..6 (i = 7 is 7 days and a second ago).
    expect(body.partialSuccess.rejectedSpans).toBe('143');
    expect(body.partialSuccess.errorMessage).toMatch(/outside the accepted window/);
    const rows = await queryRows<{ n: string }>(ch, 'SELECT count() AS n FROM riptide.spans WHERE trace_id = {t:String}', { t: hex(11, 16) });
    expect(Number(rows[0].n)).toBe(7);
  });

  it('150 spans on 150 different days within a long retention: all stored, in inserts of at most 50 days', async () => {
    // The table keeps 400 days too (else its TTL merges drop the old rows right away).
    await ch.client.command({ query: 'ALTER TABLE riptide.spans MODIFY TTL toDateTime(start_time) + INTERVAL 400 DAY' });
    const long = createQueryApp({ clickhouse: ch, token: TOKEN, otlpWindow: { maxAgeMs: 400 * 86400e3 } });
    const day = 86400n * 1_000_000_000n;
    const times: Array<[string, string]> = Array.from({ length: 150 }, (_, i) => [String(nowNs() - BigInt(i) * day - 1_000_000_000n), String(nowNs() - BigInt(i) * day)]);
    const res = await postJson(long, jsonSpans(times, 12));
    expect(res.status, await res.clone().text()).toBe(200);
    expect(await res.json()).toEqual({});
    const rows = await queryRows<{ n: string; days: string }>(ch, 'SELECT count() AS n, uniqExact(toDate(start_time)) AS days FROM riptide.spans WHERE trace_id = {t:String}', { t: hex(12, 16) });
    expect(rows.map((r) => [Number(r.n), Number(r.days)])).toEqual([[150, 150]]);
  });

  it('a status code that does not fit Int32 is stored as unknown (-1), not a failed insert', async () => {
    const body = jsonSpans([[String(nowNs() - 1_000_000n), String(nowNs())]], 13) as { resourceSpans: Array<{ scopeSpans: Array<{ spans: Array<Record<string, unknown>> }> }> };
    body.resourceSpans[0].scopeSpans[0].spans[0].attributes = [{ key: 'http.response.status_code', value: { intValue: '99999999999' } }];
    const res = await postJson(app, body);
    expect(res.status, await res.clone().text()).toBe(200);
    const rows = await queryRows<{ c: number }>(ch, 'SELECT response_code AS c FROM riptide.spans WHERE trace_id = {t:String}', { t: hex(13, 16) });
    expect(rows).toEqual([{ c: -1 }]);
  });
});

describe('OTLP decoding fuzz', () => {
  /** xorshift32: the same cases every run. */
  const rng = (seed: number): (() => number) => () => {
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    return (seed >>> 0) / 2 ** 32;
  };

  it('mutated protobuf and JSON bodies are a 200 or a 4xx with a reason, never a 5xx', async () => {
    const r = rng(12345);
    const now = BigInt(Date.now()) * 1_000_000n;
    const good = protoSpan(now - 1_000_000n, now, 21);
    const urls: Array<{ type: string; body: Uint8Array | string }> = [];
    for (let i = 0; i < 150; i++) {
      const b = Uint8Array.from(good);
      for (let k = 1 + Math.floor(r() * 4); k > 0; k--) b[Math.floor(r() * b.length)] = Math.floor(r() * 256);
      urls.push({ type: 'application/x-protobuf', body: r() < 0.2 ? b.subarray(0, Math.floor(r() * b.length)) : b });
    }
    const odd: unknown[] = [null, 0, -1, 1e308, '', 'x', '1e400', true, [], {}, [[]], { a: 1 }, 'zz'.repeat(5000), '18446744073709551616', -1e21];
    const keys = ['traceId', 'spanId', 'parentSpanId', 'name', 'kind', 'startTimeUnixNano', 'endTimeUnixNano', 'attributes', 'status'];
    for (let i = 0; i < 150; i++) {
      const body = jsonSpans([[String(now - 1_000_000n), String(now)]], 22) as { resourceSpans: Array<Record<string, unknown> & { scopeSpans: Array<{ spans: Array<Record<string, unknown>> }> }> };
      const span = body.resourceSpans[0].scopeSpans[0].spans[0];
      span.attributes = [{ key: 'http.response.status_code', value: { intValue: odd[Math.floor(r() * odd.length)] } }, { key: odd[Math.floor(r() * odd.length)], value: { kvlistValue: { values: odd[Math.floor(r() * odd.length)] } } }];
      span[keys[Math.floor(r() * keys.length)]] = odd[Math.floor(r() * odd.length)];
      if (r() < 0.2) body.resourceSpans[0].resource = odd[Math.floor(r() * odd.length)];
      if (r() < 0.1) body.resourceSpans[0].scopeSpans = odd[Math.floor(r() * odd.length)] as never;
      urls.push({ type: 'application/json', body: JSON.stringify(body) });
    }
    const deep = '{"resourceSpans":[{"resource":{"attributes":[{"key":"k","value":' + '{"arrayValue":{"values":['.repeat(20000) + ']}}'.repeat(20000) + '}]}}]}';
    urls.push({ type: 'application/json', body: deep });
    const bad: string[] = [];
    const statuses = new Set<number>();
    for (const u of urls) {
      const res = await app.request('/v1/traces', { method: 'POST', headers: { ...auth, 'content-type': u.type }, body: u.body });
      const text = await res.text();
      statuses.add(res.status);
      if (res.status >= 500 || (res.status >= 400 && !/"error":"[^"]+/.test(text))) bad.push(`${res.status} ${text.slice(0, 200)} ← ${typeof u.body === 'string' ? u.body.slice(0, 300) : Buffer.from(u.body).toString('hex')}`);
    }
    expect(bad).toEqual([]);
    // The cases reach both the decoder's refusals and the insert.
    expect([...statuses].sort()).toEqual([200, 400]);
  }, 300_000);
});


// OTLP/HTTP ingest with the real OpenTelemetry JS SDK (protobuf and JSON exporters) against a real
// HTTP server, then the join of those spans with eBPF spans of the same request through traceparent.
import { mkdtempSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { serve } from '@hono/node-server';
import type { ServerType } from '@hono/node-server';
import { SpanKind, SpanStatusCode, context, trace } from '@opentelemetry/api';
import type { Span } from '@opentelemetry/api';
import { OTLPTraceExporter as ProtoExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { OTLPTraceExporter as JsonExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import type { SpanExporter } from '@opentelemetry/sdk-trace-base';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createQueryApp } from '../../functions/query/app.ts';
import { openClickHouse, queryRows } from '../../functions/storage/clickhouse.ts';
import type { ClickHouse } from '../../functions/storage/clickhouse.ts';
import { migrate } from '../../functions/storage/migrations.ts';
import { insertSpans } from '../../functions/storage/span-store.ts';
import { spanRow } from './fixtures.ts';

let dir: string;
let ch: ClickHouse;
let server: ServerType;
let base: string;
const TOKEN = 'otel-token';

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'riptide-otlp-'));
  ch = await openClickHouse({ dataDir: dir });
  await migrate(ch);
  const app = createQueryApp({ clickhouse: ch, token: TOKEN });
  server = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' });
  await new Promise<void>((r) => server.once('listening', () => r()));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  await new Promise<void>((r) => server.close(() => r()));
  await ch.close();
  rmSync(dir, { recursive: true, force: true });
});

/** service-a handles GET /checkout and calls service-b, instrumented with the SDK. */
async function instrumented(exporter: SpanExporter, service: string): Promise<{ server: Span; client: Span }> {
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({ 'service.name': service, 'host.name': 'node-1', 'process.pid': 4321 }),
    spanProcessors: [new SimpleSpanProcessor(exporter)],
  });
  const tracer = provider.getTracer('riptide-test');
  const srv = tracer.startSpan('GET /checkout', { kind: SpanKind.SERVER, attributes: { 'http.request.method': 'GET', 'url.path': '/checkout', 'http.route': '/checkout' } });
  const cli = tracer.startSpan(
    'POST',
    { kind: SpanKind.CLIENT, attributes: { 'http.request.method': 'POST', 'server.address': 'service-b', 'server.port': 8081, 'url.path': '/price', 'http.response.status_code': 503 } },
    trace.setSpan(context.active(), srv),
  );
  await new Promise((r) => setTimeout(r, 20));
  cli.setStatus({ code: SpanStatusCode.ERROR, message: 'upstream unavailable' });
  cli.end();
  srv.end();
  await provider.forceFlush();
  await provider.shutdown();
  return { server: srv, client: cli };
}

describe('OTLP/HTTP ingest (real OpenTelemetry JS SDK)', () => {
  it('stores protobuf-exported spans as signal_source=otel with their service', async () => {
    const { server: srv, client: cli } = await instrumented(new ProtoExporter({ url: `${base}/v1/traces`, headers: { authorization: `Bearer ${TOKEN}` } }), 'service-a');
    const rows = await queryRows<{ span_id: string; trace_id: string; side: string; l7_protocol: string; signal_source: string; app_parent_span_id: string; response_code: number; response_status: string; pid: number }>(
      ch,
      "SELECT span_id, trace_id, side, l7_protocol, signal_source, app_parent_span_id, response_code, response_status, pid FROM riptide.spans FINAL WHERE signal_source = 'otel' ORDER BY side",
    );
    expect(rows).toEqual([
      { span_id: cli.spanContext().spanId, trace_id: cli.spanContext().traceId, side: 'client', l7_protocol: 'http1', signal_source: 'otel', app_parent_span_id: srv.spanContext().spanId, response_code: 503, response_status: 'server_error', pid: 4321 },
      { span_id: srv.spanContext().spanId, trace_id: srv.spanContext().traceId, side: 'server', l7_protocol: 'http1', signal_source: 'otel', app_parent_span_id: '', response_code: -1, response_status: 'ok', pid: 4321 },
    ]);
    const res = await fetch(`${base}/api/v1/spans?trace_id=${srv.spanContext().traceId}`, { headers: { authorization: `Bearer ${TOKEN}` } });
    const { spans } = (await res.json()) as { spans: Array<{ service: string; signal_source: string }> };
    expect(spans.map((s) => s.service)).toEqual(['service-a', 'service-a']);
  });

  it('stores JSON-exported spans too, and refuses what is not OTLP', async () => {
    const { server: srv } = await instrumented(new JsonExporter({ url: `${base}/v1/traces`, headers: { authorization: `Bearer ${TOKEN}` } }), 'service-json');
    const rows = await queryRows<{ n: number }>(ch, 'SELECT count() AS n FROM riptide.spans FINAL WHERE trace_id = {t:String}', { t: srv.spanContext().traceId });
    expect(rows).toEqual([{ n: 2 }]);
    const post = (body: string | Uint8Array, type: string): Promise<Response> =>
      fetch(`${base}/v1/traces`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}`, 'content-type': type }, body });
    expect((await post('{"nope":1}', 'application/json')).status).toBe(400);
    expect((await post('not json', 'application/json')).status).toBe(400);
    expect((await post(Uint8Array.from([0x0a, 0xff, 0xff, 0xff]), 'application/x-protobuf')).status).toBe(400);
    expect((await post('x', 'text/plain')).status).toBe(415);
  });

  it('joins OTel spans with the eBPF spans of the same request through traceparent', async () => {
    const { server: srv, client: cli } = await instrumented(new ProtoExporter({ url: `${base}/v1/traces`, headers: { authorization: `Bearer ${TOKEN}` } }), 'service-a');
    const traceId = cli.spanContext().traceId;
    const stored = await queryRows<{ s: number; e: number }>(ch, 'SELECT toUnixTimestamp64Micro(start_time) AS s, toUnixTimestamp64Micro(end_time) AS e FROM riptide.spans WHERE span_id = {id:String}', { id: cli.spanContext().spanId });
    const { s, e } = stored[0];
    // What the agent saw of the A → B call: the request carried traceparent 00-<trace>-<client span id>-01.
    const common = { trace_id: traceId, app_span_id: cli.spanContext().spanId, l7_protocol: 'http1', request_type: 'POST', request_resource: '/price', req_tcp_seq: 777, resp_tcp_seq: 888, server_port: 8081 };
    const ebpfClient = spanRow({ ...common, span_id: 'eb00000000000001', side: 'client', process_name: 'node', pid: 4321, tid: 4321, start_time_us: s + 100, end_time_us: e - 100 });
    const ebpfServer = spanRow({ ...common, span_id: 'eb00000000000002', side: 'server', process_name: 'service-b', pid: 999, tid: 999, start_time_us: s + 150, end_time_us: e - 150 });
    await insertSpans(ch, [ebpfClient, ebpfServer]);
    const res = await fetch(`${base}/api/v1/traces/${ebpfServer.span_id}`, { headers: { authorization: `Bearer ${TOKEN}` } });
    const t = (await res.json()) as { trace_id: string; spans: Array<{ span_id: string; parent_id: string | null; parent_rule: string | null; signal_source: string }> };
    expect(t.trace_id).toBe(traceId);
    expect(t.spans.map((x) => [x.span_id, x.parent_id, x.parent_rule, x.signal_source])).toEqual([
      [srv.spanContext().spanId, null, null, 'otel'],
      [cli.spanContext().spanId, srv.spanContext().spanId, 'otel_parent', 'otel'],
      [ebpfClient.span_id, cli.spanContext().spanId, 'traceparent', 'ebpf'],
      [ebpfServer.span_id, ebpfClient.span_id, 'tcp_seq', 'ebpf'],
    ]);
    // And through the Jaeger API by the application trace id.
    const j = (await (await fetch(`${base}/api/traces/${traceId}`, { headers: { authorization: `Bearer ${TOKEN}` } })).json()) as { data: Array<{ spans: unknown[] }> };
    expect(j.data[0].spans).toHaveLength(4);
  });
});

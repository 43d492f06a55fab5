// Every field, every hop: application messages with EVERY L7 field set (Required<L7Message>) go
// parser output → NDJSON and RTB batch (encode/decode) → span builder → riptide.spans in chDB →
// the API's span JSON, and each hop is compared with what the field catalogue
// (agent/contract/fields.ts) says it maps to. A field that some hop drops (as `oneWay` and
// `version` once were dropped by the batch format) fails here.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Hono } from 'hono';
import { L7_FIELDS, SPAN_COLUMNS_CATALOGUE, spanRowKey } from '../../agent/contract/fields.ts';
import { l7ToJson } from '../../agent/ndjson-output.ts';
import type { L7Message, ProtocolDescriptor } from '../../agent/protocols/parser.ts';
import { BUILTIN_DESCRIPTORS } from '../../agent/protocols/descriptors.ts';
import type { Batch, ParsedMessage } from '../../agent/shipping/batch.ts';
import { BATCH_FORMAT_VERSION, decodeBatch, encodeBatch } from '../../agent/shipping/codec.ts';
import { createQueryApp } from '../../functions/query/app.ts';
import { openClickHouse, queryRows } from '../../functions/storage/clickhouse.ts';
import type { ClickHouse } from '../../functions/storage/clickhouse.ts';
import { migrate } from '../../functions/storage/migrations.ts';
import { insertSpans } from '../../functions/storage/span-store.ts';
import { buildSpans } from '../../functions/span-builder/span-builder.ts';
import type { SpanRow } from '../../functions/span-builder/span-row.ts';

const SLOT_SECONDS = 5;
const SLOT = Math.floor((Date.now() / 1000 - 120) / SLOT_SECONDS); // two minutes ago
const T0 = BigInt(SLOT * SLOT_SECONDS + 1) * 1_000_000_000n;

/** Every field set, with values distinct per message and per field. */
function full(msgType: 'request' | 'response', tag: string, requestId: number, oneWay: boolean): Required<L7Message> {
  return {
    l7Protocol: 'allfields',
    msgType,
    requestType: `TYPE-${tag}`,
    requestDomain: `domain-${tag}.example`,
    requestResource: `/resource/${tag}`,
    endpoint: `/endpoint/${tag}`,
    requestId,
    responseCode: msgType === 'response' ? 418 : 0,
    responseStatus: msgType === 'response' ? 'client_error' : 'ok',
    responseException: `exception ${tag} ✓`,
    requestLength: 1000 + requestId,
    responseLength: 2000 + requestId,
    traceId: `${tag}`.padEnd(32, 'a'),
    spanId: `${tag}`.padEnd(16, 'b'),
    parentSpanId: `${tag}`.padEnd(16, 'c'),
    xRequestId: `xrid-${tag}`,
    attributes: { [`k-${tag}`]: `v-${tag}`, shared: tag },
    truncated: true,
    oneWay,
    version: `v-${tag}`,
    tls: true,
  };
}

function message(tsNs: bigint, direction: 'egress' | 'ingress', l7: L7Message[], seq: number): ParsedMessage {
  return {
    tsNs,
    enterNs: tsNs,
    exitNs: tsNs + 1000n,
    pid: 4242,
    tid: direction === 'egress' ? 4243 : 4244,
    coroutineId: direction === 'egress' ? 7 : 8,
    processName: 'allfields-client',
    syscall: direction === 'egress' ? 'write' : 'read',
    direction,
    socketId: 99,
    family: 'ipv4',
    l4: 'tcp',
    localIp: '10.0.0.1',
    localPort: 40000,
    remoteIp: '10.0.0.2',
    remotePort: 7777,
    role: 'client',
    tcpSeq: seq,
    syscallTraceId: 500 + seq,
    bytes: 64 + seq,
    payload: new Uint8Array([1, 2, 3]),
    l7,
  };
}

const req = full('request', 'q', 11, false);
const resp = full('response', 's', 11, false);
const oneWay = full('request', 'w', 12, true);
/** What a flag set to false looks like after a hop that only records presence. */
const present = (m: Required<L7Message>): L7Message => Object.fromEntries(Object.entries(m).filter(([, v]) => v !== false)) as unknown as L7Message;

const batch: Batch = {
  version: BATCH_FORMAT_VERSION,
  agentId: 'allfields-agent',
  host: 'allfields-host',
  slot: SLOT,
  slotSeconds: SLOT_SECONDS,
  part: 0,
  messages: [message(T0, 'egress', [req], 1), message(T0 + 3_000_000n, 'ingress', [resp], 2), message(T0 + 4_000_000n, 'egress', [oneWay], 3)],
  processes: [],
  closed: [],
};

let dir: string;
let ch: ClickHouse;
let app: Hono;
let decoded: Batch;
let spans: SpanRow[];

beforeAll(async () => {
  decoded = decodeBatch(encodeBatch(batch));
  spans = buildSpans({ agentId: batch.agentId, slot: SLOT, prev: [], cur: [decoded], next: [] }).spans;
  dir = mkdtempSync(join(tmpdir(), 'riptide-allfields-'));
  ch = await openClickHouse({ dataDir: dir });
  await migrate(ch);
  await insertSpans(ch, spans);
  app = createQueryApp({ clickhouse: ch });
}, 60_000);

afterAll(async () => {
  await ch?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('every catalogue field survives every hop', () => {
  it('the test sets every L7 field the catalogue knows, and the catalogue knows every field set', () => {
    expect(Object.keys(req).sort()).toEqual(L7_FIELDS.map((f) => f.key).sort());
  });

  it('parser output → NDJSON: every field under its catalogue key', () => {
    const json = l7ToJson(oneWay);
    expect(Object.keys(json).sort()).toEqual(L7_FIELDS.map((f) => f.ndjson).sort());
    for (const f of L7_FIELDS) expect(json[f.ndjson], f.key).toEqual(oneWay[f.key]);
  });

  it('parser output → RTB batch → decoded: every field, exactly', () => {
    expect(decoded.messages.map((m) => m.l7[0])).toEqual([present(req), present(resp), present(oneWay)]);
  });

  it('batch → span rows: each field lands in its catalogue column', () => {
    const paired = spans.find((s) => s.pair_state === 'paired');
    const ow = spans.find((s) => s.pair_state === 'one_way');
    expect(spans).toHaveLength(2);
    expect(paired).toBeDefined();
    expect(ow).toBeDefined();
    // What the span builder takes from the request, from the response, or from either (request first).
    const want: Record<string, unknown> = {
      l7_protocol: 'allfields',
      request_type: req.requestType,
      request_domain: req.requestDomain,
      request_resource: req.requestResource,
      endpoint: req.endpoint,
      request_id: req.requestId,
      response_code: resp.responseCode,
      response_status: resp.responseStatus,
      response_exception: resp.responseException,
      request_bytes: req.requestLength,
      response_bytes: resp.responseLength,
      trace_id: req.traceId,
      app_span_id: req.spanId,
      app_parent_span_id: req.parentSpanId,
      x_request_id_req: req.xRequestId,
      x_request_id_resp: resp.xRequestId,
      attributes: { ...resp.attributes, ...req.attributes, tls: 'true' },
      pair_state: 'paired',
      version: req.version,
    };
    // Every column a field maps to is checked (fields with no column are agent-side only).
    for (const f of L7_FIELDS) for (const c of f.spanColumns) expect(want, `${f.key} → ${c}`).toHaveProperty(c);
    expect(paired).toMatchObject(want);
    expect(ow).toMatchObject({ pair_state: 'one_way', response_status: 'ok', version: oneWay.version, request_type: oneWay.requestType, request_id: oneWay.requestId, trace_id: oneWay.traceId });
  });

  it('the migrated riptide.spans has exactly the catalogue columns and types', async () => {
    const cols = await queryRows<{ name: string; type: string }>(ch, 'DESCRIBE TABLE riptide.spans');
    expect(cols.map((c) => [c.name, c.type])).toEqual(SPAN_COLUMNS_CATALOGUE.map((c) => [c.column, c.chType]));
  });

  it('span rows → chDB → read back: every column equal', async () => {
    const select = SPAN_COLUMNS_CATALOGUE.map((c) => (c.select ? c.select : c.column)).join(', ');
    const rows = await queryRows<Record<string, unknown>>(ch, `SELECT ${select} FROM riptide.spans FINAL WHERE l7_protocol = 'allfields' ORDER BY start_time`);
    expect(rows).toHaveLength(2);
    for (const [i, row] of rows.entries()) {
      const span = spans[i] as unknown as Record<string, unknown>;
      for (const c of SPAN_COLUMNS_CATALOGUE) {
        const k = spanRowKey(c);
        const got = c.tsType === 'number' ? Number(row[k]) : row[k];
        expect(got, `${k} of span ${i}`).toEqual(span[k]);
      }
    }
  });

  it('chDB → API span JSON: every exposed column under its catalogue name', async () => {
    const res = await app.request(`/api/v1/spans?protocol=allfields&start=${Number(T0 / 1_000_000_000n) - 10}&end=${Number(T0 / 1_000_000_000n) + 60}`);
    expect(res.status).toBe(200);
    const got = ((await res.json()) as { spans: Array<Record<string, unknown>> }).spans;
    expect(got).toHaveLength(2);
    for (const span of spans) {
      const j = got.find((s) => s.span_id === span.span_id);
      expect(j, span.pair_state).toBeDefined();
      const row = span as unknown as Record<string, unknown>;
      for (const c of SPAN_COLUMNS_CATALOGUE) if (c.json) expect(j![c.json], `${c.json}`).toEqual(row[spanRowKey(c)]);
      // Nothing but the catalogue's names and the computed ones.
      const computed = ['parent_id', 'trace_id', 'response_code', 'x_request_id', 'service', 'parent_rule', 'parent_confidence'];
      expect(Object.keys(j!).sort()).toEqual([...SPAN_COLUMNS_CATALOGUE.flatMap((c) => (c.json ? [c.json] : [])), ...computed].sort());
      expect(j!.trace_id).toBe(span.trace_id);
      expect(j!.response_code).toBe(span.response_code < 0 ? null : span.response_code);
      expect(j!.x_request_id).toBe(span.x_request_id_req || span.x_request_id_resp);
    }
  });
});

describe('GET /api/v1/protocols', () => {
  it('lists every built-in protocol descriptor: pairing, aliases, one-way rules', async () => {
    const res = await app.request('/api/v1/protocols');
    expect(res.status).toBe(200);
    const { protocols } = (await res.json()) as { protocols: ProtocolDescriptor[] };
    expect(protocols).toEqual(BUILTIN_DESCRIPTORS);
    expect(protocols.find((p) => p.name === 'http2')).toMatchObject({ pairing: 'by-id', aliases: ['grpc'] });
    expect(protocols.find((p) => p.name === 'mqtt')?.oneWay).toContainEqual({ requestType: 'PUBLISH', when: 'QoS 0' });
  });
});

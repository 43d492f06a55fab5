/**
 * Descriptors of Wasm plugins reach the query side (issue 13): a batch carrying the tinyrpc plugin's
 * messages, written through the real codec as the agent writes it, processed by the functions
 * runtime → a row in riptide.protocol_descriptors → `GET /api/v1/protocols` lists it, and trace
 * assembly uses a stored descriptor's sequence slack. A plugin descriptor never overrides a
 * built-in; a descriptor is written when new or changed, not per batch. Embedded chDB.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadPlugins } from '../../agent/plugins/host.ts';
import type { LoadedPlugins } from '../../agent/plugins/host.ts';
import { MetricsRegistry } from '../../agent/metrics.ts';
import { BUILTIN_DESCRIPTORS, descriptorFor } from '../../agent/protocols/descriptors.ts';
import { ParserSession } from '../../agent/protocols/fixtures.ts';
import type { L7Message, ProtocolDescriptor, ProtocolParser } from '../../agent/protocols/parser.ts';
import type { Batch, ParsedMessage } from '../../agent/shipping/batch.ts';
import { decodeBatch, encodeBatch } from '../../agent/shipping/codec.ts';
import { batchKey } from '../../agent/shipping/keys.ts';
import { createQueryApp } from '../../functions/query/app.ts';
import { BatchProcessor } from '../../functions/runtime/processor.ts';
import { shippingDecoder, shippingKeys } from '../../functions/runtime/shipping.ts';
import { openClickHouse, queryRows } from '../../functions/storage/clickhouse.ts';
import type { ClickHouse } from '../../functions/storage/clickhouse.ts';
import { migrate } from '../../functions/storage/migrations.ts';
import { DescriptorCatalog, DescriptorRecorder } from '../../functions/storage/protocol-descriptors.ts';
import { TagEncoder } from '../../functions/tag-encoder/tag-encoder.ts';
import { DenseTagIds } from '../../functions/tag-encoder/tag-ids.ts';
import { encodeRequest, encodeResponse } from '../../plugins/tinyrpc/demo/protocol.ts';
import { MemoryStore } from '../functions/memory-store.ts';

const TINYRPC_DIR = new URL('../../plugins/tinyrpc/', import.meta.url).pathname;
const SLOT_SECONDS = 5;
// Now-ish slots: unsettled rows go to spans_recent, whose TTL is an hour.
const SLOT = Math.floor(Date.now() / 1000 / SLOT_SECONDS) - 2;
const slotNs = (slot: number, ms: number): bigint => BigInt(slot * SLOT_SECONDS) * 1_000_000_000n + BigInt(Math.round(ms * 1e6));

let dir: string;
let ch: ClickHouse;
let plugins: LoadedPlugins;
let tinyrpc: ProtocolParser;
let store: MemoryStore;
let processor: BatchProcessor;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'riptide-protocols-'));
  ch = await openClickHouse({ dataDir: dir });
  await migrate(ch);
  plugins = await loadPlugins({ paths: [TINYRPC_DIR], reloadIntervalMs: 0, metrics: new MetricsRegistry(), log: () => {} });
  const p = plugins.parsers.find((x) => x.name === 'tinyrpc');
  if (!p) throw new Error(`plugins/tinyrpc did not load (have ${plugins.parsers.map((x) => x.name).join(', ') || 'none'})`);
  tinyrpc = p;
  store = new MemoryStore();
  processor = new BatchProcessor({ ch, store, keys: shippingKeys, decode: shippingDecoder, encoder: new TagEncoder({ ids: await DenseTagIds.load(ch) }), log: () => {} });
});
afterAll(async () => {
  plugins?.close();
  await ch?.close();
  rmSync(dir, { recursive: true, force: true });
});

interface Sock {
  socketId: number;
  pid: number;
  role: 'client' | 'server';
  localPort: number;
  remotePort: number;
}
const CLIENT: Sock = { socketId: 31, pid: 300, role: 'client', localPort: 41000, remotePort: 7070 };
const SERVER: Sock = { socketId: 32, pid: 400, role: 'server', localPort: 7070, remotePort: 41000 };

function message(s: Sock, slot: number, ms: number, direction: 'egress' | 'ingress', l7: L7Message[], tcpSeq: number, syscallTraceId = 0): ParsedMessage {
  const ts = slotNs(slot, ms);
  return {
    tsNs: ts, enterNs: ts, exitNs: ts + 1000n, pid: s.pid, tid: s.pid, coroutineId: 0, processName: s.role === 'client' ? 'rpc-client' : 'rpc-server',
    syscall: direction === 'egress' ? 'write' : 'read', direction, socketId: s.socketId, family: 'ipv4', l4: 'tcp',
    localIp: '127.0.0.1', localPort: s.localPort, remoteIp: '127.0.0.1', remotePort: s.remotePort, role: s.role,
    tcpSeq, syscallTraceId, bytes: 64, payload: new Uint8Array(0), l7,
  };
}

/** What the plugin parses from one read, as the agent's registry would call it. */
function parsed(session: ParserSession, dir: 'c2s' | 's2c', bytes: Buffer): L7Message[] {
  const out = session.feed(dir, new Uint8Array(bytes));
  if (!out || out.length === 0) throw new Error(`tinyrpc parsed nothing from ${bytes.toString('hex')}`);
  return out;
}

/** One tinyrpc call seen from both ends, in a batch encoded by the agent's codec (descriptors from what this process declared). */
function tinyrpcBatch(slot: number, id: number): { key: string; batch: Batch } {
  const c = new ParserSession(tinyrpc, 'client');
  const s = new ParserSession(tinyrpc, 'server');
  const req = encodeRequest(id, 'add', Buffer.from('1,2'));
  const resp = encodeResponse(id, 0, Buffer.from('3'));
  const seq = 1000 + id * 100;
  const raw: Batch = {
    version: 4, agentId: 'node-p', host: 'node-p', slot, slotSeconds: SLOT_SECONDS, part: 0, run: 1,
    messages: [
      message(CLIENT, slot, 100, 'egress', parsed(c, 'c2s', req), seq),
      message(SERVER, slot, 100.2, 'ingress', parsed(s, 'c2s', req), seq, 7000 + id),
      message(SERVER, slot, 102, 'egress', parsed(s, 's2c', resp), 9000 + id, 7000 + id),
      message(CLIENT, slot, 102.2, 'ingress', parsed(c, 's2c', resp), 9000 + id),
    ],
    processes: [],
    closed: [],
  };
  const bytes = encodeBatch(raw);
  const key = batchKey(raw);
  store.objects.set(key, bytes);
  return { key, batch: decodeBatch(bytes) };
}

const storedRows = (): Promise<Array<{ name: string; descriptor: string; agent_id: string }>> =>
  queryRows(ch, 'SELECT name, descriptor, agent_id FROM riptide.protocol_descriptors ORDER BY name, updated_at');

describe('plugin protocol descriptors reach the query side', () => {
  it('tinyrpc: batch (carrying the manifest descriptor) → runtime → riptide.protocol_descriptors → GET /api/v1/protocols', async () => {
    const want: ProtocolDescriptor = { name: 'tinyrpc', aliases: [], pairing: 'by-id', oneWay: [] };
    expect(tinyrpc.descriptor).toEqual(want);
    const first = tinyrpcBatch(SLOT, 1);
    // The batch carries it (the agent's codec asked the descriptors this process declared).
    expect(first.batch.descriptors).toEqual([want]);
    const r1 = await processor.processBatch(first.key);
    expect(r1.status).toBe('processed');
    expect(r1.slots.find((x) => x.slot === SLOT)?.spans).toBe(2);

    const rows = await storedRows();
    expect(rows.map((r) => [r.name, JSON.parse(r.descriptor), r.agent_id])).toEqual([['tinyrpc', want, 'node-p']]);

    // Another batch with the same descriptor writes nothing more.
    const second = tinyrpcBatch(SLOT + 1, 2);
    expect((await processor.processBatch(second.key)).status).toBe('processed');
    expect((await storedRows()).length).toBe(1);

    const app = createQueryApp({ clickhouse: ch });
    const res = await app.request('/api/v1/protocols');
    expect(res.status).toBe(200);
    const { protocols } = (await res.json()) as { protocols: ProtocolDescriptor[] };
    expect(protocols).toEqual([...BUILTIN_DESCRIPTORS, want]);

    // And its spans are there, paired by id.
    const spans = await app.request(`/api/v1/spans?protocol=tinyrpc&start=${SLOT * SLOT_SECONDS - 1}&end=${(SLOT + 2) * SLOT_SECONDS + 1}`);
    const list = ((await spans.json()) as { spans: Array<{ side: string; request_resource: string; response_status: string }> }).spans;
    expect(list.map((x) => [x.side, x.request_resource, x.response_status]).sort()).toEqual([
      ['client', 'add', 'ok'],
      ['client', 'add', 'ok'],
      ['server', 'add', 'ok'],
      ['server', 'add', 'ok'],
    ]);
  });

  it('a plugin descriptor never overrides a built-in name, neither when written nor when read', async () => {
    const recorder = new DescriptorRecorder(ch, { metrics: new MetricsRegistry() });
    const http1: ProtocolDescriptor = { name: 'http1', aliases: [], pairing: 'by-id', oneWay: [] };
    const evil: ProtocolDescriptor = { name: 'evilrpc', aliases: ['grpc', 'evilrpc2'], pairing: 'in-order', oneWay: [{ requestType: 'PING', when: 'always' }] };
    expect(await recorder.record([http1, evil], 'node-x')).toBe(1);
    const rows = (await storedRows()).filter((r) => r.name !== 'tinyrpc');
    expect(rows.map((r) => [r.name, JSON.parse(r.descriptor)])).toEqual([['evilrpc', { ...evil, aliases: ['evilrpc2'] }]]);

    // Rows written by someone else: one named like a built-in, one unreadable, one whose JSON names another protocol.
    await ch.client.insert({
      table: 'riptide.protocol_descriptors',
      values: [
        { name: 'redis', descriptor: JSON.stringify({ name: 'redis', aliases: [], pairing: 'by-id', oneWay: [] }), agent_id: 'x', updated_at: Date.now() },
        { name: 'broken', descriptor: '{"name": "broken", "pairing": "sideways"', agent_id: 'x', updated_at: Date.now() },
        { name: 'liar', descriptor: JSON.stringify({ name: 'mysql', aliases: [], pairing: 'by-id', oneWay: [] }), agent_id: 'x', updated_at: Date.now() },
      ],
      format: 'JSONEachRow',
    });
    const m = new MetricsRegistry();
    const catalog = new DescriptorCatalog(ch, { metrics: m, refreshMs: 0 });
    const list = await catalog.list();
    expect(list.slice(0, BUILTIN_DESCRIPTORS.length)).toEqual(BUILTIN_DESCRIPTORS);
    expect(list.slice(BUILTIN_DESCRIPTORS.length).map((d) => d.name)).toEqual(['evilrpc', 'tinyrpc']);
    expect(catalog.lookup('redis')).toBe(descriptorFor('redis'));
    expect(catalog.lookup('mysql')).toBe(descriptorFor('mysql'));
    expect(catalog.lookup('grpc')?.name).toBe('http2');
    expect(catalog.lookup('evilrpc2')?.name).toBe('evilrpc');
    expect(m.render()).toMatch(/riptide_query_descriptors_skipped_total\{reason="builtin_name"\} 1/);
    expect(m.render()).toMatch(/riptide_query_descriptors_skipped_total\{reason="malformed"\} 2/);
  });

  it('written when new, changed (at most every 10 s) or due for its daily refresh — not per batch; read again after ~10 s', async () => {
    const clock = { now: Date.now() };
    const recorder = new DescriptorRecorder(ch, { now: () => clock.now, metrics: new MetricsRegistry() });
    const v1: ProtocolDescriptor = { name: 'flaprpc', aliases: [], pairing: 'by-id', oneWay: [] };
    const v2: ProtocolDescriptor = { ...v1, timeoutMs: 2000 };
    expect(await recorder.record([v1], 'a')).toBe(1);
    expect(await recorder.record([v1], 'a')).toBe(0);
    clock.now += 1000;
    expect(await recorder.record([v2], 'b')).toBe(0); // changed, but one second after the last write
    clock.now += 10_000;
    expect(await recorder.record([v2], 'b')).toBe(1);
    expect(await recorder.record([v2, v2], 'b')).toBe(0);
    clock.now += 86_400_000;
    expect(await recorder.record([v2], 'b')).toBe(1); // the daily refresh keeps it inside the TTL
    expect((await storedRows()).filter((r) => r.name === 'flaprpc').length).toBe(3);

    const queryClock = { now: 0 };
    const catalog = new DescriptorCatalog(ch, { now: () => queryClock.now });
    expect((await catalog.list()).find((d) => d.name === 'flaprpc')).toEqual(v2);
    const v3: ProtocolDescriptor = { ...v1, timeoutMs: 3000 };
    clock.now += 20_000;
    expect(await recorder.record([v3], 'c')).toBe(1);
    queryClock.now += 9_000;
    expect((await catalog.list()).find((d) => d.name === 'flaprpc')).toEqual(v2); // read 9 s ago: still cached
    queryClock.now += 1_000;
    expect((await catalog.list()).find((d) => d.name === 'flaprpc')).toEqual(v3);
  });

  it("trace assembly uses a stored descriptor: a plugin protocol's sequence slack links its server span to its client span", async () => {
    // A plugin protocol read header first on the server: its request starts 4 bytes later there.
    const slack: ProtocolDescriptor = { name: 'slackrpc', aliases: [], pairing: 'in-order', oneWay: [], sequenceSlack: [0, 4, -4] };
    const l7 = (msgType: 'request' | 'response'): L7Message[] => [msgType === 'request' ? { l7Protocol: 'slackrpc', msgType, requestType: 'CALL', requestResource: 'sum' } : { l7Protocol: 'slackrpc', msgType, responseStatus: 'ok' }];
    const c: Sock = { ...CLIENT, socketId: 41, localPort: 42000 };
    const s: Sock = { ...SERVER, socketId: 42, remotePort: 42000 };
    const slot = SLOT + 1;
    const raw: Batch = {
      version: 4, agentId: 'node-q', host: 'node-q', slot, slotSeconds: SLOT_SECONDS, part: 0, run: 1,
      messages: [
        message(c, slot, 200, 'egress', l7('request'), 5000),
        message(s, slot, 200.2, 'ingress', l7('request'), 5004, 8100),
        message(s, slot, 203, 'egress', l7('response'), 6000, 8100),
        message(c, slot, 203.2, 'ingress', l7('response'), 6000),
      ],
      processes: [],
      closed: [],
      descriptors: [slack],
    };
    const key = batchKey(raw);
    store.objects.set(key, encodeBatch(raw));
    expect((await processor.processBatch(key)).status).toBe('processed');
    expect((await storedRows()).filter((r) => r.name === 'slackrpc').map((r) => JSON.parse(r.descriptor))).toEqual([slack]);

    const app = createQueryApp({ clickhouse: ch });
    const found = await app.request(`/api/v1/spans?protocol=slackrpc&side=client&start=${slot * SLOT_SECONDS - 1}&end=${(slot + 1) * SLOT_SECONDS + 1}`);
    const [client] = ((await found.json()) as { spans: Array<{ span_id: string }> }).spans;
    expect(client).toBeDefined();
    const trace = async (a: typeof app): Promise<Array<{ side: string; parent_id: string | null; parent_rule: string | null }>> =>
      ((await (await a.request(`/api/v1/traces/${client.span_id}`)).json()) as { spans: Array<{ side: string; parent_id: string | null; parent_rule: string | null }> }).spans;
    const spans = await trace(app);
    expect(spans.map((x) => [x.side, x.parent_id, x.parent_rule])).toEqual([
      ['client', null, null],
      ['server', client.span_id, 'tcp_seq'],
    ]);
    // With the built-in table only, the server span's sequence is never asked for.
    const builtinsOnly = createQueryApp({ clickhouse: ch, assemble: { descriptorOf: descriptorFor } });
    expect((await trace(builtinsOnly)).map((x) => x.side)).toEqual(['client']);
  });
});

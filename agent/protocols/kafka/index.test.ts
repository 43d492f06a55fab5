import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { describeConformance, otherFixtures } from '../conformance.ts';
import { ParserSession, loadFixtures, replay } from '../fixtures.ts';
import { kafkaParser } from './index.ts';

// No broker runs here: these fixtures are requests encoded by kafkajs's protocol encoders and
// responses written with its Encoder in the spec's layout (test/protocols/record-fixtures.ts).
const own = loadFixtures('kafka');

describeConformance(kafkaParser, { own, others: otherFixtures('kafka'), fuzzIterations: 1_000_000 });

function frame(bytes: number[]): Uint8Array {
  const len = bytes.length;
  return new Uint8Array([(len >>> 24) & 0xff, (len >>> 16) & 0xff, (len >>> 8) & 0xff, len & 0xff, ...bytes]);
}

describe('kafka', () => {
  it('reads api, version, correlation id, client id and topic of kafkajs requests, and pairs responses by id', () => {
    const msgs = replay(kafkaParser, own[0].chunks);
    const req = msgs.filter((m) => m.msgType === 'request');
    expect(req.map((m) => [m.requestType, m.version, m.requestId, m.requestDomain, m.requestResource])).toEqual([
      ['ApiVersions', '2', 1, undefined, undefined],
      ['Metadata', '5', 2, 'orders', 'orders'],
      ['Produce', '3', 3, 'orders', 'orders-0'],
      ['Fetch', '4', 4, 'orders', 'orders-0:41'],
      ['Produce', '3', 5, 'payments', 'payments-3'],
      ['FindCoordinator', '1', 6, undefined, undefined],
    ]);
    expect(req[0].attributes).toEqual({ client_id: 'riptide-kafkajs' });
    const resp = msgs.filter((m) => m.msgType === 'response');
    expect(resp.map((m) => [m.requestId, m.requestType, m.responseCode, m.responseStatus])).toEqual([
      [1, 'ApiVersions', 0, 'ok'],
      [2, 'Metadata', undefined, 'ok'],
      [3, 'Produce', 0, 'ok'],
      [4, 'Fetch', 1, 'client_error'],
      [5, 'Produce', 3, 'client_error'],
      [6, 'FindCoordinator', 15, 'server_error'],
    ]);
  });

  it('reads a Produce request cut by the capture limit', () => {
    const msgs = replay(kafkaParser, own[0].chunks, { captureLimit: 1024 });
    expect(msgs.find((m) => m.requestId === 5 && m.msgType === 'request')).toMatchObject({ requestDomain: 'payments', truncated: true });
  });

  it('reads flexible versions (tagged fields, compact strings and arrays)', () => {
    const s = new ParserSession(kafkaParser);
    // Produce v9: header v2 (client id stays INT16-length), compact body.
    const req = frame([0, 0, 0, 9, 0, 0, 0, 7, 0, 1, 0x63, 0, 0, 0xff, 0xff, 0, 0, 0x75, 0x30, 2, 3, 0x74, 0x31, 2, 0, 0, 0, 2]);
    expect(s.feed('c2s', req)).toEqual([{ l7Protocol: 'kafka', msgType: 'request', requestType: 'Produce', requestId: 7, version: '9', requestLength: req.length - 4, attributes: { client_id: 'c' }, requestDomain: 't1', requestResource: 't1-2', endpoint: 't1-2' }]);
    // Response header v1 (tagged fields), then topics[name, partitions[index, error_code=6]].
    const resp = frame([0, 0, 0, 7, 0, 2, 3, 0x74, 0x31, 2, 0, 0, 0, 2, 0, 6]);
    expect(s.feed('s2c', resp)).toMatchObject([{ msgType: 'response', requestId: 7, requestType: 'Produce', responseCode: 6, responseStatus: 'server_error' }]);
  });

  it('marks acks=0 Produce as one-way', () => {
    const s = new ParserSession(kafkaParser);
    const req = frame([0, 0, 0, 3, 0, 0, 0, 8, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0x75, 0x30, 0, 0, 0, 1, 0, 1, 0x74, 0, 0, 0, 1, 0, 0, 0, 0]);
    expect(s.feed('c2s', req)).toMatchObject([{ requestType: 'Produce', requestDomain: 't', oneWay: true }]);
  });
});

// Bytes from kafkajs's own request encoders (what its client sends to a broker), responses written
// with its Encoder in the spec's layout, as record-fixtures.ts does for the recorded fixture.
describe('kafka: Fetch v7+ top-level error, consumer groups and record-header trace context', () => {
  const require = createRequire(import.meta.url);
  type Enc = { buffer: Buffer; writeInt32(n: number): Enc; writeInt16(n: number): Enc; writeArray(a: unknown[]): Enc; writeEncoder(e: Enc): Enc; size(): number };
  const Encoder = require('kafkajs/src/protocol/encoder') as new () => Enc;
  const frameReq = require('kafkajs/src/protocol/request') as (o: { correlationId: number; clientId: string; request: object }) => Promise<Enc>;
  const req = (p: string): ((o: object) => object) => require(`kafkajs/src/protocol/requests/${p}/request`) as (o: object) => object;
  const response = (correlationId: number, body: Enc): Uint8Array => {
    const inner = new Encoder().writeInt32(correlationId).writeEncoder(body);
    return new Uint8Array(new Encoder().writeInt32(inner.size()).writeEncoder(inner).buffer);
  };
  const bytes = async (correlationId: number, request: object): Promise<Uint8Array> => new Uint8Array((await frameReq({ correlationId, clientId: 'c', request })).buffer);

  it('a Fetch v11 response with no partitions keeps its top-level error_code 0 (it was lost)', async () => {
    const s = new ParserSession(kafkaParser);
    const fetch = req('fetch/v11')({ replicaId: -1, maxWaitTime: 500, minBytes: 1, maxBytes: 1 << 20, topics: [{ topic: 'orders', partitions: [{ partition: 0, fetchOffset: '7', maxBytes: 1 << 20 }] }] });
    expect(s.feed('c2s', await bytes(11, fetch))).toMatchObject([{ requestType: 'Fetch', version: '11', requestId: 11 }]);
    // throttle_time_ms, error_code 0, session_id, responses: []
    const out = s.feed('s2c', response(11, new Encoder().writeInt32(0).writeInt16(0).writeInt32(77).writeArray([])));
    expect(out).toEqual([expect.objectContaining({ msgType: 'response', requestType: 'Fetch', requestId: 11, responseCode: 0, responseStatus: 'ok' })]);
    // a non-zero top-level error (FETCH_SESSION_ID_NOT_FOUND = 70) is still read
    s.feed('c2s', await bytes(12, fetch));
    expect(s.feed('s2c', response(12, new Encoder().writeInt32(0).writeInt16(70).writeInt32(0).writeArray([])))).toMatchObject([{ requestId: 12, responseCode: 70 }]);
  });

  it('names the consumer group of JoinGroup, Heartbeat, OffsetCommit and FindCoordinator requests (attributes.group_id)', async () => {
    const s = new ParserSession(kafkaParser);
    const join = req('joinGroup/v2')({ groupId: 'billing', sessionTimeout: 30000, rebalanceTimeout: 60000, memberId: '', protocolType: 'consumer', groupProtocols: [{ name: 'RoundRobinAssigner', metadata: Buffer.from('m') }] });
    const beat = req('heartbeat/v1')({ groupId: 'billing', groupGenerationId: 3, memberId: 'c-1' });
    const commit = req('offsetCommit/v2')({ groupId: 'billing', groupGenerationId: 3, memberId: 'c-1', retentionTime: -1, topics: [{ topic: 'orders', partitions: [{ partition: 0, offset: '8' }] }] });
    const find = req('findCoordinator/v1')({ coordinatorKey: 'billing', coordinatorType: 0 });
    const got = [];
    for (const [i, r] of [join, beat, commit, find].entries()) got.push(...(s.feed('c2s', await bytes(20 + i, r)) ?? []));
    expect(got.map((m) => [m.requestType, m.attributes?.group_id])).toEqual([
      ['JoinGroup', 'billing'],
      ['Heartbeat', 'billing'],
      ['OffsetCommit', 'billing'],
      ['FindCoordinator', 'billing'],
    ]);
    // a transaction coordinator lookup names no group
    const txn = req('findCoordinator/v1')({ coordinatorKey: 'tx-1', coordinatorType: 1 });
    expect(s.feed('c2s', await bytes(30, txn))?.[0].attributes?.group_id).toBeUndefined();
  });

  it('reads traceparent and sw8 from the first record\'s headers of a Produce request', async () => {
    const tp = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
    const s = new ParserSession(kafkaParser);
    const produce = (headers: Record<string, string>) => req('produce/v3')({ acks: -1, timeout: 30000, topicData: [{ topic: 'orders', partitions: [{ partition: 0, messages: [{ key: 'k1', value: '{"id":1}', timestamp: 1700000000000, headers }] }] }] });
    const [w3c] = s.feed('c2s', await bytes(40, produce({ 'content-type': 'json', traceparent: tp }))) ?? [];
    expect(w3c).toMatchObject({ requestType: 'Produce', endpoint: 'orders-0', traceId: '4bf92f3577b34da6a3ce929d0e0e4736', spanId: '00f067aa0ba902b7' });
    // SkyWalking: 1-base64(trace id)-base64(segment id)-span id-…
    const sw8 = `1-${Buffer.from('a1b2c3d4e5f6').toString('base64')}-${Buffer.from('seg-9').toString('base64')}-3-${Buffer.from('svc').toString('base64')}-${Buffer.from('inst').toString('base64')}-${Buffer.from('/op').toString('base64')}-${Buffer.from('127.0.0.1:9092').toString('base64')}`;
    const [sky] = s.feed('c2s', await bytes(41, produce({ sw8 }))) ?? [];
    expect(sky).toMatchObject({ requestType: 'Produce', traceId: 'a1b2c3d4e5f6', spanId: 'seg-9-3' });
    // without trace headers nothing is invented
    const [plain] = s.feed('c2s', await bytes(42, produce({ other: 'x' }))) ?? [];
    expect(plain.traceId).toBeUndefined();
  });
});

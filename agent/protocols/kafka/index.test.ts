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

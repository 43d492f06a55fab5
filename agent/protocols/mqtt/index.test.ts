import { describe, expect, it } from 'vitest';
import { describeConformance, otherFixtures } from '../conformance.ts';
import { ParserSession, loadFixtures, replay } from '../fixtures.ts';
import { mqttParser } from './index.ts';

const own = loadFixtures('mqtt');
const chunksOf = (name: string) => {
  const f = own.find((x) => x.name === name);
  if (!f) throw new Error(`no fixture ${name}`);
  return f.chunks;
};

describeConformance(mqttParser, { own, others: otherFixtures('mqtt'), fuzzIterations: 1_000_000 });

describe('mqtt against mosquitto', () => {
  for (const v of ['mqttv311', 'mqttv5'] as const) {
    it(`${v}: subscriber sees CONNECT, SUBSCRIBE with its filter, delivered PUBLISHes and its PUBACK`, () => {
      const msgs = replay(mqttParser, chunksOf(`${v}-subscriber`));
      expect(msgs.map((m) => `${m.requestType}:${m.requestId ?? '-'}`)).toEqual(['CONNECT:0', 'CONNACK:0', 'SUBSCRIBE:1', 'SUBACK:1', 'PUBLISH:1', 'PUBACK:1', 'PUBLISH:-', 'DISCONNECT:-']);
      expect(msgs[0]).toMatchObject({ requestDomain: `sub-${v}`, version: v === 'mqttv5' ? '5.0' : '3.1.1' });
      expect(msgs[2]).toMatchObject({ requestResource: 'riptide/orders/#', endpoint: 'riptide/orders/#' });
      expect(msgs[3]).toMatchObject({ msgType: 'response', responseCode: 1, responseStatus: 'ok' }); // granted QoS 1
      expect(msgs[4]).toMatchObject({ msgType: 'request', requestResource: 'riptide/orders/new' });
      expect(msgs[6]).toMatchObject({ requestResource: 'riptide/orders/old', oneWay: true });
    });

    it(`${v}: QoS 1 publisher pairs PUBLISH and PUBACK by packet id`, () => {
      const msgs = replay(mqttParser, chunksOf(`${v}-publisher-qos1`));
      const pub = msgs.find((m) => m.requestType === 'PUBLISH');
      const ack = msgs.find((m) => m.requestType === 'PUBACK');
      expect(pub?.requestId).toBe(ack?.requestId);
      expect(ack).toMatchObject({ msgType: 'response', responseStatus: 'ok' });
    });
  }

  it('reads CONNACK refusals as errors (3.1.1 codes and 5.0 reason codes)', () => {
    const s = new ParserSession(mqttParser);
    expect(s.feed('s2c', new Uint8Array([0x20, 2, 0, 5]))).toMatchObject([{ requestType: 'CONNACK', responseCode: 5, responseStatus: 'client_error' }]);
    const v5 = new ParserSession(mqttParser);
    v5.feed('c2s', new Uint8Array(Buffer.from(own.find((f) => f.name === 'mqttv5-publisher-qos1')?.chunks[0].data ?? [])));
    expect(v5.feed('s2c', new Uint8Array([0x20, 3, 0, 0x88, 0]))).toMatchObject([{ responseCode: 0x88, responseStatus: 'server_error' }]);
  });
});

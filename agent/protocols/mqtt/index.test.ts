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

describe('mqtt: every topic filter, and connections first seen mid-stream', () => {
  for (const v of ['mqttv311', 'mqttv5'] as const) {
    it(`${v}: a SUBSCRIBE with three filters keeps all three`, () => {
      const msgs = replay(mqttParser, chunksOf(`${v}-subscriber-three-filters`));
      expect(msgs.find((m) => m.requestType === 'SUBSCRIBE')).toMatchObject({ requestResource: 'riptide/orders/#,riptide/+/status,riptide/alerts', endpoint: 'riptide/orders/#,riptide/+/status,riptide/alerts' });
    });

    it(`${v}: recognised from the packets after CONNECT (SUBSCRIBE, SUBACK, PUBLISH, PUBACK), without it`, () => {
      const chunks = chunksOf(`${v}-subscriber-three-filters`).slice(2);
      const s = new ParserSession(mqttParser);
      expect(mqttParser.check(chunks[0].data, s.context(chunks[0].dir, chunks[0].data.length))).toBe(true);
      const msgs = replay(mqttParser, chunks);
      expect(msgs.map((m) => `${m.requestType}:${m.requestId ?? '-'}`)).toEqual(['SUBSCRIBE:1', 'SUBACK:1', 'PUBLISH:1', 'PUBACK:1', 'DISCONNECT:-']);
      expect(msgs[0]).toMatchObject({ requestResource: 'riptide/orders/#,riptide/+/status,riptide/alerts', version: v === 'mqttv5' ? '5.0' : '3.1.1' });
      expect(msgs[2]).toMatchObject({ requestResource: 'riptide/alerts' });
    });
  }

  it('recognises an idle connection from a lone PINGREQ or PINGRESP, and refuses loose look-alikes', () => {
    const s = new ParserSession(mqttParser);
    const claims = (bytes: number[], total = bytes.length) => mqttParser.check(new Uint8Array(bytes), s.context('c2s', total));
    expect(claims([0xc0, 0x00])).toBe(true);
    expect(claims([0xd0, 0x00])).toBe(true);
    expect(claims([0x40, 0x02, 0x00, 0x07])).toBe(true); // PUBACK
    expect(claims([0xc0, 0x00], 200)).toBe(false); // the start of something longer
    expect(claims([0xc1, 0x00])).toBe(false); // reserved flags set
    expect(claims([0x40, 0x02, 0x00, 0x00])).toBe(false); // packet id 0
    expect(claims([0x30, 0x05, 0x00, 0x03, 0x61, 0x23, 0x62])).toBe(false); // wildcard in a PUBLISH topic
    expect(claims([0x30, 0x80, 0x00])).toBe(false); // non-minimal remaining length
    expect(claims([0x82, 0x07, 0x00, 0x01, 0x00, 0x02, 0x61, 0x62, 0x03])).toBe(false); // bad subscription options
  });
});

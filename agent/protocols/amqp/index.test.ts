import { describe, expect, it } from 'vitest';
import { describeConformance, otherFixtures } from '../conformance.ts';
import { ParserSession, loadFixtures, replay } from '../fixtures.ts';
import { amqpParser } from './index.ts';

const own = loadFixtures('amqp');
const chunksOf = (name: string) => {
  const f = own.find((x) => x.name === name);
  if (!f) throw new Error(`no fixture ${name}`);
  return f.chunks;
};
const summary = (name: string) => replay(amqpParser, chunksOf(name)).map((m) => `${m.msgType}:${m.requestType}${m.requestId !== undefined ? `#${m.requestId}` : ''}${m.oneWay ? ':one-way' : ''}`);

describeConformance(amqpParser, { own, others: otherFixtures('amqp'), pipelining: false, fuzzIterations: 1_000_000 });

describe('amqp against rabbitmq-server', () => {
  it('reads a publish/get conversation: vhost, queue, routing key, the trace context of the message', () => {
    expect(summary('publish-get')).toEqual([
      'request:Connection.Open#0', 'response:Connection.Open-Ok#0',
      'request:Channel.Open#1', 'response:Channel.Open-Ok#1',
      'request:Queue.Declare#1', 'response:Queue.Declare-Ok#1',
      'request:Basic.Publish:one-way',
      'request:Basic.Get#1', 'response:Basic.Get-Ok#1',
      'request:Basic.Get#1', 'response:Basic.Get-Empty#1',
      'request:Channel.Close#1', 'response:Channel.Close-Ok#1',
      'request:Connection.Close#0', 'response:Connection.Close-Ok#0',
    ]);
    const msgs = replay(amqpParser, chunksOf('publish-get'));
    expect(msgs[0]).toMatchObject({ requestDomain: '/', requestResource: '/' });
    expect(msgs[4]).toMatchObject({ requestResource: 'orders', endpoint: 'orders', requestDomain: '/' });
    expect(msgs[6]).toMatchObject({ requestType: 'Basic.Publish', requestResource: 'orders', endpoint: 'orders', traceId: '4bf92f3577b34da6a3ce929d0e0e4736', spanId: '00f067aa0ba902b7' });
    expect(msgs[8]).toMatchObject({ requestResource: 'orders', traceId: '4bf92f3577b34da6a3ce929d0e0e4736' });
  });

  it('reads consume, deliver (with the publisher’s trace context) and ack', () => {
    const msgs = replay(amqpParser, chunksOf('consume-deliver-ack'));
    expect(msgs.map((m) => m.requestType)).toEqual(expect.arrayContaining(['Basic.Consume', 'Basic.Consume-Ok', 'Basic.Publish', 'Basic.Deliver', 'Basic.Ack']));
    const deliver = msgs.find((m) => m.requestType === 'Basic.Deliver');
    expect(deliver).toMatchObject({ msgType: 'request', oneWay: true, requestResource: 'jobs', traceId: '4bf92f3577b34da6a3ce929d0e0e4736' });
    expect(msgs.find((m) => m.requestType === 'Basic.Consume')).toMatchObject({ requestResource: 'jobs', requestId: 1 });
  });

  it('takes a channel closed with 404 as the answer to the passive Queue.Declare, without its Close-Ok', () => {
    expect(summary('passive-declare-not-found').slice(4, 8)).toEqual(['request:Queue.Declare#1', 'response:Channel.Close#1', 'request:Channel.Open#2', 'response:Channel.Open-Ok#2']);
    const err = replay(amqpParser, chunksOf('passive-declare-not-found'))[5];
    expect(err).toMatchObject({ responseCode: 404, responseStatus: 'client_error', responseException: "NOT_FOUND - no queue 'missing' in vhost '/'" });
  });

  it('reports a refused login as a Connection.Close 403 response', () => {
    expect(replay(amqpParser, chunksOf('login-refused'))).toEqual([
      { l7Protocol: 'amqp', msgType: 'response', requestType: 'Connection.Close', requestId: 0, responseCode: 403, responseStatus: 'client_error', responseException: expect.stringMatching(/^ACCESS_REFUSED - Login was refused/) as string },
    ]);
  });

  it('recognises a connection mid-stream from its next method frame (a publish) or a heartbeat', () => {
    const chunks = chunksOf('publish-get');
    const s = new ParserSession(amqpParser, 'client', 'tcp');
    const publish = chunks[10].data;
    expect(amqpParser.check(publish, s.context('c2s', publish.length))).toBe(true);
    const heartbeat = new Uint8Array([8, 0, 0, 0, 0, 0, 0, 0xce]);
    expect(amqpParser.check(heartbeat, s.context('c2s', 8))).toBe(true);
    const later = replay(amqpParser, chunks.slice(10));
    expect(later.map((m) => m.requestType)).toEqual(['Basic.Publish', 'Basic.Get', 'Basic.Get-Ok', 'Basic.Get', 'Basic.Get-Empty', 'Channel.Close', 'Channel.Close-Ok', 'Connection.Close', 'Connection.Close-Ok']);
    expect(later[0].traceId).toBe('4bf92f3577b34da6a3ce929d0e0e4736');
  });

  it('refuses a frame whose end byte is wrong and an unknown method', () => {
    const s = new ParserSession(amqpParser, 'client', 'tcp');
    const open = new Uint8Array(chunksOf('publish-get')[6].data);
    open[open.length - 1] = 0;
    expect(amqpParser.check(open, s.context('c2s', open.length))).toBe(false);
    const unknown = new Uint8Array(chunksOf('publish-get')[6].data);
    unknown[8] = 0x63;
    expect(amqpParser.check(unknown, s.context('c2s', unknown.length))).toBe(false);
  });
});

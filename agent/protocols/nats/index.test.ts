import { describe, expect, it } from 'vitest';
import { describeConformance, otherFixtures } from '../conformance.ts';
import { ParserSession, loadFixtures, replay } from '../fixtures.ts';
import { natsParser, subjectEndpoint } from './index.ts';

const own = loadFixtures('nats');
const chunksOf = (name: string) => {
  const f = own.find((x) => x.name === name);
  if (!f) throw new Error(`no fixture ${name}`);
  return f.chunks;
};
const summary = (msgs: ReturnType<typeof replay>) => msgs.map((m) => (m.msgType === 'request' ? [m.requestType, m.requestResource, m.oneWay ? '(one-way)' : undefined].filter((x) => x !== undefined).join(' ') : `${m.responseStatus}:${m.attributes?.result ?? ''}`));

describeConformance(natsParser, { own, others: otherFixtures('nats'), fuzzIterations: 1_000_000 });

describe('nats against nats-server 2.9 (hand-written raw-socket client)', () => {
  it('verbose: CONNECT, SUB and PUB are answered by +OK; MSG is a one-way delivery; an unknown operation gets -ERR', () => {
    const msgs = replay(natsParser, chunksOf('raw-verbose-pub-sub'));
    expect(summary(msgs)).toEqual([
      'INFO (one-way)', 'CONNECT', 'ok:+OK', 'PING', 'ok:PONG', 'SUB orders.created', 'ok:+OK', 'PUB orders.created', 'ok:+OK', 'MSG orders.created (one-way)', 'BOGUS', 'client_error:-ERR',
    ]);
    expect(msgs.at(-1)?.responseException).toBe('Unknown Protocol Operation');
    expect(msgs[0].version).toBe('2.9.10');
    expect(JSON.stringify(msgs)).not.toContain('hello');
  });

  it('not verbose (what client libraries send): PUB/SUB/UNSUB are one-way, PING pairs with PONG, trace context from HPUB headers, reply-to, queue group', () => {
    const msgs = replay(natsParser, chunksOf('raw-headers-request-reply'), { captureLimit: 1024 });
    expect(summary(msgs)).toEqual([
      'INFO (one-way)', 'CONNECT (one-way)', 'PING', 'ok:PONG',
      'SUB orders.* (one-way)', 'SUB _INBOX.Zx81kqVb.* (one-way)', 'PING', 'ok:PONG',
      'HPUB orders.paid (one-way)', 'HMSG orders.paid (one-way)', 'PUB _INBOX.Zx81kqVb.1 (one-way)', 'MSG _INBOX.Zx81kqVb.1 (one-way)',
      'PUB orders.big (one-way)', 'MSG orders.big (one-way)', 'UNSUB orders.* (one-way)', 'PING', 'ok:PONG', 'client_error:-ERR',
    ]);
    const hpub = msgs.find((m) => m.requestType === 'HPUB');
    expect(hpub).toMatchObject({ traceId: '4bf92f3577b34da6a3ce929d0e0e4736', spanId: '00f067aa0ba902b7', attributes: { reply_to: '_INBOX.Zx81kqVb.1' } });
    expect(msgs.find((m) => m.requestType === 'HMSG')).toMatchObject({ traceId: '4bf92f3577b34da6a3ce929d0e0e4736', attributes: { sid: '1', reply_to: '_INBOX.Zx81kqVb.1' } });
    expect(msgs[4].attributes).toEqual({ sid: '1', queue: 'workers' });
    expect(msgs[1].attributes).toEqual({ client: 'orders-svc', lang: 'raw' });
    expect(msgs.find((m) => m.requestType === 'MSG' && m.requestResource === 'orders.big')).toMatchObject({ truncated: true, requestLength: 3025 });
    expect(msgs.at(-1)).toMatchObject({ responseStatus: 'client_error', responseException: 'Maximum Payload Violation' });
    expect(JSON.stringify(msgs)).not.toContain('"id":7');
  });

  it('inbox subjects fold to one endpoint', () => {
    expect(subjectEndpoint('_INBOX.Zx81kqVb.1')).toBe('_INBOX.*');
    expect(subjectEndpoint('orders.paid')).toBe('orders.paid');
  });

  it('server-side conditions are server errors', () => {
    const s = new ParserSession(natsParser);
    s.feed('c2s', new TextEncoder().encode('SUB a 1\r\n'));
    expect(s.feed('s2c', new TextEncoder().encode("-ERR 'Slow Consumer'\r\n"))).toMatchObject([{ responseStatus: 'server_error', responseException: 'Slow Consumer' }]);
  });
});

describe('nats first seen mid-stream', () => {
  for (const f of own) {
    it(`${f.name}: recognised from any later read of either side that says something specific`, () => {
      for (let i = 0; i < f.chunks.length; i++) {
        const c = f.chunks[i];
        const s = new ParserSession(natsParser);
        const head = Buffer.from(c.data).toString('latin1');
        // +OK, PING, PONG (Redis says them too) and an unknown verb are not claimed; a PUB larger than max_payload is no PUB.
        const weak = /^(\+OK|PING|PONG|BOGUS)\r\n$/.test(head) || head.startsWith('PUB orders.paid 99999999');
        expect(natsParser.check(c.data, s.context(c.dir, c.data.length)), `${f.name} read ${i}: ${head.slice(0, 30)}`).toBe(!weak);
      }
    });
  }

  it('on a connection first seen after CONNECT, verbose is learnt from the first +OK', () => {
    const s = new ParserSession(natsParser);
    const enc = new TextEncoder();
    expect(s.feed('c2s', enc.encode('SUB a 1\r\n'))).toMatchObject([{ requestType: 'SUB', oneWay: true }]);
    s.feed('s2c', enc.encode('+OK\r\n'));
    expect(s.feed('c2s', enc.encode('PUB a 1\r\nx\r\n'))?.[0].oneWay).toBeUndefined();
  });
});

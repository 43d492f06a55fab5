import { describe, expect, it } from 'vitest';
import { describeConformance, otherFixtures } from '../conformance.ts';
import { ParserSession, loadFixtures, replay } from '../fixtures.ts';
import { tlsParser } from './index.ts';

const own = loadFixtures('tls');
const chunksOf = (name: string) => {
  const f = own.find((x) => x.name === name);
  if (!f) throw new Error(`no fixture ${name}`);
  return f.chunks;
};

describeConformance(tlsParser, { own, others: otherFixtures('tls'), fuzzIterations: 1_000_000 });

describe('tls handshake metadata, recorded from curl / openssl s_client against nginx', () => {
  it('TLS 1.3: SNI, offered versions and ALPN from the ClientHello; the version chosen from supported_versions; nothing read past the ServerHello', () => {
    const msgs = replay(tlsParser, chunksOf('curl-tls13-h2'));
    expect(msgs).toEqual([
      { l7Protocol: 'tls', msgType: 'request', requestType: 'ClientHello', version: 'TLSv1.3', requestLength: 517, requestDomain: 'shop.riptide.test', requestResource: 'shop.riptide.test', endpoint: 'shop.riptide.test', attributes: { versions: 'TLSv1.3,TLSv1.2,TLSv1.1,TLSv1.0', alpn: 'h2,http/1.1' } },
      { l7Protocol: 'tls', msgType: 'response', responseStatus: 'ok', version: 'TLSv1.3', responseLength: 127, attributes: { cipher: 'TLS_AES_256_GCM_SHA384' } },
    ]);
  });

  it('TLS 1.2: the ALPN protocol chosen is in the ServerHello; the encrypted Finished and the encrypted close_notify alert are not read', () => {
    const msgs = replay(tlsParser, chunksOf('curl-tls12-http1'));
    expect(msgs.map((m) => `${m.msgType}:${m.requestType ?? m.responseStatus}:${m.version}`)).toEqual(['request:ClientHello:TLSv1.2', 'response:ok:TLSv1.2']);
    expect(msgs[1].attributes).toEqual({ cipher: 'TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384', alpn: 'http/1.1' });
  });

  it('a server alert answers the ClientHello as an error with its description', () => {
    const msgs = replay(tlsParser, chunksOf('s-client-no-alpn-match'));
    expect(msgs[1]).toEqual({ l7Protocol: 'tls', msgType: 'response', responseStatus: 'client_error', responseCode: 120, responseException: 'no_application_protocol', attributes: { alert: 'no_application_protocol', level: 'fatal' }, responseLength: 7 });
  });

  it('an alert from the client (it refused the certificate) is a one-way Alert after the ServerHello, from either end of the socket', () => {
    for (const perspective of ['client', 'server'] as const) {
      const msgs = replay(tlsParser, chunksOf('curl-tls12-unknown-ca'), { perspective });
      expect(msgs.at(-1)).toMatchObject({ msgType: 'request', requestType: 'Alert', requestResource: 'unknown_ca', oneWay: true, attributes: { alert: 'unknown_ca', level: 'fatal' } });
    }
  });

  it('a server that reads the 5-byte record header and the body apart gives the same ClientHello', () => {
    const ch = chunksOf('curl-tls13-h2')[0].data;
    const s = new ParserSession(tlsParser, 'server');
    expect(s.feed('c2s', ch.subarray(0, 5))).toEqual([]);
    expect(s.feed('c2s', ch.subarray(5))).toMatchObject([{ requestType: 'ClientHello', requestDomain: 'shop.riptide.test' }]);
  });

  it('a ClientHello cut by the capture limit still gives the server name', () => {
    const ch = chunksOf('curl-tls13-h2')[0].data;
    const s = new ParserSession(tlsParser);
    expect(s.feed('c2s', ch, 300)).toMatchObject([{ requestType: 'ClientHello', requestDomain: 'shop.riptide.test', truncated: true }]);
  });
});

describe('tls inference', () => {
  it('claims hellos and lone plaintext alerts, never a read of application data or ChangeCipherSpec (a connection first seen after its handshake)', () => {
    for (const f of own) {
      for (const [i, c] of f.chunks.entries()) {
        const s = new ParserSession(tlsParser);
        const hello = c.data[0] === 22 && (c.data[5] === 1 || c.data[5] === 2);
        const alert = c.data[0] === 21 && c.data.length === 7;
        expect(tlsParser.check(c.data, s.context(c.dir, c.data.length)), `${f.name} read ${i}`).toBe(hello || alert);
      }
    }
  });
});

import { describe, expect, it } from 'vitest';
import { describeConformance, otherFixtures } from '../conformance.ts';
import { ParserSession, loadFixtures, replay } from '../fixtures.ts';
import { http1Parser } from './index.ts';

const own = loadFixtures('http1');
const fixture = (name: string) => {
  const f = own.find((x) => x.name === name);
  if (!f) throw new Error(`no fixture ${name}`);
  return f;
};

describeConformance(http1Parser, { own, others: otherFixtures('http1'), fuzzIterations: 1_000_000 });

describe('http1 against nginx', () => {
  it('reads keep-alive requests, statuses and every trace-context header', () => {
    const msgs = replay(http1Parser, fixture('nginx-keepalive').chunks, { extraHeaders: ['x-tenant'] });
    const req = msgs.filter((m) => m.msgType === 'request');
    const resp = msgs.filter((m) => m.msgType === 'response');
    expect(req.map((m) => `${m.requestType} ${m.requestResource}`)).toEqual(['GET /?q=1', 'GET /missing', 'POST /fail', 'HEAD /static/big.txt', 'GET /static/big.txt', 'PUT /api/items']);
    expect(resp.map((m) => m.responseCode)).toEqual([200, 404, 503, 200, 200, 201]);
    expect(resp.map((m) => m.responseStatus)).toEqual(['ok', 'client_error', 'server_error', 'ok', 'ok', 'ok']);
    expect(req[0]).toMatchObject({ l7Protocol: 'http1', requestDomain: `127.0.0.1:${req[0].requestDomain?.split(':')[1]}`, endpoint: '/', traceId: '4bf92f3577b34da6a3ce929d0e0e4736', spanId: '00f067aa0ba902b7', xRequestId: 'req-1', attributes: { 'x-tenant': 'acme' }, version: '1.1' });
    expect(req[1]).toMatchObject({ traceId: '80f198ee56343ba864fe8b2a57d3eff7', spanId: 'e457b5a2e4d86bd1', parentSpanId: '05e3ac9a4f6e3b90' });
    expect(req[2]).toMatchObject({ traceId: '463ac35c9f6413ad48485a3953bb6124', spanId: 'a2fb4a1d1a96d312', parentSpanId: '0020000000000001' });
    expect(req[3]).toMatchObject({ traceId: '5af7183fb1d4cf5f', spanId: '6a8d3c2b1f0e4d5c' });
    expect(req[4]).toMatchObject({ traceId: '2a4ce4ef30b642d896c3a6f7dcd22bf4.123.1640', spanId: '2a4ce4ef30b642d896c3a6f7dcd22bf4.123.1641-0' });
    expect(resp[2]).toMatchObject({ responseException: 'Service Temporarily Unavailable' });
    expect(resp[4].responseLength).toBe(4800);
  });

  it('reads pipelined requests from one write and their responses', () => {
    const msgs = replay(http1Parser, fixture('nginx-pipelined').chunks);
    expect(msgs.filter((m) => m.msgType === 'request').map((m) => [m.requestDomain, m.endpoint])).toEqual([
      ['pipelined.test', '/'],
      ['pipelined.test', '/missing'],
      ['pipelined.test', '/api/x'],
    ]);
    expect(msgs.filter((m) => m.msgType === 'response').map((m) => m.responseCode)).toEqual([200, 404, 201]);
  });

  it('skips 100 Continue and follows chunked bodies across writes', () => {
    const msgs = replay(http1Parser, fixture('node-chunked-continue').chunks);
    expect(msgs.map((m) => `${m.msgType} ${m.requestType ?? m.responseCode}`)).toEqual(['request POST', 'response 200', 'request GET', 'response 200']);
  });

  it('reports a response cut by the capture limit and stays in step after it', () => {
    const msgs = replay(http1Parser, fixture('nginx-keepalive').chunks, { captureLimit: 1024 });
    expect(msgs.filter((m) => m.msgType === 'response').map((m) => m.responseCode)).toEqual([200, 404, 503, 200, 200, 201]);
  });

  it('keeps a head split inside the request line', () => {
    const s = new ParserSession(http1Parser);
    const enc = new TextEncoder();
    expect(s.feed('c2s', enc.encode('GE'))).toEqual([]);
    expect(s.feed('c2s', enc.encode('T /a HTTP/1.1\r\nHost: x\r\n'))).toEqual([]);
    expect(s.feed('c2s', enc.encode('\r\n'))).toMatchObject([{ requestType: 'GET', requestResource: '/a', requestDomain: 'x' }]);
  });

  it('recognises a request whose line is longer than the capture limit', () => {
    const s = new ParserSession(http1Parser);
    const line = new TextEncoder().encode(`GET /${'a'.repeat(2000)} HTTP/1.1\r\nHost: x\r\n\r\n`);
    expect(http1Parser.check(line.subarray(0, 1024), s.context('c2s', line.length))).toBe(true);
    expect(s.feed('c2s', line, 1024)).toMatchObject([{ requestType: 'GET', truncated: true }]);
  });

  it('does not claim bodies: a continuation of a known stream yields nothing, not null', () => {
    const s = new ParserSession(http1Parser);
    const enc = new TextEncoder();
    s.feed('c2s', enc.encode('POST /u HTTP/1.1\r\nContent-Length: 10\r\n\r\n'));
    expect(s.feed('c2s', enc.encode('0123456789'))).toEqual([]);
    expect(s.feed('c2s', enc.encode('GET /next HTTP/1.1\r\n\r\n'))).toMatchObject([{ requestResource: '/next' }]);
  });
});

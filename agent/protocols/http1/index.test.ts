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

describe('http1 header scanning', () => {
  const enc = new TextEncoder();
  const one = (text: string, extraHeaders: readonly string[] = [], dir: 'c2s' | 's2c' = 'c2s') => new ParserSession(http1Parser, 'client', 'tcp', extraHeaders).feed(dir, enc.encode(text));

  it('matches header names in any case and keeps the first of repeated headers', () => {
    expect(one('GET /x HTTP/1.1\r\nhOsT: first\r\nHOST: second\r\nX-REQUEST-id: r1\r\nx-Tenant: t\r\n\r\n', ['x-tenant'])).toEqual([
      { l7Protocol: 'http1', msgType: 'request', requestType: 'GET', requestResource: '/x', endpoint: '/x', version: '1.1', requestDomain: 'first', xRequestId: 'r1', attributes: { 'x-tenant': 't' } },
    ]);
  });

  it('trims values like String.prototype.trim, and reads only the first 1024 bytes of one', () => {
    const [m] = one(`GET / HTTP/1.1\r\nHost: \t\v\f h \t\r\nX-Request-ID: ${'r'.repeat(2000)}\r\n\r\n`) ?? [];
    expect(m.requestDomain).toBe('h');
    expect(m.xRequestId).toBe('r'.repeat(128));
    // Non-ASCII whitespace (U+00A0) is trimmed too, as the decoded string's trim() did.
    expect(one('GET / HTTP/1.1\r\nHost: \u00a0h\u00e9\u00a0\r\n\r\n')?.[0].requestDomain).toBe('hé');
  });

  it('ignores obs-fold continuation lines and names with a space before the colon', () => {
    expect(one('GET / HTTP/1.1\r\nHost: a\r\n  b\r\nX-Request-ID : nope\r\nX-Tenant: one\r\n\ttwo: three\r\n\r\n', ['x-tenant'])?.[0]).toMatchObject({ requestDomain: 'a', attributes: { 'x-tenant': 'one' } });
    expect(one('GET / HTTP/1.1\r\nHost: a\r\nX-Request-ID : nope\r\n\r\n')?.[0].xRequestId).toBeUndefined();
  });

  it('reads Content-Length only when it is 1 to 15 digits, and Transfer-Encoding chunked in any case', () => {
    expect(one('HTTP/1.1 200 OK\r\nContent-Length:  42 \r\n\r\n', [], 's2c')?.[0].responseLength).toBe(42);
    expect(one('HTTP/1.1 200 OK\r\nContent-Length: 4 2\r\n\r\n', [], 's2c')?.[0].responseLength).toBeUndefined();
    expect(one('HTTP/1.1 200 OK\r\nContent-Length: 1234567890123456\r\n\r\n', [], 's2c')?.[0].responseLength).toBeUndefined();
    const s = new ParserSession(http1Parser);
    expect(s.feed('s2c', enc.encode('HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, CHUNKED\r\nContent-Length: 99\r\n\r\n3\r\nabc\r\n0\r\n\r\nHTTP/1.1 404 Not Found\r\n\r\n'))?.map((m) => m.responseCode)).toEqual([200, 404]);
  });

  it('copies configured extras even when they name a header the parser reads itself', () => {
    expect(one('POST /p?q=1 HTTP/1.0\r\nHost: h\r\nContent-Length: 0\r\nTransfer-Encoding: identity\r\n\r\n', ['host', 'content-length', 'transfer-encoding'])?.[0]).toEqual({
      l7Protocol: 'http1', msgType: 'request', requestType: 'POST', requestResource: '/p?q=1', endpoint: '/p', version: '1.0', requestDomain: 'h', requestLength: 0,
      attributes: { host: 'h', 'content-length': '0', 'transfer-encoding': 'identity' },
    });
  });

  it('keeps non-ASCII targets and limits the endpoint to 256 characters', () => {
    expect(one('GET /caf\u00e9?x=\u00e9 HTTP/1.1\r\n\r\n')?.[0]).toMatchObject({ requestResource: '/café?x=é', endpoint: '/café' });
    const long = `/${'é'.repeat(300)}?q`;
    expect(one(`GET ${long} HTTP/1.1\r\n\r\n`)?.[0]).toMatchObject({ requestResource: long.slice(0, 512), endpoint: long.slice(0, 256) });
    expect(one(`GET /${'a'.repeat(400)}?q HTTP/1.1\r\n\r\n`)?.[0].endpoint).toBe(`/${'a'.repeat(255)}`);
    // The same target twice gives equal strings (interned), a different one does not leak the first.
    expect(one('GET /same HTTP/1.1\r\n\r\n')?.[0].requestResource).toBe('/same');
    expect(one('GET /samf HTTP/1.1\r\n\r\n')?.[0].requestResource).toBe('/samf');
  });

  it('completes a head whose header lines are split across reads', () => {
    const s = new ParserSession(http1Parser, 'client', 'tcp', ['x-tenant']);
    expect(s.feed('c2s', enc.encode('GET /a HTTP/1.1\r\nHo'))).toEqual([]);
    expect(s.feed('c2s', enc.encode('st: split\r\nTraceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f0'))).toEqual([]);
    expect(s.feed('c2s', enc.encode('67aa0ba902b7-01\r\nX-Ten'))).toEqual([]);
    expect(s.feed('c2s', enc.encode('ant: t\r\n\r\n'))).toMatchObject([{ requestDomain: 'split', traceId: '4bf92f3577b34da6a3ce929d0e0e4736', spanId: '00f067aa0ba902b7', attributes: { 'x-tenant': 't' } }]);
  });

  it('reports a head cut by the capture limit with the headers it holds, not the cut one', () => {
    const full = enc.encode('GET /t HTTP/1.1\r\nHost: cut.test\r\nX-Request-ID: abcdef\r\n\r\n');
    const limit = full.indexOf(0x62 /* b */, 40); // inside the X-Request-ID value
    const s = new ParserSession(http1Parser);
    const [m] = s.feed('c2s', full, limit) ?? [];
    expect(m).toMatchObject({ requestDomain: 'cut.test', truncated: true });
    expect(m.xRequestId).toBeUndefined();
    expect(new ParserSession(http1Parser).feed('s2c', enc.encode('HTTP/1.1 500 Internal Server Error\r\nContent-Le'), 30)).toMatchObject([{ responseCode: 500, responseException: 'Internal Server Error'.slice(0, 30 - 13), truncated: true }]);
  });
});

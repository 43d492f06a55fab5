import { describe, expect, it } from 'vitest';
import { describeConformance, otherFixtures } from '../conformance.ts';
import { ParserSession, loadFixtures, replay } from '../fixtures.ts';
import { HpackDecoder } from './hpack.ts';
import { huffmanCode, huffmanDecode } from './huffman.ts';
import { http2Parser } from './index.ts';

const own = [...loadFixtures('http2'), ...loadFixtures('grpc')];
const chunksOf = (name: string) => {
  const f = own.find((x) => x.name === name);
  if (!f) throw new Error(`no fixture ${name}`);
  return f.chunks;
};
const hex = (s: string) => new Uint8Array(Buffer.from(s.replace(/\s+/g, ''), 'hex'));

describeConformance(http2Parser, { own, others: otherFixtures('http2', 'grpc'), fuzzIterations: 1_000_000 });

describe('HPACK', () => {
  it('derives the RFC 7541 Huffman code from its lengths', () => {
    expect(huffmanCode(0x30)).toEqual([0x0, 5]); // '0'
    expect(huffmanCode(0x20)).toEqual([0x14, 6]); // ' '
    expect(huffmanCode(0x7f)).toEqual([0xffffffc, 28]);
    expect(huffmanCode(256)).toEqual([0x3fffffff, 30]); // EOS
  });

  it('decodes the RFC 7541 C.4 examples with a shared dynamic table', () => {
    const d = new HpackDecoder();
    const r1 = d.decode(hex('8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff'), 0, 17);
    expect(r1).toEqual({ ok: true, unresolved: 0, headers: [[':method', 'GET'], [':scheme', 'http'], [':path', '/'], [':authority', 'www.example.com']] });
    const b2 = hex('8286 84be 5886 a8eb 1064 9cbf');
    expect(d.decode(b2, 0, b2.length).headers).toEqual([[':method', 'GET'], [':scheme', 'http'], [':path', '/'], [':authority', 'www.example.com'], ['cache-control', 'no-cache']]);
    const b3 = hex('8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf');
    expect(d.decode(b3, 0, b3.length).headers).toEqual([[':method', 'GET'], [':scheme', 'https'], [':path', '/index.html'], [':authority', 'www.example.com'], ['custom-key', 'custom-value']]);
    expect(d.tableSize).toBe(164);
  });

  it('decodes what the code encodes, for random strings of every byte value', () => {
    let seed = 12345;
    const rnd = (): number => (seed = (seed * 1103515245 + 12345) & 0x7fffffff);
    for (let n = 0; n < 3000; n++) {
      const len = rnd() % 48;
      const syms = Array.from({ length: len }, () => (rnd() % 4 === 0 ? rnd() % 256 : 0x20 + (rnd() % 95)));
      let bits = '';
      for (const s of syms) {
        const [code, l] = huffmanCode(s);
        bits += code.toString(2).padStart(l, '0');
      }
      while (bits.length % 8) bits += '1';
      const bytes = new Uint8Array(bits.length / 8);
      for (let i = 0; i < bytes.length; i++) bytes[i] = parseInt(bits.slice(i * 8, i * 8 + 8), 2);
      expect(huffmanDecode(bytes, 0, bytes.length)).toBe(String.fromCharCode(...syms));
    }
  });

  it('evicts the oldest dynamic entries when the table is full', () => {
    const d = new HpackDecoder();
    // 0x40 = literal with incremental indexing, new name; 200 entries of ~100 bytes overflow 4096.
    for (let i = 0; i < 200; i++) {
      const name = `x-h${i}`;
      const value = 'v'.repeat(60);
      const block = new Uint8Array([0x40, name.length, ...Buffer.from(name), value.length, ...Buffer.from(value)]);
      expect(d.decode(block, 0, block.length).ok).toBe(true);
    }
    expect(d.tableSize).toBeLessThanOrEqual(4096);
    // Index 62 is the newest entry.
    expect(d.decode(new Uint8Array([0x80 | 62]), 0, 1).headers).toEqual([['x-h199', 'v'.repeat(60)]]);
  });

  it('rejects EOS and bad padding in Huffman strings', () => {
    expect(huffmanDecode(hex('ffffffff'), 0, 4)).toBeUndefined();
    expect(huffmanDecode(hex('f1e3c2e5f23a6ba0ab90f4ff'), 0, 12)).toBe('www.example.com');
  });
});

describe('http2 against node http2', () => {
  it('reads streams, methods, authority, paths and trace context; pairs by stream id', () => {
    const msgs = replay(http2Parser, chunksOf('node-h2c'));
    const req = msgs.filter((m) => m.msgType === 'request');
    const resp = msgs.filter((m) => m.msgType === 'response');
    expect(req.map((m) => [m.requestId, m.requestType, m.requestResource])).toEqual([
      [1, 'GET', '/hello?x=1'],
      [3, 'POST', '/orders'],
      [5, 'GET', '/missing'],
      [7, 'GET', '/hello?x=2'],
    ]);
    expect(req[0]).toMatchObject({ l7Protocol: 'http2', endpoint: '/hello', traceId: '0af7651916cd43dd8448eb211c80319c', spanId: 'b7ad6b7169203331', xRequestId: 'h2-req-1' });
    // The 4th request reuses dynamic-table entries set by the 1st: still decoded.
    expect(req[3]).toMatchObject({ spanId: 'b7ad6b7169203333', xRequestId: 'h2-req-4' });
    expect(req[3].requestDomain).toBe(req[0].requestDomain);
    expect(Object.fromEntries(resp.map((m) => [m.requestId, m.responseCode]))).toEqual({ 1: 200, 3: 200, 5: 404, 7: 200 });
    expect(resp.find((m) => m.requestId === 5)?.responseStatus).toBe('client_error');
  });

  it('reports gRPC calls with grpc-status from the trailers', () => {
    const msgs = replay(http2Parser, chunksOf('grpc-js-unary'));
    const req = msgs.filter((m) => m.msgType === 'request');
    const resp = msgs.filter((m) => m.msgType === 'response');
    expect(req.every((m) => m.l7Protocol === 'grpc' && m.requestResource === '/riptide.Greeter/SayHello')).toBe(true);
    expect(req[0].attributes).toEqual({ 'rpc.service': 'riptide.Greeter' });
    expect(resp.map((m) => [m.l7Protocol, m.responseCode, m.responseStatus, m.responseException])).toEqual([
      ['grpc', 0, 'ok', undefined],
      ['grpc', 5, 'client_error', 'no such person'],
      ['grpc', 13, 'server_error', 'boom'],
      ['grpc', 0, 'ok', undefined],
    ]);
  });

  it('keeps separate HPACK tables for the two directions of a socket', () => {
    const s = new ParserSession(http2Parser);
    const msgs = chunksOf('node-h2c').flatMap((c) => s.feed(c.dir, c.data) ?? []);
    expect(msgs).toHaveLength(8);
  });
});

describe('HTTP/2 connections first seen mid-stream (dynamic-table entries never seen)', () => {
  it('HPACK skips a field indexed into an unseen dynamic-table entry and decodes the rest of the block', () => {
    // 0xbe: dynamic index 62 (never seen); 0x82: :method GET; 0x44 + "/x": literal :path with indexing;
    // 0x7f 0x00 "v": literal with indexing, name from dynamic index 63+… (unseen).
    const d = new HpackDecoder();
    const block = new Uint8Array([0xbe, 0x82, 0x44, 0x02, 0x2f, 0x78, 0x7f, 0x01, 0x01, 0x76, 0x87]);
    const r = d.decode(block, 0, block.length);
    expect(r).toEqual({ headers: [[':method', 'GET'], [':path', '/x'], [':scheme', 'https']], ok: true, unresolved: 2 });
    // The two indexed literals took their places in the table: index 62 is the newest (the unnamed one).
    const again = d.decode(new Uint8Array([0xbf]), 0, 1);
    expect(again.headers).toEqual([[':path', '/x']]);
  });

  it('a grpc-js channel first seen after its first call: later calls are gRPC with their path, paired by stream', () => {
    const chunks = chunksOf('grpc-js-unary').slice(6);
    const s = new ParserSession(http2Parser);
    expect(http2Parser.check(chunks[0].data, s.context(chunks[0].dir, chunks[0].data.length))).toBe(true);
    const msgs = replay(http2Parser, chunks);
    expect(msgs.map((m) => `${m.l7Protocol}:${m.msgType}:${m.requestId}`)).toEqual(['grpc:request:3', 'grpc:response:3', 'grpc:request:5', 'grpc:response:5', 'grpc:request:7', 'grpc:response:7']);
    expect(msgs[0]).toMatchObject({ requestType: 'POST', requestResource: '/riptide.Greeter/SayHello', attributes: { 'rpc.service': 'riptide.Greeter' } });
    // What only the unseen table could say is marked, not guessed.
    expect(msgs[1]).toMatchObject({ responseStatus: 'unknown' });
    expect(msgs[1].attributes?.['hpack.unresolved']).toMatch(/^\d+$/);
  });
});

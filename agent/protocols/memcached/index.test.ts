import { describe, expect, it } from 'vitest';
import { describeConformance, otherFixtures } from '../conformance.ts';
import { ParserSession, loadFixtures, replay } from '../fixtures.ts';
import { memcachedParser } from './index.ts';

const own = loadFixtures('memcached');
const chunksOf = (name: string) => {
  const f = own.find((x) => x.name === name);
  if (!f) throw new Error(`no fixture ${name}`);
  return f.chunks;
};
const summary = (msgs: ReturnType<typeof replay>) => msgs.map((m) => (m.msgType === 'request' ? `${m.requestType} ${m.requestResource ?? ''}`.trim() : `${m.responseStatus}:${m.attributes?.result ?? ''}`));

describeConformance(memcachedParser, { own, others: otherFixtures('memcached'), fuzzIterations: 1_000_000 });

describe('memcached text protocol against memcached 1.6', () => {
  it('reads command and key, never the value, and pairs every reply', () => {
    expect(summary(replay(memcachedParser, chunksOf('text-set-get-quit')))).toEqual([
      'set foo', 'ok:STORED', 'get foo', 'ok:HIT', 'incr counter', 'ok:NOT_FOUND', 'delete foo', 'ok:DELETED', 'quit',
    ]);
  });

  it('pipelined and noreply commands, multi-get, cas, errors, a value larger than the capture limit, meta commands', () => {
    const msgs = replay(memcachedParser, chunksOf('text-multiget-cas-errors'), { captureLimit: 1024 });
    expect(summary(msgs)).toEqual([
      'set a', 'set b', 'ok:STORED', 'gets a', 'ok:HIT', 'cas a', 'ok:EXISTS', 'touch a', 'ok:TOUCHED', 'set n', 'ok:STORED', 'incr n', 'ok:NUMBER',
      'set big', 'ok:STORED', 'get big', 'ok:HIT', 'incr a', 'client_error:CLIENT_ERROR', 'bogus', 'client_error:ERROR', 'ms m', 'ok:HD', 'mg m', 'ok:HIT', 'mg absent', 'ok:EN', 'version', 'ok:VERSION',
    ]);
    expect(msgs[1].oneWay).toBe(true); // set … noreply: no reply comes
    expect(msgs[3].attributes).toEqual({ keys: '3' });
    expect(msgs.find((m) => m.responseStatus === 'client_error')?.responseException).toBe('cannot increment or decrement non-numeric value');
    expect(JSON.stringify(msgs)).not.toContain('vvvv');
  });

  it('an unknown command answers ERROR, a client error (recorded: `bogus`)', () => {
    const chunks = chunksOf('text-multiget-cas-errors');
    const i = chunks.findIndex((c) => Buffer.from(c.data).toString('latin1') === 'ERROR\r\n');
    const s = new ParserSession(memcachedParser);
    expect(s.feed('s2c', chunks[i].data)).toMatchObject([{ msgType: 'response', responseStatus: 'client_error', responseException: 'ERROR' }]);
  });
});

describe('memcached binary protocol against memcached 1.6', () => {
  it('reads opcode, key and status; a miss is an answer, not an error; quiet opcodes are one-way', () => {
    const msgs = replay(memcachedParser, chunksOf('binary-set-get-miss-quiet'));
    expect(msgs.map((m) => (m.msgType === 'request' ? `${m.requestType} ${m.requestResource ?? ''}`.trim() : `${m.responseCode}:${m.responseStatus}`))).toEqual([
      'set user:1', '0:ok', 'get user:1', '0:ok', 'get user:404', '1:ok', 'getq user:405', 'noop', '0:ok', 'incr user:1', '6:client_error', 'delete user:1', '0:ok', 'version', '0:ok', 'quit', '0:ok',
    ]);
    expect(msgs.find((m) => m.requestType === 'getq')?.oneWay).toBe(true);
    expect(msgs.find((m) => m.responseCode === 6)?.responseException).toBe('Non-numeric server-side value for incr or decr');
    expect(JSON.stringify(msgs)).not.toContain('"n":1');
  });
});

describe('memcached first seen mid-stream', () => {
  for (const f of own) {
    it(`${f.name}: recognised from any later read of either side`, () => {
      for (let i = 0; i < f.chunks.length; i++) {
        const c = f.chunks[i];
        const s = new ParserSession(memcachedParser);
        const head = Buffer.from(c.data).toString('latin1');
        // Reads that say nothing specific (quit, END, a bare number, ERROR, OK-style meta) are not claimed.
        const weak = /^(quit|version|bogus)\r\n$|^(ERROR|HD|EN|\d+)\r\n$/.test(head);
        expect(memcachedParser.check(c.data, s.context(c.dir, c.data.length)), `${f.name} read ${i}: ${head.slice(0, 30)}`).toBe(!weak);
      }
    });
  }

  it('a retrieval reply continued in the next read is one response (its later VALUE blocks and END are not replies)', () => {
    const s = new ParserSession(memcachedParser);
    const enc = new TextEncoder();
    s.feed('c2s', enc.encode('get a b\r\n'));
    expect(s.feed('s2c', enc.encode('VALUE a 0 1\r\nx\r\n'))).toHaveLength(1);
    expect(s.feed('s2c', enc.encode('VALUE b 0 1\r\ny\r\nEND\r\n'))).toEqual([]);
    s.feed('c2s', enc.encode('get c\r\n'));
    expect(s.feed('s2c', enc.encode('END\r\n'))).toMatchObject([{ responseStatus: 'ok', attributes: { result: 'MISS' } }]);
  });
});

import { describe, expect, it } from 'vitest';
import { describeConformance, otherFixtures } from '../conformance.ts';
import { ParserSession, loadFixtures, replay } from '../fixtures.ts';
import { redisParser } from './index.ts';

const own = loadFixtures('redis');
const chunksOf = (name: string) => {
  const f = own.find((x) => x.name === name);
  if (!f) throw new Error(`no fixture ${name}`);
  return f.chunks;
};

describeConformance(redisParser, { own, others: otherFixtures('redis'), fuzzIterations: 1_000_000 });

describe('redis against redis-server', () => {
  it('reads command and key, never the value', () => {
    const [req, resp] = replay(redisParser, chunksOf('cli-set'));
    expect(req).toEqual({ l7Protocol: 'redis', msgType: 'request', requestType: 'SET', requestResource: 'user:1' });
    expect(resp).toEqual({ l7Protocol: 'redis', msgType: 'response', responseStatus: 'ok' });
  });

  it('reports -ERR as a server error with its text', () => {
    const msgs = replay(redisParser, chunksOf('cli-incr-error'));
    expect(msgs[1]).toMatchObject({ responseStatus: 'server_error', responseException: 'ERR value is not an integer or out of range' });
  });

  it('reads RESP3 replies (HELLO 3 map, HGETALL map)', () => {
    const msgs = replay(redisParser, chunksOf('cli-resp3-hgetall'));
    expect(msgs.map((m) => `${m.msgType}:${m.requestType ?? m.responseStatus}`)).toEqual(['request:HELLO', 'response:ok', 'request:HGETALL', 'response:ok']);
  });

  it('gives one message per pipelined command and reply', () => {
    const msgs = replay(redisParser, chunksOf('pipelined'));
    expect(msgs.filter((m) => m.msgType === 'request').map((m) => m.requestType)).toEqual(['SET', 'GET', 'LLEN', 'PING']);
    expect(msgs.filter((m) => m.msgType === 'response').map((m) => m.responseStatus)).toEqual(['ok', 'ok', 'server_error', 'ok']);
  });

  it('keeps in step across a value larger than the capture limit', () => {
    for (const name of ['cli-set-big', 'cli-get-big']) {
      const msgs = replay(redisParser, chunksOf(name), { captureLimit: 1024 });
      expect(msgs.map((m) => m.msgType)).toEqual(['request', 'response']);
      expect(msgs.some((m) => m.truncated)).toBe(true);
    }
  });

  it('skips RESP3 push messages, which answer no command', () => {
    const s = new ParserSession(redisParser, 'client');
    const enc = new TextEncoder();
    expect(s.feed('s2c', enc.encode('>3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n'))).toEqual([]);
  });
});

describe('redis inference claims only RESP-specific evidence', () => {
  const s = new ParserSession(redisParser, 'client');
  const claims = (bytes: string, dir: 'c2s' | 's2c' = 'c2s') => redisParser.check(new TextEncoder().encode(bytes), s.context(dir, bytes.length));

  it('does not take memcached text commands or NATS control lines for Redis (recorded from the real servers)', () => {
    for (const f of [...loadFixtures('memcached'), ...loadFixtures('nats')]) {
      expect(f.chunks.length, f.name).toBeGreaterThan(4);
      for (const c of f.chunks) expect(redisParser.check(c.data, s.context(c.dir, c.data.length)), `${f.protocol}/${f.name}: ${Buffer.from(c.data.subarray(0, 24)).toString('latin1')}`).toBe(false);
    }
  });

  it('still claims command arrays, distinctive replies and upper-case inline commands of known arity', () => {
    expect(claims('*2\r\n$3\r\nGET\r\n$3\r\nfoo\r\n')).toBe(true);
    expect(claims('+PONG\r\n', 's2c')).toBe(true);
    expect(claims('-ERR unknown command \'FOO\'\r\n', 's2c')).toBe(true);
    expect(claims('GET foo\r\n')).toBe(true);
    expect(claims('SET foo bar EX 10\r\n')).toBe(true);
    expect(claims('SET foo 0 0 3\r\n')).toBe(false);
    expect(claims('get foo\r\n')).toBe(false);
    expect(claims('PING\r\n')).toBe(false);
    expect(claims('+OK\r\n', 's2c')).toBe(false);
  });
});

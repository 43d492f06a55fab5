/**
 * Connections first seen mid-stream (opened before the agent started), through the default
 * registry's inference, from the bytes of real servers and clients recorded in
 * test/fixtures/protocols/: the conversation is cut after its opening exchange and the registry
 * sees only what follows. Also: inference must not claim other protocols' traffic.
 */

import { describe, expect, it } from 'vitest';
import type { CapturedMessage } from '../../agent/capture/message.ts';
import { MetricsRegistry } from '../../agent/metrics.ts';
import { BUILTIN_PARSERS } from '../../agent/protocols/builtins.ts';
import { ParserSession, loadAllFixtures, loadFixtures } from '../../agent/protocols/fixtures.ts';
import type { FixtureChunk } from '../../agent/protocols/fixtures.ts';
import type { L7Message } from '../../agent/protocols/parser.ts';
import { createDefaultRegistry } from '../../agent/protocols/registry.ts';

function chunksOf(protocol: string, name: string): FixtureChunk[] {
  const f = loadFixtures(protocol).find((x) => x.name === name);
  if (!f) throw new Error(`no fixture ${protocol}/${name}`);
  return f.chunks;
}

let nextSocket = 1000;

/** Feed reads to a fresh default registry as one client socket; the messages in order. */
function infer(chunks: readonly FixtureChunk[], l4: 'tcp' | 'udp' = 'tcp'): L7Message[] {
  const reg = createDefaultRegistry({ metrics: new MetricsRegistry(), log: () => undefined });
  const socketId = nextSocket++;
  const out: L7Message[] = [];
  for (const c of chunks) {
    const m: CapturedMessage = {
      tsNs: 0n, enterNs: 0n, exitNs: 0n, pid: 1, tid: 1, coroutineId: 0, processName: 'test', syscall: c.dir === 'c2s' ? 'write' : 'read',
      direction: c.dir === 'c2s' ? 'egress' : 'ingress', socketId, family: 'ipv4', l4, localIp: '127.0.0.1', localPort: 40000,
      remoteIp: '127.0.0.1', remotePort: 9999, role: 'client', tcpSeq: 0, syscallTraceId: 0, bytes: c.data.length, payload: c.data,
    };
    out.push(...reg.parse(m));
  }
  return out;
}

const concat = (...parts: Uint8Array[]): Uint8Array => new Uint8Array(Buffer.concat(parts));

describe('postgresql first seen mid-stream', () => {
  it('recognises an extended-query connection (Parse/Bind/Describe/Execute/Sync) from its next batch', () => {
    // node-pg against postgres: startup, then four extended-query batches; the agent starts after startup.
    const msgs = infer(chunksOf('postgresql', 'node-pg-extended').slice(2));
    expect(msgs.map((m) => `${m.l7Protocol}:${m.msgType}:${m.requestType ?? m.responseStatus}`)).toEqual([
      'postgresql:request:EXECUTE', 'postgresql:response:ok',
      'postgresql:request:EXECUTE', 'postgresql:response:ok',
      'postgresql:request:EXECUTE', 'postgresql:response:ok',
      'postgresql:request:EXECUTE', 'postgresql:response:client_error',
      'postgresql:request:TERMINATE',
    ]);
    expect(msgs[0]).toMatchObject({ requestResource: 'SELECT item FROM orders WHERE id = $1', endpoint: 'SELECT orders' });
    expect(msgs[7].attributes).toEqual({ sqlstate: '23505' });
  });

  it('recognises the backend side alone (the agent sees the replies first)', () => {
    const msgs = infer(chunksOf('postgresql', 'node-pg-extended').slice(3, 6));
    expect(msgs.map((m) => `${m.l7Protocol}:${m.msgType}`)).toEqual(['postgresql:response', 'postgresql:request', 'postgresql:response']);
  });
});

/** A MariaDB-recorded COM_QUERY re-framed the way a MySQL 8 client sends it with CLIENT_QUERY_ATTRIBUTES. */
function withQueryAttributes(packet: Uint8Array, attrs: Record<string, string>): Uint8Array {
  const names = Object.keys(attrs);
  const enc = new TextEncoder();
  const head: number[] = [0x03, names.length, 0x01];
  if (names.length > 0) {
    head.push(...new Array<number>((names.length + 7) >> 3).fill(0), 0x01);
    for (const n of names) head.push(0xfe, 0x00, n.length, ...enc.encode(n)); // MYSQL_TYPE_STRING, unsigned flag byte, name
    for (const n of names) head.push(attrs[n].length, ...enc.encode(attrs[n]));
  }
  const body = concat(new Uint8Array(head), packet.subarray(5));
  const frame = new Uint8Array(4 + body.length);
  frame[0] = body.length & 0xff;
  frame[1] = (body.length >> 8) & 0xff;
  frame[2] = body.length >> 16;
  frame[3] = 0;
  frame.set(body, 4);
  return frame;
}

describe('mysql 8 query attributes, first seen mid-stream', () => {
  const chunks = chunksOf('mysql', 'cli-select');
  const query = chunks[3];
  for (const [label, attrs] of [['no attributes', {}], ['a traceparent attribute', { traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' }]] as const) {
    it(`recognises COM_QUERY with ${label} and reads the statement and endpoint`, () => {
      const msgs = infer([{ dir: 'c2s', data: withQueryAttributes(query.data, attrs) }, chunks[4], chunks[5]]);
      expect(msgs[0]).toMatchObject({ l7Protocol: 'mysql', msgType: 'request', requestType: 'COM_QUERY', requestResource: 'SELECT id, item FROM shop.orders ORDER BY id', endpoint: 'SELECT shop.orders' });
      expect(msgs.map((m) => `${m.msgType}:${m.requestType ?? m.responseStatus}`)).toEqual(['request:COM_QUERY', 'response:ok', 'request:COM_QUIT']);
    });
  }
});

describe('dns over TCP, two queries in one read', () => {
  it('emits both of glibc’s queries and both answers through inference', () => {
    const msgs = infer(chunksOf('dns', 'glibc-tcp-a-aaaa'));
    expect(msgs.map((m) => `${m.l7Protocol}:${m.msgType}:${m.requestType}`)).toEqual(['dns:request:A', 'dns:request:AAAA', 'dns:response:A', 'dns:response:AAAA']);
  });
});

describe('inference claims no other protocol, at any point of a stream', () => {
  it('no built-in parser recognises any read of another protocol’s recorded conversation', () => {
    const claimed: string[] = [];
    const fixtures = loadAllFixtures();
    expect(fixtures.some((f) => f.protocol === 'memcached') && fixtures.some((f) => f.protocol === 'nats')).toBe(true);
    for (const p of BUILTIN_PARSERS) {
      for (const f of fixtures) {
        if (f.protocol === p.name || (p.name === 'http2' && f.protocol === 'grpc') || !p.transports.includes(f.transport)) continue;
        f.chunks.forEach((c, i) => {
          const s = new ParserSession(p, 'client', f.transport);
          if (p.check(c.data, s.context(c.dir, c.data.length))) claimed.push(`${p.name} claimed ${f.protocol}/${f.name} read ${i}`);
        });
      }
    }
    expect(claimed).toEqual([]);
  });

  it('memcached and NATS conversations are not taken for Redis (they used to end as bogus Redis timeouts)', () => {
    expect(infer(chunksOf('memcached', 'text-set-get-quit')).map((m) => m.l7Protocol)).toEqual(new Array(9).fill('memcached'));
    const nats = infer(chunksOf('nats', 'raw-verbose-pub-sub'));
    expect(nats.length).toBeGreaterThan(0);
    expect(nats.every((m) => m.l7Protocol === 'nats')).toBe(true);
  });
});

describe('memcached first seen mid-stream', () => {
  it('a pooled text connection is recognised from its next command, a binary one from its next request', () => {
    const text = infer(chunksOf('memcached', 'text-multiget-cas-errors').slice(4));
    expect(text.map((m) => `${m.l7Protocol}:${m.requestType ?? m.responseStatus}`).slice(0, 4)).toEqual(['memcached:cas', 'memcached:ok', 'memcached:touch', 'memcached:ok']);
    const bin = infer(chunksOf('memcached', 'binary-set-get-miss-quiet').slice(4));
    expect(bin.map((m) => `${m.requestType ?? m.responseCode}`)).toEqual(['get', '1', 'getq', 'noop', '0', 'incr', '6', 'delete', '0', 'version', '0', 'quit', '0']);
  });

  it('recognised from the server\'s reply when the agent sees that first', () => {
    const msgs = infer(chunksOf('memcached', 'text-set-get-quit').slice(1, 4));
    expect(msgs.map((m) => `${m.msgType}:${m.requestType ?? m.responseStatus}`)).toEqual(['response:ok', 'request:get', 'response:ok']);
  });
});

describe('nats first seen mid-stream', () => {
  it('a client connection past CONNECT is recognised from its next SUB/HPUB, with trace context; PING/PONG alone are not claimed', () => {
    const chunks = chunksOf('nats', 'raw-headers-request-reply');
    expect(infer(chunks.slice(2, 3))).toEqual([]); // PONG alone says nothing specific
    const msgs = infer(chunks.slice(3));
    expect(msgs.slice(0, 3).map((m) => `${m.l7Protocol}:${m.requestType}:${m.requestResource}`)).toEqual(['nats:SUB:orders.*', 'nats:SUB:_INBOX.Zx81kqVb.*', 'nats:PING:undefined']);
    expect(msgs.find((m) => m.requestType === 'HPUB')?.traceId).toBe('4bf92f3577b34da6a3ce929d0e0e4736');
  });
});

describe('mqtt first seen mid-stream', () => {
  it('a long-lived subscriber is recognised from its next SUBSCRIBE, a publisher from its next PUBLISH', () => {
    const sub = infer(chunksOf('mqtt', 'mqttv311-subscriber-three-filters').slice(2));
    expect(sub.map((m) => `${m.l7Protocol}:${m.requestType}`)).toEqual(['mqtt:SUBSCRIBE', 'mqtt:SUBACK', 'mqtt:PUBLISH', 'mqtt:PUBACK', 'mqtt:DISCONNECT']);
    const pub = infer(chunksOf('mqtt', 'mqttv5-publisher-qos1').slice(2));
    expect(pub.filter((m) => m.requestType === 'PUBLISH' || m.requestType === 'PUBACK').map((m) => m.requestId)).toEqual([1, 1]);
  });
});

import { describe, expect, it } from 'vitest';
import type { CapturedMessage } from '../capture/message.ts';
import { MetricsRegistry } from '../metrics.ts';
import { loadFixtures } from './fixtures.ts';
import type { ProtocolParser } from './parser.ts';
import { ProtocolRegistry, createDefaultRegistry } from './registry.ts';

const enc = new TextEncoder();

function msg(socketId: number, payload: Uint8Array | string, over: Partial<CapturedMessage> = {}): CapturedMessage {
  const p = typeof payload === 'string' ? enc.encode(payload) : payload;
  return {
    tsNs: 0n, enterNs: 0n, exitNs: 0n, pid: 1, tid: 1, coroutineId: 0, processName: 'test', syscall: 'write',
    direction: 'egress', socketId, family: 'ipv4', l4: 'tcp', localIp: '127.0.0.1', localPort: 40000,
    remoteIp: '127.0.0.1', remotePort: 80, role: 'client', tcpSeq: 0, syscallTraceId: 0, bytes: p.length, payload: p,
    ...over,
  };
}

function fresh(opts: ConstructorParameters<typeof ProtocolRegistry>[0] = {}): { reg: ProtocolRegistry; m: MetricsRegistry } {
  const m = new MetricsRegistry();
  return { reg: new ProtocolRegistry({ metrics: m, log: () => undefined, ...opts }), m };
}

describe('ProtocolRegistry', () => {
  it('recognises a protocol from content and caches it per socket', () => {
    const { reg } = fresh();
    expect(reg.parse(msg(1, 'GET /a HTTP/1.1\r\nHost: x\r\n\r\n'))).toMatchObject([{ l7Protocol: 'http1', requestType: 'GET' }]);
    expect(reg.protocolOf(1)).toBe('http1');
    expect(reg.parse(msg(1, 'HTTP/1.1 204 No Content\r\n\r\n', { direction: 'ingress' }))).toMatchObject([{ msgType: 'response', responseCode: 204 }]);
  });

  it('parses every built-in protocol through inference, from its recorded fixtures', () => {
    const { reg } = fresh();
    let socket = 100;
    const seen = new Set<string>();
    for (const proto of ['http1', 'http2', 'grpc', 'redis', 'dns', 'mysql', 'postgresql', 'kafka', 'mqtt', 'amqp', 'zookeeper', 'mongodb', 'memcached', 'nats', 'tls']) {
      for (const f of loadFixtures(proto)) {
        socket++;
        for (const c of f.chunks) {
          for (const m of reg.parse(msg(socket, c.data, { l4: f.transport, direction: c.dir === 'c2s' ? 'egress' : 'ingress' }))) seen.add(m.l7Protocol);
        }
      }
    }
    expect([...seen].sort()).toEqual(['amqp', 'dns', 'grpc', 'http1', 'http2', 'kafka', 'memcached', 'mongodb', 'mqtt', 'mysql', 'nats', 'postgresql', 'redis', 'tls', 'zookeeper']);
  });

  it('tries plugins before built-ins, and a re-registered plugin replaces the old one', () => {
    const { reg } = fresh();
    const plugin = (tag: string): ProtocolParser => ({
      name: 'custom', parallel: false, transports: ['tcp'],
      check: (p) => p[0] === 0x47, // claims "GET …" before http1 would
      parse: () => [{ l7Protocol: 'custom', msgType: 'request', requestType: tag }],
    });
    reg.register(plugin('v1'));
    expect(reg.parse(msg(1, 'GET / HTTP/1.1\r\n\r\n'))).toEqual([{ l7Protocol: 'custom', msgType: 'request', requestType: 'v1' }]);
    const v1 = reg.parsers()[0];
    reg.parse(msg(7, 'GET / HTTP/1.1\r\n\r\n'));
    reg.register(v1); // re-syncing the same object keeps the sockets it owns
    expect(reg.protocolOf(7)).toBe('custom');
    reg.register(plugin('v2'));
    expect(reg.protocolOf(7)).toBeUndefined(); // a new version: its sockets are inferred again
    expect(reg.parsers()[0].name).toBe('custom');
    expect(reg.parsers().filter((p) => p.name === 'custom')).toHaveLength(1);
    expect(reg.parse(msg(2, 'GET / HTTP/1.1\r\n\r\n'))[0].requestType).toBe('v2');
    expect(reg.unregister('custom')).toBe(true);
    expect(reg.parse(msg(3, 'GET / HTTP/1.1\r\n\r\n'))[0].l7Protocol).toBe('http1');
  });

  it('gives up on a socket after the inference budget', () => {
    const { reg, m } = fresh({ inferenceBudget: 3 });
    const junk = new Uint8Array(64).fill(0xee);
    for (let i = 0; i < 3; i++) expect(reg.parse(msg(9, junk))).toEqual([]);
    expect(m.counter('riptide_parser_inference_gave_up_total', '').get()).toBe(1);
    // Even a valid head is not looked at any more on that socket…
    expect(reg.parse(msg(9, 'GET / HTTP/1.1\r\n\r\n'))).toEqual([]);
    // …until it closes (socket ids are unique per run; this only frees the state).
    reg.onSocketClosed(9);
    expect(reg.stats().sockets).toBe(0);
  });

  it('counts a throwing parser and carries on', () => {
    const { reg, m } = fresh({ builtins: [] });
    reg.register({ name: 'boom', parallel: false, transports: ['tcp'], check: () => true, parse: () => { throw new Error('bad'); } });
    expect(reg.parse(msg(1, 'x'.repeat(20)))).toEqual([]);
    expect(reg.parse(msg(1, 'x'.repeat(20)))).toEqual([]);
    expect(m.counter('riptide_parser_errors_total', '').get({ protocol: 'boom' })).toBe(2);
  });

  it('re-infers when the cached parser keeps rejecting payloads', () => {
    const { reg } = fresh({ maxConsecutiveRejects: 2 });
    let claim = true;
    reg.register({ name: 'flaky', parallel: false, transports: ['tcp'], check: () => claim, parse: () => (claim ? [] : null) });
    reg.parse(msg(1, 'x'.repeat(20)));
    expect(reg.protocolOf(1)).toBe('flaky');
    claim = false;
    reg.parse(msg(1, 'x'.repeat(20)));
    reg.parse(msg(1, 'x'.repeat(20)));
    expect(reg.protocolOf(1)).toBeUndefined();
    expect(reg.parse(msg(1, 'GET / HTTP/1.1\r\n\r\n'))[0].l7Protocol).toBe('http1');
  });

  it('bounds its socket table (least recently used first out)', () => {
    const { reg, m } = fresh({ maxSockets: 100 });
    for (let s = 0; s < 1000; s++) reg.parse(msg(s, 'GET / HTTP/1.1\r\n\r\n'));
    expect(reg.stats().sockets).toBe(100);
    expect(m.counter('riptide_parser_sockets_evicted_total', '').get()).toBe(900);
    expect(reg.protocolOf(999)).toBe('http1');
    expect(reg.protocolOf(0)).toBeUndefined();
  });

  it('recognises a protocol whose server reads the header byte by byte', () => {
    const { reg } = fresh();
    const connect = new Uint8Array(Buffer.from('101700044d5154540502003c0321001400076532652d707562', 'hex'));
    const reads = [connect.subarray(0, 1), connect.subarray(1, 2), connect.subarray(2)];
    const out = reads.flatMap((r) => reg.parse(msg(5, r, { direction: 'ingress', role: 'server' })));
    expect(out).toMatchObject([{ l7Protocol: 'mqtt', requestType: 'CONNECT', requestDomain: 'e2e-pub' }]);
  });

  it('a message read in pieces carries the sequence of its first byte (Go\'s server reads the next byte ahead, alone)', () => {
    const { reg } = fresh();
    const server = { direction: 'ingress' as const, role: 'server' as const, localPort: 80, remotePort: 40000 };
    expect(reg.parse(msg(3, 'GET /a HTTP/1.1\r\nHost: x\r\n\r\n', { ...server, tcpSeq: 1000 }))).toMatchObject([{ requestResource: '/a' }]);
    // The next request: 1 byte read by the background reader, then the rest.
    expect(reg.parse(msg(3, 'G', { ...server, tcpSeq: 1029 }))).toEqual([]);
    const rest = msg(3, 'ET /down/7 HTTP/1.1\r\nHost: x\r\n\r\n', { ...server, tcpSeq: 1030 });
    expect(reg.parse(rest)).toMatchObject([{ requestType: 'GET', requestResource: '/down/7' }]);
    expect(rest.tcpSeq).toBe(1029);
    // A read that completes nothing from earlier bytes keeps its own.
    const whole = msg(3, 'GET /b HTTP/1.1\r\n\r\n', { ...server, tcpSeq: 1064 });
    reg.parse(whole);
    expect(whole.tcpSeq).toBe(1064);
    // Recognised only joined to the short reads before it: the same.
    const { reg: r2 } = fresh();
    expect(r2.parse(msg(4, 'GE', { ...server, tcpSeq: 5000 }))).toEqual([]);
    const tail = msg(4, 'T /c HTTP/1.1\r\n\r\n', { ...server, tcpSeq: 5002 });
    expect(r2.parse(tail)).toMatchObject([{ requestResource: '/c' }]);
    expect(tail.tcpSeq).toBe(5000);
  });

  it('learns which way requests flow on a socket whose role the capture could not tell', () => {
    const { reg } = fresh();
    const f = loadFixtures('postgresql').find((x) => x.name === 'psql-select');
    const out = (f?.chunks ?? []).flatMap((c) => reg.parse(msg(6, c.data, { role: 'unknown', direction: c.dir === 'c2s' ? 'ingress' : 'egress' })));
    expect(out.filter((m) => m.msgType === 'request').map((m) => m.requestType)).toEqual(['SSL_REQUEST', 'STARTUP', 'QUERY', 'TERMINATE']);
    expect(out.filter((m) => m.msgType === 'response')).toHaveLength(3);
  });

  it('createDefaultRegistry has every built-in, copies configured extra headers', () => {
    const reg = createDefaultRegistry({ metrics: new MetricsRegistry(), extraHeaders: ['X-Tenant'] });
    expect(reg.parsers().map((p) => p.name)).toEqual(['tls', 'http1', 'http2', 'dns', 'mysql', 'postgresql', 'amqp', 'zookeeper', 'mongodb', 'memcached', 'nats', 'redis', 'kafka', 'mqtt']);
    expect(reg.parse(msg(1, 'GET / HTTP/1.1\r\nX-Tenant: acme\r\n\r\n'))[0].attributes).toEqual({ 'x-tenant': 'acme' });
  });
});

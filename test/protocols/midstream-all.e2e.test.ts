// Connections opened before the agent starts, for every built-in protocol not covered by
// midstream.e2e.test.ts (PostgreSQL, MQTT): each client connects and exchanges traffic first, the
// real `riptide agent --output -` starts, and the same connection keeps going. The agent must
// recognise it from the next message and read that message's fields right. Needs root (eBPF).
//
// HTTP/1: Node keep-alive agent → Node http server. HTTP/2: one Node http2 session (its HPACK
// dynamic table already filled before the agent). MySQL: mysql2 → mariadbd. Redis: RESP over one
// socket → redis-server. DNS: one TCP connection → dnsmasq. Kafka has no broker in Debian: the
// same Node stand-in as e2e.test.ts answers kafkajs-encoded requests. AMQP: the test's own 0-9-1
// client (amqp-client.ts) → rabbitmq-server. ZooKeeper: an interactive zkCli.sh session → the
// Debian server. MongoDB: the official Python driver (pymongo) → mongo-server.py, a test server on
// that driver's BSON codec (mongod is not in Debian). The three new protocols also get fresh
// connections after the agent started.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import http from 'node:http';
import http2 from 'node:http2';
import { createRequire } from 'node:module';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { OutputLine, RunningAgent } from '../helpers/agent.ts';
import { startAgent } from '../helpers/agent.ts';
import type { RunningServer } from './servers.ts';
import type { MongoDriver } from './servers.ts';
import { startDnsmasq, startMariadb, startMongoTestServer, startPymongo, startRabbitmq, startRedis, startZookeeper, zkCli } from './servers.ts';
import { AmqpClient } from './amqp-client.ts';

const require = createRequire(import.meta.url);

interface Seen {
  l7_protocol: string;
  msg_type: string;
  request_type?: string;
  request_domain?: string;
  request_resource?: string;
  endpoint?: string;
  request_id?: number;
  response_code?: number;
  response_status?: string;
  response_exception?: string;
  attributes?: Record<string, string>;
  role: string;
  local_port: number;
  remote_port: number;
}

function parsed(lines: readonly OutputLine[]): Seen[] {
  return lines.flatMap((l) => ((l.l7 as Array<Record<string, unknown>> | undefined) ?? []).map((m) => ({ ...(m as unknown as Seen), role: l.role, local_port: l.local_port, remote_port: l.remote_port })));
}

/** A socket that collects what it reads; `until` waits for a byte count. */
class Wire {
  got = Buffer.alloc(0);
  private constructor(readonly sock: net.Socket) {
    sock.on('data', (d: Buffer) => {
      this.got = Buffer.concat([this.got, d]);
    });
    sock.on('error', () => undefined);
  }
  static async open(port: number): Promise<Wire> {
    const sock = net.connect({ host: '127.0.0.1', port });
    await new Promise<void>((resolve, reject) => {
      sock.once('connect', () => resolve());
      sock.once('error', reject);
    });
    sock.setNoDelay(true);
    return new Wire(sock);
  }
  async exchange(out: Buffer, done: (got: Buffer) => boolean, timeoutMs = 10_000): Promise<Buffer> {
    this.got = Buffer.alloc(0);
    this.sock.write(out);
    const until = Date.now() + timeoutMs;
    while (!done(this.got)) {
      if (Date.now() > until) throw new Error(`no complete answer after ${timeoutMs} ms; have ${this.got.length} bytes`);
      await new Promise((r) => setTimeout(r, 20));
    }
    return this.got;
  }
}

const resp = (...args: string[]): Buffer => Buffer.from(`*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`);
const crlfLines = (n: number) => (b: Buffer): boolean => b.toString('latin1').split('\r\n').length > n;

/** A DNS query over TCP (2-byte length prefix). */
function dnsTcpQuery(id: number, name: string, qtype: number): Buffer {
  const labels = name.split('.').flatMap((l) => [l.length, ...Buffer.from(l)]);
  const msg = Buffer.from([id >> 8, id & 0xff, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, ...labels, 0, qtype >> 8, qtype & 0xff, 0, 1]);
  return Buffer.concat([Buffer.from([msg.length >> 8, msg.length & 0xff]), msg]);
}
const dnsTcpDone = (b: Buffer): boolean => b.length >= 2 && b.length >= 2 + b.readUInt16BE(0);

interface MysqlConn {
  query(sql: string): Promise<unknown>;
  end(): Promise<void>;
}

const canCapture = process.getuid?.() === 0;
if (!canCapture) process.stdout.write('midstream-all.e2e: skipped, eBPF capture needs root\n');

describe.skipIf(!canCapture)('every protocol: connections open before the agent, recognised from the next message', () => {
  let agent: RunningAgent | undefined;
  let redis: RunningServer, dns: RunningServer, maria: RunningServer, rabbit: RunningServer;
  let amqp: AmqpClient;
  let zk: RunningServer;
  let zkSession: ChildProcess;
  let mongo: RunningServer;
  let pymongo: MongoDriver;
  let h1: http.Server, h1Port: number, h1Agent: http.Agent;
  let h2: http2.Http2Server, h2Port: number, h2Session: http2.ClientHttp2Session;
  let kafka: net.Server, kafkaPort: number;
  let redisWire: Wire, dnsWire: Wire, kafkaWire: Wire;
  let my: MysqlConn;
  const h1Sockets = new Set<number>();

  async function expectSeen(pred: (m: Seen) => boolean, n = 1, timeoutMs = 15_000): Promise<Seen[]> {
    if (!agent) throw new Error('agent not started');
    await agent.waitFor((l) => parsed([l]).some(pred), n, timeoutMs);
    return parsed(agent.lines).filter(pred);
  }

  function h1Get(p: string): Promise<number> {
    return new Promise((resolve, reject) => {
      const req = http.get({ host: '127.0.0.1', port: h1Port, path: p, agent: h1Agent }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      });
      req.on('socket', (s: net.Socket) => {
        if (s.localPort) h1Sockets.add(s.localPort);
        else s.once('connect', () => h1Sockets.add(s.localPort ?? 0));
      });
      req.on('error', reject);
    });
  }

  function h2Get(p: string, extra: Record<string, string> = {}): Promise<number> {
    return new Promise((resolve, reject) => {
      const s = h2Session.request({ ':method': 'GET', ':path': p, ...extra });
      let status = 0;
      s.on('response', (h) => {
        status = Number(h[':status']);
      });
      s.on('data', () => undefined);
      s.on('end', () => resolve(status));
      s.on('error', reject);
      s.end();
    });
  }

  async function kafkaProduce(correlationId: number, topic: string): Promise<void> {
    const frame = require('kafkajs/src/protocol/request') as (o: { correlationId: number; clientId: string; request: object }) => Promise<{ buffer: Buffer }>;
    const produce = require('kafkajs/src/protocol/requests/produce/v3/request') as (o: object) => object;
    const req = await frame({ correlationId, clientId: 'midstream-kafkajs', request: produce({ acks: -1, timeout: 1000, topicData: [{ topic, partitions: [{ partition: 0, messages: [{ key: 'k', value: 'v', timestamp: 1700000000000 }] }] }] }) });
    await kafkaWire.exchange(req.buffer, (b) => b.length >= 4 && b.length >= 4 + b.readInt32BE(0));
  }

  beforeAll(async () => {
    [redis, dns, maria, rabbit, zk, mongo] = await Promise.all([startRedis(), startDnsmasq(), startMariadb(), startRabbitmq(), startZookeeper(), startMongoTestServer()]);

    h1 = http.createServer((req, res) => {
      res.writeHead(req.url === '/missing' ? 404 : 200, { 'content-type': 'text/plain' });
      res.end('ok');
    });
    h1.keepAliveTimeout = 120_000;
    await new Promise<void>((r) => h1.listen(0, '127.0.0.1', r));
    h1Port = (h1.address() as net.AddressInfo).port;
    h1Agent = new http.Agent({ keepAlive: true, maxSockets: 1 });

    h2 = http2.createServer();
    h2.on('stream', (stream, headers) => {
      stream.respond({ ':status': headers[':path'] === '/missing' ? 404 : 200, 'content-type': 'text/plain', 'x-served-by': 'midstream' });
      stream.end('ok');
    });
    await new Promise<void>((r) => h2.listen(0, '127.0.0.1', r));
    h2Port = (h2.address() as net.AddressInfo).port;
    h2Session = http2.connect(`http://127.0.0.1:${h2Port}`);

    kafka = net.createServer((s) => {
      // Answers every request with a minimal Produce v3 response carrying its correlation id, error 0.
      let buf = Buffer.alloc(0);
      s.on('data', (d: Buffer) => {
        buf = Buffer.concat([buf, d]);
        while (buf.length >= 4 && buf.length >= 4 + buf.readInt32BE(0)) {
          const corr = buf.readInt32BE(8);
          buf = buf.subarray(4 + buf.readInt32BE(0));
          const body = Buffer.alloc(4 + 4 + 2 + 6 + 4 + 4 + 2 + 16 + 4);
          let o = 0;
          body.writeInt32BE(corr, o); o += 4;
          body.writeInt32BE(1, o); o += 4;
          body.writeInt16BE(6, o); o += 2; body.write('orders', o); o += 6;
          body.writeInt32BE(1, o); o += 4;
          body.writeInt32BE(0, o); o += 4;
          body.writeInt16BE(0, o); o += 2;
          body.writeBigInt64BE(7n, o); o += 8;
          body.writeBigInt64BE(-1n, o); o += 8;
          body.writeInt32BE(0, o);
          const frame = Buffer.alloc(4);
          frame.writeInt32BE(body.length);
          s.write(Buffer.concat([frame, body]));
        }
      });
      s.on('error', () => undefined);
    });
    await new Promise<void>((r) => kafka.listen(0, '127.0.0.1', r));
    kafkaPort = (kafka.address() as net.AddressInfo).port;

    // Traffic before the agent: every connection is past its handshake and has been used.
    expect(await h1Get('/before')).toBe(200);
    expect(await h2Get('/before', { 'x-request-id': 'h2-before' })).toBe(200);
    expect(await h2Get('/before', { 'x-request-id': 'h2-before' })).toBe(200);
    const mysql = require('mysql2/promise') as { createConnection(o: object): Promise<MysqlConn> };
    my = await mysql.createConnection({ host: '127.0.0.1', port: maria.port, user: 'root' });
    await my.query('CREATE DATABASE IF NOT EXISTS midshop');
    await my.query('CREATE TABLE midshop.orders (id INT PRIMARY KEY, item TEXT)');
    await my.query("INSERT INTO midshop.orders VALUES (1, 'book')");
    redisWire = await Wire.open(redis.port);
    await redisWire.exchange(resp('SET', 'mid:key', 'text'), crlfLines(1));
    dnsWire = await Wire.open(dns.port);
    await dnsWire.exchange(dnsTcpQuery(0x1101, 'svc.riptide.test', 1), dnsTcpDone);
    kafkaWire = await Wire.open(kafkaPort);
    await kafkaProduce(7, 'orders');
    amqp = await AmqpClient.connect(rabbit.port);
    await amqp.openChannel(1);
    await amqp.declareQueue(1, 'mid-orders');
    amqp.publish(1, '', 'mid-orders', 'first');
    expect(await amqp.get(1, 'mid-orders')).toBe('first');
    pymongo = startPymongo(mongo.port);
    expect(await pymongo.send('insert midorders 1 book')).toBe('ok 1');
    // zkCli.sh reading commands from stdin; a 4 s session timeout makes it ping every ~1.3 s.
    zkSession = spawn('/usr/share/zookeeper/bin/zkCli.sh', ['-timeout', '4000', '-server', `127.0.0.1:${zk.port}`], { stdio: ['pipe', 'ignore', 'ignore'] });
    zkSession.stdin?.write('create /midstream one\n');
    const zkUntil = Date.now() + 30_000;
    while (!(await zkCli(zk.port, 'stat', '/midstream').then(() => true, () => false))) {
      if (Date.now() > zkUntil) throw new Error('zkCli session never created /midstream');
      await new Promise((r) => setTimeout(r, 300));
    }

    agent = await startAgent(['--filter-port', [h1Port, h2Port, maria.port, redis.port, dns.port, kafkaPort, rabbit.port, zk.port, mongo.port].join(',')]);
  }, 180_000);

  afterAll(async () => {
    h1Agent?.destroy();
    h2Session?.close();
    await my?.end().catch(() => undefined);
    await amqp?.close().catch(() => undefined);
    await pymongo?.close();
    if (zkSession && zkSession.exitCode === null) {
      const exited = new Promise<void>((r) => zkSession.once('exit', () => r()));
      zkSession.stdin?.write('quit\n');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
      if (zkSession.exitCode === null) zkSession.kill('SIGKILL');
    }
    for (const w of [redisWire, dnsWire, kafkaWire]) w?.sock.destroy();
    await agent?.stop();
    h1?.close();
    h2?.close();
    kafka?.close();
    await Promise.all([redis, dns, maria, rabbit, zk, mongo].filter(Boolean).map((s) => s.stop()));
  });

  it('http1: a keep-alive connection is recognised from its next request and response', async () => {
    const before = new Set(h1Sockets);
    expect(await h1Get('/after?x=1')).toBe(200);
    expect(await h1Get('/missing')).toBe(404);
    expect(new Set(h1Sockets)).toEqual(before); // the same pooled connection
    const req = await expectSeen((m) => m.l7_protocol === 'http1' && m.msg_type === 'request' && m.request_resource === '/missing', 2);
    expect(new Set(req.map((m) => m.role))).toEqual(new Set(['client', 'server']));
    expect(req[0]).toMatchObject({ request_type: 'GET', request_domain: `127.0.0.1:${h1Port}` });
    const r = await expectSeen((m) => m.l7_protocol === 'http1' && m.msg_type === 'response' && m.response_code === 404, 2);
    expect(r[0].response_status).toBe('client_error');
    const first = await expectSeen((m) => m.l7_protocol === 'http1' && m.msg_type === 'request' && m.request_resource === '/after?x=1', 2);
    expect(first[0].request_type).toBe('GET');
  });

  it('http2: a session whose HPACK table predates the agent still yields method, path and status', async () => {
    // Same path and headers as before the agent: the client now sends them as dynamic-table indexes.
    expect(await h2Get('/before', { 'x-request-id': 'h2-before' })).toBe(200);
    expect(await h2Get('/missing')).toBe(404);
    const miss = await expectSeen((m) => m.l7_protocol === 'http2' && m.msg_type === 'request' && m.request_resource === '/missing', 2);
    expect(miss[0]).toMatchObject({ request_type: 'GET', request_id: 7 });
    const r = await expectSeen((m) => m.l7_protocol === 'http2' && m.msg_type === 'response' && m.request_id === 7, 2);
    expect(r[0]).toMatchObject({ response_code: 404, response_status: 'client_error' });
    const again = await expectSeen((m) => m.l7_protocol === 'http2' && m.msg_type === 'request' && m.request_id === 5, 2);
    // Fields indexed in the dynamic table before the agent (:authority, x-request-id) are counted, not guessed.
    expect(again[0]).toMatchObject({ request_type: 'GET', request_resource: '/before' });
    expect(Number(again[0].attributes?.['hpack.unresolved'])).toBeGreaterThan(0);
    const ok = await expectSeen((m) => m.l7_protocol === 'http2' && m.msg_type === 'response' && m.request_id === 5, 2);
    expect(ok[0]).toMatchObject({ response_code: 200, response_status: 'ok' });
  });

  it('mysql: a mysql2 connection past its login is recognised from its next COM_QUERY, ERR included', async () => {
    await my.query('SELECT id, item FROM midshop.orders WHERE id = 1');
    await my.query('SELECT * FROM midshop.missing').catch(() => undefined);
    const q = await expectSeen((m) => m.l7_protocol === 'mysql' && m.request_type === 'COM_QUERY' && m.request_resource === 'SELECT id, item FROM midshop.orders WHERE id = 1', 2);
    expect(q[0].endpoint).toBe('SELECT midshop.orders');
    const err = await expectSeen((m) => m.l7_protocol === 'mysql' && m.msg_type === 'response' && m.response_code === 1146, 2);
    expect(err[0]).toMatchObject({ response_status: 'client_error' });
    expect(err[0].response_exception).toMatch(/midshop\.missing/);
  });

  it('redis: a socket used before the agent is recognised from its next command, -ERR included', async () => {
    await redisWire.exchange(resp('GET', 'mid:key'), crlfLines(2));
    await redisWire.exchange(resp('INCR', 'mid:key'), crlfLines(1));
    const get = await expectSeen((m) => m.l7_protocol === 'redis' && m.request_type === 'GET', 2);
    expect(get[0].request_resource).toBe('mid:key');
    const err = await expectSeen((m) => m.l7_protocol === 'redis' && m.msg_type === 'response' && m.response_status === 'server_error', 2);
    expect(err[0].response_exception).toMatch(/^ERR value is not an integer/);
  });

  it('dns over TCP: a connection that already carried a query is recognised from the next one', async () => {
    await dnsWire.exchange(dnsTcpQuery(0x2202, 'db.riptide.test', 28), dnsTcpDone);
    await dnsWire.exchange(dnsTcpQuery(0x2303, 'missing.riptide.test', 1), dnsTcpDone);
    const q = await expectSeen((m) => m.l7_protocol === 'dns' && m.msg_type === 'request' && m.request_domain === 'db.riptide.test', 2);
    expect(q[0]).toMatchObject({ request_type: 'AAAA', request_id: 0x2202 });
    const a = await expectSeen((m) => m.l7_protocol === 'dns' && m.msg_type === 'response' && m.request_id === 0x2202, 2);
    expect(a[0]).toMatchObject({ response_code: 0, response_status: 'ok' });
    const nx = await expectSeen((m) => m.l7_protocol === 'dns' && m.msg_type === 'response' && m.request_id === 0x2303, 2);
    expect(nx[0]).toMatchObject({ response_code: 3, response_status: 'client_error' });
  });

  it('kafka: a producer connection is recognised from its next request, paired by correlation id', async () => {
    await kafkaProduce(8, 'payments');
    const r = await expectSeen((m) => m.l7_protocol === 'kafka' && m.msg_type === 'request' && m.request_id === 8, 2);
    expect(r[0]).toMatchObject({ request_type: 'Produce', request_domain: 'payments', endpoint: 'payments-0' });
    const a = await expectSeen((m) => m.l7_protocol === 'kafka' && m.msg_type === 'response' && m.request_id === 8, 2);
    expect(a[0]).toMatchObject({ request_type: 'Produce', response_code: 0, response_status: 'ok' });
  });

  it('amqp: a channel used before the agent is recognised from its next publish, with the message’s trace context', async () => {
    const tp = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
    amqp.publish(1, '', 'mid-orders', 'second', { traceparent: tp });
    expect(await amqp.get(1, 'mid-orders')).toBe('second');
    await amqp.declareQueue(1, 'mid-missing', { passive: true }).catch(() => undefined);
    const pub = await expectSeen((m) => m.l7_protocol === 'amqp' && m.request_type === 'Basic.Publish', 2);
    expect(pub[0]).toMatchObject({ msg_type: 'request', request_resource: 'mid-orders', trace_id: '4bf92f3577b34da6a3ce929d0e0e4736' });
    await expectSeen((m) => m.l7_protocol === 'amqp' && m.request_type === 'Basic.Get-Ok' && m.request_id === 1, 2);
    const err = await expectSeen((m) => m.l7_protocol === 'amqp' && m.msg_type === 'response' && m.response_code === 404, 2);
    expect(err[0]).toMatchObject({ request_type: 'Channel.Close', response_status: 'client_error' });
    expect(err[0].response_exception).toMatch(/^NOT_FOUND - no queue 'mid-missing'/);
  });

  it('amqp: a connection opened under the agent, from its handshake; a refused login as Connection.Close 403', async () => {
    const c = await AmqpClient.connect(rabbit.port, { vhost: '/' });
    await c.openChannel(3);
    await c.declareQueue(3, 'fresh-jobs');
    await c.close();
    const open = await expectSeen((m) => m.l7_protocol === 'amqp' && m.request_type === 'Connection.Open', 2);
    expect(open[0]).toMatchObject({ msg_type: 'request', request_domain: '/' });
    const q = await expectSeen((m) => m.l7_protocol === 'amqp' && m.request_type === 'Queue.Declare' && m.request_resource === 'fresh-jobs', 2);
    expect(q[0]).toMatchObject({ request_id: 3, request_domain: '/' });
    await expect(AmqpClient.connect(rabbit.port, { password: 'wrong' })).rejects.toThrow(/ACCESS_REFUSED/);
    const refused = await expectSeen((m) => m.l7_protocol === 'amqp' && m.response_code === 403, 2);
    expect(refused[0]).toMatchObject({ msg_type: 'response', request_type: 'Connection.Close', response_status: 'client_error' });
  });

  it('zookeeper: a zkCli session opened before the agent is recognised from its next request or ping', async () => {
    zkSession.stdin?.write('get /midstream\n');
    zkSession.stdin?.write('get /midstream-missing\n');
    const get = await expectSeen((m) => m.l7_protocol === 'zookeeper' && m.request_type === 'getData' && m.request_resource === '/midstream', 2);
    expect(get[0]).toMatchObject({ msg_type: 'request', endpoint: '/midstream' });
    const miss = await expectSeen((m) => m.l7_protocol === 'zookeeper' && m.msg_type === 'response' && m.response_code === -101, 2);
    expect(miss[0]).toMatchObject({ request_type: 'getData', response_status: 'client_error', response_exception: 'NoNode' });
    await expectSeen((m) => m.l7_protocol === 'zookeeper' && m.request_type === 'ping' && m.msg_type === 'response', 2);
  });

  it('zookeeper: a zkCli run under the agent, from its session handshake', async () => {
    await zkCli(zk.port, 'create', '/fresh', 'x');
    const c = await expectSeen((m) => m.l7_protocol === 'zookeeper' && m.request_type === 'CONNECT' && m.msg_type === 'response', 2);
    expect(c[0].response_status).toBe('ok');
    await expectSeen((m) => m.l7_protocol === 'zookeeper' && m.request_type === 'create' && m.request_resource === '/fresh', 2);
  });

  it('mongodb: a pymongo connection opened before the agent is recognised from its next OP_MSG, errors included', async () => {
    // The server thread has been blocked in recv() of the next 16-byte header since before the
    // agent started: that read's bytes are never captured, so the server side of this first command
    // is its bare body (no requestID to pair by) and only the client side reports it.
    expect(await pymongo.send('count midorders')).toBe('ok 1');
    const first = await expectSeen((m) => m.l7_protocol === 'mongodb' && m.request_type === 'count', 1);
    expect(first[0]).toMatchObject({ role: 'client', request_resource: 'shop.midorders' });
    expect(await pymongo.send('find midorders 1')).toBe("ok {'_id': 1, 'item': 'book'}");
    expect(await pymongo.send('insert midorders 1 again')).toBe('err 11000');
    expect(await pymongo.send('bogus')).toBe('err 59');
    const find = await expectSeen((m) => m.l7_protocol === 'mongodb' && m.request_type === 'find', 2);
    expect(find[0]).toMatchObject({ msg_type: 'request', request_domain: 'shop', request_resource: 'shop.midorders', endpoint: 'find shop.midorders' });
    const dup = await expectSeen((m) => m.l7_protocol === 'mongodb' && m.msg_type === 'response' && m.response_code === 11000, 2);
    expect(dup[0].response_status).toBe('client_error');
    const bogus = await expectSeen((m) => m.l7_protocol === 'mongodb' && m.msg_type === 'response' && m.response_code === 59, 2);
    expect(bogus[0]).toMatchObject({ response_status: 'client_error', response_exception: "no such command: 'riptideBogus'" });
  });

  it('mongodb: a pymongo client started under the agent, from its OP_QUERY handshake', async () => {
    const fresh = startPymongo(mongo.port);
    try {
      expect(await fresh.send('count midorders')).toBe('ok 1');
    } finally {
      await fresh.close();
    }
    const hello = await expectSeen((m) => m.l7_protocol === 'mongodb' && m.request_type === 'ismaster' && m.request_domain === 'admin', 2);
    expect(hello[0].msg_type).toBe('request');
    await expectSeen((m) => m.l7_protocol === 'mongodb' && m.request_type === 'count' && m.request_resource === 'shop.midorders', 2);
  });
});

// Every protocol end to end: real servers and clients on loopback, the real `riptide agent --output -`
// capturing them with eBPF, and the parsed L7 fields checked on the lines it prints — from the
// client's socket and from the server's. Kafka has no broker here: a Node server answers requests
// encoded by kafkajs's protocol encoders (as the fixtures do). Needs root, like the capture tests.
import http2 from 'node:http2';
import { createRequire } from 'node:module';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type * as GrpcJs from '@grpc/grpc-js';
import type * as ProtoLoader from '@grpc/proto-loader';
import type { OutputLine, RunningAgent } from '../helpers/agent.ts';
import { startAgent } from '../helpers/agent.ts';
import type { RunningServer } from './servers.ts';
import { runAsync, startDnsmasq, startMariadb, startMosquitto, startNginx, startPostgres, startRedis } from './servers.ts';

const require = createRequire(import.meta.url);
const here = path.dirname(fileURLToPath(import.meta.url));

/** One parsed message on an output line, with the capture context of that line. */
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
  trace_id?: string;
  span_id?: string;
  x_request_id?: string;
  role: string;
  direction: string;
  local_port: number;
  remote_port: number;
  process_name: string;
}

function parsed(lines: readonly OutputLine[]): Seen[] {
  return lines.flatMap((l) => ((l.l7 as Array<Record<string, unknown>> | undefined) ?? []).map((m) => ({ ...(m as unknown as Seen), role: l.role, direction: l.direction, local_port: l.local_port, remote_port: l.remote_port, process_name: l.process_name })));
}

const canCapture = process.getuid?.() === 0;

describe.skipIf(!canCapture)('protocols end to end under the eBPF agent', () => {
  let agent: RunningAgent;
  const servers: RunningServer[] = [];
  let nginx: RunningServer, redis: RunningServer, dns: RunningServer, mqtt: RunningServer, pg: RunningServer, my: RunningServer;
  let h2: http2.Http2Server;
  let h2Port: number;
  let grpcServer: GrpcJs.Server;
  let grpcPort: number;
  let kafka: net.Server;
  let kafkaPort: number;

  /** Waits until messages matching `pred` were seen from both ends of the socket (or just `n`). */
  async function expectSeen(pred: (m: Seen) => boolean, n = 2, timeoutMs = 15_000): Promise<Seen[]> {
    await agent.waitFor((l) => parsed([l]).some(pred), n, timeoutMs);
    return parsed(agent.lines).filter(pred);
  }

  beforeAll(async () => {
    [nginx, redis, dns, mqtt, pg, my] = await Promise.all([startNginx(), startRedis(), startDnsmasq(), startMosquitto(), startPostgres(), startMariadb()]);
    servers.push(nginx, redis, dns, mqtt, pg, my);

    h2 = http2.createServer();
    h2.on('stream', (stream, headers) => {
      stream.respond({ ':status': headers[':path'] === '/missing' ? 404 : 200, 'content-type': 'text/plain' });
      stream.end('ok');
    });
    await new Promise<void>((r) => h2.listen(0, '127.0.0.1', r));
    h2Port = (h2.address() as net.AddressInfo).port;

    const grpc = require('@grpc/grpc-js') as typeof GrpcJs;
    const loader = require('@grpc/proto-loader') as typeof ProtoLoader;
    const def = loader.loadSync(path.resolve(here, '../fixtures/protocols/grpc/greeter.proto'), { keepCase: true });
    const pkg = grpc.loadPackageDefinition(def) as unknown as { riptide: { Greeter: GrpcJs.ServiceClientConstructor } };
    grpcServer = new grpc.Server();
    grpcServer.addService(pkg.riptide.Greeter.service, {
      SayHello: (call: GrpcJs.ServerUnaryCall<{ name: string }, { message: string }>, cb: GrpcJs.sendUnaryData<{ message: string }>) => {
        if (call.request.name === 'nobody') cb({ code: grpc.status.NOT_FOUND, details: 'no such person' });
        else cb(null, { message: `hello ${call.request.name}` });
      },
    });
    grpcPort = await new Promise<number>((resolve, reject) => grpcServer.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));

    kafka = net.createServer((s) => {
      // Answers every request with a minimal response carrying its correlation id and error 0.
      let buf = Buffer.alloc(0);
      s.on('data', (d: Buffer) => {
        buf = Buffer.concat([buf, d]);
        while (buf.length >= 4 && buf.length >= 4 + buf.readInt32BE(0)) {
          const corr = buf.readInt32BE(8);
          buf = buf.subarray(4 + buf.readInt32BE(0));
          const body = Buffer.alloc(4 + 4 + 2 + 6 + 4 + 4 + 2 + 16 + 4);
          let o = 0;
          body.writeInt32BE(corr, o); o += 4;
          body.writeInt32BE(1, o); o += 4; // topics
          body.writeInt16BE(6, o); o += 2; body.write('orders', o); o += 6;
          body.writeInt32BE(1, o); o += 4; // partitions
          body.writeInt32BE(0, o); o += 4; // partition
          body.writeInt16BE(0, o); o += 2; // error code
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

    const ports = [nginx.port, redis.port, dns.port, mqtt.port, pg.port, my.port, h2Port, grpcPort, kafkaPort];
    agent = await startAgent(['--filter-port', ports.join(','), '--extra-headers', 'x-tenant']);
  }, 180_000);

  afterAll(async () => {
    await agent?.stop();
    h2?.close();
    grpcServer?.forceShutdown();
    kafka?.close();
    await Promise.all(servers.map((s) => s.stop()));
  });

  it('http1: curl → nginx, with traceparent, X-Request-ID and an extra header', async () => {
    await runAsync('curl', ['-sS', '-o', '/dev/null', '-H', 'traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01', '-H', 'X-Request-ID: e2e-1', '-H', 'X-Tenant: acme', `http://127.0.0.1:${nginx.port}/fail`]);
    const req = await expectSeen((m) => m.l7_protocol === 'http1' && m.msg_type === 'request' && m.request_resource === '/fail');
    expect(new Set(req.map((m) => m.role))).toEqual(new Set(['client', 'server']));
    for (const m of req) expect(m).toMatchObject({ request_type: 'GET', request_domain: `127.0.0.1:${nginx.port}`, trace_id: '4bf92f3577b34da6a3ce929d0e0e4736', span_id: '00f067aa0ba902b7', x_request_id: 'e2e-1' });
    const resp = await expectSeen((m) => m.l7_protocol === 'http1' && m.msg_type === 'response' && m.response_code === 503);
    expect(resp[0].response_status).toBe('server_error');
  });

  it('http2: node http2 client → node http2 server, streams as request ids', async () => {
    const client = http2.connect(`http://127.0.0.1:${h2Port}`);
    for (const p of ['/hello', '/missing']) {
      await new Promise<void>((resolve, reject) => {
        const s = client.request({ ':method': 'GET', ':path': p, 'x-request-id': `h2-${p}` });
        s.on('data', () => undefined);
        s.on('end', () => resolve());
        s.on('error', reject);
        s.end();
      });
    }
    client.close();
    const req = await expectSeen((m) => m.l7_protocol === 'http2' && m.msg_type === 'request' && m.request_resource === '/missing');
    expect(req[0]).toMatchObject({ request_type: 'GET', request_id: 3, x_request_id: 'h2-/missing' });
    const resp = await expectSeen((m) => m.l7_protocol === 'http2' && m.msg_type === 'response' && m.request_id === 3);
    expect(resp[0]).toMatchObject({ response_code: 404, response_status: 'client_error' });
  });

  it('grpc: grpc-js client → grpc-js server, grpc-status from trailers', async () => {
    const grpc = require('@grpc/grpc-js') as typeof GrpcJs;
    const loader = require('@grpc/proto-loader') as typeof ProtoLoader;
    const def = loader.loadSync(path.resolve(here, '../fixtures/protocols/grpc/greeter.proto'), { keepCase: true });
    const pkg = grpc.loadPackageDefinition(def) as unknown as { riptide: { Greeter: GrpcJs.ServiceClientConstructor } };
    const client = new pkg.riptide.Greeter(`127.0.0.1:${grpcPort}`, grpc.credentials.createInsecure()) as unknown as { SayHello(r: { name: string }, cb: (e: Error | null) => void): void; close(): void };
    await new Promise<void>((r) => client.SayHello({ name: 'nobody' }, () => r()));
    client.close();
    const resp = await expectSeen((m) => m.l7_protocol === 'grpc' && m.msg_type === 'response');
    expect(resp[0]).toMatchObject({ response_code: 5, response_status: 'client_error', response_exception: 'no such person' });
    const req = await expectSeen((m) => m.l7_protocol === 'grpc' && m.msg_type === 'request');
    expect(req[0]).toMatchObject({ request_type: 'POST', request_resource: '/riptide.Greeter/SayHello' });
  });

  it('redis: redis-cli → redis-server, command and key, -ERR as server error', async () => {
    await runAsync('redis-cli', ['-h', '127.0.0.1', '-p', String(redis.port), 'SET', 'e2e:key', 'text']);
    await runAsync('redis-cli', ['-h', '127.0.0.1', '-p', String(redis.port), 'INCR', 'e2e:key']).catch(() => '');
    const req = await expectSeen((m) => m.l7_protocol === 'redis' && m.request_type === 'SET');
    expect(req[0].request_resource).toBe('e2e:key');
    const err = await expectSeen((m) => m.l7_protocol === 'redis' && m.msg_type === 'response' && m.response_status === 'server_error');
    expect(err[0].response_exception).toMatch(/^ERR value is not an integer/);
  });

  it('dns: dig → dnsmasq over UDP and TCP', async () => {
    await runAsync('dig', ['@127.0.0.1', '-p', String(dns.port), '+tries=1', 'svc.riptide.test', 'A']);
    await runAsync('dig', ['@127.0.0.1', '-p', String(dns.port), '+tcp', '+tries=1', 'missing.riptide.test', 'AAAA']);
    const q = await expectSeen((m) => m.l7_protocol === 'dns' && m.msg_type === 'request' && m.request_domain === 'svc.riptide.test');
    expect(q[0].request_type).toBe('A');
    const a = await expectSeen((m) => m.l7_protocol === 'dns' && m.msg_type === 'response' && m.request_domain === 'svc.riptide.test');
    expect(a[0]).toMatchObject({ response_code: 0, response_status: 'ok', request_id: q[0].request_id });
    const nx = await expectSeen((m) => m.l7_protocol === 'dns' && m.msg_type === 'response' && m.request_domain === 'missing.riptide.test');
    expect(nx[0]).toMatchObject({ request_type: 'AAAA', response_code: 3, response_status: 'client_error' });
  });

  it('mqtt: mosquitto_pub → mosquitto, CONNECT client id and PUBLISH topic', async () => {
    await runAsync('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(mqtt.port), '-V', 'mqttv5', '-q', '1', '-i', 'e2e-pub', '-t', 'e2e/orders', '-m', 'hi']);
    const pub = await expectSeen((m) => m.l7_protocol === 'mqtt' && m.request_type === 'PUBLISH');
    expect(pub[0]).toMatchObject({ request_resource: 'e2e/orders', request_domain: 'e2e-pub' });
    const ack = await expectSeen((m) => m.l7_protocol === 'mqtt' && m.request_type === 'PUBACK');
    expect(ack[0]).toMatchObject({ msg_type: 'response', request_id: pub[0].request_id, response_status: 'ok' });
  });

  it('postgresql: psql → postgres, statement and SQLSTATE', async () => {
    await runAsync('psql', ['-h', '127.0.0.1', '-p', String(pg.port), '-U', 'postgres', '-X', '-q', '-c', 'SELECT 42 AS answer']);
    await runAsync('psql', ['-h', '127.0.0.1', '-p', String(pg.port), '-U', 'postgres', '-X', '-q', '-c', 'SELECT * FROM e2e_missing']).catch(() => '');
    const q = await expectSeen((m) => m.l7_protocol === 'postgresql' && m.request_type === 'QUERY' && m.request_resource === 'SELECT 42 AS answer');
    expect(q[0].request_domain).toBe('postgres');
    const err = await expectSeen((m) => m.l7_protocol === 'postgresql' && m.msg_type === 'response' && m.response_status === 'client_error');
    expect(err[0].response_exception).toBe('relation "e2e_missing" does not exist');
  });

  it('mysql: mariadb client → mariadbd, COM_QUERY and ERR', async () => {
    await runAsync('mariadb', ['-h', '127.0.0.1', '-P', String(my.port), '-u', 'root', '--skip-ssl', '-e', 'SELECT 1 + 1']);
    await runAsync('mariadb', ['-h', '127.0.0.1', '-P', String(my.port), '-u', 'root', '--skip-ssl', '-e', 'SELECT * FROM mysql.e2e_missing']).catch(() => '');
    const q = await expectSeen((m) => m.l7_protocol === 'mysql' && m.request_type === 'COM_QUERY' && m.request_resource === 'SELECT 1 + 1');
    expect(q.length).toBeGreaterThanOrEqual(2);
    const err = await expectSeen((m) => m.l7_protocol === 'mysql' && m.msg_type === 'response' && m.response_code === 1146);
    expect(err[0].response_status).toBe('client_error');
  });

  it('kafka: kafkajs-encoded Produce → a Node broker stand-in, paired by correlation id', async () => {
    const frame = require('kafkajs/src/protocol/request') as (o: { correlationId: number; clientId: string; request: object }) => Promise<{ buffer: Buffer }>;
    const produce = require('kafkajs/src/protocol/requests/produce/v3/request') as (o: object) => object;
    const req = await frame({ correlationId: 42, clientId: 'e2e-kafkajs', request: produce({ acks: -1, timeout: 1000, topicData: [{ topic: 'orders', partitions: [{ partition: 0, messages: [{ key: 'k', value: 'v', timestamp: 1700000000000 }] }] }] }) });
    await new Promise<void>((resolve, reject) => {
      const s = net.connect({ port: kafkaPort, host: '127.0.0.1' }, () => s.write(req.buffer));
      s.on('data', () => s.end());
      s.on('close', () => resolve());
      s.on('error', reject);
    });
    const r = await expectSeen((m) => m.l7_protocol === 'kafka' && m.msg_type === 'request' && m.request_id === 42);
    expect(r[0]).toMatchObject({ request_type: 'Produce', request_domain: 'orders', endpoint: 'orders-0' });
    const resp = await expectSeen((m) => m.l7_protocol === 'kafka' && m.msg_type === 'response' && m.request_id === 42);
    expect(resp[0]).toMatchObject({ request_type: 'Produce', response_code: 0, response_status: 'ok' });
  });
});

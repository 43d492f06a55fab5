/**
 * Re-records the protocol fixtures in test/fixtures/protocols/<proto>/ from real servers and clients
 * on this machine, through the recording proxy (recorder.ts). Everything listens on 127.0.0.1.
 *
 *   npx tsx test/protocols/record-fixtures.ts            # all protocols
 *   npx tsx test/protocols/record-fixtures.ts redis dns  # some
 *
 * Needs (Debian, listed in test/system-packages.txt): nginx, redis-server/redis-tools, postgresql,
 * mariadb-server/mariadb-client, dnsmasq/dnsutils, mosquitto/mosquitto-clients, memcached, nats-server, curl and openssl (TLS); run as root (the
 * database servers are started as their own users in temporary directories). Kafka has no broker
 * here: its fixtures are encoded by kafkajs's own protocol request encoders (see recordKafka).
 */

import { spawn } from 'node:child_process';
import http from 'node:http';
import http2 from 'node:http2';
import { createRequire } from 'node:module';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { sleep, tcpProxy, udpProxy, writeFixture } from './recorder.ts';
import { runAsync, startDnsmasq, startMariadb, startMemcached, startMosquitto, startNats, startNginx, startTlsNginx, startPostgres, startMongoTestServer, startPymongo, startRabbitmq, startRedis, startZookeeper, zkCli } from './servers.ts';
import { AmqpClient, AmqpError } from './amqp-client.ts';
import type { Conversation, FixtureFile } from './recorder.ts';
import type * as GrpcJs from '@grpc/grpc-js';
import type * as ProtoLoader from '@grpc/proto-loader';

const here = path.dirname(fileURLToPath(import.meta.url));
const FIXTURES = process.env.RIPTIDE_FIXTURES_OUT ?? path.resolve(here, '../fixtures/protocols');
const require = createRequire(import.meta.url);

function save(protocol: string, transport: 'tcp' | 'udp', name: string, description: string, client: string, server: string, conv: Conversation | undefined): void {
  if (!conv || conv.chunks.length === 0) throw new Error(`${protocol}/${name}: nothing recorded`);
  const f: FixtureFile = { protocol, transport, name, description, client, server, chunks: conv.chunks };
  writeFixture(path.join(FIXTURES, protocol), f);
  process.stdout.write(`  ${protocol}/${name}.json: ${conv.chunks.length} chunks\n`);
}

// ---------------------------------------------------------------------------------------------- HTTP/1

function httpRequest(port: number, agent: http.Agent, method: string, p: string, headers: Record<string, string>, body?: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path: p, headers, agent }, (res) => {
      res.resume();
      res.on('end', () => resolve());
    });
    req.on('error', reject);
    if (body !== undefined) req.write(body);
    req.end();
  });
}

function rawExchange(port: number, data: string, expectResponses: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ port, host: '127.0.0.1' }, () => s.write(data));
    let got = '';
    s.on('data', (d: Buffer) => {
      got += d.toString('latin1');
      if ((got.match(/HTTP\/1\.1 \d{3}/g) ?? []).length >= expectResponses) s.end();
    });
    s.on('close', () => resolve());
    s.on('error', reject);
  });
}

async function recordHttp1(): Promise<void> {
  const nginx = await startNginx();
  const port = nginx.port;
  const proxy = await tcpProxy(port);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  await httpRequest(proxy.port, agent, 'GET', '/?q=1', { traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01', 'x-request-id': 'req-1', 'x-tenant': 'acme' });
  await httpRequest(proxy.port, agent, 'GET', '/missing', { b3: '80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90' });
  await httpRequest(proxy.port, agent, 'POST', '/fail', { 'content-type': 'application/json', 'x-b3-traceid': '463ac35c9f6413ad48485a3953bb6124', 'x-b3-spanid': 'a2fb4a1d1a96d312', 'x-b3-parentspanid': '0020000000000001' }, '{"order":42}');
  await httpRequest(proxy.port, agent, 'HEAD', '/static/big.txt', { 'uber-trace-id': '5af7183fb1d4cf5f:6a8d3c2b1f0e4d5c:0:1' });
  await httpRequest(proxy.port, agent, 'GET', '/static/big.txt', { sw8: '1-MmE0Y2U0ZWYzMGI2NDJkODk2YzNhNmY3ZGNkMjJiZjQuMTIzLjE2NDA=-MmE0Y2U0ZWYzMGI2NDJkODk2YzNhNmY3ZGNkMjJiZjQuMTIzLjE2NDE=-0-c2VydmljZQ==-aW5zdGFuY2U=-L2FwaQ==-MTI3LjAuMC4xOjgwODA=' });
  await httpRequest(proxy.port, agent, 'PUT', '/api/items', { 'transfer-encoding': 'chunked' }, 'part-one;part-two');
  agent.destroy();
  await proxy.settle();
  save('http1', 'tcp', 'nginx-keepalive', 'keep-alive: GET with traceparent, 404 with b3, 503 POST with X-B3-*, HEAD, a 4.8 KB body (past the capture limit), chunked PUT', 'node http.Agent keepAlive', 'nginx', proxy.conversations[0]);

  const pipe = await tcpProxy(port);
  await rawExchange(pipe.port, 'GET / HTTP/1.1\r\nHost: pipelined.test\r\n\r\nGET /missing HTTP/1.1\r\nHost: pipelined.test\r\n\r\nGET /api/x HTTP/1.1\r\nHost: pipelined.test\r\n\r\n', 3);
  await pipe.settle();
  save('http1', 'tcp', 'nginx-pipelined', 'three pipelined requests in one write; nginx answers them in order', 'raw socket', 'nginx', pipe.conversations[0]);
  await pipe.close();
  await proxy.close();
  await nginx.stop();

  // Node's http server: chunked responses and 100-continue (nginx sends neither for these routes).
  const srv = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('first chunk\n');
      setTimeout(() => {
        res.write('second chunk\n');
        res.end('last\n');
      }, 20);
    });
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const nport = (srv.address() as net.AddressInfo).port;
  const np = await tcpProxy(nport);
  const agent2 = new http.Agent({ keepAlive: true, maxSockets: 1 });
  await new Promise<void>((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: np.port, method: 'POST', path: '/upload', agent: agent2, headers: { expect: '100-continue', 'content-length': '5' } }, (res) => {
      res.resume();
      res.on('end', () => resolve());
    });
    req.on('continue', () => req.end('hello'));
    req.on('error', reject);
  });
  await httpRequest(np.port, agent2, 'GET', '/stream', {});
  agent2.destroy();
  await np.settle();
  save('http1', 'tcp', 'node-chunked-continue', 'Expect: 100-continue then a chunked response written in three writes; then a second chunked response on the same connection', 'node http.Agent keepAlive', 'node http server', np.conversations[0]);
  await np.close();
  await new Promise<void>((r) => srv.close(() => r()));
}

// ---------------------------------------------------------------------------------------------- HTTP/2, gRPC

async function recordHttp2(): Promise<void> {
  const server = http2.createServer();
  server.on('stream', (stream, headers) => {
    const p = String(headers[':path']);
    stream.on('data', () => undefined);
    stream.on('end', () => {
      if (p === '/missing') stream.respond({ ':status': 404, 'content-type': 'text/plain' });
      else stream.respond({ ':status': 200, 'content-type': 'application/json', 'x-served-by': 'riptide-h2' });
      stream.end(p === '/missing' ? 'not found' : JSON.stringify({ path: p }));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  const proxy = await tcpProxy(port);
  const client = http2.connect(`http://127.0.0.1:${proxy.port}`);
  const req = (headers: http2.OutgoingHttpHeaders, body?: string): Promise<void> =>
    new Promise((resolve, reject) => {
      const s = client.request(headers);
      s.on('response', () => undefined);
      s.on('data', () => undefined);
      s.on('end', () => resolve());
      s.on('error', reject);
      if (body !== undefined) s.end(body);
      else s.end();
    });
  await req({ ':method': 'GET', ':path': '/hello?x=1', traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01', 'x-request-id': 'h2-req-1' });
  await Promise.all([
    req({ ':method': 'POST', ':path': '/orders', 'content-type': 'application/json', traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203332-01' }, '{"id":1}'),
    req({ ':method': 'GET', ':path': '/missing', 'x-request-id': 'h2-req-3' }),
    req({ ':method': 'GET', ':path': '/hello?x=2', traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203333-01', 'x-request-id': 'h2-req-4' }),
  ]);
  client.close();
  await proxy.settle();
  save('http2', 'tcp', 'node-h2c', 'h2c prior knowledge: GET, then three concurrent streams (POST, 404, GET reusing dynamic-table entries)', 'node http2 client', 'node http2 server', proxy.conversations[0]);
  await proxy.close();
  await new Promise<void>((r) => server.close(() => r()));
}

async function recordGrpc(): Promise<void> {
  const grpc = require('@grpc/grpc-js') as typeof GrpcJs;
  const loader = require('@grpc/proto-loader') as typeof ProtoLoader;
  const protoPath = path.resolve(here, '../fixtures/protocols/grpc/greeter.proto');
  const def = loader.loadSync(protoPath, { keepCase: true });
  const pkg = grpc.loadPackageDefinition(def) as unknown as { riptide: { Greeter: GrpcJs.ServiceClientConstructor } };
  const server = new grpc.Server();
  server.addService(pkg.riptide.Greeter.service, {
    SayHello: (call: GrpcJs.ServerUnaryCall<{ name: string }, { message: string }>, cb: GrpcJs.sendUnaryData<{ message: string }>) => {
      if (call.request.name === 'nobody') cb({ code: grpc.status.NOT_FOUND, details: 'no such person' });
      else if (call.request.name === 'crash') cb({ code: grpc.status.INTERNAL, details: 'boom' });
      else cb(null, { message: `hello ${call.request.name}` });
    },
  });
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
  const proxy = await tcpProxy(port);
  const client = new pkg.riptide.Greeter(`127.0.0.1:${proxy.port}`, grpc.credentials.createInsecure()) as unknown as {
    SayHello(req: { name: string }, md: GrpcJs.Metadata, cb: (e: Error | null) => void): void;
    close(): void;
  };
  const call = (name: string): Promise<void> =>
    new Promise((resolve) => {
      const md = new grpc.Metadata();
      md.set('traceparent', '00-5b8aa5a2d2c872e8321cf37308d69df2-051581bf3cb55c13-01');
      md.set('x-request-id', `grpc-${name}`);
      client.SayHello({ name }, md, () => resolve());
    });
  await call('alice');
  await call('nobody');
  await call('crash');
  await call('bob');
  client.close();
  await proxy.settle();
  save('grpc', 'tcp', 'grpc-js-unary', 'unary calls: OK, NOT_FOUND, INTERNAL, OK; traceparent and x-request-id metadata', '@grpc/grpc-js client', '@grpc/grpc-js server', proxy.conversations[0]);
  await proxy.close();
  server.forceShutdown();
}

// ---------------------------------------------------------------------------------------------- Redis

async function recordRedis(): Promise<void> {
  const redis = await startRedis();
  const port = redis.port;
  const proxy = await tcpProxy(port);
  const cli = (args: string[]): Promise<string> => runAsync('redis-cli', ['-h', '127.0.0.1', '-p', String(proxy.port), ...args]).catch(() => '');
  await cli(['SET', 'user:1', 'alice']);
  await cli(['GET', 'user:1']);
  await cli(['GET', 'user:missing']);
  await cli(['INCR', 'user:1']);
  await cli(['RPUSH', 'queue', 'a', 'b', 'c']);
  await cli(['LRANGE', 'queue', '0', '-1']);
  await cli(['-3', 'HSET', 'h', 'f1', 'v1', 'f2', '2']);
  await cli(['-3', 'HGETALL', 'h']);
  await cli(['SET', 'big', 'x'.repeat(3000)]);
  await cli(['GET', 'big']);
  await proxy.settle();
  const names = ['set', 'get', 'get-nil', 'incr-error', 'rpush', 'lrange', 'resp3-hset', 'resp3-hgetall', 'set-big', 'get-big'];
  const descr = ['SET', 'GET hit', 'GET miss (nil)', 'INCR on a string: -ERR', 'RPUSH', 'LRANGE array reply', 'HELLO 3 then HSET (RESP3)', 'HELLO 3 then HGETALL: a RESP3 map', 'SET with a 3000-byte value (past the capture limit)', 'GET of the 3000-byte value'];
  proxy.conversations.forEach((c, i) => save('redis', 'tcp', `cli-${names[i]}`, descr[i], 'redis-cli', 'redis-server', c));
  // A pipelined client: three commands in one write, and an inline command.
  const pp = await tcpProxy(port);
  await new Promise<void>((resolve, reject) => {
    const s = net.connect({ port: pp.port, host: '127.0.0.1' }, () => s.write('*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*2\r\n$4\r\nLLEN\r\n$1\r\nk\r\n'));
    let n = 0;
    s.on('data', (d: Buffer) => {
      n += (d.toString().match(/\r\n/g) ?? []).length;
      if (n >= 4) {
        if (n < 100) s.write('PING\r\n');
        n = 1000;
        setTimeout(() => s.end(), 50);
      }
    });
    s.on('close', () => resolve());
    s.on('error', reject);
  });
  await pp.settle();
  save('redis', 'tcp', 'pipelined', 'SET, GET, LLEN (WRONGTYPE-free) pipelined in one write, then an inline PING', 'raw socket', 'redis-server', pp.conversations[0]);
  await pp.close();
  await proxy.close();
  await redis.stop();
}

// ---------------------------------------------------------------------------------------------- DNS

async function recordDns(): Promise<void> {
  const dnsmasq = await startDnsmasq();
  const port = dnsmasq.port;
  const udp = await udpProxy(port);
  const dig = async (args: string[]): Promise<void> => {
    await runAsync('dig', ['@127.0.0.1', '-p', String(udp.port), '+tries=1', '+time=2', ...args]);
  };
  await dig(['svc.riptide.test', 'A']);
  await dig(['db.riptide.test', 'AAAA']);
  await dig(['missing.riptide.test', 'A']);
  await dig(['txt.riptide.test', 'TXT']);
  await sleep(100);
  const names = ['a', 'aaaa', 'nxdomain', 'txt'];
  udp.conversations.forEach((c, i) => save('dns', 'udp', `dig-udp-${names[i]}`, `dig ${names[i]} query over UDP`, 'dig', 'dnsmasq', c));
  await udp.close();
  const tcp = await tcpProxy(port);
  await runAsync('dig', ['@127.0.0.1', '-p', String(tcp.port), '+tcp', '+tries=1', 'db.riptide.test', 'A']);
  await runAsync('dig', ['@127.0.0.1', '-p', String(tcp.port), '+tcp', '+tries=1', 'nothere.riptide.test', 'MX']);
  await tcp.settle();
  save('dns', 'tcp', 'dig-tcp-a', 'dig +tcp A query (2-byte length prefix)', 'dig +tcp', 'dnsmasq', tcp.conversations[0]);
  save('dns', 'tcp', 'dig-tcp-nxdomain', 'dig +tcp MX query for a missing name', 'dig +tcp', 'dnsmasq', tcp.conversations[1]);
  await tcp.close();
  await dnsmasq.stop();
}

// ---------------------------------------------------------------------------------------------- MQTT

async function recordMqtt(): Promise<void> {
  const mosquitto = await startMosquitto();
  const port = mosquitto.port;
  for (const v of ['mqttv311', 'mqttv5']) {
    const proxy = await tcpProxy(port);
    const sub = spawn('mosquitto_sub', ['-h', '127.0.0.1', '-p', String(proxy.port), '-V', v, '-q', '1', '-t', 'riptide/orders/#', '-C', '2', '-W', '5', '-i', `sub-${v}`]);
    const subExited = new Promise<void>((r) => sub.on('exit', () => r()));
    await sleep(400);
    await runAsync('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(proxy.port), '-V', v, '-q', '1', '-t', 'riptide/orders/new', '-m', '{"id":7}', '-i', `pub-${v}`]);
    await runAsync('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(proxy.port), '-V', v, '-q', '0', '-t', 'riptide/orders/old', '-m', 'qos0', '-i', `pub0-${v}`]);
    await subExited;
    await proxy.settle();
    save('mqtt', 'tcp', `${v}-subscriber`, `${v}: CONNECT, SUBSCRIBE (QoS 1), two PUBLISHes delivered, PUBACK, DISCONNECT`, 'mosquitto_sub', 'mosquitto', proxy.conversations[0]);
    save('mqtt', 'tcp', `${v}-publisher-qos1`, `${v}: CONNECT, PUBLISH QoS 1, PUBACK, DISCONNECT`, 'mosquitto_pub', 'mosquitto', proxy.conversations[1]);
    save('mqtt', 'tcp', `${v}-publisher-qos0`, `${v}: CONNECT, PUBLISH QoS 0, DISCONNECT`, 'mosquitto_pub', 'mosquitto', proxy.conversations[2]);
    await proxy.close();
  }
  await mosquitto.stop();
}

/** One SUBSCRIBE with three topic filters, then a delivered PUBLISH (`mqtt-filters`: kept apart so the older fixtures keep their bytes). */
async function recordMqttFilters(): Promise<void> {
  const mosquitto = await startMosquitto();
  for (const v of ['mqttv311', 'mqttv5']) {
    const proxy = await tcpProxy(mosquitto.port);
    const sub = spawn('mosquitto_sub', ['-h', '127.0.0.1', '-p', String(proxy.port), '-V', v, '-q', '1', '-t', 'riptide/orders/#', '-t', 'riptide/+/status', '-t', 'riptide/alerts', '-C', '1', '-W', '5', '-i', `multi-${v}`]);
    const subExited = new Promise<void>((r) => sub.on('exit', () => r()));
    await sleep(400);
    await runAsync('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(mosquitto.port), '-V', v, '-q', '1', '-t', 'riptide/alerts', '-m', 'disk full', '-i', `pub-multi-${v}`]);
    await subExited;
    await proxy.settle();
    save('mqtt', 'tcp', `${v}-subscriber-three-filters`, `${v}: CONNECT, one SUBSCRIBE with three topic filters, SUBACK, a delivered PUBLISH, PUBACK, DISCONNECT`, 'mosquitto_sub', 'mosquitto', proxy.conversations[0]);
    await proxy.close();
  }
  await mosquitto.stop();
}

// ---------------------------------------------------------------------------------------------- PostgreSQL

async function recordPostgres(): Promise<void> {
  const server = await startPostgres();
  const { port, dir } = server;
  const proxy = await tcpProxy(port);
  // The error query exits non-zero: that is expected.
  const psql = (args: string[]): Promise<unknown> => runAsync('psql', ['-h', '127.0.0.1', '-p', String(proxy.port), '-U', 'postgres', '-d', 'postgres', '-X', '-q', ...args], { cwd: dir }).catch(() => undefined);
  await psql(['-c', 'CREATE TABLE orders (id int primary key, item text)']);
  await psql(['-c', "INSERT INTO orders VALUES (1, 'book'), (2, 'pen')"]);
  await psql(['-c', 'SELECT id, item FROM orders ORDER BY id']);
  await psql(['-c', 'SELECT * FROM missing_table']);
  await proxy.settle();
  const names = ['create', 'insert', 'select', 'error'];
  proxy.conversations.forEach((c, i) => save('postgresql', 'tcp', `psql-${names[i]}`, `psql -c (simple query; SSLRequest refused first): ${names[i]}`, 'psql', 'postgres', c));
  // Extended query protocol from node-postgres (parameters → Parse/Bind/Describe/Execute/Sync).
  const { Client } = require('pg') as { Client: new (o: object) => { connect(): Promise<void>; query(q: string | object, v?: unknown[]): Promise<unknown>; end(): Promise<void> } };
  const ext = await tcpProxy(port);
  const c = new Client({ host: '127.0.0.1', port: ext.port, user: 'postgres', database: 'postgres' });
  await c.connect();
  await c.query('SELECT item FROM orders WHERE id = $1', [1]);
  await c.query({ name: 'by-id', text: 'SELECT id, item FROM orders WHERE id = $1', values: [2] });
  await c.query({ name: 'by-id', text: 'SELECT id, item FROM orders WHERE id = $1', values: [1] });
  await c.query('INSERT INTO orders VALUES ($1, $2)', [1, 'dup']).catch(() => undefined);
  await c.end();
  await ext.settle();
  save('postgresql', 'tcp', 'node-pg-extended', 'node-postgres: startup, unnamed and named prepared statements (Parse/Bind/Describe/Execute/Sync), a duplicate-key error', 'pg (node-postgres)', 'postgres', ext.conversations[0]);
  await ext.close();
  await proxy.close();
  await server.stop();
}

// ---------------------------------------------------------------------------------------------- MySQL

async function recordMysql(): Promise<void> {
  const server = await startMariadb();
  const port = server.port;
  const proxy = await tcpProxy(port);
  // The error statement exits non-zero: that is expected.
  const cli = (sql: string): Promise<unknown> => runAsync('mariadb', ['-h', '127.0.0.1', '-P', String(proxy.port), '-u', 'root', '--skip-ssl', '-e', sql]).catch(() => undefined);
  await cli('CREATE DATABASE IF NOT EXISTS shop');
  await cli('CREATE TABLE shop.orders (id INT PRIMARY KEY, item VARCHAR(32))');
  await cli("INSERT INTO shop.orders VALUES (1, 'book'), (2, 'pen')");
  await cli('SELECT id, item FROM shop.orders ORDER BY id');
  await cli('SELECT * FROM shop.missing');
  await proxy.settle();
  const names = ['create-db', 'create-table', 'insert', 'select', 'error'];
  proxy.conversations.forEach((c, i) => save('mysql', 'tcp', `cli-${names[i]}`, `mariadb -e (COM_QUERY): ${names[i]}`, 'mariadb client', 'mariadbd', c));
  const mysql2 = require('mysql2/promise') as { createConnection(o: object): Promise<{ execute(q: string, v: unknown[]): Promise<unknown>; query(q: string): Promise<unknown>; end(): Promise<void> }> };
  const ps = await tcpProxy(port);
  const conn = await mysql2.createConnection({ host: '127.0.0.1', port: ps.port, user: 'root', database: 'shop' });
  await conn.execute('SELECT item FROM orders WHERE id = ?', [1]);
  await conn.execute('SELECT item FROM orders WHERE id = ?', [2]);
  await conn.execute('INSERT INTO orders VALUES (?, ?)', [1, 'dup']).catch(() => undefined);
  await conn.end();
  await ps.settle();
  save('mysql', 'tcp', 'mysql2-prepared', 'mysql2 execute(): COM_STMT_PREPARE, COM_STMT_EXECUTE (twice, cached), a duplicate-key error', 'mysql2 (node)', 'mariadbd', ps.conversations[0]);
  await ps.close();
  await proxy.close();
  await server.stop();
}

/**
 * The login exchange refused: a MariaDB with its grant tables and max_connections=10 (root may
 * take one more), a wrong password, and a connection past the limit, whose server greets with
 * ERR 1040 instead of a handshake. Recorded from mysql2 and from the mariadb client.
 */
async function recordMysqlLogin(): Promise<void> {
  const server = await startMariadb({ grants: true, maxConnections: 10 });
  const mysql2 = require('mysql2/promise') as { createConnection(o: object): Promise<{ end(): Promise<void> }> };
  const denied = await tcpProxy(server.port);
  await mysql2.createConnection({ host: '127.0.0.1', port: denied.port, user: 'root', password: 'wrong' }).then(() => {
    throw new Error('a wrong password was accepted');
  }, () => undefined);
  await denied.settle();
  save('mysql', 'tcp', 'login-access-denied', 'mysql2 logs in with a wrong password: handshake, auth, ERR 1045 (28000)', 'mysql2 (node)', 'mariadbd (grant tables)', denied.conversations[0]);
  const cliDenied = await tcpProxy(server.port);
  await runAsync('mariadb', ['-h', '127.0.0.1', '-P', String(cliDenied.port), '-u', 'nobody', '-pwrong', '--skip-ssl', '-e', 'SELECT 1']).catch(() => undefined);
  await cliDenied.settle();
  save('mysql', 'tcp', 'cli-login-access-denied', 'mariadb client logs in as an unknown user: ERR 1045 (28000)', 'mariadb client', 'mariadbd (grant tables)', cliDenied.conversations[0]);
  const held: Array<{ end(): Promise<void> }> = [];
  for (let i = 0; i < 11; i++) held.push(await mysql2.createConnection({ host: '127.0.0.1', port: server.port, user: 'root' }));
  const full = await tcpProxy(server.port);
  await mysql2.createConnection({ host: '127.0.0.1', port: full.port, user: 'root' }).then(() => {
    throw new Error('a connection past max_connections was accepted');
  }, () => undefined);
  await full.settle();
  save('mysql', 'tcp', 'login-too-many-connections', 'mysql2 connects past max_connections: the server greets with ERR 1040 Too many connections', 'mysql2 (node)', 'mariadbd (max_connections=10)', full.conversations[0]);
  for (const c of held) await c.end();
  for (const p of [denied, cliDenied, full]) await p.close();
  await server.stop();
}

/** The compressed protocol (CLIENT_COMPRESS, zlib): mysql2 with compress: true, then the mariadb client with --compress. */
async function recordMysqlCompressed(): Promise<void> {
  const server = await startMariadb();
  const mysql2 = require('mysql2/promise') as { createConnection(o: object): Promise<{ query(q: string): Promise<unknown>; end(): Promise<void> }> };
  const proxy = await tcpProxy(server.port);
  const conn = await mysql2.createConnection({ host: '127.0.0.1', port: proxy.port, user: 'root', compress: true });
  await conn.query('CREATE DATABASE IF NOT EXISTS shop');
  await conn.query("SELECT 'riptide compressed protocol' AS phrase, REPEAT('x', 200) AS filler");
  await conn.query('SELECT * FROM shop.missing').catch(() => undefined);
  await conn.end();
  await proxy.settle();
  save('mysql', 'tcp', 'mysql2-compressed', 'mysql2 with compress: true: zlib-compressed packets after the login (CREATE DATABASE, a SELECT, a missing table)', 'mysql2 (node)', 'mariadbd', proxy.conversations[0]);
  await proxy.close();
  await server.stop();
}

// ---------------------------------------------------------------------------------------------- AMQP

/** RabbitMQ (Debian rabbitmq-server) and the hand-written 0-9-1 client in amqp-client.ts. */
async function recordAmqp(): Promise<void> {
  const server = await startRabbitmq();
  const tp = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
  const run = async (name: string, description: string, fn: (c: AmqpClient) => Promise<void>, login: { password?: string } = {}): Promise<void> => {
    const proxy = await tcpProxy(server.port);
    let c: AmqpClient | undefined;
    try {
      c = await AmqpClient.connect(proxy.port, login);
      await fn(c);
      await c.close();
    } catch (e) {
      if (!(e instanceof AmqpError) || !login.password) throw e;
    }
    await proxy.settle();
    save('amqp', 'tcp', name, description, 'riptide amqp-client (node)', 'rabbitmq-server 3.10', proxy.conversations[0]);
    await proxy.close();
  };
  await run('publish-get', 'handshake, Channel.Open, Queue.Declare, Basic.Publish with a traceparent header, Basic.Get (ok, then empty), Channel.Close, Connection.Close', async (c) => {
    await c.openChannel(1);
    await c.declareQueue(1, 'orders');
    c.publish(1, '', 'orders', 'book', { traceparent: tp });
    await c.get(1, 'orders');
    await c.get(1, 'orders');
    await c.closeChannel(1);
  });
  await run('consume-deliver-ack', 'Basic.Consume, a publish to the default exchange, Basic.Deliver with its traceparent, Basic.Ack', async (c) => {
    await c.openChannel(1);
    await c.declareQueue(1, 'jobs');
    await c.consume(1, 'jobs', 'worker-1');
    c.publish(1, '', 'jobs', 'job-1', { traceparent: tp });
    await c.deliverAndAck(1);
  });
  await run('passive-declare-not-found', 'a passive Queue.Declare of a missing queue: the server closes the channel with 404 NOT_FOUND', async (c) => {
    await c.openChannel(1);
    await c.declareQueue(1, 'missing', { passive: true }).catch(() => undefined);
    await c.openChannel(2);
    await c.declareQueue(2, 'orders');
  });
  await run('login-refused', 'a wrong password: Connection.Close 403 ACCESS_REFUSED after Start-Ok', async () => undefined, { password: 'wrong' });
  await server.stop();
}

// ---------------------------------------------------------------------------------------------- ZooKeeper

/** ZooKeeper (Debian zookeeper) and its own Java client zkCli.sh: one command per run, and one interactive session. */
async function recordZookeeper(): Promise<void> {
  const server = await startZookeeper();
  const one = async (name: string, description: string, ...cmd: string[]): Promise<void> => {
    const proxy = await tcpProxy(server.port);
    await zkCli(proxy.port, ...cmd).catch(() => undefined);
    await proxy.settle();
    save('zookeeper', 'tcp', name, description, 'zkCli.sh (ZooKeeper 3.8 Java client)', 'zookeeper 3.8', proxy.conversations[0]);
    await proxy.close();
  };
  await one('zkcli-create', 'connect, create /riptide, closeSession', 'create', '/riptide', 'hello');
  await one('zkcli-get', 'connect, getData /riptide, closeSession', 'get', '/riptide');
  await one('zkcli-get-missing', 'getData of a missing node: NoNode (-101)', 'get', '/missing');
  await one('zkcli-create-exists', 'create of an existing node: NodeExists (-110)', 'create', '/riptide', 'again');
  await one('zkcli-ls', 'getChildren of /', 'ls', '/');
  // One interactive session with a 4 s session timeout (pings every ~1.3 s): a watch, a change made
  // by another client (the watch notification), pings, delete.
  const proxy = await tcpProxy(server.port);
  const c = spawn('/usr/share/zookeeper/bin/zkCli.sh', ['-timeout', '4000', '-server', `127.0.0.1:${proxy.port}`], { stdio: ['pipe', 'ignore', 'ignore'] });
  const say = async (line: string, waitMs = 700): Promise<void> => {
    c.stdin.write(`${line}\n`);
    await sleep(waitMs);
  };
  await sleep(2500);
  await say('create /riptide/jobs one');
  await say('get -w /riptide/jobs');
  await zkCli(server.port, 'set', '/riptide/jobs', 'two');
  await sleep(3000);
  await say('delete /riptide/jobs');
  await say('quit');
  await new Promise<void>((r) => (c.exitCode !== null ? r() : c.once('exit', () => r())));
  await proxy.settle();
  save('zookeeper', 'tcp', 'zkcli-session-watch', 'interactive zkCli session: create, getData with a watch, the watch notification after another client set it, pings, delete, closeSession', 'zkCli.sh (ZooKeeper 3.8 Java client)', 'zookeeper 3.8', proxy.conversations[0]);
  await proxy.close();
  await server.stop();
}

// ---------------------------------------------------------------------------------------------- MongoDB

/**
 * The official Python driver (pymongo 3.11, Debian python3-pymongo) against mongo-server.py (mongod
 * is not in Debian): the driver's monitor connection (OP_QUERY isMaster / OP_REPLY) and its
 * application connection (OP_MSG: insert, find, a duplicate key, count, an unknown command, drop of
 * a missing collection, endSessions).
 */
async function recordMongodb(): Promise<void> {
  const server = await startMongoTestServer();
  const proxy = await tcpProxy(server.port);
  const driver = startPymongo(proxy.port);
  for (const line of ['insert orders 1 book', 'find orders 1', 'insert orders 1 dup', 'count orders', 'bogus', 'drop nothere']) await driver.send(line);
  await driver.close();
  await proxy.settle();
  // The monitor connection sends isMaster first; the application connection sends insert.
  const isApp = (c: Conversation): boolean => c.chunks.some((k) => Buffer.from(k.b64, 'base64').includes(Buffer.from('insert\0')));
  const app = proxy.conversations.find(isApp);
  const monitor = proxy.conversations.find((c) => !isApp(c));
  save('mongodb', 'tcp', 'pymongo-crud', 'pymongo: isMaster over OP_QUERY, then OP_MSG insert, find, a duplicate _id (writeErrors 11000), count, an unknown command (59), drop of a missing collection (26), endSessions', 'pymongo 3.11 (Debian python3-pymongo)', 'mongo-server.py (test server on the pymongo BSON codec)', app);
  save('mongodb', 'tcp', 'pymongo-monitor', 'pymongo monitor connection: isMaster over OP_QUERY answered by OP_REPLY', 'pymongo 3.11 (Debian python3-pymongo)', 'mongo-server.py (test server on the pymongo BSON codec)', monitor);
  await proxy.close();
  await server.stop();
}

// ---------------------------------------------------------------------------------------------- Kafka

/**
 * No broker is available here, so Kafka fixtures are encoded with kafkajs's protocol module: the
 * request encoders its client sends to real brokers (kafkajs/src/protocol/requests/*), framed by its
 * own request framer, and responses written with its Encoder in the layout of the protocol spec.
 */
async function recordKafka(): Promise<void> {
  type Enc = { buffer: Buffer; writeInt32(n: number): Enc; writeInt16(n: number): Enc; writeString(s: string | null): Enc; writeArray(a: unknown[], type?: string): Enc; writeInt64(n: number | string): Enc; writeEncoder(e: Enc): Enc; writeBytes(b: Buffer | null): Enc; writeBoolean(v: boolean): Enc; size(): number };
  const Encoder = require('kafkajs/src/protocol/encoder') as new () => Enc;
  const frame = require('kafkajs/src/protocol/request') as (o: { correlationId: number; clientId: string; request: object }) => Promise<Enc>;
  const req = (p: string): ((o: object) => object) => require(`kafkajs/src/protocol/requests/${p}/request`) as (o: object) => object;
  const response = (correlationId: number, body: Enc): Buffer => {
    const inner = new Encoder().writeInt32(correlationId).writeEncoder(body);
    return new Encoder().writeInt32(inner.size()).writeEncoder(inner).buffer;
  };
  const chunks: Conversation = { chunks: [] };
  const push = (dir: 'c2s' | 's2c', b: Buffer): void => {
    chunks.chunks.push({ dir, b64: b.toString('base64') });
  };
  const clientId = 'riptide-kafkajs';
  push('c2s', (await frame({ correlationId: 1, clientId, request: req('apiVersions/v2')({}) })).buffer);
  push('s2c', response(1, new Encoder().writeInt16(0).writeArray([new Encoder().writeInt16(0).writeInt16(0).writeInt16(7), new Encoder().writeInt16(1).writeInt16(0).writeInt16(11)]).writeInt32(0)));
  push('c2s', (await frame({ correlationId: 2, clientId, request: req('metadata/v5')({ topics: ['orders'], allowAutoTopicCreation: false }) })).buffer);
  push('s2c', response(2, new Encoder().writeInt32(0).writeArray([new Encoder().writeInt32(1).writeString('127.0.0.1').writeInt32(9092).writeString(null)]).writeString('cluster-1').writeInt32(1).writeArray([new Encoder().writeInt16(0).writeString('orders').writeBoolean(false).writeArray([new Encoder().writeInt16(0).writeInt32(0).writeInt32(1).writeArray([1], 'int32').writeArray([1], 'int32').writeArray([], 'int32')])])));
  const produce = req('produce/v3')({ acks: -1, timeout: 30000, topicData: [{ topic: 'orders', partitions: [{ partition: 0, messages: [{ key: 'k1', value: '{"id":1}', timestamp: 1700000000000 }] }] }] });
  push('c2s', (await frame({ correlationId: 3, clientId, request: produce })).buffer);
  push('s2c', response(3, new Encoder().writeArray([new Encoder().writeString('orders').writeArray([new Encoder().writeInt32(0).writeInt16(0).writeInt64(41).writeInt64(-1)])]).writeInt32(0)));
  const fetch = req('fetch/v4')({ replicaId: -1, maxWaitTime: 500, minBytes: 1, maxBytes: 1048576, isolationLevel: 1, topics: [{ topic: 'orders', partitions: [{ partition: 0, fetchOffset: '41', maxBytes: 1048576 }] }] });
  push('c2s', (await frame({ correlationId: 4, clientId, request: fetch })).buffer);
  push('s2c', response(4, new Encoder().writeInt32(0).writeArray([new Encoder().writeString('orders').writeArray([new Encoder().writeInt32(0).writeInt16(1).writeInt64(42).writeInt64(42).writeArray([]).writeBytes(null)])])));
  const produceErr = req('produce/v3')({ acks: 1, timeout: 30000, topicData: [{ topic: 'payments', partitions: [{ partition: 3, messages: [{ key: null, value: 'x'.repeat(1500), timestamp: 1700000000000 }] }] }] });
  push('c2s', (await frame({ correlationId: 5, clientId, request: produceErr })).buffer);
  push('s2c', response(5, new Encoder().writeArray([new Encoder().writeString('payments').writeArray([new Encoder().writeInt32(3).writeInt16(3).writeInt64(-1).writeInt64(-1)])]).writeInt32(0)));
  push('c2s', (await frame({ correlationId: 6, clientId, request: req('findCoordinator/v1')({ groupId: 'billing', coordinatorType: 0 }) })).buffer);
  push('s2c', response(6, new Encoder().writeInt32(0).writeInt16(15).writeString('The coordinator is not available.').writeInt32(-1).writeString('').writeInt32(-1)));
  save('kafka', 'tcp', 'kafkajs-encoded', 'ApiVersions v2, Metadata v5, Produce v3 (ok), Fetch v4 (OFFSET_OUT_OF_RANGE), Produce v3 with a 1.5 KB record (UNKNOWN_TOPIC_OR_PARTITION), FindCoordinator v1 (error 15): requests encoded by kafkajs, responses by its Encoder', 'kafkajs protocol encoders', 'none (no broker here: responses encoded to the spec)', chunks);
}

// ----------------------------------------------------------------------------------------------

/** One raw client socket: send each line, wait until the replies so far match `until`, then the next. */
function scripted(port: number, steps: ReadonlyArray<{ send: string; until: RegExp }>, greeting?: RegExp): Promise<void> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ port, host: '127.0.0.1' });
    let got = '';
    let sent = 0;
    const send = (): void => {
      got = '';
      if (sent < steps.length) s.write(Buffer.from(steps[sent++].send, 'latin1'));
      else s.end();
    };
    s.on('connect', () => {
      if (!greeting) send();
    });
    s.on('data', (d: Buffer) => {
      got += d.toString('latin1');
      const waitFor = sent === 0 ? greeting : steps[sent - 1].until;
      if (waitFor?.test(got)) send();
    });
    s.on('close', () => resolve());
    s.on('error', reject);
    setTimeout(() => s.destroy(), 5000).unref();
  });
}

/** Memcached's text protocol (not parsed by Riptide yet): for the false-positive suite, which Redis once failed. */
async function recordMemcached(): Promise<void> {
  const mc = await startMemcached();
  const proxy = await tcpProxy(mc.port);
  await scripted(proxy.port, [
    { send: 'set foo 0 0 3\r\nbar\r\n', until: /STORED\r\n/ },
    { send: 'get foo\r\n', until: /END\r\n/ },
    { send: 'incr counter 1\r\n', until: /\r\n/ },
    { send: 'delete foo\r\n', until: /\r\n/ },
    { send: 'quit\r\n', until: /^$/ },
  ]);
  await proxy.settle();
  save('memcached', 'tcp', 'text-set-get-quit', 'text protocol: set, get hit, incr miss, delete, quit', 'raw socket', 'memcached', proxy.conversations[0]);

  const big = 'v'.repeat(3000);
  await scripted(proxy.port, [
    { send: 'set a 5 0 2\r\nhi\r\nset b 0 0 3 noreply\r\nyou\r\n', until: /STORED\r\n/ },
    { send: 'gets a b nope\r\n', until: /END\r\n/ },
    { send: 'cas a 0 0 1 1\r\nx\r\n', until: /\r\n/ },
    { send: 'touch a 100\r\n', until: /\r\n/ },
    { send: 'set n 0 0 1\r\n7\r\n', until: /\r\n/ },
    { send: 'incr n 5\r\n', until: /\r\n/ },
    { send: `set big 0 0 ${big.length}\r\n${big}\r\n`, until: /\r\n/ },
    { send: 'get big\r\n', until: /END\r\n/ },
    { send: 'incr a 1\r\n', until: /\r\n/ },
    { send: 'bogus\r\n', until: /\r\n/ },
    { send: 'ms m 2 T0\r\nok\r\n', until: /\r\n/ },
    { send: 'mg m v\r\n', until: /\r\n.*\r\n/ },
    { send: 'mg absent v\r\n', until: /\r\n/ },
    { send: 'version\r\n', until: /\r\n/ },
  ]);
  await proxy.settle();
  save('memcached', 'tcp', 'text-multiget-cas-errors', 'text protocol: pipelined set + set noreply, gets of two hits and a miss, cas conflict, touch, incr, a 3000-byte value stored and read, incr of a non-number (CLIENT_ERROR), an unknown command (ERROR), meta ms/mg hit and miss, version', 'raw socket', 'memcached', proxy.conversations[1]);

  const bin = (op: number, key: string, extras: number[] = [], value = '', opaque = 0): string => {
    const body = extras.length + key.length + value.length;
    const h = [0x80, op, key.length >> 8, key.length & 0xff, extras.length, 0, 0, 0, (body >>> 24) & 0xff, (body >> 16) & 0xff, (body >> 8) & 0xff, body & 0xff, 0, 0, 0, opaque, 0, 0, 0, 0, 0, 0, 0, 0];
    return Buffer.from([...h, ...extras]).toString('latin1') + key + value;
  };
  const reply = (n = 1): RegExp => new RegExp(`^([\\s\\S]{24,}){${n}}`); // at least n headers' worth
  await scripted(proxy.port, [
    { send: bin(0x01, 'user:1', [0, 0, 0, 0, 0, 0, 0, 0], '{"n":1}', 1), until: reply() },
    { send: bin(0x00, 'user:1', [], '', 2), until: /\{"n":1\}$/ },
    { send: bin(0x00, 'user:404', [], '', 3), until: /Not found$/ },
    { send: bin(0x09, 'user:405', [], '', 4) + bin(0x0a, '', [], '', 5), until: reply() },
    { send: bin(0x05, 'user:1', [0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], '', 6), until: /\r\n|.{24,}/s },
    { send: bin(0x04, 'user:1', [], '', 7), until: reply() },
    { send: bin(0x0b, '', [], '', 8), until: /\d+\.\d+/ },
    { send: bin(0x07, '', [], '', 9), until: /^$/ },
  ]);
  await proxy.settle();
  save('memcached', 'tcp', 'binary-set-get-miss-quiet', 'binary protocol: set, get hit, get miss (KEY_NOT_FOUND), getq miss + noop, incr of a non-number, delete, version, quit', 'raw socket', 'memcached', proxy.conversations[2]);
  await mc.stop();
}

/** NATS from a hand-written client over a raw socket (no NATS client is packaged here); Redis once took its +OK, PING and -ERR for its own. */
async function recordNats(): Promise<void> {
  const nats = await startNats();
  const proxy = await tcpProxy(nats.port);
  await scripted(
    proxy.port,
    [
      { send: 'CONNECT {"verbose":true,"pedantic":false,"name":"riptide","lang":"raw","version":"1","protocol":1}\r\n', until: /\+OK\r\n/ },
      { send: 'PING\r\n', until: /PONG\r\n/ },
      { send: 'SUB orders.created 1\r\n', until: /\+OK\r\n/ },
      { send: 'PUB orders.created 5\r\nhello\r\n', until: /MSG orders\.created 1 5\r\nhello\r\n/ },
      { send: 'BOGUS\r\n', until: /-ERR/ },
    ],
    /INFO \{.*\} ?\r\n/,
  );
  await proxy.settle();
  save('nats', 'tcp', 'raw-verbose-pub-sub', "INFO, CONNECT (verbose: +OK), PING/PONG, SUB, PUB and its MSG, an unknown verb: -ERR 'Unknown Protocol Operation'", 'raw socket', 'nats-server', proxy.conversations[0]);

  // What client libraries do: verbose off (no +OK), headers on, a queue group, request-reply through
  // an inbox, trace context in HPUB headers, a payload past the capture limit, a fatal error.
  const hdr = 'NATS/1.0\r\ntraceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\n\r\n';
  const body = '{"id":7}';
  const big = 'v'.repeat(3000);
  await scripted(
    proxy.port,
    [
      { send: 'CONNECT {"verbose":false,"pedantic":false,"headers":true,"no_responders":true,"name":"orders-svc","lang":"raw","version":"1","protocol":1}\r\nPING\r\n', until: /PONG\r\n/ },
      { send: 'SUB orders.* workers 1\r\nSUB _INBOX.Zx81kqVb.* 2\r\nPING\r\n', until: /PONG\r\n/ },
      { send: `HPUB orders.paid _INBOX.Zx81kqVb.1 ${hdr.length} ${hdr.length + body.length}\r\n${hdr}${body}\r\n`, until: /HMSG orders\.paid 1 _INBOX\S+ \d+ \d+\r\n[\s\S]*\{"id":7\}\r\n/ },
      { send: 'PUB _INBOX.Zx81kqVb.1 2\r\nok\r\n', until: /MSG _INBOX\.Zx81kqVb\.1 2 2\r\nok\r\n/ },
      { send: `PUB orders.big ${big.length}\r\n${big}\r\n`, until: /MSG orders\.big 1 3000\r\nv+\r\n/ },
      { send: 'UNSUB 1\r\nPING\r\n', until: /PONG\r\n/ },
      { send: 'PUB orders.paid 99999999\r\n', until: /-ERR/ },
    ],
    /INFO \{.*\} ?\r\n/,
  );
  await proxy.settle();
  save('nats', 'tcp', 'raw-headers-request-reply', "INFO, CONNECT (verbose off, headers on) + PING, SUB with a queue group and an inbox, HPUB with traceparent and a reply-to and its HMSG, the reply PUB and its MSG, a 3000-byte payload, UNSUB, an oversized PUB: -ERR 'Maximum Payload Violation'", 'raw socket', 'nats-server', proxy.conversations[1]);
  await nats.stop();
}

/**
 * TLS handshakes (the record layer as it crosses the wire): curl and openssl s_client against nginx
 * serving a self-signed certificate for *.riptide.test, through the recording proxy. curl is told
 * the name resolves to the proxy (--resolve), so it sends the SNI.
 */
async function recordTls(): Promise<void> {
  const nginx = await startTlsNginx();
  const proxy = await tcpProxy(nginx.port);
  const host = 'shop.riptide.test';
  const curl = (args: string[]): Promise<string> => runAsync('curl', ['-sS', '--max-time', '5', '--resolve', `${host}:${proxy.port}:127.0.0.1`, ...args, `https://${host}:${proxy.port}/`]).catch((e: unknown) => String(e));
  const runs: Array<[string, string, string, () => Promise<unknown>]> = [
    ['curl-tls13-h2', 'curl → nginx: TLS 1.3, SNI shop.riptide.test, ALPN h2 and http/1.1 offered, h2 chosen, one GET', 'curl 7.88 (OpenSSL 3.0)', () => curl(['-k'])],
    ['curl-tls12-http1', 'curl → nginx: TLS 1.2 only (--tls-max 1.2), ALPN http/1.1, the server certificate in the clear, ChangeCipherSpec, encrypted Finished, one GET', 'curl 7.88 (OpenSSL 3.0)', () => curl(['-k', '--tls-max', '1.2', '--http1.1'])],
    ['curl-tls12-unknown-ca', 'curl → nginx over TLS 1.2 without trusting the self-signed certificate: the client sends a fatal unknown_ca alert', 'curl 7.88 (OpenSSL 3.0)', () => curl(['--tls-max', '1.2', '--http1.1'])],
    ['s-client-no-alpn-match', "openssl s_client offering ALPN 'riptide/1' only: nginx answers the ClientHello with a fatal no_application_protocol alert", 'openssl s_client 3.0', () => runAsync('sh', ['-c', `openssl s_client -connect 127.0.0.1:${proxy.port} -servername ${host} -alpn riptide/1 </dev/null`]).catch((e: unknown) => String(e))],
  ];
  for (const [name, description, client, run] of runs) {
    const before = proxy.conversations.length;
    await run();
    await proxy.settle();
    save('tls', 'tcp', name, description, client, 'nginx 1.22 (OpenSSL 3.0)', proxy.conversations[before]);
  }
  await nginx.stop();
}

const RECORDERS: Record<string, () => Promise<void>> = {
  http1: recordHttp1,
  http2: recordHttp2,
  grpc: recordGrpc,
  redis: recordRedis,
  dns: recordDns,
  mqtt: recordMqtt,
  'mqtt-filters': recordMqttFilters,
  postgresql: recordPostgres,
  mysql: recordMysql,
  'mysql-login': recordMysqlLogin,
  'mysql-compressed': recordMysqlCompressed,
  amqp: recordAmqp,
  zookeeper: recordZookeeper,
  mongodb: recordMongodb,
  kafka: recordKafka,
  memcached: recordMemcached,
  nats: recordNats,
  tls: recordTls,
};

async function main(): Promise<void> {
  const wanted = process.argv.slice(2);
  for (const [name, fn] of Object.entries(RECORDERS)) {
    if (wanted.length > 0 && !wanted.includes(name)) continue;
    process.stdout.write(`${name}:\n`);
    await fn();
  }
}

for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => process.exit(130));

main().then(
  () => process.exit(0),
  (e: unknown) => {
    process.stderr.write(`record-fixtures: ${e instanceof Error ? e.stack : String(e)}\n`);
    process.exit(1);
  },
);

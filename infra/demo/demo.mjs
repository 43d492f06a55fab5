#!/usr/bin/env node
// The demo system `riptide up --demo` starts: plain, uninstrumented Node services on loopback.
// Nothing here knows about tracing — no headers are added, no SDK is loaded — which is the point.
//
//   loadgen ──http/1──▶ gateway ──http/2 (h2c)──▶ orders ──dns──▶ dns
//                          │                         └──http/1──▶ payments
//                          └──http/1──▶ inventory
//
//   node infra/demo/demo.mjs <role> <ports-json>
//   roles: dns gateway orders payments inventory loadgen; ports-json: {"dns":…,"gateway":…,…}
import { createSocket } from 'node:dgram';
import { Resolver } from 'node:dns/promises';
import http from 'node:http';
import http2 from 'node:http2';

const [role, portsJson] = process.argv.slice(2);
const ports = JSON.parse(portsJson ?? '{}');
process.title = `demo-${role}`; // becomes the process name the agent reports
const HOST = '127.0.0.1';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
// RIPTIDE_DEMO_LATENCY scales the services' simulated work (1 = as shipped, 0 = none).
const LATENCY = Number(process.env.RIPTIDE_DEMO_LATENCY ?? 1);
const jitter = (lo, hi) => LATENCY * (lo + Math.random() * (hi - lo));

function getJson(port, path) {
  return new Promise((resolve, reject) => {
    http
      .get({ host: HOST, port, path, agent: keepAlive }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode, body }));
      })
      .on('error', reject);
  });
}
const keepAlive = new http.Agent({ keepAlive: true, maxSockets: 64 });

function listen(server, port) {
  server.listen(port, HOST, () => process.stdout.write(`demo-${role} listening on ${HOST}:${port}\n`));
}

// A tiny authoritative DNS server: A records for *.demo.riptide → 127.0.0.1, NXDOMAIN otherwise.
function dnsServer() {
  const sock = createSocket('udp4');
  sock.on('message', (q, peer) => {
    if (q.length < 12) return;
    let off = 12;
    const labels = [];
    while (off < q.length && q[off] !== 0 && labels.length < 32) {
      labels.push(q.subarray(off + 1, off + 1 + q[off]).toString('latin1'));
      off += q[off] + 1;
    }
    const qend = off + 5; // zero label + qtype + qclass
    if (qend > q.length) return;
    const qtype = q.readUInt16BE(off + 1);
    const name = labels.join('.').toLowerCase();
    const known = name.endsWith('.demo.riptide');
    const answer = known && qtype === 1;
    const head = Buffer.alloc(12);
    head.writeUInt16BE(q.readUInt16BE(0), 0);
    head.writeUInt16BE(0x8180 | (known ? 0 : 3), 2); // response, RD+RA, rcode
    head.writeUInt16BE(1, 4);
    head.writeUInt16BE(answer ? 1 : 0, 6);
    const question = q.subarray(12, qend);
    const rr = answer ? Buffer.from([0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 30, 0, 4, 127, 0, 0, 1]) : Buffer.alloc(0);
    sock.send(Buffer.concat([head, question, rr]), peer.port, peer.address);
  });
  sock.bind(ports.dns, HOST, () => process.stdout.write(`demo-dns listening on ${HOST}:${ports.dns}/udp\n`));
}

function gateway() {
  let session = null;
  const orders = () => {
    if (!session || session.closed || session.destroyed) {
      session = http2.connect(`http://${HOST}:${ports.orders}`);
      session.on('error', () => (session = null));
    }
    return session;
  };
  const callOrders = (item) =>
    new Promise((resolve, reject) => {
      const req = orders().request({ ':method': 'POST', ':path': `/orders?item=${item}`, 'content-type': 'application/json' });
      let status = 0;
      let body = '';
      req.on('response', (h) => (status = h[':status']));
      req.setEncoding('utf8');
      req.on('data', (c) => (body += c));
      req.on('end', () => resolve({ status, body }));
      req.on('error', reject);
      req.end(JSON.stringify({ item }));
    });
  listen(
    http.createServer(async (req, res) => {
      const url = new URL(req.url, 'http://gateway');
      if (url.pathname !== '/checkout') {
        res.writeHead(404).end('not found');
        return;
      }
      const item = url.searchParams.get('item') ?? '1';
      try {
        const stock = await getJson(ports.inventory, `/stock/${item}`);
        const order = await callOrders(item);
        const ok = stock.status === 200 && order.status === 200;
        res.writeHead(ok ? 200 : 502, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ item, stock: stock.status, order: order.status }));
      } catch (err) {
        res.writeHead(503).end(String(err));
      }
    }),
    ports.gateway,
  );
}

function orders() {
  const resolver = new Resolver({ timeout: 500, tries: 1 });
  resolver.setServers([`${HOST}:${ports.dns}`]);
  const server = http2.createServer(async (req, res) => {
    req.resume();
    try {
      const [addr] = await resolver.resolve4('payments.demo.riptide');
      await sleep(jitter(1, 5));
      const pay = await getJson(ports.payments, `/pay?via=${addr}`);
      res.writeHead(pay.status === 200 ? 200 : 502, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ order: Math.floor(Math.random() * 1e6), payment: pay.status }));
    } catch (err) {
      res.writeHead(500).end(String(err));
    }
  });
  listen(server, ports.orders);
}

function payments() {
  listen(
    http.createServer(async (req, res) => {
      await sleep(jitter(5, 40));
      if (Math.random() < 0.08) res.writeHead(502).end('{"error":"card network timeout"}');
      else res.writeHead(200, { 'content-type': 'application/json' }).end('{"paid":true}');
    }),
    ports.payments,
  );
}

function inventory() {
  listen(
    http.createServer(async (req, res) => {
      await sleep(jitter(1, 8));
      res.writeHead(200, { 'content-type': 'application/json' }).end(`{"stock":${Math.floor(Math.random() * 100)}}`);
    }),
    ports.inventory,
  );
}

async function loadgen() {
  const rate = Number(process.env.RIPTIDE_DEMO_RPS ?? 5);
  process.stdout.write(`demo-loadgen sending ${rate} requests/s to the gateway\n`);
  // Bounded: it stops by itself after an hour, or with its parent.
  const until = Date.now() + 3600_000;
  while (Date.now() < until) {
    getJson(ports.gateway, `/checkout?item=${1 + Math.floor(Math.random() * 20)}`).catch(() => {});
    await sleep(1000 / rate);
  }
}

process.on('disconnect', () => process.exit(0));
const roles = { dns: dnsServer, gateway, orders, payments, inventory, loadgen };
if (!roles[role]) {
  process.stderr.write(`demo: unknown role ${role}; one of ${Object.keys(roles).join(' ')}\n`);
  process.exit(2);
}
await roles[role]();

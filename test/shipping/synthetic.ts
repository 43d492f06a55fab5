/**
 * Synthetic but realistic traffic for shipping tests and the codec benchmark: a few processes on a
 * node talking HTTP/1.1 and Redis over a few dozen sockets, payload heads of 200–1024 bytes, W3C
 * trace context, repeated tuples. Deterministic (seeded), and every message has a unique `tsNs`,
 * which tests use as its identity.
 */
import type { ProcessInfo, SocketClosed } from '../../agent/capture/message.ts';
import type { Batch, ParsedMessage } from '../../agent/shipping/batch.ts';

/** Small deterministic PRNG (mulberry32). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const PROCS = [
  { name: 'nginx', cmdline: 'nginx: worker process' },
  { name: 'checkout', cmdline: '/app/checkout --port 8080' },
  { name: 'java', cmdline: 'java -Xmx2g -jar /srv/cart.jar' },
  { name: 'python3', cmdline: 'python3 -m gunicorn app:app -w 4' },
  { name: 'redis-server', cmdline: 'redis-server *:6379' },
];
const PATHS = ['/api/v1/cart', '/api/v1/checkout', '/api/v1/users/', '/healthz', '/api/v1/catalog/items', '/static/app.js'];
const KEYS = ['session:', 'cart:', 'user:', 'rate:limit:', 'inventory:'];
const enc = new TextEncoder();

function hex(r: () => number, n: number): string {
  let s = '';
  for (let i = 0; i < n; i++) s += Math.floor(r() * 16).toString(16);
  return s;
}

/** A JSON-looking value of about `len` characters with random ids and numbers (compresses like real data). */
function jsonish(r: () => number, len: number): string {
  let s = '{"ok":true,"items":[';
  while (s.length < len) {
    s += `{"id":"${hex(r, 12)}","sku":"SKU-${Math.floor(r() * 90000)}","qty":${Math.floor(r() * 9)},"price":${(r() * 300).toFixed(2)},"name":"${NAMES[Math.floor(r() * NAMES.length)]}"},`;
  }
  return s + '{}]}';
}
const NAMES = ['blue mug', 'red shirt', 'laptop stand', 'usb-c cable', 'desk lamp', 'notebook', 'headphones'];

interface Sock {
  socketId: number;
  pid: number;
  tid: number;
  processName: string;
  localIp: string;
  localPort: number;
  remoteIp: string;
  remotePort: number;
  redis: boolean;
  seq: number;
}

export class MessageFactory {
  private readonly r: () => number;
  private readonly sockets: Sock[] = [];
  readonly processes: ProcessInfo[] = [];
  private ts: bigint;
  private trace = 1;

  constructor(seed = 1, startNs = 1_700_000_000_000_000_000n, socketCount = 40) {
    this.r = rng(seed);
    this.ts = startNs;
    PROCS.forEach((p, i) => {
      this.processes.push({ pid: 1000 + i * 17, startTime: 123456 + i, name: p.name, cmdline: p.cmdline, containerId: hex(this.r, 64), cgroup: `/kubepods/burstable/pod${hex(this.r, 8)}` });
    });
    for (let i = 0; i < socketCount; i++) {
      const p = this.processes[i % PROCS.length];
      const redis = p.name === 'redis-server' || this.r() < 0.25;
      this.sockets.push({
        socketId: 0x1_0000_0000 + i * 7919,
        pid: p.pid,
        tid: p.pid + (i % 4),
        processName: p.name,
        localIp: `10.0.${i % 3}.${10 + (i % 7)}`,
        localPort: 30000 + i,
        remoteIp: `10.0.${(i + 1) % 3}.${20 + (i % 5)}`,
        remotePort: redis ? 6379 : 8080,
        redis,
        seq: Math.floor(this.r() * 2 ** 32),
      });
    }
  }

  /** Advance the clock: the next message's tsNs is at least this far after the previous one. */
  setClock(ns: bigint): void {
    if (ns > this.ts) this.ts = ns;
  }

  next(): ParsedMessage {
    const r = this.r;
    const s = this.sockets[Math.floor(r() * this.sockets.length)];
    const response = r() < 0.5;
    this.ts += BigInt(1000 + Math.floor(r() * 50_000));
    const tsNs = this.ts;
    let text: string;
    let l7: ParsedMessage['l7'];
    const traceId = hex(r, 32);
    if (s.redis) {
      const key = KEYS[Math.floor(r() * KEYS.length)] + Math.floor(r() * 5000);
      if (response) {
        const v = jsonish(r, 100 + Math.floor(r() * 700));
        text = `$${v.length}\r\n${v}\r\n`;
        l7 = [{ l7Protocol: 'redis', msgType: 'response', responseStatus: 'ok', responseLength: text.length }];
      } else {
        const v = jsonish(r, 60 + Math.floor(r() * 300));
        text = `*3\r\n$3\r\nSET\r\n$${key.length}\r\n${key}\r\n$${v.length}\r\n${v}\r\n`;
        l7 = [{ l7Protocol: 'redis', msgType: 'request', requestType: 'SET', requestResource: key, requestLength: text.length }];
      }
    } else {
      const path = PATHS[Math.floor(r() * PATHS.length)] + (r() < 0.5 ? String(Math.floor(r() * 10000)) : '');
      if (response) {
        const body = jsonish(r, 40 + Math.floor(r() * 700));
        text = `HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nDate: Tue, 14 Nov 2023 22:13:20 GMT\r\nServer: envoy\r\nx-envoy-upstream-service-time: ${Math.floor(r() * 40)}\r\n\r\n${body}`;
        l7 = [{ l7Protocol: 'http1', msgType: 'response', responseCode: 200, responseStatus: 'ok', responseLength: body.length }];
      } else {
        const xrid = `${hex(r, 8)}-${hex(r, 4)}-${hex(r, 4)}-${hex(r, 4)}-${hex(r, 12)}`;
        text = `GET ${path} HTTP/1.1\r\nHost: checkout.shop.svc.cluster.local:8080\r\nUser-Agent: Go-http-client/1.1\r\nAccept: application/json\r\ntraceparent: 00-${traceId}-${hex(r, 16)}-01\r\nX-Request-ID: ${xrid}\r\nAccept-Encoding: gzip\r\nCookie: session=${hex(r, 40)}\r\n\r\n`;
        l7 = [{ l7Protocol: 'http1', msgType: 'request', requestType: 'GET', requestDomain: 'checkout.shop.svc.cluster.local:8080', requestResource: path, endpoint: path, traceId, xRequestId: xrid }];
      }
    }
    const payload = enc.encode(text).subarray(0, 1024);
    const seq = s.seq;
    s.seq = (s.seq + text.length) % 2 ** 32;
    return {
      tsNs,
      enterNs: tsNs - (response ? 9000n : 0n),
      exitNs: tsNs + (response ? 0n : 12000n),
      pid: s.pid,
      tid: s.tid,
      coroutineId: 0,
      processName: s.processName,
      syscall: response ? 'read' : 'write',
      direction: response ? 'ingress' : 'egress',
      socketId: s.socketId,
      family: 'ipv4',
      l4: 'tcp',
      localIp: s.localIp,
      localPort: s.localPort,
      remoteIp: s.remoteIp,
      remotePort: s.remotePort,
      role: 'client',
      tcpSeq: seq,
      syscallTraceId: this.trace++,
      bytes: text.length,
      payload,
      l7,
    };
  }

  closeSocket(i: number): SocketClosed {
    const s = this.sockets[i % this.sockets.length];
    return { tsNs: this.ts, pid: s.pid, socketId: s.socketId };
  }
}

/** One batch of `count` synthetic messages, with its processes and a few closed sockets. */
export function syntheticBatch(count: number, seed = 1): Batch {
  const f = new MessageFactory(seed);
  const messages = Array.from({ length: count }, () => f.next());
  return {
    version: 1,
    agentId: 'node-a',
    host: 'node-a.example',
    slot: 566_666_666,
    slotSeconds: 3,
    part: 0,
    run: 1_700_000_000_000,
    messages,
    processes: f.processes,
    closed: [f.closeSocket(1), f.closeSocket(2)],
  };
}

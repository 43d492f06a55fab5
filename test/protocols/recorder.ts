/**
 * A recording proxy: client → proxy → real server, keeping every read of each direction as one
 * chunk, in order. Used by record-fixtures.ts to capture protocol fixtures from real software.
 * Only ever listens on and forwards to loopback.
 */

import dgram from 'node:dgram';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';

export type ChunkDir = 'c2s' | 's2c';
export interface RecordedChunk {
  dir: ChunkDir;
  /** base64 of the bytes one read returned */
  b64: string;
}
export interface FixtureFile {
  protocol: string;
  transport: 'tcp' | 'udp';
  name: string;
  description: string;
  /** The real software on each end. */
  client: string;
  server: string;
  chunks: RecordedChunk[];
}

export interface Conversation {
  chunks: RecordedChunk[];
}

export interface TcpProxy {
  port: number;
  conversations: Conversation[];
  /** Wait until every proxied connection has closed (or the timeout passes). */
  settle(timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

export async function tcpProxy(targetPort: number, targetHost = '127.0.0.1'): Promise<TcpProxy> {
  const conversations: Conversation[] = [];
  let open = 0;
  const server = net.createServer((client) => {
    const conv: Conversation = { chunks: [] };
    conversations.push(conv);
    open++;
    client.setNoDelay(true);
    const upstream = net.connect({ port: targetPort, host: targetHost });
    upstream.setNoDelay(true);
    let closed = 0;
    const done = (): void => {
      if (++closed === 2) open--;
    };
    client.on('data', (d: Buffer) => {
      conv.chunks.push({ dir: 'c2s', b64: d.toString('base64') });
      upstream.write(d);
    });
    upstream.on('data', (d: Buffer) => {
      conv.chunks.push({ dir: 's2c', b64: d.toString('base64') });
      client.write(d);
    });
    client.on('end', () => upstream.end());
    upstream.on('end', () => client.end());
    client.on('close', done);
    upstream.on('close', done);
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    conversations,
    async settle(timeoutMs = 3000) {
      const until = Date.now() + timeoutMs;
      while (open > 0 && Date.now() < until) await sleep(20);
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

export interface UdpProxy {
  port: number;
  conversations: Conversation[];
  close(): Promise<void>;
}

/** One conversation per client address; each forwarded through its own upstream socket. */
export async function udpProxy(targetPort: number): Promise<UdpProxy> {
  const conversations: Conversation[] = [];
  const sock = dgram.createSocket('udp4');
  const upstreams = new Map<string, dgram.Socket>();
  sock.on('message', (msg, rinfo) => {
    const key = `${rinfo.address}:${rinfo.port}`;
    let up = upstreams.get(key);
    if (!up) {
      const conv: Conversation = { chunks: [] };
      conversations.push(conv);
      const u = dgram.createSocket('udp4');
      u.on('message', (reply) => {
        conv.chunks.push({ dir: 's2c', b64: reply.toString('base64') });
        sock.send(reply, rinfo.port, rinfo.address);
      });
      upstreams.set(key, u);
      up = u;
      (up as dgram.Socket & { conv?: Conversation }).conv = conv;
    }
    (up as dgram.Socket & { conv?: Conversation }).conv?.chunks.push({ dir: 'c2s', b64: msg.toString('base64') });
    up.send(msg, targetPort, '127.0.0.1');
  });
  await new Promise<void>((resolve) => sock.bind(0, '127.0.0.1', resolve));
  return {
    port: sock.address().port,
    conversations,
    async close() {
      for (const u of upstreams.values()) u.close();
      await new Promise<void>((resolve) => sock.close(() => resolve()));
    },
  };
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** A free loopback TCP port (closed again before returning). */
export async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

export async function waitForPort(port: number, timeoutMs = 20000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    const ok = await new Promise<boolean>((resolve) => {
      const c = net.connect({ port, host: '127.0.0.1' });
      c.on('connect', () => {
        c.destroy();
        resolve(true);
      });
      c.on('error', () => resolve(false));
    });
    if (ok) return;
    await sleep(100);
  }
  throw new Error(`nothing listening on 127.0.0.1:${port} after ${timeoutMs} ms`);
}

export function writeFixture(dir: string, f: FixtureFile): void {
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, `${f.name}.json`), JSON.stringify(f, null, 1) + '\n');
}

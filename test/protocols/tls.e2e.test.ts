// TLS handshake metadata under the real `riptide agent --output -`: curl → Debian's nginx serving
// HTTPS with a self-signed certificate made by the test (servers.ts#startTlsNginx). Without
// `--tls` the agent cannot read the requests, but the handshake says where the connection goes: a
// `tls` ClientHello with the SNI, answered by the ServerHello's version. With `--tls` the same
// socket also gives its decrypted HTTP. A TLS connection opened before the agent started has no
// handshake left to read: its ciphertext must yield nothing (never a misread protocol), while its
// plaintext is read with `--tls`. Needs root (eBPF).
import { execFile } from 'node:child_process';
import https from 'node:https';
import fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { OutputLine, RunningAgent } from '../helpers/agent.ts';
import { startAgent } from '../helpers/agent.ts';
import type { RunningServer } from './servers.ts';
import { startTlsNginx } from './servers.ts';

interface Seen {
  l7_protocol: string;
  msg_type: string;
  request_type?: string;
  request_domain?: string;
  endpoint?: string;
  version?: string;
  response_status?: string;
  response_exception?: string;
  attributes?: Record<string, string>;
  socket_id: number;
  role: string;
  local_port: number;
}

function parsed(lines: readonly OutputLine[]): Seen[] {
  return lines.flatMap((l) => ((l.l7 as Array<Record<string, unknown>> | undefined) ?? []).map((m) => ({ ...(m as unknown as Seen), socket_id: l.socket_id, role: l.role, local_port: l.local_port })));
}

const HOST = 'shop.riptide.test';

function curl(port: number, args: string[] = []): Promise<string> {
  return new Promise((resolve) => {
    execFile('curl', ['-sS', '--max-time', '5', '--resolve', `${HOST}:${port}:127.0.0.1`, ...args, `https://${HOST}:${port}/`], (err, out, errOut) => resolve(err ? `${errOut}` : out));
  });
}

const canCapture = process.getuid?.() === 0;
if (!canCapture) process.stdout.write('tls.e2e: skipped, eBPF capture needs root\n');

describe.skipIf(!canCapture)('tls handshake metadata under the eBPF agent (curl → nginx)', () => {
  let nginx: RunningServer & { cert: string };
  let keepAlive: https.Agent;
  let earlyPort = 0;

  function get(path: string): Promise<number> {
    return new Promise((resolve, reject) => {
      const req = https.get({ host: '127.0.0.1', port: nginx.port, servername: HOST, path, agent: keepAlive, ca: fs.readFileSync(nginx.cert) }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      });
      req.on('socket', (s) => s.once('secureConnect', () => (earlyPort = s.localPort ?? 0)));
      req.on('error', reject);
    });
  }

  beforeAll(async () => {
    nginx = await startTlsNginx();
    keepAlive = new https.Agent({ keepAlive: true, maxSockets: 1 });
    // A pooled HTTPS connection, handshake done before any agent runs.
    expect(await get('/api/early')).toBe(201);
  }, 60_000);

  afterAll(async () => {
    keepAlive?.destroy();
    await nginx?.stop();
  });

  async function withAgent(tls: boolean, body: (agent: RunningAgent) => Promise<void>): Promise<void> {
    const agent = await startAgent(['--filter-port', String(nginx.port)], 30_000, { tls });
    try {
      await body(agent);
    } finally {
      await agent.stop();
    }
  }

  const hello = (m: Seen): boolean => m.l7_protocol === 'tls' && m.request_type === 'ClientHello' && m.request_domain === HOST;

  it('without --tls: a new connection shows a tls span with the SNI from both ends; the pooled one yields nothing', async () => {
    await withAgent(false, async (agent) => {
      expect(await get('/api/pooled')).toBe(201); // the connection from before the agent, still in use
      expect(await curl(nginx.port, ['-k'])).toBe('hello\n');
      await agent.waitFor((l) => parsed([l]).some((m) => hello(m) && m.role === 'server'), 1, 15_000);
      await agent.waitFor((l) => parsed([l]).some((m) => m.l7_protocol === 'tls' && m.msg_type === 'response' && m.role === 'client'), 1, 15_000);
      const all = parsed(agent.lines);
      const ch = all.filter(hello);
      expect(ch.map((m) => m.role).sort()).toEqual(['client', 'server']);
      expect(ch[0]).toMatchObject({ endpoint: HOST, version: 'TLSv1.3', attributes: { alpn: 'h2,http/1.1' } });
      expect(all.find((m) => m.l7_protocol === 'tls' && m.msg_type === 'response')).toMatchObject({ response_status: 'ok', version: 'TLSv1.3' });
      // Ciphertext reaches no parser: nothing but tls on any socket, and nothing on the pooled one.
      expect([...new Set(all.map((m) => m.l7_protocol))]).toEqual(['tls']);
      expect(earlyPort).toBeGreaterThan(0);
      expect(agent.lines.filter((l) => (l.local_port === earlyPort || l.remote_port === earlyPort) && ((l.l7 as unknown[] | undefined)?.length ?? 0) > 0)).toEqual([]);
    });
  }, 90_000);

  it('a refused handshake: the client rejecting the self-signed certificate (TLS 1.2) sends an unknown_ca alert', async () => {
    await withAgent(false, async (agent) => {
      await curl(nginx.port, ['--tls-max', '1.2', '--http1.1']);
      await agent.waitFor((l) => parsed([l]).some((m) => m.l7_protocol === 'tls' && m.request_type === 'Alert'), 1, 15_000);
      const alert = parsed(agent.lines).find((m) => m.l7_protocol === 'tls' && m.request_type === 'Alert');
      expect(alert?.attributes).toEqual({ alert: 'unknown_ca', level: 'fatal' });
      expect(parsed(agent.lines).filter(hello).every((m) => m.version === 'TLSv1.2')).toBe(true);
    });
  }, 90_000);

  it('with --tls: the same socket gives its tls handshake and its decrypted HTTP', async () => {
    await withAgent(true, async (agent) => {
      expect(await curl(nginx.port, ['-k', '--http1.1'])).toBe('hello\n');
      await agent.waitFor((l) => parsed([l]).some((m) => m.l7_protocol === 'http1' && m.msg_type === 'request' && m.role === 'client'), 1, 20_000);
      await agent.waitFor((l) => parsed([l]).some((m) => hello(m) && m.role === 'client'), 1, 20_000);
      const all = parsed(agent.lines).filter((m) => m.role === 'client');
      const ch = all.find(hello)!;
      const http = all.find((m) => m.l7_protocol === 'http1' && m.msg_type === 'request')!;
      expect(http.socket_id).toBe(ch.socket_id);
      expect(ch.attributes?.alpn).toBe('http/1.1');
    });
  }, 120_000);
});

// TLS end to end: curl → nginx (ssl) → a Python `ssl` HTTPS service on loopback, through the real
// agent shipping to a local store, the functions building spans into chDB, and the query API.
// The four spans (curl client, nginx server, nginx client, Python server) carry method, path and
// status from the plaintext, the `tls` attribute, pair request with response on each end, and
// assemble into one trace rooted at curl's span.
import { execFile, execFileSync, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Hono } from 'hono';
import { createQueryApp } from '../../functions/query/app.ts';
import { startFunctions } from '../../functions/runtime/functions-runtime.ts';
import type { Functions } from '../../functions/runtime/functions-runtime.ts';
import type { SpanJson } from '../../functions/query/span.ts';
import { REPO, RIPTIDE } from '../helpers/agent.ts';
import { freePort, waitForPort } from '../protocols/recorder.ts';

const PYTHON_SERVER = `
import http.server, ssl, sys
port, cert, key = int(sys.argv[1]), sys.argv[2], sys.argv[3]
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'
    def do_GET(self):
        body = ('py:' + self.path).encode()
        self.send_response(202)
        self.send_header('content-length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
s = http.server.HTTPServer(('127.0.0.1', port), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
s.socket = ctx.wrap_socket(s.socket, server_side=True)
s.serve_forever()
`;

const children: ChildProcess[] = [];
let dir: string;
let fx: Functions | undefined;
let app: Hono;
let nginxPort = 0;
let pyPort = 0;
const startedAt = Date.now();

function launch(cmd: string, args: string[], opts: { cwd?: string } = {}): ChildProcess {
  const c = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'], ...opts });
  children.push(c);
  return c;
}

function curl(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => execFile('curl', args, { timeout: 60_000 }, (e, out) => (e ? reject(e) : resolve(String(out)))));
}

async function api<T>(p: string): Promise<T> {
  const res = await app.request(p);
  if (res.status !== 200) throw new Error(`${p}: ${res.status} ${await res.text()}`);
  return (await res.json()) as T;
}

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'riptide-tls-trace-'));
  const cert = path.join(dir, 'cert.pem');
  const key = path.join(dir, 'key.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=localhost'], { stdio: 'ignore' });
  [nginxPort, pyPort] = [await freePort(), await freePort()];
  launch('python3', ['-c', PYTHON_SERVER, String(pyPort), cert, key]);
  fs.writeFileSync(
    path.join(dir, 'nginx.conf'),
    `daemon off; master_process off; worker_processes 1; pid ${dir}/nginx.pid; error_log ${dir}/error.log;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path ${dir}/body; proxy_temp_path ${dir}/proxy; fastcgi_temp_path ${dir}/fcgi;
  uwsgi_temp_path ${dir}/uwsgi; scgi_temp_path ${dir}/scgi;
  server {
    listen 127.0.0.1:${nginxPort} ssl;
    ssl_certificate ${cert};
    ssl_certificate_key ${key};
    location / { proxy_pass https://127.0.0.1:${pyPort}; proxy_ssl_verify off; }
  }
}
`,
  );
  launch('nginx', ['-c', path.join(dir, 'nginx.conf'), '-p', dir]);
  await Promise.all([waitForPort(nginxPort), waitForPort(pyPort)]);

  const store = `file://${dir}/store`;
  const agent = launch(process.execPath, [RIPTIDE, 'agent', '--data-dir', path.join(dir, 'agent'), '--store', store, '--port', '0', '--slot-seconds', '1', '--tls', '--filter-port', `${nginxPort},${pyPort}`], { cwd: REPO });
  let agentErr = '';
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`agent did not start: ${agentErr}`)), 90_000);
    agent.stderr?.on('data', (d: Buffer) => {
      agentErr = (agentErr + d.toString()).slice(-8000);
      if (agentErr.includes('capturing')) {
        clearTimeout(t);
        resolve();
      }
    });
    agent.once('exit', (code) => reject(new Error(`agent exited ${code}: ${agentErr}`)));
  });
  expect(agentErr).not.toContain('TLS plaintext not captured');
  fx = await startFunctions({ dataDir: path.join(dir, 'fx'), store, pollMs: 500, kubernetes: 'off', log: () => {} });
  await fx.runtime?.start();
  app = createQueryApp({ clickhouse: fx.ch });
}, 300_000);

afterAll(async () => {
  for (const c of children.reverse()) {
    if (c.exitCode === null && c.signalCode === null) {
      const exited = new Promise<void>((r) => c.once('exit', () => r()));
      c.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
      if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    }
  }
  await fx?.close();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
}, 120_000);

describe('TLS through the whole product: curl → nginx (ssl) → Python ssl', () => {
  it('stores the four HTTPS spans with method, path, status and tls, and assembles them into one trace', async () => {
    expect(await curl(['-sSk', `https://127.0.0.1:${nginxPort}/tls-trace/1`])).toBe('py:/tls-trace/1');
    const start = Math.floor(startedAt / 1000) - 60;
    type Row = SpanJson;
    const want = [`client ${nginxPort}`, `server ${nginxPort}`, `client ${pyPort}`, `server ${pyPort}`];
    let mine: Row[] = [];
    for (const deadline = Date.now() + 90_000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 1000))) {
      const { spans } = await api<{ spans: Row[] }>(`/api/v1/spans?protocol=http1&start=${start}&limit=1000`);
      mine = spans.filter((s) => s.request_resource === '/tls-trace/1' && (s.server_port === nginxPort || s.server_port === pyPort));
      if (want.every((k) => mine.some((s) => `${s.side} ${s.server_port}` === k && s.pair_state === 'paired'))) break;
    }
    const by = new Map(mine.filter((s) => s.pair_state === 'paired').map((s) => [`${s.side} ${s.server_port}`, s]));
    expect([...by.keys()].sort(), JSON.stringify(mine.map((s) => [s.side, s.server_port, s.pair_state, s.process_name]))).toEqual([...want].sort());
    for (const k of want) {
      const s = by.get(k)!;
      expect(s.request_type, k).toBe('GET');
      expect(s.response_code, k).toBe(202);
      expect(s.attributes.tls, k).toBe('true');
    }
    expect(by.get(`client ${nginxPort}`)!.process_name).toBe('curl');
    expect(by.get(`server ${nginxPort}`)!.process_name).toBe('nginx');
    expect(by.get(`client ${pyPort}`)!.process_name).toBe('nginx');

    // One trace from curl's span: nginx server under curl, nginx's upstream call under it, Python under that.
    const root = by.get(`client ${nginxPort}`)!;
    const { spans: trace } = await api<{ spans: SpanJson[] }>(`/api/v1/traces/${root.span_id}`);
    const parentOf = new Map(trace.map((s) => [s.span_id, s.parent_id]));
    // Besides the four HTTP spans: the TLS handshake nginx made with Python for this request (`tls`
    // spans from the cleartext ClientHello/ServerHello, docs/TLS.md), nginx's end under nginx's
    // server span and Python's under it (paired by TCP sequence, 5 bytes of slack: Python reads the
    // record header first).
    const handshakes = trace.filter((s) => s.l7_protocol === 'tls');
    expect(handshakes.map((s) => `${s.side} ${s.server_port} ${s.request_type} ${s.process_name} ${s.pair_state}`).sort()).toEqual([`client ${pyPort} ClientHello nginx paired`, `server ${pyPort} ClientHello python3 paired`]);
    const hsClient = handshakes.find((s) => s.side === 'client')!;
    expect(hsClient.parent_id).toBe(by.get(`server ${nginxPort}`)!.span_id);
    expect(handshakes.find((s) => s.side === 'server')!.parent_id).toBe(hsClient.span_id);
    expect(trace.filter((s) => s.l7_protocol !== 'tls').map((s) => s.span_id).sort()).toEqual([...by.values()].map((s) => s.span_id).sort());
    expect(parentOf.get(by.get(`server ${nginxPort}`)!.span_id)).toBe(root.span_id);
    expect(parentOf.get(by.get(`client ${pyPort}`)!.span_id)).toBe(by.get(`server ${nginxPort}`)!.span_id);
    expect(parentOf.get(by.get(`server ${pyPort}`)!.span_id)).toBe(by.get(`client ${pyPort}`)!.span_id);
  }, 240_000);
});

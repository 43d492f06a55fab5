// TLS plaintext on real encrypted loopback traffic, through the real agent (`riptide agent
// --output -`): curl → nginx (ssl) → a Python `ssl` HTTPS service, Node `https` client → server,
// and HTTP/2 over TLS (ALPN h2) with Node's http2. Certificates are made here with the openssl CLI.
// The Python service runs before the agent starts (its libssl is found by the start-up scan), the
// others after (found on exec). Every end must show the HTTP method, path and status with tls set,
// client and server must pair by TCP sequence, and nginx's incoming request must carry the same
// syscall-trace id as its call upstream (how the trace through nginx is assembled).
import { execFile, execFileSync, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { OutputLine, RunningAgent } from '../helpers/agent.ts';
import { freePort, payloadText, startAgent } from '../helpers/agent.ts';

const run = promisify(execFile);

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
print('up', flush=True)
s.serve_forever()
`;

const NODE_HTTPS_SERVER = `
const fs = require('fs');
const [port, cert, key] = process.argv.slice(1);
require('https').createServer({ cert: fs.readFileSync(cert), key: fs.readFileSync(key) }, (q, s) => {
  s.writeHead(201, { 'content-type': 'text/plain' });
  s.end('node:' + q.url);
}).listen(Number(port), '127.0.0.1', () => console.log('up'));
`;

const NODE_HTTPS_CLIENT = `
const [port, path] = process.argv.slice(1);
require('https').get({ host: '127.0.0.1', port: Number(port), path, rejectUnauthorized: false }, (r) => {
  let b = ''; r.on('data', (c) => (b += c)); r.on('end', () => { console.log(r.statusCode + ' ' + b); });
}).on('error', (e) => { console.error(e.message); process.exit(1); });
`;

const NODE_H2_SERVER = `
const fs = require('fs');
const [port, cert, key] = process.argv.slice(1);
const s = require('http2').createSecureServer({ cert: fs.readFileSync(cert), key: fs.readFileSync(key) });
s.on('stream', (stream, headers) => { stream.respond({ ':status': 203, 'content-type': 'text/plain' }); stream.end('h2:' + headers[':path']); });
s.listen(Number(port), '127.0.0.1', () => console.log('up'));
`;

const NODE_H2_CLIENT = `
const [port, path] = process.argv.slice(1);
const c = require('http2').connect('https://127.0.0.1:' + port, { rejectUnauthorized: false });
c.on('error', (e) => { console.error(e.message); process.exit(1); });
const r = c.request({ ':path': path });
let status = 0, b = '';
r.on('response', (h) => (status = h[':status']));
r.on('data', (d) => (b += d));
r.on('end', () => { console.log(status + ' ' + b); c.close(); });
r.end();
`;

function launch(cmd: string, args: string[]): ChildProcess {
  return spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Waits for 'up' on stdout (or the port to accept, for servers that print nothing). */
async function up(p: ChildProcess, port: number): Promise<void> {
  let err = '';
  p.stderr?.on('data', (c: Buffer) => (err += c.toString()));
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (p.exitCode !== null) throw new Error(`${p.spawnfile} exited ${p.exitCode}: ${err}`);
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect(port, '127.0.0.1', () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`${p.spawnfile} did not listen on ${port}: ${err}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function stop(p: ChildProcess | undefined): Promise<void> {
  if (!p || p.exitCode !== null || p.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    p.once('exit', () => resolve());
    p.kill('SIGTERM');
    setTimeout(() => p.kill('SIGKILL'), 3000).unref();
  });
}

const text = (l: OutputLine): string => payloadText(l);

/**
 * Lines of the given ones that are neither plaintext (`tls`) nor the cleartext record layer the
 * agent passes to the `tls` parser (handshake and alert records before the first ChangeCipherSpec
 * or application data, agent/capture/tls-join.ts#handshakeRecords): i.e. ciphertext that reached
 * a parser. Each socket direction's record-layer lines must add up to whole records of type 21/22.
 */
function ciphertextLines(lines: readonly OutputLine[]): string[] {
  const bad: string[] = [];
  const need = new Map<string, number>();
  for (const l of lines) {
    if (l.tls) continue;
    const key = `${l.socket_id} ${l.direction}`;
    const b = Buffer.from(l.payload, 'base64');
    let off = Math.min(need.get(key) ?? 0, l.bytes);
    let left = (need.get(key) ?? 0) - off;
    while (off < l.bytes) {
      if (off + 5 > b.length || (b[off] !== 21 && b[off] !== 22)) {
        bad.push(`${l.process_name} ${l.direction} ${l.bytes}`);
        left = 0;
        break;
      }
      const end = off + 5 + b.readUInt16BE(off + 3);
      left = Math.max(0, end - l.bytes);
      off = end;
    }
    need.set(key, left);
  }
  return bad;
}

describe('TLS plaintext capture', () => {
  let dir: string;
  let agent: RunningAgent;
  const procs: ChildProcess[] = [];
  let nginxPort: number;
  let pyPort: number;
  let nodePort: number;
  let h2Port: number;
  let python: ChildProcess;
  let nginx: ChildProcess;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'rt-tls-'));
    const cert = join(dir, 'cert.pem');
    const key = join(dir, 'key.pem');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=localhost'], { stdio: 'ignore' });
    [nginxPort, pyPort, nodePort, h2Port] = [await freePort(), await freePort(), await freePort(), await freePort()];

    // Running before the agent: found by the start-up scan.
    python = launch('python3', ['-c', PYTHON_SERVER, String(pyPort), cert, key]);
    procs.push(python);
    await up(python, pyPort);

    agent = await startAgent(['--filter-port', [nginxPort, pyPort, nodePort, h2Port].join(',')], 30_000, { tls: true });
    expect(agent.stderr()).not.toContain('TLS plaintext not captured');

    // Started after the agent: found when they exec.
    writeFileSync(
      join(dir, 'nginx.conf'),
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
    nginx = launch('nginx', ['-c', join(dir, 'nginx.conf'), '-p', dir]);
    const node = launch(process.execPath, ['-e', NODE_HTTPS_SERVER, String(nodePort), cert, key]);
    const h2 = launch(process.execPath, ['-e', NODE_H2_SERVER, String(h2Port), cert, key]);
    procs.push(nginx, node, h2);
    await Promise.all([up(nginx, nginxPort), up(node, nodePort), up(h2, h2Port)]);
  });

  afterAll(async () => {
    await agent?.stop();
    await Promise.all(procs.map(stop));
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** Lines of the test's own ports. */
  const ours = (): OutputLine[] => agent.lines.filter((l) => [nginxPort, pyPort, nodePort, h2Port].some((p) => l.local_port === p || l.remote_port === p));

  it('curl → nginx → Python ssl: method, path and status at every end, paired by sequence, linked through nginx', async () => {
    const { stdout } = await run('curl', ['-sSk', `https://127.0.0.1:${nginxPort}/via-nginx?q=1`]);
    expect(stdout).toBe('py:/via-nginx?q=1');
    const isReq = (l: OutputLine): boolean => l.request_type === 'GET' && l.request_resource === '/via-nginx?q=1';
    const isResp = (l: OutputLine): boolean => l.response_code === 202;
    await agent.waitFor((l) => l.process_name === 'curl' && isResp(l), 1, 15_000);

    const lines = ours();
    const find = (what: string, pred: (l: OutputLine) => boolean): OutputLine => {
      const hit = lines.find(pred);
      expect(hit, `${what}; have ${lines.map((l) => `${l.process_name} ${l.direction} ${l.local_port}->${l.remote_port} ${text(l).slice(0, 20)}`).join(' | ')}`).toBeDefined();
      return hit!;
    };
    const curlReq = find('curl request', (l) => l.process_name === 'curl' && l.direction === 'egress' && isReq(l));
    const ngIn = find('nginx incoming request', (l) => l.pid === nginx.pid && l.direction === 'ingress' && l.local_port === nginxPort && isReq(l));
    const ngOut = find('nginx upstream request', (l) => l.pid === nginx.pid && l.direction === 'egress' && l.remote_port === pyPort && isReq(l));
    const pyIn = find('python request', (l) => l.pid === python.pid && l.direction === 'ingress' && isReq(l));
    const pyResp = find('python response', (l) => l.pid === python.pid && l.direction === 'egress' && isResp(l));
    const ngUpResp = find('nginx upstream response', (l) => l.pid === nginx.pid && l.direction === 'ingress' && l.remote_port === pyPort && isResp(l));
    const ngResp = find('nginx response', (l) => l.pid === nginx.pid && l.direction === 'egress' && l.local_port === nginxPort && isResp(l));
    const curlResp = find('curl response', (l) => l.process_name === 'curl' && l.direction === 'ingress' && isResp(l));

    for (const l of [curlReq, ngIn, ngOut, pyIn, pyResp, ngUpResp, ngResp, curlResp]) {
      expect(l.tls, `${l.process_name} ${l.direction}`).toBe(true);
      expect(l.l7_protocol).toBe('http1');
    }
    // Client and server ends pair by TCP sequence, on both hops, both ways.
    expect(ngIn.tcp_seq).toBe(curlReq.tcp_seq);
    expect(curlResp.tcp_seq).toBe(ngResp.tcp_seq);
    expect(pyIn.tcp_seq).toBe(ngOut.tcp_seq);
    expect(ngUpResp.tcp_seq).toBe(pyResp.tcp_seq);
    // The trace through nginx: its incoming request and its upstream call share the thread's flow id.
    expect(ngIn.syscall_trace_id).toBeGreaterThan(0);
    expect(ngOut.syscall_trace_id).toBe(ngIn.syscall_trace_id);
    expect(ngIn.role).toBe('server');
    expect(ngOut.role).toBe('client');
    // Ciphertext is never handed to the parsers: every line of these sockets is plaintext or handshake.
    expect(ciphertextLines(lines)).toEqual([]);
  });

  it('Node https client → Node https server (static OpenSSL in the node binary)', async () => {
    const { stdout } = await run(process.execPath, ['-e', NODE_HTTPS_CLIENT, String(nodePort), '/node-path']);
    expect(stdout.trim()).toBe('201 node:/node-path');
    await agent.waitFor((l) => l.direction === 'ingress' && l.remote_port === nodePort && l.response_code === 201, 1, 15_000);
    const lines = ours().filter((l) => l.local_port === nodePort || l.remote_port === nodePort);
    const req = lines.filter((l) => l.request_type === 'GET' && l.request_resource === '/node-path');
    const resp = lines.filter((l) => l.response_code === 201);
    const clientReq = req.find((l) => l.direction === 'egress' && l.remote_port === nodePort);
    const serverReq = req.find((l) => l.direction === 'ingress' && l.local_port === nodePort);
    const serverResp = resp.find((l) => l.direction === 'egress' && l.local_port === nodePort);
    const clientResp = resp.find((l) => l.direction === 'ingress' && l.remote_port === nodePort);
    expect([clientReq, serverReq, serverResp, clientResp].map((l) => l?.tls)).toEqual([true, true, true, true]);
    expect(serverReq!.tcp_seq).toBe(clientReq!.tcp_seq);
    expect(clientResp!.tcp_seq).toBe(serverResp!.tcp_seq);
    expect(ciphertextLines(lines)).toEqual([]);
  });

  it('HTTP/2 over TLS (ALPN h2) from Node: both ends decode the stream', async () => {
    const { stdout } = await run(process.execPath, ['-e', NODE_H2_CLIENT, String(h2Port), '/h2-path']);
    expect(stdout.trim()).toBe('203 h2:/h2-path');
    await agent.waitFor((l) => l.direction === 'ingress' && l.remote_port === h2Port && l.response_code === 203, 1, 15_000);
    const lines = ours().filter((l) => l.local_port === h2Port || l.remote_port === h2Port);
    const l7 = (l: OutputLine): Array<Record<string, unknown>> => (l.l7 as Array<Record<string, unknown>> | undefined) ?? [];
    const has = (l: OutputLine, pred: (m: Record<string, unknown>) => boolean): boolean => l7(l).some(pred);
    const isReq = (m: Record<string, unknown>): boolean => m.l7_protocol === 'http2' && m.request_type === 'GET' && m.request_resource === '/h2-path';
    const isResp = (m: Record<string, unknown>): boolean => m.l7_protocol === 'http2' && m.response_code === 203;
    const clientReq = lines.find((l) => l.direction === 'egress' && l.remote_port === h2Port && has(l, isReq));
    const serverReq = lines.find((l) => l.direction === 'ingress' && l.local_port === h2Port && has(l, isReq));
    const serverResp = lines.find((l) => l.direction === 'egress' && l.local_port === h2Port && has(l, isResp));
    const clientResp = lines.find((l) => l.direction === 'ingress' && l.remote_port === h2Port && has(l, isResp));
    const summary = lines.map((l) => `${l.direction} ${l.local_port}->${l.remote_port} ${JSON.stringify(l7(l))}`).join('\n');
    expect(clientReq, summary).toBeDefined();
    expect(serverReq, summary).toBeDefined();
    expect(serverResp, summary).toBeDefined();
    expect(clientResp, summary).toBeDefined();
    for (const l of [clientReq!, serverReq!, serverResp!, clientResp!]) expect(l7(l).every((m) => m.tls === true)).toBe(true);
    // The stream id pairs request and response on each end.
    expect(l7(serverResp!).find(isResp)!.request_id).toBe(l7(serverReq!).find(isReq)!.request_id);
    expect(ciphertextLines(lines)).toEqual([]);
  });
});

// A real client and server on loopback: Node's http with curl, and Debian's nginx with curl.
// Both sides of each request are captured, and the client's egress TCP sequence equals the
// server's ingress sequence for the same bytes — the link trace assembly relies on.
import { execFile, execFileSync, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { OutputLine, RunningAgent } from '../helpers/agent.ts';
import { freePort, payloadText, startAgent } from '../helpers/agent.ts';

// Async: the Node server under test lives in this process and must keep serving while curl runs.
const run = promisify(execFile);

function pairChecks(lines: OutputLine[], path: string, port: number): void {
  const req = (l: OutputLine): boolean => payloadText(l).startsWith(`GET ${path} `);
  const clientOut = lines.find((l) => req(l) && l.direction === 'egress');
  const serverIn = lines.find((l) => req(l) && l.direction === 'ingress');
  expect(clientOut, 'client request captured').toBeDefined();
  expect(serverIn, 'server request captured').toBeDefined();
  expect(clientOut!.process_name).toBe('curl');
  expect(clientOut!.role).toBe('client');
  expect(serverIn!.role).toBe('server');
  expect(clientOut!.tcp_seq).toBe(serverIn!.tcp_seq);
  // Tuples mirror each other.
  expect(clientOut!.remote_port).toBe(port);
  expect(serverIn!.local_port).toBe(port);
  expect(clientOut!.local_port).toBe(serverIn!.remote_port);
  expect(clientOut!.local_ip).toBe(serverIn!.remote_ip);
  expect(clientOut!.remote_ip).toBe(serverIn!.local_ip);

  // The response: server egress and client ingress, same sequence, on the same two sockets.
  const resp = (l: OutputLine): boolean => payloadText(l).startsWith('HTTP/1.1 200') && (l.socket_id === clientOut!.socket_id || l.socket_id === serverIn!.socket_id);
  const serverOut = lines.find((l) => resp(l) && l.direction === 'egress');
  const clientIn = lines.find((l) => resp(l) && l.direction === 'ingress');
  expect(serverOut, 'server response captured').toBeDefined();
  expect(clientIn, 'client response captured').toBeDefined();
  expect(serverOut!.socket_id).toBe(serverIn!.socket_id);
  expect(clientIn!.socket_id).toBe(clientOut!.socket_id);
  expect(serverOut!.tcp_seq).toBe(clientIn!.tcp_seq);
  // The server answers on the thread that took the request: same syscall-trace id.
  expect(serverOut!.syscall_trace_id).toBe(serverIn!.syscall_trace_id);
  expect(serverIn!.syscall_trace_id).toBeGreaterThan(0);
  // Time flows forward along the request.
  expect(serverIn!.ts_ns).toBeGreaterThanOrEqual(clientOut!.ts_ns);
  expect(clientIn!.ts_ns).toBeGreaterThanOrEqual(serverOut!.ts_ns);
}

describe('Node http server and curl', () => {
  let agent: RunningAgent;
  let server: Server;
  let port: number;

  beforeAll(async () => {
    port = await freePort();
    // The server runs in a child process so it is a different pid from the test runner.
    agent = await startAgent(['--filter-port', String(port)]);
    server = createServer((req, res) => res.end(`hello ${req.url}`));
    await new Promise<void>((r) => server.listen(port, '127.0.0.1', () => r()));
  });
  afterAll(async () => {
    await agent?.stop();
    server?.close();
  });

  it('captures both sides of a request with matching TCP sequences and roles', async () => {
    const { stdout: body } = await run('curl', ['-sS', `http://127.0.0.1:${port}/node-check`]);
    expect(body).toBe('hello /node-check');
    await agent.waitFor((l) => payloadText(l).startsWith('HTTP/1.1 200') && l.direction === 'ingress');
    pairChecks(agent.lines, '/node-check', port);
    const serverSide = agent.lines.find((l) => l.role === 'server')!;
    expect(serverSide.pid).toBe(process.pid);
    expect(serverSide.cmdline).toContain('node');
  });

  it('keeps a keep-alive connection on one socket id across requests', async () => {
    await run('curl', ['-sS', `http://127.0.0.1:${port}/ka-1`, `http://127.0.0.1:${port}/ka-2`]);
    const reqs = await agent.waitFor((l) => /^GET \/ka-\d/.test(payloadText(l)) && l.direction === 'egress', 2);
    expect(reqs[0].socket_id).toBe(reqs[1].socket_id);
    // The second request starts after the first one's bytes.
    expect(reqs[1].tcp_seq).toBe((reqs[0].tcp_seq + reqs[0].bytes) >>> 0);
  });
});

describe('nginx and curl', () => {
  let agent: RunningAgent;
  let nginx: ChildProcess;
  let port: number;

  beforeAll(async () => {
    port = await freePort();
    const dir = mkdtempSync(join(tmpdir(), 'rt-nginx-'));
    writeFileSync(join(dir, 'index.html'), 'hello from nginx\n');
    writeFileSync(
      join(dir, 'nginx.conf'),
      `daemon off; worker_processes 1; pid ${dir}/nginx.pid; error_log ${dir}/error.log;
       events { worker_connections 64; }
       http { access_log off; client_body_temp_path ${dir}; proxy_temp_path ${dir}; fastcgi_temp_path ${dir};
              uwsgi_temp_path ${dir}; scgi_temp_path ${dir};
              server { listen 127.0.0.1:${port}; root ${dir}; location / { } } }`,
    );
    agent = await startAgent(['--filter-port', String(port)]);
    nginx = spawn('/usr/sbin/nginx', ['-c', join(dir, 'nginx.conf'), '-p', dir], { stdio: 'ignore' });
    for (let i = 0; i < 50; i++) {
      try {
        execFileSync('curl', ['-sf', '-o', '/dev/null', `http://127.0.0.1:${port}/warmup`]);
      } catch {
        /* 404 is fine: nginx is up */
      }
      if (agent.lines.some((l) => l.process_name === 'nginx')) break;
      await new Promise((r) => setTimeout(r, 100));
    }
  });
  afterAll(async () => {
    nginx?.kill('SIGTERM');
    await agent?.stop();
  });

  it('captures curl and the nginx worker with matching TCP sequences', async () => {
    const body = execFileSync('curl', ['-sS', `http://127.0.0.1:${port}/index.html`], { encoding: 'utf8' });
    expect(body).toBe('hello from nginx\n');
    await agent.waitFor((l) => payloadText(l).startsWith('HTTP/1.1 200') && l.direction === 'ingress' && l.process_name === 'curl');
    pairChecks(agent.lines, '/index.html', port);
    const worker = agent.lines.find((l) => l.role === 'server' && payloadText(l).startsWith('GET /index.html'))!;
    expect(worker.process_name).toBe('nginx');
    expect(worker.cmdline).toMatch(/^nginx: worker process/);
  });
});

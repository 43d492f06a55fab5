// Issue 15, the first-request case: on a thread-per-request system whose connections are pooled and
// were opened before the agent started (nginx upstream keep-alive, a pooled Redis connection, a
// pooled keep-alive HTTP/1.1 client), the first request sent the moment the agent says it is
// capturing must be traced like any other.
//   curl → nginx (upstream keepalive) → A (Python threads) → Redis, B (Python threads)
// It failed before capture finished a syscall whose enter predates the agent (bpf/riptide.bpf.c,
// enter_missed): A's and B's threads were already blocked in recv() on their pooled connections
// when the probes attached, so request 1's server spans on A and B were never stored and the trace
// ended at nginx's upstream call. Request 2 (threads back in recv() after attach) was always whole.
import { execFile, spawn } from 'node:child_process';
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
import { startRedis } from '../protocols/servers.ts';
import type { RunningServer } from '../protocols/servers.ts';

const isRoot = process.getuid?.() === 0;
const ready = isRoot && fs.existsSync('/usr/sbin/nginx') && fs.existsSync('/usr/bin/redis-server');
if (!ready) process.stderr.write(`first-request test skipped: ${!isRoot ? 'needs root for BPF' : 'needs nginx and redis-server'}\n`);

const children: ChildProcess[] = [];
let redis: RunningServer | undefined;
let dir: string;
let fx: Functions | undefined;
let app: Hono;
let ports: Record<'nginx' | 'a' | 'b' | 'redis', number>;
let agentErr = '';

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
  if (!ready) return;
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'riptide-first-'));
  redis = await startRedis();
  ports = { nginx: await freePort(), a: await freePort(), b: await freePort(), redis: redis.port };
  const svc = path.join(REPO, 'test', 'query', 'first-request-services.py');
  launch('python3', [svc, 'b', String(ports.b)]);
  launch('python3', [svc, 'a', String(ports.a), String(ports.redis), String(ports.b)]);
  fs.writeFileSync(
    path.join(dir, 'nginx.conf'),
    `daemon off; master_process off; worker_processes 1; pid ${dir}/nginx.pid; error_log ${dir}/nginx-error.log;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path ${dir}/body; proxy_temp_path ${dir}/proxy; fastcgi_temp_path ${dir}/fcgi; uwsgi_temp_path ${dir}/uwsgi; scgi_temp_path ${dir}/scgi;
  upstream a { server 127.0.0.1:${ports.a}; keepalive 4; }
  server { listen 127.0.0.1:${ports.nginx}; location / { proxy_pass http://a; proxy_http_version 1.1; proxy_set_header Connection ""; } }
}
`,
  );
  launch('nginx', ['-c', path.join(dir, 'nginx.conf'), '-p', dir]);
  await Promise.all([waitForPort(ports.a), waitForPort(ports.b), waitForPort(ports.nginx)]);
  // Warm-up before the agent: every pooled connection (nginx → A, A → Redis, A → B) predates it.
  expect(await curl(['-s', `http://127.0.0.1:${ports.nginx}/checkout?i=0`])).toContain('price 0');

  const store = `file://${dir}/store`;
  const agent = launch(process.execPath, [RIPTIDE, 'agent', '--data-dir', path.join(dir, 'agent'), '--store', store, '--port', '0', '--slot-seconds', '1', '--filter-port', Object.values(ports).join(',')], { cwd: REPO });
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
  // Exactly one request, the moment capture starts; then a second one a few seconds later.
  expect(await curl(['-s', `http://127.0.0.1:${ports.nginx}/checkout?i=1`])).toContain('price 1');
  fx = await startFunctions({ dataDir: path.join(dir, 'fx'), store, pollMs: 500, kubernetes: 'off', log: () => {} });
  await fx.runtime?.start();
  app = createQueryApp({ clickhouse: fx.ch });
  await new Promise((r) => setTimeout(r, 2000));
  expect(await curl(['-s', `http://127.0.0.1:${ports.nginx}/checkout?i=2`])).toContain('price 2');
}, 300_000);

afterAll(async () => {
  for (const c of children.reverse()) {
    if (c.exitCode === null && c.signalCode === null) {
      const exited = new Promise<void>((r) => c.once('exit', () => r()));
      c.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
    }
  }
  await fx?.close();
  await redis?.stop();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
}, 120_000);

function line(s: SpanJson): string {
  return `${s.span_id} <- ${s.parent_id} [${s.parent_rule}] ${s.process_name} ${s.side} ${s.l7_protocol} :${s.server_port} ${s.request_resource} ${s.pair_state} seq=${s.req_tcp_seq}/${s.resp_tcp_seq} sys=${s.syscall_trace_id_req}/${s.syscall_trace_id_resp} tid=${s.tid} ${s.start_time_us}-${s.end_time_us}`;
}

/** The trace of request i, from its curl span: every hop's two sides, each with the right parent. */
async function expectWhole(i: number): Promise<void> {
  let root: SpanJson | undefined;
  for (const deadline = Date.now() + 60_000; !root && Date.now() < deadline; ) {
    const { spans } = await api<{ spans: SpanJson[] }>(`/api/v1/spans?start=${Date.now() / 1000 - 600}&process=curl&side=client&limit=20`);
    root = spans.find((s) => s.request_resource === `/checkout?i=${i}`);
    if (!root) await new Promise((r) => setTimeout(r, 500));
  }
  expect(root, `request ${i} stored`).toBeDefined();
  await new Promise((r) => setTimeout(r, 3000));
  const { spans } = await api<{ spans: SpanJson[] }>(`/api/v1/traces/${root?.span_id}`);
  // Everything stored on the services' ports around the request, so a failure explains itself.
  const near = await api<{ spans: SpanJson[] }>(`/api/v1/spans?start=${Math.floor(Date.now() / 1000) - 600}&limit=200`);
  const around = near.spans.filter((s) => Object.values(ports).includes(s.server_port) && s.request_resource?.includes(String(i)));
  const shown = `${spans.map(line).join('\n')}\nstored spans of request ${i}:\n${around.map(line).join('\n')}`;
  const byId = new Map(spans.map((s) => [s.span_id, s]));
  const caller: Record<number, number> = { [ports.nginx]: 0, [ports.a]: ports.nginx, [ports.redis]: ports.a, [ports.b]: ports.a };
  for (const [name, port] of Object.entries(ports)) {
    for (const side of ['client', 'server'] as const) {
      const s = spans.filter((x) => x.server_port === port && x.side === side);
      expect(s.length, `request ${i}: ${side} side of ${name} in the trace\n${shown}`).toBe(1);
      const p = s[0].parent_id ? byId.get(s[0].parent_id) : undefined;
      if (side === 'server') expect([p?.side, p?.server_port], `request ${i}: parent of ${name}'s server span\n${shown}`).toEqual(['client', port]);
      else if (port !== ports.nginx) expect([p?.side, p?.server_port], `request ${i}: parent of the call to ${name}\n${shown}`).toEqual(['server', caller[port]]);
    }
  }
}

describe.skipIf(!ready)('first request after start-up: curl → nginx (upstream keepalive) → A (threads, pooled clients) → Redis, B', () => {
  it('the request sent the moment the agent captures is traced whole, over connections opened before the agent', async () => {
    await expectWhole(1);
  }, 120_000);

  it('a later request on the same connections is traced whole too', async () => {
    await expectWhole(2);
  }, 120_000);
});

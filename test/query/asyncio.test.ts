// Acceptance (issue 15): trace fidelity on a Python asyncio event loop, under the real agent, at 1, 30
// and 100 concurrent requests.
//   curl → nginx (upstream keep-alive) → gateway (Python asyncio streams, one event loop, keep-alive
//   pool of 4 HTTP connections, Redis through a pool of 2 connections) → down (Python asyncio) and → Redis
// Each request makes three downstream calls: sequentially (/seq/<n>: Redis GET item:<n>, then
// /down/<n>/a, then /down/<n>/b) or at once with asyncio.gather (/par/<n>). No tracing headers: the
// request number travels only in the paths and the Redis key, which is the ground truth the test
// judges by (test/query/judge.ts, the same strict judging as event-loop.test.ts).
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
import { RULE_CONFIDENCE } from '../../functions/query/assemble.ts';
import { REPO, RIPTIDE } from '../helpers/agent.ts';
import { freePort, waitForPort } from '../protocols/recorder.ts';
import { startRedis } from '../protocols/servers.ts';
import type { RunningServer } from '../protocols/servers.ts';
import { expectWhole, linkCount, score as judge, wrongShare } from './judge.ts';
import type { Case, Score, Truth } from './judge.ts';

const isRoot = process.getuid?.() === 0;
const ready = isRoot && ['/usr/bin/curl', '/usr/bin/redis-server', '/usr/sbin/nginx'].every((f) => fs.existsSync(f));
if (!ready) process.stderr.write(`asyncio acceptance skipped: ${!isRoot ? 'needs root for BPF' : 'needs curl, redis-server and nginx'}\n`);

const children: ChildProcess[] = [];
let redis: RunningServer | undefined;
let dir: string;
let fx: Functions | undefined;
let app: Hono;
/** The same data assembled without the `content` rule: the baseline of the same run. */
let appNoContent: Hono;
let gw = 0;
let nginx = 0;
let down = 0;
let agentErr = '';
const startedAt = Date.now();

function launch(cmd: string, args: string[], opts: { cwd?: string } = {}): ChildProcess {
  const c = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'], ...opts });
  children.push(c);
  return c;
}

function curl(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => execFile('curl', args, { timeout: 120_000, maxBuffer: 1 << 24 }, (e, out) => (e ? reject(e) : resolve(String(out)))));
}

async function api<T>(p: string, init?: RequestInit, via: Hono = app): Promise<T> {
  const res = await via.request(p, init);
  if (res.status !== 200) throw new Error(`${p}: ${res.status} ${await res.text()}`);
  return (await res.json()) as T;
}

beforeAll(async () => {
  if (!ready) return;
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'riptide-asyncio-'));
  redis = await startRedis();
  [gw, down, nginx] = [await freePort(), await freePort(), await freePort()];
  const svc = path.join(REPO, 'test', 'query', 'asyncio-services.py');
  launch('python3', [svc, 'down', String(down)]);
  launch('python3', [svc, 'gateway', String(gw), String(down), String(redis.port)]);
  fs.writeFileSync(
    path.join(dir, 'nginx.conf'),
    `daemon off; master_process off; worker_processes 1; pid ${dir}/nginx.pid; error_log ${dir}/nginx-error.log;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path ${dir}/body; proxy_temp_path ${dir}/proxy; fastcgi_temp_path ${dir}/fcgi; uwsgi_temp_path ${dir}/uwsgi; scgi_temp_path ${dir}/scgi;
  upstream gw { server 127.0.0.1:${gw}; keepalive 16; }
  server { listen 127.0.0.1:${nginx}; location / { proxy_pass http://gw; proxy_http_version 1.1; proxy_set_header Connection ""; } }
}
`,
  );
  launch('nginx', ['-c', path.join(dir, 'nginx.conf'), '-p', dir]);
  await Promise.all([waitForPort(gw), waitForPort(down), waitForPort(nginx)]);
  expect(await curl(['-s', `http://127.0.0.1:${nginx}/par/0`])).toContain('ok /down/0/b');

  const store = `file://${dir}/store`;
  const agent = launch(process.execPath, [RIPTIDE, 'agent', '--data-dir', path.join(dir, 'agent'), '--store', store, '--port', '0', '--slot-seconds', '1', '--filter-port', `${nginx},${gw},${down},${redis.port}`], { cwd: REPO });
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
  fx = await startFunctions({ dataDir: path.join(dir, 'fx'), store, pollMs: 500, kubernetes: 'off', log: () => {} });
  await fx.runtime?.start();
  app = createQueryApp({ clickhouse: fx.ch });
  appNoContent = createQueryApp({ clickhouse: fx.ch, assemble: { minConfidence: RULE_CONFIDENCE.content + 0.01 } });
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

type Variant = 'seq' | 'par';
interface Stored {
  span_id: string;
  side: string;
  server_port: number;
  request_resource: string;
}

/** Every HTTP and Redis span of the run, by `${side} ${port} ${resource}` (through the span API). */
async function storedSpans(): Promise<Map<string, Stored>> {
  const start = Math.floor(startedAt / 1000) - 60;
  const out = new Map<string, Stored>();
  for (const protocol of ['http1', 'redis']) {
    const { spans } = await api<{ spans: Stored[] }>(`/api/v1/spans?protocol=${protocol}&start=${start}&limit=10000`);
    for (const r of spans) if ([nginx, gw, down, redis?.port].includes(r.server_port)) out.set(`${r.side} ${r.server_port} ${r.request_resource}`, r);
  }
  return out;
}

/** The request's ten spans and nine links. */
function truth(v: Variant, n: number): Truth {
  const rp = redis?.port ?? 0;
  return {
    spans: [
      ['curl', `client ${nginx} /${v}/${n}`],
      ['nginx', `server ${nginx} /${v}/${n}`],
      ['upstream', `client ${gw} /${v}/${n}`],
      ['gateway', `server ${gw} /${v}/${n}`],
      ['call redis', `client ${rp} item:${n}`],
      ['redis', `server ${rp} item:${n}`],
      ['call a', `client ${down} /down/${n}/a`],
      ['down a', `server ${down} /down/${n}/a`],
      ['call b', `client ${down} /down/${n}/b`],
      ['down b', `server ${down} /down/${n}/b`],
    ],
    links: [
      ['nginx ← curl', 'nginx', 'curl'],
      ['upstream ← nginx', 'upstream', 'nginx'],
      ['gateway ← upstream', 'gateway', 'upstream'],
      ['call redis ← gateway', 'call redis', 'gateway'],
      ['redis ← call redis', 'redis', 'call redis'],
      ['call a ← gateway', 'call a', 'gateway'],
      ['down a ← call a', 'down a', 'call a'],
      ['call b ← gateway', 'call b', 'gateway'],
      ['down b ← call b', 'down b', 'call b'],
    ],
  };
}

async function run(concurrency: number, count: number, first: number): Promise<{ s: Score; base: Score }> {
  const batches: Array<[Variant, number[]]> = (['seq', 'par'] as const).map((v, k) => [v, Array.from({ length: count }, (_, i) => first + k * count + i)]);
  // Both variants in one run, interleaved: `concurrency` requests open at once, half of each kind.
  const urls = Array.from({ length: count }, (_, i) => batches.map(([v, ns]) => `http://127.0.0.1:${nginx}/${v}/${ns[i]}`)).flat();
  const out = await curl(concurrency === 1 ? ['-s', ...urls] : ['-s', '--parallel', '--parallel-immediate', '--parallel-max', String(concurrency), ...urls]);
  for (const [v, ns] of batches) expect(out.match(new RegExp(`${v} \\d+: nil ok`, 'g')), `${v} answers`).toHaveLength(ns.length);
  const all = batches.flatMap(([v, ns]) => ns.flatMap((n) => truth(v, n).spans.map(([, key]) => key)));
  let stored = await storedSpans();
  for (const deadline = Date.now() + 60_000; all.some((k) => !stored.has(k)) && Date.now() < deadline; stored = await storedSpans()) await new Promise((r) => setTimeout(r, 1000));
  await new Promise((r) => setTimeout(r, 2000));
  stored = await storedSpans();
  const cases: Case[] = batches.flatMap(([v, ns]) => ns.map((n) => ({ label: `${v}/${n}`, variant: v, truth: truth(v, n), root: 'curl' })));
  const traces = (via: Hono) => async (id: string) => (await api<{ spans: SpanJson[] }>(`/api/v1/traces/${id}`, undefined, via)).spans;
  const base = await judge('asyncio', `concurrency ${concurrency}, without content`, cases, stored, traces(appNoContent));
  return { s: await judge('asyncio', `concurrency ${concurrency}`, cases, stored, traces(app)), base };
}

/**
 * The full rules must meet issue 15's targets (measured: 100% strict, 0 wrong at 30 and 100). The
 * same data without `content` is the baseline: syscall ids alone leave most calls unattached and,
 * on this loop, attach 0.56–1.67% of links wrongly by the response-side id (asyncio reads every ready
 * socket before running any task: docs/TRACE-ASSEMBLY.md) — printed, and held to right links only.
 */
function expectAsyncio(s: Score, base: Score): void {
  expectWhole(s, 0.95);
  expect(base.links.right / linkCount(base), 'right links without content').toBeGreaterThanOrEqual(0.6);
  expect(s.links.right, 'the full rules link at least what syscall ids alone do').toBeGreaterThanOrEqual(base.links.right);
}

describe.skipIf(!ready)('acceptance: curl → nginx → Python asyncio gateway (one event loop, keep-alive pools) → Python asyncio service and Redis, no headers', () => {
  it('one request at a time: every trace strictly right', async () => {
    const { s } = await run(1, 5, 1000);
    expect(s.strict, 'strict traces').toBe(s.traces);
    expect(wrongShare(s)).toBe(0);
  }, 300_000);

  it('30 concurrent requests: at least 95% of traces strictly right, wrong links at most 0.1%', async () => {
    const { s, base } = await run(30, 30, 3000);
    expectAsyncio(s, base);
  }, 300_000);

  it('100 concurrent requests: at least 95% of traces strictly right, wrong links at most 0.1%', async () => {
    const { s, base } = await run(100, 50, 5000);
    expectAsyncio(s, base);
  }, 300_000);
});

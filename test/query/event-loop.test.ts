// Acceptance (issue 15, first step): trace fidelity on a Node.js event loop, under the real agent,
// at 1, 10, 30 and 100 concurrent requests.
//   curl → gateway (Node.js, one event loop, keep-alive http.Agent with 4 sockets) → down (Node.js)
// Each request makes two downstream calls, sequentially (/seq/<n>) or at once (/par/<n>). No tracing
// headers anywhere: the request number travels only in the paths (/down/<n>/a, /down/<n>/b), which
// is the ground truth the test judges by, not evidence assembly is given.
// Strict: a trace counts only if it holds exactly the request's six spans (every hop's client and
// server side), every parent is right and every child lies inside its parent. Each link is scored
// right / unattached / wrong / missing (span never stored) per hop and rule, and printed.
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
import { expectConcurrent as expectConcurrentFloors, score as judge, wrongShare } from './judge.ts';
import type { Case, Score } from './judge.ts';

const isRoot = process.getuid?.() === 0;
const hasCurl = fs.existsSync('/usr/bin/curl');
if (!isRoot || !hasCurl) process.stderr.write(`event-loop acceptance skipped: ${!isRoot ? 'needs root for BPF' : 'needs /usr/bin/curl'}\n`);

const children: ChildProcess[] = [];
let dir: string;
let fx: Functions | undefined;
let app: Hono;
/** The same data assembled without the `content` rule (minConfidence above it): the baseline of the same run. */
let appNoContent: Hono;
let gw = 0;
let down = 0;
let agentErr = '';
/** When the test began (ms): the span search starts a minute before it. */
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
  if (!isRoot || !hasCurl) return;
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'riptide-eventloop-'));
  [gw, down] = [await freePort(), await freePort()];
  const svc = path.join(REPO, 'test', 'query', 'event-loop-services.mjs');
  launch(process.execPath, [svc, 'down', String(down)]);
  launch(process.execPath, [svc, 'gateway', String(gw), String(down)]);
  await Promise.all([waitForPort(gw), waitForPort(down)]);
  expect(await curl(['-s', `http://127.0.0.1:${gw}/par/0`])).toContain('ok /down/0/b');

  const store = `file://${dir}/store`;
  const agent = launch(process.execPath, [RIPTIDE, 'agent', '--data-dir', path.join(dir, 'agent'), '--store', store, '--port', '0', '--slot-seconds', '1', '--filter-port', `${gw},${down}`], { cwd: REPO });
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
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
}, 120_000);

type Variant = 'seq' | 'par';
interface Stored {
  span_id: string;
  side: string;
  server_port: number;
  request_resource: string;
  process_name: string;
}

/**
 * Every HTTP span of the run, by what it is: `${side} ${port} ${resource}`. Read through the span API,
 * which sees the slots still in their pairing window too (riptide.spans only gets a slot once it has
 * settled, seconds to a minute later).
 */
async function storedSpans(): Promise<Map<string, Stored>> {
  const start = Math.floor(startedAt / 1000) - 60;
  const { spans } = await api<{ spans: Stored[] }>(`/api/v1/spans?protocol=http1&start=${start}&limit=10000`);
  const out = new Map<string, Stored>();
  for (const r of spans) if (r.server_port === gw || r.server_port === down) out.set(`${r.side} ${r.server_port} ${r.request_resource}`, r);
  return out;
}

/** The request's six spans as [name, key] and its five links as [hop, child, parent]. */
function truth(v: Variant, n: number): { spans: Array<[string, string]>; links: Array<[string, string, string]> } {
  const spans: Array<[string, string]> = [
    ['curl', `client ${gw} /${v}/${n}`],
    ['gateway', `server ${gw} /${v}/${n}`],
    ['call a', `client ${down} /down/${n}/a`],
    ['down a', `server ${down} /down/${n}/a`],
    ['call b', `client ${down} /down/${n}/b`],
    ['down b', `server ${down} /down/${n}/b`],
  ];
  return {
    spans,
    links: [
      ['gateway ← curl', 'gateway', 'curl'],
      ['call a ← gateway', 'call a', 'gateway'],
      ['down a ← call a', 'down a', 'call a'],
      ['call b ← gateway', 'call b', 'gateway'],
      ['down b ← call b', 'down b', 'call b'],
    ],
  };
}

/** Drive the traffic, wait for its spans, then score it with the full rules and without `content`. */
async function run(concurrency: number, count: number, first: number): Promise<{ s: Score; base: Score }> {
  const batches: Array<[Variant, number[]]> = (['seq', 'par'] as const).map((v, k) => [v, Array.from({ length: count }, (_, i) => first + k * count + i)]);
  for (const [v, ns] of batches) {
    const urls = ns.map((n) => `http://127.0.0.1:${gw}/${v}/${n}`);
    const out = await curl(concurrency === 1 ? ['-s', ...urls] : ['-s', '--parallel', '--parallel-immediate', '--parallel-max', String(concurrency), ...urls]);
    expect(out.match(new RegExp(`${v} \\d+: ok`, 'g')), `${v} answers`).toHaveLength(ns.length);
  }
  // Wait until every span of the batch is stored (or a minute has passed: the rest count as missing).
  const all = batches.flatMap(([v, ns]) => ns.flatMap((n) => truth(v, n).spans.map(([, key]) => key)));
  let stored = await storedSpans();
  for (const deadline = Date.now() + 60_000; all.some((k) => !stored.has(k)) && Date.now() < deadline; stored = await storedSpans()) await new Promise((r) => setTimeout(r, 1000));
  await new Promise((r) => setTimeout(r, 2000));
  stored = await storedSpans();
  const base = await score(`concurrency ${concurrency}, without content`, batches, stored, appNoContent);
  return { s: await score(`concurrency ${concurrency}`, batches, stored, app), base };
}

async function score(label: string, batches: Array<[Variant, number[]]>, stored: Map<string, Stored>, via: Hono): Promise<Score> {
  const cases: Case[] = batches.flatMap(([v, ns]) => ns.map((n) => ({ label: `${v}/${n}`, variant: v, truth: truth(v, n), root: 'curl' })));
  return judge('event-loop', label, cases, stored, async (id) => (await api<{ spans: SpanJson[] }>(`/api/v1/traces/${id}`, undefined, via)).spans);
}

/**
 * What every concurrent run must show: no wrong parent links with or without the content rule, no
 * span lost, and floors below what this machine measures, for margin (measured: 100% strict at 10, 30
 * and 100 with the content rule; without it, syscall ids only, 5–7.5%, 1.7% and 1% strict with
 * 80–81% of links right).
 */
function expectConcurrent(s: Score, base: Score): void {
  expectConcurrentFloors(s, base, 0.9, 0.7);
}

describe.skipIf(!isRoot || !hasCurl)('acceptance: curl → Node.js gateway (event loop, keep-alive pool) → Node.js service, no headers', () => {

  it('one request at a time: every trace strictly right', async () => {
    const { s, base } = await run(1, 5, 1000);
    expect(s.strict, 'strict traces').toBe(s.traces);
    expect(wrongShare(s)).toBe(0);
    // Syscall ids alone suffice when the loop serves one request at a time.
    expect(base.strict, 'strict traces without content').toBe(base.traces);
  }, 300_000);

  it('10 concurrent requests: no wrong parent links, and the content rule keeps traces whole', async () => {
    const { s, base } = await run(10, 20, 2000);
    expectConcurrent(s, base);
  }, 300_000);

  it('30 concurrent requests: no wrong parent links, and the content rule keeps traces whole', async () => {
    const { s, base } = await run(30, 60, 3000);
    expectConcurrent(s, base);
  }, 300_000);

  it('100 concurrent requests: no wrong parent links, and the content rule keeps traces whole', async () => {
    const { s, base } = await run(100, 100, 5000);
    expectConcurrent(s, base);
  }, 300_000);
});

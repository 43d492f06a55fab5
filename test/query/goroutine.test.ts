// Acceptance (issue 15, Go): trace fidelity of a Go net/http service under the real agent, at 1, 30
// and 100 concurrent requests, with goroutine ids (after) and without them (--no-goroutines: the
// thread-keyed behaviour before), in the same run on the same system.
//   curl → svc (Go net/http, goroutine per request; a 4-connection RESP pool shared by goroutines
//          → redis-server: SET then GET req:<n>; then GET /down/<n> on the default keep-alive
//          transport) → down (Go net/http)
// The Go services are built here from test/query/goroutine-service with Debian's golang-go (stdlib
// only, no network). No tracing headers: the request number travels only in paths and keys, which is
// the ground truth the test judges by.
// Strict: a trace counts only if it holds exactly the request's eight spans, every parent is right
// and every child lies inside its parent. Each link is scored right / unattached / wrong / missing
// per hop and rule, and printed.
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

const isRoot = process.getuid?.() === 0;
const need = ['/usr/bin/curl', '/usr/bin/go', '/usr/bin/redis-server'].filter((f) => !fs.existsSync(f));
if (!isRoot || need.length) process.stderr.write(`goroutine acceptance skipped: ${!isRoot ? 'needs root for BPF' : `needs ${need.join(', ')}`}\n`);
const runnable = isRoot && need.length === 0;

const children: ChildProcess[] = [];
let dir: string;
let fx: Functions | undefined;
let app: Hono;
let svc = 0;
let down = 0;
let redis = 0;
let store = '';
let agent: ChildProcess | undefined;
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

async function api<T>(p: string): Promise<T> {
  const res = await app.request(p);
  if (res.status !== 200) throw new Error(`${p}: ${res.status} ${await res.text()}`);
  return (await res.json()) as T;
}

async function stop(c: ChildProcess | undefined): Promise<void> {
  if (!c || c.exitCode !== null || c.signalCode !== null) return;
  const exited = new Promise<void>((r) => c.once('exit', () => r()));
  c.kill('SIGTERM');
  await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
}

/** Starts an agent (the previous one stopped first) under `agentId`, with or without goroutine ids. */
async function startAgent(agentId: string, goroutines: boolean): Promise<void> {
  await stop(agent);
  agentErr = '';
  const args = [RIPTIDE, 'agent', '--data-dir', path.join(dir, agentId), '--store', store, '--port', '0', '--slot-seconds', '1', '--agent-id', agentId, '--filter-port', `${svc},${down},${redis}`];
  const a = launch(process.execPath, goroutines ? args : [...args, '--no-goroutines'], { cwd: REPO });
  agent = a;
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`agent did not start: ${agentErr}`)), 90_000);
    a.stderr?.on('data', (d: Buffer) => {
      agentErr = (agentErr + d.toString()).slice(-8000);
      if (agentErr.includes('capturing')) {
        clearTimeout(t);
        resolve();
      }
    });
    a.once('exit', (code) => reject(new Error(`agent exited ${code}: ${agentErr}`)));
  });
}

beforeAll(async () => {
  if (!runnable) return;
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'riptide-goroutine-'));
  const bin = path.join(dir, 'gsvc');
  execFileSync('go', ['build', '-o', bin, '.'], {
    cwd: path.join(REPO, 'test', 'query', 'goroutine-service'),
    env: { ...process.env, GOCACHE: path.join(dir, 'gocache'), GOPATH: path.join(dir, 'gopath'), GOFLAGS: '-mod=mod', GOPROXY: 'off' },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  [svc, down, redis] = [await freePort(), await freePort(), await freePort()];
  launch('redis-server', ['--port', String(redis), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no']);
  await waitForPort(redis);
  launch(bin, ['down', String(down)]);
  launch(bin, ['svc', String(svc), String(redis), String(down)]);
  await Promise.all([waitForPort(svc), waitForPort(down)]);
  expect(await curl(['-s', `http://127.0.0.1:${svc}/go/1`])).toContain('go 1: ok 1 down 1');
  store = `file://${dir}/store`;
  fx = await startFunctions({ dataDir: path.join(dir, 'fx'), store, pollMs: 500, kubernetes: 'off', log: () => {} });
  await fx.runtime?.start();
  app = createQueryApp({ clickhouse: fx.ch });
}, 300_000);

afterAll(async () => {
  await stop(agent);
  for (const c of children.reverse()) await stop(c);
  await fx?.close();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
}, 120_000);

type Outcome = 'right' | 'unattached' | 'wrong' | 'missing';
interface Stored {
  span_id: string;
  side: string;
  server_port: number;
  request_type: string;
  request_resource: string;
  agent_id: string;
}

/** Every HTTP and Redis span one agent stored, by what it is: `${side} ${port} ${type} ${resource}`. */
async function storedSpans(agentId: string): Promise<Map<string, Stored>> {
  const start = Math.floor(startedAt / 1000) - 60;
  const out = new Map<string, Stored>();
  for (const protocol of ['http1', 'redis']) {
    const { spans } = await api<{ spans: Stored[] }>(`/api/v1/spans?protocol=${protocol}&start=${start}&limit=10000`);
    for (const r of spans) if (r.agent_id === agentId && [svc, down, redis].includes(r.server_port)) out.set(`${r.side} ${r.server_port} ${r.request_type} ${r.request_resource}`, r);
  }
  return out;
}

/** The request's eight spans as [name, key] and its seven links as [hop, child, parent]. */
function truth(n: number): { spans: Array<[string, string]>; links: Array<[string, string, string]> } {
  return {
    spans: [
      ['curl', `client ${svc} GET /go/${n}`],
      ['svc', `server ${svc} GET /go/${n}`],
      ['set', `client ${redis} SET req:${n}`],
      ['redis set', `server ${redis} SET req:${n}`],
      ['get', `client ${redis} GET req:${n}`],
      ['redis get', `server ${redis} GET req:${n}`],
      ['call down', `client ${down} GET /down/${n}`],
      ['down', `server ${down} GET /down/${n}`],
    ],
    links: [
      ['svc ← curl', 'svc', 'curl'],
      ['SET ← svc', 'set', 'svc'],
      ['redis SET ← SET', 'redis set', 'set'],
      ['GET ← svc', 'get', 'svc'],
      ['redis GET ← GET', 'redis get', 'get'],
      ['call down ← svc', 'call down', 'svc'],
      ['down ← call down', 'down', 'call down'],
    ],
  };
}

interface Score {
  traces: number;
  strict: number;
  links: Record<Outcome, number>;
  breakdown: Map<string, Record<Outcome, number>>;
}

/** Drives `count` requests at `concurrency`, waits for one agent's spans, and scores them. */
async function run(agentId: string, concurrency: number, count: number, first: number): Promise<Score> {
  const ns = Array.from({ length: count }, (_, i) => first + i);
  const urls = ns.map((n) => `http://127.0.0.1:${svc}/go/${n}`);
  const out = await curl(concurrency === 1 ? ['-s', ...urls] : ['-s', '--parallel', '--parallel-immediate', '--parallel-max', String(concurrency), ...urls]);
  expect(out.match(/go \d+: ok \d+ down \d+/g), 'answers').toHaveLength(count);
  const all = ns.flatMap((n) => truth(n).spans.map(([, key]) => key));
  let stored = await storedSpans(agentId);
  for (const deadline = Date.now() + 60_000; all.some((k) => !stored.has(k)) && Date.now() < deadline; stored = await storedSpans(agentId)) await new Promise((r) => setTimeout(r, 1000));
  await new Promise((r) => setTimeout(r, 2000));
  stored = await storedSpans(agentId);
  return score(`${agentId}, concurrency ${concurrency}`, ns, stored);
}

async function score(label: string, ns: number[], stored: Map<string, Stored>): Promise<Score> {
  const s: Score = { traces: 0, strict: 0, links: { right: 0, unattached: 0, wrong: 0, missing: 0 }, breakdown: new Map() };
  const cache = new Map<string, SpanJson[]>();
  let dumped = 0;
  const traceOf = async (spanId: string): Promise<SpanJson[]> => {
    let t = cache.get(spanId);
    if (!t) {
      t = (await api<{ spans: SpanJson[] }>(`/api/v1/traces/${spanId}`)).spans;
      for (const x of t) cache.set(x.span_id, t);
    }
    return t;
  };
  for (const n of ns) {
    s.traces++;
    const tr = truth(n);
    const ids = new Map(tr.spans.map(([name, key]) => [name, stored.get(key)?.span_id]));
    const root = ids.get('curl');
    const trace = root ? await traceOf(root) : [];
    const inTrace = new Map(trace.map((x) => [x.span_id, x]));
    let strict = root !== undefined && trace.length === tr.spans.length && tr.spans.every(([name]) => inTrace.has(ids.get(name) ?? ''));
    for (const [hop, child, parent] of tr.links) {
      const c = ids.get(child);
      const p = ids.get(parent);
      let outcome: Outcome;
      let rule = '-';
      if (!c || !p) outcome = 'missing';
      else {
        const cs = inTrace.get(c) ?? (await traceOf(c)).find((x) => x.span_id === c);
        rule = cs?.parent_rule ?? '-';
        outcome = !cs?.parent_id ? 'unattached' : cs.parent_id === p ? 'right' : 'wrong';
        const ps = inTrace.get(p);
        if (cs && ps && outcome === 'right' && (cs.start_time_us < ps.start_time_us - 1000 || cs.end_time_us > ps.end_time_us + 1000)) strict = false;
        if (outcome === 'wrong') process.stderr.write(`goroutine (${label}): WRONG /go/${n} ${hop}: parent ${cs?.parent_id} [${rule} ${cs?.parent_confidence}] instead of ${p}\n`);
        // A link that is not right explains itself: both ends as stored, with what the rules read.
        if (outcome !== 'right' && dumped++ < 6) {
          const ps2 = ps ?? (await traceOf(p)).find((x) => x.span_id === p);
          process.stderr.write(`goroutine (${label}): ${outcome.toUpperCase()} /go/${n} ${hop}\n    child  ${brief(cs)}\n    parent ${brief(ps2)}\n`);
        }
      }
      if (outcome !== 'right') strict = false;
      s.links[outcome]++;
      const key = `${hop} [${rule}]`;
      const b = s.breakdown.get(key) ?? { right: 0, unattached: 0, wrong: 0, missing: 0 };
      b[outcome]++;
      s.breakdown.set(key, b);
    }
    if (strict) s.strict++;
  }
  const lines = [...s.breakdown].sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, b]) => `  ${k.padEnd(36)} right ${b.right}  unattached ${b.unattached}  wrong ${b.wrong}  missing ${b.missing}`);
  const total = linkCount(s);
  process.stderr.write(
    `goroutine acceptance, ${label}: ${s.strict}/${s.traces} traces strictly right (${((100 * s.strict) / s.traces).toFixed(1)}%); ` +
      `links: ${s.links.right} right, ${s.links.unattached} unattached, ${s.links.wrong} wrong (${((100 * s.links.wrong) / total).toFixed(2)}%), ${s.links.missing} missing of ${total}\n${lines.join('\n')}\n`,
  );
  return s;
}

/** The fields the pairing and thread rules read, for a link that went wrong. */
function brief(x: SpanJson | undefined): string {
  if (!x) return '(not found)';
  return `${x.side} ${x.request_type} ${x.request_resource} ${x.pair_state} t=${x.start_time_us}..${x.end_time_us} seq=${x.req_tcp_seq}/${x.resp_tcp_seq} ports=${x.client_port}->${x.server_port} tid=${x.tid} sys=${x.syscall_trace_id_req}/${x.syscall_trace_id_resp} rule=${x.parent_rule}`;
}

const linkCount = (s: Score): number => Object.values(s.links).reduce((a, b) => a + b, 0);
const wrongShare = (s: Score): number => s.links.wrong / linkCount(s);

/** Scores by [concurrency]: before (threads) and after (goroutines). */
const before = new Map<number, Score>();
const after = new Map<number, Score>();
const PLAN: Array<[concurrency: number, count: number, first: number]> = [
  [1, 5, 1000],
  [30, 60, 3000],
  [100, 100, 5000],
];

describe.skipIf(!runnable)('acceptance: curl → Go net/http (goroutines, shared Redis pool, keep-alive transport) → Go, no headers', () => {
  it('before: thread-keyed syscall ids (--no-goroutines), measured as the baseline', async () => {
    await startAgent('threads', false);
    for (const [c, count, first] of PLAN) before.set(c, await run('threads', c, count, first));
    // The baseline is what it is; only that it was measured at all is required here.
    expect(before.size).toBe(PLAN.length);
  }, 600_000);

  it('after: goroutine ids — no wrong parent links, ≥ 95 % of traces whole under concurrency', async () => {
    await startAgent('goroutines', true);
    for (const [c, count, first] of PLAN) after.set(c, await run('goroutines', c, count, first + 10_000));
    // One at a time: every trace whole and right. (It used to miss one down ← call down link per
    // run: net/http's server reads the next request's first byte ahead, alone, and the span took the
    // second read's TCP sequence; a message read in pieces now carries its first byte's.)
    const one = after.get(1) as Score;
    expect(one.strict, 'strict traces, one at a time').toBe(one.traces);
    for (const [key, b] of one.breakdown) if (/^(SET|GET|call down) ← svc/.test(key)) expect(b.right, `${key} one at a time`).toBe(PLAN[0][1]);
    for (const [c] of PLAN) {
      const s = after.get(c) as Score;
      const b = before.get(c) as Score;
      expect(wrongShare(s), `wrong links at ${c}`).toBeLessThanOrEqual(0.001);
      expect(s.links.missing, `spans never stored at ${c}`).toBe(0);
      expect(s.strict, `strict traces at ${c}: no worse than before`).toBeGreaterThanOrEqual(b.strict);
      // Issue 15's target; measured 98.3–100 % at 30 and 100 % at 100 (before: 30–92 % and 13–40 %, docs/TRACE-ASSEMBLY.md).
      // (One at a time is held above: every trace.)
      if (c > 1) expect(s.strict / s.traces, `strict traces at ${c}`).toBeGreaterThanOrEqual(0.95);
    }
    const summary = PLAN.map(([c]) => {
      const [b, s] = [before.get(c) as Score, after.get(c) as Score];
      const pct = (x: Score): string => `${((100 * x.strict) / x.traces).toFixed(1)}% strict, ${x.links.wrong} wrong of ${linkCount(x)}`;
      return `  concurrency ${String(c).padStart(3)}: before ${pct(b)}  →  after ${pct(s)}`;
    });
    process.stderr.write(`goroutine acceptance summary (same run):\n${summary.join('\n')}\n`);
  }, 600_000);
});

// Two hosts, each its own network namespace with its own address on a veth pair, each with its
// own agent (filtered to that host's processes and with its own agent id), shipping to one store;
// one function runtime. A request crosses from host A to host B; the trace assembled from B's
// server span holds both hosts' spans, joined through the TCP sequence.
import { execFileSync, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFunctions } from '../../functions/runtime/functions-runtime.ts';
import type { Functions } from '../../functions/runtime/functions-runtime.ts';
import { createQueryApp } from '../../functions/query/app.ts';
import { REPO, RIPTIDE } from '../helpers/agent.ts';

const tag = `rt${process.pid % 10000}`;
const NS_A = `${tag}-a`;
const NS_B = `${tag}-b`;
// A /24 inside namespaces this test creates: never routed off the machine.
const IP_A = '10.231.7.1';
const IP_B = '10.231.7.2';

function ip(...args: string[]): void {
  execFileSync('ip', args, { stdio: 'pipe' });
}

function inNs(ns: string, args: string[], opts: { env?: NodeJS.ProcessEnv } = {}): ChildProcess {
  return spawn('ip', ['netns', 'exec', ns, ...args], { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...opts.env } });
}

function waitFor(child: ChildProcess, stream: 'stdout' | 'stderr', pattern: RegExp, ms = 60_000): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    const t = setTimeout(() => reject(new Error(`timeout waiting for ${pattern}: ${text}`)), ms);
    child[stream]!.setEncoding('utf8');
    child[stream]!.on('data', (c: string) => {
      text += c;
      if (pattern.test(text)) {
        clearTimeout(t);
        resolve(text);
      }
    });
    child.once('exit', (code) => reject(new Error(`exited ${code}: ${text}`)));
  });
}

interface Span {
  span_id: string;
  parent_id: string | null;
  side: string;
  process_name: string;
  agent_id: string;
  client_ip: string;
  server_ip: string;
  request_resource: string;
}

describe('several hosts in network namespaces', () => {
  const children: ChildProcess[] = [];
  const dataDir = mkdtempSync(join(tmpdir(), 'rt-multi-'));
  const store = `file://${join(dataDir, 'store')}`;
  let fx: Functions;

  beforeAll(async () => {
    ip('netns', 'add', NS_A);
    ip('netns', 'add', NS_B);
    ip('link', 'add', `${tag}a`, 'type', 'veth', 'peer', 'name', `${tag}b`);
    ip('link', 'set', `${tag}a`, 'netns', NS_A);
    ip('link', 'set', `${tag}b`, 'netns', NS_B);
    for (const [ns, dev, addr] of [
      [NS_A, `${tag}a`, IP_A],
      [NS_B, `${tag}b`, IP_B],
    ]) {
      ip('-n', ns, 'addr', 'add', `${addr}/24`, 'dev', dev);
      ip('-n', ns, 'link', 'set', dev, 'up');
      ip('-n', ns, 'link', 'set', 'lo', 'up');
    }
    // Host B: service B. Host A: service A, which calls B.
    const b = inNs(NS_B, [process.execPath, '-e', `process.title='svc-b';require('http').createServer((q,s)=>s.end('b'+q.url)).listen(8080,'${IP_B}',()=>console.log('up'))`]);
    const a = inNs(NS_A, [
      process.execPath,
      '-e',
      `process.title='svc-a';const h=require('http');h.createServer((q,s)=>h.get('http://${IP_B}:8080/from-a'+q.url,(r)=>{let d='';r.on('data',c=>d+=c);r.on('end',()=>s.end('a<'+d+'>'))})).listen(8080,'${IP_A}',()=>console.log('up'))`,
    ]);
    children.push(b, a);
    await Promise.all([waitFor(b, 'stdout', /up/), waitFor(a, 'stdout', /up/)]);
    // One agent per host, each in its namespace, each keeping to its host's processes.
    for (const [ns, id, pids] of [
      [NS_A, 'host-a', [a.pid]],
      [NS_B, 'host-b', [b.pid]],
    ] as const) {
      // `ip netns exec` execs the command, so these are the service pids themselves.
      const agent = inNs(ns, [process.execPath, RIPTIDE, 'agent', '--agent-id', id, '--store', store, '--data-dir', join(dataDir, id), '--port', '0', '--slot-seconds', '1', '--filter-pid', pids.join(',')]);
      children.push(agent);
      await waitFor(agent, 'stderr', /riptide agent: capturing/);
    }
    fx = await startFunctions({ dataDir: join(dataDir, 'functions'), store, adapter: 'local', pollMs: 300, kubernetes: 'off', ttlDays: 7 });
    void fx.runtime?.start();
  }, 180_000);

  afterAll(async () => {
    for (const c of children.reverse()) c.kill('SIGINT');
    await new Promise((r) => setTimeout(r, 1500));
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
    await fx?.close();
    for (const ns of [NS_A, NS_B]) {
      try {
        ip('netns', 'del', ns);
      } catch {
        /* already gone */
      }
    }
  });

  it('assembles a trace that crosses hosts through the TCP sequence', async () => {
    // One request from a client on host A: client → A (host A) → B (host B).
    const sent = spawn('ip', ['netns', 'exec', NS_A, process.execPath, '-e', `require('http').get('http://${IP_A}:8080/cross',(r)=>{r.resume();r.on('end',()=>console.log('ok'))})`]);
    await waitFor(sent, 'stdout', /ok/);
    const app = createQueryApp({ clickhouse: fx.ch });
    let trace: Span[] = [];
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline) {
      const res = await app.request('/api/v1/spans?resource=/from-a/cross&limit=50');
      const { spans } = (await res.json()) as { spans: Span[] };
      const bServer = spans.find((s) => s.side === 'server' && s.agent_id === 'host-b');
      if (bServer) {
        trace = ((await (await app.request(`/api/v1/traces/${bServer.span_id}`)).json()) as { spans: Span[] }).spans;
        if (trace.some((s) => s.agent_id === 'host-a' && s.side === 'server')) break;
      }
      await new Promise((r) => setTimeout(r, 1000));
    }
    const aServer = trace.find((s) => s.agent_id === 'host-a' && s.side === 'server' && s.request_resource === '/cross');
    const aClient = trace.find((s) => s.agent_id === 'host-a' && s.side === 'client' && s.request_resource === '/from-a/cross');
    const bServer = trace.find((s) => s.agent_id === 'host-b' && s.side === 'server' && s.request_resource === '/from-a/cross');
    expect(aServer, "host A's server span").toBeDefined();
    expect(aClient, "host A's call to B").toBeDefined();
    expect(bServer, "host B's server span").toBeDefined();
    expect(bServer!.parent_id).toBe(aClient!.span_id);
    expect(aClient!.parent_id).toBe(aServer!.span_id);
    expect(aClient!.client_ip).toBe(IP_A);
    expect(bServer!.server_ip).toBe(IP_B);
    expect(bServer!.client_ip).toBe(IP_A);
  });
});

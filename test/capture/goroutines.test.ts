// Goroutine ids from the kernel (issue 15), under the real agent: Go net/http servers built here with
// Debian's golang-go — one started before the agent (found by the start-up scan), one after (found on
// exec), one stripped (no DWARF: counted, captured with thread ids) — and --no-goroutines.
import { execFile, execFileSync, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO, freePort, startAgent } from '../helpers/agent.ts';
import type { OutputLine, RunningAgent } from '../helpers/agent.ts';
import { waitForPort } from '../protocols/recorder.ts';

const isRoot = process.getuid?.() === 0;
const need = ['/usr/bin/curl', '/usr/bin/go'].filter((f) => !fs.existsSync(f));
if (!isRoot || need.length) process.stderr.write(`goroutine capture test skipped: ${!isRoot ? 'needs root for BPF' : `needs ${need.join(', ')}`}\n`);
const runnable = isRoot && need.length === 0;

let dir = '';
const servers: ChildProcess[] = [];
let agent: RunningAgent | undefined;

function curlParallel(port: number, n: number): Promise<string> {
  const urls = Array.from({ length: n }, (_, i) => `http://127.0.0.1:${port}/down/${i}`);
  return new Promise((resolve, reject) => execFile('curl', ['-s', '--parallel', '--parallel-immediate', '--parallel-max', '10', ...urls], { timeout: 60_000 }, (e, out) => (e ? reject(e) : resolve(String(out)))));
}

async function serve(bin: string): Promise<{ port: number; pid: number }> {
  const port = await freePort();
  const c = spawn(bin, ['down', String(port)], { stdio: 'ignore' });
  servers.push(c);
  await waitForPort(port);
  return { port, pid: c.pid as number };
}

async function metric(a: RunningAgent, name: string, labels: string): Promise<number> {
  const port = /metrics on http:\/\/[\d.]+:(\d+)\/metrics/.exec(a.stderr())?.[1];
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name}{${labels}}`));
  return line ? Number(line.split(' ').at(-1)) : 0;
}

beforeAll(() => {
  if (!runnable) return;
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'riptide-goroutines-'));
  const env = { ...process.env, GOCACHE: path.join(dir, 'gocache'), GOPATH: path.join(dir, 'gopath'), GOFLAGS: '-mod=mod', GOPROXY: 'off' };
  const cwd = path.join(REPO, 'test', 'query', 'goroutine-service');
  execFileSync('go', ['build', '-o', path.join(dir, 'gsvc'), '.'], { cwd, env, stdio: ['ignore', 'ignore', 'inherit'] });
  execFileSync('go', ['build', '-ldflags=-s -w', '-o', path.join(dir, 'gsvc-stripped'), '.'], { cwd, env, stdio: ['ignore', 'ignore', 'inherit'] });
}, 240_000);

afterAll(async () => {
  await agent?.stop();
  for (const c of servers) c.kill();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

/**
 * The server's lines by connection: every one has a goroutine, and one goroutine per connection
 * writes its responses. Reads may come from one more: net/http's background reader (a goroutine per
 * connection that reads ahead while a handler runs) takes the first byte of a kept-alive
 * connection's next request when it arrives during the handler, which happens under load.
 */
function expectGoroutinePerConnection(lines: OutputLine[], pid: number, requests: number): void {
  const mine = lines.filter((l) => l.pid === pid);
  expect(mine.length, 'server lines').toBeGreaterThanOrEqual(2 * requests);
  expect(mine.filter((l) => l.coroutine_id === 0), 'lines without a goroutine id').toEqual([]);
  const bySocket = new Map<number, Set<number>>();
  const readers = new Map<number, Set<number>>();
  for (const l of mine) {
    const into = l.direction === 'egress' ? bySocket : readers;
    into.set(l.socket_id, (into.get(l.socket_id) ?? new Set()).add(l.coroutine_id));
  }
  for (const ids of bySocket.values()) expect(ids.size, 'goroutines writing one connection').toBe(1);
  for (const [sock, ids] of readers) {
    const writer = [...(bySocket.get(sock) ?? [])][0];
    expect(ids.has(writer) || writer === undefined, 'the writing goroutine reads its requests').toBe(true);
    expect(ids.size, 'goroutines reading one connection (its own and the background reader)').toBeLessThanOrEqual(2);
  }
  const all = [...bySocket.values()].map((s) => [...s][0]);
  expect(new Set(all).size, 'connections served by distinct goroutines').toBe(all.length);
  // A request and its response share the goroutine's syscall-trace id (the background reader's
  // read-ahead is another goroutine's).
  for (const l of mine.filter((x) => x.direction === 'egress')) {
    const req = mine.filter((x) => x.socket_id === l.socket_id && x.direction === 'ingress' && x.coroutine_id === l.coroutine_id && x.ts_ns < l.ts_ns).at(-1);
    expect(req?.syscall_trace_id, 'response id = request id').toBe(l.syscall_trace_id);
  }
}

describe.skipIf(!runnable)('goroutine ids in capture', () => {
  it('reads the goroutine of every syscall of Go servers started before and after the agent; a stripped one is counted and keeps thread ids', async () => {
    const before = await serve(path.join(dir, 'gsvc'));
    const stripped = await serve(path.join(dir, 'gsvc-stripped'));
    const later = await freePort();
    agent = await startAgent(['--filter-port', `${before.port},${stripped.port},${later}`]);
    const c = spawn(path.join(dir, 'gsvc'), ['down', String(later)], { stdio: 'ignore' });
    servers.push(c);
    await waitForPort(later);
    for (const p of [before.port, stripped.port, later]) expect(await curlParallel(p, 20)).toContain('down 19');
    await agent.waitFor((l) => l.pid === c.pid && l.direction === 'egress', 20);
    await agent.waitFor((l) => l.pid === stripped.pid && l.direction === 'egress', 20);
    expectGoroutinePerConnection(agent.lines, before.pid, 20);
    expectGoroutinePerConnection(agent.lines, c.pid as number, 20);
    expect(agent.lines.filter((l) => l.pid === stripped.pid && l.coroutine_id !== 0), 'stripped binary').toEqual([]);
    expect(agent.lines.filter((l) => l.process_name === 'curl' && l.coroutine_id !== 0), 'curl is not Go').toEqual([]);
    expect(await metric(agent, 'riptide_capture_go_processes_total', 'result="tracked"')).toBeGreaterThanOrEqual(2);
    expect(await metric(agent, 'riptide_capture_go_processes_total', 'result="no_dwarf"')).toBeGreaterThanOrEqual(1);
    expect(await metric(agent, 'riptide_capture_goroutine_reads_total', 'result="ok"')).toBeGreaterThanOrEqual(80);
    expect(await metric(agent, 'riptide_capture_goroutine_reads_total', 'result="failed"')).toBe(0);
    await agent.stop();
    agent = undefined;
  }, 120_000);

  it('--no-goroutines captures Go processes with thread ids only, as before', async () => {
    const s = await serve(path.join(dir, 'gsvc'));
    agent = await startAgent(['--filter-port', String(s.port), '--no-goroutines']);
    expect(await curlParallel(s.port, 10)).toContain('down 9');
    const lines = await agent.waitFor((l) => l.pid === s.pid && l.direction === 'egress', 10);
    expect(lines.every((l) => l.coroutine_id === 0)).toBe(true);
    expect(await metric(agent, 'riptide_capture_go_processes_total', 'result="tracked"')).toBe(0);
    await agent.stop();
    agent = undefined;
  }, 120_000);
});

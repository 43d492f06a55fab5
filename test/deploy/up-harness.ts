/**
 * `riptide up` for the deploy tests, as a user starts it (temp --data-dir, free --port, no --demo),
 * plus what those tests send and read: a local HTTP server of the test's own, traffic to it, and
 * its spans as the API returns them. stop() leaves no process, no BPF program and no temp file.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, request } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO, RIPTIDE, freePort } from '../helpers/agent.ts';
import { childrenOf, isAlive } from '../helpers/proc.ts';

export interface Answer {
  status: number;
  body: { status?: string; reasons?: string[]; reason?: string };
}

export interface RunningUp {
  proc: ChildProcess;
  port: number;
  dataDir: string;
  stderr: () => string;
  get(path: string): Promise<Answer>;
  /** The pid of the agent child now running (undefined while there is none). */
  agentPid(): number | undefined;
  /** Polls until `pred` holds for an answer of `path`; returns every answer seen (the last one matched). */
  until(path: string, pred: (a: Answer) => boolean, timeoutMs: number, everyMs?: number): Promise<Answer[]>;
  /** SIGINT and wait; SIGKILL of up and its children when it does not end in time. Returns the exit code. */
  stop(): Promise<number | null>;
}

export async function startUp(args: string[] = []): Promise<RunningUp> {
  const port = await freePort();
  const dataDir = mkdtempSync(join(tmpdir(), 'rt-up-sup-'));
  const proc = spawn(process.execPath, [RIPTIDE, 'up', '--data-dir', dataDir, '--port', String(port), ...args], { cwd: REPO, stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  proc.stderr!.setEncoding('utf8');
  proc.stderr!.on('data', (c: string) => (err += c));
  const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
  const known = new Set<number>();
  const get = async (path: string): Promise<Answer> => {
    const r = await fetch(`http://127.0.0.1:${port}${path}`, { signal: AbortSignal.timeout(5000) });
    const text = await r.text();
    let body: Answer['body'] = {};
    try {
      body = JSON.parse(text) as Answer['body'];
    } catch {
      /* not JSON (404 page, metrics) */
    }
    return { status: r.status, body };
  };
  const up: RunningUp = {
    proc,
    port,
    dataDir,
    stderr: () => err,
    get,
    agentPid() {
      if (!proc.pid) return undefined;
      for (const k of childrenOf(proc.pid)) {
        try {
          if (readFileSync(`/proc/${k}/cmdline`, 'utf8').includes('riptide.mjs\0agent') && isAlive(k)) {
            known.add(k);
            return k;
          }
        } catch {
          /* gone meanwhile */
        }
      }
      return undefined;
    },
    async until(path, pred, timeoutMs, everyMs = 50) {
      const seen: Answer[] = [];
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        if (proc.exitCode !== null) throw new Error(`riptide up exited (${proc.exitCode}); stderr:\n${err}`);
        const a = await get(path).catch((e: unknown) => ({ status: 0, body: { reason: String(e) } }));
        if (a.status !== 0) seen.push(a);
        if (a.status !== 0 && pred(a)) return seen;
        if (Date.now() > deadline) throw new Error(`${path}: no matching answer in ${timeoutMs} ms; last ${JSON.stringify(seen.at(-1))}; stderr:\n${err}`);
        await new Promise((r) => setTimeout(r, everyMs));
      }
    },
    async stop() {
      if (proc.pid) for (const k of childrenOf(proc.pid)) known.add(k);
      if (proc.exitCode === null) {
        for (const k of known) if (isAlive(k)) process.kill(k, 'SIGCONT'); // a test may have stopped the agent
        proc.kill('SIGINT');
        const t = setTimeout(() => proc.kill('SIGKILL'), 30_000);
        await exited;
        clearTimeout(t);
      }
      for (let i = 0; i < 50 && [...known].some(isAlive); i++) await new Promise((r) => setTimeout(r, 100));
      for (const k of known) if (isAlive(k)) process.kill(k, 'SIGKILL');
      rmSync(dataDir, { recursive: true, force: true });
      return proc.exitCode;
    },
  };
  // A failed test must not leave an agent attached to every syscall of the machine.
  process.once('exit', () => {
    if (proc.exitCode === null) proc.kill('SIGKILL');
    for (const k of known) if (isAlive(k)) process.kill(k, 'SIGKILL');
  });
  return up;
}

/** An HTTP server of the test's own on 127.0.0.1 (a port only this test uses). */
export async function startTarget(): Promise<{ server: Server; port: number }> {
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => res.end('ok'));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return { server, port: (server.address() as AddressInfo).port };
}

/** n GETs of /<tag>/<i>, each on its own connection, one after another; resolves when all are answered. */
export async function sendRequests(port: number, tag: string, n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    await new Promise<void>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, path: `/${tag}/${i}`, agent: false }, (res) => {
        res.resume();
        res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`status ${res.statusCode}`))));
      });
      req.on('error', reject);
      req.end();
    });
  }
}

interface SpanRow {
  side: string;
  server_port: number;
  request_resource: string;
}

/** Distinct resources of the server spans of `port` whose resource contains `tag`, once `n` are there or the time is up. */
export async function spansOf(up: RunningUp, port: number, tag: string, n: number, timeoutMs = 20_000): Promise<string[]> {
  const deadline = Date.now() + timeoutMs;
  let found: string[] = [];
  while (Date.now() < deadline) {
    const r = await fetch(`http://127.0.0.1:${up.port}/api/v1/spans?resource=${encodeURIComponent(tag)}&side=server&limit=1000`);
    const { spans } = (await r.json()) as { spans: SpanRow[] };
    found = [...new Set(spans.filter((s) => s.side === 'server' && s.server_port === port).map((s) => s.request_resource))].sort();
    if (found.length >= n) break;
    await new Promise((r) => setTimeout(r, 250));
  }
  return found;
}

export function expectedResources(tag: string, n: number): string[] {
  return Array.from({ length: n }, (_, i) => `/${tag}/${i}`).sort();
}

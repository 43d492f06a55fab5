/**
 * Two-phase start-up of the real commands (lib/lifecycle.ts): when a part fails after others were
 * built or started — the agent's capture after its status server, flush timer and plugin host; `up`'s
 * API server after the functions' timers and polling; `up`'s agent after the functions, the API
 * server and the marketplace — the command says why in one line, with its exit code, and the
 * process ends on its own: no listener, timer, watcher or child process is left holding it open
 * (nothing calls process.exit; riptide.mjs only sets the exit code). Nothing it spawned survives.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import type { AddressInfo, Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../protocols/recorder.ts';
import { REPO, RIPTIDE } from '../helpers/agent.ts';

let tmp: string;
let busy: Server;
let busyPort: number;

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'rt-startup-'));
  busy = createServer();
  await new Promise<void>((r) => busy.listen(0, '127.0.0.1', r));
  busyPort = (busy.address() as AddressInfo).port;
});
afterAll(async () => {
  await new Promise<void>((r) => busy.close(() => r()));
  rmSync(tmp, { recursive: true, force: true });
});

interface Run {
  code: number | null;
  stderr: string;
  /** Whether it ended by itself before the deadline (else it was killed: something held it open). */
  exitedByItself: boolean;
}

/** `riptide <args>`; killed after `deadlineMs` if it has not ended by then. */
function run(args: string[], deadlineMs = 90_000): Promise<Run> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith('RIPTIDE_')) env[k] = v;
  const child = spawn(process.execPath, [RIPTIDE, ...args], { cwd: REPO, env, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (c: Buffer) => (stderr += c.toString()));
  let killed = false;
  const timer = setTimeout(() => {
    killed = true;
    child.kill('SIGKILL');
  }, deadlineMs);
  return new Promise((resolve) => {
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stderr, exitedByItself: !killed });
    });
  });
}

/** Processes whose command line names `dir` (what a leaked agent or demo child would show). */
function processesNaming(dir: string): string[] {
  const out: string[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d) || Number(d) === process.pid) continue;
    try {
      const cmd = readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0').join(' ');
      if (cmd.includes(dir)) out.push(`${d}: ${cmd}`);
    } catch {
      /* gone meanwhile */
    }
  }
  return out;
}

/** The one `riptide <command>: …` failure line (up's progress lines before it are fine). */
function failureLine(stderr: string, command: string): string {
  return stderr.split('\n').filter((l) => l.startsWith(`riptide ${command}: `) && !/^riptide up: (host checks|ClickHouse ready|functions polling|query API|agent|marketplace)/.test(l)).pop() ?? '';
}

describe('a part that fails to start takes the others down with it', () => {
  it('agent: capture refused after the status server, the flush timer and the plugin host started → exit 1, ends by itself', async () => {
    const dir = join(tmp, 'agent');
    const r = await run(['agent', '--port', '0', '--ring-mb', '3', '--plugin', join(REPO, 'plugins', 'tinyrpc'), '--output', join(tmp, 'agent.ndjson'), '--data-dir', dir]);
    expect(r.exitedByItself, r.stderr).toBe(true);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toMatch(/^riptide agent: cannot capture: ring buffer size must be a power of two/m);
    expect(r.stderr).not.toMatch(/capturing on/);
  });

  it('up: the API port is taken after the functions started their timers and polling → exit 5, ends by itself, no agent started', async () => {
    const dir = join(tmp, 'up-busy');
    const r = await run(['up', '--port', String(busyPort), '--data-dir', dir]);
    expect(r.exitedByItself, r.stderr).toBe(true);
    expect(r.code, r.stderr).toBe(5);
    expect(failureLine(r.stderr, 'up')).toMatch(new RegExp(`^riptide up: cannot listen on 127\\.0\\.0\\.1:${busyPort}: listen EADDRINUSE`));
    expect(r.stderr).toMatch(/functions polling/); // the failure came after the functions started
    expect(r.stderr).not.toMatch(/agent capturing/);
    expect(processesNaming(dir)).toEqual([]);
  });

  it('up: the agent fails after the functions, the API server and the marketplace started → exit 1, ends by itself, nothing left running', async () => {
    const dir = join(tmp, 'up-agent');
    const port = await freePort();
    // A marketplace plugin without --trusted-key: the agent child refuses to start.
    const r = await run(['up', '--port', String(port), '--plugin', 'tinyrpc@^1', '--data-dir', dir]);
    expect(r.exitedByItself, r.stderr).toBe(true);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toMatch(/listening on http:\/\/127\.0\.0\.1:\d+\//); // the API server had started
    expect(failureLine(r.stderr, 'up')).toMatch(/^riptide up: the agent did not start: .*--trusted-key/);
    expect(processesNaming(dir)).toEqual([]);
    // Its port is free again: the server was closed, not left to the exit.
    const again = createServer();
    await new Promise<void>((res, rej) => {
      again.once('error', rej);
      again.listen(port, '127.0.0.1', () => res());
    });
    await new Promise<void>((res) => again.close(() => res()));
  });
});

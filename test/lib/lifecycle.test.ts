// Two-phase start-up (lib/lifecycle.ts) with real parts — listening servers, interval timers, child
// processes: a part that fails to start disposes everything built or started before it, latest
// first, and nothing is left running (the process's active handles are back where they were).
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import type { Server } from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Lifecycle } from '../../lib/lifecycle.ts';

const spawned: ChildProcess[] = [];
afterEach(() => {
  for (const c of spawned.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

/** Active handles by type (TCPServerWrap, Timeout, ProcessWrap, PipeWrap…). */
function handles(): Record<string, number> {
  const out: Record<string, number> = {};
  for (const t of process.getActiveResourcesInfo()) out[t] = (out[t] ?? 0) + 1;
  return out;
}

function listen(port = 0): Promise<Server> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(port, '127.0.0.1', () => res(s));
  });
}

const closeServer = (s: Server): Promise<void> => new Promise((r) => s.close(() => r()));

function child(): Promise<ChildProcess> {
  const c = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000); console.log("up")'], { stdio: ['ignore', 'pipe', 'ignore'] });
  spawned.push(c);
  return new Promise((res, rej) => {
    c.stdout?.once('data', () => res(c));
    c.once('error', rej);
  });
}

async function stopChild(c: ChildProcess): Promise<void> {
  if (c.exitCode !== null || c.signalCode !== null) return;
  const gone = new Promise<void>((r) => c.once('exit', () => r()));
  c.kill('SIGTERM');
  await gone;
}

const gone = (c: ChildProcess): boolean => c.exitCode !== null || c.signalCode !== null;

describe('Lifecycle: build, then start; a failure disposes what was made', () => {
  it('a start that fails (port in use) disposes the started server, timer and child and the built parts, latest first', async () => {
    const before = handles();
    const busy = await listen();
    const busyPort = (busy.address() as { port: number }).port;
    const order: string[] = [];
    const life = new Lifecycle({ log: () => {} });
    const resource = await life.build('resource', () => ({ open: true }), (r) => {
      r.open = false;
      order.push('resource');
    });
    const api = await life.start('api server', () => listen(), async (s) => {
      await closeServer(s);
      order.push('api server');
    });
    let ticks = 0;
    const timer = await life.start('poll timer', () => setInterval(() => ticks++, 5), (t) => {
      clearInterval(t);
      order.push('poll timer');
    });
    void timer;
    await new Promise((r) => setTimeout(r, 30));
    expect(ticks).toBeGreaterThan(0);
    const proc = await life.start('child', () => child(), async (c) => {
      await stopChild(c);
      order.push('child');
    });
    const apiPort = (api.address() as { port: number }).port;
    expect(handles().ProcessWrap).toBeGreaterThan(before.ProcessWrap ?? 0);
    expect(handles().TCPServerWrap).toBeGreaterThan(before.TCPServerWrap ?? 0);

    const err = await life.start('status server', () => listen(busyPort), closeServer).catch((e: unknown) => e);
    expect((err as NodeJS.ErrnoException).code).toBe('EADDRINUSE'); // the caller still sees why
    expect(order).toEqual(['child', 'poll timer', 'api server', 'resource']);
    expect(resource.open).toBe(false);
    expect(gone(proc)).toBe(true);
    expect(api.listening).toBe(false);
    await expect(listen(apiPort).then(closeServer)).resolves.toBeUndefined(); // its port is free again
    expect(life.closed).toBe(true);
    const stoppedAt = ticks;
    await new Promise((r) => setTimeout(r, 30));
    expect(ticks).toBe(stoppedAt); // the timer was cleared
    await closeServer(busy);
    // Handles are released on a later turn of the loop (the refused listen's too).
    const kinds = (h: Record<string, number>) => ({ server: h.TCPServerWrap ?? 0, process: h.ProcessWrap ?? 0, pipe: h.PipeWrap ?? 0 });
    await vi.waitFor(() => expect(kinds(handles())).toEqual(kinds(before)), { timeout: 2000, interval: 20 });
  });

  it('a build that fails disposes the parts built before it and starts nothing', async () => {
    const life = new Lifecycle({ log: () => {} });
    const order: string[] = [];
    await life.build('store', () => 'store', () => order.push('store'));
    await life.build('clickhouse', () => 'ch', () => order.push('clickhouse'));
    const err = await life.build('migrations', () => Promise.reject(new Error('ClickHouse refused the migration'))).catch((e: unknown) => e);
    expect((err as Error).message).toBe('ClickHouse refused the migration');
    expect(order).toEqual(['clickhouse', 'store']);
    await expect(life.start('server', () => listen())).rejects.toThrow(/already closed/);
  });

  it('keeps the phases apart: nothing is built once start-up has begun starting parts', async () => {
    const life = new Lifecycle();
    await life.build('a', () => 1);
    await life.start('b', () => 2);
    await expect(life.build('c', () => 3)).rejects.toThrow(/past its build phase/);
    await life.close();
  });

  it('a disposal that throws does not keep the others from running; the failing step\'s error wins', async () => {
    const logged: string[] = [];
    const life = new Lifecycle({ log: (l) => logged.push(l) });
    const proc = await life.start('child', () => child(), stopChild);
    await life.start('flaky', () => 1, () => {
      throw new Error('flaky would not stop');
    });
    await expect(life.start('broken', () => Promise.reject(new Error('broken part')))).rejects.toThrow('broken part');
    expect(gone(proc)).toBe(true);
    expect(logged).toEqual([expect.stringMatching(/failed start \(broken\): flaky would not stop/)]);
  });

  it('close() disposes once, latest first, however often it is called; a close during a start undoes that part too', async () => {
    const life = new Lifecycle();
    let disposed = 0;
    await life.build('a', () => 1, () => disposed++);
    let release: () => void = () => {};
    const slow = life.start('slow', () => new Promise<Server>((r) => (release = () => void listen().then(r))), closeServer);
    await Promise.all([life.close(), life.close()]);
    expect(disposed).toBe(1);
    release();
    const s = await slow;
    expect(s.listening).toBe(false); // closed as soon as it came up
  });
});

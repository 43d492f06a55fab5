// Filters: by pid, by process name, by port (OR-ed when several are given), and exclusions that
// win over every filter.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { OutputLine } from '../helpers/agent.ts';
import { freePort, payloadText, startAgent } from '../helpers/agent.ts';

const run = promisify(execFile);

describe('capture filters', () => {
  let server: ChildProcess;
  let port: number;

  beforeAll(async () => {
    port = await freePort();
    server = spawn(process.execPath, ['-e', `require('http').createServer((q,s)=>s.end('ok')).listen(${port},'127.0.0.1',()=>console.log('up'))`], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise((r) => server.stdout!.once('data', r));
  });
  afterAll(() => {
    server?.kill();
  });

  async function capture(args: string[], path: string): Promise<OutputLine[]> {
    const agent = await startAgent(args);
    try {
      await run('curl', ['-sS', `http://127.0.0.1:${port}${path}`]);
      // Both ends are on loopback: wait for whichever side the filter lets through, then a little longer.
      await agent.waitFor((l) => payloadText(l).includes(path), 1, 5000).catch(() => []);
      await new Promise((r) => setTimeout(r, 300));
      return agent.lines.filter((l) => payloadText(l).includes(path));
    } finally {
      await agent.stop();
    }
  }

  it('--filter-pid captures only that process', async () => {
    const lines = await capture(['--filter-pid', String(server.pid)], '/by-pid');
    expect(lines.length).toBeGreaterThan(0);
    expect(new Set(lines.map((l) => l.pid))).toEqual(new Set([server.pid]));
  });

  it('--filter-comm captures only processes of that name', async () => {
    const lines = await capture(['--filter-comm', 'curl'], '/by-comm');
    expect(lines.length).toBeGreaterThan(0);
    expect(new Set(lines.map((l) => l.process_name))).toEqual(new Set(['curl']));
  });

  it('--exclude-pid wins over a port filter', async () => {
    const lines = await capture(['--filter-port', String(port), '--exclude-pid', String(server.pid)], '/excluded');
    expect(lines.length).toBeGreaterThan(0);
    expect(lines.some((l) => l.pid === server.pid)).toBe(false);
    expect(lines.every((l) => l.process_name === 'curl')).toBe(true);
  });
});

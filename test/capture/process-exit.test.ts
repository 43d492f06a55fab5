// Live: the capture stage reports process exit from the kernel and drops cached metadata, so a
// later process with the same pid is read afresh.
import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Capture } from '../../agent/capture/capture.ts';
import type { ProcessEvent } from '../../agent/capture/decoder.ts';
import type { CapturedMessage, ProcessInfo } from '../../agent/capture/message.ts';
import { freePort } from '../helpers/agent.ts';

describe('process lifecycle in the capture stage', () => {
  let cap: Capture;
  const events: ProcessEvent[] = [];
  const messages: Array<{ m: CapturedMessage; p: ProcessInfo | undefined }> = [];
  let port: number;

  beforeAll(async () => {
    port = await freePort();
    cap = Capture.start({ filter: { ports: [port] }, pollMs: 5 }, {
      onMessage: (m, p) => messages.push({ m, p }),
      onProcessEvent: (e) => events.push(e),
    });
  });
  afterAll(() => cap?.stop());

  it('attributes traffic to the right command line and sees the process exit', async () => {
    const code = `const s=require('net').connect(${port},'127.0.0.1');s.on('error',()=>{});s.write('x');setTimeout(()=>process.exit(0),50)`;
    const server = (await import('node:net')).createServer((c) => c.on('data', () => c.end()));
    await new Promise<void>((r) => server.listen(port, '127.0.0.1', () => r()));
    const child = spawn(process.execPath, ['-e', code, 'marker-arg-1'], { stdio: 'ignore' });
    await new Promise((r) => child.once('exit', r));
    const deadline = Date.now() + 5000;
    while (Date.now() < deadline && !events.some((e) => e.kind === 'exit' && e.pid === child.pid)) await new Promise((r) => setTimeout(r, 20));
    server.close();
    const sent = messages.find((x) => x.m.pid === child.pid && x.m.direction === 'egress');
    expect(sent?.p?.cmdline).toContain('marker-arg-1');
    expect(events.find((e) => e.kind === 'exit' && e.pid === child.pid)).toBeDefined();
    // The cache no longer holds the dead pid.
    expect(cap.processes.get(child.pid!)).toBeUndefined();
  });
});

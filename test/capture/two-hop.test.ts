// client → A → B with plain Node http services in their own processes, no tracing headers:
// A's ingress request and A's egress call to B carry the same syscall-trace id, which is how a
// server span is linked to the downstream calls its thread made.
import { execFile, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningAgent } from '../helpers/agent.ts';
import { freePort, payloadText, startAgent } from '../helpers/agent.ts';

const run = promisify(execFile);

function service(port: number, downstream?: number): ChildProcess {
  const code = downstream
    ? `require('http').createServer((q, s) => require('http').get('http://127.0.0.1:${downstream}/b' + q.url, (r) => { let b=''; r.on('data', (c) => b += c); r.on('end', () => s.end('A<' + b + '>')); })).listen(${port}, '127.0.0.1', () => console.log('up'))`
    : `require('http').createServer((q, s) => s.end('B:' + q.url)).listen(${port}, '127.0.0.1', () => console.log('up'))`;
  return spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
}

async function up(p: ChildProcess): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    p.stdout!.once('data', () => resolve());
    p.once('exit', (c) => reject(new Error(`service exited ${c}`)));
  });
}

describe('two-hop chain client → A → B', () => {
  let agent: RunningAgent;
  let a: ChildProcess;
  let b: ChildProcess;
  let portA: number;
  let portB: number;

  beforeAll(async () => {
    [portA, portB] = [await freePort(), await freePort()];
    agent = await startAgent(['--filter-port', `${portA},${portB}`]);
    b = service(portB);
    a = service(portA, portB);
    await Promise.all([up(a), up(b)]);
  });
  afterAll(async () => {
    a?.kill();
    b?.kill();
    await agent?.stop();
  });

  it("links A's incoming request to its call to B through the syscall-trace id", async () => {
    const { stdout } = await run('curl', ['-sS', `http://127.0.0.1:${portA}/hop`]);
    expect(stdout).toBe('A<B:/b/hop>');
    await agent.waitFor((l) => l.process_name === 'curl' && l.direction === 'ingress');
    const lines = agent.lines;
    const aIn = lines.find((l) => l.pid === a.pid && l.direction === 'ingress' && payloadText(l).startsWith('GET /hop '));
    const aOut = lines.find((l) => l.pid === a.pid && l.direction === 'egress' && payloadText(l).startsWith('GET /b/hop '));
    const bIn = lines.find((l) => l.pid === b.pid && l.direction === 'ingress' && payloadText(l).startsWith('GET /b/hop '));
    expect(aIn, "A's incoming request").toBeDefined();
    expect(aOut, "A's call to B").toBeDefined();
    expect(bIn, "B's incoming request").toBeDefined();
    expect(aIn!.role).toBe('server');
    expect(aOut!.role).toBe('client');
    expect(aIn!.syscall_trace_id).toBeGreaterThan(0);
    expect(aOut!.syscall_trace_id).toBe(aIn!.syscall_trace_id);
    // Across the hop, the TCP sequence joins A's client side to B's server side.
    expect(aOut!.tcp_seq).toBe(bIn!.tcp_seq);
    // B's request is a different receive, so it has its own id.
    expect(bIn!.syscall_trace_id).not.toBe(aIn!.syscall_trace_id);
  });
});

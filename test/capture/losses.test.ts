// Loss is counted, never silent: with a tiny ring buffer and 8 KiB captures, a burst overflows
// the ring; the kernel's drops show on /metrics, and what was read plus what was dropped accounts
// for every message sent.
import { createServer, connect } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import type { RunningAgent } from '../helpers/agent.ts';
import { freePort, startAgent } from '../helpers/agent.ts';

async function metric(url: string, line: RegExp): Promise<number> {
  const text = await (await fetch(url)).text();
  return Number(line.exec(text)?.[1] ?? 0);
}

describe('losses', () => {
  let agent: RunningAgent | undefined;
  afterAll(async () => {
    await agent?.stop();
  });

  it('counts ring-buffer overflows on /metrics and logs them', async () => {
    const port = await freePort();
    // 16 KiB ring, 8 KiB per record: two records fill it; the agent drains every 10 ms.
    agent = await startAgent(['--filter-port', String(port), '--ring-mb', '0.015625', '--capture-bytes', '8192']);
    const url = /metrics on (http:\/\/\S+\/metrics)/.exec(agent.stderr())![1];
    let received = 0;
    const server = createServer((c) => c.on('data', (d) => (received += d.length)));
    await new Promise<void>((r) => server.listen(port, '127.0.0.1', () => r()));
    const client = connect(port, '127.0.0.1');
    await new Promise((r) => client.once('connect', r));
    const chunk = Buffer.alloc(8192, 0x61);
    const sends = 400;
    for (let i = 0; i < sends; i++) client.write(chunk);
    await new Promise<void>((r) => client.end(() => r()));
    while (received < sends * chunk.length) await new Promise((r) => setTimeout(r, 20));
    server.close();
    await new Promise((r) => setTimeout(r, 300));
    const dropped = await metric(url, /^riptide_capture_dropped_total\{reason="ringbuf_full"\} (\d+)/m);
    const read = await metric(url, /^riptide_capture_received_total (\d+)/m);
    expect(dropped).toBeGreaterThan(0);
    // Client writes + server reads (the reads may coalesce, so at least the writes are there).
    expect(read + dropped).toBeGreaterThanOrEqual(sends);
    await agent.stop();
    expect(agent.stderr()).toMatch(/capture: kernel dropped messages: \d+ dropped/);
    agent = undefined;
  });
});

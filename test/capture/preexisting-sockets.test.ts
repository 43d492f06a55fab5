// Connections opened before the agent started have no connect/accept for the kernel side to see;
// their roles come from the listening ports of the process's network namespace.
import { createServer, connect } from 'node:net';
import type { Socket } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import type { RunningAgent } from '../helpers/agent.ts';
import { freePort, payloadText, startAgent } from '../helpers/agent.ts';

describe('sockets that predate the agent', () => {
  let agent: RunningAgent | undefined;
  afterAll(async () => {
    await agent?.stop();
  });

  it('gets client and server roles from the listening ports', async () => {
    const port = await freePort();
    const server = createServer((c) => c.on('data', (d) => c.write('pong:' + d.toString())));
    await new Promise<void>((r) => server.listen(port, '127.0.0.1', () => r()));
    const client: Socket = await new Promise((r) => {
      const s = connect(port, '127.0.0.1', () => r(s));
    });
    // The connection exists; only now does capture start.
    agent = await startAgent(['--filter-port', String(port)]);
    const reply = new Promise<string>((r) => client.once('data', (d) => r(d.toString())));
    client.write('ping-preexisting');
    expect(await reply).toBe('pong:ping-preexisting');
    const [out] = await agent.waitFor((l) => payloadText(l) === 'ping-preexisting' && l.direction === 'egress');
    const [inn] = await agent.waitFor((l) => payloadText(l) === 'ping-preexisting' && l.direction === 'ingress');
    expect(out.role).toBe('client');
    expect(inn.role).toBe('server');
    expect(out.tcp_seq).toBe(inn.tcp_seq);
    client.destroy();
    server.close();
  });
});

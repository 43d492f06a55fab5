// Connections opened before the agent started have no connect/accept for the kernel side to see;
// their roles come from the listening ports of the process's network namespace. A thread already
// blocked in recv()/read() on such a connection when capture starts has no enter for that call
// either; its exit is finished from the syscall's registers (issue 15: the first request after
// start-up on a keep-alive connection was lost).
import { spawn } from 'node:child_process';
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

  // A thread-per-connection server (Python) accepts, then blocks reading before the agent attaches.
  const blocked = `
import os, socket, sys, time
l = socket.socket(); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind(('127.0.0.1', int(sys.argv[1]))); l.listen()
c, _ = l.accept()
print('accepted', flush=True)
d = c.recv(4096) if sys.argv[2] == 'recv' else os.read(c.fileno(), 4096)
c.sendall(b'pong:' + d)
c.close()
time.sleep(60)  # alive until killed: the agent reads its namespace's listening ports for the role
`;
  for (const call of ['recv', 'read'] as const) {
    it(`captures the request a thread blocked in ${call}() before the agent started was waiting for`, async () => {
      const port = await freePort();
      const py = spawn('python3', ['-c', blocked, String(port), call], { stdio: ['ignore', 'pipe', 'inherit'] });
      try {
        const accepted = new Promise<void>((r) => py.stdout.on('data', (d: Buffer) => d.toString().includes('accepted') && r()));
        let client: Socket | undefined;
        for (let k = 0; !client && k < 100; k++) {
          client = await new Promise<Socket | undefined>((r) => {
            const s = connect(port, '127.0.0.1', () => r(s)).once('error', () => r(undefined));
          });
          if (!client) await new Promise((r) => setTimeout(r, 50));
        }
        if (!client) throw new Error(`python3 never listened on ${port}`);
        await accepted;
        await new Promise((r) => setTimeout(r, 200)); // the server thread is inside recv/read now
        agent = await startAgent(['--filter-port', String(port)]);
        const reply = new Promise<string>((r) => client.once('data', (d) => r(d.toString())));
        client.write(`ping-blocked-${call}`);
        expect(await reply).toBe(`pong:ping-blocked-${call}`);
        const [out] = await agent.waitFor((l) => payloadText(l) === `ping-blocked-${call}` && l.direction === 'egress');
        const [inn] = await agent.waitFor((l) => payloadText(l) === `ping-blocked-${call}` && l.direction === 'ingress');
        expect(inn.pid).toBe(py.pid);
        expect(inn.syscall).toBe(call === 'recv' ? 'recvfrom' : 'read');
        expect(inn.role).toBe('server');
        // The sequence is where the request starts, as for any read: the client's send has the same.
        expect(inn.tcp_seq).toBe(out.tcp_seq);
        // The reply, written after attach, carries the id of the request read (syscall-trace id).
        const [pong] = await agent.waitFor((l) => payloadText(l) === `pong:ping-blocked-${call}` && l.direction === 'egress');
        expect(pong.syscall_trace_id).toBe(inn.syscall_trace_id);
        expect(inn.syscall_trace_id).not.toBe(0);
        client.destroy();
      } finally {
        py.kill();
        await agent?.stop();
        agent = undefined;
      }
    });
  }
});

// IPv6 over TCP, and UDP both connected and unconnected (the peer address then comes from the
// sockaddr the syscall carries), on IPv4 and IPv6 loopback.
import { createSocket } from 'node:dgram';
import { execFile } from 'node:child_process';
import { createServer } from 'node:http';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningAgent } from '../helpers/agent.ts';
import { freePort, payloadText, startAgent } from '../helpers/agent.ts';

const run = promisify(execFile);

describe('IPv6 and UDP', () => {
  let agent: RunningAgent;
  let tcpPort: number;
  let udpPort: number;

  beforeAll(async () => {
    [tcpPort, udpPort] = [await freePort(), await freePort()];
    agent = await startAgent(['--filter-port', `${tcpPort},${udpPort}`]);
  });
  afterAll(async () => {
    await agent?.stop();
  });

  it('captures TCP over ::1 with IPv6 addresses on both sides', async () => {
    const server = createServer((_q, s) => s.end('six'));
    await new Promise<void>((r) => server.listen(tcpPort, '::1', () => r()));
    try {
      const { stdout } = await run('curl', ['-sS', '-g', `http://[::1]:${tcpPort}/v6`]);
      expect(stdout).toBe('six');
      const [req] = await agent.waitFor((l) => payloadText(l).startsWith('GET /v6') && l.direction === 'ingress');
      expect(req.family).toBe('ipv6');
      expect(req.local_ip).toBe('::1');
      expect(req.remote_ip).toBe('::1');
      expect(req.local_port).toBe(tcpPort);
      const [out] = await agent.waitFor((l) => payloadText(l).startsWith('GET /v6') && l.direction === 'egress');
      expect(out.tcp_seq).toBe(req.tcp_seq);
    } finally {
      server.close();
    }
  });

  for (const [family, host] of [
    ['ipv4', '127.0.0.1'],
    ['ipv6', '::1'],
  ] as const) {
    it(`captures unconnected UDP datagrams over ${family} with the peer from the sockaddr`, async () => {
      const srv = createSocket(family === 'ipv4' ? 'udp4' : 'udp6');
      const cli = createSocket(family === 'ipv4' ? 'udp4' : 'udp6');
      await new Promise<void>((r) => srv.bind(udpPort, host, () => r()));
      srv.on('message', (msg, rinfo) => srv.send(Buffer.from('pong:' + msg.toString()), rinfo.port, rinfo.address));
      const marker = `ping-${family}`;
      const reply = new Promise<string>((r) => cli.once('message', (m) => r(m.toString())));
      cli.send(Buffer.from(marker), udpPort, host);
      expect(await reply).toBe(`pong:${marker}`);
      const [sent] = await agent.waitFor((l) => payloadText(l) === marker && l.direction === 'egress');
      const [got] = await agent.waitFor((l) => payloadText(l) === marker && l.direction === 'ingress');
      const [answer] = await agent.waitFor((l) => payloadText(l) === `pong:${marker}` && l.direction === 'egress');
      for (const l of [sent, got, answer]) {
        expect(l.l4).toBe('udp');
        expect(l.family).toBe(family);
        expect(l.tcp_seq).toBe(0);
      }
      expect(sent.remote_port).toBe(udpPort);
      expect(sent.remote_ip).toBe(host);
      expect(got.local_port).toBe(udpPort);
      expect(got.remote_port).toBe(sent.local_port);
      expect(answer.remote_port).toBe(sent.local_port);
      srv.close();
      cli.close();
    });
  }
});

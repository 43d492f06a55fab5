// Memcached connections opened before the agent starts, under the real `riptide agent --output -`:
// a text-protocol client and a binary-protocol client connect to a real memcached and exchange
// traffic first; the agent starts; the same connections keep going. The agent must recognise each
// from its next message. Needs root, like the capture tests.
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { OutputLine, RunningAgent } from '../helpers/agent.ts';
import { startAgent } from '../helpers/agent.ts';
import type { RunningServer } from './servers.ts';
import { startMemcached } from './servers.ts';

interface Seen {
  l7_protocol: string;
  msg_type: string;
  request_type?: string;
  request_resource?: string;
  response_status?: string;
  response_code?: number;
  response_exception?: string;
  role: string;
}

function parsed(lines: readonly OutputLine[]): Seen[] {
  return lines.flatMap((l) => ((l.l7 as Array<Record<string, unknown>> | undefined) ?? []).map((m) => ({ ...(m as unknown as Seen), role: l.role })));
}

/** A binary-protocol request: 24-byte header, extras, key, value. */
function bin(op: number, key: string, extras: number[] = [], value = '', opaque = 0): Buffer {
  const body = extras.length + key.length + value.length;
  const h = Buffer.alloc(24);
  h[0] = 0x80;
  h[1] = op;
  h.writeUInt16BE(key.length, 2);
  h[4] = extras.length;
  h.writeUInt32BE(body, 8);
  h.writeUInt32BE(opaque, 12);
  return Buffer.concat([h, Buffer.from(extras), Buffer.from(key), Buffer.from(value)]);
}

/** One raw client connection: write, then wait until the bytes received since match. */
class Conn {
  private got = Buffer.alloc(0);
  private constructor(readonly s: net.Socket) {
    s.on('data', (d: Buffer) => {
      this.got = Buffer.concat([this.got, d]);
    });
  }
  static async open(port: number): Promise<Conn> {
    const s = net.connect({ host: '127.0.0.1', port });
    await new Promise<void>((r, j) => s.once('connect', () => r()).once('error', j));
    return new Conn(s);
  }
  async send(data: string | Buffer, until: (b: Buffer) => boolean): Promise<Buffer> {
    this.got = Buffer.alloc(0);
    this.s.write(data);
    const stop = Date.now() + 5000;
    while (!until(this.got)) {
      if (Date.now() > stop) throw new Error(`no reply to ${JSON.stringify(data.toString('latin1').slice(0, 40))}`);
      await new Promise((r) => setTimeout(r, 10));
    }
    return this.got;
  }
}

const canCapture = process.getuid?.() === 0;
if (!canCapture) process.stdout.write('memcached.e2e: skipped, eBPF capture needs root\n');

describe.skipIf(!canCapture)('memcached connections open before the agent, under the eBPF agent', () => {
  let agent: RunningAgent | undefined;
  let mc: RunningServer;
  let text: Conn;
  let binary: Conn;
  const line = (b: Buffer): boolean => b.includes('\r\n');
  const header = (b: Buffer): boolean => b.length >= 24 && b.length >= 24 + b.readUInt32BE(8);

  async function expectSeen(pred: (m: Seen) => boolean, timeoutMs = 15_000): Promise<Seen[]> {
    if (!agent) throw new Error('agent not started');
    await agent.waitFor((l) => parsed([l]).some(pred), 1, timeoutMs);
    return parsed(agent.lines).filter(pred);
  }

  beforeAll(async () => {
    mc = await startMemcached();
    text = await Conn.open(mc.port);
    await text.send('set session:1 0 0 5\r\nhello\r\n', line);
    await text.send('get session:1\r\n', (b) => b.includes('END\r\n'));
    binary = await Conn.open(mc.port);
    await binary.send(bin(0x01, 'cart:1', [0, 0, 0, 0, 0, 0, 0, 0], '[]', 1), header);
    // Only now does the agent start: both connections are open and have been used.
    agent = await startAgent(['--filter-port', String(mc.port)]);
  }, 180_000);

  afterAll(async () => {
    text?.s.destroy();
    binary?.s.destroy();
    await agent?.stop();
    await mc?.stop();
  });

  it('text: recognised from the next command; a hit, a miss and a client error come out right', async () => {
    await text.send('get session:1\r\n', (b) => b.includes('END\r\n'));
    await text.send('incr session:1 1\r\n', line);
    await text.send('delete nothing:here\r\n', line);
    const get = await expectSeen((m) => m.l7_protocol === 'memcached' && m.request_type === 'get' && m.request_resource === 'session:1');
    expect(get.length).toBeGreaterThan(0);
    const err = await expectSeen((m) => m.l7_protocol === 'memcached' && m.response_status === 'client_error');
    expect(err[0].response_exception).toBe('cannot increment or decrement non-numeric value');
    await expectSeen((m) => m.l7_protocol === 'memcached' && m.request_type === 'delete' && m.request_resource === 'nothing:here');
    // No part of it was taken for Redis, and the value never left the box in a span.
    expect(parsed(agent!.lines).some((m) => m.l7_protocol === 'redis')).toBe(false);
    expect(JSON.stringify(agent!.lines.map((l) => l.l7))).not.toContain('hello');
  });

  it('binary: recognised from the next request; a miss is KEY_NOT_FOUND (code 1), not an error', async () => {
    await binary.send(bin(0x00, 'cart:1', [], '', 2), header);
    await binary.send(bin(0x00, 'cart:404', [], '', 3), header);
    await expectSeen((m) => m.l7_protocol === 'memcached' && m.request_type === 'get' && m.request_resource === 'cart:404');
    const miss = await expectSeen((m) => m.l7_protocol === 'memcached' && m.msg_type === 'response' && m.response_code === 1);
    expect(miss[0].response_status).toBe('ok');
  });
});

// NATS connections opened before the agent starts, under the real `riptide agent --output -`: a
// hand-written client (raw socket; no NATS client is packaged here) connects to Debian's
// nats-server as client libraries do (verbose off, headers on), subscribes and publishes; the
// agent starts; the same connection keeps going. The agent must recognise it from the next
// message, with the subject, reply-to and the traceparent of an HPUB. Needs root, like the capture tests.
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { OutputLine, RunningAgent } from '../helpers/agent.ts';
import { startAgent } from '../helpers/agent.ts';
import type { RunningServer } from './servers.ts';
import { startNats } from './servers.ts';

interface Seen {
  l7_protocol: string;
  msg_type: string;
  request_type?: string;
  request_resource?: string;
  endpoint?: string;
  response_status?: string;
  response_exception?: string;
  trace_id?: string;
  one_way?: boolean;
  attributes?: Record<string, string>;
  role: string;
}

function parsed(lines: readonly OutputLine[]): Seen[] {
  return lines.flatMap((l) => ((l.l7 as Array<Record<string, unknown>> | undefined) ?? []).map((m) => ({ ...(m as unknown as Seen), role: l.role })));
}

class Conn {
  private got = '';
  private constructor(readonly s: net.Socket) {
    s.on('data', (d: Buffer) => {
      this.got += d.toString('latin1');
    });
    s.on('error', () => undefined);
  }
  static async open(port: number): Promise<Conn> {
    const s = net.connect({ host: '127.0.0.1', port });
    await new Promise<void>((r, j) => s.once('connect', () => r()).once('error', j));
    s.setNoDelay(true);
    return new Conn(s);
  }
  async send(data: string, until: RegExp): Promise<string> {
    this.got = '';
    this.s.write(data);
    const stop = Date.now() + 5000;
    while (!until.test(this.got)) {
      if (Date.now() > stop) throw new Error(`no ${until} after ${JSON.stringify(data.slice(0, 40))}; got ${JSON.stringify(this.got.slice(0, 80))}`);
      await new Promise((r) => setTimeout(r, 10));
    }
    return this.got;
  }
}

const canCapture = process.getuid?.() === 0;
if (!canCapture) process.stdout.write('nats.e2e: skipped, eBPF capture needs root\n');

describe.skipIf(!canCapture)('nats connection open before the agent, under the eBPF agent', () => {
  let agent: RunningAgent | undefined;
  let nats: RunningServer;
  let c: Conn;
  const TRACE = '0af7651916cd43dd8448eb211c80319c';

  async function expectSeen(pred: (m: Seen) => boolean, timeoutMs = 15_000): Promise<Seen[]> {
    if (!agent) throw new Error('agent not started');
    await agent.waitFor((l) => parsed([l]).some(pred), 1, timeoutMs);
    return parsed(agent.lines).filter(pred);
  }

  beforeAll(async () => {
    nats = await startNats();
    c = await Conn.open(nats.port);
    await c.send('CONNECT {"verbose":false,"pedantic":false,"headers":true,"name":"billing","lang":"raw","version":"1","protocol":1}\r\nPING\r\n', /PONG\r\n/);
    await c.send('SUB invoices.* 1\r\nPUB invoices.new 2\r\nhi\r\nPING\r\n', /PONG\r\n/);
    // Only now does the agent start: the connection is open and has been used.
    agent = await startAgent(['--filter-port', String(nats.port)]);
  }, 180_000);

  afterAll(async () => {
    c?.s.destroy();
    await agent?.stop();
    await nats?.stop();
  });

  it('recognised from the next message: HPUB with its subject, reply-to and traceparent; its delivery; PING/PONG', async () => {
    const hdr = `NATS/1.0\r\ntraceparent: 00-${TRACE}-b7ad6b7169203331-01\r\n\r\n`;
    const body = '{"amount":12}';
    await c.send(`HPUB invoices.paid _INBOX.q7Rw.1 ${hdr.length} ${hdr.length + body.length}\r\n${hdr}${body}\r\nPING\r\n`, /PONG\r\n/);
    const hpub = await expectSeen((m) => m.l7_protocol === 'nats' && m.request_type === 'HPUB');
    expect(hpub[0]).toMatchObject({ request_resource: 'invoices.paid', endpoint: 'invoices.paid', trace_id: TRACE, one_way: true, attributes: { reply_to: '_INBOX.q7Rw.1' } });
    const hmsg = await expectSeen((m) => m.l7_protocol === 'nats' && m.request_type === 'HMSG' && m.request_resource === 'invoices.paid');
    expect(hmsg[0]).toMatchObject({ trace_id: TRACE, attributes: { sid: '1', reply_to: '_INBOX.q7Rw.1' } });
    await expectSeen((m) => m.l7_protocol === 'nats' && m.msg_type === 'response' && m.attributes?.result === 'PONG');
    expect(JSON.stringify(agent!.lines.map((l) => l.l7))).not.toContain('amount');
  });

  it('keeps going: UNSUB names the subject of the SUB it ends, and a fatal error comes back as -ERR with its message', async () => {
    await c.send('SUB audit.> 2\r\nUNSUB 2\r\nPING\r\n', /PONG\r\n/);
    const unsub = await expectSeen((m) => m.l7_protocol === 'nats' && m.request_type === 'UNSUB');
    expect(unsub[0].request_resource).toBe('audit.>');
    await c.send('PUB invoices.huge 99999999\r\n', /-ERR/);
    const err = await expectSeen((m) => m.l7_protocol === 'nats' && m.msg_type === 'response' && m.response_status === 'client_error');
    expect(err[0].response_exception).toBe('Maximum Payload Violation');
    expect(parsed(agent!.lines).some((m) => m.l7_protocol !== 'nats')).toBe(false);
  });
});

// Connections opened before the agent starts, under the real `riptide agent --output -`: a node-pg
// client (extended query protocol, like every pooled driver) and an MQTT subscriber connect and
// exchange traffic first; the agent starts; the same connections keep going. The agent must
// recognise them from the next message. Needs root, like the capture tests.
import net from 'node:net';
import { createRequire } from 'node:module';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { OutputLine, RunningAgent } from '../helpers/agent.ts';
import { startAgent } from '../helpers/agent.ts';
import type { RunningServer } from './servers.ts';
import { startMosquitto, startPostgres } from './servers.ts';

const require = createRequire(import.meta.url);

interface PgClient {
  connect(): Promise<void>;
  query(q: string, v?: unknown[]): Promise<unknown>;
  end(): Promise<void>;
}

interface Seen {
  l7_protocol: string;
  msg_type: string;
  request_type?: string;
  request_resource?: string;
  endpoint?: string;
  request_id?: number;
  response_status?: string;
  role: string;
}

function parsed(lines: readonly OutputLine[]): Seen[] {
  return lines.flatMap((l) => ((l.l7 as Array<Record<string, unknown>> | undefined) ?? []).map((m) => ({ ...(m as unknown as Seen), role: l.role })));
}

/** An MQTT 3.1.1 packet: fixed header byte, remaining length (< 128 here), body. */
function mqttPacket(first: number, body: number[]): Buffer {
  return Buffer.from([first, body.length, ...body]);
}
const str = (s: string): number[] => [s.length >> 8, s.length & 0xff, ...Buffer.from(s)];

const canCapture = process.getuid?.() === 0;
if (!canCapture) process.stdout.write('midstream.e2e: skipped, eBPF capture needs root\n');

describe.skipIf(!canCapture)('connections open before the agent, under the eBPF agent', () => {
  let agent: RunningAgent | undefined;
  let pg: RunningServer;
  let mqtt: RunningServer;
  let client: PgClient;
  let sub: net.Socket;
  const subGot: Buffer[] = [];

  async function expectSeen(pred: (m: Seen) => boolean, n = 1, timeoutMs = 15_000): Promise<Seen[]> {
    if (!agent) throw new Error('agent not started');
    await agent.waitFor((l) => parsed([l]).some(pred), n, timeoutMs);
    return parsed(agent.lines).filter(pred);
  }

  beforeAll(async () => {
    [pg, mqtt] = await Promise.all([startPostgres(), startMosquitto()]);
    const { Client } = require('pg') as { Client: new (o: object) => PgClient };
    client = new Client({ host: '127.0.0.1', port: pg.port, user: 'postgres', database: 'postgres' });
    await client.connect();
    await client.query('CREATE TABLE midstream_orders (id int primary key, item text)');
    await client.query('INSERT INTO midstream_orders VALUES ($1, $2)', [1, 'book']);

    sub = net.connect({ host: '127.0.0.1', port: mqtt.port });
    sub.on('data', (d: Buffer) => subGot.push(d));
    await new Promise<void>((r) => sub.once('connect', () => r()));
    sub.write(mqttPacket(0x10, [...str('MQTT'), 4, 0x02, 0, 60, ...str('midstream-sub')]));
    sub.write(mqttPacket(0x82, [0, 1, ...str('riptide/first'), 0]));
    while (subGot.length < 2 && Buffer.concat(subGot).length < 9) await new Promise((r) => setTimeout(r, 50));

    // Only now does the agent start: both connections are already open and past their handshakes.
    agent = await startAgent(['--filter-port', `${pg.port},${mqtt.port}`]);
  }, 180_000);

  afterAll(async () => {
    await client?.end().catch(() => undefined);
    sub?.destroy();
    await agent?.stop();
    await Promise.all([pg, mqtt].filter(Boolean).map((s) => s.stop()));
  });

  it('postgresql: a pooled-style extended-query connection is recognised from its next batch', async () => {
    await client.query('SELECT item FROM midstream_orders WHERE id = $1', [1]);
    await client.query('INSERT INTO midstream_orders VALUES ($1, $2)', [1, 'dup']).catch(() => undefined);
    const q = await expectSeen((m) => m.l7_protocol === 'postgresql' && m.request_type === 'EXECUTE' && m.request_resource === 'SELECT item FROM midstream_orders WHERE id = $1');
    expect(q[0].endpoint).toBe('SELECT midstream_orders');
    const err = await expectSeen((m) => m.l7_protocol === 'postgresql' && m.msg_type === 'response' && m.response_status === 'client_error');
    expect(err.length).toBeGreaterThan(0);
  });

  it('mqtt: a subscriber connected before the agent is recognised from its next SUBSCRIBE, every filter kept', async () => {
    sub.write(mqttPacket(0x82, [0, 2, ...str('riptide/a/#'), 1, ...str('riptide/b'), 0]));
    const s = await expectSeen((m) => m.l7_protocol === 'mqtt' && m.request_type === 'SUBSCRIBE');
    expect(s[0]).toMatchObject({ request_resource: 'riptide/a/#,riptide/b', request_id: 2 });
    await expectSeen((m) => m.l7_protocol === 'mqtt' && m.request_type === 'SUBACK' && m.request_id === 2);
    sub.write(mqttPacket(0xc0, []).subarray(0, 2));
    await expectSeen((m) => m.l7_protocol === 'mqtt' && m.request_type === 'PINGRESP');
  });
});

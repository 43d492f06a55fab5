// The MySQL login exchange under the real `riptide agent --output -`: a MariaDB with its grant
// tables and max_connections=10 (root may take one more). A wrong password must come out as a
// LOGIN answered by ERR 1045, a connection past the limit as a LOGIN response ERR 1040 "Too many
// connections" (the server greets with it instead of a handshake), a good login as LOGIN → OK, and
// a compressed-protocol connection read inside its zlib frames.
// Needs root (eBPF, and mariadbd runs as the mysql user).
import { createRequire } from 'node:module';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { OutputLine, RunningAgent } from '../helpers/agent.ts';
import { startAgent } from '../helpers/agent.ts';
import type { RunningServer } from './servers.ts';
import { startMariadb } from './servers.ts';

const require = createRequire(import.meta.url);

interface Seen {
  l7_protocol: string;
  msg_type: string;
  request_type?: string;
  request_domain?: string;
  request_resource?: string;
  response_code?: number;
  response_status?: string;
  response_exception?: string;
  attributes?: Record<string, string>;
  role: string;
}

function parsed(lines: readonly OutputLine[]): Seen[] {
  return lines.flatMap((l) => ((l.l7 as Array<Record<string, unknown>> | undefined) ?? []).map((m) => ({ ...(m as unknown as Seen), role: l.role })));
}

interface Conn {
  end(): Promise<void>;
}
type Connect = (o: object) => Promise<Conn>;

const canCapture = process.getuid?.() === 0;
if (!canCapture) process.stdout.write('mysql-login.e2e: skipped, eBPF capture and mariadbd need root\n');

describe.skipIf(!canCapture)('mysql login exchange under the eBPF agent', () => {
  let agent: RunningAgent;
  let maria: RunningServer;
  let connect: Connect;
  const held: Conn[] = [];

  async function expectSeen(pred: (m: Seen) => boolean, n: number, timeoutMs = 15_000): Promise<Seen[]> {
    await agent.waitFor((l) => parsed([l]).some(pred), n, timeoutMs);
    return parsed(agent.lines).filter(pred);
  }

  beforeAll(async () => {
    maria = await startMariadb({ grants: true, maxConnections: 10 });
    connect = (require('mysql2/promise') as { createConnection: Connect }).createConnection;
    agent = await startAgent(['--filter-port', String(maria.port)]);
  }, 180_000);

  afterAll(async () => {
    for (const c of held) await c.end().catch(() => undefined);
    await agent?.stop();
    await maria?.stop();
  });

  it('a good login is LOGIN → OK, with the user and database', async () => {
    const c = await connect({ host: '127.0.0.1', port: maria.port, user: 'root', database: 'mysql' });
    await c.end();
    const req = await expectSeen((m) => m.l7_protocol === 'mysql' && m.msg_type === 'request' && m.request_type === 'LOGIN' && m.request_domain === 'mysql', 2);
    expect(new Set(req.map((m) => m.role))).toEqual(new Set(['client', 'server']));
    expect(req[0].attributes).toEqual({ user: 'root' });
    await expectSeen((m) => m.l7_protocol === 'mysql' && m.msg_type === 'response' && m.request_type === 'LOGIN' && m.response_status === 'ok', 2);
  });

  it('a wrong password is LOGIN answered by ERR 1045 (28000, a client error)', async () => {
    await expect(connect({ host: '127.0.0.1', port: maria.port, user: 'root', password: 'wrong' })).rejects.toThrow(/Access denied/);
    const err = await expectSeen((m) => m.l7_protocol === 'mysql' && m.request_type === 'LOGIN' && m.response_code === 1045, 2);
    expect(new Set(err.map((m) => m.role))).toEqual(new Set(['client', 'server']));
    expect(err[0]).toMatchObject({ msg_type: 'response', response_status: 'client_error', attributes: { sqlstate: '28000' } });
    expect(err[0].response_exception).toMatch(/^Access denied for user 'root'@/);
  });

  it('a connection past max_connections is a LOGIN response ERR 1040 Too many connections', async () => {
    for (let i = 0; i < 11; i++) held.push(await connect({ host: '127.0.0.1', port: maria.port, user: 'root' }));
    await expect(connect({ host: '127.0.0.1', port: maria.port, user: 'root' })).rejects.toThrow(/Too many connections/);
    const err = await expectSeen((m) => m.l7_protocol === 'mysql' && m.request_type === 'LOGIN' && m.response_code === 1040, 2);
    expect(new Set(err.map((m) => m.role))).toEqual(new Set(['client', 'server']));
    expect(err[0]).toMatchObject({ msg_type: 'response', response_status: 'server_error', response_exception: 'Too many connections' });
    for (const c of held.splice(0)) await c.end();
  });

  it('a compressed-protocol connection (mysql2 compress: true) is read inside its zlib frames', async () => {
    const c = (await connect({ host: '127.0.0.1', port: maria.port, user: 'root', compress: true })) as Conn & { query(q: string): Promise<unknown> };
    await c.query("SELECT 'riptide compressed' AS phrase");
    await c.query('SELECT * FROM mysql.riptide_missing').catch(() => undefined);
    await c.end();
    const q = await expectSeen((m) => m.l7_protocol === 'mysql' && m.request_type === 'COM_QUERY' && m.request_resource === "SELECT 'riptide compressed' AS phrase", 2);
    expect(new Set(q.map((m) => m.role))).toEqual(new Set(['client', 'server']));
    const err = await expectSeen((m) => m.l7_protocol === 'mysql' && m.msg_type === 'response' && m.response_code === 1146, 2);
    expect(err[0].response_status).toBe('client_error');
  });
});

import { describe, expect, it } from 'vitest';
import { describeConformance, otherFixtures } from '../conformance.ts';
import { loadFixtures, replay } from '../fixtures.ts';
import { mysqlParser } from './index.ts';

const own = loadFixtures('mysql');
const chunksOf = (name: string) => {
  const f = own.find((x) => x.name === name);
  if (!f) throw new Error(`no fixture ${name}`);
  return f.chunks;
};

describeConformance(mysqlParser, { own, others: otherFixtures('mysql'), pipelining: false, fuzzIterations: 1_000_000 });

/** The messages after the login exchange (its LOGIN request and OK are checked on their own below). */
const afterLogin = (chunks: ReturnType<typeof chunksOf>) => replay(mysqlParser, chunks).filter((m) => m.requestType !== 'LOGIN');

describe('mysql against mariadbd', () => {
  it('reads COM_QUERY with its statement and "verb table" endpoint, and the OK reply', () => {
    const msgs = afterLogin(chunksOf('cli-insert'));
    expect(msgs[0]).toMatchObject({ msgType: 'request', requestType: 'COM_QUERY', requestResource: "INSERT INTO shop.orders VALUES (1, 'book'), (2, 'pen')", endpoint: 'INSERT shop.orders' });
    expect(msgs[1]).toMatchObject({ msgType: 'response', responseStatus: 'ok', attributes: { affected_rows: '2' } });
    expect(msgs[2]).toMatchObject({ requestType: 'COM_QUIT', oneWay: true });
  });

  it('reports one reply for a whole result set', () => {
    const msgs = afterLogin(chunksOf('cli-select'));
    expect(msgs.map((m) => m.msgType)).toEqual(['request', 'response', 'request']);
  });

  it('reads ERR packets: code, SQLSTATE class, message', () => {
    const msgs = afterLogin(chunksOf('cli-error'));
    expect(msgs[1]).toMatchObject({ responseCode: 1146, responseStatus: 'client_error', responseException: "Table 'shop.missing' doesn't exist", attributes: { sqlstate: '42S02' } });
  });

  it('follows prepared statements: the id from the PREPARE reply names the SQL of each EXECUTE', () => {
    const msgs = afterLogin(chunksOf('mysql2-prepared'));
    const req = msgs.filter((m) => m.msgType === 'request');
    expect(req.map((m) => [m.requestType, m.requestId, m.requestResource])).toEqual([
      ['COM_STMT_PREPARE', undefined, 'SELECT item FROM orders WHERE id = ?'],
      ['COM_STMT_EXECUTE', 1, 'SELECT item FROM orders WHERE id = ?'],
      ['COM_STMT_EXECUTE', 1, 'SELECT item FROM orders WHERE id = ?'],
      ['COM_STMT_PREPARE', undefined, 'INSERT INTO orders VALUES (?, ?)'],
      ['COM_STMT_EXECUTE', 2, 'INSERT INTO orders VALUES (?, ?)'],
      ['COM_QUIT', undefined, undefined],
    ]);
    expect(req.every((m) => m.requestDomain === 'shop')).toBe(true); // from the login packet
    const resp = msgs.filter((m) => m.msgType === 'response');
    expect(resp.at(-1)).toMatchObject({ responseCode: 1062, responseStatus: 'client_error' });
  });
});

describe('mysql login exchange', () => {
  it('reports a successful login as LOGIN with the user and database, answered by OK', () => {
    const msgs = replay(mysqlParser, chunksOf('mysql2-prepared'));
    expect(msgs[0]).toMatchObject({ msgType: 'request', requestType: 'LOGIN', requestDomain: 'shop', attributes: { user: 'root' } });
    expect(msgs[1]).toMatchObject({ msgType: 'response', requestType: 'LOGIN', responseStatus: 'ok' });
    expect(msgs[2]).toMatchObject({ msgType: 'request', requestType: 'COM_STMT_PREPARE' });
  });

  for (const [name, user] of [['login-access-denied', 'root'], ['cli-login-access-denied', 'nobody']] as const) {
    it(`reports a refused password as a LOGIN error span (${name})`, () => {
      const msgs = replay(mysqlParser, chunksOf(name));
      expect(msgs).toHaveLength(2);
      expect(msgs[0]).toMatchObject({ msgType: 'request', requestType: 'LOGIN', attributes: { user } });
      expect(msgs[1]).toMatchObject({ msgType: 'response', requestType: 'LOGIN', responseCode: 1045, responseStatus: 'client_error', attributes: { sqlstate: '28000' } });
      expect(msgs[1].responseException).toMatch(new RegExp(`^Access denied for user '${user}'@`));
    });
  }

  it('reports an ERR greeting (1040 Too many connections) as a LOGIN response, recognised on a fresh socket', () => {
    const [greet] = chunksOf('login-too-many-connections');
    const msgs = replay(mysqlParser, [greet]);
    expect(msgs).toEqual([{ l7Protocol: 'mysql', msgType: 'response', requestType: 'LOGIN', responseCode: 1040, responseStatus: 'server_error', responseException: 'Too many connections', responseLength: greet.data.length - 4 }]);
  });

  it('does not take a reply later in the connection for an ERR greeting', () => {
    const chunks = chunksOf('cli-error');
    const msgs = replay(mysqlParser, chunks);
    expect(msgs.filter((m) => m.requestType === 'LOGIN').map((m) => m.msgType)).toEqual(['request', 'response']);
  });
});

describe('mysql compressed protocol', () => {
  it('inflates the zlib frames after a login that asked for CLIENT_COMPRESS and reads the packets inside', () => {
    const msgs = replay(mysqlParser, chunksOf('mysql2-compressed'));
    expect(msgs.map((m) => `${m.msgType}:${m.requestType ?? m.responseStatus}`)).toEqual([
      'request:LOGIN', 'response:LOGIN',
      'request:COM_QUERY', 'response:ok',
      'request:COM_QUERY', 'response:ok',
      'request:COM_QUERY', 'response:client_error',
      'request:COM_QUIT',
    ]);
    expect(msgs[4]).toMatchObject({ requestResource: "SELECT 'riptide compressed protocol' AS phrase, REPEAT('x', 200) AS filler" });
    expect(msgs[7]).toMatchObject({ responseCode: 1146, responseException: "Table 'shop.missing' doesn't exist" });
  });
});

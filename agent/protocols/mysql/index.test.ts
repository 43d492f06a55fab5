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

describe('mysql against mariadbd', () => {
  it('reads COM_QUERY with its statement and "verb table" endpoint, and the OK reply', () => {
    const msgs = replay(mysqlParser, chunksOf('cli-insert'));
    expect(msgs[0]).toMatchObject({ msgType: 'request', requestType: 'COM_QUERY', requestResource: "INSERT INTO shop.orders VALUES (1, 'book'), (2, 'pen')", endpoint: 'INSERT shop.orders' });
    expect(msgs[1]).toMatchObject({ msgType: 'response', responseStatus: 'ok', attributes: { affected_rows: '2' } });
    expect(msgs[2]).toMatchObject({ requestType: 'COM_QUIT', oneWay: true });
  });

  it('reports one reply for a whole result set', () => {
    const msgs = replay(mysqlParser, chunksOf('cli-select'));
    expect(msgs.map((m) => m.msgType)).toEqual(['request', 'response', 'request']);
  });

  it('reads ERR packets: code, SQLSTATE class, message', () => {
    const msgs = replay(mysqlParser, chunksOf('cli-error'));
    expect(msgs[1]).toMatchObject({ responseCode: 1146, responseStatus: 'client_error', responseException: "Table 'shop.missing' doesn't exist", attributes: { sqlstate: '42S02' } });
  });

  it('follows prepared statements: the id from the PREPARE reply names the SQL of each EXECUTE', () => {
    const msgs = replay(mysqlParser, chunksOf('mysql2-prepared'));
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

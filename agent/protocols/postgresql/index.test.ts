import { describe, expect, it } from 'vitest';
import { describeConformance, otherFixtures } from '../conformance.ts';
import { loadFixtures, replay } from '../fixtures.ts';
import { postgresqlParser } from './index.ts';

const own = loadFixtures('postgresql');
const chunksOf = (name: string) => {
  const f = own.find((x) => x.name === name);
  if (!f) throw new Error(`no fixture ${name}`);
  return f.chunks;
};

describeConformance(postgresqlParser, { own, others: otherFixtures('postgresql'), pipelining: false, fuzzIterations: 1_000_000 });

describe('postgresql against postgres', () => {
  it('reads the SSL request, startup (database, user) and a simple query with its command tag', () => {
    const msgs = replay(postgresqlParser, chunksOf('psql-insert'));
    expect(msgs.map((m) => `${m.msgType}:${m.requestType ?? m.responseStatus}`)).toEqual(['request:SSL_REQUEST', 'response:ok', 'request:STARTUP', 'response:ok', 'request:QUERY', 'response:ok', 'request:TERMINATE']);
    expect(msgs[2]).toMatchObject({ requestDomain: 'postgres', attributes: { user: 'postgres' } });
    expect(msgs[4]).toMatchObject({ requestResource: "INSERT INTO orders VALUES (1, 'book'), (2, 'pen')", endpoint: 'INSERT orders', requestDomain: 'postgres' });
    expect(msgs[5].attributes).toEqual({ command_tag: 'INSERT 0 2', rows: '2' });
    expect(msgs[6].oneWay).toBe(true);
  });

  it('turns an ErrorResponse into SQLSTATE, status class and exception', () => {
    const msgs = replay(postgresqlParser, chunksOf('psql-error'));
    expect(msgs[5]).toMatchObject({ responseStatus: 'client_error', responseException: 'relation "missing_table" does not exist', attributes: { sqlstate: '42P01' } });
  });

  it('reads the extended protocol: one request per Sync, named statements remembered', () => {
    const msgs = replay(postgresqlParser, chunksOf('node-pg-extended'));
    const req = msgs.filter((m) => m.msgType === 'request');
    expect(req.map((m) => [m.requestType, m.requestResource])).toEqual([
      ['STARTUP', undefined],
      ['EXECUTE', 'SELECT item FROM orders WHERE id = $1'],
      ['EXECUTE', 'SELECT id, item FROM orders WHERE id = $1'],
      ['EXECUTE', 'SELECT id, item FROM orders WHERE id = $1'], // Bind to the named statement only
      ['EXECUTE', 'INSERT INTO orders VALUES ($1, $2)'],
      ['TERMINATE', undefined],
    ]);
    const resp = msgs.filter((m) => m.msgType === 'response');
    expect(resp.map((m) => m.responseStatus)).toEqual(['ok', 'ok', 'ok', 'ok', 'client_error']);
    expect(resp[4].attributes).toEqual({ sqlstate: '23505' });
  });

  it('reports a reply cut by the capture limit without waiting for its ReadyForQuery', () => {
    const msgs = replay(postgresqlParser, chunksOf('psql-select'), { captureLimit: 64 });
    expect(msgs.filter((m) => m.msgType === 'response').length).toBe(msgs.filter((m) => m.msgType === 'request' && !m.oneWay).length);
  });
});

import { describe, expect, it } from 'vitest';
import { replay } from '../fixtures.ts';
import { mysqlParser } from '../mysql/index.ts';
import { postgresqlParser } from '../postgresql/index.ts';
import { utf8Boundary, utf8CompleteEnd } from './bytes.ts';
import { MAX_SQL_BYTES, utf8Sql } from './sql.ts';

const enc = new TextEncoder();
// "SELECT 'x" is 9 bytes and 'é' is 2, so a cut at 512 bytes lands inside the 252nd 'é'
const longSql = `SELECT 'x${'é'.repeat(300)}' FROM t`;

function mysqlQuery(sql: string): Uint8Array {
  const body = enc.encode(sql);
  const out = new Uint8Array(5 + body.length);
  const len = body.length + 1;
  out.set([len & 0xff, (len >> 8) & 0xff, len >> 16, 0, 0x03], 0);
  out.set(body, 5);
  return out;
}

function pgQuery(sql: string): Uint8Array {
  const body = enc.encode(sql);
  const out = new Uint8Array(6 + body.length);
  const len = body.length + 5;
  out.set([0x51, len >>> 24, (len >> 16) & 0xff, (len >> 8) & 0xff, len & 0xff], 0);
  out.set(body, 5);
  return out;
}

describe('SQL text cut on a UTF-8 character boundary', () => {
  it('utf8Boundary backs off to the lead byte of a split character, never past a whole one', () => {
    const b = enc.encode('aé€😀');
    // a=0, é=1..2, €=3..5, 😀=6..9
    expect([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10].map((e) => utf8Boundary(b, 0, e))).toEqual([0, 1, 1, 3, 3, 3, 6, 6, 6, 6, 10]);
    expect(utf8CompleteEnd(b, 0, 8)).toBe(6);
    expect(utf8CompleteEnd(b, 0, 10)).toBe(10);
    expect(utf8CompleteEnd(b, 0, 2)).toBe(1);
  });

  it('utf8Sql keeps at most MAX_SQL_BYTES and no U+FFFD', () => {
    const s = utf8Sql(enc.encode(longSql), 0, enc.encode(longSql).length);
    expect(s).not.toContain('\ufffd');
    expect(enc.encode(s).length).toBeLessThanOrEqual(MAX_SQL_BYTES);
    expect(enc.encode(s).length).toBeGreaterThan(MAX_SQL_BYTES - 4);
    expect(longSql.startsWith(s)).toBe(true);
  });

  it('mysql COM_QUERY: the capped statement ends on a whole character (it ended in U+FFFD)', () => {
    const [m] = replay(mysqlParser, [{ dir: 'c2s', data: mysqlQuery(longSql) }]);
    expect(m.requestResource).not.toContain('\ufffd');
    expect(longSql.startsWith(m.requestResource ?? 'x')).toBe(true);
    expect(m.endpoint).toBe('SELECT');
  });

  it('mysql COM_QUERY cut by the capture limit inside a character drops the partial character', () => {
    const whole = mysqlQuery(`SELECT 'ü€'`);
    const [m] = replay(mysqlParser, [{ dir: 'c2s', data: whole }], { captureLimit: whole.length - 2 });
    expect(m.requestResource).toBe(`SELECT 'ü`);
  });

  it('postgresql Query: the capped statement ends on a whole character', () => {
    const [m] = replay(postgresqlParser, [{ dir: 'c2s', data: pgQuery(longSql) }]);
    expect(m.requestType).toBe('QUERY');
    expect(m.requestResource).not.toContain('\ufffd');
    expect(longSql.startsWith(m.requestResource ?? 'x')).toBe(true);
  });

  it('postgresql Query cut by the capture limit inside a character drops the partial character', () => {
    const whole = pgQuery(`SELECT 'ü€'`);
    const [m] = replay(postgresqlParser, [{ dir: 'c2s', data: whole }], { captureLimit: whole.length - 3 });
    expect(m.requestResource).toBe(`SELECT 'ü`);
  });
});

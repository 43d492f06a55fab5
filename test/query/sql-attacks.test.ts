/**
 * POST /api/v1/sql against real embedded chDB: every attack is refused with a 400 and a reason, and
 * nothing happened (no file written, no database or table created or dropped, no row changed, no
 * HTTP request made, the writer's session settings untouched). Then a seeded fuzz of the attack
 * fragments: each combination is refused or runs read-only, and nothing happens either way.
 */
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { queryRows } from '../../functions/storage/clickhouse.ts';
import { TABLE_FUNCTIONS } from '../../functions/query/sql-guard.ts';
import { openSqlHarness } from './sql-harness.ts';
import type { SqlHarness } from './sql-harness.ts';

let h: SqlHarness;
let before: string;

beforeAll(async () => {
  h = await openSqlHarness();
  before = await h.snapshot();
});
afterAll(async () => {
  await h?.close();
});

/** [attack, reason the refusal must give]. PWN = a directory to write to, PORT = a loopback HTTP server. */
const ATTACKS: Array<[string, RegExp]> = [
  // quoted identifiers: ClickHouse reads them as names
  ["SELECT length(`file`('/etc/shadow'))", /file\(\)/],
  ['SELECT length("file"(\'/etc/shadow\'))', /file\(\)/],
  ["SELECT FILE('/etc/hostname')", /file\(\)|Unknown function/i],
  ["SELECT arrayMap(x -> file(x), ['/etc/hostname'])", /file\(\)/],
  ["SELECT * FROM `file`('/etc/passwd', 'LineAsString')", /table function file\(\)/],
  ['SELECT * FROM "url"(\'http://127.0.0.1:PORT/\', CSV, \'x String\')', /table function url\(\)/],
  ['SELECT * FROM `system`.`users`', /system\.users/],
  ['SELECT * FROM "system"."named_collections"', /system\.named_collections/],
  // dollar quoting hides a quote from a text scanner
  ["SHOW TABLES FROM riptide LIKE $$'$$; CREATE DATABASE pwn1; -- '", /multiple statements/],
  ["SELECT $$'$$; DROP TABLE riptide.spans; -- '", /multiple statements/],
  ["SELECT $t$ ' $t$ AS a; INSERT INTO FUNCTION file('PWN/d.csv', CSV) SELECT 1; -- '", /multiple statements/],
  ["SELECT $$x$$ AS a INTO OUTFILE 'PWN/dollar.csv'", /OUTFILE/],
  // comments
  ['SELECT 1 /* ; */ ; CREATE DATABASE pwn2', /multiple statements/],
  ['SELECT 1 -- \n; CREATE DATABASE pwn3', /multiple statements/],
  ['/* SELECT */ CREATE DATABASE pwn4', /read queries/],
  ["SELECT 1 --\nINTO OUTFILE 'PWN/comment.csv'", /OUTFILE/],
  // unicode lookalikes
  ["SELECT * FROM f\u0456le('/etc/passwd', 'LineAsString')", /table function|Syntax error/],
  ['\uff33\uff25\uff2c\uff25\uff23\uff34 1; CREATE DATABASE pwn5', /Syntax error|multiple statements/],
  ['SELECT 1\u037e CREATE DATABASE pwn6', /Syntax error|multiple statements/],
  ["SELECT 1\u00a0INTO\u00a0OUTFILE\u00a0'PWN/nbsp.csv'", /Syntax error|OUTFILE/],
  ["SELECT fi\u200ble('/etc/passwd')", /Syntax error|Unknown function/i],
  // nested subqueries
  ["SELECT * FROM (SELECT * FROM (SELECT * FROM file('/etc/passwd', 'LineAsString')))", /table function file\(\)/],
  ["SELECT (SELECT count() FROM url('http://127.0.0.1:PORT/', CSV, 'x String'))", /table function url\(\)/],
  ["SELECT 1 WHERE 1 IN (SELECT 1 FROM remote('127.0.0.1:PORT', system.one))", /table function remote\(\)/],
  ["WITH x AS (SELECT * FROM file('/etc/passwd', 'LineAsString')) SELECT * FROM x", /table function file\(\)/],
  ['SELECT * FROM system.numbers AS n JOIN system.users AS u ON 1 LIMIT 1', /system\.users/],
  ['SELECT * FROM riptide.spans WHERE span_id IN (SELECT name FROM system.named_collections)', /system\.named_collections/],
  ['SELECT 1 WHERE 1 IN system.users', /system\.users/],
  ['SELECT 1 WHERE 1 NOT IN system.named_collections', /system\.named_collections/],
  ['SELECT 1 AS `a\n      Identifier x` WHERE 1 GLOBAL IN system.users AS `b\n  Identifier riptide.spans`', /system\.users/],
  ["SELECT * FROM merge('system', '^users$')", /table function merge\(\)/],
  ['SELECT * FROM view(SELECT * FROM system.users)', /table function view\(\)/],
  ['SELECT * FROM default.nothing', /database default/],
  ['SELECT * FROM INFORMATION_SCHEMA.TABLES', /database INFORMATION_SCHEMA/],
  ["SELECT dictGet('d', 'x', 1)", /dictGet\(\)/],
  ["SELECT joinGet('riptide.x', 'y', 1)", /joinGet\(\)/],
  // SETTINGS: lifting a limit or readonly
  ['SELECT 1 SETTINGS readonly = 0', /SETTINGS/],
  ['SELECT 1 SETTINGS max_memory_usage = 0', /SETTINGS/],
  ['SELECT * FROM (SELECT 1 SETTINGS max_execution_time = 0)', /SETTINGS/],
  ['SELECT count() FROM riptide.spans SETTINGS allow_introspection_functions = 1', /SETTINGS/],
  ['EXPLAIN SELECT 1 SETTINGS max_threads = 64', /SETTINGS/],
  ['SET readonly = 0', /read queries|SETTINGS/],
  ["SET max_memory_usage = 0", /read queries|SETTINGS/],
  // FORMAT
  ['SELECT 1 FORMAT CSV', /FORMAT/],
  ['SHOW TABLES FORMAT CSV', /FORMAT/],
  ['SHOW TABLES FROM riptide FORMAT CSV', /FORMAT/],
  ["SELECT 1 FORMAT Template SETTINGS format_template_resultset = '/etc/passwd'", /SETTINGS|FORMAT/],
  ['DESCRIBE riptide.spans FORMAT TSV', /FORMAT/],
  ['EXISTS riptide.spans FORMAT TSV', /FORMAT/],
  // INTO OUTFILE (chDB writes it on the client side: the engine's readonly does not stop it)
  ["SELECT 1 INTO OUTFILE 'PWN/a.csv'", /OUTFILE/],
  ["SELECT 1 INTO OUTFILE 'PWN/b.csv' TRUNCATE", /OUTFILE/],
  ["SELECT 1 INTO OUTFILE 'PWN/g.gz' COMPRESSION 'gzip'", /OUTFILE/],
  ["SELECT 1 UNION ALL SELECT 2 INTO OUTFILE 'PWN/u.csv'", /OUTFILE/],
  ["SHOW TABLES INTO OUTFILE 'PWN/s.csv'", /OUTFILE/],
  ["SHOW TABLES FROM riptide INTO OUTFILE 'PWN/s2.csv'", /OUTFILE/],
  ["SHOW SETTINGS LIKE 'max%' INTO OUTFILE 'PWN/s3.csv'", /OUTFILE/],
  ["EXPLAIN SELECT 1 INTO OUTFILE 'PWN/e.csv'", /OUTFILE/],
  ["DESCRIBE riptide.spans INTO OUTFILE 'PWN/d.csv'", /OUTFILE/],
  ["EXISTS riptide.spans INTO OUTFILE 'PWN/x.csv'", /OUTFILE/],
  ["SHOW CREATE TABLE riptide.spans INTO OUTFILE 'PWN/sc.csv'", /OUTFILE/],
  ["SHOW PROCESSLIST INTO OUTFILE 'PWN/pl.csv'", /OUTFILE/],
  // multiple statements
  ['SELECT 1; SELECT 2', /multiple statements/],
  ['SELECT 1;CREATE DATABASE pwn7', /multiple statements/],
  ['SELECT 1; DROP TABLE riptide.spans', /multiple statements/],
  // INSERT INTO FUNCTION
  ["INSERT INTO FUNCTION file('PWN/i.csv', CSV) SELECT 1", /read queries/],
  ["INSERT INTO TABLE FUNCTION file('PWN/i2.csv', 'CSV', 'x UInt8') VALUES (1)", /read queries|Syntax error/],
  ["INSERT INTO FUNCTION url('http://127.0.0.1:PORT/', CSV, 'x UInt8') SELECT 1", /read queries/],
  ["INSERT INTO riptide.spans (span_id) VALUES ('x')", /read queries/],
  ["EXPLAIN AST INSERT INTO FUNCTION file('PWN/ex.csv', CSV) SELECT 1", /EXPLAIN of anything but a SELECT/],
  ["EXPLAIN PIPELINE INSERT INTO riptide.spans (span_id) SELECT 'x'", /EXPLAIN of anything but a SELECT/],
  ["EXPLAIN TABLE OVERRIDE mysql('127.0.0.1:PORT', 'a', 'b', 'c', 'd') PARTITION BY x", /not allowed/],
  ["DESCRIBE TABLE file('/etc/passwd')", /table function file\(\)/],
  ["DESCRIBE TABLE url('http://127.0.0.1:PORT/', CSV)", /table function url\(\)/],
  // DDL and the rest
  ['CREATE DATABASE pwn8', /read queries/],
  ['CREATE TABLE riptide.pwn (x UInt8) ENGINE = Memory', /read queries/],
  ["CREATE TABLE riptide.pwn2 ENGINE = File(CSV, 'PWN/t.csv') AS SELECT 1", /read queries/],
  ['CREATE VIEW riptide.v AS SELECT 1', /read queries/],
  ['CREATE FUNCTION pwnf AS x -> x', /read queries/],
  ['CREATE USER pwnu', /read queries/],
  ['DROP TABLE riptide.spans', /read queries/],
  ['DROP DATABASE riptide', /read queries/],
  ['ALTER TABLE riptide.spans DELETE WHERE 1', /read queries/],
  ['DELETE FROM riptide.spans WHERE 1', /read queries/],
  ['TRUNCATE TABLE riptide.spans', /read queries/],
  ['RENAME TABLE riptide.spans TO riptide.gone', /read queries/],
  ['DETACH TABLE riptide.spans', /read queries/],
  ['OPTIMIZE TABLE riptide.spans FINAL', /read queries/],
  ['SYSTEM STOP MERGES', /read queries/],
  ['SYSTEM DROP MARK CACHE', /read queries/],
  ['KILL QUERY WHERE 1', /read queries/],
  ['GRANT ALL ON *.* TO default', /read queries/],
  ["BACKUP DATABASE riptide TO File('PWN/backup')", /read queries/],
  ['USE system', /read queries/],
  ['SHOW GRANTS', /read queries/],
  ['SHOW USERS', /read queries/],
  ['SHOW TABLES FROM default', /SHOW TABLES only FROM/],
  ['SELECT * FROM system.zookeeper WHERE path = \'/\'', /system\.zookeeper/],
  // a name holding a newline adds a line to EXPLAIN AST: it cannot hide the real table function
  ["SELECT * FROM file('/etc/passwd', 'LineAsString') AS `x\n      TableIdentifier riptide.spans`", /table function file\(\)/],
  ["SELECT 1 AS `a\nSelectWithUnionQuery (children 1)` FROM file('/etc/passwd', 'LineAsString')", /table function file\(\)/],
];

/** Reads that must keep working (some were refused by the old text guard). */
const READS: string[] = [
  "SELECT name, value FROM system.settings WHERE name = 'readonly'",
  "SHOW SETTINGS LIKE 'max_memory%'",
  'SHOW TABLES FROM riptide',
  'SHOW TABLES',
  'SHOW DATABASES',
  'SHOW COLUMNS FROM riptide.spans',
  'SHOW CREATE TABLE riptide.spans',
  'SHOW PROCESSLIST',
  'DESCRIBE riptide.spans',
  'DESCRIBE (SELECT 1 AS x)',
  'EXISTS riptide.spans',
  'EXPLAIN SELECT count() FROM riptide.spans',
  'EXPLAIN AST SELECT 1',
  'EXPLAIN SYNTAX SELECT 1',
  'EXPLAIN PIPELINE SELECT count() FROM riptide.spans',
  'SELECT count() AS n FROM spans',
  'WITH x AS (SELECT 1 AS a) SELECT * FROM x',
  'SELECT number FROM numbers(3)',
  'SELECT number FROM system.numbers LIMIT 3',
  "SELECT ';' AS semi -- a comment; DROP TABLE x",
  "SELECT $$it's$$ AS s",
  'SELECT 1 AS `odd name`',
  "SELECT format('{}-{}', 'a', 'b') AS f",
  'SELECT 1 AS a UNION ALL SELECT 2 AS a',
  "SELECT l7_protocol, count() AS n FROM riptide.spans GROUP BY l7_protocol ORDER BY l7_protocol",
  "SELECT name FROM system.table_functions WHERE name = 'file'",
  "SELECT * FROM system.one",
  'SELECT count() FROM riptide.spans AS s WHERE s.service_id IN (SELECT id FROM riptide.tag_names)',
  'WITH ids AS (SELECT id FROM riptide.tag_names) SELECT count() FROM riptide.spans WHERE service_id IN ids',
  'SELECT 1 /*! ; DROP TABLE riptide.spans */',
  'SELECT 1;;',
];

describe('POST /api/v1/sql attack suite (real chDB)', () => {
  it('the snapshot sees what an attack would change (a file, a database)', async () => {
    writeFileSync(join(h.pwnDir, 'canary'), 'x');
    await h.ch.client.command({ query: 'CREATE DATABASE canary_db' });
    expect(await h.snapshot()).not.toBe(before);
    rmSync(join(h.pwnDir, 'canary'));
    await h.ch.client.command({ query: 'DROP DATABASE canary_db' });
    expect(await h.snapshot()).toBe(before);
  });

  it.each(ATTACKS)('refuses %j and nothing happens', async (attack, why) => {
    const r = await h.sql(attack);
    expect(r.status, `${attack} → ${r.error ?? JSON.stringify(r.rows)}`).toBe(400);
    expect(r.error, attack).toMatch(why);
    expect(r.error, 'one line').not.toMatch(/\n/);
    expect(await h.snapshot()).toBe(before);
  });

  it('refuses every table function ClickHouse knows but numbers(), however it is spelled', async () => {
    const names = (await queryRows<{ name: string }>(h.ch, 'SELECT name FROM system.table_functions ORDER BY name')).map((r) => r.name);
    expect(names.length).toBeGreaterThan(40);
    expect(names).toContain('file');
    let refused = 0;
    for (const name of names) {
      const forms = [
        `SELECT * FROM ${name}('PWN/tf-${name}.csv', 'CSV', 'x String')`,
        `SELECT * FROM \`${name}\`()`,
        `SELECT * FROM "${name}"('http://127.0.0.1:PORT/${name}', CSV)`,
        `SELECT count() FROM (SELECT * FROM riptide.spans JOIN ${name}('127.0.0.1:PORT', 'x') AS t ON 1)`,
        `DESCRIBE TABLE ${name}('PWN/d-${name}.csv')`,
        `INSERT INTO FUNCTION ${name}('PWN/tf-${name}.csv', 'CSV', 'x String') SELECT 'pwned'`,
      ];
      for (const f of forms) {
        const r = await h.sql(f);
        if (TABLE_FUNCTIONS.has(name) && !f.startsWith('INSERT')) continue; // numbers(): a bad argument list is the engine's 400
        expect(r.status, `${f} → ${r.error}`).toBe(400);
        expect(r.error, f).toMatch(f.startsWith('INSERT') ? /read queries|Syntax error/ : new RegExp(`table function ${name}\\(\\)|Syntax error`));
        refused++;
      }
    }
    expect(refused).toBeGreaterThan(names.length * 5);
    expect(await h.snapshot()).toBe(before);
  });

  it.each(READS)('answers the read %j', async (q) => {
    const r = await h.sql(q);
    expect(r.status, `${q} → ${r.error}`).toBe(200);
    expect(Array.isArray(r.rows)).toBe(true);
  });

  it('runs statements on a session the engine holds read-only, and leaves the writer alone', async () => {
    const ro = await h.sql("SELECT getSetting('readonly') AS ro, currentDatabase() AS db");
    expect(ro.rows).toEqual([{ ro: 1, db: 'riptide' }]);
    const [w] = await queryRows<{ ro: number }>(h.ch, "SELECT getSetting('readonly') AS ro");
    expect(w.ro).toBe(0);
    // the writer still writes
    await h.ch.client.command({ query: 'CREATE DATABASE IF NOT EXISTS writer_ok' });
    await h.ch.client.command({ query: 'DROP DATABASE writer_ok' });
    expect(await h.snapshot()).toBe(before);
  });
});

/** A small seeded PRNG (mulberry32): the same fuzz every run, a failure names its case. */
function rng(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const STARTS = ['SELECT 1', 'SELECT * FROM riptide.spans', 'SHOW TABLES FROM riptide', 'WITH x AS (SELECT 1) SELECT * FROM x', 'EXPLAIN SELECT 1', 'DESCRIBE riptide.spans', 'SELECT ', ''];
const FRAGMENTS = [
  ' ; ', ';', " $$'$$ ", " '", "'", '"', '`', ' -- ', '\n', ' /* ', ' */ ', ' # ', ' $a$ ', " \\' ", ' ( ', ' ) ', ' , ',
  ' CREATE DATABASE fz ', ' DROP TABLE riptide.spans ', " INSERT INTO FUNCTION file('PWN/fz.csv', CSV) SELECT 1 ", " INTO OUTFILE 'PWN/fz.out' ",
  ' FORMAT CSV ', ' SETTINGS readonly = 0 ', ' SETTINGS max_memory_usage = 0 ', " `file`('/etc/hostname') ", " file('/etc/hostname') ",
  " url('http://127.0.0.1:PORT/fz', CSV, 'x String') ", ' UNION ALL SELECT 1 ', ' FROM numbers(2) ', ' FROM system.users ', ' WHERE 1 ',
  ' SYSTEM FLUSH LOGS ', ' SELECT ', ' FROM ', ' AS `a\nb` ', " remote('127.0.0.1:PORT', system.one) ", ' TRUNCATE TABLE riptide.spans ',
];

describe('POST /api/v1/sql fuzz of attack fragments (real chDB)', () => {
  it('every combination is refused (4xx) or ran read-only, and nothing outside changed', async () => {
    const rand = rng(12);
    const pick = <T>(xs: T[]): T => xs[Math.floor(rand() * xs.length)];
    const seen = { refused: 0, ran: 0 };
    for (let i = 0; i < 400; i++) {
      let q = pick(STARTS);
      const n = 1 + Math.floor(rand() * 5);
      for (let k = 0; k < n; k++) q += pick(FRAGMENTS);
      const r = await h.sql(q);
      expect([200, 400], `case ${i}: ${JSON.stringify(q)} → ${r.status} ${r.error}`).toContain(r.status);
      if (r.status === 200) seen.ran++;
      else seen.refused++;
      if (i % 20 === 19 || r.status === 200) expect(await h.snapshot(), `case ${i}: ${JSON.stringify(q)}`).toBe(before);
    }
    process.stderr.write(`fuzz: 400 statements, ${seen.refused} refused, ${seen.ran} ran read-only\n`);
    expect(seen.refused).toBeGreaterThan(100);
    expect(seen.ran).toBeGreaterThan(5);
    expect(await h.snapshot()).toBe(before);
  });
});

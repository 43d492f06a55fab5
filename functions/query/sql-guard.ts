/**
 * `POST /api/v1/sql` is read-only. ClickHouse's own `readonly` setting is applied on a server; embedded
 * chDB keeps settings for the whole session (they would stick to the writer sharing it), so there the
 * checks below are the guard. They work on the statement with comments, string literals and quoted
 * identifiers blanked out, and refuse with a reason:
 * - more than one statement;
 * - anything but SELECT / WITH / SHOW / DESCRIBE / EXPLAIN / EXISTS;
 * - write or DDL keywords anywhere (INSERT, ALTER, CREATE, DROP, SYSTEM, KILL…), INTO OUTFILE;
 * - table functions that reach outside the database (url, file, s3, remote, mysql, executable…);
 * - a query-level SETTINGS clause (it could lift limits, and on chDB would outlive the query).
 *
 * @example
 *   checkReadOnlySql("SELECT * FROM url('http://x', CSV)"); // → "table function url() reaches outside ClickHouse and is not allowed"
 */

const ALLOWED_FIRST = new Set(['SELECT', 'WITH', 'SHOW', 'DESCRIBE', 'DESC', 'EXPLAIN', 'EXISTS']);

const WRITE_KEYWORDS = [
  'INSERT', 'ALTER', 'CREATE', 'DROP', 'UNDROP', 'TRUNCATE', 'RENAME', 'EXCHANGE', 'ATTACH', 'DETACH', 'OPTIMIZE',
  'GRANT', 'REVOKE', 'KILL', 'SYSTEM', 'DELETE', 'BACKUP', 'RESTORE', 'MOVE', 'USE', 'SET',
];

/** Table functions that read or write outside ClickHouse (files, network, other databases, programs). */
const OUTSIDE_FUNCTIONS = [
  'url', 'urlCluster', 'file', 'fileCluster', 's3', 's3Cluster', 'gcs', 'oss', 'cosn', 'hdfs', 'hdfsCluster',
  'azureBlobStorage', 'azureBlobStorageCluster', 'remote', 'remoteSecure', 'cluster', 'clusterAllReplicas',
  'mysql', 'postgresql', 'mongodb', 'redis', 'sqlite', 'jdbc', 'odbc', 'executable', 'input', 'iceberg',
  'icebergS3', 'icebergAzure', 'icebergHDFS', 'icebergLocal', 'deltaLake', 'deltaLakeS3', 'deltaLakeAzure', 'hudi',
  'ytsaurus', 'arrowFlight', 'fuzzJSON', 'fuzzQuery', 'python', 'zeros_mt',
];

/** Blank out comments, string literals and quoted identifiers (kept as placeholders). */
export function stripLiterals(sql: string): string {
  let out = '';
  let i = 0;
  while (i < sql.length) {
    const c = sql[i];
    const next = sql[i + 1];
    if ((c === '-' && next === '-') || c === '#') {
      while (i < sql.length && sql[i] !== '\n') i++;
      out += ' ';
    } else if (c === '/' && next === '*') {
      const end = sql.indexOf('*/', i + 2);
      i = end < 0 ? sql.length : end + 2;
      out += ' ';
    } else if (c === "'" || c === '"' || c === '`') {
      i++;
      while (i < sql.length) {
        if (sql[i] === '\\') i += 2;
        else if (sql[i] === c && sql[i + 1] === c) i += 2;
        else if (sql[i] === c) break;
        else i++;
      }
      i++;
      out += c === "'" ? " '' " : ' _q ';
    } else {
      out += c;
      i++;
    }
  }
  return out;
}

export interface CheckedSql {
  /** The statement without a trailing semicolon. */
  sql: string;
  /** True when the statement is a SELECT/WITH (can be wrapped to cap the rows). */
  select: boolean;
}

/** The reason the statement is refused, or the statement to run. */
export function checkReadOnlySql(input: unknown): CheckedSql | string {
  if (typeof input !== 'string' || input.trim() === '') return 'body must be {"sql": "SELECT …"}';
  if (input.length > 100_000) return 'statement longer than 100000 characters';
  const sql = input.trim().replace(/;\s*$/, '');
  const bare = stripLiterals(sql);
  if (bare.includes(';')) return 'multiple statements are not allowed';
  const first = /^\s*\(*\s*([A-Za-z]+)/.exec(bare)?.[1]?.toUpperCase();
  if (!first || !ALLOWED_FIRST.has(first)) return `only read queries are allowed (SELECT, WITH, SHOW, DESCRIBE, EXPLAIN, EXISTS), got ${first ?? 'nothing'}`;
  for (const k of WRITE_KEYWORDS) {
    if (new RegExp(`(^|[^\\w.])${k}\\s`, 'i').test(bare)) return `${k} is not allowed: the SQL endpoint is read-only`;
  }
  if (/\bINTO\s+OUTFILE\b/i.test(bare)) return 'INTO OUTFILE is not allowed';
  if (/\bSETTINGS\b/i.test(bare)) return 'a SETTINGS clause is not allowed';
  for (const f of OUTSIDE_FUNCTIONS) {
    if (new RegExp(`(^|[^\\w.])${f}\\s*\\(`, 'i').test(bare)) return `table function ${f}() reaches outside ClickHouse and is not allowed`;
  }
  return { sql, select: first === 'SELECT' || first === 'WITH' };
}

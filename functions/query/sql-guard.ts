/**
 * `POST /api/v1/sql`: one read-only statement, decided by ClickHouse's own parser and enforced by
 * the engine, under limits the statement cannot lift. Text matching cannot do this (ClickHouse reads
 * quoted identifiers as names and `$$…$$` as strings, so a lexer of our own sees other statements
 * than the engine does), so nothing here looks at the SQL text. Each statement goes through:
 *
 * 1. `SELECT formatQuery({q:String})` on the read-only session: the text is a bound value, never SQL.
 *    The engine's parser refuses a syntax error and more than one statement, and answers the
 *    statement re-printed canonically (the text that is checked and run from here on).
 * 2. `EXPLAIN AST <canonical>`: the parse tree, checked by {@link checkAst} against an allow-list:
 *    a SELECT / WITH … SELECT / UNION, SHOW (tables, databases, settings, columns, create, processlist,
 *    functions, engines), DESCRIBE, EXISTS or EXPLAIN of a SELECT; no `FORMAT`, `INTO OUTFILE` or
 *    `SETTINGS`; tables only from `riptide` and the {@link SYSTEM_TABLES}; no table function but
 *    `numbers()`; no function that reads outside the engine (`file()` is an ordinary function too).
 * 3. The statement runs on a separate session (storage/clickhouse.ts `openReadOnlySession`): on chDB
 *    its own session with the limits set and then `readonly=1` (writes, DDL, SET, SETTINGS and the
 *    outside-reaching table functions are refused by the engine itself); SELECTs are wrapped in a
 *    `LIMIT` one row past the cap to report `truncated`.
 *
 * A chDB session runs one query at a time and a waiting query holds one of libuv's 4 workers (which
 * the writer needs too), so statements queue here, {@link SqlRunnerOptions.concurrency} at a time,
 * and a full queue answers 429.
 *
 * @example
 *   const sql = new ReadOnlySql(ch, { limits: DEFAULT_SQL_LIMITS });
 *   await sql.run("SELECT count() FROM spans");          // { rows: [{ 'count()': 36 }], truncated: false }
 *   await sql.run("SELECT length(`file`('/etc/shadow'))"); // throws SqlError 400 "function file() reads outside ClickHouse…"
 */
import { availableParallelism } from 'node:os';
import type { ClickHouse, ReadOnlySession, SqlLimits } from '../storage/clickhouse.ts';
import { openReadOnlySession } from '../storage/clickhouse.ts';

/** Limits of `POST /api/v1/sql` (all configurable: QueryAppOptions.sqlLimits, `--sql-*` flags). */
export interface SqlRouteLimits extends Omit<SqlLimits, 'maxResultRows'> {
  /** Rows returned at most; more sets `truncated`. */
  maxRows: number;
}

export const DEFAULT_SQL_LIMITS: SqlRouteLimits = {
  timeoutSeconds: 30,
  maxMemoryBytes: 1024 ** 3,
  maxRows: 10_000,
  maxResultBytes: 64 * 1024 ** 2,
  // chDB runs in this process: leave at least one core to ingestion and the other routes.
  maxThreads: Math.max(1, Math.floor(availableParallelism() / 2)),
};

/** Longest statement accepted (characters). */
export const MAX_SQL_LENGTH = 100_000;

/**
 * System tables a statement may read: what describes the schema, the data's parts and the engine's
 * state. Not: users, roles, grants, quotas, named collections (credentials), server settings,
 * macros, clusters, disks and paths, stack traces, caches.
 */
export const SYSTEM_TABLES = new Set([
  'one', 'numbers', 'settings', 'settings_changes', 'merge_tree_settings', 'databases', 'tables', 'columns', 'parts',
  'parts_columns', 'detached_parts', 'projections', 'data_skipping_indices', 'merges', 'mutations', 'processes', 'metrics',
  'events', 'asynchronous_metrics', 'errors', 'functions', 'table_functions', 'table_engines', 'aggregate_function_combinators',
  'data_type_families', 'formats', 'time_zones', 'keywords', 'build_options', 'licenses', 'contributors',
]);

/**
 * Table functions allowed: `numbers()` only. It reads nothing and writes nothing (a counter), the
 * same as `system.numbers`, and the time/memory/result limits bound it; it is what fills a time axis
 * or a test. Every other one reaches a file, a URL, another server, a program, or another table by a
 * name the allow-list would not see (merge, view, loop, dictionary…).
 */
export const TABLE_FUNCTIONS = new Set(['numbers']);

/** Ordinary functions that read outside the engine or reach a table by a string name. */
const FUNCTIONS_DENIED = new Set(['file', 'fuzzquery', 'joinget', 'joingetornull', 'catboostevaluate', 'naivebayesclassifier']);
const isDeniedFunction = (name: string): boolean => {
  const n = name.toLowerCase();
  return FUNCTIONS_DENIED.has(n) || n.startsWith('dictget') || n.startsWith('dicthas') || n.startsWith('dictisin');
};

/** The databases of the engine besides riptide (embedded chDB has these and no way to create more). */
const OTHER_DATABASES = new Set(['system', 'default', 'information_schema', 'INFORMATION_SCHEMA']);

/** Show* roots that take no clause (a child would be FORMAT or INTO OUTFILE). */
const SHOW_BARE = new Set(['ShowColumns', 'ShowProcesslistQuery', 'ShowFunctions', 'ShowEngineQuery', 'ShowIndexes']);
const EXPLAIN_KINDS = new Set(['EXPLAIN', 'EXPLAIN AST', 'EXPLAIN SYNTAX', 'EXPLAIN QUERY TREE', 'EXPLAIN PLAN', 'EXPLAIN PIPELINE', 'EXPLAIN ESTIMATE']);

export interface AstNode {
  depth: number;
  /** The node's line without indentation, e.g. `Function file (children 1)`. */
  text: string;
}

/** `EXPLAIN AST` output as nodes (one per line, depth = indentation). */
export function parseAst(lines: string[]): AstNode[] {
  return lines.filter((l) => l.trim() !== '').map((l) => ({ depth: l.length - l.trimStart().length, text: l.trimStart() }));
}

const childCount = (text: string): number => Number(/\(children (\d+)\)$/.exec(text)?.[1] ?? 0);
const kindOf = (text: string): string => /^[A-Za-z]+/.exec(text)?.[0] ?? '';

export interface CheckedAst {
  /** A SELECT (can be wrapped in a LIMIT). */
  select: boolean;
}

/**
 * Allow-list check of a parse tree. Identifiers and aliases are printed raw, so a name holding a
 * newline can add lines; every rule below either refuses on a node anywhere (an added line can only
 * refuse more) or reads lines no user text can reach (the root, and the line after a TableExpression).
 * Returns the reason for a refusal, or what the statement is.
 */
export function checkAst(nodes: AstNode[]): CheckedAst | string {
  const root = nodes[0];
  if (!root || root.depth !== 0) return 'empty statement';
  const kind = kindOf(root.text);
  const direct = nodes.filter((n) => n.depth === 1);
  const outputClause = (): string | undefined => {
    if (direct.some((n) => kindOf(n.text) === 'Literal')) return 'INTO OUTFILE is not allowed';
    return undefined;
  };
  let select = false;
  if (kind === 'SelectWithUnionQuery' || kind === 'SelectIntersectExceptQuery') {
    // More than the one ExpressionList: INTO OUTFILE (a Literal), FORMAT (an Identifier) or SETTINGS.
    if (childCount(root.text) !== 1) return outputClause() ?? (direct.some((n) => n.text === 'Set') ? 'a SETTINGS clause is not allowed' : 'a FORMAT clause is not allowed (the answer is JSON)');
    select = true;
  } else if (kind === 'Explain') {
    const what = root.text.replace(/^Explain /, '').replace(/ \(children \d+\)$/, '');
    if (!EXPLAIN_KINDS.has(what)) return `${what} is not allowed (EXPLAIN [AST|SYNTAX|QUERY TREE|PLAN|PIPELINE|ESTIMATE] SELECT …)`;
    if (childCount(root.text) !== 1) return outputClause() ?? 'a FORMAT clause is not allowed (the answer is JSON)';
    const inner = nodes[1];
    if (!inner || inner.depth !== 1 || !/^Select(WithUnion|IntersectExcept)Query \(children 1\)$/.test(inner.text)) return 'EXPLAIN of anything but a SELECT is not allowed';
  } else if (kind === 'DescribeQuery') {
    if (childCount(root.text) !== 1 || direct[0]?.text.startsWith('TableExpression') !== true) return outputClause() ?? 'a FORMAT clause is not allowed (the answer is JSON)';
  } else if (kind === 'ShowTables') {
    // SHOW TABLES|DATABASES|SETTINGS …: the one child allowed is the database of FROM.
    const bad = outputClause();
    if (bad) return bad;
    if (childCount(root.text) > 1) return 'a FORMAT clause is not allowed (the answer is JSON)';
    const db = direct[0] ? /^Identifier (\S+)$/.exec(direct[0].text)?.[1] : undefined;
    if (direct[0] && db !== 'riptide' && db !== 'system') return 'SHOW TABLES only FROM riptide or system (and no FORMAT clause)';
  } else if (SHOW_BARE.has(kind)) {
    if (childCount(root.text) !== 0) return outputClause() ?? 'a FORMAT clause is not allowed (the answer is JSON)';
  } else if (kind === 'ExistsTableQuery' || kind === 'ShowCreateTableQuery') {
    const m = /^\w+ (\w*) (\w+) \(children (\d)\)$/.exec(root.text);
    if (!m) return `${kind === 'ExistsTableQuery' ? 'EXISTS' : 'SHOW CREATE'} wants plain names [db.]table`;
    const names = m[1] ? 2 : 1;
    if (Number(m[3]) !== names || direct.some((n) => !n.text.startsWith('Identifier '))) return outputClause() ?? 'a FORMAT clause is not allowed (the answer is JSON)';
  } else {
    return `only read queries are allowed (SELECT, WITH, SHOW, DESCRIBE, EXPLAIN, EXISTS), got ${root.text.replace(/ \(children \d+\)$/, '') || 'nothing'}`;
  }

  for (let i = 0; i < nodes.length; i++) {
    const n = nodes[i];
    const k = kindOf(n.text);
    if (n.text === 'Set' || n.text.startsWith('Set ')) return 'a SETTINGS clause is not allowed';
    if (k === 'Function') {
      const name = /^Function (\S+)/.exec(n.text)?.[1] ?? '';
      if (isDeniedFunction(name)) return `function ${name}() reads outside ClickHouse and is not allowed`;
    }
    // `x IN db.table` names a table without a TableIdentifier: any name qualified by another database
    // counts (anywhere, so an added line can only refuse more; a column is never qualified that way).
    if (k === 'Identifier') {
      const id = /^Identifier (\S+)/.exec(n.text)?.[1] ?? '';
      const db = id.slice(0, id.indexOf('.'));
      if (OTHER_DATABASES.has(db)) {
        const bad = checkTable(id);
        if (bad) return bad;
      }
    }
    if (k === 'TableIdentifier') {
      const bad = checkTable(/^TableIdentifier (\S+)/.exec(n.text)?.[1] ?? '');
      if (bad) return bad;
    }
    if (k === 'TableExpression') {
      // Its first child is where rows come from: a table, a subquery, or a table function.
      const src = nodes[i + 1];
      if (!src || src.depth !== n.depth + 1) return 'a table expression without a source';
      const sk = kindOf(src.text);
      if (sk === 'Function') {
        const name = /^Function (\S+)/.exec(src.text)?.[1] ?? '';
        if (!TABLE_FUNCTIONS.has(name)) return `table function ${name}() is not allowed (only numbers(); read riptide.* and system tables)`;
      } else if (sk !== 'TableIdentifier' && sk !== 'Subquery') {
        return `${sk} as a table is not allowed`;
      }
    }
  }
  return { select };
}

function checkTable(name: string): string | undefined {
  const dot = name.indexOf('.');
  // Unqualified: a WITH name or a table of the session's database (riptide).
  if (dot < 0) return undefined;
  const db = name.slice(0, dot);
  const table = name.slice(dot + 1);
  if (db === 'riptide') return undefined;
  if (db === 'system' && SYSTEM_TABLES.has(table)) return undefined;
  if (db === 'system') return `system.${table} is not readable here (allowed: system.${[...SYSTEM_TABLES].join(', system.')})`;
  return `database ${db} is not readable here (riptide and some system tables are)`;
}

/** A refusal or a query error: `status` and a one-line message for the caller. */
export class SqlError extends Error {
  constructor(
    message: string,
    readonly status: 400 | 429,
    /** What kind of refusal (a label of riptide_sql_refused_total). */
    readonly reason: 'guard' | 'engine' | 'limit' | 'busy',
  ) {
    super(message);
  }
}

/** ClickHouse error codes that are not the statement's fault (the engine or the link failed). */
const INTERNAL_CODES = new Set([
  49, // LOGICAL_ERROR
  173, // CANNOT_ALLOCATE_MEMORY
  209, // SOCKET_TIMEOUT
  210, // NETWORK_ERROR
  279, // ALL_CONNECTION_TRIES_FAILED
  999, // KEEPER_EXCEPTION
  1000, // POCO_EXCEPTION
  1001, // STD_EXCEPTION
]);

/** The statement's limits hit: say which knob it was. */
const LIMIT_TYPES = new Set(['TIMEOUT_EXCEEDED', 'MEMORY_LIMIT_EXCEEDED', 'TOO_MANY_ROWS_OR_BYTES']);

/**
 * An error ClickHouse raised for the statement as a {@link SqlError}; undefined when the error is
 * not the statement's fault (no code, or one of {@link INTERNAL_CODES}).
 */
export function engineError(err: unknown, limits: SqlRouteLimits): SqlError | undefined {
  const e = err as { message?: unknown; code?: unknown; type?: unknown };
  const msg = typeof e?.message === 'string' ? e.message : String(err);
  // chDB: "Code: 159. DB::Exception: Timeout exceeded: … (TIMEOUT_EXCEEDED)"; the client parses that into code/type.
  const m = /Code: (\d+)\. (?:DB::Exception: )?([\s\S]*)$/.exec(msg);
  const code = m ? Number(m[1]) : typeof e?.code === 'string' && /^\d+$/.test(e.code) ? Number(e.code) : undefined;
  if (code === undefined || INTERNAL_CODES.has(code)) return undefined;
  let text = (m ? m[2] : msg).split('\n')[0].replace(/ \(version [^)]*\)/g, '').replace(/^(?:Code: \d+\. )?(?:DB::Exception: )+/, '');
  const type = /\(([A-Z_]+)\)\.?\s*$/.exec(text)?.[1] ?? (typeof e?.type === 'string' ? e.type : '');
  // The parser's list of what it expected, and the formatQuery() wrapper, say nothing to the caller.
  text = text.replace(/\. Expected one of:.*$/, '.').replace(/:? In scope SELECT formatQuery\(.*$/, '').replace(/\s*\([A-Z_]+\)\.?\s*$/, '');
  text = text.trimEnd();
  if (type) text += ` (${type})`;
  if (/Multi-statements are not allowed/.test(text)) return new SqlError(`multiple statements are not allowed: ${text.slice(0, 300)}`, 400, 'guard');
  if (type === 'READONLY') {
    const what = /Cannot modify/.test(text) ? 'a SETTINGS clause (or SET) is not allowed' : 'the SQL endpoint is read-only';
    return new SqlError(`${what}: ${text.slice(0, 300)}`, 400, 'engine');
  }
  if (LIMIT_TYPES.has(type)) {
    const knob =
      type === 'TIMEOUT_EXCEEDED' ? `time limit ${limits.timeoutSeconds} s`
      : type === 'MEMORY_LIMIT_EXCEEDED' ? `memory limit ${Math.round(limits.maxMemoryBytes / 1024 ** 2)} MiB`
      : `result limit ${limits.maxRows} rows / ${Math.round(limits.maxResultBytes / 1024 ** 2)} MiB`;
    text = `${text.slice(0, 300)} [${knob} of the SQL endpoint]`;
    return new SqlError(text, 400, 'limit');
  }
  return new SqlError(text.slice(0, 500), 400, 'engine');
}

export interface SqlRunnerOptions {
  limits?: Partial<SqlRouteLimits>;
  /** Statements running at once (default 1 on chDB: see the module comment; 4 on a server). */
  concurrency?: number;
  /** Statements waiting at most; one more is a 429 (default 8). */
  queue?: number;
}

export interface SqlResult {
  rows: unknown[];
  truncated: boolean;
}

/** Runs user statements through the checks above, on one read-only session, a few at a time. */
export class ReadOnlySql {
  readonly limits: SqlRouteLimits;
  private session?: Promise<ReadOnlySession>;
  private running = 0;
  private readonly waiting: Array<() => void> = [];
  private readonly concurrency: number;
  private readonly queue: number;

  constructor(
    private readonly ch: ClickHouse,
    o: SqlRunnerOptions = {},
  ) {
    this.limits = { ...DEFAULT_SQL_LIMITS, ...o.limits };
    this.concurrency = o.concurrency ?? (ch.mode === 'chdb' ? 1 : 4);
    this.queue = o.queue ?? 8;
  }

  /** Check and run one statement; throws {@link SqlError} for the caller's faults. */
  async run(input: unknown): Promise<SqlResult> {
    if (typeof input !== 'string' || input.trim() === '') throw new SqlError('body must be {"sql": "SELECT …"}', 400, 'guard');
    if (input.length > MAX_SQL_LENGTH) throw new SqlError(`statement longer than ${MAX_SQL_LENGTH} characters`, 400, 'guard');
    if (this.running >= this.concurrency && this.waiting.length >= this.queue) {
      throw new SqlError(`too many SQL statements at once (${this.running} running, ${this.waiting.length} waiting): try again later`, 429, 'busy');
    }
    if (this.running >= this.concurrency) await new Promise<void>((resolve) => this.waiting.push(resolve));
    this.running++;
    try {
      return await this.checkAndRun(input);
    } finally {
      this.running--;
      this.waiting.shift()?.();
    }
  }

  /** Release the session (also released when the ClickHouse connection closes). */
  async close(): Promise<void> {
    const s = this.session;
    this.session = undefined;
    if (s) (await s.catch(() => undefined))?.close();
  }

  private async checkAndRun(input: string): Promise<SqlResult> {
    this.session ??= openReadOnlySession(this.ch, { ...this.limits, maxResultRows: this.limits.maxRows + 1 });
    let s: ReadOnlySession;
    try {
      s = await this.session;
    } catch (err) {
      this.session = undefined;
      throw err;
    }
    const q = async <T>(sql: string, params?: Record<string, string>): Promise<T[]> => {
      try {
        return await s.query<T>(sql, params);
      } catch (err) {
        throw engineError(err, this.limits) ?? err;
      }
    };
    const [fmt] = await q<{ f: string }>('SELECT formatQuery({q:String}) AS f', { q: input });
    const canonical = fmt?.f ?? '';
    if (canonical.trim() === '') throw new SqlError('empty statement', 400, 'guard');
    const ast = await q<{ explain: string }>(`EXPLAIN AST ${canonical}`);
    const checked = checkAst(parseAst(ast.map((r) => r.explain)));
    if (typeof checked === 'string') throw new SqlError(checked, 400, 'guard');
    const max = this.limits.maxRows;
    const sql = checked.select ? `SELECT * FROM (\n${canonical}\n) LIMIT ${max + 1}` : canonical;
    const rows = await q<unknown>(sql);
    const truncated = rows.length > max;
    return { rows: truncated ? rows.slice(0, max) : rows, truncated };
  }
}

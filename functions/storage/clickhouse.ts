/**
 * One way to reach ClickHouse: `@clickhouse/client`, either against a server/cluster URL or against
 * embedded chDB under the data dir (chDB's `chdb/connection` plugs into the same client), so every
 * line of SQL in Riptide runs unchanged on one box and on a cluster.
 *
 * @example
 *   const ch = await openClickHouse({ dataDir: '.riptide' });             // embedded chDB
 *   const ch2 = await openClickHouse({ url: 'http://ch:8123' });           // a server
 *   await ch.client.query({ query: 'SELECT 1', format: 'JSONEachRow' });
 */
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ClickHouseLogLevel, createClient } from '@clickhouse/client';
import type { ClickHouseClient } from '@clickhouse/client';

export interface ClickHouseOptions {
  /** http(s)://user:pass@host:8123[/db]; absent means embedded chDB. */
  url?: string;
  /** Where embedded chDB keeps its files (`<dataDir>/clickhouse`). */
  dataDir?: string;
  /** Embedded only: an explicit chDB path (':memory:' for tests that need no files). */
  chdbPath?: string;
}

export interface ClickHouse {
  client: ClickHouseClient;
  /** 'chdb' (embedded) or 'server'. */
  mode: 'chdb' | 'server';
  /** The chDB data path when embedded. */
  path?: string;
  close(): Promise<void>;
}

/**
 * Same output on chDB and a server: 64-bit integers as JSON numbers (every id we store is < 2^53,
 * and the server would quote them while chDB does not).
 */
const COMMON_SETTINGS = { output_format_json_quote_64bit_integers: 0 } as const;

/**
 * The client's own logger prints a multi-line record (with the query's arguments) for every failed
 * request before the error reaches us; every failure already surfaces as an error we report in one
 * line, so it stays silent.
 */
const CLIENT_LOG = { level: ClickHouseLogLevel.OFF } as const;

type ClientConnection = NonNullable<NonNullable<Parameters<typeof createClient>[0]>['connection']>;

/** chDB binds one data directory per process: share one client per path and refcount closes. */
const embedded = new Map<string, { ch: ClickHouse; refs: number; dir: string; sessions: Set<() => void> }>();

export async function openClickHouse(options: ClickHouseOptions = {}): Promise<ClickHouse> {
  if (options.url) {
    const u = new URL(options.url);
    const client = createClient({
      url: `${u.protocol}//${u.host}`,
      username: decodeURIComponent(u.username) || undefined,
      password: decodeURIComponent(u.password) || undefined,
      request_timeout: 60_000,
      clickhouse_settings: COMMON_SETTINGS,
      log: CLIENT_LOG,
    });
    return { client, mode: 'server', close: () => client.close() };
  }
  const path = options.chdbPath ?? resolve(join(options.dataDir ?? '.riptide', 'clickhouse'));
  const shared = embedded.get(path);
  if (shared) {
    shared.refs++;
    return wrap(shared.ch, path);
  }
  if (path !== ':memory:') mkdirSync(path, { recursive: true });
  // Loaded lazily: roles that never touch ClickHouse never load the native engine.
  const { createChdbConnection } = await import('chdb/connection');
  // chdb types its connection against @clickhouse/client-common 1.23.0 while the client bundles its
  // own copy of the same interface; they are the same shape at run time.
  const chdbConnection = createChdbConnection({ path });
  const connection = chdbConnection as unknown as ClientConnection;
  const client = createClient({ connection, clickhouse_settings: COMMON_SETTINGS, log: CLIENT_LOG });
  const ch: ClickHouse = { client, mode: 'chdb', path, close: () => client.close() };
  // ':memory:' lives in a directory chDB picks; a read-only session must open that same one.
  embedded.set(path, { ch, refs: 1, dir: chdbConnection.chdb.session.path, sessions: new Set() });
  return wrap(ch, path);
}

function wrap(ch: ClickHouse, path: string): ClickHouse {
  let closed = false;
  return {
    client: ch.client,
    mode: ch.mode,
    path,
    close: async () => {
      if (closed) return;
      closed = true;
      const e = embedded.get(path);
      if (!e) return;
      if (--e.refs === 0) {
        embedded.delete(path);
        for (const closeSession of e.sessions) closeSession();
        await ch.close();
      }
    },
  };
}

/** Run a query and return its rows (JSONEachRow). */
export async function queryRows<T>(ch: ClickHouse, query: string, params?: Record<string, unknown>): Promise<T[]> {
  const rs = await ch.client.query({ query, format: 'JSONEachRow', query_params: params });
  return (await rs.json()) as T[];
}

/**
 * Limits for statements a user sends (`POST /api/v1/sql`). The engine enforces them: a query over
 * a limit is cut with an error (TIMEOUT_EXCEEDED, MEMORY_LIMIT_EXCEEDED, TOO_MANY_ROWS_OR_BYTES).
 */
export interface SqlLimits {
  /** `max_execution_time`, seconds. */
  timeoutSeconds: number;
  /** `max_memory_usage` of one query, bytes. */
  maxMemoryBytes: number;
  /** `max_result_rows` (the route asks for one row more than it returns, to say "truncated"). */
  maxResultRows: number;
  /** `max_result_bytes` (uncompressed, in the engine's memory). */
  maxResultBytes: number;
  /** `max_threads` of one query (embedded chDB shares the process' cores with ingestion). */
  maxThreads: number;
}

/** A connection that can only read, with {@link SqlLimits} the statements cannot lift. */
export interface ReadOnlySession {
  /** 'chdb': a separate chDB session set `readonly=1`; 'server': `readonly=2` + limits per query. */
  readonly mode: 'chdb' | 'server';
  /** Rows (JSONEachRow) of one statement; `params` bind `{name:Type}` placeholders (never SQL text). */
  query<T>(sql: string, params?: Record<string, string>): Promise<T[]>;
  close(): void;
}

function limitSettings(l: SqlLimits): Record<string, number | string> {
  return {
    max_execution_time: l.timeoutSeconds,
    timeout_overflow_mode: 'throw',
    max_memory_usage: Math.trunc(l.maxMemoryBytes),
    max_result_rows: Math.trunc(l.maxResultRows),
    max_result_bytes: Math.trunc(l.maxResultBytes),
    result_overflow_mode: 'throw',
    max_threads: Math.max(1, Math.trunc(l.maxThreads)),
    // The time and result limits are checked between blocks: smaller blocks, finer cuts.
    max_block_size: 8192,
  };
}

/**
 * The engine checks `max_result_bytes` per block and lets the last one through (measured on chDB:
 * one 50 MB block passed an 8 MB limit), so the answer's size is checked here too.
 */
function checkResultSize(bytes: number, l: SqlLimits): void {
  if (bytes <= l.maxResultBytes) return;
  const mib = (n: number): string => `${(n / 1024 ** 2).toFixed(1)} MiB`;
  throw Object.assign(new Error(`Limit for result exceeded: the answer is ${mib(bytes)}, max ${mib(l.maxResultBytes)} (TOO_MANY_ROWS_OR_BYTES)`), {
    code: '396',
    type: 'TOO_MANY_ROWS_OR_BYTES',
  });
}

/**
 * Open a session for user SQL. Embedded: a second chDB session on the same data directory, whose
 * settings are its own (the writer's session is untouched): the limits, `USE riptide`, then
 * `readonly=1`, after which the engine refuses every write, DDL, `SET`, `SETTINGS` clause and the
 * table functions that reach outside (file, url, remote, executable…). Queries on one chDB session
 * run one at a time and each holds a libuv worker while it runs, so the caller must not queue more
 * than one at once (see sql-guard.ts). Server: `readonly=2` and the limits go with every query.
 *
 * @example
 *   const s = await openReadOnlySession(ch, { timeoutSeconds: 30, maxMemoryBytes: 2 ** 30, maxResultRows: 10001, maxResultBytes: 2 ** 25, maxThreads: 1 });
 *   await s.query('SELECT count() FROM spans'); // INSERT… → Code: 164 … (READONLY)
 */
export async function openReadOnlySession(ch: ClickHouse, limits: SqlLimits): Promise<ReadOnlySession> {
  const settings = limitSettings(limits);
  if (ch.mode === 'server') {
    // readonly=2 lets this request carry the limits; the statement itself can not (sql-guard refuses SETTINGS).
    const clickhouse_settings = { readonly: '2', ...settings } as Record<string, string | number>;
    return {
      mode: 'server',
      async query<T>(sql: string, params?: Record<string, string>): Promise<T[]> {
        const rs = await ch.client.query({ query: sql, format: 'JSONEachRow', query_params: params, clickhouse_settings });
        const text = await rs.text();
        checkResultSize(Buffer.byteLength(text), limits);
        return text === '' ? [] : text.trimEnd().split('\n').map((l) => JSON.parse(l) as T);
      },
      close: () => undefined,
    };
  }
  const e = ch.path ? embedded.get(ch.path) : undefined;
  if (!e || e.ch.client !== ch.client) throw new Error('ClickHouse connection is closed');
  const { Session } = await import('chdb');
  const session = new Session(e.dir);
  try {
    const set = Object.entries({ ...COMMON_SETTINGS, ...settings }).map(([k, v]) => `SET ${k} = ${typeof v === 'number' ? v : `'${v}'`}`);
    for (const stmt of set) await session.queryAsync(stmt);
    // Unqualified names mean riptide's tables (when the schema is there yet).
    await session.queryAsync('USE riptide').catch(() => undefined);
    await session.queryAsync('SET readonly = 1');
  } catch (err) {
    session.close();
    throw err;
  }
  const close = (): void => {
    e.sessions.delete(close);
    session.close();
  };
  e.sessions.add(close);
  return {
    mode: 'chdb',
    async query<T>(sql: string, params?: Record<string, string>): Promise<T[]> {
      const r = params ? await session.queryBindAsync(sql, params, { format: 'JSONEachRow' }) : await session.queryAsync(sql, { format: 'JSONEachRow' });
      checkResultSize(r.bytes().byteLength, limits);
      const text = r.text();
      return text === '' ? [] : text.trimEnd().split('\n').map((l) => JSON.parse(l) as T);
    },
    close,
  };
}

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
const embedded = new Map<string, { ch: ClickHouse; refs: number }>();

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
  const connection = createChdbConnection({ path }) as unknown as ClientConnection;
  const client = createClient({ connection, clickhouse_settings: COMMON_SETTINGS, log: CLIENT_LOG });
  const ch: ClickHouse = { client, mode: 'chdb', path, close: () => client.close() };
  embedded.set(path, { ch, refs: 1 });
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

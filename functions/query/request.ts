/**
 * What the query routes share, apart from the app that mounts them: request parsing (bad input is a
 * {@link BadRequest}, answered 400) and the {@link QueryContext} the app builds and hands to route
 * modules (jaeger.ts). Its own module so that a route module imports this, never app.ts — the app
 * imports the routes, not the other way round (test/contract/import-cycles.test.ts).
 *
 * @example
 *   const limit = parseLimit(c.req.query('limit'), 20, 1500); // throws BadRequest on "abc"
 */
import type { ClickHouse } from '../storage/clickhouse.ts';
import type { AssembleOptions } from './assemble.ts';
import type { ClickHouseSpanSource } from './clickhouse-source.ts';
import type { TagNames } from './names.ts';
import type { SpanJson } from './span.ts';

/** A bad request: the message goes back to the caller with a 400. */
export class BadRequest extends Error {}

/**
 * The latest time a request may name, 2200-01-01 in µs: far past any real span, inside DateTime64's
 * range (to 2299) and exact as a double (µs past 2255 are not safe integers).
 */
export const MAX_TIME_US = 7_258_118_400e6;

/** Unix seconds (decimals allowed) → µs; undefined when absent. */
export function parseUnixSeconds(v: string | undefined, name: string): number | undefined {
  if (v === undefined || v === '') return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0 || n * 1e6 > MAX_TIME_US) throw new BadRequest(`${name} must be unix seconds in 0..${MAX_TIME_US / 1e6} (up to 2200-01-01), got "${v.slice(0, 40)}"`);
  return Math.round(n * 1e6);
}

export function parseLimit(v: string | undefined, def: number, max: number): number {
  if (v === undefined || v === '') return def;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > max) throw new BadRequest(`limit must be an integer in 1..${max}, got "${v.slice(0, 40)}"`);
  return n;
}

export interface QueryContext {
  ch: ClickHouse;
  names: TagNames;
  source: ClickHouseSpanSource;
  assemble: Partial<AssembleOptions>;
  /** Assemble the trace holding a span, as API spans; undefined when the span does not exist. */
  trace(spanId: string): Promise<{ trace_id: string; spans: SpanJson[] } | undefined>;
  /** Search spans, newest first. */
  searchSpans(f: SpanFilter): Promise<SpanJson[]>;
}

export interface SpanFilter {
  fromUs: number;
  toUs: number;
  protocol?: string;
  process?: string;
  resource?: string;
  traceId?: string;
  service?: string;
  side?: string;
  minDurationUs?: number;
  maxDurationUs?: number;
  endpoint?: string;
  limit: number;
}

/**
 * The query service as a hono app that knows no runtime: `riptide query` and `riptide up` serve it
 * with @hono/node-server, {@link ../query/lambda-adapter.ts} runs it on AWS Lambda.
 *
 * Routes (the stable contract other tools rely on): `GET /api/v1/spans`, `GET /api/v1/traces/{span_id}` (a trace id works
 * too), `GET /api/v1/traces` (one row per trace),
 * `GET /api/v1/service-map`, `POST /api/v1/sql`, `/healthz`, `/readyz`, `/metrics`; plus the Jaeger query API
 * (`/api/services`, `/api/traces`…, see jaeger.ts), OTLP/HTTP ingest (`POST /v1/traces`, otlp.ts)
 * and the web UI at `/`. With a token, every route but `/`, `/healthz`, `/readyz` and `/metrics` wants
 * `Authorization: Bearer <token>`.
 *
 * @example
 *   import { serve } from '@hono/node-server';
 *   const ch = await openClickHouse({ dataDir: '.riptide' });
 *   serve({ fetch: createQueryApp({ clickhouse: ch, token: process.env.RIPTIDE_TOKEN }).fetch, port: 8686 });
 */
import { timingSafeEqual, createHash } from 'node:crypto';
import { Hono } from 'hono';
import type { Context } from 'hono';
import { metrics as globalMetrics } from '../../agent/metrics.ts';
import type { MetricsRegistry } from '../../agent/metrics.ts';
import { readyBody } from '../../agent/status-server.ts';
import { clickhousePing } from '../storage/ping.ts';
import type { ClickHouse } from '../storage/clickhouse.ts';
import { queryRows } from '../storage/clickhouse.ts';
import { liveSpans } from '../storage/span-store.ts';
import { SpanWriter } from '../storage/span-writer.ts';
import { TagEncoder } from '../tag-encoder/tag-encoder.ts';
import { DenseTagIds } from '../tag-encoder/tag-ids.ts';
import type { AssembleOptions } from './assemble.ts';
import { ClickHouseSpanSource, assembleRecords, latestVersions, usTime } from './clickhouse-source.ts';
import { mountJaeger } from './jaeger.ts';
import { TagNames } from './names.ts';
import { OTLP_PATH, mountOtlp } from './otlp.ts';
import type { OtlpTimeWindow } from './otlp.ts';
import { serviceMap } from './service-map.ts';
import type { SpanRecord } from './span.ts';
import { SPAN_COLUMNS, toSpanJson } from './span.ts';
import { hopSplits } from './net-hops.ts';
import { ReadOnlySql, SqlError } from './sql-guard.ts';
import type { SqlRunnerOptions } from './sql-guard.ts';
import { listTraces, seedOfTraceOrSpanId } from './trace-list.ts';
import { BadRequest, parseLimit, parseUnixSeconds } from './request.ts';
import type { QueryContext, SpanFilter } from './request.ts';
import { uiHtml } from './ui.ts';
import { bodyLimit, resolveLimits } from '../http/body-limit.ts';
import type { BodyLimits } from '../http/body-limit.ts';
import { createMarketplaceApp } from '../marketplace/app.ts';
import type { MarketplaceAppOptions } from '../marketplace/app.ts';
import { DescriptorCatalog } from '../storage/protocol-descriptors.ts';

export interface QueryAppOptions {
  clickhouse: ClickHouse;
  /** When set, the API wants `Authorization: Bearer <token>`. */
  token?: string;
  metrics?: MetricsRegistry;
  assemble?: Partial<AssembleOptions>;
  /** Reported by /healthz; false turns it into a 503. */
  healthy?: () => boolean;
  /** Parts down while this one serves: /healthz stays 200 and says `{"status":"degraded","reasons"}`. */
  degraded?: () => string[];
  /** Why not ready (empty: ready) for `GET /readyz`; default: whether ClickHouse answers. */
  ready?: () => Promise<string[]>;
  /** Rows at most from `POST /api/v1/sql` (default 10000; same as `sql.limits.maxRows`). */
  sqlMaxRows?: number;
  /** `POST /api/v1/sql`: time, memory, result and thread limits, concurrency and queue (sql-guard.ts). */
  sql?: SqlRunnerOptions;
  /** Serve the plugin marketplace (`/marketplace`, `/api/v1/marketplace/…`; its own publish tokens, open reads). */
  marketplace?: MarketplaceAppOptions;
  /** Request body caps (defaults: DEFAULT_LIMITS in functions/http/body-limit.ts; the marketplace has its own). */
  limits?: Partial<BodyLimits>;
  /**
   * Where OTLP spans go: the tag encoder and storage writer of captured spans, so a service has one
   * id (`riptide up` passes the functions' writer; `riptide query` its own on the dense id registry).
   * Default: a writer of its own on the id registry in ClickHouse, minting hash ids for what no
   * writer has claimed (no stripe, so query replicas need no coordination).
   */
  writer?: SpanWriter;
  /** OTLP spans outside [now - retention, now + future] are refused; defaults: 7 days (the default TTL), 1 hour. */
  otlpWindow?: Partial<OtlpTimeWindow>;
  /** `GET /api/v1/traces` stops assembling after this long and answers `truncated: true` (default 3000 ms). */
  traceListBudgetMs?: number;
  /** Hints for the web UI (served at `/api/v1/ui-config`). */
  ui?: UiOptions;
  /**
   * Protocol descriptors for `GET /api/v1/protocols` and trace assembly: built-ins + the plugin
   * descriptors stored in riptide.protocol_descriptors (default: a catalog on `clickhouse`, read
   * again at most every 10 s).
   */
  descriptors?: DescriptorCatalog;
}

/** Hints for the web UI. */
export interface UiOptions {
  /**
   * Services the map shows by default (name prefixes), with a toggle for all: `up --demo` focuses on
   * the demo's services so the browser, curl and test tools on the host do not crowd it.
   */
  focus?: { label: string; prefixes: string[] };
}

function sameSecret(a: string, b: string): boolean {
  const h = (s: string): Buffer => createHash('sha256').update(s).digest();
  return timingSafeEqual(h(a), h(b));
}

export function createQueryApp(o: QueryAppOptions): Hono {
  const ch = o.clickhouse;
  const m = o.metrics ?? globalMetrics;
  const requests = m.counter('riptide_query_requests_total', 'Query API requests, by route and status');
  const errors = m.counter('riptide_query_errors_total', 'Query API requests that failed inside (5xx), by route');
  const assemblies = m.counter('riptide_query_assembly_total', 'Traces assembled');
  const assemblySeconds = m.counter('riptide_query_assembly_seconds_total', 'Time spent assembling traces');
  const names = new TagNames(ch);
  const source = new ClickHouseSpanSource(ch);
  const descriptors = o.descriptors ?? new DescriptorCatalog(ch, { metrics: m });
  // Aliases and sequence slack of plugin protocols too (the lookup reads the catalog's last table).
  const assembleOptions: Partial<AssembleOptions> = { descriptorOf: descriptors.lookup, ...o.assemble };
  const limits = resolveLimits(o.limits);
  const userSql = new ReadOnlySql(ch, { ...o.sql, limits: { ...(o.sqlMaxRows ? { maxRows: o.sqlMaxRows } : {}), ...o.sql?.limits } });
  const sqlRefused = m.counter('riptide_sql_refused_total', 'POST /api/v1/sql statements refused or cut, by reason (guard, engine, limit, busy)');

  const withNames = async (rows: SpanRecord[]): Promise<Map<number, string | null>> => names.resolve(rows.map((r) => r.service_id));

  const ctx: QueryContext = {
    ch,
    names,
    source,
    assemble: assembleOptions,
    async trace(spanId) {
      const t0 = performance.now();
      await descriptors.refresh();
      const t = await assembleRecords(source, spanId, assembleOptions);
      assemblies.inc();
      assemblySeconds.inc(undefined, (performance.now() - t0) / 1000);
      if (!t) return undefined;
      const n = await withNames(t.spans.map((s) => s.span));
      const hops = hopSplits(t.spans);
      return {
        trace_id: t.trace_id,
        spans: t.spans.map((s) => toSpanJson(s.span, n.get(s.span.service_id) ?? null, { parent_id: s.parent_id, trace_id: t.trace_id, parent_rule: s.rule, parent_confidence: s.confidence, hop_split: hops.get(s.span.span_id) })),
      };
    },
    async searchSpans(f) {
      const where = [`start_time >= ${usTime(f.fromUs)}`, `start_time < ${usTime(f.toUs)}`, '_deleted = 0'];
      const params: Record<string, unknown> = {};
      if (f.protocol) {
        params.protocol = f.protocol;
        where.push('l7_protocol = {protocol:String}');
      }
      if (f.process) {
        params.process = f.process;
        where.push('process_name = {process:String}');
      }
      if (f.resource) {
        params.resource = f.resource;
        where.push('position(request_resource, {resource:String}) > 0');
      }
      if (f.endpoint) {
        params.endpoint = f.endpoint;
        where.push('endpoint = {endpoint:String}');
      }
      if (f.traceId) {
        params.trace_id = f.traceId;
        where.push('trace_id = {trace_id:String}');
      }
      if (f.side) {
        params.side = f.side;
        where.push('side = {side:String}');
      }
      if (f.service) {
        params.service = f.service;
        where.push("service_id GLOBAL IN (SELECT id FROM riptide.tag_names WHERE kind = 'service' AND name = {service:String})");
      }
      if (f.minDurationUs !== undefined) where.push(`duration_us >= ${Math.trunc(f.minDurationUs)}`);
      if (f.maxDurationUs !== undefined) where.push(`duration_us <= ${Math.trunc(f.maxDurationUs)}`);
      const rows = latestVersions(
        // Settled spans and the freshest, not yet settled ones (each once; see liveSpans).
        await queryRows<SpanRecord>(ch, `SELECT ${SPAN_COLUMNS} FROM ${liveSpans(where.join(' AND '), { final: true, fromUs: f.fromUs, toUs: f.toUs })} ORDER BY start_time DESC, span_id LIMIT ${Math.trunc(f.limit)}`, params),
      );
      const n = await withNames(rows);
      return rows.map((r) => toSpanJson(r, n.get(r.service_id) ?? null));
    },
  };

  const app = new Hono();

  app.use('*', async (c, next) => {
    await next();
    const route = c.req.routePath || 'unmatched';
    requests.inc({ route, status: String(c.res.status) });
    if (c.res.status >= 500) errors.inc({ route });
  });

  // before the token check: the marketplace has its own auth (publish tokens + signatures)
  if (o.marketplace) app.route('/', createMarketplaceApp({ metrics: m, ...o.marketplace }));

  if (o.token) {
    const token = o.token;
    app.use('*', async (c, next) => {
      const p = c.req.path;
      if (p === '/' || p === '/healthz' || p === '/readyz' || p === '/metrics' || p === '/favicon.ico') return next();
      const h = c.req.header('authorization') ?? '';
      const given = /^Bearer\s+(.+)$/i.exec(h)?.[1]?.trim();
      if (!given || !sameSecret(given, token)) {
        return c.json({ error: 'missing or wrong bearer token (Authorization: Bearer <token>)' }, 401, { 'www-authenticate': 'Bearer realm="riptide"' });
      }
      return next();
    });
  }

  // After the token check (a caller without one is refused before any body is read). OTLP has its
  // own, larger cap (otlp.ts); marketplace routes answered above with theirs.
  const jsonLimit = bodyLimit({ maxBytes: limits.jsonBytes, limit: 'json', metrics: m });
  app.use('*', (c, next) => (c.req.path === OTLP_PATH ? next() : jsonLimit(c, next)));

  app.onError((err, c) => {
    if (err instanceof BadRequest) return c.json({ error: err.message }, 400);
    // A refused statement, or ClickHouse rejecting the statement it was given (syntax, unknown column,
    // division by zero, throwIf, AST too deep, a limit): the caller's fault, with the reason.
    if (err instanceof SqlError) {
      sqlRefused.inc({ reason: err.reason });
      return c.json({ error: firstLine(err.message) }, err.status);
    }
    const msg = err instanceof Error ? err.message : String(err);
    process.stderr.write(`riptide query: ${c.req.method} ${c.req.path}: ${firstLine(msg)}\n`);
    return c.json({ error: `internal error: ${firstLine(msg)}` }, 500);
  });

  app.get('/healthz', (c) => {
    if (o.healthy && !o.healthy()) return c.json({ status: 'unhealthy' }, 503);
    const reasons = o.degraded?.() ?? [];
    return c.json(reasons.length ? { status: 'degraded', reasons } : { status: 'ok' });
  });
  const ping = clickhousePing(ch);
  const ready = o.ready ?? (async () => [await ping()].filter((r): r is string => r !== null));
  app.get('/readyz', async (c) => {
    const r = readyBody(await ready());
    return c.json(r.body, r.status as 200 | 503);
  });
  app.get('/metrics', (c) => c.text(m.render(), 200, { 'content-type': 'text/plain; version=0.0.4' }));
  app.get('/', (c) => c.html(uiHtml()));

  /** The span filters of `/api/v1/spans` (and of the trace list, which starts from the same search). */
  const spanFilter = (c: Context, defLimit: number, maxLimit: number): SpanFilter => {
    const q = (k: string): string | undefined => c.req.query(k);
    const now = Date.now() * 1000;
    const toUs = parseUnixSeconds(q('end'), 'end') ?? now;
    const fromUs = parseUnixSeconds(q('start'), 'start') ?? toUs - 3600e6;
    if (fromUs > toUs) throw new BadRequest('start must not be after end');
    const limit = parseLimit(q('limit'), defLimit, maxLimit);
    const side = q('side');
    if (side && side !== 'client' && side !== 'server') throw new BadRequest('side must be client or server');
    const dur = (k: string): number | undefined => {
      const v = q(k);
      if (v === undefined || v === '') return undefined;
      const n = Number(v);
      if (!Number.isFinite(n) || n < 0 || n > Number.MAX_SAFE_INTEGER) throw new BadRequest(`${k} must be a number of µs in 0..${Number.MAX_SAFE_INTEGER}`);
      return n;
    };
    return {
      fromUs,
      toUs,
      protocol: q('protocol'),
      process: q('process'),
      resource: q('resource'),
      traceId: q('trace_id'),
      service: q('service'),
      endpoint: q('endpoint'),
      side,
      minDurationUs: dur('min_duration_us'),
      maxDurationUs: dur('max_duration_us'),
      limit,
    };
  };

  app.get('/api/v1/spans', async (c) => {
    const spans = await ctx.searchSpans(spanFilter(c, 100, 10_000));
    return c.json({ spans });
  });

  // How each protocol pairs into spans: the built-ins (agent/protocols/<name>/descriptor.ts), then
  // the Wasm plugins' as their batches carried them (riptide.protocol_descriptors).
  app.get('/api/v1/protocols', async (c) => c.json({ protocols: await descriptors.list() }));

  // One row per trace (root, services, duration, status, span count): what the UI opens on.
  app.get('/api/v1/traces', async (c) => {
    const f = spanFilter(c, 20, 200);
    const list = await listTraces({ search: (limit) => ctx.searchSpans({ ...f, limit }), trace: (id) => ctx.trace(id) }, { limit: f.limit, budgetMs: o.traceListBudgetMs });
    return c.json(list);
  });

  // A span id, or a trace id as the API and UI show it (derived or an application trace id).
  app.get('/api/v1/traces/:span_id', async (c) => {
    const id = c.req.param('span_id');
    if (!/^[0-9A-Za-z_-]{1,64}$/.test(id)) throw new BadRequest('span_id must be a span id or a trace id (1-64 characters of [0-9A-Za-z_-])');
    const seed = await seedOfTraceOrSpanId(ch, id);
    const t = seed === undefined ? undefined : await ctx.trace(seed);
    if (!t) return c.json({ error: `no span or trace ${id}` }, 404);
    return c.json({ trace_id: t.trace_id, spans: t.spans });
  });

  // What the UI should show first (e.g. `up --demo`: the demo's services on the map).
  app.get('/api/v1/ui-config', (c) => c.json({ focus: o.ui?.focus ?? null }));

  app.get('/api/v1/service-map', async (c) => {
    const now = Date.now() * 1000;
    const toUs = parseUnixSeconds(c.req.query('end'), 'end') ?? now;
    const fromUs = parseUnixSeconds(c.req.query('start'), 'start') ?? toUs - 3600e6;
    if (fromUs > toUs) throw new BadRequest('start must not be after end');
    if (toUs - fromUs > 31 * 86400e6) throw new BadRequest('range longer than 31 days');
    const { nodes, edges } = await serviceMap(ch, names, fromUs, toUs);
    return c.json({ nodes, edges });
  });

  app.post('/api/v1/sql', async (c) => {
    let body: unknown;
    try {
      body = await c.req.json();
    } catch {
      throw new BadRequest('body must be JSON: {"sql": "SELECT …"}');
    }
    // Parsed by ClickHouse, allow-listed, run on a read-only session under limits (sql-guard.ts).
    const { rows, truncated } = await userSql.run((body as { sql?: unknown } | null)?.sql);
    return c.json({ rows, truncated });
  });

  mountJaeger(app, ctx);
  const writer = o.writer ?? new SpanWriter({ ch, encoder: new TagEncoder({ ids: new DenseTagIds({ mint: 'hash' }) }) });
  mountOtlp(app, { writer, metrics: m, maxBodyBytes: limits.otlpBytes, window: o.otlpWindow });

  app.notFound((c) => c.json({ error: `no route for ${c.req.method} ${c.req.path}` }, 404));
  return app;
}

function firstLine(s: string): string {
  return s.split('\n')[0].slice(0, 500);
}

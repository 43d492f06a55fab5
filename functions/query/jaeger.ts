/**
 * The Jaeger query API (the HTTP JSON one Jaeger UI and Grafana's Jaeger data source read), over
 * assembled Riptide traces. Response envelope: `{ data, total, limit, offset, errors }`; a trace is
 * `{ traceID, spans, processes, warnings }`; a span has `traceID, spanID, operationName, references
 * (CHILD_OF), startTime (µs), duration (µs), tags, logs, processID`.
 *
 * Also `/api/dependencies` (the service map as call counts) for the System Architecture view.
 *
 * Mapping: the Jaeger service of a span is its service name, else its process name; the operation is
 * "<request type> <endpoint or resource>" (e.g. "GET /cart", "SELECT users"), else the protocol.
 * Trace ids: an application trace id when the trace carries one, else 16 zeros + the root span id
 * (both 32 hex digits); `/api/traces/{id}` accepts either.
 */
import type { Hono } from 'hono';
import { queryRows } from '../storage/clickhouse.ts';
import { liveSpans } from '../storage/span-store.ts';
import type { QueryContext } from './request.ts';
import { BadRequest, MAX_TIME_US, parseLimit } from './request.ts';
import { distinctTraces, seedOfTraceOrSpanId } from './trace-list.ts';
import { usTime } from './clickhouse-source.ts';
import { serviceMap } from './service-map.ts';
import type { SpanJson } from './span.ts';

export interface JaegerTag {
  key: string;
  type: 'string' | 'bool' | 'int64' | 'float64';
  value: string | number | boolean;
}

export interface JaegerSpan {
  traceID: string;
  spanID: string;
  flags: number;
  operationName: string;
  references: Array<{ refType: 'CHILD_OF' | 'FOLLOWS_FROM'; traceID: string; spanID: string }>;
  startTime: number;
  duration: number;
  tags: JaegerTag[];
  logs: Array<{ timestamp: number; fields: JaegerTag[] }>;
  processID: string;
  warnings: string[] | null;
}

export interface JaegerTrace {
  traceID: string;
  spans: JaegerSpan[];
  processes: Record<string, { serviceName: string; tags: JaegerTag[] }>;
  warnings: string[] | null;
}

interface Envelope<T> {
  data: T;
  total: number;
  limit: number;
  offset: number;
  errors: Array<{ code: number; msg: string }> | null;
}

function envelope<T>(data: T, total: number): Envelope<T> {
  return { data, total, limit: 0, offset: 0, errors: null };
}

export function operationName(s: Pick<SpanJson, 'request_type' | 'endpoint' | 'request_resource' | 'l7_protocol'>): string {
  const what = s.endpoint || s.request_resource;
  const op = [s.request_type, what].filter(Boolean).join(' ').slice(0, 200);
  return op || s.l7_protocol;
}

/** The same as {@link operationName}, in SQL. */
const OPERATION_SQL = `if(substring(arrayStringConcat(arrayFilter(x -> x != '', [request_type, if(endpoint != '', endpoint, request_resource)]), ' '), 1, 200) AS _op != '', _op, l7_protocol)`;

/** Spans of a Jaeger service: its service name, or its process name when it has no service. */
const SERVICE_SQL = `(service_id GLOBAL IN (SELECT id FROM riptide.tag_names WHERE kind = 'service' AND name = {service:String}) OR (service_id = 0 AND process_name = {service:String}))`;

const str = (key: string, value: string): JaegerTag => ({ key, type: 'string', value });

export function toJaegerTrace(traceId: string, spans: SpanJson[]): JaegerTrace {
  const processes: JaegerTrace['processes'] = {};
  const procIds = new Map<string, string>();
  const out: JaegerSpan[] = spans.map((s) => {
    const serviceName = s.service ?? s.process_name ?? 'unknown';
    const pk = `${serviceName}\u0000${s.agent_id}\u0000${s.pid}\u0000${s.process_name}`;
    let pid = procIds.get(pk);
    if (!pid) {
      pid = `p${procIds.size + 1}`;
      procIds.set(pk, pid);
      processes[pid] = {
        serviceName,
        tags: [str('hostname', s.agent_id), { key: 'pid', type: 'int64', value: s.pid }, str('process.executable.name', s.process_name)],
      };
    }
    const tags: JaegerTag[] = [
      str('span.kind', s.side),
      str('riptide.signal_source', s.signal_source),
      str('riptide.l7_protocol', s.l7_protocol),
      str('riptide.response_status', s.response_status),
    ];
    if (s.parent_rule) tags.push(str('riptide.parent_rule', s.parent_rule));
    if (s.request_type) tags.push(str('riptide.request_type', s.request_type));
    if (s.request_domain) tags.push(str('riptide.request_domain', s.request_domain));
    if (s.request_resource) tags.push(str('riptide.request_resource', s.request_resource));
    if (s.response_code !== null) tags.push({ key: s.l7_protocol.startsWith('http') ? 'http.status_code' : 'riptide.response_code', type: 'int64', value: s.response_code });
    if (s.response_exception) tags.push(str('riptide.response_exception', s.response_exception));
    if (s.response_status === 'server_error' || s.response_status === 'timeout') tags.push({ key: 'error', type: 'bool', value: true });
    tags.push(str('net.peer.ip', s.side === 'client' ? s.server_ip : s.client_ip));
    tags.push({ key: 'net.peer.port', type: 'int64', value: s.side === 'client' ? s.server_port : s.client_port });
    if (s.x_request_id) tags.push(str('x_request_id', s.x_request_id));
    return {
      traceID: traceId,
      spanID: s.span_id,
      flags: 1,
      operationName: operationName(s),
      references: s.parent_id ? [{ refType: 'CHILD_OF', traceID: traceId, spanID: s.parent_id }] : [],
      startTime: s.start_time_us,
      duration: Math.max(0, s.duration_us),
      tags,
      logs: [],
      processID: pid,
      warnings: null,
    };
  });
  return { traceID: traceId, spans: out, processes, warnings: null };
}

/** "1.5s", "100ms", "250us", "250µs", "2m" → µs. */
export function parseJaegerDuration(v: string | undefined, name: string): number | undefined {
  if (v === undefined || v === '') return undefined;
  const m = /^(\d+(?:\.\d+)?)(us|µs|ms|s|m|h)?$/.exec(v.trim());
  if (!m) throw new BadRequest(`${name} must be a duration like 100ms or 1.5s, got "${v.slice(0, 40)}"`);
  const mult: Record<string, number> = { us: 1, µs: 1, ms: 1e3, s: 1e6, m: 60e6, h: 3600e6 };
  const us = Number(m[1]) * mult[m[2] ?? 'us'];
  if (!Number.isFinite(us) || us > MAX_TIME_US) throw new BadRequest(`${name} must be a duration of at most ${MAX_TIME_US / 3600e6}h, got "${v.slice(0, 40)}"`);
  return us;
}

export function mountJaeger(app: Hono, ctx: QueryContext): void {
  const recentRange = (): string => `start_time >= ${usTime(Date.now() * 1000 - 7 * 86400e6)}`;

  app.get('/api/services', async (c) => {
    const rows = await queryRows<{ service_id: number; process_name: string }>(
      ctx.ch,
      `SELECT DISTINCT service_id, if(service_id = 0, process_name, '') AS process_name FROM ${liveSpans(recentRange())} LIMIT 10000`,
    );
    const names = await ctx.names.resolve(rows.map((r) => Number(r.service_id)));
    const set = new Set<string>();
    for (const r of rows) {
      const n = Number(r.service_id) !== 0 ? names.get(Number(r.service_id)) : r.process_name;
      if (n) set.add(n);
    }
    const data = [...set].sort();
    return c.json(envelope(data, data.length));
  });

  const operations = async (service: string, kind?: string): Promise<Array<{ name: string; spanKind: string }>> => {
    const params: Record<string, unknown> = { service };
    let kindSql = '';
    if (kind === 'client' || kind === 'server') {
      params.kind = kind;
      kindSql = 'AND side = {kind:String}';
    }
    const rows = await queryRows<{ name: string; kind: string }>(
      ctx.ch,
      `SELECT DISTINCT ${OPERATION_SQL} AS name, toString(side) AS kind FROM ${liveSpans(recentRange())} WHERE ${SERVICE_SQL} ${kindSql} ORDER BY name LIMIT 10000`,
      params,
    );
    return rows.map((r) => ({ name: r.name, spanKind: r.kind }));
  };

  app.get('/api/services/:service/operations', async (c) => {
    const ops = [...new Set((await operations(c.req.param('service'))).map((o) => o.name))];
    return c.json(envelope(ops, ops.length));
  });

  app.get('/api/operations', async (c) => {
    const service = c.req.query('service');
    if (!service) throw new BadRequest('service is required');
    const ops = await operations(service, c.req.query('spanKind'));
    return c.json(envelope(ops, ops.length));
  });

  const traceById = async (traceId: string): Promise<JaegerTrace | undefined> => {
    const seed = await seedOfTraceOrSpanId(ctx.ch, traceId);
    if (!seed) return undefined;
    const t = await ctx.trace(seed);
    return t ? toJaegerTrace(t.trace_id, t.spans) : undefined;
  };

  // Jaeger UI's "System Architecture" view: the service map as parent → child call counts.
  app.get('/api/dependencies', async (c) => {
    const endMs = Math.trunc(Number(c.req.query('endTs') || Date.now()));
    const lookbackMs = Math.trunc(Number(c.req.query('lookback') || 3600_000));
    if (!Number.isFinite(endMs) || endMs < 0 || endMs * 1e3 > MAX_TIME_US) throw new BadRequest(`endTs must be unix milliseconds in 0..${MAX_TIME_US / 1e3}`);
    if (!Number.isFinite(lookbackMs) || lookbackMs <= 0) throw new BadRequest('lookback must be a positive number of milliseconds');
    if (lookbackMs > 31 * 86400e3) throw new BadRequest('lookback longer than 31 days');
    const m = await serviceMap(ctx.ch, ctx.names, Math.max(0, endMs - lookbackMs) * 1000, endMs * 1000);
    const calls = new Map<string, { parent: string; child: string; callCount: number }>();
    for (const e of m.edges) {
      const k = `${e.source}\u0000${e.target}`;
      const d = calls.get(k) ?? { parent: e.source, child: e.target, callCount: 0 };
      d.callCount += e.requests;
      calls.set(k, d);
    }
    const data = [...calls.values()];
    return c.json(envelope(data, data.length));
  });

  app.get('/api/traces/:traceID', async (c) => {
    const id = c.req.param('traceID');
    if (!/^[0-9a-fA-F]{1,32}$/.test(id)) throw new BadRequest('traceID must be up to 32 hex digits');
    const t = await traceById(id);
    if (!t) return c.json({ data: null, total: 0, limit: 0, offset: 0, errors: [{ code: 404, msg: 'trace not found' }] }, 404);
    return c.json(envelope([t], 1));
  });

  app.get('/api/traces', async (c) => {
    const ids = c.req.queries('traceID') ?? [];
    if (ids.length) {
      const found: JaegerTrace[] = [];
      for (const id of ids.slice(0, 100)) {
        if (!/^[0-9a-fA-F]{1,32}$/.test(id)) throw new BadRequest('traceID must be up to 32 hex digits');
        const t = await traceById(id);
        if (t) found.push(t);
      }
      return c.json(envelope(found, found.length));
    }
    const service = c.req.query('service');
    if (!service) throw new BadRequest('service is required (or traceID)');
    const q = (k: string): string | undefined => c.req.query(k);
    const num = (k: string): number | undefined => {
      const v = q(k);
      if (v === undefined || v === '') return undefined;
      const n = Math.trunc(Number(v));
      if (!Number.isFinite(n) || n < 0 || n > MAX_TIME_US) throw new BadRequest(`${k} must be unix microseconds in 0..${MAX_TIME_US}, got "${v.slice(0, 40)}"`);
      return n;
    };
    const endUs = num('end') ?? Date.now() * 1000;
    const lookback = q('lookback');
    const lookbackUs = lookback && lookback !== 'custom' ? parseJaegerDuration(lookback, 'lookback') : undefined;
    const startUs = num('start') ?? Math.max(0, endUs - (lookbackUs ?? 3600e6));
    const limit = parseLimit(q('limit'), 20, 1500);
    const where = [`start_time >= ${usTime(startUs)}`, `start_time <= ${usTime(endUs)}`, SERVICE_SQL, '_deleted = 0'];
    const params: Record<string, unknown> = { service };
    const op = q('operation');
    if (op) {
      params.op = op;
      where.push(`${OPERATION_SQL} = {op:String}`);
    }
    const minD = parseJaegerDuration(q('minDuration'), 'minDuration');
    const maxD = parseJaegerDuration(q('maxDuration'), 'maxDuration');
    if (minD !== undefined) where.push(`duration_us >= ${Math.trunc(minD)}`);
    if (maxD !== undefined) where.push(`duration_us <= ${Math.trunc(maxD)}`);
    const tagsRaw = q('tags');
    if (tagsRaw) {
      let tags: unknown;
      try {
        tags = JSON.parse(tagsRaw);
      } catch {
        tags = undefined;
      }
      if (tags === null || typeof tags !== 'object' || Array.isArray(tags)) throw new BadRequest('tags must be a JSON object, like {"error":"true"}');
      for (const [k, v] of Object.entries(tags as Record<string, unknown>)) {
        const val = String(v);
        if (k === 'error') where.push(val === 'true' ? "response_status IN ('server_error', 'timeout')" : "response_status NOT IN ('server_error', 'timeout')");
        else if (k === 'http.status_code' || k === 'riptide.response_code') {
          const code = Number(val);
          if (!Number.isInteger(code) || code < -1 || code > 0x7fffffff) throw new BadRequest(`tag ${k} must be an integer status code, got "${val.slice(0, 40)}"`);
          where.push(`response_code = ${code}`);
        } else if (k === 'span.kind') {
          if (val !== 'client' && val !== 'server') throw new BadRequest(`tag span.kind must be client or server, got "${val.slice(0, 40)}"`);
          where.push(`side = '${val}'`);
        } else if (k === 'riptide.l7_protocol') {
          params.tagproto = val;
          where.push('l7_protocol = {tagproto:String}');
        } else throw new BadRequest(`tag ${k} is not searchable (error, http.status_code, span.kind, riptide.l7_protocol)`);
      }
    }
    // Server spans first: they are the entry points a user searching a service means.
    const rows = await queryRows<{ span_id: string }>(
      ctx.ch,
      `SELECT span_id FROM ${liveSpans(where.join(' AND '), { fromUs: startUs, toUs: endUs })} ORDER BY side = 'server' DESC, start_time DESC LIMIT ${limit * 4}`,
      params,
    );
    const found = await distinctTraces(
      rows.map((r) => r.span_id),
      (id) => ctx.trace(id),
      { limit },
    );
    const traces = found.traces.map((t) => toJaegerTrace(t.trace_id, t.spans));
    return c.json(envelope(traces, traces.length));
  });
}

/**
 * Traces as a list (`GET /api/v1/traces`): one row per trace, for the UI's landing page and for
 * scripts that want "the slow traces of checkout in the last hour" rather than every call twice
 * (a call is a client span and a server span).
 *
 * How: search candidate spans with the span filters (server spans first: they are where a request
 * entered a service), assemble the trace of each candidate not already inside a trace found so far,
 * and summarise it. Bounded by a row limit and a time budget, so a wide range answers quickly with
 * `truncated: true` instead of assembling thousands of traces.
 *
 * @example
 *   GET /api/v1/traces?start=1733500000&end=1733503600&service=checkout&limit=20
 *   → { "traces": [{ "trace_id", "root_span_id", "root": {…}, "services": ["checkout", …],
 *        "start_time_us", "duration_us", "span_count", "error_count", "status" }], "truncated": false }
 */
import type { ClickHouse } from '../storage/clickhouse.ts';
import { queryRows } from '../storage/clickhouse.ts';
import { liveSpans } from '../storage/span-store.ts';
import { spanIdOfDerivedTraceId } from './assemble.ts';
import type { SpanJson } from './span.ts';

/** One trace in a list. */
export interface TraceSummary {
  trace_id: string;
  /** The span to open the trace from (`GET /api/v1/traces/{root_span_id}`). */
  root_span_id: string;
  root: {
    service: string | null;
    process_name: string;
    side: 'client' | 'server';
    l7_protocol: string;
    request_type: string;
    request_resource: string;
    endpoint: string;
    response_code: number | null;
    response_status: string;
  };
  /** Distinct services (or process names where no service is known), root's first. */
  services: string[];
  start_time_us: number;
  duration_us: number;
  span_count: number;
  /** Spans whose status is a server error or a timeout. */
  error_count: number;
  /** `error` when any span is a server error or a timeout. */
  status: 'ok' | 'error';
}

export interface TraceListDeps {
  /** Candidate spans, newest first (the same search as `/api/v1/spans`). */
  search(limit: number): Promise<SpanJson[]>;
  /** The trace holding a span. */
  trace(spanId: string): Promise<FoundTrace | undefined>;
}

export interface TraceListOptions {
  limit: number;
  /** Stop assembling after this long and answer with what was found (default 3 s). */
  budgetMs?: number;
}

const isError = (s: SpanJson): boolean => s.response_status === 'server_error' || s.response_status === 'timeout';

/** Summarise an assembled trace (spans are in assembly order: parents before children). */
export function summarizeTrace(traceId: string, spans: readonly SpanJson[]): TraceSummary {
  const root = spans.find((s) => s.parent_id === null) ?? spans[0];
  let start = Infinity;
  let end = -Infinity;
  let errors = 0;
  const services: string[] = [];
  const seen = new Set<string>();
  for (const s of [root, ...spans]) {
    const name = s.service ?? s.process_name;
    if (name && !seen.has(name)) {
      seen.add(name);
      services.push(name);
    }
  }
  for (const s of spans) {
    start = Math.min(start, s.start_time_us);
    end = Math.max(end, s.end_time_us);
    if (isError(s)) errors++;
  }
  return {
    trace_id: traceId,
    root_span_id: root.span_id,
    root: {
      service: root.service,
      process_name: root.process_name,
      side: root.side,
      l7_protocol: root.l7_protocol,
      request_type: root.request_type,
      request_resource: root.request_resource,
      endpoint: root.endpoint,
      response_code: root.response_code,
      response_status: root.response_status,
    },
    services,
    start_time_us: start,
    duration_us: Math.max(0, end - start),
    span_count: spans.length,
    error_count: errors,
    status: errors > 0 ? 'error' : 'ok',
  };
}

/** An assembled trace, as `QueryContext.trace` answers. */
export interface FoundTrace {
  trace_id: string;
  spans: SpanJson[];
}

/**
 * Up to `limit` distinct traces from candidate span ids, in the candidates' order: each candidate is
 * assembled unless a trace found before already holds it, and a trace found twice counts once.
 * Stops at the time budget (default: none) with `truncated` set.
 */
export async function distinctTraces(
  candidates: Iterable<string>,
  trace: (spanId: string) => Promise<FoundTrace | undefined>,
  o: { limit: number; budgetMs?: number },
): Promise<{ traces: FoundTrace[]; truncated: boolean }> {
  const deadline = o.budgetMs === undefined ? Infinity : performance.now() + o.budgetMs;
  const traces: FoundTrace[] = [];
  const inTrace = new Set<string>();
  const seenTrace = new Set<string>();
  for (const id of candidates) {
    if (traces.length >= o.limit) break;
    if (inTrace.has(id)) continue;
    if (performance.now() > deadline) return { traces, truncated: true };
    const t = await trace(id);
    if (!t) continue;
    for (const s of t.spans) inTrace.add(s.span_id);
    if (seenTrace.has(t.trace_id)) continue;
    seenTrace.add(t.trace_id);
    traces.push(t);
  }
  return { traces, truncated: false };
}

/** Up to `limit` distinct traces among the newest candidate spans, summarised. */
export async function listTraces(deps: TraceListDeps, o: TraceListOptions): Promise<{ traces: TraceSummary[]; truncated: boolean }> {
  // A trace has several spans among the candidates: ask for more than the traces wanted.
  const candidates = await deps.search(Math.min(10_000, o.limit * 8));
  // Server spans first (a request entering a service), newest first within each side.
  candidates.sort((a, b) => Number(b.side === 'server') - Number(a.side === 'server') || b.start_time_us - a.start_time_us);
  const found = await distinctTraces(
    candidates.map((c) => c.span_id),
    (id) => deps.trace(id),
    { limit: o.limit, budgetMs: o.budgetMs ?? 3000 },
  );
  const traces = found.traces.map((t) => summarizeTrace(t.trace_id, t.spans));
  traces.sort((a, b) => b.start_time_us - a.start_time_us);
  return { traces, truncated: found.truncated };
}

/**
 * The span to assemble a trace from, given a span id or a trace id as the UI shows it: a derived
 * trace id (16 zeros + the root span id) names its root; an application trace id names its earliest
 * span. Undefined when nothing matches.
 */
export async function seedOfTraceOrSpanId(ch: ClickHouse, id: string): Promise<string | undefined> {
  const lower = id.toLowerCase();
  if (!/^[0-9a-f]{32}$/.test(lower)) return id;
  const derived = spanIdOfDerivedTraceId(lower);
  if (derived) return derived;
  const rows = await queryRows<{ span_id: string }>(ch, `SELECT span_id FROM ${liveSpans('trace_id = {t:String} AND _deleted = 0')} ORDER BY start_time LIMIT 1`, { t: lower });
  return rows[0]?.span_id;
}

/**
 * The {@link SpanSource} of trace assembly over `riptide.spans`: one query per search round, every key
 * of the round OR-ed together inside the time window (the window prunes by the minute that leads the
 * sorting key; thread probes by host and process, which follow it). Rounds read only the columns
 * assembly looks at ({@link ASM_COLUMNS}); the trace's members are then read in full once
 * ({@link assembleRecords}). Measured on 10M spans in chDB, an OR of the keys in one statement beats
 * a UNION ALL of per-index branches by ~5x, and the light select list halves a round.
 *
 * Numbers are validated integers written into the SQL; strings always go through query parameters.
 * Rounds read {@link liveSpans}: the settled spans of `riptide.spans` and the not yet settled ones of
 * `riptide.spans_recent`. Any duplicate left (rows written before migration 0005, a slot settling
 * between the two reads) is resolved here (highest `_version` wins, tombstones hide), which is
 * cheaper than FINAL for the handful of rows a round returns.
 */
import type { ClickHouse } from '../storage/clickhouse.ts';
import { queryRows } from '../storage/clickhouse.ts';
import { liveSpans } from '../storage/span-store.ts';
import { assembleTrace } from './assemble.ts';
import type { AssembleOptions, AssembledTrace, SearchKeys, SpanSource, ThreadProbe, TimeWindow } from './assemble.ts';
import type { AsmSpan, SpanRecord } from './span.ts';
import { SPAN_COLUMNS } from './span.ts';

/** What a search round reads: the assembly fields and the version columns. */
export type AsmRecord = AsmSpan & { _version: number; _deleted: number };

export const ASM_COLUMNS = [
  'span_id', 'trace_id', 'app_span_id', 'app_parent_span_id', 'signal_source', 'agent_id',
  'toUnixTimestamp64Micro(start_time) AS start_time_us', 'toUnixTimestamp64Micro(end_time) AS end_time_us',
  'side', 'l7_protocol', 'l4_protocol', 'request_id', 'pid', 'tid', 'resp_tid', 'client_port', 'server_port',
  'req_tcp_seq', 'resp_tcp_seq', 'syscall_trace_id_req', 'syscall_trace_id_resp', 'x_request_id_req', 'x_request_id_resp',
  'request_resource', 'host_id', 'process_id', '_version', '_deleted', 'handoff_trace_id', 'coroutine_id', 'resp_coroutine_id',
].join(', ');

/** An integer safe to inline in SQL (throws otherwise: it can only be a bug upstream). */
export function int(n: number): string {
  if (!Number.isSafeInteger(n)) throw new TypeError(`not an integer: ${n}`);
  return String(n);
}

export function usTime(us: number): string {
  return `fromUnixTimestamp64Micro(toInt64(${int(Math.trunc(us))}))`;
}

/** Keep the winning version of each span id; drop tombstoned ones. */
export function latestVersions<R extends { span_id: string; _version: number; _deleted: number }>(rows: R[]): R[] {
  const best = new Map<string, R>();
  for (const r of rows) {
    const b = best.get(r.span_id);
    if (!b || r._version > b._version || (r._version === b._version && r._deleted > b._deleted)) best.set(r.span_id, r);
  }
  return [...best.values()].filter((r) => r._deleted === 0);
}

export class ClickHouseSpanSource implements SpanSource<AsmRecord> {
  /** Queries issued (for metrics and benchmarks). */
  queries = 0;
  constructor(private readonly ch: ClickHouse) {}

  async bySpanId(spanId: string): Promise<AsmRecord | undefined> {
    this.queries++;
    const rows = await queryRows<AsmRecord>(this.ch, `SELECT ${ASM_COLUMNS} FROM ${liveSpans('span_id = {id:String}')}`, { id: spanId });
    return latestVersions(rows)[0];
  }

  /** Full rows for the given span ids, all starting inside `w`. */
  async records(ids: string[], w: TimeWindow): Promise<SpanRecord[]> {
    if (ids.length === 0) return [];
    this.queries++;
    const rows = await queryRows<SpanRecord>(
      this.ch,
      `SELECT ${SPAN_COLUMNS} FROM ${liveSpans(`start_time >= ${usTime(w.from)} AND start_time <= ${usTime(w.to)} AND span_id IN {ids:Array(String)}`, { fromUs: w.from, toUs: w.to })}`,
      { ids },
    );
    return latestVersions(rows);
  }

  async find(keys: SearchKeys, w: TimeWindow, limit: number): Promise<AsmRecord[]> {
    const params: Record<string, unknown> = {};
    const or: string[] = [];
    const nums = (l: number[]): string => l.map(int).join(',');
    if (keys.syscallIds.length) {
      const ids = nums(keys.syscallIds);
      or.push(`syscall_trace_id_req IN (${ids})`, `syscall_trace_id_resp IN (${ids})`, `handoff_trace_id IN (${ids})`);
    }
    if (keys.tcpSeqs.length) or.push(`req_tcp_seq IN (${nums(keys.tcpSeqs)})`);
    if (keys.xRequestIds.length) {
      params.xrid = keys.xRequestIds;
      or.push('x_request_id_req IN {xrid:Array(String)}', 'x_request_id_resp IN {xrid:Array(String)}');
    }
    if (keys.traceIds.length) {
      params.tids = keys.traceIds;
      or.push('trace_id IN {tids:Array(String)}');
    }
    // Thread probes of one thread are merged into one envelope (a superset; the rules sort it out),
    // which keeps the statement small when a round expands dozens of spans of the same thread.
    const merged = new Map<string, { side: 'client' | 'server'; agent: string; host: number; proc: number; pid: number; tids: number[]; anyThread: boolean; lo: number; hi: number }>();
    for (const [side, list] of [['client', keys.inside], ['server', keys.containing]] as const) {
      for (const p of list) {
        const k = `${side}|${p.agent_id}|${p.host_id}|${p.process_id}|${p.pid}|${p.anyThread ? '*' : p.tids.join(',')}`;
        const m = merged.get(k);
        // inside: children start after the earliest server start and end before the latest end;
        // containing: a parent starts before the latest child start and ends after the earliest child end.
        const lo = side === 'client' ? p.from : p.to;
        const hi = side === 'client' ? p.to : p.from;
        if (!m) merged.set(k, { side, agent: p.agent_id, host: p.host_id, proc: p.process_id, pid: p.pid, tids: p.tids, anyThread: p.anyThread === true, lo, hi });
        else {
          m.lo = Math.min(m.lo, lo);
          m.hi = Math.max(m.hi, hi);
        }
      }
    }
    [...merged.values()].forEach((m, i) => {
      params[`pa${i}`] = m.agent;
      const time = m.side === 'client' ? `start_time >= ${usTime(m.lo)} AND end_time <= ${usTime(m.hi)}` : `start_time <= ${usTime(m.hi)} AND end_time >= ${usTime(m.lo)}`;
      // host_id + process_id follow the minute in the sorting key: the probe reads one process's granules.
      const proc = m.proc !== 0 ? `host_id = ${int(m.host)} AND process_id = ${int(m.proc)} AND ` : '';
      const thread = m.anyThread ? '' : `tid IN (${nums(m.tids)}) AND `;
      or.push(`(${proc}side = '${m.side}' AND agent_id = {pa${i}:String} AND pid = ${int(m.pid)} AND ${thread}${time})`);
    });
    for (const p of keys.udp) {
      or.push(`(l4_protocol = 'udp' AND request_id = ${int(p.request_id)} AND client_port = ${int(p.client_port)} AND server_port = ${int(p.server_port)})`);
    }
    if (or.length === 0) return [];
    this.queries++;
    const sql = `SELECT ${ASM_COLUMNS} FROM ${liveSpans(`start_time >= ${usTime(w.from)} AND start_time <= ${usTime(w.to)} AND (${or.join(' OR ')})`, { fromUs: w.from, toUs: w.to })}
      LIMIT ${int(limit)}`;
    return latestVersions(await queryRows<AsmRecord>(this.ch, sql, params));
  }

  /**
   * Every eBPF span of one thread starting inside `w`, ordered by start, at most `limit`: the sample
   * the `timing` rule learns from and decides on (functions/query/timing.ts). Reads one process's
   * granules of the window (host and process follow the minute in the sorting key).
   */
  async sample(p: ThreadProbe, w: TimeWindow, limit: number): Promise<AsmRecord[]> {
    this.queries++;
    const proc = p.process_id !== 0 ? `host_id = ${int(p.host_id)} AND process_id = ${int(p.process_id)} AND ` : '';
    const where = `start_time >= ${usTime(w.from)} AND start_time <= ${usTime(w.to)} AND ${proc}signal_source = 'ebpf' AND agent_id = {a:String} AND pid = ${int(p.pid)} AND tid = ${int(p.tid)}`;
    const rows = await queryRows<AsmRecord>(this.ch, `SELECT ${ASM_COLUMNS} FROM ${liveSpans(where, { fromUs: w.from, toUs: w.to })} ORDER BY start_time_us LIMIT ${int(limit)}`, { a: p.agent_id });
    return latestVersions(rows).sort((x, y) => x.start_time_us - y.start_time_us);
  }
}

/**
 * Assemble from a span and read the members in full: what the API serves. Undefined when the span
 * does not exist.
 */
export async function assembleRecords(source: ClickHouseSpanSource, spanId: string, options: Partial<AssembleOptions> = {}): Promise<AssembledTrace<SpanRecord> | undefined> {
  const t = await assembleTrace(source, spanId, options);
  if (!t) return undefined;
  let from = Infinity;
  let to = -Infinity;
  for (const s of t.spans) {
    from = Math.min(from, s.span.start_time_us);
    to = Math.max(to, s.span.start_time_us);
  }
  const full = new Map((await source.records(t.spans.map((s) => s.span.span_id), { from, to })).map((r) => [r.span_id, r]));
  const spans = t.spans.flatMap((s) => {
    const r = full.get(s.span.span_id);
    return r ? [{ ...s, span: r }] : [];
  });
  return { ...t, spans };
}

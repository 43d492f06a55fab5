/**
 * The {@link SpanSource} of trace assembly over `riptide.spans`: one query per search round, every key
 * of the round OR-ed together inside the time window (the window prunes by the table's primary key,
 * the bloom-filter indexes on the id columns skip most of what is left).
 *
 * Numbers are validated integers written into the SQL; strings always go through query parameters.
 * Duplicates of ReplacingMergeTree are resolved here (highest `_version` wins, tombstones hide), which
 * is cheaper than FINAL for the handful of rows a round returns.
 */
import type { ClickHouse } from '../storage/clickhouse.ts';
import { queryRows } from '../storage/clickhouse.ts';
import type { SearchKeys, SpanSource, TimeWindow } from './assemble.ts';
import type { SpanRecord } from './span.ts';
import { SPAN_COLUMNS } from './span.ts';

/** An integer safe to inline in SQL (throws otherwise: it can only be a bug upstream). */
export function int(n: number): string {
  if (!Number.isSafeInteger(n)) throw new TypeError(`not an integer: ${n}`);
  return String(n);
}

export function usTime(us: number): string {
  return `fromUnixTimestamp64Micro(toInt64(${int(Math.trunc(us))}))`;
}

/** Keep the winning version of each span id; drop tombstoned ones. */
export function latestVersions(rows: SpanRecord[]): SpanRecord[] {
  const best = new Map<string, SpanRecord>();
  for (const r of rows) {
    const b = best.get(r.span_id);
    if (!b || r._version > b._version || (r._version === b._version && r._deleted > b._deleted)) best.set(r.span_id, r);
  }
  return [...best.values()].filter((r) => r._deleted === 0);
}

export class ClickHouseSpanSource implements SpanSource<SpanRecord> {
  /** Queries issued (for metrics and benchmarks). */
  queries = 0;
  constructor(
    private readonly ch: ClickHouse,
    private readonly table = 'riptide.spans',
  ) {}

  async bySpanId(spanId: string): Promise<SpanRecord | undefined> {
    this.queries++;
    const rows = await queryRows<SpanRecord>(this.ch, `SELECT ${SPAN_COLUMNS} FROM ${this.table} WHERE span_id = {id:String}`, { id: spanId });
    return latestVersions(rows)[0];
  }

  async find(keys: SearchKeys, w: TimeWindow, limit: number): Promise<SpanRecord[]> {
    const params: Record<string, unknown> = {};
    // One branch per indexed column: a skip index only helps a condition it covers alone, and an OR
    // across columns would read every granule of the window. The branches run as one UNION ALL.
    const branches: string[] = [];
    const nums = (l: number[]): string => l.map(int).join(',');
    if (keys.syscallIds.length) {
      branches.push(`syscall_trace_id_req IN (${nums(keys.syscallIds)})`, `syscall_trace_id_resp IN (${nums(keys.syscallIds)})`);
    }
    if (keys.tcpSeqs.length) branches.push(`req_tcp_seq IN (${nums(keys.tcpSeqs)})`, `resp_tcp_seq IN (${nums(keys.tcpSeqs)})`);
    if (keys.xRequestIds.length) {
      params.xrid = keys.xRequestIds;
      branches.push('x_request_id_req IN {xrid:Array(String)}', 'x_request_id_resp IN {xrid:Array(String)}');
    }
    if (keys.traceIds.length) {
      params.tids = keys.traceIds;
      branches.push('trace_id IN {tids:Array(String)}');
    }
    // Thread probes: the tid bloom filter finds the thread's granules, the rest is checked on them.
    // Probes of one thread are merged into one envelope (a superset; the rules sort it out), which
    // keeps the statement small when a round expands dozens of spans of the same thread.
    const threadOr: string[] = [];
    const threadTids = new Set<number>();
    const merged = new Map<string, { side: 'client' | 'server'; agent: string; host: number; proc: number; pid: number; tids: number[]; lo: number; hi: number }>();
    for (const [side, list] of [['client', keys.inside], ['server', keys.containing]] as const) {
      for (const p of list) {
        const k = `${side}|${p.agent_id}|${p.host_id}|${p.process_id}|${p.pid}|${p.tids.join(',')}`;
        const m = merged.get(k);
        // inside: children start after the earliest server start and end before the latest end;
        // containing: a parent starts before the latest child start and ends after the earliest child end.
        const lo = side === 'client' ? p.from : p.to;
        const hi = side === 'client' ? p.to : p.from;
        if (!m) merged.set(k, { side, agent: p.agent_id, host: p.host_id, proc: p.process_id, pid: p.pid, tids: p.tids, lo, hi });
        else {
          m.lo = Math.min(m.lo, lo);
          m.hi = Math.max(m.hi, hi);
        }
      }
    }
    [...merged.values()].forEach((m, i) => {
      params[`pa${i}`] = m.agent;
      for (const t of m.tids) threadTids.add(t);
      const time =
        m.side === 'client'
          ? `start_time >= ${usTime(m.lo)} AND end_time <= ${usTime(m.hi)}`
          : `start_time <= ${usTime(m.hi)} AND end_time >= ${usTime(m.lo)}`;
      // host_id + process_id lead the sorting key after the minute: the probe reads one process's granules.
      const proc = m.proc !== 0 ? `host_id = ${int(m.host)} AND process_id = ${int(m.proc)} AND ` : '';
      threadOr.push(`(${proc}side = '${m.side}' AND agent_id = {pa${i}:String} AND pid = ${int(m.pid)} AND tid IN (${nums(m.tids)}) AND ${time})`);
    });
    if (threadOr.length) branches.push(`tid IN (${nums([...threadTids])}) AND (${threadOr.join(' OR ')})`);
    if (keys.udp.length) {
      const ids = [...new Set(keys.udp.map((p) => p.request_id))];
      const or = keys.udp.map((p) => `(request_id = ${int(p.request_id)} AND client_port = ${int(p.client_port)} AND server_port = ${int(p.server_port)})`);
      branches.push(`l4_protocol = 'udp' AND request_id IN (${nums(ids)}) AND (${or.join(' OR ')})`);
    }
    if (branches.length === 0) return [];
    this.queries++;
    const window = `start_time >= ${usTime(w.from)} AND start_time <= ${usTime(w.to)}`;
    const sql = branches.map((b) => `SELECT ${SPAN_COLUMNS} FROM ${this.table} WHERE ${window} AND ${b} LIMIT ${int(limit)}`).join('\nUNION ALL\n');
    return latestVersions(await queryRows<SpanRecord>(this.ch, sql, params));
  }
}

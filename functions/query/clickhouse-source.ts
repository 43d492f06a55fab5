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
    const or: string[] = [];
    const nums = (l: number[]): string => l.map(int).join(',');
    if (keys.syscallIds.length) or.push(`syscall_trace_id_req IN (${nums(keys.syscallIds)}) OR syscall_trace_id_resp IN (${nums(keys.syscallIds)})`);
    if (keys.tcpSeqs.length) or.push(`req_tcp_seq IN (${nums(keys.tcpSeqs)}) OR resp_tcp_seq IN (${nums(keys.tcpSeqs)})`);
    if (keys.xRequestIds.length) {
      params.xrid = keys.xRequestIds;
      or.push('x_request_id_req IN {xrid:Array(String)} OR x_request_id_resp IN {xrid:Array(String)}');
    }
    if (keys.traceIds.length) {
      params.tids = keys.traceIds;
      or.push('trace_id IN {tids:Array(String)}');
    }
    keys.inside.forEach((p, i) => {
      params[`ia${i}`] = p.agent_id;
      or.push(`(side = 'client' AND agent_id = {ia${i}:String} AND pid = ${int(p.pid)} AND tid IN (${nums(p.tids)}) AND start_time >= ${usTime(p.from)} AND end_time <= ${usTime(p.to)})`);
    });
    keys.containing.forEach((p, i) => {
      params[`ca${i}`] = p.agent_id;
      or.push(`(side = 'server' AND agent_id = {ca${i}:String} AND pid = ${int(p.pid)} AND start_time <= ${usTime(p.from)} AND end_time >= ${usTime(p.to)})`);
    });
    for (const p of keys.udp) {
      or.push(`(l4_protocol = 'udp' AND request_id = ${int(p.request_id)} AND client_port = ${int(p.client_port)} AND server_port = ${int(p.server_port)})`);
    }
    if (or.length === 0) return [];
    this.queries++;
    const sql = `SELECT ${SPAN_COLUMNS} FROM ${this.table}
      WHERE start_time >= ${usTime(w.from)} AND start_time <= ${usTime(w.to)} AND (${or.join(' OR ')})
      LIMIT ${int(limit)}`;
    return latestVersions(await queryRows<SpanRecord>(this.ch, sql, params));
  }
}

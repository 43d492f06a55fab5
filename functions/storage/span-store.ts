/**
 * Writes span rows and tag dictionary rows, and says how to read spans back.
 *
 * `riptide.spans` gets every span once: the span builder's rows of a slot whose pairing window has
 * closed (`insertSpans` with the token `settled/<agent>/<slot>`, then `recordSettledSlot`), and
 * OTLP spans. Until a slot settles its rows go to `riptide.spans_recent` (`insertRecentSpans`),
 * rewritten as neighbours arrive and collapsed by ReplacingMergeTree(_version, _deleted) under
 * FINAL. {@link liveSpans} is the union a reader wants: settled rows, plus the recent rows of slots
 * not settled yet. Inserts carry a deduplication token, so a retried insert is dropped by
 * ClickHouse itself.
 */
import type { SpanRow } from '../span-builder/span-row.ts';
import type { ClickHouse } from './clickhouse.ts';
import { TAG_KINDS, tagId } from '../tag-encoder/tag-id.ts';
import type { TagKind } from '../tag-encoder/tag-id.ts';

const isTagKind = (k: string): k is TagKind => (TAG_KINDS as readonly string[]).includes(k);

/** DateTime64(6) literal from microseconds: "seconds.micros", parsed exactly by ClickHouse. */
export function dt64(us: number): string {
  const s = Math.floor(us / 1e6);
  return `${s}.${String(us - s * 1e6).padStart(6, '0')}`;
}

export type SpanInsertRow = Omit<SpanRow, 'start_time_us' | 'end_time_us'> & { start_time: string; end_time: string };

export function toInsertRow(r: SpanRow): SpanInsertRow {
  const { start_time_us, end_time_us, ...rest } = r;
  return { ...rest, start_time: dt64(start_time_us), end_time: dt64(end_time_us) };
}

export interface TagNameRow {
  id: number;
  /** The stable 53-bit hash of kind:key (custom_tags.id), whatever id source made `id`; filled in when absent. */
  entity?: number;
  kind: string;
  key: string;
  name: string;
  parent_ids: Record<string, number>;
  /** Unix seconds. */
  updated_at: number;
}

export interface TagLabelRow {
  id: number;
  kind: string;
  source: 'label' | 'annotation' | 'host';
  key: string;
  value: string;
  updated_at: number;
}

export interface CustomTagRow {
  id: number;
  kind: string;
  name: string;
  key: string;
  value: string;
  /** Unix ms. */
  updated_at: number;
  _deleted: number;
}

const INSERT_SETTINGS = { date_time_input_format: 'best_effort' } as const;

/** Rows into `riptide.spans` (settled slots, OTLP): each span once; marks their minutes written. */
export async function insertSpans(ch: ClickHouse, rows: readonly SpanRow[], dedupToken?: string): Promise<void> {
  if (rows.length === 0) return;
  await insertInto(ch, 'riptide.spans', rows, dedupToken);
  await recordSpanWrites(ch, rows);
}

/** Rows of a slot not settled yet into `riptide.spans_recent` (versions and tombstones allowed). */
export async function insertRecentSpans(ch: ClickHouse, rows: readonly SpanRow[], dedupToken?: string): Promise<void> {
  if (rows.length === 0) return;
  await insertInto(ch, 'riptide.spans_recent', rows, dedupToken);
}

async function insertInto(ch: ClickHouse, table: string, rows: readonly SpanRow[], dedupToken: string | undefined): Promise<void> {
  await ch.client.insert({
    table,
    values: rows.map(toInsertRow),
    format: 'JSONEachRow',
    clickhouse_settings: dedupToken ? { ...INSERT_SETTINGS, insert_deduplication_token: dedupToken } : INSERT_SETTINGS,
  });
}

/**
 * Mark the minutes these spans fall in as written now (the server's clock), after the spans
 * themselves: a service-map rollup of such a minute computed before this write is stale from now on.
 */
export async function recordSpanWrites(ch: ClickHouse, rows: readonly Pick<SpanRow, 'start_time_us'>[]): Promise<void> {
  const minutes = new Set<number>();
  for (const r of rows) minutes.add(Math.floor(r.start_time_us / 60e6) * 60);
  if (minutes.size === 0) return;
  await ch.client.command({
    query: "INSERT INTO riptide.span_writes SELECT toDateTime(arrayJoin({minutes:Array(UInt32)}), 'UTC'), now64(3)",
    query_params: { minutes: [...minutes] },
  });
}

export async function insertTagNames(ch: ClickHouse, rows: readonly TagNameRow[]): Promise<void> {
  if (rows.length === 0) return;
  const values = rows.map((r) => (r.entity !== undefined || !isTagKind(r.kind) ? r : { ...r, entity: tagId(r.kind, r.key) }));
  await ch.client.insert({ table: 'riptide.tag_names', values, format: 'JSONEachRow' });
}

export async function insertTagLabels(ch: ClickHouse, rows: readonly TagLabelRow[]): Promise<void> {
  if (rows.length === 0) return;
  await ch.client.insert({ table: 'riptide.tag_labels', values: rows as TagLabelRow[], format: 'JSONEachRow' });
}

export async function insertCustomTags(ch: ClickHouse, rows: readonly CustomTagRow[]): Promise<void> {
  if (rows.length === 0) return;
  await ch.client.insert({
    table: 'riptide.custom_tags',
    values: rows.map((r) => ({ ...r, updated_at: (r.updated_at / 1000).toFixed(3) })),
    format: 'JSONEachRow',
  });
}

export interface ProcessedSlotRow {
  agent_id: string;
  slot: number;
  slot_seconds: number;
  objects: number;
  spans: number;
  processed_at: number;
}

export async function recordProcessedSlot(ch: ClickHouse, row: ProcessedSlotRow): Promise<void> {
  await ch.client.insert({ table: 'riptide.processed_slots', values: [row], format: 'JSONEachRow' });
}

export interface SettledSlotRow {
  agent_id: string;
  slot: number;
  slot_seconds: number;
  objects: number;
  spans: number;
  /** Unix seconds. */
  settled_at: number;
}

/** After its rows are in `riptide.spans`: the slot is settled (never written again, hidden in spans_recent). */
export async function recordSettledSlot(ch: ClickHouse, row: SettledSlotRow): Promise<void> {
  await ch.client.insert({ table: 'riptide.settled_slots', values: [{ ...row, slot_start: row.slot * row.slot_seconds }], format: 'JSONEachRow' });
}

/** Which of `slots` (one agent, one slot length) are settled. */
export async function settledSlots(ch: ClickHouse, agentId: string, slotSeconds: number, slots: readonly number[]): Promise<Set<number>> {
  if (slots.length === 0) return new Set();
  let lo = Infinity;
  let hi = -Infinity;
  for (const s of slots) {
    lo = Math.min(lo, s);
    hi = Math.max(hi, s);
  }
  const rows = await ch.client.query({
    // slot_start leads the sorting key: the range reads a few granules.
    query: `SELECT DISTINCT slot FROM riptide.settled_slots
            WHERE slot_start >= toDateTime({lo:UInt64}, 'UTC') AND slot_start <= toDateTime({hi:UInt64}, 'UTC')
              AND agent_id = {agent:String} AND slot IN {slots:Array(UInt64)}`,
    query_params: { lo: lo * slotSeconds, hi: hi * slotSeconds, agent: agentId, slots: [...new Set(slots)] },
    format: 'JSONEachRow',
  });
  return new Set(((await rows.json()) as Array<{ slot: number | string }>).map((r) => Number(r.slot)));
}

/** How far back readers look in `riptide.spans_recent` (its TTL): a slot settles seconds after its window closes. */
export const RECENT_HOURS = 1;

export interface LiveSpansOptions {
  /** Read the settled rows with FINAL (a backstop for rows written before migration 0005; default false). */
  final?: boolean;
  /** Microseconds: bounds the lookup of settled slots to the caller's range (recommended). */
  fromUs?: number;
  toUs?: number;
}

/**
 * A table expression (`FROM ${liveSpans(where)}`) with every span once, in its latest version: the
 * settled rows of `riptide.spans`, plus the rows of `riptide.spans_recent` (FINAL, tombstones
 * dropped) of slots that have not settled. `where` is a predicate over span columns applied to both
 * (typically the time range), so each side prunes by its own sorting key. A slot settling between
 * the two reads can show a span twice for that instant; readers that return spans keep one row per
 * span id.
 */
export function liveSpans(where = '1', o: LiveSpansOptions = {}): string {
  const settled = `SELECT * FROM riptide.spans${o.final ? ' FINAL' : ''} WHERE (${where})`;
  // A range that ended before the recent horizon has nothing unsettled to read.
  if (o.toUs !== undefined && o.toUs < (Date.now() - RECENT_HOURS * 3600e3) * 1000) return `(${settled})`;
  const settledRange = [`slot_start >= now() - INTERVAL ${RECENT_HOURS + 1} HOUR`];
  // A span starts inside its slot; 3600 s covers the longest slot the agent takes.
  if (o.fromUs !== undefined) settledRange.push(`slot_start >= toDateTime(${Math.max(0, Math.floor(o.fromUs / 1e6) - 3600)}, 'UTC')`);
  if (o.toUs !== undefined) settledRange.push(`slot_start <= toDateTime(${Math.max(0, Math.ceil(o.toUs / 1e6))}, 'UTC')`);
  return `(${settled}
    UNION ALL
    SELECT * FROM riptide.spans_recent FINAL
    WHERE (${where}) AND _deleted = 0 AND start_time >= now64(6) - INTERVAL ${RECENT_HOURS} HOUR
      AND (agent_id, slot) GLOBAL NOT IN (SELECT agent_id, slot FROM riptide.settled_slots WHERE ${settledRange.join(' AND ')}))`;
}

/**
 * Writes span rows and tag dictionary rows. Inserts carry a deduplication token derived from their
 * content's identity (agent, slot, window version, kind), so a retried insert is dropped by
 * ClickHouse itself; ReplacingMergeTree(_version, _deleted) makes anything that slips through
 * (a re-run with a different token) collapse on merge and under FINAL.
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

export async function insertSpans(ch: ClickHouse, rows: readonly SpanRow[], dedupToken?: string): Promise<void> {
  if (rows.length === 0) return;
  await ch.client.insert({
    table: 'riptide.spans',
    values: rows.map(toInsertRow),
    format: 'JSONEachRow',
    clickhouse_settings: dedupToken ? { ...INSERT_SETTINGS, insert_deduplication_token: dedupToken } : INSERT_SETTINGS,
  });
  await recordSpanWrites(ch, rows);
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

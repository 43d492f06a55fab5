/**
 * The one way span rows reach ClickHouse, whatever produced them — batches built by the functions
 * (captured spans) or OTLP ingest in the query server (spans that name their service): tag ids from
 * one {@link TagEncoder} (one id source, so a service has one id), the dictionary rows recorded
 * before any span that uses them, then the spans, at most {@link MAX_DAYS_PER_INSERT} days per insert.
 *
 * @example
 *   const writer = new SpanWriter({ ch, encoder: new TagEncoder({ ids: await DenseTagIds.load(ch) }) });
 *   await writer.encodeCaptured(rows, batch.host, batch.processes);
 *   await writer.settled(rows, `settled/${agentId}/${slot}`);
 *   await writer.ingestReported(otlpRows, whoEachSays);   // OTLP: encode + write, same ids
 */
import type { ProcessInfo } from '../../agent/capture/message.ts';
import type { SpanRow } from '../span-builder/span-row.ts';
import { TagEncoder } from '../tag-encoder/tag-encoder.ts';
import type { ReportedTags, TagRows } from '../tag-encoder/tag-encoder.ts';
import type { ClickHouse } from './clickhouse.ts';
import { insertRecentSpans, insertSpans, insertTagLabels, insertTagNames } from './span-store.ts';

/**
 * ClickHouse refuses an insert touching more than 100 partitions (`max_partitions_per_insert_block`);
 * spans are partitioned by day, so one insert takes at most this many days (a long TTL lets an OTLP
 * request span more).
 */
export const MAX_DAYS_PER_INSERT = 50;

/** Rows grouped into inserts of at most `maxDays` distinct days each, oldest first. */
export function chunkByDay(rows: readonly SpanRow[], maxDays = MAX_DAYS_PER_INSERT): SpanRow[][] {
  const byDay = new Map<number, SpanRow[]>();
  for (const r of rows) {
    const d = Math.floor(r.start_time_us / 86400e6);
    let list = byDay.get(d);
    if (!list) byDay.set(d, (list = []));
    list.push(r);
  }
  const days = [...byDay.keys()].sort((x, y) => x - y);
  const out: SpanRow[][] = [];
  for (let i = 0; i < days.length; i += maxDays) out.push(days.slice(i, i + maxDays).flatMap((d) => byDay.get(d) ?? []));
  return out;
}

export interface SpanWriterOptions {
  ch: ClickHouse;
  /** Default: stateless hash ids ({@link TagEncoder}'s default); the runtimes pass the id registry. */
  encoder?: TagEncoder;
}

/** The tag id columns of a span row. */
const ID_COLUMNS = ['host_id', 'process_id', 'container_id', 'pod_id', 'service_id', 'node_id', 'namespace_id', 'peer_pod_id', 'peer_service_id'] as const;

/** Rewrite ids a flush found claimed already (minted → the registry's) in rows and dictionary rows. */
export function applyRemap(remap: ReadonlyMap<number, number>, spans: SpanRow[], t: TagRows): void {
  if (remap.size === 0) return;
  const to = (id: number): number => remap.get(id) ?? id;
  for (const s of spans) for (const c of ID_COLUMNS) s[c] = to(s[c]);
  for (const n of t.names) {
    n.id = to(n.id);
    for (const k of Object.keys(n.parent_ids)) n.parent_ids[k] = to(n.parent_ids[k]);
  }
  for (const l of t.labels) l.id = to(l.id);
}

export class SpanWriter {
  readonly ch: ClickHouse;
  readonly encoder: TagEncoder;
  /** Encode → flush ids → dictionary rows, one caller at a time: rows must not use an id another caller's flush is remapping. */
  private lock: Promise<unknown> = Promise.resolve();

  constructor(o: SpanWriterOptions) {
    this.ch = o.ch;
    this.encoder = o.encoder ?? new TagEncoder();
  }

  /** Tag ids of captured spans (from the batch's host and processes), their dictionary rows written. */
  async encodeCaptured(spans: SpanRow[], host: string, processes: readonly ProcessInfo[]): Promise<void> {
    await this.encodeWith(spans, () => this.encoder.encode(spans, host, processes));
  }

  /** Tag ids of spans that name their service (`reported[i]` for `spans[i]`), their dictionary rows written. */
  async encodeReported(spans: SpanRow[], reported: readonly ReportedTags[]): Promise<void> {
    await this.encodeWith(spans, () => this.encoder.encodeReported(spans, reported));
  }

  /** Encode and write reported spans to riptide.spans; returns the rows written. */
  async ingestReported(spans: SpanRow[], reported: readonly ReportedTags[], onChunk?: (rows: number) => void): Promise<number> {
    await this.encodeReported(spans, reported);
    return this.settled(spans, undefined, onChunk);
  }

  /** Rows (tag ids set) into riptide.spans: each once. `token` deduplicates a retried insert. */
  async settled(spans: readonly SpanRow[], token?: string, onChunk?: (rows: number) => void): Promise<number> {
    const chunks = chunkByDay(spans);
    for (let i = 0; i < chunks.length; i++) {
      await insertSpans(this.ch, chunks[i], token === undefined || chunks.length === 1 ? token : `${token}/${i}`);
      onChunk?.(chunks[i].length);
    }
    return spans.length;
  }

  /** Rows (tag ids set) of a slot not settled yet into riptide.spans_recent. */
  async recent(spans: readonly SpanRow[], token: string): Promise<void> {
    await insertRecentSpans(this.ch, spans, token);
  }

  /** Ids first (a restart must not hand them out again, another writer's claim wins), then the names and labels that resolve them. */
  private encodeWith(spans: SpanRow[], encode: () => TagRows): Promise<void> {
    const run = this.lock.then(async () => {
      const t = encode();
      const remap = (await this.encoder.ids.flush?.(this.ch)) ?? new Map<number, number>();
      applyRemap(remap, spans, t);
      await insertTagNames(this.ch, t.names);
      await insertTagLabels(this.ch, t.labels);
    });
    this.lock = run.catch(() => undefined);
    return run;
  }
}

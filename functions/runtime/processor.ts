/**
 * The pure handler around the span builder and tag encoder: given one batch object key, load the
 * slot window of its agent (previous, same and next slot, all parts), build the rows the slot owns,
 * encode tags, and insert — then do the same for the neighbouring slots that exist, because their
 * windows just gained a neighbour. Re-running any of this is harmless (see docs/FUNCTIONS.md).
 *
 * Malformed objects are moved to `quarantine/<key>` with a `<key>.reason.json` note, counted, and
 * left out of every window; processing carries on.
 *
 * @example
 *   const p = new BatchProcessor({ ch, store, keys, decode });
 *   const result = await p.processBatch('batches/node-1/000340000000/part-0000.rtb');
 */
import type { Batch } from '../../agent/shipping/batch.ts';
import { metrics } from '../../agent/metrics.ts';
import { SpanBuilder } from '../span-builder/span-builder.ts';
import type { SpanBuildStats, SpanBuilderOptions } from '../span-builder/span-builder.ts';
import type { SpanRow } from '../span-builder/span-row.ts';
import { TagEncoder } from '../tag-encoder/tag-encoder.ts';
import type { ClickHouse } from '../storage/clickhouse.ts';
import { insertSpans, insertTagLabels, insertTagNames, recordProcessedSlot } from '../storage/span-store.ts';
import type { BatchDecoder, BatchKeyScheme, ObjectStorePort } from './ports.ts';

const received = metrics.counter('riptide_functions_received_total', 'Batch objects handed to the functions');
const sent = metrics.counter('riptide_functions_sent_total', 'Span rows written to ClickHouse');
const errorsTotal = metrics.counter('riptide_functions_errors_total', 'Slot windows that failed to process (retried later)');
const dropped = metrics.counter('riptide_functions_dropped_total', 'Batch objects dropped, by reason (quarantined = malformed)');
const slotsTotal = metrics.counter('riptide_functions_slots_processed_total', 'Slot windows processed (a batch touches up to three)');

export const QUARANTINE_PREFIX = 'quarantine/';

export interface SlotRows {
  agentId: string;
  slot: number;
  slotSeconds: number;
  /** Batch objects in the window (the rows' `_version`). */
  objects: number;
  spans: SpanRow[];
  tombstones: SpanRow[];
  stats: SpanBuildStats;
  /** Host name and process metadata from the window's batches, for the tag encoder. */
  hostName: string;
  processes: Batch['processes'];
}

export interface ProcessResult {
  key: string;
  status: 'processed' | 'quarantined' | 'ignored';
  reason?: string;
  slots: Array<{ slot: number; objects: number; spans: number; tombstones: number }>;
}

export interface BatchProcessorOptions {
  ch: ClickHouse;
  store: ObjectStorePort;
  keys: BatchKeyScheme;
  decode: BatchDecoder;
  builder?: SpanBuilderOptions;
  encoder?: TagEncoder;
  /**
   * How far around a slot a request looks for its response, in seconds (default 5): the window
   * spans max(1, ceil(windowSeconds / slotSeconds)) slots on each side, so short slots (1 s for
   * freshness) still pair a 3 s request.
   */
  windowSeconds?: number;
  /**
   * Decoded batches kept for the next windows, in messages (default 500k; 0 disables): with short
   * slots one batch is read by 2r+1 windows, and decoding dominates otherwise.
   */
  cacheMessages?: number;
  log?: (line: string) => void;
}

/** Neighbour slots on each side of a window. */
export function windowRadius(slotSeconds: number, windowSeconds = 5): number {
  return Math.max(1, Math.min(60, Math.ceil(windowSeconds / Math.max(1, slotSeconds))));
}

/** One quarantine note, stored beside the moved object. */
export interface QuarantineReason {
  key: string;
  reason: string;
  error: string;
  at: string;
}

export class BatchProcessor {
  readonly builder: SpanBuilder;
  readonly encoder: TagEncoder;
  private readonly log: (line: string) => void;
  private readonly decoded = new Map<string, Batch>();
  private decodedMessages = 0;

  constructor(private readonly o: BatchProcessorOptions) {
    this.builder = new SpanBuilder(o.builder);
    this.encoder = o.encoder ?? new TagEncoder();
    this.log = o.log ?? ((l) => process.stderr.write(l + '\n'));
  }

  /** Handle one "object created": the owner slot, then its neighbours (their windows changed). */
  async processBatch(key: string): Promise<ProcessResult> {
    const info = this.o.keys.parse(key);
    if (info === null) return { key, status: 'ignored', reason: 'not a batch key', slots: [] };
    received.inc();
    const own = await this.loadSlot(info.agentId, info.slot, info.slotSeconds);
    if (!own.keys.includes(key)) {
      // Quarantined while loading (or gone): nothing to do for this key.
      const q = own.quarantined.find((x) => x.key === key);
      if (q) return { key, status: 'quarantined', reason: q.reason, slots: [] };
      return { key, status: 'ignored', reason: 'object not found', slots: [] };
    }
    const result: ProcessResult = { key, status: 'processed', slots: [] };
    const cache = new Map<number, LoadedSlot>([[info.slot, own]]);
    // The owner slot first, then every slot whose window holds this one (their windows just grew).
    const r = windowRadius(info.slotSeconds, this.o.windowSeconds);
    const order = [info.slot];
    for (let d = 1; d <= r; d++) order.push(info.slot - d, info.slot + d);
    for (const slot of order) {
      const rows = await this.slotRows(info.agentId, slot, info.slotSeconds, cache);
      if (rows === null) continue;
      await this.write(rows);
      result.slots.push({ slot, objects: rows.objects, spans: rows.spans.length, tombstones: rows.tombstones.length });
    }
    return result;
  }

  /**
   * Handle many new objects at once (a poll, a catch-up after a restart): every affected slot is
   * built once, in slot order, with slot loads shared and released as the builds move on — instead
   * of up to 2r+1 builds per object. Same rows as calling processBatch on each key.
   */
  async processKeys(keys: readonly string[]): Promise<ProcessResult[]> {
    const results = new Map<string, ProcessResult>();
    const groups = new Map<string, { agentId: string; slotSeconds: number; keys: Array<{ key: string; slot: number }> }>();
    for (const key of keys) {
      const info = this.o.keys.parse(key);
      if (info === null) {
        results.set(key, { key, status: 'ignored', reason: 'not a batch key', slots: [] });
        continue;
      }
      received.inc();
      const g = `${info.agentId}|${info.slotSeconds}`;
      let group = groups.get(g);
      if (!group) {
        group = { agentId: info.agentId, slotSeconds: info.slotSeconds, keys: [] };
        groups.set(g, group);
      }
      group.keys.push({ key, slot: info.slot });
    }
    for (const { agentId, slotSeconds, keys: gk } of groups.values()) {
      const cache = new Map<number, LoadedSlot>();
      const r = windowRadius(slotSeconds, this.o.windowSeconds);
      const affected = new Set<number>();
      for (const { key, slot } of gk) {
        let own = cache.get(slot);
        if (!own) {
          own = await this.loadSlot(agentId, slot, slotSeconds);
          cache.set(slot, own);
        }
        if (own.keys.includes(key)) {
          results.set(key, { key, status: 'processed', slots: [] });
          for (let d = -r; d <= r; d++) affected.add(slot + d);
        } else {
          const q = own.quarantined.find((x) => x.key === key);
          results.set(key, q ? { key, status: 'quarantined', reason: q.reason, slots: [] } : { key, status: 'ignored', reason: 'object not found', slots: [] });
        }
      }
      for (const slot of [...affected].sort((a, b) => a - b)) {
        const rows = await this.slotRows(agentId, slot, slotSeconds, cache);
        for (const s of [...cache.keys()]) if (s < slot + 1 - r) cache.delete(s); // no later window needs it
        if (rows === null) continue;
        await this.write(rows);
        const owner = gk.find((k) => k.slot === slot);
        if (owner) results.get(owner.key)?.slots.push({ slot, objects: rows.objects, spans: rows.spans.length, tombstones: rows.tombstones.length });
      }
    }
    return keys.map((k) => results.get(k) as ProcessResult);
  }

  /** Build and write the rows of one slot (used by the polling runtime, which tracks slots itself). */
  async processSlot(agentId: string, slot: number, slotSeconds: number): Promise<SlotRows | null> {
    const rows = await this.slotRows(agentId, slot, slotSeconds, new Map());
    if (rows !== null) await this.write(rows);
    return rows;
  }

  /** Compute the rows a slot owns from the store; null when the slot has no readable batch. */
  async slotRows(agentId: string, slot: number, slotSeconds: number, cache: Map<number, LoadedSlot>): Promise<SlotRows | null> {
    const load = async (s: number): Promise<LoadedSlot> => {
      let l = cache.get(s);
      if (!l) {
        l = await this.loadSlot(agentId, s, slotSeconds);
        cache.set(s, l);
      }
      return l;
    };
    const cur = await load(slot);
    if (cur.batches.length === 0) return null;
    const r = windowRadius(slotSeconds, this.o.windowSeconds);
    const prev: Batch[] = [];
    const next: Batch[] = [];
    for (let d = 1; d <= r; d++) {
      prev.push(...(await load(slot - d)).batches);
      next.push(...(await load(slot + d)).batches);
    }
    return buildSlotRows(this.builder, agentId, slot, prev, cur.batches, next);
  }

  private async write(rows: SlotRows): Promise<void> {
    try {
      const all = rows.spans.concat(rows.tombstones);
      const { names, labels } = this.encoder.encode(all, rows.hostName, rows.processes);
      // New ids are recorded before any row uses them.
      await this.encoder.ids.flush?.(this.o.ch);
      await insertTagNames(this.o.ch, names);
      await insertTagLabels(this.o.ch, labels);
      // The token names the exact input (slot + window size): a retried insert is dropped by ClickHouse.
      await insertSpans(this.o.ch, all, `${rows.agentId}/${rows.slot}/${rows.objects}`);
      await recordProcessedSlot(this.o.ch, { agent_id: rows.agentId, slot: rows.slot, slot_seconds: rows.slotSeconds, objects: rows.objects, spans: rows.spans.length, processed_at: Math.floor(Date.now() / 1000) });
      sent.inc(undefined, rows.spans.length);
      slotsTotal.inc();
    } catch (err) {
      errorsTotal.inc();
      throw err;
    }
  }

  /** Read every part of (agent, slot); quarantine what does not decode. */
  async loadSlot(agentId: string, slot: number, slotSeconds: number): Promise<LoadedSlot> {
    if (slot < 0) return { keys: [], batches: [], quarantined: [] };
    const keys = (await this.o.store.list(this.o.keys.slotPrefix(agentId, slot, slotSeconds))).filter((k) => {
      const i = this.o.keys.parse(k);
      return i !== null && i.agentId === agentId && i.slot === slot;
    });
    const out: LoadedSlot = { keys: [], batches: [], quarantined: [] };
    for (const k of keys) {
      const hit = this.decoded.get(k);
      if (hit !== undefined) {
        // Batch objects are immutable (a key always names the same content), so a decoded one is reused.
        this.decoded.delete(k);
        this.decoded.set(k, hit);
        out.keys.push(k);
        out.batches.push(hit);
        continue;
      }
      let bytes: Uint8Array;
      try {
        bytes = await this.o.store.get(k);
      } catch {
        continue; // deleted or moved meanwhile (another replica quarantined it)
      }
      try {
        const b = this.o.decode(bytes, k);
        checkBatch(b, agentId, slot);
        out.keys.push(k);
        out.batches.push(b);
        this.remember(k, b);
      } catch (err) {
        const reason = (err as { reason?: string }).reason ?? 'invalid';
        await this.quarantine(k, bytes, reason, err);
        out.quarantined.push({ key: k, reason });
      }
    }
    return out;
  }

  /** Least-recently-used decoded batches, bounded by their message count. */
  private remember(key: string, b: Batch): void {
    const limit = this.o.cacheMessages ?? 500_000;
    if (b.messages.length > limit) return;
    this.decoded.set(key, b);
    this.decodedMessages += b.messages.length;
    for (const [k, v] of this.decoded) {
      if (this.decodedMessages <= limit) break;
      this.decoded.delete(k);
      this.decodedMessages -= v.messages.length;
    }
  }

  private async quarantine(key: string, bytes: Uint8Array, reason: string, err: unknown): Promise<void> {
    const note: QuarantineReason = { key, reason, error: err instanceof Error ? err.message : String(err), at: new Date().toISOString() };
    await this.o.store.put(QUARANTINE_PREFIX + key, bytes);
    await this.o.store.put(QUARANTINE_PREFIX + key + '.reason.json', new TextEncoder().encode(JSON.stringify(note, null, 2) + '\n'));
    await this.o.store.delete(key);
    dropped.inc({ reason: 'quarantined' });
    this.log(`riptide functions: quarantined ${key}: ${note.error}`);
  }
}

export interface LoadedSlot {
  keys: string[];
  batches: Batch[];
  quarantined: Array<{ key: string; reason: string }>;
}

/** A batch whose header contradicts its key is as malformed as one that does not decode. */
function checkBatch(b: Batch, agentId: string, slot: number): void {
  if (b.agentId !== agentId || b.slot !== slot) {
    throw Object.assign(new Error(`batch says agent ${b.agentId} slot ${b.slot}, its key says ${agentId} slot ${slot}`), { reason: 'key_mismatch' });
  }
  if (!(b.slotSeconds > 0)) throw Object.assign(new Error(`slotSeconds ${b.slotSeconds}`), { reason: 'malformed' });
}

/**
 * The pure core: rows owned by `slot` given the batches of its window. No I/O, no clock.
 */
export function buildSlotRows(builder: SpanBuilder, agentId: string, slot: number, prev: readonly Batch[], cur: readonly Batch[], next: readonly Batch[]): SlotRows {
  const r = builder.build({ agentId, slot, prev, cur, next });
  const processes = [...cur, ...prev, ...next].flatMap((b) => b.processes);
  return { agentId, slot, slotSeconds: cur[0].slotSeconds, objects: prev.length + cur.length + next.length, spans: r.spans, tombstones: r.tombstones, stats: r.stats, hostName: cur[0].host, processes };
}

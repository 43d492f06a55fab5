/**
 * The pure handler around the span builder and tag encoder: given one batch object key, load the
 * slot window of its agent (previous, same and next slot, all parts), build the rows the slot owns,
 * encode tags, and insert — then do the same for the neighbouring slots that exist, because their
 * windows just gained a neighbour. Re-running any of this is harmless (see docs/FUNCTIONS.md).
 *
 * Where rows go depends on whether the slot's pairing window is still open: while it is, into
 * `riptide.spans_recent` (rewritten as neighbours arrive; the query API reads it for the freshest
 * spans); once it has closed (the window's last slot ended `settleGraceSeconds` ago), the slot
 * *settles*: its rows are built one last time from the store and written once to `riptide.spans`,
 * and the slot is listed in `riptide.settled_slots` and never written again. So plain SQL on
 * `riptide.spans` counts every span exactly once. Settling happens when processing finds a closed
 * slot, and in {@link BatchProcessor.settleDue}, which the runtimes call on a timer.
 *
 * The descriptors of plugin protocols that a newly read batch carries are recorded in
 * `riptide.protocol_descriptors` (when new or changed; storage/protocol-descriptors.ts), so the query
 * side knows them.
 *
 * Malformed objects are moved to `quarantine/<key>` with a `<key>.reason.json` note, counted, and
 * left out of every window (quarantine.ts, the one quarantine path); processing carries on.
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
import { queryRows } from '../storage/clickhouse.ts';
import { recordProcessedSlot, recordSettledSlot, settledSlots } from '../storage/span-store.ts';
import { SpanWriter } from '../storage/span-writer.ts';
import { DescriptorRecorder } from '../storage/protocol-descriptors.ts';
import { stringWords } from '../span-builder/hash.ts';
import type { BatchDecoder, BatchKeyScheme, ObjectStorePort } from './ports.ts';
import { quarantine } from './quarantine.ts';

const received = metrics.counter('riptide_functions_received_total', 'Batch objects handed to the functions');
const sent = metrics.counter('riptide_functions_sent_total', 'Span rows written to riptide.spans (settled slots: each span once)');
const recentRows = metrics.counter('riptide_functions_recent_rows_total', 'Rows written to riptide.spans_recent (unsettled slots; versions and tombstones)');
const recentSkipped = metrics.counter('riptide_functions_recent_unchanged_total', 'Rows of a rebuilt unsettled slot not rewritten because this replica already wrote them unchanged');
const settledTotal = metrics.counter('riptide_functions_settled_slots_total', 'Slots settled (their rows written to riptide.spans)');
const errorsTotal = metrics.counter('riptide_functions_errors_total', 'Slot windows that failed to process (retried later)');
const slotsTotal = metrics.counter('riptide_functions_slots_processed_total', 'Slot windows processed (a batch touches up to three)');

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
  slots: SlotResult[];
}

export interface SlotResult {
  slot: number;
  objects: number;
  spans: number;
  tombstones: number;
  /** Written to riptide.spans for good (the window had closed), not to spans_recent. */
  settled: boolean;
}

export interface BatchProcessorOptions {
  ch: ClickHouse;
  store: ObjectStorePort;
  keys: BatchKeyScheme;
  decode: BatchDecoder;
  builder?: SpanBuilderOptions;
  encoder?: TagEncoder;
  /** Where rows go (default: a SpanWriter on `ch` with `encoder`); OTLP ingest shares it under `riptide up`. */
  writer?: SpanWriter;
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
  /**
   * A slot settles this many seconds after the last slot of its window ended (default 5): time for
   * that slot's batches to be uploaded and listed. Objects arriving later no longer change it.
   */
  settleGraceSeconds?: number;
  /**
   * A slot also waits until this replica has processed a batch of the same agent from after its
   * window (proof that the window's batches were uploaded, when the agent or this runtime lags),
   * but at most this many seconds more (default 60): an agent that went quiet uploads nothing later.
   */
  settleMaxWaitSeconds?: number;
  /** The clock (unix ms; default Date.now): decides which windows have closed. */
  now?: () => number;
  /**
   * Records the plugin protocol descriptors the batches carry in riptide.protocol_descriptors, for
   * the query side (default: a recorder on `ch`; false: none).
   */
  descriptors?: DescriptorRecorder | false;
  log?: (line: string) => void;
}

/** Neighbour slots on each side of a window. */
export function windowRadius(slotSeconds: number, windowSeconds = 5): number {
  return Math.max(1, Math.min(60, Math.ceil(windowSeconds / Math.max(1, slotSeconds))));
}

/** Unix ms after which slot `slot`'s window (it and r slots after it) has closed and the slot may settle. */
export function settlesAtMs(slot: number, slotSeconds: number, windowSeconds = 5, graceSeconds = 5): number {
  return ((slot + windowRadius(slotSeconds, windowSeconds) + 1) * slotSeconds + graceSeconds) * 1000;
}

/** What a row looks like apart from its version: equal fingerprints, equal rows. */
function fingerprint(r: SpanRow): string {
  const v = r._version;
  r._version = 0;
  const json = JSON.stringify(r);
  r._version = v;
  return stringWords(json).join('.') + '.' + json.length;
}

/** A slot the runtime must settle once its window closes. */
interface OpenSlot {
  agentId: string;
  slot: number;
  slotSeconds: number;
}

export class BatchProcessor {
  readonly builder: SpanBuilder;
  readonly encoder: TagEncoder;
  readonly writer: SpanWriter;
  private readonly log: (line: string) => void;
  private readonly decoded = new Map<string, Batch>();
  private decodedMessages = 0;
  private readonly now: () => number;
  /** Slots this replica wrote to spans_recent and has not seen settle, by `agent|seconds|slot`. */
  private readonly open = new Map<string, OpenSlot>();
  /** Per open slot, the fingerprint of each row last written to spans_recent by this replica. */
  private readonly written = new Map<string, Map<string, string>>();
  /** Per `agent|seconds`, the newest slot this replica has processed a batch of. */
  private readonly newest = new Map<string, number>();
  private lastLedgerSweep = -Infinity;
  private sweeping?: Promise<number>;
  private readonly descriptors: DescriptorRecorder | undefined;

  constructor(private readonly o: BatchProcessorOptions) {
    this.builder = new SpanBuilder(o.builder);
    this.writer = o.writer ?? new SpanWriter({ ch: o.ch, encoder: o.encoder ?? new TagEncoder() });
    this.encoder = this.writer.encoder;
    this.log = o.log ?? ((l) => process.stderr.write(l + '\n'));
    this.now = o.now ?? Date.now;
    this.descriptors = o.descriptors === false ? undefined : (o.descriptors ?? new DescriptorRecorder(o.ch, { log: this.log }));
  }

  private closed(agentId: string, slot: number, slotSeconds: number): boolean {
    const at = settlesAtMs(slot, slotSeconds, this.o.windowSeconds, this.o.settleGraceSeconds);
    const now = this.now();
    if (now < at) return false;
    if (now >= at + (this.o.settleMaxWaitSeconds ?? 60) * 1000) return true;
    return (this.newest.get(`${agentId}|${slotSeconds}`) ?? -Infinity) > slot + windowRadius(slotSeconds, this.o.windowSeconds);
  }

  private saw(agentId: string, slot: number, slotSeconds: number): void {
    const k = `${agentId}|${slotSeconds}`;
    if (slot > (this.newest.get(k) ?? -Infinity)) this.newest.set(k, slot);
  }

  /**
   * Build slot `slot` from the store and write it where it belongs now: nowhere if it has settled,
   * to riptide.spans (once) if its window has closed, else to spans_recent. Null when nothing was written.
   */
  private async handleSlot(agentId: string, slot: number, slotSeconds: number, cache: Map<number, LoadedSlot>, settled: Set<number>): Promise<SlotResult | null> {
    if (settled.has(slot)) return null;
    const rows = await this.slotRows(agentId, slot, slotSeconds, cache);
    if (this.closed(agentId, slot, slotSeconds)) {
      // No readable batch: nothing to settle, unless this replica wrote recent rows of it (gone since).
      if (rows === null && !this.open.has(openKey(agentId, slotSeconds, slot))) return null;
      await this.settle(agentId, slot, slotSeconds, rows);
      settled.add(slot);
      return rows && { slot, objects: rows.objects, spans: rows.spans.length, tombstones: 0, settled: true };
    }
    if (rows === null) return null;
    await this.writeRecent(rows);
    return { slot, objects: rows.objects, spans: rows.spans.length, tombstones: rows.tombstones.length, settled: false };
  }

  /**
   * Settle every slot whose window has closed: those this replica left open, and once a minute
   * (and on the first call) those the ledger shows processed and not settled (left by a replica
   * that stopped). Returns the slots settled. The runtimes call it on a timer; one call at a time.
   */
  async settleDue(): Promise<number> {
    this.sweeping ??= this.settleDueNow().finally(() => {
      this.sweeping = undefined;
    });
    return this.sweeping;
  }

  private async settleDueNow(): Promise<number> {
    const due = new Map<string, OpenSlot>();
    for (const [k, s] of this.open) if (this.closed(s.agentId, s.slot, s.slotSeconds)) due.set(k, s);
    const t = this.now();
    if (t - this.lastLedgerSweep >= 60_000) {
      this.lastLedgerSweep = t;
      const rows = await queryRows<{ agent_id: string; slot: number | string; slot_seconds: number }>(
        this.o.ch,
        'SELECT agent_id, slot, max(slot_seconds) AS slot_seconds FROM riptide.processed_slots WHERE processed_at >= now() - INTERVAL 1 HOUR GROUP BY agent_id, slot LIMIT 1000000',
      );
      for (const r of rows) {
        const s = { agentId: r.agent_id, slot: Number(r.slot), slotSeconds: Number(r.slot_seconds) };
        if (this.closed(s.agentId, s.slot, s.slotSeconds)) due.set(openKey(s.agentId, s.slotSeconds, s.slot), s);
      }
    }
    if (due.size === 0) return 0;
    const groups = new Map<string, OpenSlot[]>();
    for (const s of due.values()) {
      const g = `${s.agentId}|${s.slotSeconds}`;
      groups.set(g, [...(groups.get(g) ?? []), s]);
    }
    let n = 0;
    for (const list of groups.values()) {
      const { agentId, slotSeconds } = list[0];
      const slots = list.map((s) => s.slot).sort((a, b) => a - b);
      const settled = await settledSlots(this.o.ch, agentId, slotSeconds, slots);
      const cache = new Map<number, LoadedSlot>();
      const r = windowRadius(slotSeconds, this.o.windowSeconds);
      for (const slot of slots) {
        const k = openKey(agentId, slotSeconds, slot);
        if (settled.has(slot)) {
          this.forget(k); // another replica settled it
          continue;
        }
        const rows = await this.slotRows(agentId, slot, slotSeconds, cache);
        for (const c of [...cache.keys()]) if (c < slot + 1 - r) cache.delete(c);
        await this.settle(agentId, slot, slotSeconds, rows);
        n++;
      }
    }
    return n;
  }

  /**
   * Write a closed slot's rows to riptide.spans, then list it as settled. The insert token names
   * the slot alone, so a retry, or a second replica settling the same slot at the same time, is
   * dropped by ClickHouse whatever it computed.
   */
  private async settle(agentId: string, slot: number, slotSeconds: number, rows: SlotRows | null): Promise<void> {
    try {
      if (rows !== null && rows.spans.length > 0) {
        await this.encode(rows, rows.spans);
        await this.writer.settled(rows.spans, `settled/${agentId}/${slot}`);
      }
      await recordSettledSlot(this.o.ch, { agent_id: agentId, slot, slot_seconds: slotSeconds, objects: rows?.objects ?? 0, spans: rows?.spans.length ?? 0, settled_at: Math.floor(Date.now() / 1000) });
    } catch (err) {
      errorsTotal.inc();
      throw err;
    }
    this.forget(openKey(agentId, slotSeconds, slot));
    sent.inc(undefined, rows?.spans.length ?? 0);
    settledTotal.inc();
    slotsTotal.inc();
  }

  private forget(k: string): void {
    this.open.delete(k);
    this.written.delete(k);
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
    this.saw(info.agentId, info.slot, info.slotSeconds);
    const cache = new Map<number, LoadedSlot>([[info.slot, own]]);
    // The owner slot first, then every slot whose window holds this one (their windows just grew).
    const r = windowRadius(info.slotSeconds, this.o.windowSeconds);
    const order = [info.slot];
    for (let d = 1; d <= r; d++) order.push(info.slot - d, info.slot + d);
    const settled = await settledSlots(this.o.ch, info.agentId, info.slotSeconds, order);
    for (const slot of order) {
      const done = await this.handleSlot(info.agentId, slot, info.slotSeconds, cache, settled);
      if (done) result.slots.push(done);
    }
    // Event-driven adapters have no timer of their own: every event also settles what is due.
    await this.settleDue();
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
          this.saw(agentId, slot, slotSeconds);
          for (let d = -r; d <= r; d++) affected.add(slot + d);
        } else {
          const q = own.quarantined.find((x) => x.key === key);
          results.set(key, q ? { key, status: 'quarantined', reason: q.reason, slots: [] } : { key, status: 'ignored', reason: 'object not found', slots: [] });
        }
      }
      const sorted = [...affected].sort((a, b) => a - b);
      const settled = await settledSlots(this.o.ch, agentId, slotSeconds, sorted);
      for (const slot of sorted) {
        const done = await this.handleSlot(agentId, slot, slotSeconds, cache, settled);
        for (const s of [...cache.keys()]) if (s < slot + 1 - r) cache.delete(s); // no later window needs it
        if (done === null) continue;
        const owner = gk.find((k) => k.slot === slot);
        if (owner) results.get(owner.key)?.slots.push(done);
      }
    }
    return keys.map((k) => results.get(k) as ProcessResult);
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

  /** Tag ids on the rows, and the dictionary rows they need, recorded before any row uses them. */
  private async encode(rows: SlotRows, all: SpanRow[]): Promise<void> {
    await this.writer.encodeCaptured(all, rows.hostName, rows.processes);
  }

  /**
   * An open slot's rows into spans_recent. Rows this replica already wrote for the slot with the
   * same content are not written again (most rebuilds change nothing: the neighbour that arrived
   * holds nothing of this slot's); a replica that has not seen the slot writes all of them.
   */
  private async writeRecent(rows: SlotRows): Promise<void> {
    const k = openKey(rows.agentId, rows.slotSeconds, rows.slot);
    try {
      const all = rows.spans.concat(rows.tombstones);
      await this.encode(rows, all);
      const before = this.written.get(k);
      const after = new Map<string, string>();
      const changed: SpanRow[] = [];
      for (const r of all) {
        const f = fingerprint(r);
        after.set(r.span_id, f);
        if (before?.get(r.span_id) !== f) changed.push(r);
      }
      // The token names the exact input (slot + window size): a retried insert is dropped by ClickHouse.
      await this.writer.recent(changed, `${rows.agentId}/${rows.slot}/${rows.objects}`);
      // The ledger (what the settle sweep of a restarted replica reads) already lists a slot this replica wrote.
      if (changed.length > 0 || before === undefined) {
        await recordProcessedSlot(this.o.ch, { agent_id: rows.agentId, slot: rows.slot, slot_seconds: rows.slotSeconds, objects: rows.objects, spans: rows.spans.length, processed_at: Math.floor(Date.now() / 1000) });
      }
      this.open.delete(k);
      this.open.set(k, { agentId: rows.agentId, slot: rows.slot, slotSeconds: rows.slotSeconds });
      this.written.set(k, after);
      // Bounded memory: the oldest open slots fall back to the ledger sweep.
      for (const old of this.open.keys()) {
        if (this.open.size <= 20_000) break;
        this.forget(old);
      }
      recentRows.inc(undefined, changed.length);
      recentSkipped.inc(undefined, all.length - changed.length);
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
        // Decoded for the first time in this process: its plugin descriptors (a no-op for built-ins
        // and for what was written already; never throws).
        if (this.descriptors !== undefined) await this.descriptors.record(b.descriptors, b.agentId);
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
    const note = await quarantine(this.o.store, key, bytes, reason, err);
    this.log(`riptide functions: quarantined ${key}: ${note.error}`);
  }
}

function openKey(agentId: string, slotSeconds: number, slot: number): string {
  return `${agentId}|${slotSeconds}|${slot}`;
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

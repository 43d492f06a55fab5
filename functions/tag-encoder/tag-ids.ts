/**
 * Where tag ids come from. Two sources, one interface:
 *
 * - {@link DenseTagIds} (the default of `riptide functions`): small integers, 1, 2, 3, … (one
 *   sequence for all kinds, so an id names one entity and `tag_names` stays keyed by id alone),
 *   recorded in `riptide.tag_ids` before any span uses them and reloaded at start, so an entity keeps
 *   its id across restarts and re-processing. Dense ids are what makes the tag columns small: they
 *   compress 2-3x better than hashes (docs/BENCHMARKS.md, "Tag storage"). With one writer per
 *   ClickHouse (embedded, or one polling replica) they are exact. Several replicas each take their own
 *   stripe (`--id-stripe`, ids = stripe × 2^24 + n), so ids never collide; an entity first seen by two
 *   replicas at the same moment may get one id in each stripe — both resolve to the same name and the
 *   same stable `entity` hash, which is what queries should group by across stripes.
 * - {@link HashTagIds}: the 53-bit hash of kind:key ({@link tagId}) — no state, no coordination,
 *   bigger on disk. Used by tests and available for fleets that prefer zero coordination.
 *
 * A registry can also mint hash ids for what it has not seen (`mint: 'hash'`): what the query
 * server's OTLP ingest uses, so any number of its replicas need no stripe. Either way every writer
 * records what it mints in `riptide.tag_ids`, and a flush first looks up the keys it minted for: one
 * another writer (the functions, the query server) claimed earlier wins, and the rows of that flush
 * are given its id ({@link DenseTagIds.flush} returns the remap). So an OTLP span and a captured span
 * of one service carry one id, whichever writer saw the service first.
 *
 * @example
 *   const ids = await DenseTagIds.load(ch, { stripe: 0 });
 *   const enc = new TagEncoder({ ids });   // then `await ids.flush(ch)` before inserting spans
 */
import type { ClickHouse } from '../storage/clickhouse.ts';
import { queryRows } from '../storage/clickhouse.ts';
import { tagId } from './tag-id.ts';
import type { TagKind } from './tag-id.ts';

export interface TagIdSource {
  id(kind: TagKind, key: string): number;
  /**
   * Persist ids handed out since the last flush (before rows that use them are written). Returns
   * the ids that turned out to be claimed already under another id (minted → the registry's): the
   * caller rewrites the rows it encoded since the last flush.
   */
  flush?(ch: ClickHouse): Promise<Map<number, number>>;
}

export class HashTagIds implements TagIdSource {
  id(kind: TagKind, key: string): number {
    return tagId(kind, key);
  }
}

export interface TagIdClaim {
  kind: TagKind;
  key: string;
  id: number;
  entity: number;
  /** Unix ms. */
  claimed_at: number;
}

export const STRIPE_SIZE = 2 ** 24;

export interface TagIdRegistryOptions {
  /** This writer's stripe of sequential ids (default 0). */
  stripe?: number;
  /** How ids for unseen keys are made: 'sequence' (dense, the default) or 'hash' ({@link tagId}: no stripe needed). */
  mint?: 'sequence' | 'hash';
}

export class DenseTagIds implements TagIdSource {
  private readonly byKey = new Map<string, number>();
  /** One counter for all kinds: ids are unique across kinds, so `tag_names` (keyed by id) stays unambiguous. */
  private next = 1;
  private pending: TagIdClaim[] = [];
  readonly stripe: number;
  readonly mint: 'sequence' | 'hash';

  constructor(options: TagIdRegistryOptions = {}) {
    this.stripe = options.stripe ?? 0;
    this.mint = options.mint ?? 'sequence';
    if (!Number.isInteger(this.stripe) || this.stripe < 0 || this.stripe > 255) throw new RangeError(`id stripe must be 0..255, got ${this.stripe}`);
  }

  /** The registry as ClickHouse has it. */
  static async load(ch: ClickHouse, options: TagIdRegistryOptions = {}): Promise<DenseTagIds> {
    const ids = new DenseTagIds(options);
    const rows = await queryRows<{ kind: string; key: string; id: number }>(ch, 'SELECT kind, key, argMin(id, claimed_at) AS id FROM riptide.tag_ids GROUP BY kind, key');
    for (const r of rows) ids.remember(r.kind as TagKind, r.key, Number(r.id));
    return ids;
  }

  /** Record a known id (from the registry) without claiming it. */
  remember(kind: TagKind, key: string, id: number): void {
    this.byKey.set(`${kind}:${key}`, id);
    if (id < 256 * STRIPE_SIZE && Math.floor(id / STRIPE_SIZE) === this.stripe) {
      const n = id % STRIPE_SIZE;
      if (n >= this.next) this.next = n + 1;
    }
  }

  id(kind: TagKind, key: string): number {
    if (key === '') return 0;
    const k = `${kind}:${key}`;
    const known = this.byKey.get(k);
    if (known !== undefined) return known;
    if (this.mint === 'hash') {
      const h = tagId(kind, key);
      this.byKey.set(k, h);
      this.pending.push({ kind, key, id: h, entity: h, claimed_at: Date.now() });
      return h;
    }
    const n = this.next;
    if (n >= STRIPE_SIZE) throw new RangeError(`tag id stripe ${this.stripe} is full`);
    this.next = n + 1;
    const id = this.stripe * STRIPE_SIZE + n;
    this.byKey.set(k, id);
    this.pending.push({ kind, key, id, entity: tagId(kind, key), claimed_at: Date.now() });
    return id;
  }

  get size(): number {
    return this.byKey.size;
  }

  async flush(ch: ClickHouse): Promise<Map<number, number>> {
    const remap = new Map<number, number>();
    if (this.pending.length === 0) return remap;
    // Taken before any await: ids minted meanwhile (another caller of this registry) wait for the next flush.
    const claims = this.pending;
    this.pending = [];
    try {
      // Keys another writer claimed since this registry was loaded: the earliest claim wins.
      const byKind = new Map<TagKind, string[]>();
      for (const c of claims) byKind.set(c.kind, [...(byKind.get(c.kind) ?? []), c.key]);
      const claimed = new Map<string, number>();
      for (const [kind, keys] of byKind) {
        const rows = await queryRows<{ key: string; id: number }>(ch, 'SELECT key, argMin(id, claimed_at) AS id FROM riptide.tag_ids WHERE kind = {kind:String} AND key IN {keys:Array(String)} GROUP BY key', { kind, keys });
        for (const r of rows) claimed.set(`${kind}:${r.key}`, Number(r.id));
      }
      const fresh: TagIdClaim[] = [];
      for (const c of claims) {
        const theirs = claimed.get(`${c.kind}:${c.key}`);
        if (theirs === undefined) fresh.push(c);
        else if (theirs !== c.id) {
          remap.set(c.id, theirs);
          this.byKey.set(`${c.kind}:${c.key}`, theirs);
        }
      }
      if (fresh.length > 0) await ch.client.insert({ table: 'riptide.tag_ids', values: fresh.map((c) => ({ ...c, claimed_at: (c.claimed_at / 1000).toFixed(3) })), format: 'JSONEachRow' });
    } catch (err) {
      // Only forgotten once written: a failed flush is retried with the next one.
      this.pending = claims.concat(this.pending);
      throw err;
    }
    return remap;
  }
}

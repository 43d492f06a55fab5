/**
 * Tag ids → names (smart encoding: spans carry ids, `riptide.tag_names` the names). Ids are per kind
 * (dense small integers from the tag encoder, or 53-bit hashes from OTLP ingest), so a lookup names
 * the kind. A short-lived cache keeps a page of spans to one dictionary query.
 */
import type { ClickHouse } from '../storage/clickhouse.ts';
import { queryRows } from '../storage/clickhouse.ts';
import { int } from './clickhouse-source.ts';

export class TagNames {
  private readonly cache = new Map<number, { name: string | null; at: number }>();
  constructor(
    private readonly ch: ClickHouse,
    private readonly kind = 'service',
    private readonly ttlMs = 10_000,
  ) {}

  /** Names for the given ids (0 and unknown ids map to null). */
  async resolve(ids: Iterable<number>): Promise<Map<number, string | null>> {
    const now = Date.now();
    const out = new Map<number, string | null>();
    const missing: number[] = [];
    for (const id of new Set(ids)) {
      if (id === 0) {
        out.set(0, null);
        continue;
      }
      const c = this.cache.get(id);
      if (c && now - c.at < this.ttlMs) out.set(id, c.name);
      else missing.push(id);
    }
    if (missing.length) {
      const rows = await queryRows<{ id: number; name: string }>(
        this.ch,
        `SELECT id, argMax(name, updated_at) AS name FROM riptide.tag_names WHERE kind = {kind:String} AND id IN (${missing.map(int).join(',')}) GROUP BY id`,
        { kind: this.kind },
      );
      const found = new Map(rows.map((r) => [Number(r.id), r.name]));
      if (this.cache.size > 50_000) this.cache.clear();
      for (const id of missing) {
        const name = found.get(id) ?? null;
        this.cache.set(id, { name, at: now });
        out.set(id, name);
      }
    }
    return out;
  }
}

/**
 * Protocol descriptors of Wasm plugins, stored so the query side knows them (migration 0009,
 * `riptide.protocol_descriptors`). The built-in table (agent/protocols/descriptors.ts) is code; a
 * plugin's descriptor only exists in its manifest and in the batches of agents that load it.
 *
 *   - {@link DescriptorRecorder} (functions runtime): given the descriptors a decoded batch carries,
 *     writes a row for each one that is not built-in, when this process has not written it yet, when
 *     it changed (at most once per 10 s per name, so two agents disagreeing cannot make a row per
 *     batch), and once a day while in use (the table has a TTL).
 *   - {@link DescriptorCatalog} (query): built-ins + the stored ones, refreshed at most every ~10 s,
 *     with a synchronous lookup by name for trace assembly.
 *
 * A plugin descriptor can never override a built-in: a row named like a built-in protocol (or one of
 * its aliases) is neither written nor read, and an alias that is a built-in name is dropped.
 *
 * @example
 *   const recorder = new DescriptorRecorder(ch);
 *   await recorder.record(batch.descriptors, batch.agentId);
 *   const catalog = new DescriptorCatalog(ch);
 *   const all = await catalog.list();               // GET /api/v1/protocols
 *   assembleTrace(source, id, { descriptorOf: catalog.lookup });
 */
import type { OneWayRule, ProtocolDescriptor } from '../../agent/protocols/parser.ts';
import { BUILTIN_DESCRIPTORS, descriptorFor, descriptorTable } from '../../agent/protocols/descriptors.ts';
import { metrics as globalMetrics } from '../../agent/metrics.ts';
import type { MetricsRegistry } from '../../agent/metrics.ts';
import type { ClickHouse } from './clickhouse.ts';
import { queryRows } from './clickhouse.ts';

export const DESCRIPTOR_TABLE = 'riptide.protocol_descriptors';

const PAIRINGS: ReadonlySet<string> = new Set(['in-order', 'by-id']);
const MAX_NAME = 64;
const MAX_RULES = 256;

/**
 * `d` in a canonical shape (fixed key order, so equal descriptors give equal JSON), or null when
 * it is malformed. Strings as the plugin manifest allows them (1-64 characters).
 */
export function canonicalDescriptor(d: unknown): ProtocolDescriptor | null {
  if (typeof d !== 'object' || d === null) return null;
  const o = d as Record<string, unknown>;
  const str = (x: unknown): x is string => typeof x === 'string' && x.length > 0 && x.length <= MAX_NAME;
  if (!str(o.name) || typeof o.pairing !== 'string' || !PAIRINGS.has(o.pairing)) return null;
  if (!Array.isArray(o.aliases) || !o.aliases.every(str) || o.aliases.length > MAX_RULES) return null;
  if (!Array.isArray(o.oneWay) || o.oneWay.length > MAX_RULES) return null;
  const oneWay: OneWayRule[] = [];
  for (const r of o.oneWay as unknown[]) {
    const rr = r as Record<string, unknown> | null;
    if (typeof rr !== 'object' || rr === null || !str(rr.requestType) || !str(rr.when)) return null;
    oneWay.push({ requestType: rr.requestType, when: rr.when });
  }
  const out: { -readonly [K in keyof ProtocolDescriptor]: ProtocolDescriptor[K] } = { name: o.name, aliases: [...(o.aliases as string[])], pairing: o.pairing as ProtocolDescriptor['pairing'], oneWay };
  if (o.timeoutMs !== undefined) {
    if (!Number.isSafeInteger(o.timeoutMs) || (o.timeoutMs as number) < 0) return null;
    out.timeoutMs = o.timeoutMs as number;
  }
  if (o.sequenceSlack !== undefined) {
    if (!Array.isArray(o.sequenceSlack) || o.sequenceSlack.length > 16 || !o.sequenceSlack.every((x) => Number.isSafeInteger(x))) return null;
    out.sequenceSlack = [...(o.sequenceSlack as number[])];
  }
  return out;
}

/**
 * What of a plugin's descriptor (already {@link canonicalDescriptor}) may be stored and served: null
 * when its name is a built-in protocol's (or a built-in alias), else the descriptor without aliases
 * that are built-in names.
 */
export function pluginDescriptor(c: ProtocolDescriptor): ProtocolDescriptor | null {
  if (descriptorFor(c.name) !== undefined) return null;
  const aliases = c.aliases.filter((a) => descriptorFor(a) === undefined);
  return aliases.length === c.aliases.length ? c : { ...c, aliases };
}

export interface DescriptorRecorderOptions {
  /** Rewrite a descriptor still in use after this long (default one day; the table's TTL is the span TTL + 1 day). */
  refreshMs?: number;
  /** A changed descriptor is written at most this often per name (default 10 s). */
  minIntervalMs?: number;
  now?: () => number;
  metrics?: MetricsRegistry;
  log?: (line: string) => void;
}

/** Writes the plugin descriptors that batches carry into `riptide.protocol_descriptors`. */
export class DescriptorRecorder {
  /** Per name: the JSON this process last wrote, and when. */
  private readonly written = new Map<string, { json: string; at: number }>();
  private readonly refreshMs: number;
  private readonly minIntervalMs: number;
  private readonly now: () => number;
  private readonly rows;
  private readonly refused;
  private readonly failures;
  private readonly log: (line: string) => void;
  private lastFailureLog = -Infinity;

  constructor(
    private readonly ch: ClickHouse,
    o: DescriptorRecorderOptions = {},
  ) {
    this.refreshMs = o.refreshMs ?? 86_400_000;
    this.minIntervalMs = o.minIntervalMs ?? 10_000;
    this.now = o.now ?? Date.now;
    const m = o.metrics ?? globalMetrics;
    this.rows = m.counter('riptide_functions_descriptor_rows_total', 'Plugin protocol descriptors written to riptide.protocol_descriptors (new, changed or refreshed)');
    this.refused = m.counter('riptide_functions_descriptors_refused_total', 'Plugin descriptors in batches not stored as they came, by reason (malformed: not stored; builtin_alias: an alias that is a built-in name, dropped)');
    this.failures = m.counter('riptide_functions_descriptor_write_errors_total', 'Failed writes to riptide.protocol_descriptors (retried with the next batch that carries the descriptor)');
    this.log = o.log ?? ((l) => process.stderr.write(l + '\n'));
  }

  /** Record what `descriptors` (one batch's) holds beyond the built-ins. Returns the rows written; never throws. */
  async record(descriptors: readonly ProtocolDescriptor[] | undefined, agentId: string): Promise<number> {
    if (descriptors === undefined || descriptors.length === 0) return 0;
    const now = this.now();
    const due: Array<{ name: string; json: string }> = [];
    for (const raw of descriptors) {
      // A built-in's own descriptor (as the agent knew it; agents never let a plugin take a
      // built-in name): the code has it.
      if (descriptorFor(raw.name) !== undefined) continue;
      const c = canonicalDescriptor(raw);
      if (c === null) {
        this.refused.inc({ reason: 'malformed' });
        continue;
      }
      const d = pluginDescriptor(c) as ProtocolDescriptor; // its name is not a built-in one
      if (d.aliases.length !== c.aliases.length) this.refused.inc({ reason: 'builtin_alias' });
      const json = JSON.stringify(d);
      const last = this.written.get(d.name);
      if (last !== undefined) {
        const age = now - last.at;
        if (last.json === json ? age < this.refreshMs : age < this.minIntervalMs) continue;
      }
      if (!due.some((x) => x.name === d.name)) due.push({ name: d.name, json });
    }
    if (due.length === 0) return 0;
    try {
      await this.ch.client.insert({ table: DESCRIPTOR_TABLE, values: due.map((x) => ({ name: x.name, descriptor: x.json, agent_id: agentId, updated_at: now })), format: 'JSONEachRow' });
    } catch (err) {
      this.failures.inc();
      if (now - this.lastFailureLog >= 60_000) {
        this.lastFailureLog = now;
        this.log(`riptide functions: writing protocol descriptors (${due.map((x) => x.name).join(', ')}) failed: ${(err as Error).message.split('\n')[0]}`);
      }
      return 0;
    }
    for (const x of due) this.written.set(x.name, { json: x.json, at: now });
    this.rows.inc(undefined, due.length);
    return due.length;
  }
}

export interface DescriptorCatalogOptions {
  /** How long a loaded table is used before the next read (default 10 s). */
  refreshMs?: number;
  now?: () => number;
  metrics?: MetricsRegistry;
  log?: (line: string) => void;
}

/** The query side's protocol table: built-ins, then the stored plugin descriptors. */
export class DescriptorCatalog {
  private stored: ProtocolDescriptor[] = [];
  private table: ReadonlyMap<string, ProtocolDescriptor> = descriptorTable();
  private loadedAt = -Infinity;
  private loading?: Promise<void>;
  private readonly refreshMs: number;
  private readonly now: () => number;
  private readonly failures;
  private readonly skipped;
  private readonly log: (line: string) => void;
  private lastFailureLog = -Infinity;

  constructor(
    private readonly ch: ClickHouse,
    o: DescriptorCatalogOptions = {},
  ) {
    this.refreshMs = o.refreshMs ?? 10_000;
    this.now = o.now ?? Date.now;
    const m = o.metrics ?? globalMetrics;
    this.failures = m.counter('riptide_query_descriptor_load_errors_total', 'Failed reads of riptide.protocol_descriptors (the last table read, or the built-ins, stay in use)');
    this.skipped = m.counter('riptide_query_descriptors_skipped_total', 'Stored protocol descriptors not served, by reason (builtin_name, malformed)');
    this.log = o.log ?? ((l) => process.stderr.write(l + '\n'));
  }

  /** Read the stored descriptors again when the last read is older than the refresh interval. Never throws. */
  async refresh(): Promise<void> {
    if (this.now() - this.loadedAt < this.refreshMs) return;
    this.loading ??= this.load().finally(() => {
      this.loading = undefined;
    });
    return this.loading;
  }

  private async load(): Promise<void> {
    const at = this.now();
    let rows: Array<{ name: string; descriptor: string }>;
    try {
      rows = await queryRows(this.ch, `SELECT name, argMax(descriptor, updated_at) AS descriptor FROM ${DESCRIPTOR_TABLE} GROUP BY name ORDER BY name LIMIT 10000`);
    } catch (err) {
      this.failures.inc();
      if (at - this.lastFailureLog >= 60_000) {
        this.lastFailureLog = at;
        this.log(`riptide query: reading ${DESCRIPTOR_TABLE} failed: ${(err as Error).message.split('\n')[0]}`);
      }
      this.loadedAt = at; // try again after the interval, not on every request
      return;
    }
    const stored: ProtocolDescriptor[] = [];
    for (const r of rows) {
      let parsed: unknown;
      try {
        parsed = JSON.parse(r.descriptor);
      } catch {
        parsed = undefined;
      }
      const c = canonicalDescriptor(parsed);
      const d = c === null || c.name !== r.name ? null : pluginDescriptor(c);
      if (d === null) {
        this.skipped.inc({ reason: c !== null && c.name === r.name ? 'builtin_name' : 'malformed' });
        continue;
      }
      stored.push(d);
    }
    // Names first (built-ins, then stored), then aliases where the name is still free.
    const t = new Map<string, ProtocolDescriptor>(descriptorTable());
    for (const d of stored) if (!t.has(d.name)) t.set(d.name, d);
    for (const d of stored) for (const a of d.aliases) if (!t.has(a)) t.set(a, d);
    this.stored = stored;
    this.table = t;
    this.loadedAt = at;
  }

  /** Built-ins, then the stored plugin descriptors (by name), after a refresh when due. */
  async list(): Promise<ProtocolDescriptor[]> {
    await this.refresh();
    return [...BUILTIN_DESCRIPTORS, ...this.stored];
  }

  /** The descriptor covering `l7Protocol` from the last table read (built-ins before any refresh). */
  readonly lookup = (l7Protocol: string): ProtocolDescriptor | undefined => this.table.get(l7Protocol);
}

/**
 * The embedded default: poll the object store, hand every new batch object to the processor, and
 * remember what was handled in a ledger (`riptide.processed_batches`) so a restart does not redo
 * the whole store. A failure (ClickHouse down) is counted and retried on the next poll; a malformed
 * batch is quarantined by the processor and recorded; the loop never stops on bad input.
 *
 * @example
 *   const rt = new LocalRuntime({ processor, store, keys, ledger: new ClickHouseLedger(ch) });
 *   await rt.start();            // polls every second until rt.stop()
 */
import { metrics } from '../../agent/metrics.ts';
import type { ClickHouse } from '../storage/clickhouse.ts';
import { queryRows } from '../storage/clickhouse.ts';
import type { BatchKeyScheme, ObjectStorePort } from './ports.ts';
import type { ProcessResult } from './processor.ts';

const pollErrors = metrics.counter('riptide_functions_poll_errors_total', 'Store polls or batch processings that failed (retried on the next poll)');
const pending = metrics.gauge('riptide_functions_pending_batches', 'Batch objects seen in the store and not yet processed');
const lag = metrics.gauge('riptide_functions_last_poll_timestamp_seconds', 'When the runtime last completed a poll');

export interface BatchLedger {
  /** Keys already handled. */
  load(): Promise<Set<string>>;
  record(key: string, r: ProcessResult, agentId: string, slot: number): Promise<void>;
}

export class MemoryLedger implements BatchLedger {
  readonly keys = new Set<string>();
  async load(): Promise<Set<string>> {
    return new Set(this.keys);
  }
  async record(key: string): Promise<void> {
    this.keys.add(key);
  }
}

export class ClickHouseLedger implements BatchLedger {
  constructor(private readonly ch: ClickHouse) {}
  async load(): Promise<Set<string>> {
    const rows = await queryRows<{ key: string }>(this.ch, 'SELECT DISTINCT key FROM riptide.processed_batches');
    return new Set(rows.map((r) => r.key));
  }
  async record(key: string, r: ProcessResult, agentId: string, slot: number): Promise<void> {
    await this.ch.client.insert({ table: 'riptide.processed_batches', values: [{ key, agent_id: agentId, slot, status: r.status, processed_at: Math.floor(Date.now() / 1000) }], format: 'JSONEachRow' });
  }
}

export interface LocalRuntimeOptions {
  process: (key: string) => Promise<ProcessResult>;
  /** Several keys at once (BatchProcessor.processKeys): each affected slot built once per poll. */
  processMany?: (keys: string[]) => Promise<ProcessResult[]>;
  /** Settle the slots whose pairing window has closed (BatchProcessor.settleDue); run after every poll. */
  settle?: () => Promise<number>;
  store: ObjectStorePort;
  keys: BatchKeyScheme;
  ledger?: BatchLedger;
  /** Poll period (default 1000 ms). */
  intervalMs?: number;
  log?: (line: string) => void;
}

export interface TickResult {
  seen: number;
  processed: number;
  quarantined: number;
  failed: number;
  /** Slots settled by this poll's settle pass (their rows written to riptide.spans). */
  settled: number;
}

export class LocalRuntime {
  private done?: Set<string>;
  private timer?: NodeJS.Timeout;
  private running?: Promise<TickResult>;
  private stopped = true;
  private stopping = false;
  private polls = 0;
  private lastOk = 0;
  private polledOnce = false;
  private readonly ledger: BatchLedger;
  private readonly log: (line: string) => void;

  constructor(private readonly o: LocalRuntimeOptions) {
    this.ledger = o.ledger ?? new MemoryLedger();
    this.log = o.log ?? ((l) => process.stderr.write(l + '\n'));
  }

  /** Healthy when a poll completed within five poll periods. */
  healthy(): boolean {
    return this.stopped || Date.now() - this.lastOk < 5 * (this.o.intervalMs ?? 1000) + 5000;
  }

  /** Readiness: null once a poll of the store has completed and polls keep completing; otherwise why not. */
  readiness(): string | null {
    if (this.stopped) return 'functions runtime is not polling the store';
    if (!this.polledOnce) return 'functions runtime has not completed a poll of the store yet';
    if (!this.healthy()) return `functions runtime has not completed a poll for ${Math.round((Date.now() - this.lastOk) / 1000)} s`;
    return null;
  }

  async start(): Promise<void> {
    this.stopped = false;
    this.stopping = false;
    this.lastOk = Date.now();
    const loop = async (): Promise<void> => {
      if (this.stopped) return;
      this.running = this.tick();
      await this.running.catch(() => undefined);
      this.running = undefined;
      if (!this.stopped) this.timer = setTimeout(() => void loop(), this.o.intervalMs ?? 1000);
    };
    await loop();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.stopping = true;
    if (this.timer) clearTimeout(this.timer);
    await this.running?.catch(() => undefined);
  }

  /** One poll: list, process what is new in (agent, slot, part) order, record it. */
  async tick(): Promise<TickResult> {
    const r: TickResult = { seen: 0, processed: 0, quarantined: 0, failed: 0, settled: 0 };
    try {
      this.done ??= await this.ledger.load();
      // The first poll lists everything (catch up); later ones only the recent prefixes when the key
      // scheme has them (batches are foldered by hour), so a poll stays cheap on a big bucket. Every
      // 300th poll lists everything again, for batches an agent's spool delivers hours late.
      const nowSec = Math.floor(Date.now() / 1000);
      const full = !this.o.keys.recentPrefixes || this.polls % 300 === 0;
      this.polls++;
      const prefixes = full || !this.o.keys.recentPrefixes ? [this.o.keys.root] : this.o.keys.recentPrefixes(nowSec - 3600, nowSec);
      const all = (await Promise.all(prefixes.map((p) => this.o.store.list(p)))).flat();
      const fresh = all
        .map((key) => ({ key, info: this.o.keys.parse(key) }))
        .filter((x): x is { key: string; info: NonNullable<typeof x.info> } => x.info !== null && !(this.done as Set<string>).has(x.key))
        .sort((a, b) => (a.info.agentId < b.info.agentId ? -1 : a.info.agentId > b.info.agentId ? 1 : a.info.slot - b.info.slot || a.info.part - b.info.part));
      r.seen = fresh.length;
      pending.set(fresh.length);
      const record = async (key: string, info: { agentId: string; slot: number }, res: ProcessResult): Promise<void> => {
        await this.ledger.record(key, res, info.agentId, info.slot);
        (this.done as Set<string>).add(key);
        if (res.status === 'quarantined') r.quarantined++;
        else r.processed++;
        pending.add(-1);
      };
      const fail = (key: string, err: unknown): void => {
        r.failed++;
        pollErrors.inc();
        this.log(`riptide functions: processing ${key} failed, will retry: ${(err as Error).message}`);
      };
      if (this.o.processMany) {
        for (let i = 0; i < fresh.length && !this.stopping; i += 256) {
          const chunk = fresh.slice(i, i + 256);
          try {
            const results = await this.o.processMany(chunk.map((x) => x.key));
            for (let j = 0; j < chunk.length; j++) await record(chunk[j].key, chunk[j].info, results[j]);
          } catch (err) {
            for (const x of chunk) fail(x.key, err);
          }
        }
      } else {
        for (const { key, info } of fresh) {
          if (this.stopping) break;
          try {
            await record(key, info, await this.o.process(key));
          } catch (err) {
            fail(key, err);
          }
        }
      }
      // Slots whose window closed since the last poll (a quiet agent's last slots too) settle now.
      if (this.o.settle && !this.stopping) {
        try {
          r.settled = await this.o.settle();
        } catch (err) {
          r.failed++;
          pollErrors.inc();
          this.log(`riptide functions: settling slots failed, will retry: ${(err as Error).message}`);
        }
      }
      this.lastOk = Date.now();
      this.polledOnce = true;
      lag.set(Math.floor(this.lastOk / 1000));
    } catch (err) {
      pollErrors.inc();
      this.log(`riptide functions: polling the store failed, will retry: ${(err as Error).message}`);
      r.failed++;
    }
    return r;
  }
}

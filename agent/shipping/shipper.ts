/**
 * The shipping pipeline the agent calls, one stage per job:
 *
 *   add() → Batcher (slot + size cuts, memory budget) → encode (RTB, brotli on the thread pool)
 *         → DiskSpool (bounded, survives restarts) → RetryingUploader(StoreUploader) → object store
 *
 * Counters (on the shared registry, `GET /metrics`), in messages unless said otherwise:
 *   riptide_shipping_received_total          messages handed to add()
 *   riptide_shipping_spooled_total           messages written to the disk spool
 *   riptide_shipping_sent_total              messages in batches the store accepted
 *   riptide_shipping_sent_batches_total / riptide_shipping_sent_bytes_total
 *   riptide_shipping_retried_total           upload attempts retried (batches)
 *   riptide_shipping_dropped_total{reason}   memory | spool_full | too_large | rejected | encode_error | spool_error | spool_corrupt | closed
 *                                            (memory_socket_event counts socket-close events, not messages)
 *   riptide_shipping_spool_bytes, riptide_shipping_spool_batches, riptide_shipping_memory_bytes (gauges)
 * Every drop is also logged, once per burst.
 *
 * @example
 *   const shipper = await createShipper({ store: openStore(url), dataDir: '/var/lib/riptide', agentId: 'node-a' });
 *   shipper.add(parsedMessage);
 *   shipper.addProcess(info);
 *   shipper.socketClosed(ev);
 *   await shipper.close();   // cuts the open batch, uploads what it can, leaves the rest spooled
 */
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { ProcessInfo, SocketClosed } from '../capture/message.ts';
import { BurstLogger, metrics as defaultMetrics } from '../metrics.ts';
import type { Counter, MetricsRegistry } from '../metrics.ts';
import type { ParsedMessage } from './batch.ts';
import { Batcher, MemoryBudget } from './batcher.ts';
import type { CutBatch } from './batcher.ts';
import { BatchEncodeError, encodeBodyAsync, readBatchHeader } from './codec.ts';
import type { Compression } from './codec.ts';
import { batchKey, isValidAgentId, toAgentId } from './keys.ts';
import { DiskSpool } from './spool.ts';
import type { SpoolEntry } from './spool.ts';
import type { ObjectStore } from './store.ts';
import { RetryingUploader, StoreUploader } from './uploader.ts';
import type { BatchUploader, RetryOptions } from './uploader.ts';

export interface ShipperOptions {
  store: ObjectStore;
  /** The spool lives in `<dataDir>/spool`. */
  dataDir: string;
  /** Stable id of this agent in object keys (letters, digits, . _ -). Default: the host name, sanitised. */
  agentId?: string;
  /** Host name recorded in batches. Default: os.hostname(). */
  host?: string;
  /** Slot length in whole seconds. Default 2. */
  slotSeconds?: number;
  /** Cut a slot into parts at this many (estimated in-memory) bytes. Default 8 MiB. */
  maxBatchBytes?: number;
  /** Memory for open and encoding batches; messages past it are dropped and counted. Default 64 MiB. */
  maxMemoryBytes?: number;
  /** Disk spool cap. Default 1 GiB. */
  spoolMaxBytes?: number;
  /** Uploads in flight. Default 2. */
  uploadConcurrency?: number;
  /** Backoff between upload attempts; uploads are retried until they succeed or the batch is dropped from the spool. */
  retry?: Omit<RetryOptions, 'onRetry' | 'maxAttempts'>;
  compression?: Compression;
  compressionLevel?: number;
  /** How long close() waits for the spool to drain before leaving the rest for the next start. Default 10 s. */
  closeTimeoutMs?: number;
  /** Run id in object keys. Default: now (unix ms). */
  run?: number;
  metrics?: MetricsRegistry;
  log?: (line: string) => void;
  now?: () => number;
  /** Replace the store transport (tests). */
  uploader?: BatchUploader;
}

export interface ShipperStats {
  /** Bytes of memory held by open and encoding batches. */
  memoryBytes: number;
  spoolBytes: number;
  spoolBatches: number;
  /** Batches cut but not yet in the spool. */
  encoding: number;
}

export interface Shipper {
  /** Queue one parsed message; false when it was dropped (memory budget). Never throws. */
  add(message: ParsedMessage): boolean;
  /** Process metadata for a pid (sent with every batch that has messages of that pid). */
  addProcess(info: ProcessInfo): void;
  socketClosed(event: SocketClosed): void;
  /** Cut the open batch now and wait until it is in the spool. */
  flush(): Promise<void>;
  /** Wait until everything spooled is uploaded; false on timeout. */
  drain(timeoutMs?: number): Promise<boolean>;
  stats(): ShipperStats;
  /** Flush, wait up to closeTimeoutMs for uploads, stop. Whatever is left stays spooled for the next start. */
  close(): Promise<void>;
  readonly agentId: string;
  readonly run: number;
}

interface Counters {
  received: Counter;
  spooled: Counter;
  sent: Counter;
  sentBatches: Counter;
  sentBytes: Counter;
  retried: Counter;
  dropped: Counter;
  errors: Counter;
}

function counters(m: MetricsRegistry): Counters {
  return {
    received: m.counter('riptide_shipping_received_total', 'Messages handed to the shipper'),
    spooled: m.counter('riptide_shipping_spooled_total', 'Messages written to the disk spool'),
    sent: m.counter('riptide_shipping_sent_total', 'Messages in batches the object store accepted'),
    sentBatches: m.counter('riptide_shipping_sent_batches_total', 'Batch objects uploaded'),
    sentBytes: m.counter('riptide_shipping_sent_bytes_total', 'Bytes of batch objects uploaded'),
    retried: m.counter('riptide_shipping_retried_total', 'Batch uploads retried after a retryable error'),
    dropped: m.counter('riptide_shipping_dropped_total', 'Messages dropped by shipping, by reason'),
    errors: m.counter('riptide_shipping_errors_total', 'Upload attempts that failed, by kind'),
  };
}

/** Build the pipeline, open the spool (resuming what an earlier run left) and start uploading. */
export async function createShipper(options: ShipperOptions): Promise<Shipper> {
  const agentId = options.agentId ?? toAgentId(hostname());
  if (!isValidAgentId(agentId)) throw new RangeError(`agent id ${JSON.stringify(agentId)} is not usable in object keys (letters, digits, . _ -)`);
  const log = options.log ?? ((line: string) => process.stderr.write(line + '\n'));
  const registry = options.metrics ?? defaultMetrics;
  const c = counters(registry);
  const drops = new Map<string, BurstLogger>();
  const drop = (reason: string, messages: number, detail = ''): void => {
    c.dropped.inc({ reason }, messages);
    let b = drops.get(reason);
    if (!b) drops.set(reason, (b = new BurstLogger(`shipping (${reason.replace(/_/g, ' ')}): messages`, log)));
    b.record(messages, detail);
  };

  const spool = await DiskSpool.open({
    dir: join(options.dataDir, 'spool'),
    maxBytes: options.spoolMaxBytes ?? 1024 * 1024 * 1024,
    onDrop: (e, reason) => drop(reason, e.messages, `batch ${e.key}, spool cap ${options.spoolMaxBytes ?? 1024 * 1024 * 1024} bytes`),
  });
  if (spool.size > 0) log(`riptide: shipping: resuming upload of ${spool.size} spooled batches (${spool.bytes} bytes)`);

  return new PipelineShipper(options, agentId, spool, c, drop, log, registry);
}

class PipelineShipper implements Shipper {
  readonly agentId: string;
  readonly run: number;
  private readonly budget: MemoryBudget;
  private readonly batcher: Batcher;
  private readonly uploader: BatchUploader;
  private readonly stop = new AbortController();
  private readonly workers: Array<Promise<void>> = [];
  private readonly encoding = new Set<Promise<void>>();
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  private readonly now: () => number;
  /** Failed upload attempts since the store last accepted one, and when we last said so. */
  private failedAttempts = 0;
  private lastOutageLog = 0;

  constructor(
    private readonly o: ShipperOptions,
    agentId: string,
    private readonly spool: DiskSpool,
    private readonly c: Counters,
    private readonly drop: (reason: string, messages: number, detail?: string) => void,
    private readonly log: (line: string) => void,
    registry: MetricsRegistry,
  ) {
    this.agentId = agentId;
    this.run = o.run ?? Date.now();
    this.now = o.now ?? Date.now;
    this.budget = new MemoryBudget(o.maxMemoryBytes ?? 64 * 1024 * 1024);
    this.batcher = new Batcher(
      { agentId, host: o.host ?? hostname(), slotSeconds: o.slotSeconds ?? 2, run: this.run, budget: this.budget, maxBatchBytes: o.maxBatchBytes, now: this.now },
      (cut) => this.ship(cut),
    );
    this.uploader = new RetryingUploader(o.uploader ?? new StoreUploader(o.store), {
      ...o.retry,
      onRetry: (key, attempt, delayMs, error) => {
        this.c.retried.inc();
        this.c.errors.inc({ kind: 'retryable' });
        this.failedAttempts++;
        const now = Date.now();
        // Once per burst: at the first failure, then at most every 10 s while the outage lasts.
        if (now - this.lastOutageLog >= 10_000) {
          this.lastOutageLog = now;
          this.log(
            `riptide: shipping: store unavailable (${this.failedAttempts} failed attempts), ${this.spool.size} batches (${this.spool.bytes} bytes) kept in the spool; retrying in ${delayMs} ms: ${error.message.split('\n')[0]}`,
          );
        }
      },
    });

    const spoolBytes = registry.gauge('riptide_shipping_spool_bytes', 'Bytes of batches in the disk spool');
    const spoolBatches = registry.gauge('riptide_shipping_spool_batches', 'Batches in the disk spool');
    const memory = registry.gauge('riptide_shipping_memory_bytes', 'Bytes held by open and encoding batches');
    registry.onCollect(() => {
      spoolBytes.set(this.spool.bytes);
      spoolBatches.set(this.spool.size);
      memory.set(this.budget.used);
    });

    for (let i = 0; i < Math.max(1, o.uploadConcurrency ?? 2); i++) this.workers.push(this.uploadLoop());
    this.schedule();
  }

  add(message: ParsedMessage): boolean {
    this.c.received.inc();
    if (this.closed) {
      this.drop('closed', 1);
      return false;
    }
    try {
      if (this.batcher.add(message)) return true;
    } catch (err) {
      this.drop('encode_error', 1, (err as Error).message);
      return false;
    }
    this.drop('memory', 1, `memory cap ${this.budget.max} bytes`);
    return false;
  }

  addProcess(info: ProcessInfo): void {
    this.batcher.addProcess(info);
  }

  socketClosed(event: SocketClosed): void {
    if (this.closed) return;
    if (!this.batcher.socketClosed(event)) this.drop('memory_socket_event', 1, `memory cap ${this.budget.max} bytes`);
  }

  stats(): ShipperStats {
    return { memoryBytes: this.budget.used, spoolBytes: this.spool.bytes, spoolBatches: this.spool.size, encoding: this.encoding.size };
  }

  /** Timer at each slot boundary, so a quiet slot is still cut on time. */
  private schedule(): void {
    if (this.closed) return;
    const wait = Math.max(5, this.batcher.currentSlotEndMs - this.now() + 5);
    this.timer = setTimeout(() => {
      this.batcher.roll(this.now());
      this.schedule();
    }, wait);
    this.timer.unref();
  }

  /** Encode a cut batch and write it to the spool; memory is released once it is on disk. */
  private ship({ batch, body, messageCount, chargedBytes }: CutBatch): void {
    const p = (async () => {
      const n = messageCount;
      try {
        const bytes = await encodeBodyAsync(body, messageCount, { compression: this.o.compression, level: this.o.compressionLevel });
        const key = batchKey(batch);
        if (await this.spool.append(key, bytes, n)) this.c.spooled.inc(undefined, n);
      } catch (err) {
        if (err instanceof BatchEncodeError) this.drop('encode_error', n, err.message);
        else this.drop('spool_error', n, (err as Error).message);
      } finally {
        this.budget.release(chargedBytes);
      }
    })();
    this.encoding.add(p);
    void p.finally(() => this.encoding.delete(p));
  }

  private async uploadLoop(): Promise<void> {
    const signal = this.stop.signal;
    while (!signal.aborted) {
      const e = this.spool.claim();
      if (!e) {
        await this.spool.changed(signal);
        continue;
      }
      await this.uploadOne(e, signal);
    }
  }

  private async uploadOne(e: SpoolEntry, signal: AbortSignal): Promise<void> {
    let bytes: Uint8Array;
    try {
      bytes = await this.spool.read(e);
    } catch (err) {
      this.drop('spool_error', e.messages, `cannot read ${e.file}: ${(err as Error).message}`);
      await this.spool.remove(e);
      return;
    }
    try {
      // A spool file damaged on disk is not worth shipping: the functions would only quarantine it.
      readBatchHeader(bytes);
    } catch (err) {
      this.drop('spool_corrupt', e.messages, `${e.file}: ${(err as Error).message}`);
      await this.spool.remove(e);
      return;
    }
    const r = await this.uploader.upload(e.key, bytes, signal);
    switch (r.code) {
      case 'success':
        if (this.failedAttempts > 0) {
          this.log(`riptide: shipping: store reachable again after ${this.failedAttempts} failed attempts; uploading ${this.spool.size} spooled batches`);
          this.failedAttempts = 0;
          this.lastOutageLog = 0;
        }
        this.c.sent.inc(undefined, e.messages);
        this.c.sentBatches.inc();
        this.c.sentBytes.inc(undefined, bytes.length);
        await this.spool.remove(e);
        return;
      case 'failure':
        this.c.errors.inc({ kind: 'failure' });
        this.drop('rejected', e.messages, `store refused ${e.key}: ${r.error.message.split('\n')[0]}`);
        await this.spool.remove(e);
        return;
      case 'retryable': // not returned without maxAttempts; kept for completeness
      case 'aborted':
        this.spool.unclaim(e);
        return;
    }
  }

  async flush(): Promise<void> {
    this.batcher.flush();
    await Promise.all([...this.encoding]);
  }

  async drain(timeoutMs = 30_000): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      await Promise.all([...this.encoding]);
      if (this.spool.empty && this.encoding.size === 0) return true;
      const left = deadline - Date.now();
      if (left <= 0) return false;
      await this.spool.changed(AbortSignal.timeout(Math.min(left, 1000)));
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    // Closed first: anything added while the last batch is being encoded is counted as dropped,
    // not left in a batch nobody will cut.
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    await this.flush();
    const drained = await this.drain(this.o.closeTimeoutMs ?? 10_000);
    this.stop.abort();
    await Promise.all(this.workers);
    if (!drained) this.log(`riptide: shipping: ${this.spool.size} batches (${this.spool.bytes} bytes) left in the spool; they are uploaded at the next start`);
  }
}

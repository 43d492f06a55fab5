/**
 * Everything `riptide functions` (and `riptide up`) needs, assembled from configuration: ClickHouse
 * (embedded chDB under the data dir, or a URL), migrations, the dense tag id registry, Kubernetes
 * metadata when running in a cluster, the store, the BatchProcessor, the polling runtime and the
 * HTTP app (healthz, readyz, metrics, custom tags, and CloudEvents when the HTTP adapter is chosen).
 *
 * In two phases (lib/lifecycle.ts): {@link buildFunctions} opens and constructs every part and
 * starts nothing; `start()` starts the Kubernetes watcher and the rollup and settle timers. A step
 * that fails in either phase closes what was opened or started before it; `close()` stops it all.
 * The polling runtime is started by the caller (`fx.runtime.start()`) once it is ready for load.
 *
 * @example
 *   const fx = await buildFunctions({ dataDir: '.riptide' });        // embedded defaults
 *   await fx.start();
 *   serve({ fetch: fx.app.fetch, port: 8686 });
 *   void fx.runtime?.start();                                         // poll the store
 *   …; await fx.close();
 */
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { KubeConfig } from '@kubernetes/client-node';
import type { Hono } from 'hono';
import { Lifecycle } from '../../lib/lifecycle.ts';
import { openStore } from '../../agent/shipping/store.ts';
import type { ObjectStore } from '../../agent/shipping/store.ts';
import { openClickHouse } from '../storage/clickhouse.ts';
import type { ClickHouse } from '../storage/clickhouse.ts';
import { migrate } from '../storage/migrations.ts';
import { clickhousePing } from '../storage/ping.ts';
import { refreshRollups } from '../query/service-map.ts';
import { K8sWatcher } from '../tag-encoder/k8s-watcher.ts';
import { MetadataIndex } from '../tag-encoder/metadata.ts';
import { TagEncoder } from '../tag-encoder/tag-encoder.ts';
import { DenseTagIds } from '../tag-encoder/tag-ids.ts';
import type { SpanBuilderOptions } from '../span-builder/span-builder.ts';
import { createFunctionsApp } from './http-adapter.ts';
import type { KeyFilter } from './events.ts';
import { ClickHouseLedger, LocalRuntime } from './local-runtime.ts';
import { BatchProcessor } from './processor.ts';
import { shippingDecoder, shippingKeys, storePort } from './shipping.ts';

export interface FunctionsConfig {
  dataDir: string;
  /** file:///path or s3://bucket/prefix; default file://<dataDir>/store. */
  store?: string;
  s3Endpoint?: string;
  clickhouseUrl?: string;
  /** ON CLUSTER name: migrations use the replicated variants. */
  clickhouseCluster?: string;
  ttlDays?: number;
  /** 'local' polls the store; 'http' only takes events (Knative, Cloud Run, a Deployment). */
  adapter?: 'local' | 'http';
  pollMs?: number;
  idStripe?: number;
  /** 'auto' watches Kubernetes when running in a pod. */
  kubernetes?: 'auto' | 'on' | 'off';
  builder?: SpanBuilderOptions;
  /** Seconds after a slot's pairing window ends before it settles into riptide.spans (default 5). */
  settleGraceSeconds?: number;
  /** At most this many seconds more while no later batch of the agent has come (default 60). */
  settleMaxWaitSeconds?: number;
  /** How often the local runtime refreshes the service-map rollups of the last two hours (ms, default 30 s; 0 = never). */
  rollupMs?: number;
  /** Skip migrations (a Job runs them). */
  skipMigrations?: boolean;
  log?: (line: string) => void;
}

export interface Functions {
  ch: ClickHouse;
  store: ObjectStore;
  processor: BatchProcessor;
  /** The polling runtime (adapter 'local'); not started. */
  runtime?: LocalRuntime;
  app: Hono;
  /** Why this instance is not ready (the polling runtime has not polled, ClickHouse does not answer); empty when it is. */
  ready(): Promise<string[]>;
  /** Phase 2: the Kubernetes watcher, the rollup and settle timers. On failure everything is closed. */
  start(): Promise<void>;
  /** Stops what started and closes what was opened (the polling runtime too), once. */
  close(): Promise<void>;
}

export function defaultStoreUrl(dataDir: string): string {
  const dir = resolve(join(dataDir, 'store'));
  mkdirSync(dir, { recursive: true });
  return pathToFileURL(dir).href;
}

/** S3 notifications carry bucket keys; the store works relative to its prefix. */
export function keyFilterFor(storeUrl: string): KeyFilter {
  const u = new URL(storeUrl);
  if (u.protocol !== 's3:') return {};
  const prefix = decodeURIComponent(u.pathname.replace(/^\/+/, '').replace(/\/+$/, ''));
  return { bucket: u.hostname, prefix: prefix || undefined };
}

/** Build, then start: what the runtimes without a separate start step want (AWS Lambda, tests). */
export async function startFunctions(cfg: FunctionsConfig): Promise<Functions> {
  const fx = await buildFunctions(cfg);
  await fx.start();
  return fx;
}

/** Phase 1: open and construct every part; nothing runs yet. A failing step closes what it opened. */
export async function buildFunctions(cfg: FunctionsConfig): Promise<Functions> {
  const log = cfg.log ?? ((l: string) => process.stderr.write(l + '\n'));
  const life = new Lifecycle({ log });
  const storeUrl = cfg.store ?? defaultStoreUrl(cfg.dataDir);
  const store = await life.build('object store', () => openStore(storeUrl, { s3Endpoint: cfg.s3Endpoint }), (s) => s.close());
  const ch = await life.build('ClickHouse', () => openClickHouse({ url: cfg.clickhouseUrl, dataDir: cfg.dataDir }), (c) => c.close());
  if (!cfg.skipMigrations) await life.build('migrations', () => migrate(ch, { mode: cfg.clickhouseCluster ? 'cluster' : 'single', cluster: cfg.clickhouseCluster, ttlDays: cfg.ttlDays }));
  const ids = await life.build('tag id registry', () => DenseTagIds.load(ch, { stripe: cfg.idStripe ?? 0 }));
  const k8s = cfg.kubernetes ?? 'auto';
  let index: MetadataIndex | undefined;
  let watcher: K8sWatcher | undefined;
  if (k8s === 'on' || (k8s === 'auto' && process.env.KUBERNETES_SERVICE_HOST)) {
    const kc = await life.build('Kubernetes config', () => {
      const c = new KubeConfig();
      c.loadFromDefault();
      return c;
    });
    index = new MetadataIndex();
    watcher = new K8sWatcher(index, kc, { log });
  }
  const encoder = new TagEncoder({ ids, source: index });
  const processor = new BatchProcessor({ ch, store: storePort(store), keys: shippingKeys, decode: shippingDecoder, encoder, builder: cfg.builder, settleGraceSeconds: cfg.settleGraceSeconds, settleMaxWaitSeconds: cfg.settleMaxWaitSeconds, log });
  const handle = (key: string) => processor.processBatch(key);
  const runtime = (cfg.adapter ?? 'local') === 'local' ? new LocalRuntime({ process: handle, processMany: (keys) => processor.processKeys(keys), settle: () => processor.settleDue(), store: storePort(store), keys: shippingKeys, ledger: new ClickHouseLedger(ch), intervalMs: cfg.pollMs, log }) : undefined;
  // The caller starts the polling; closing stops it (a no-op when it never started).
  if (runtime) life.defer('polling runtime', () => runtime.stop());
  const ping = clickhousePing(ch);
  const ready = async (): Promise<string[]> => [runtime?.readiness() ?? null, await ping()].filter((r): r is string => r !== null);
  const app = createFunctionsApp({
    // Events are taken only by the HTTP adapter; the polling runtime finds objects itself.
    process: cfg.adapter === 'http' ? handle : async (key) => ({ key, status: 'ignored', reason: 'this instance polls the store (--adapter local)', slots: [] }),
    ch,
    filter: keyFilterFor(storeUrl),
    healthy: () => runtime?.healthy() ?? true,
    ready,
  });
  life.startPhase();
  let starting: Promise<void> | undefined;
  return {
    ch,
    store,
    processor,
    runtime,
    app,
    ready,
    start: () =>
      (starting ??= (async () => {
        if (watcher) {
          const w = watcher;
          // Registered first: a start that fails half-way leaves informers to stop.
          life.defer('Kubernetes watcher', () => w.stop());
          await life.start('Kubernetes watcher', () => w.start());
        }
        if (runtime) await life.start('service-map rollups', () => startRollups(ch, cfg.rollupMs ?? 30_000, log), (r) => r?.stop());
        // The polling runtime settles after every poll; an event-driven instance settles on a timer, so an
        // agent's last slots reach riptide.spans even when no later event comes.
        else await life.start('settle timer', () => startSettler(processor, cfg.pollMs ?? 1000, log), (t) => t.stop());
      })()),
    close: () => life.close(),
  };
}

/**
 * Keep the service-map rollups of the last two hours current in the background (one pass at a time;
 * a failed pass is logged and retried on the next tick). Maps over older ranges compute what they
 * miss on first use.
 */
function startRollups(ch: ClickHouse, everyMs: number, log: (line: string) => void): { stop(): Promise<void> } | undefined {
  if (everyMs <= 0) return undefined;
  let running: Promise<void> | undefined;
  let failing = false;
  const tick = (): void => {
    if (running) return;
    const now = Date.now() * 1000;
    running = refreshRollups(ch, now - 2 * 3600e6, now)
      .then(() => {
        failing = false;
      })
      .catch((err: unknown) => {
        if (!failing) log(`riptide functions: service-map rollup failed (retrying every ${everyMs / 1000} s): ${err instanceof Error ? err.message : String(err)}`);
        failing = true;
      })
      .finally(() => {
        running = undefined;
      });
  };
  const timer = setInterval(tick, everyMs);
  timer.unref();
  return {
    stop: async () => {
      clearInterval(timer);
      await running;
    },
  };
}

/** Settle what is due every `everyMs` (one pass at a time; a failed pass is logged once and retried). */
function startSettler(processor: BatchProcessor, everyMs: number, log: (line: string) => void): { stop(): Promise<void> } {
  let running: Promise<void> | undefined;
  let failing = false;
  const timer = setInterval(() => {
    if (running) return;
    running = processor
      .settleDue()
      .then(() => {
        failing = false;
      })
      .catch((err: unknown) => {
        if (!failing) log(`riptide functions: settling slots failed (retrying every ${everyMs / 1000} s): ${err instanceof Error ? err.message : String(err)}`);
        failing = true;
      })
      .finally(() => {
        running = undefined;
      });
  }, everyMs);
  timer.unref();
  return {
    stop: async () => {
      clearInterval(timer);
      await running;
    },
  };
}

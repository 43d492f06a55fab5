/**
 * The whole shipping path on one host: add() → batcher → encode (RTB + brotli-1) → disk spool →
 * upload to a folder store, for `total` messages. Reports CPU per message (main thread and thread
 * pool together), wall-clock throughput, what reached the store, and drops (there should be none:
 * the producer waits for the pipeline whenever the memory budget would overflow).
 *
 *   npx tsx test/bench/batch-shipper.bench.ts [total=200000]
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MetricsRegistry } from '../../agent/metrics.ts';
import type { ParsedMessage } from '../../agent/shipping/batch.ts';
import { createShipper } from '../../agent/shipping/shipper.ts';
import { FileStore } from '../../agent/shipping/store.ts';
import { MessageFactory } from '../shipping/synthetic.ts';

const total = Number(process.argv[2] ?? 200_000);
const dir = await mkdtemp(join(tmpdir(), 'riptide-ship-bench-'));
const store = new FileStore(join(dir, 'store'));
const reg = new MetricsRegistry();
const shipper = await createShipper({ store, dataDir: dir, agentId: 'bench', slotSeconds: 1, metrics: reg, log: () => undefined });

// A pool of realistic messages, re-stamped with unique timestamps as they are reused.
const f = new MessageFactory(7);
const pool: ParsedMessage[] = Array.from({ length: 5000 }, () => f.next());
let ts = pool[pool.length - 1].tsNs;

const cpu = (): number => {
  const u = process.cpuUsage();
  return (u.user + u.system) * 1000;
};
const t0 = cpu();
const w0 = process.hrtime.bigint();
for (let i = 0; i < total; i++) {
  ts += 1000n;
  const m = { ...pool[i % pool.length], tsNs: ts, enterNs: ts, exitNs: ts + 5000n };
  if (!shipper.add(m)) throw new Error('dropped: the bench should pace itself');
  // Yield to let encoding and spooling run: a real capture loop yields between ring-buffer drains.
  if (i % 2000 === 1999 && shipper.stats().memoryBytes > 32 * 1024 * 1024) await shipper.flush();
  else if (i % 5000 === 4999) await new Promise((r) => setImmediate(r));
}
await shipper.flush();
const addedCpu = cpu() - t0;
if (!(await shipper.drain(120_000))) throw new Error('store did not drain');
const allCpu = cpu() - t0;
const wall = Number(process.hrtime.bigint() - w0);
await shipper.close();

const keys = await store.list('batches/');
let bytes = 0;
for (const k of keys) bytes += (await store.get(k))?.length ?? 0;
const metric = (name: string): string => reg.render().split('\n').find((l) => l.startsWith(name + ' ')) ?? `${name} ?`;

console.log(`Shipping ${total} messages to a folder store (node ${process.version})`);
console.log(`  CPU to batch + encode + spool:        ${(addedCpu / total).toFixed(0)} ns/msg`);
console.log(`  CPU including upload until drained:   ${(allCpu / total).toFixed(0)} ns/msg  (${((total / allCpu) * 1e6).toFixed(0)}k msg/s per core)`);
console.log(`  wall clock:                            ${(wall / 1e6).toFixed(0)} ms  (${((total / wall) * 1e6).toFixed(0)}k msg/s)`);
console.log(`  objects: ${keys.length}, ${(bytes / total).toFixed(1)} B/msg stored`);
console.log(`  ${metric('riptide_shipping_sent_total')}, ${metric('riptide_shipping_dropped_total')}`);
await rm(dir, { recursive: true, force: true });

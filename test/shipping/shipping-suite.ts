/**
 * One suite for every object store: the store contract itself, then the whole shipping pipeline
 * against it — normal shipping, an outage while traffic flows, a restart with a full spool, the spool
 * cap, and a corrupted object. `file-store.test.ts` and `s3-store.test.ts` run it.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { MetricsRegistry } from '../../agent/metrics.ts';
import type { Batch, ParsedMessage } from '../../agent/shipping/batch.ts';
import { BatchFormatError, decodeBatch } from '../../agent/shipping/codec.ts';
import { BATCH_PREFIX, neighbourPrefixes, parseBatchKey, quarantineKey, quarantineNoteKey } from '../../agent/shipping/keys.ts';
import { createShipper } from '../../agent/shipping/shipper.ts';
import type { Shipper, ShipperOptions } from '../../agent/shipping/shipper.ts';
import type { ObjectStore } from '../../agent/shipping/store.ts';
import { InvalidKeyError } from '../../agent/shipping/store.ts';
import { quarantine } from '../../functions/runtime/quarantine.ts';
import { MessageFactory } from './synthetic.ts';

export interface StoreHarness {
  /** A fresh, empty store for one test. */
  open(): Promise<ObjectStore>;
  /** Make every store from open() unreachable, then reachable again (same data). */
  stop(): Promise<void>;
  start(): Promise<void>;
  dispose(): Promise<void>;
}

export interface SuiteOptions {
  /** How long the store stays down in the outage test. */
  outageMs: number;
}

const enc = new TextEncoder();

/** One batch object decoded as the functions read it; a corrupt one throws a BatchFormatError naming the key. */
async function readBatch(store: ObjectStore, key: string): Promise<Batch> {
  const bytes = await store.get(key);
  if (bytes === undefined) throw new Error(`batch ${key}: no such object`);
  try {
    return decodeBatch(bytes);
  } catch (err) {
    throw err instanceof BatchFormatError ? err.withKey(key) : err;
  }
}

/** Every batch under batches/, decoded. */
async function readAll(store: ObjectStore): Promise<{ keys: string[]; batches: Batch[] }> {
  const keys = await store.list(BATCH_PREFIX);
  const batches = await Promise.all(keys.map((k) => readBatch(store, k)));
  return { keys, batches };
}

/** How many times each message (by its unique tsNs) arrived. */
function arrivals(batches: Batch[]): Map<bigint, number> {
  const seen = new Map<bigint, number>();
  for (const b of batches) for (const m of b.messages) seen.set(m.tsNs, (seen.get(m.tsNs) ?? 0) + 1);
  return seen;
}

function expectExactlyOnce(sent: bigint[], seen: Map<bigint, number>): void {
  const missing = sent.filter((id) => !seen.has(id));
  const twice = [...seen.entries()].filter(([, n]) => n > 1);
  expect({ missing: missing.length, twice: twice.length }).toEqual({ missing: 0, twice: 0 });
}

function sum(reg: MetricsRegistry, name: string): number {
  const text = reg.render();
  let total = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith(name + ' ') || line.startsWith(name + '{')) total += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return total;
}

export function shippingSuite(name: string, makeHarness: () => Promise<StoreHarness>, suite: SuiteOptions): void {
  describe(`shipping to ${name}`, () => {
    let h: StoreHarness;
    const dirs: string[] = [];
    const shippers: Shipper[] = [];

    beforeAll(async () => {
      h = await makeHarness();
    });
    afterEach(async () => {
      await h.start();
      for (const s of shippers.splice(0)) await s.close();
      for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
    });
    afterAll(async () => {
      await h.dispose();
    });

    async function tempDir(): Promise<string> {
      const d = await mkdtemp(join(tmpdir(), 'riptide-ship-'));
      dirs.push(d);
      return d;
    }

    async function shipper(store: ObjectStore, dataDir: string, extra: Partial<ShipperOptions> = {}): Promise<{ shipper: Shipper; reg: MetricsRegistry; logs: string[] }> {
      const reg = new MetricsRegistry();
      const logs: string[] = [];
      const s = await createShipper({
        store,
        dataDir,
        agentId: 'node-a',
        host: 'node-a.test',
        slotSeconds: 1,
        metrics: reg,
        log: (l) => logs.push(l),
        retry: { initialDelayMs: 50, maxDelayMs: 1000 },
        closeTimeoutMs: 20_000,
        ...extra,
      });
      shippers.push(s);
      return { shipper: s, reg, logs };
    }

    /** Add `perTick` messages every 20 ms until stopped; returns the ids added. */
    function pump(s: Shipper, f: MessageFactory, perTick: number): { ids: bigint[]; stop: () => void } {
      const ids: bigint[] = [];
      const t = setInterval(() => {
        for (let i = 0; i < perTick; i++) {
          const m = f.next();
          if (s.add(m)) ids.push(m.tsNs);
        }
      }, 20);
      return { ids, stop: () => clearInterval(t) };
    }

    describe('object store contract', () => {
      it('puts, gets, overwrites, lists by prefix in order, copies and deletes', async () => {
        const store = await h.open();
        expect(await store.get('a/missing')).toBeUndefined();
        await store.put('batches/2026-01-01/00/n/000000000001/b.rtb', enc.encode('one'));
        await store.put('batches/2026-01-01/00/n/000000000001/a.rtb', enc.encode('two'));
        await store.put('batches/2026-01-01/01/n/000000000002/a.rtb', enc.encode('three'));
        await store.put('other/x', enc.encode('x'));
        await store.put('batches/2026-01-01/00/n/000000000001/a.rtb', enc.encode('two again'));
        expect(Buffer.from((await store.get('batches/2026-01-01/00/n/000000000001/a.rtb'))!).toString()).toBe('two again');
        expect(await store.list('batches/2026-01-01/00/')).toEqual(['batches/2026-01-01/00/n/000000000001/a.rtb', 'batches/2026-01-01/00/n/000000000001/b.rtb']);
        expect(await store.list('batches/')).toHaveLength(3);
        expect(await store.list('batches/2026-01-01/0')).toHaveLength(3);
        expect(await store.list('batches/', { startAfter: 'batches/2026-01-01/00/n/000000000001/a.rtb', limit: 1 })).toEqual(['batches/2026-01-01/00/n/000000000001/b.rtb']);
        expect(await store.list('nothing/here/')).toEqual([]);
        await store.copy('other/x', 'quarantine/other/x');
        expect(Buffer.from((await store.get('quarantine/other/x'))!).toString()).toBe('x');
        await store.delete('other/x');
        await store.delete('other/x');
        expect(await store.get('other/x')).toBeUndefined();
        await expect(store.put('../escape', enc.encode('no'))).rejects.toBeInstanceOf(InvalidKeyError);
        await expect(store.put('a//b', enc.encode('no'))).rejects.toBeInstanceOf(InvalidKeyError);
      });
    });

    it('ships every message once, cut per slot, with processes and closed sockets, findable by neighbour prefixes', async () => {
      const store = await h.open();
      const { shipper: s, reg } = await shipper(store, await tempDir());
      const f = new MessageFactory(11);
      for (const p of f.processes) s.addProcess(p);
      const sent: ParsedMessage[] = [];
      for (let round = 0; round < 3; round++) {
        for (let i = 0; i < 100; i++) {
          const m = f.next();
          sent.push(m);
          expect(s.add(m)).toBe(true);
        }
        await sleep(550);
      }
      s.socketClosed(f.closeSocket(3));
      await s.close();

      const { keys, batches } = await readAll(store);
      expectExactlyOnce(
        sent.map((m) => m.tsNs),
        arrivals(batches),
      );
      expect(new Set(batches.map((b) => b.slot)).size).toBeGreaterThanOrEqual(2);
      const byId = new Map(batches.flatMap((b) => b.messages).map((m) => [m.tsNs, m]));
      expect(byId.get(sent[123].tsNs)).toEqual(sent[123]);
      for (const [i, k] of keys.entries()) {
        const parts = parseBatchKey(k);
        expect(parts).toMatchObject({ agentId: 'node-a', slot: batches[i].slot, part: batches[i].part, run: s.run, slotSeconds: 1 });
      }
      for (const b of batches) {
        const pids = new Set(b.messages.map((m) => m.pid));
        expect(b.processes.map((p) => p.pid).sort()).toEqual(expect.arrayContaining([...pids].sort()));
      }
      expect(batches.flatMap((b) => b.closed)).toHaveLength(1);
      const first = batches[0];
      const around = (await Promise.all(neighbourPrefixes('node-a', first.slot + 1, 1).map((p) => store.list(p)))).flat();
      expect(around).toEqual(expect.arrayContaining(keys.filter((k) => Math.abs(parseBatchKey(k)!.slot - first.slot - 1) <= 1)));
      expect(sum(reg, 'riptide_shipping_received_total')).toBe(300);
      expect(sum(reg, 'riptide_shipping_sent_total')).toBe(300);
      expect(sum(reg, 'riptide_shipping_dropped_total')).toBe(0);
      expect(reg.render()).toMatch(/riptide_shipping_spool_bytes 0/);
    });

    it(
      `loses nothing and duplicates nothing through a ${suite.outageMs / 1000} s store outage while traffic flows`,
      async () => {
        const store = await h.open();
        const { shipper: s, reg, logs } = await shipper(store, await tempDir());
        const p = pump(s, new MessageFactory(21), 4);
        await sleep(1200);
        await h.stop();
        await sleep(suite.outageMs);
        const spooled = s.stats().spoolBatches;
        await h.start();
        await sleep(1200);
        p.stop();
        await s.close();
        expect(spooled).toBeGreaterThan(1);
        const { batches } = await readAll(store);
        expectExactlyOnce(p.ids, arrivals(batches));
        expect(p.ids.length).toBeGreaterThan(100);
        expect(sum(reg, 'riptide_shipping_retried_total')).toBeGreaterThan(0);
        expect(sum(reg, 'riptide_shipping_dropped_total')).toBe(0);
        expect(sum(reg, 'riptide_shipping_sent_total')).toBe(p.ids.length);
        expect(logs.some((l) => l.includes('store unavailable'))).toBe(true);
        expect(logs.some((l) => l.includes('store reachable again'))).toBe(true);
        expect(logs.filter((l) => l.includes('store unavailable')).length).toBeLessThanOrEqual(2 + suite.outageMs / 10_000);
      },
      suite.outageMs + 60_000,
    );

    it('resumes uploading spooled batches after an agent restart', async () => {
      const store = await h.open();
      const dataDir = await tempDir();
      await h.stop();
      const first = await shipper(store, dataDir, { closeTimeoutMs: 300 });
      const f = new MessageFactory(31);
      const ids: bigint[] = [];
      for (let i = 0; i < 200; i++) {
        const m = f.next();
        ids.push(m.tsNs);
        first.shipper.add(m);
      }
      await first.shipper.close();
      expect((await readdir(join(dataDir, 'spool'))).length).toBeGreaterThan(0);
      // A spool file damaged on disk (here: oldest in line) is dropped and counted, not shipped.
      await writeFile(join(dataDir, 'spool', '0000000000000001.5.batches%2Fdamaged.rtb'), 'half a batch');
      await h.start();
      const second = await shipper(store, dataDir);
      expect(await second.shipper.drain(20_000)).toBe(true);
      expect(second.logs.some((l) => l.includes('resuming upload'))).toBe(true);
      expect(second.reg.render()).toContain('riptide_shipping_dropped_total{reason="spool_corrupt"} 5');
      await second.shipper.close();
      expect((await readdir(join(dataDir, 'spool'))).length).toBe(0);
      expectExactlyOnce(ids, arrivals((await readAll(store)).batches));
    });

    it('stays within its memory and spool limits when the cap is hit, counts the drops, and recovers', async () => {
      const store = await h.open();
      const dataDir = await tempDir();
      const spoolMaxBytes = 48 * 1024;
      const maxMemoryBytes = 256 * 1024;
      await h.stop();
      const { shipper: s, reg, logs } = await shipper(store, dataDir, { spoolMaxBytes, maxMemoryBytes, maxBatchBytes: 64 * 1024 });
      const f = new MessageFactory(41);
      let added = 0;
      let peakSpool = 0;
      let peakDisk = 0;
      let peakMemory = 0;
      for (let round = 0; round < 30; round++) {
        for (let i = 0; i < 200; i++) {
          added++;
          s.add(f.next());
        }
        await sleep(20);
        const st = s.stats();
        peakSpool = Math.max(peakSpool, st.spoolBytes);
        peakMemory = Math.max(peakMemory, st.memoryBytes);
        let disk = 0;
        for (const n of await readdir(join(dataDir, 'spool'))) disk += (await stat(join(dataDir, 'spool', n)).catch(() => ({ size: 0 }))).size;
        peakDisk = Math.max(peakDisk, disk);
      }
      await s.flush();
      expect(peakSpool).toBeLessThanOrEqual(spoolMaxBytes);
      expect(peakDisk).toBeLessThanOrEqual(spoolMaxBytes);
      expect(peakMemory).toBeLessThanOrEqual(maxMemoryBytes);
      const dropped = sum(reg, 'riptide_shipping_dropped_total');
      expect(dropped).toBeGreaterThan(0);
      expect(reg.render()).toMatch(/riptide_shipping_dropped_total\{reason="spool_full"\} [1-9]/);
      expect(logs.filter((l) => l.includes('spool full')).length).toBeLessThan(5); // once per burst, not per drop

      await h.start();
      const after: bigint[] = [];
      for (let i = 0; i < 100; i++) {
        const m = f.next();
        after.push(m.tsNs);
        s.add(m);
      }
      await s.close();
      const seen = arrivals((await readAll(store)).batches);
      expectExactlyOnce(after, new Map([...seen].filter(([id]) => after.includes(id))));
      expect([...seen.values()].every((n) => n === 1)).toBe(true);
      // Nothing is lost silently: every message received was either sent or counted as dropped.
      expect(sum(reg, 'riptide_shipping_sent_total') + sum(reg, 'riptide_shipping_dropped_total')).toBe(added + 100);
      expect(sum(reg, 'riptide_shipping_received_total')).toBe(added + 100);
    });

    it('reports a corrupted batch object with a clear BatchFormatError, and can quarantine it', async () => {
      const store = await h.open();
      const { shipper: s } = await shipper(store, await tempDir());
      const f = new MessageFactory(51);
      for (let i = 0; i < 50; i++) s.add(f.next());
      await s.close();
      const [key] = await store.list(BATCH_PREFIX);
      const good = (await store.get(key))!;

      const flipped = good.slice();
      flipped[Math.floor(flipped.length / 2)] ^= 0xff;
      await store.put(key, flipped);
      const err = await readBatch(store, key).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(BatchFormatError);
      expect((err as BatchFormatError).reason).toBe('bad_checksum');
      expect((err as Error).message).toContain(key);

      await store.put(key, good.subarray(0, good.length - 7));
      await expect(readBatch(store, key)).rejects.toMatchObject({ reason: 'truncated' });
      await store.put(key, enc.encode('<Error>not a batch</Error>'));
      await expect(readBatch(store, key)).rejects.toMatchObject({ reason: 'bad_magic' });

      const bad = (await store.get(key))!;
      const note = await quarantine(store, key, bad, 'malformed', await readBatch(store, key).catch((e: unknown) => e));
      expect(note).toMatchObject({ key, reason: 'malformed', error: expect.stringContaining('bad magic') as unknown });
      expect(await store.get(key)).toBeUndefined();
      expect(Buffer.from((await store.get(quarantineKey(key)))!)).toEqual(Buffer.from(bad));
      expect(JSON.parse(Buffer.from((await store.get(quarantineNoteKey(key)))!).toString())).toEqual(note);
      expect(await store.list(BATCH_PREFIX)).toEqual([]);
    });
  });
}

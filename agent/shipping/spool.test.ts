import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DiskSpool } from './spool.ts';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'riptide-spool-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const bytes = (n: number, v = 1) => new Uint8Array(n).fill(v);

describe('DiskSpool', () => {
  it('hands batches out oldest first and survives a reopen (restart)', async () => {
    const s = await DiskSpool.open({ dir, maxBytes: 10_000 });
    await s.append('batches/a/1.rtb', bytes(10, 1), 3);
    await s.append('batches/a/2.rtb', bytes(20, 2), 4);
    await writeFile(join(dir, '.rt-tmp-leftover'), 'x');
    const again = await DiskSpool.open({ dir, maxBytes: 10_000 });
    expect(again.size).toBe(2);
    expect(again.bytes).toBe(30);
    expect(again.messages).toBe(7);
    const e = again.claim();
    expect(e?.key).toBe('batches/a/1.rtb');
    expect(await again.read(e!)).toEqual(bytes(10, 1));
    expect(again.claim()?.key).toBe('batches/a/2.rtb');
    expect(again.claim()).toBeUndefined();
    await again.remove(e!);
    expect(again.size).toBe(1);
    expect((await readdir(dir)).filter((n) => n.startsWith('.rt-tmp-'))).toEqual([]);
    await again.append('batches/a/3.rtb', bytes(5), 1);
    const third = await DiskSpool.open({ dir, maxBytes: 10_000 });
    expect([third.claim()?.key, third.claim()?.key]).toEqual(['batches/a/2.rtb', 'batches/a/3.rtb']);
  });

  it('drops the oldest waiting batch past the cap, never one being uploaded, and reports it', async () => {
    const dropped: string[] = [];
    const s = await DiskSpool.open({ dir, maxBytes: 100, onDrop: (e, reason) => dropped.push(`${e.key}:${reason}`) });
    await s.append('k1', bytes(40), 1);
    await s.append('k2', bytes(40), 1);
    const inFlight = s.claim(); // k1 is being uploaded
    expect(await s.append('k3', bytes(40), 1)).toBe(true);
    expect(dropped).toEqual(['k2:spool_full']);
    expect(s.bytes).toBeLessThanOrEqual(100);
    expect(inFlight?.key).toBe('k1');
    expect(await s.append('big', bytes(101), 1)).toBe(false);
    expect(dropped).toContain('big:too_large');
    s.claim(); // k3 now in flight too: nothing left to drop, so the newcomer goes
    expect(await s.append('k4', bytes(40), 1)).toBe(false);
    expect(dropped).toContain('k4:spool_full');
    expect((await readdir(dir)).length).toBe(2);
  });

  it('re-applies a lowered cap on open', async () => {
    const s = await DiskSpool.open({ dir, maxBytes: 1000 });
    for (let i = 0; i < 5; i++) await s.append(`k${i}`, bytes(100), 1);
    const dropped: string[] = [];
    const again = await DiskSpool.open({ dir, maxBytes: 250, onDrop: (e) => dropped.push(e.key) });
    expect(again.size).toBe(2);
    expect(dropped).toEqual(['k0', 'k1', 'k2']);
  });
});

import { describe, expect, it } from 'vitest';
import { Batcher, MemoryBudget, messageCost } from './batcher.ts';
import type { CutBatch } from './batcher.ts';
import { deserializeBatchBody } from './codec.ts';
import { MessageFactory } from '../../test/shipping/synthetic.ts';
import { beginSlice, endSlice } from '../capture/slice-clock.ts';

function setup(opts: { maxBatchBytes?: number; memory?: number } = {}) {
  let now = 10_000_000;
  const cuts: CutBatch[] = [];
  const budget = new MemoryBudget(opts.memory ?? 1 << 30);
  const b = new Batcher({ agentId: 'a', host: 'h', slotSeconds: 2, run: 7, budget, maxBatchBytes: opts.maxBatchBytes, now: () => now }, (c) => cuts.push(c));
  return { b, cuts, budget, f: new MessageFactory(3), advance: (ms: number) => (now += ms) };
}

describe('Batcher', () => {
  it('cuts one batch per slot, by arrival time, with parts numbered from 0 in each slot', () => {
    const { b, cuts, f, advance } = setup();
    for (let i = 0; i < 5; i++) b.add(f.next());
    advance(2000);
    b.add(f.next());
    expect(cuts).toHaveLength(1);
    expect(cuts[0].batch).toMatchObject({ slot: 5000, slotSeconds: 2, part: 0, run: 7, agentId: 'a', host: 'h' });
    expect(cuts[0].messageCount).toBe(5);
    expect(deserializeBatchBody(cuts[0].body).messages).toHaveLength(5);
    advance(2000);
    b.roll(10_004_000);
    expect(cuts).toHaveLength(2);
    expect(cuts[1].batch).toMatchObject({ slot: 5001, part: 0 });
    b.roll(10_100_000); // an empty slot ships nothing
    expect(cuts).toHaveLength(2);
  });

  it('cuts parts at the size cap', () => {
    const f0 = new MessageFactory(3);
    const cost = messageCost(f0.next());
    const { b, cuts, f } = setup({ maxBatchBytes: cost * 10 });
    for (let i = 0; i < 35; i++) b.add(f.next());
    b.flush();
    expect(cuts.map((c) => c.batch.part)).toEqual(cuts.map((_, i) => i));
    expect(cuts.reduce((n, c) => n + c.messageCount, 0)).toBe(35);
    expect(cuts.reduce((n, c) => n + deserializeBatchBody(c.body).messages.length, 0)).toBe(35);
    expect(cuts.length).toBeGreaterThanOrEqual(3);
  });

  it('refuses messages past the memory budget and accepts again once memory is released', () => {
    const { b, cuts, f, budget } = setup({ memory: 20_000 });
    let accepted = 0;
    for (let i = 0; i < 100; i++) if (b.add(f.next())) accepted++;
    expect(accepted).toBeLessThan(100);
    expect(budget.used).toBeLessThanOrEqual(20_000);
    b.flush();
    budget.release(cuts[0].chargedBytes);
    expect(b.add(f.next())).toBe(true);
  });

  it('includes metadata of the processes that appear, and the closed sockets of the slot', () => {
    const { b, cuts, f } = setup();
    for (const p of f.processes) b.addProcess(p);
    b.flush(); // processes alone ship nothing
    expect(cuts).toHaveLength(0);
    const m = f.next();
    b.add(m);
    b.socketClosed(f.closeSocket(0));
    b.flush();
    const batch = deserializeBatchBody(cuts[0].body);
    expect(batch.processes.map((p) => p.pid)).toContain(m.pid);
    expect(batch.closed).toHaveLength(1);
  });

  it('reads the clock once per drained slice: a message in a slice goes to the slot of its slice', () => {
    const { b, cuts, f, advance } = setup();
    beginSlice(10_000_000); // the slice started in slot 5000
    try {
      advance(2500); // the real clock is in slot 5001 by now
      b.add(f.next());
      b.add(f.next());
      expect(cuts).toHaveLength(0);
    } finally {
      endSlice();
    }
    b.add(f.next()); // outside a slice: the real clock, next slot
    expect(cuts).toHaveLength(1);
    expect(cuts[0].batch.slot).toBe(5000);
    expect(cuts[0].messageCount).toBe(2);
  });
});

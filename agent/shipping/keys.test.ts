import { describe, expect, it } from 'vitest';
import { BatchKeyError, batchKey, hourPrefix, neighbourPrefixes, parseBatchKey, quarantineKey, quarantineNoteKey, slotPrefix, toAgentId } from './keys.ts';

describe('batch keys', () => {
  const parts = { agentId: 'node-a', slot: 566_666_666, slotSeconds: 3, run: 1_763_703_250_123, part: 2 };

  it('lays keys out by hour, agent and slot, zero-padded so listing order is time order', () => {
    const key = batchKey(parts);
    expect(key).toBe('batches/2023-11-14/22/node-a/000566666666/1763703250123-000002-3s.rtb');
    expect(key.startsWith(slotPrefix('node-a', 566_666_666, 3))).toBe(true);
    expect(key.startsWith(hourPrefix(566_666_666 * 3))).toBe(true);
    expect(batchKey({ ...parts, part: 10 }) > batchKey({ ...parts, part: 9 })).toBe(true);
    expect(batchKey({ ...parts, slot: parts.slot + 1, part: 0 }) > key).toBe(true);
  });

  it('is deterministic (idempotent uploads) and round-trips through parseBatchKey', () => {
    expect(batchKey(parts)).toBe(batchKey({ ...parts }));
    expect(parseBatchKey(batchKey(parts))).toEqual(parts);
    expect(parseBatchKey(quarantineKey(batchKey(parts)))).toEqual(parts);
    expect(parseBatchKey('batches/x.rtb')).toBeUndefined();
    expect(parseBatchKey(batchKey(parts).replace('2023-11-14', '2023-11-16'))).toBeUndefined();
    expect(parseBatchKey(batchKey(parts) + '.reason.txt')).toBeUndefined();
    expect(quarantineNoteKey(batchKey(parts))).toBe(`${quarantineKey(batchKey(parts))}.reason.json`);
    expect(parseBatchKey(quarantineNoteKey(batchKey(parts)))).toBeUndefined();
  });

  it('gives the prefixes of a slot and its neighbours, across an hour boundary', () => {
    const slot = 3600 / 2 - 1; // last 2 s slot of the first hour of 1970-01-01
    const [a, b, c] = neighbourPrefixes('n1', slot, 2);
    expect(a).toBe('batches/1970-01-01/00/n1/000000001798/');
    expect(b).toBe('batches/1970-01-01/00/n1/000000001799/');
    expect(c).toBe('batches/1970-01-01/01/n1/000000001800/');
  });

  it('refuses agent ids that are not safe path segments, and sanitises host names', () => {
    expect(() => batchKey({ ...parts, agentId: '../etc' })).toThrow(BatchKeyError);
    expect(() => batchKey({ ...parts, agentId: '' })).toThrow(BatchKeyError);
    expect(toAgentId('my host/01.example')).toBe('my_host_01.example');
    expect(toAgentId('..')).toBe('_.');
  });
});

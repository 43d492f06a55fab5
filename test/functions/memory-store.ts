/**
 * Test doubles for the shipping ports: an in-memory object store, a key scheme and a JSON batch
 * codec (bigints as strings). The real ones (agent/shipping) satisfy the same ports.
 */
import type { Batch } from '../../agent/shipping/batch.ts';
import type { BatchDecoder, BatchKeyScheme, ObjectStorePort } from '../../functions/runtime/ports.ts';

export class MemoryStore implements ObjectStorePort {
  readonly objects = new Map<string, Uint8Array>();
  async get(key: string): Promise<Uint8Array> {
    const v = this.objects.get(key);
    if (!v) throw Object.assign(new Error(`no such key ${key}`), { code: 'NoSuchKey' });
    return v;
  }
  async put(key: string, body: Uint8Array): Promise<void> {
    this.objects.set(key, body);
  }
  async list(prefix: string): Promise<string[]> {
    return [...this.objects.keys()].filter((k) => k.startsWith(prefix)).sort();
  }
  async delete(key: string): Promise<void> {
    this.objects.delete(key);
  }
}

export const testKeys: BatchKeyScheme = {
  root: 'batches/',
  parse(key) {
    const m = /^batches\/([^/]+)\/(\d{12})\/(\d{4})(?:-(\d+)s)?\.json$/.exec(key);
    return m ? { agentId: m[1], slot: Number(m[2]), slotSeconds: m[4] ? Number(m[4]) : 5, part: Number(m[3]) } : null;
  },
  slotPrefix: (agentId, slot) => `batches/${agentId}/${String(slot).padStart(12, '0')}/`,
  recentPrefixes: () => ['batches/'],
};

export function testKey(b: Batch): string {
  const suffix = b.slotSeconds === 5 ? '' : `-${b.slotSeconds}s`;
  return `${testKeys.slotPrefix(b.agentId, b.slot, b.slotSeconds)}${String(b.part).padStart(4, '0')}${suffix}.json`;
}

export function encodeJson(b: Batch): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(b, (_k, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v instanceof Uint8Array ? [] : v)));
}

export class JsonFormatError extends Error {
  readonly reason = 'malformed';
}

export const decodeJson: BatchDecoder = (bytes, key) => {
  try {
    const b = JSON.parse(new TextDecoder().decode(bytes), (k, v: unknown) => {
      if (typeof v === 'string' && /^\d+n$/.test(v)) return BigInt(v.slice(0, -1));
      if (k === 'payload') return new Uint8Array(0);
      return v;
    }) as Batch;
    if (!b || !Array.isArray(b.messages)) throw new Error('no messages');
    return b;
  } catch (err) {
    throw new JsonFormatError(`batch ${key}: ${(err as Error).message}`);
  }
};

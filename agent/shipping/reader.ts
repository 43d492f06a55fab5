/**
 * The functions' side of shipping: read a batch object, find its neighbours, quarantine a bad one.
 *
 * @example
 *   try {
 *     const batch = await readBatch(store, key);
 *   } catch (err) {
 *     if (err instanceof BatchFormatError) await quarantineBatch(store, key, err.message);
 *     else throw err;
 *   }
 */
import type { Batch } from './batch.ts';
import type { DecodeOptions } from './codec.ts';
import { BatchFormatError, decodeBatch } from './codec.ts';
import { neighbourPrefixes, quarantineKey } from './keys.ts';
import type { ObjectStore } from './store.ts';

export class BatchNotFoundError extends Error {
  override readonly name = 'BatchNotFoundError';
  constructor(readonly key: string) {
    super(`batch ${key}: no such object`);
  }
}

/**
 * Read and decode one batch. Throws {@link BatchFormatError} (with the key in its message) when the
 * object is corrupt, {@link BatchNotFoundError} when it is missing, and the store's error otherwise.
 */
export async function readBatch(store: ObjectStore, key: string, options?: DecodeOptions): Promise<Batch> {
  const bytes = await store.get(key);
  if (bytes === undefined) throw new BatchNotFoundError(key);
  try {
    return decodeBatch(bytes, options);
  } catch (err) {
    if (err instanceof BatchFormatError) throw err.withKey(key);
    throw err;
  }
}

/** Keys of every object in slots `slot - radius … slot + radius` of one agent (a few small lists). */
export async function listNeighbourBatches(store: ObjectStore, agentId: string, slot: number, slotSeconds: number, radius = 1): Promise<string[]> {
  const lists = await Promise.all(neighbourPrefixes(agentId, slot, slotSeconds, radius).map((p) => store.list(p)));
  return lists.flat();
}

/**
 * Move a batch that cannot be read out of the way: copy to `quarantine/<key>`, write the reason
 * beside it (`.reason.txt`), then delete the original. Returns the quarantine key.
 */
export async function quarantineBatch(store: ObjectStore, key: string, reason: string): Promise<string> {
  const to = quarantineKey(key);
  await store.copy(key, to);
  await store.put(`${to}.reason.txt`, new TextEncoder().encode(`${new Date().toISOString()} ${reason}\n`));
  await store.delete(key);
  return to;
}

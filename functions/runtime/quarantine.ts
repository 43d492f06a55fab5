/**
 * The one way a batch object that cannot be used leaves the input: copied to `quarantine/<key>`
 * (agent/shipping/keys.ts `quarantineKey`), a JSON note beside it (`<that>.reason.json`,
 * {@link QuarantineNote}), then deleted, so no window reads it again and processing carries on.
 * Every object moved is counted on `/metrics`: `riptide_functions_quarantined_total{reason}` and,
 * as one of the reasons an input is dropped, `riptide_functions_dropped_total{reason="quarantined"}`.
 *
 * @example
 *   const note = await quarantine(store, key, bytes, 'malformed', err);
 *   // store: quarantine/<key>, quarantine/<key>.reason.json; the original is gone
 */
import { metrics } from '../../agent/metrics.ts';
import { quarantineKey, quarantineNoteKey } from '../../agent/shipping/keys.ts';
import type { QuarantineNote } from '../../agent/shipping/keys.ts';
import type { ObjectStorePort } from './ports.ts';

export type { QuarantineNote };

const quarantined = metrics.counter('riptide_functions_quarantined_total', 'Batch objects moved to quarantine/, by reason (malformed, key_mismatch, invalid, …)');
const dropped = metrics.counter('riptide_functions_dropped_total', 'Batch objects dropped, by reason (quarantined = malformed)');

/**
 * Move `key` (whose content is `bytes`) to quarantine with a note saying why. The copy and the note
 * are written before the original is deleted: a crash in between leaves the object where a retry
 * quarantines it again (same keys, overwritten), never lost.
 */
export async function quarantine(store: Pick<ObjectStorePort, 'put' | 'delete'>, key: string, bytes: Uint8Array, reason: string, err: unknown, now = new Date()): Promise<QuarantineNote> {
  const note: QuarantineNote = { key, reason, error: err instanceof Error ? err.message : String(err), at: now.toISOString() };
  await store.put(quarantineKey(key), bytes);
  await store.put(quarantineNoteKey(key), new TextEncoder().encode(JSON.stringify(note, null, 2) + '\n'));
  await store.delete(key);
  quarantined.inc({ reason });
  dropped.inc({ reason: 'quarantined' });
  return note;
}

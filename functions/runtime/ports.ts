/**
 * What the functions need from the shipping side, as small interfaces: read and move objects, name
 * and parse batch keys, decode a batch. `shipping.ts` binds them to agent/shipping; tests bind them
 * to in-memory fakes. Keeping the handlers on these ports keeps them free of any runtime.
 */
import type { Batch } from '../../agent/shipping/batch.ts';

export interface ObjectStorePort {
  get(key: string): Promise<Uint8Array>;
  put(key: string, body: Uint8Array): Promise<void>;
  /** Every key under the prefix, in lexicographic order. */
  list(prefix: string): Promise<string[]>;
  delete(key: string): Promise<void>;
}

export interface BatchKeyInfo {
  agentId: string;
  slot: number;
  slotSeconds: number;
  part: number;
}

export interface BatchKeyScheme {
  /** null when the key is not a batch object (a quarantine note, a plugin, a stray file). */
  parse(key: string): BatchKeyInfo | null;
  /** The prefix under which every part of (agent, slot) lives. */
  slotPrefix(agentId: string, slot: number, slotSeconds: number): string;
  /** The prefix of all batches (a first poll lists under it). */
  root: string;
  /** Prefixes that hold every batch written since `sinceSec` (later polls list only these). */
  recentPrefixes?(sinceSec: number, nowSec: number): string[];
}

/** Decode an object; throws a typed error (BatchFormatError) on anything malformed. */
export type BatchDecoder = (bytes: Uint8Array, key: string) => Batch;

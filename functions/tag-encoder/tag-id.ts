/**
 * Smart-encoding ids: a tag id is a 53-bit hash of "kind:key", so every replica (and the custom
 * tags API, and the query side) computes the same id for the same entity without coordination or a
 * lookup. 53 bits keep ids exact in JavaScript numbers and JSON; a collision among a million
 * entities of all kinds has a probability below 1e-4. 0 means "unknown".
 *
 * Keys: host → host name; process → "host/pid/startTime"; container → container id;
 * pod, service → "namespace/name" (a service on a plain host → its process name); node, namespace → name.
 *
 * @example
 *   tagId('service', 'shop/checkout'); // the service_id of every span of that Kubernetes service
 */
import { Hash64 } from '../span-builder/hash.ts';

export type TagKind = 'host' | 'process' | 'container' | 'pod' | 'service' | 'node' | 'namespace';
export const TAG_KINDS: readonly TagKind[] = ['host', 'process', 'container', 'pod', 'service', 'node', 'namespace'];

const cache = new Map<string, number>();

export function tagId(kind: TagKind, key: string): number {
  if (key === '') return 0;
  const k = `${kind}:${key}`;
  let id = cache.get(k);
  if (id === undefined) {
    id = new Hash64(0x7461).str(k).id53();
    if (cache.size > 100_000) cache.clear();
    cache.set(k, id);
  }
  return id;
}

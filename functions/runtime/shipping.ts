/**
 * The ports bound to agent/shipping: its ObjectStore (file:// or s3://), its key layout
 * (`batches/<date>/<hour>/<agent>/<slot>/<run>-<part>-<slotSeconds>s.rtb`) and its codec.
 */
import { decodeBatch } from '../../agent/shipping/codec.ts';
import { BATCH_PREFIX, hourPrefix, parseBatchKey, slotPrefix } from '../../agent/shipping/keys.ts';
import type { ObjectStore } from '../../agent/shipping/store.ts';
import type { BatchDecoder, BatchKeyScheme, ObjectStorePort } from './ports.ts';

export function storePort(store: ObjectStore): ObjectStorePort {
  return {
    get: async (key) => {
      const v = await store.get(key);
      if (v === undefined) throw Object.assign(new Error(`no such object ${key}`), { code: 'NoSuchKey' });
      return v;
    },
    put: (key, body) => store.put(key, body),
    list: (prefix) => store.list(prefix),
    delete: (key) => store.delete(key),
  };
}

export const shippingKeys: BatchKeyScheme = {
  root: BATCH_PREFIX,
  parse(key) {
    if (!key.startsWith(BATCH_PREFIX)) return null; // quarantined copies parse too: not ours to take
    const p = parseBatchKey(key);
    return p ? { agentId: p.agentId, slot: p.slot, slotSeconds: p.slotSeconds, part: p.part } : null;
  },
  slotPrefix: (agentId, slot, slotSeconds) => slotPrefix(agentId, slot, slotSeconds),
  recentPrefixes(sinceSec, nowSec) {
    const out = new Set<string>();
    for (let t = Math.floor(sinceSec / 3600) * 3600; t <= nowSec; t += 3600) out.add(hourPrefix(t));
    out.add(hourPrefix(nowSec));
    return [...out];
  },
};

export const shippingDecoder: BatchDecoder = (bytes) => decodeBatch(bytes);

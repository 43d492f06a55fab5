/**
 * Custom tags (a CMDB's owner, team, tier…) for a service, host or any tagged entity, injected
 * through the API and stored in `riptide.custom_tags` apart from the spans: attaching or changing a
 * tag rewrites nothing; queries join on the entity's tag id, which the API derives from the same
 * (kind, key) the encoder uses — so tags may even be set before the first span arrives.
 *
 * @example
 *   await setCustomTags(ch, { kind: 'service', key: 'shop/checkout', tags: { owner: 'team-a', tier: null } });
 *   await getCustomTags(ch, 'service', 'shop/checkout'); // { id, kind, key, tags: { owner: 'team-a' } }
 */
import type { ClickHouse } from '../storage/clickhouse.ts';
import { queryRows } from '../storage/clickhouse.ts';
import { insertCustomTags } from '../storage/span-store.ts';
import type { CustomTagRow } from '../storage/span-store.ts';
import { TAG_KINDS, tagId } from './tag-id.ts';
import type { TagKind } from './tag-id.ts';

export interface CustomTagsUpdate {
  kind: TagKind;
  /** The entity key: a host name, "namespace/name" for Kubernetes services and pods, a process name for a host service. */
  key: string;
  /** Values to set; null deletes the tag. */
  tags: Record<string, string | null>;
}

export interface CustomTags {
  id: number;
  kind: TagKind;
  key: string;
  tags: Record<string, string>;
}

/** Validates untrusted input; returns a reason when it is not a valid update. */
export function parseCustomTagsUpdate(body: unknown): CustomTagsUpdate | string {
  if (typeof body !== 'object' || body === null) return 'body must be a JSON object';
  const b = body as Record<string, unknown>;
  if (typeof b.kind !== 'string' || !TAG_KINDS.includes(b.kind as TagKind)) return `kind must be one of ${TAG_KINDS.join(', ')}`;
  if (typeof b.key !== 'string' || b.key === '' || b.key.length > 512) return 'key must be a non-empty string (at most 512 characters)';
  if (typeof b.tags !== 'object' || b.tags === null || Array.isArray(b.tags)) return 'tags must be an object of name → string (or null to delete)';
  const tags: Record<string, string | null> = {};
  const entries = Object.entries(b.tags as Record<string, unknown>);
  if (entries.length === 0 || entries.length > 100) return 'tags must hold 1 to 100 entries';
  for (const [k, v] of entries) {
    if (!/^[A-Za-z0-9_.\-/]{1,128}$/.test(k)) return `tag name "${k}" must be 1-128 characters of letters, digits, _ . - /`;
    if (v !== null && typeof v !== 'string') return `tag "${k}" must be a string or null`;
    if (typeof v === 'string' && v.length > 4096) return `tag "${k}" is longer than 4096 characters`;
    tags[k] = v;
  }
  return { kind: b.kind as TagKind, key: b.key, tags };
}

export async function setCustomTags(ch: ClickHouse, u: CustomTagsUpdate, nowMs = Date.now()): Promise<CustomTags> {
  const id = tagId(u.kind, u.key);
  const rows: CustomTagRow[] = Object.entries(u.tags).map(([key, value]) => ({ id, kind: u.kind, name: u.key, key, value: value ?? '', updated_at: nowMs, _deleted: value === null ? 1 : 0 }));
  await insertCustomTags(ch, rows);
  return getCustomTags(ch, u.kind, u.key);
}

export async function getCustomTags(ch: ClickHouse, kind: TagKind, key: string): Promise<CustomTags> {
  const id = tagId(kind, key);
  const rows = await queryRows<{ key: string; value: string }>(ch, 'SELECT key, value FROM riptide.custom_tags FINAL WHERE id = {id:UInt64} ORDER BY key', { id });
  const tags: Record<string, string> = {};
  for (const r of rows) tags[r.key] = r.value;
  return { id, kind, key, tags };
}

/**
 * The plugin catalog, kept in the object store under `plugins/` and nowhere else, so it scales with
 * the bucket and any number of API replicas can share it.
 *
 *   plugins/<name>/<version>/module.wasm      the module, byte for byte as published
 *   plugins/<name>/<version>/signature.json   the publisher's ed25519 signature
 *   plugins/<name>/<version>/manifest.json    canonical manifest — written LAST: the commit point
 *   plugins/<name>/<version>/yanked.json      present once yanked
 *   plugins/_index/<name>.json                per-name summary (versions, owner key, metadata)
 *   plugins/_locks/<name>/<ms>-<random>       short-lived claims (see {@link NameLock})
 *
 * A version exists when its manifest exists: readers go through the manifest (or the index, which
 * is written after it), so a module without a manifest — a crashed publish — is never served and
 * the next publish of that version overwrites it.
 */
import { randomBytes } from 'node:crypto';
import { classifyStoreError } from '../../agent/shipping/store.ts';
import type { ObjectStore } from '../../agent/shipping/store.ts';
import type { PluginManifest, ProtocolDecl } from '../../sdk-plugin/src/manifest.ts';
import type { HookName } from '../../sdk-plugin/src/abi.ts';
import type { SignatureFile } from '../../lib/marketplace/signing.ts';
import { canonicalJson } from '../../lib/marketplace/signing.ts';
import { maxSatisfying, sortVersions } from '../../lib/marketplace/semver.ts';

export interface VersionEntry {
  version: string;
  published_at: string;
  yanked: boolean;
  sha256: string;
  size: number;
  key_id: string;
  hooks: HookName[];
  protocols: ProtocolDecl[];
}

/** `plugins/_index/<name>.json`. */
export interface NameIndex {
  name: string;
  /** The key that signed the first version; later versions must be signed by it too. */
  owner_key_id: string;
  description: string;
  /** Ascending by semver. */
  versions: VersionEntry[];
  updated_at: string;
}

export interface PluginSummary {
  name: string;
  description: string;
  latest: string | null;
  versions: string[];
  hooks: HookName[];
  protocols: string[];
  owner_key_id: string;
  updated_at: string;
}

export interface StoredVersion {
  manifest: PluginManifest;
  manifestBytes: Uint8Array;
  signature: SignatureFile;
  yanked: boolean;
}

const enc = new TextEncoder();
const dec = new TextDecoder();
const json = (v: unknown): Uint8Array => enc.encode(JSON.stringify(v, null, 2) + '\n');

export const keys = {
  version: (name: string, version: string): string => `plugins/${name}/${version}/`,
  manifest: (name: string, version: string): string => `plugins/${name}/${version}/manifest.json`,
  module: (name: string, version: string): string => `plugins/${name}/${version}/module.wasm`,
  signature: (name: string, version: string): string => `plugins/${name}/${version}/signature.json`,
  yanked: (name: string, version: string): string => `plugins/${name}/${version}/yanked.json`,
  index: (name: string): string => `plugins/_index/${name}.json`,
  indexPrefix: 'plugins/_index/',
  locks: (name: string): string => `plugins/_locks/${name}/`,
};

/** Someone else holds the name's lock for longer than we wait: the caller should retry. */
export class CatalogBusy extends Error {}

/**
 * Mutual exclusion per plugin name across every replica sharing the store, built from plain
 * put/list/delete (S3 has no exclusive create that every S3-compatible server supports):
 *
 *  1. write a claim `plugins/_locks/<name>/<ms>-<random>`;
 *  2. list the claims: if ours is the only live one, we hold the lock;
 *  3. otherwise delete ours, wait a random while and try again.
 *
 * With read-after-write consistent put and list (S3 since 2020, a local folder, s3rver), two
 * contenders can never both see themselves alone: whoever lists second sees the other's claim.
 * Both may see each other and back off; the random wait breaks the tie. A claim older than
 * `ttlMs` (a crashed holder) is ignored and removed. Inside one process a promise chain orders
 * callers first, so a single API server never contends with itself.
 */
export class NameLock {
  private readonly local = new Map<string, Promise<unknown>>();

  constructor(
    private readonly store: ObjectStore,
    private readonly ttlMs = 60_000,
    private readonly waitMs = 5_000,
  ) {}

  async run<T>(name: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.local.get(name) ?? Promise.resolve();
    const next = prev.catch(() => undefined).then(() => this.runExclusive(name, fn));
    this.local.set(name, next);
    try {
      return await next;
    } finally {
      if (this.local.get(name) === next) this.local.delete(name);
    }
  }

  private async runExclusive<T>(name: string, fn: () => Promise<T>): Promise<T> {
    const prefix = keys.locks(name);
    const deadline = Date.now() + this.waitMs;
    for (let attempt = 0; ; attempt++) {
      const claim = `${prefix}${String(Date.now()).padStart(15, '0')}-${randomBytes(8).toString('hex')}`;
      let alone = false;
      try {
        await this.store.put(claim, new Uint8Array(0));
        const now = Date.now();
        const live: string[] = [];
        for (const k of await this.store.list(prefix)) {
          const ms = Number(k.slice(prefix.length).split('-')[0]);
          if (k !== claim && Number.isFinite(ms) && now - ms > this.ttlMs) await this.store.delete(k);
          else live.push(k);
        }
        alone = live.length === 1 && live[0] === claim;
      } catch (err) {
        // a store hiccup while claiming (s3rver answers 500 to racing lists) is contention, not failure
        await this.store.delete(claim).catch(() => undefined);
        if (classifyStoreError(err) !== 'retryable' || Date.now() > deadline) throw err;
      }
      if (alone) {
        try {
          return await fn();
        } finally {
          // a claim that cannot be removed expires after ttlMs
          await this.store.delete(claim).catch(() => this.store.delete(claim).catch(() => undefined));
        }
      }
      await this.store.delete(claim).catch(() => undefined);
      if (Date.now() > deadline) throw new CatalogBusy(`another publish or yank of "${name}" is in progress; try again`);
      await new Promise((r) => setTimeout(r, 10 + Math.random() * Math.min(400, 25 * 2 ** attempt)));
    }
  }
}

/** Read and write access to the catalog. Validation happens before (see app.ts); this only stores. */
export class Catalog {
  readonly lock: NameLock;

  constructor(
    readonly store: ObjectStore,
    options: { lockTtlMs?: number; lockWaitMs?: number } = {},
  ) {
    this.lock = new NameLock(store, options.lockTtlMs, options.lockWaitMs);
  }

  private async readJson<T>(key: string): Promise<T | undefined> {
    const b = await this.store.get(key);
    if (b === undefined) return undefined;
    try {
      return JSON.parse(dec.decode(b)) as T;
    } catch {
      return undefined;
    }
  }

  async index(name: string): Promise<NameIndex | undefined> {
    return this.readJson<NameIndex>(keys.index(name));
  }

  /** Every name's index. One LIST of `plugins/_index/` plus one GET per name. */
  async all(): Promise<NameIndex[]> {
    const ks = await this.store.list(keys.indexPrefix);
    const out: NameIndex[] = [];
    for (let i = 0; i < ks.length; i += 16) {
      const got = await Promise.all(ks.slice(i, i + 16).map((k) => this.readJson<NameIndex>(k)));
      for (const g of got) if (g) out.push(g);
    }
    return out;
  }

  /** A published version (manifest present), or undefined. */
  async version(name: string, version: string): Promise<StoredVersion | undefined> {
    const manifestBytes = await this.store.get(keys.manifest(name, version));
    if (!manifestBytes) return undefined;
    const [signature, yanked] = await Promise.all([this.readJson<SignatureFile>(keys.signature(name, version)), this.store.get(keys.yanked(name, version))]);
    if (!signature) return undefined;
    return { manifest: JSON.parse(dec.decode(manifestBytes)) as PluginManifest, manifestBytes, signature, yanked: yanked !== undefined };
  }

  async module(name: string, version: string): Promise<Uint8Array | undefined> {
    // only serve a module whose version is committed
    if (!(await this.store.get(keys.manifest(name, version)))) return undefined;
    return this.store.get(keys.module(name, version));
  }

  /** The highest non-yanked version matching `range` (throws VersionRangeError on a bad range). */
  async resolve(name: string, range: string): Promise<string | undefined> {
    const idx = await this.index(name);
    if (!idx) return undefined;
    return maxSatisfying(idx.versions.filter((v) => !v.yanked).map((v) => v.version), range);
  }

  /**
   * Stores a validated version under the name's lock. Module and signature first, the manifest
   * (commit point) next, the index last. Returns 'duplicate' if the version exists and
   * 'owner_mismatch' if the name belongs to another key.
   */
  async publish(p: { manifest: PluginManifest; module: Uint8Array; signature: SignatureFile; description?: string }): Promise<'ok' | 'duplicate' | { owner: string }> {
    const { manifest: m } = p;
    return this.lock.run(m.name, async () => {
      const idx = await this.index(m.name);
      if (idx && idx.owner_key_id !== p.signature.keyId) return { owner: idx.owner_key_id };
      const existing = await this.store.get(keys.manifest(m.name, m.version));
      if (existing) {
        // a crash between manifest and index leaves the version out of the index: mend it
        if (!idx?.versions.some((v) => v.version === m.version)) {
          const st = await this.version(m.name, m.version);
          const base: NameIndex = idx ?? { name: m.name, owner_key_id: st?.signature.keyId ?? p.signature.keyId, description: '', versions: [], updated_at: '' };
          if (st) await this.writeIndex(m.name, base, st.manifest, st.signature.keyId, (await this.store.get(keys.module(m.name, m.version)))?.length ?? 0);
        }
        return 'duplicate';
      }
      await this.store.put(keys.module(m.name, m.version), p.module);
      await this.store.put(keys.signature(m.name, m.version), json(p.signature));
      await this.store.put(keys.manifest(m.name, m.version), enc.encode(canonicalJson(m)));
      const base: NameIndex = idx ?? { name: m.name, owner_key_id: p.signature.keyId, description: '', versions: [], updated_at: '' };
      if (p.description !== undefined && p.description !== '') base.description = p.description;
      await this.writeIndex(m.name, base, m, p.signature.keyId, p.module.length);
      return 'ok';
    });
  }

  private async writeIndex(name: string, idx: NameIndex, m: PluginManifest, keyId: string, size: number): Promise<void> {
    const entry: VersionEntry = { version: m.version, published_at: new Date().toISOString(), yanked: false, sha256: m.sha256, size, key_id: keyId, hooks: m.hooks, protocols: m.protocols };
    const versions = [...idx.versions.filter((v) => v.version !== m.version), entry];
    const order = sortVersions(versions.map((v) => v.version));
    versions.sort((a, b) => order.indexOf(a.version) - order.indexOf(b.version));
    await this.store.put(keys.index(name), json({ ...idx, versions, updated_at: entry.published_at }));
  }

  /** Marks a version yanked: range resolution skips it; an exact fetch still works. */
  async yank(name: string, version: string, keyId?: string): Promise<'ok' | 'not_found'> {
    return this.lock.run(name, async () => {
      const idx = await this.index(name);
      const entry = idx?.versions.find((v) => v.version === version);
      if (!idx || !entry || !(await this.store.get(keys.manifest(name, version)))) return 'not_found';
      await this.store.put(keys.yanked(name, version), json({ yanked_at: new Date().toISOString(), key_id: keyId ?? null }));
      entry.yanked = true;
      await this.store.put(keys.index(name), json({ ...idx, updated_at: new Date().toISOString() }));
      return 'ok';
    });
  }
}

export function summarize(idx: NameIndex): PluginSummary {
  const live = idx.versions.filter((v) => !v.yanked);
  const latestEntry = live.filter((v) => !v.version.includes('-')).at(-1) ?? live.at(-1);
  const hooks = new Set<HookName>();
  const protocols = new Set<string>();
  for (const v of latestEntry ? [latestEntry] : idx.versions) {
    v.hooks.forEach((h) => hooks.add(h));
    v.protocols.forEach((p) => protocols.add(p.name));
  }
  return {
    name: idx.name,
    description: idx.description,
    latest: latestEntry?.version ?? null,
    versions: idx.versions.map((v) => v.version),
    hooks: [...hooks],
    protocols: [...protocols],
    owner_key_id: idx.owner_key_id,
    updated_at: idx.updated_at,
  };
}

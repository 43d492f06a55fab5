/**
 * The agent's and CLI's side of the plugin marketplace: resolve `name@range`, download, verify the
 * module hash and the publisher's ed25519 signature against the keys this host trusts, and write a
 * local plugin folder the {@link PluginHost} loads (and hot-reloads) like any other.
 *
 * Layout under the plugins folder (`<data-dir>/plugins` for the agent):
 *
 *   <name>/<version>/{manifest.json, <module>.wasm, signature.json}   one folder per verified version
 *   <name>/current -> <version>                                       symlink, swapped atomically
 *
 * The host is pointed at `<name>/current`; swapping the link is what makes it reload.
 * Anything refused (tampered, unsigned, untrusted key, bad manifest) is one log line and
 * `riptide_marketplace_refused_total{reason}`; what runs keeps running.
 *
 * @example
 *   const client = new MarketplaceClient({ url: 'http://127.0.0.1:8686', trusted: trustedKeys([pubPem]) });
 *   const r = await client.install(parsePluginSpec('tinyrpc@^1')!, '/var/lib/riptide/plugins');
 *   // r.current === '/var/lib/riptide/plugins/tinyrpc/current'
 */
import { randomBytes } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { mkdir, readFile, readlink, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { join, resolve as resolvePath } from 'node:path';
import { metrics as globalMetrics } from '../metrics.ts';
import type { Counter, MetricsRegistry } from '../metrics.ts';
import { ManifestError, parseManifest } from '../../sdk-plugin/src/manifest.ts';
import type { PluginManifest } from '../../sdk-plugin/src/manifest.ts';
import { sha256Hex } from '../../sdk-plugin/src/hash.ts';
import { KeyError, MARKETPLACE_NAME_RE, canonicalJson, trustedKeys, verifyPluginSignature } from '../../lib/marketplace/signing.ts';
import type { SignatureFile, TrustedKeys } from '../../lib/marketplace/signing.ts';
import { compareVersions, parseRange, parseVersion, satisfies, sortVersions } from '../../lib/marketplace/semver.ts';

export interface PluginSpec {
  name: string;
  range: string;
}

/** `name@range` (e.g. `tinyrpc@^1.2`); undefined for anything else (a path). */
export function parsePluginSpec(s: string): PluginSpec | undefined {
  const at = s.indexOf('@');
  if (at <= 0) return undefined;
  const name = s.slice(0, at);
  const range = s.slice(at + 1).trim() || '*';
  if (!MARKETPLACE_NAME_RE.test(name)) return undefined;
  parseRange(range); // throws VersionRangeError with one clear line
  return { name, range };
}

export type RefusedReason = 'hash_mismatch' | 'unsigned' | 'bad_signature' | 'untrusted_key' | 'invalid_manifest' | 'name_mismatch';

/** A download that failed verification: never written where the host looks. */
export class MarketplaceRefused extends Error {
  constructor(
    readonly reason: RefusedReason,
    message: string,
  ) {
    super(message);
  }
}

/** The marketplace could not be asked (network, 4xx/5xx). */
export class MarketplaceError extends Error {
  constructor(
    message: string,
    readonly status?: number,
  ) {
    super(message);
  }
}

/** What `GET …/resolve` and `GET …/{version}` return. */
export interface RemoteVersion {
  name: string;
  version: string;
  yanked: boolean;
  manifest: unknown;
  signature: unknown;
  module_url: string;
}

export interface InstallResult {
  name: string;
  version: string;
  /** `<dir>/<name>/<version>` */
  dir: string;
  /** `<dir>/<name>/current`: what to hand the plugin host. */
  current: string;
  /** False when that version was already current. */
  changed: boolean;
}

export interface MarketplaceClientOptions {
  /** Base URL of the server (the query server that mounts the marketplace), e.g. http://127.0.0.1:8686. */
  url: string;
  trusted: TrustedKeys;
  metrics?: MetricsRegistry;
  log?: (line: string) => void;
  timeoutMs?: number;
}

export class MarketplaceClient {
  readonly base: string;
  private readonly refused: Counter;
  private readonly log: (line: string) => void;
  private readonly timeoutMs: number;
  /** Versions already refused: not downloaded, logged or counted again on every poll. */
  private readonly refusedVersions = new Map<string, MarketplaceRefused>();

  constructor(private readonly o: MarketplaceClientOptions) {
    this.base = o.url.replace(/\/+$/, '');
    const reg = o.metrics ?? globalMetrics;
    this.refused = reg.counter('riptide_marketplace_refused_total', 'Marketplace plugin downloads refused before loading (hash_mismatch, unsigned, bad_signature, untrusted_key, invalid_manifest, name_mismatch)');
    this.log = o.log ?? ((l) => process.stderr.write(l + '\n'));
    this.timeoutMs = o.timeoutMs ?? 15_000;
  }

  private async request(path: string, init: RequestInit = {}): Promise<Response> {
    let res: Response;
    try {
      res = await fetch(this.base + path, { ...init, signal: AbortSignal.timeout(this.timeoutMs) });
    } catch (err) {
      const cause = (err as { cause?: { code?: string } }).cause?.code;
      throw new MarketplaceError(`cannot reach the marketplace at ${this.base}: ${cause ?? (err as Error).message}`);
    }
    if (!res.ok) {
      let msg = res.statusText;
      try {
        msg = ((await res.json()) as { error?: string }).error ?? msg;
      } catch {
        // not JSON
      }
      throw new MarketplaceError(`marketplace ${res.status}: ${msg}`, res.status);
    }
    return res;
  }

  async getJson<T>(path: string, init?: RequestInit): Promise<T> {
    return (await (await this.request(path, init)).json()) as T;
  }

  async resolve(spec: PluginSpec): Promise<RemoteVersion> {
    return this.getJson<RemoteVersion>(`/api/v1/marketplace/plugins/${spec.name}/resolve?range=${encodeURIComponent(spec.range)}`);
  }

  async download(v: RemoteVersion): Promise<Uint8Array> {
    if (!v.module_url.startsWith('/api/v1/marketplace/')) throw new MarketplaceError(`unexpected module url ${v.module_url}`);
    return new Uint8Array(await (await this.request(v.module_url)).arrayBuffer());
  }

  private refuse(reason: RefusedReason, message: string): never {
    this.refused.inc({ reason });
    this.log(`riptide: marketplace plugin refused (${reason}): ${message}`);
    throw new MarketplaceRefused(reason, message);
  }

  /**
   * Verifies what was downloaded: a valid manifest for the name asked, the module's sha256 equal to
   * the manifest's, and a signature over both by a trusted key. Logs and counts a refusal.
   */
  verify(expectName: string, rawManifest: unknown, module: Uint8Array, signature: unknown): { manifest: PluginManifest; keyId: string } {
    let manifest: PluginManifest;
    try {
      manifest = parseManifest(rawManifest);
    } catch (err) {
      if (err instanceof ManifestError) this.refuse('invalid_manifest', `${expectName}: ${err.message}`);
      throw err;
    }
    if (manifest.name !== expectName) this.refuse('name_mismatch', `asked for "${expectName}", got a manifest for "${manifest.name}"`);
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,99}\.wasm$/.test(manifest.module)) this.refuse('invalid_manifest', `${expectName}: "module" must be a plain .wasm file name`);
    const digest = sha256Hex(module);
    if (digest !== manifest.sha256) this.refuse('hash_mismatch', `${manifest.name}@${manifest.version}: the module's sha256 is ${digest.slice(0, 16)}…, the manifest says ${manifest.sha256.slice(0, 16)}… (tampered or corrupt)`);
    const check = verifyPluginSignature(manifest, digest, signature, this.o.trusted);
    if (!check.ok) this.refuse(check.reason, check.message);
    return { manifest, keyId: check.keyId };
  }

  /**
   * Resolves, downloads, verifies and installs; returns where the host should look. When the
   * newest match is refused (tampered, badly signed…), the next lower non-yanked match is tried,
   * down to what is installed: one bad release never leaves an agent with nothing (or rolls it
   * forward onto nothing). Throws the first refusal when no match verifies.
   */
  async install(spec: PluginSpec, pluginsDir: string): Promise<InstallResult> {
    const remote = await this.resolve(spec);
    if (!parseVersion(remote.version) || !satisfies(remote.version, spec.range)) throw new MarketplaceError(`the marketplace answered ${spec.name}@${String(remote.version)} for ${spec.range}`);
    let refusal: MarketplaceRefused;
    try {
      return await this.installVersion(spec, remote, pluginsDir);
    } catch (err) {
      if (!(err instanceof MarketplaceRefused)) throw err;
      refusal = err;
    }
    const installed = await installedVersion(pluginsDir, spec.name);
    const newest = parseVersion(remote.version)!;
    const listing = await this.getJson<{ versions?: Array<{ version?: unknown; yanked?: unknown }> }>(`/api/v1/marketplace/plugins/${spec.name}`);
    const lower = sortVersions(
      (listing.versions ?? [])
        .filter((v): v is { version: string; yanked?: unknown } => typeof v.version === 'string' && v.yanked !== true)
        .map((v) => v.version)
        .filter((v) => {
          const sv = parseVersion(v);
          return sv !== undefined && satisfies(sv, spec.range) && compareVersions(sv, newest) < 0;
        }),
    ).reverse();
    for (const version of lower) {
      if (version === installed) {
        this.log(`riptide: marketplace plugin ${spec.name}@${spec.range}: ${remote.version} refused; keeping the installed ${installed}`);
        return { name: spec.name, version, dir: join(pluginsDir, spec.name, version), current: join(pluginsDir, spec.name, 'current'), changed: false };
      }
      if (this.refusedVersions.has(`${spec.name}@${version}`)) continue;
      try {
        const r = await this.installVersion(spec, await this.getJson<RemoteVersion>(`/api/v1/marketplace/plugins/${spec.name}/${version}`), pluginsDir);
        this.log(`riptide: marketplace plugin ${spec.name}@${spec.range}: ${remote.version} refused; fell back to ${version}`);
        return r;
      } catch (err) {
        if (!(err instanceof MarketplaceRefused)) throw err;
      }
    }
    throw refusal;
  }

  /** Downloads, verifies and installs one version (a no-op when it is current). */
  private async installVersion(spec: PluginSpec, remote: RemoteVersion, pluginsDir: string): Promise<InstallResult> {
    const nameDir = join(pluginsDir, spec.name);
    const current = join(nameDir, 'current');
    const installed = await installedVersion(pluginsDir, spec.name);
    const dir = join(nameDir, remote.version);
    if (installed === remote.version) return { name: spec.name, version: remote.version, dir, current, changed: false };
    const seen = this.refusedVersions.get(`${spec.name}@${remote.version}`);
    if (seen) throw seen;
    const module = await this.download(remote);
    let manifest: PluginManifest;
    try {
      manifest = this.verify(spec.name, remote.manifest, module, remote.signature).manifest;
      if (manifest.version !== remote.version) this.refuse('invalid_manifest', `${spec.name}: resolved ${remote.version} but the manifest says ${manifest.version}`);
    } catch (err) {
      if (err instanceof MarketplaceRefused) this.refusedVersions.set(`${spec.name}@${remote.version}`, err);
      throw err;
    }
    await writeVersionDir(nameDir, manifest, module, remote.signature as SignatureFile);
    await pointCurrent(nameDir, manifest.version);
    return { name: spec.name, version: manifest.version, dir, current, changed: true };
  }

  /** Re-verifies an installed version from disk (used when the marketplace is unreachable at start). */
  async verifyInstalled(pluginsDir: string, name: string): Promise<string | undefined> {
    const version = await installedVersion(pluginsDir, name);
    if (!version) return undefined;
    const dir = join(pluginsDir, name, version);
    const raw = JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8')) as { module?: unknown };
    const module = await readFile(join(dir, typeof raw.module === 'string' ? raw.module.replace(/[/\\]/g, '') : 'missing.wasm'));
    const sig: unknown = JSON.parse(await readFile(join(dir, 'signature.json'), 'utf8'));
    this.verify(name, raw, new Uint8Array(module), sig);
    return version;
  }
}

/** The version `<dir>/<name>/current` points at, if any. */
export async function installedVersion(pluginsDir: string, name: string): Promise<string | undefined> {
  try {
    const target = await readlink(join(pluginsDir, name, 'current'));
    return parseVersion(target) ? target : undefined;
  } catch {
    return undefined;
  }
}

async function writeVersionDir(nameDir: string, manifest: PluginManifest, module: Uint8Array, signature: SignatureFile): Promise<void> {
  // written in a temp folder and renamed into place: the host never sees half a version
  await mkdir(nameDir, { recursive: true });
  const tmp = join(nameDir, `.tmp-${randomBytes(6).toString('hex')}`);
  const dir = join(nameDir, manifest.version);
  await mkdir(tmp);
  try {
    await writeFile(join(tmp, manifest.module), module);
    await writeFile(join(tmp, 'signature.json'), JSON.stringify(signature, null, 2) + '\n');
    await writeFile(join(tmp, 'manifest.json'), canonicalJson(manifest) + '\n');
    await rm(dir, { recursive: true, force: true });
    await rename(tmp, dir);
  } catch (err) {
    await rm(tmp, { recursive: true, force: true });
    throw err;
  }
}

async function pointCurrent(nameDir: string, version: string): Promise<void> {
  const tmp = join(nameDir, `.link-${randomBytes(6).toString('hex')}`);
  await symlink(version, tmp);
  await rename(tmp, join(nameDir, 'current'));
}

export interface MarketplaceWatcherOptions {
  client: MarketplaceClient;
  specs: readonly PluginSpec[];
  pluginsDir: string;
  /** How often to ask for newer matching versions; 0 never. */
  intervalMs: number;
  log?: (line: string) => void;
}

/**
 * Keeps `name@range` plugins at the newest matching version: installs at start (falling back to
 * what is installed when the marketplace is down) and re-resolves on a timer. A yanked version
 * makes the range resolve lower, so agents roll back too. The host's hot reload does the swap.
 */
export class MarketplaceWatcher {
  private timer: NodeJS.Timeout | undefined;
  private busy = false;
  private readonly log: (line: string) => void;
  private readonly lastError = new Map<string, string>();

  constructor(private readonly o: MarketplaceWatcherOptions) {
    this.log = o.log ?? ((l) => process.stderr.write(l + '\n'));
  }

  /** Where the host should load each spec from, in order. */
  paths(): string[] {
    return this.o.specs.map((s) => join(this.o.pluginsDir, s.name, 'current'));
  }

  /** First install; never throws for one plugin (that plugin waits for the next poll). */
  async start(): Promise<void> {
    for (const spec of this.o.specs) {
      try {
        const r = await this.o.client.install(spec, this.o.pluginsDir);
        this.log(`riptide: marketplace plugin ${spec.name}@${spec.range} → ${r.version}${r.changed ? ' installed' : ' (already installed)'}`);
      } catch (err) {
        if (err instanceof MarketplaceRefused) continue; // logged and counted
        let fallback: string | undefined;
        try {
          fallback = await this.o.client.verifyInstalled(this.o.pluginsDir, spec.name);
        } catch {
          fallback = undefined;
        }
        this.log(`riptide: marketplace plugin ${spec.name}@${spec.range}: ${(err as Error).message}; ${fallback ? `using installed ${fallback}` : 'not loaded until the marketplace answers'}`);
      }
    }
    if (this.o.intervalMs > 0) {
      this.timer = setInterval(() => void this.poll(), this.o.intervalMs);
      this.timer.unref();
    }
  }

  /** One round of re-resolving. Exposed for tests. */
  async poll(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      for (const spec of this.o.specs) {
        try {
          const r = await this.o.client.install(spec, this.o.pluginsDir);
          if (r.changed) this.log(`riptide: marketplace plugin ${spec.name}@${spec.range} → ${r.version} installed; hot reload swaps it in`);
          this.lastError.delete(spec.name);
        } catch (err) {
          if (err instanceof MarketplaceRefused) continue; // logged and counted once per version
          // an outage is one line when it starts, not one per poll
          const msg = (err as Error).message;
          const kind = err instanceof MarketplaceError && err.status === undefined ? 'unreachable' : msg;
          if (this.lastError.get(spec.name) !== kind) this.log(`riptide: marketplace plugin ${spec.name}@${spec.range}: ${msg}; keeping what runs`);
          this.lastError.set(spec.name, kind);
        }
      }
    } finally {
      this.busy = false;
    }
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }
}

/**
 * Trusted keys from `--trusted-key` values: each a file (PEM or base64) or the base64 key itself.
 * Throws KeyError / an fs error with one clear line.
 */
export async function loadTrustedKeys(values: readonly string[]): Promise<Map<string, KeyObject>> {
  const texts: string[] = [];
  for (const v of values) {
    const looksInline = /^[A-Za-z0-9+/_-]{40,}=*$/.test(v.trim()) || v.trim().startsWith('-----BEGIN');
    if (looksInline) texts.push(v);
    else {
      try {
        texts.push(await readFile(v, 'utf8'));
      } catch (err) {
        throw new KeyError(`--trusted-key ${v}: not a key and not a readable file (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
      }
    }
  }
  try {
    return trustedKeys(texts);
  } catch (err) {
    throw new KeyError(`--trusted-key: ${(err as Error).message}`);
  }
}

export interface AgentMarketplaceConfig {
  /** `--plugin` entries: paths, or `name@range` for the marketplace. */
  entries: readonly string[];
  marketplace?: string;
  trustedKeys: readonly string[];
  dataDir: string;
  pollSeconds: number;
  metrics?: MetricsRegistry;
  log?: (line: string) => void;
}

/**
 * The agent's `--plugin` list with marketplace entries resolved: installs `name@range` entries
 * under `<data-dir>/plugins` and returns, in the configured order, the paths for the plugin host
 * (`<data-dir>/plugins/<name>/current` for those). Throws one clear line for bad configuration.
 */
export async function resolveAgentPlugins(c: AgentMarketplaceConfig): Promise<{ paths: string[]; watcher?: MarketplaceWatcher }> {
  const specs: PluginSpec[] = [];
  const pluginsDir = resolvePath(c.dataDir, 'plugins');
  const paths = c.entries.map((e) => {
    const spec = parsePluginSpec(e);
    if (!spec) return resolvePath(e);
    specs.push(spec);
    return join(pluginsDir, spec.name, 'current');
  });
  if (specs.length === 0) return { paths };
  if (!c.marketplace) throw new Error(`--plugin ${specs[0].name}@${specs[0].range} needs --marketplace <url>`);
  if (c.trustedKeys.length === 0) throw new Error('marketplace plugins need --trusted-key (the publisher keys this agent trusts)');
  const client = new MarketplaceClient({ url: c.marketplace, trusted: await loadTrustedKeys(c.trustedKeys), metrics: c.metrics, log: c.log });
  const watcher = new MarketplaceWatcher({ client, specs, pluginsDir, intervalMs: Math.round(c.pollSeconds * 1000), log: c.log });
  await watcher.start();
  return { paths, watcher };
}

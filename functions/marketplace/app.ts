/**
 * The plugin marketplace API, a hono app that knows no runtime (the query server mounts it; a test
 * serves it alone). Storage is the object store (catalog.ts); publishing wants a bearer token and
 * a publisher signature; reading is open, since agents fetch from it and trust comes from the
 * signature, not the transport. See docs/MARKETPLACE.md.
 *
 *   GET  /marketplace                                          the web page
 *   GET  /api/v1/marketplace/plugins?q=&protocol=&hook=        search → { plugins: PluginSummary[] }
 *   POST /api/v1/marketplace/plugins                           publish (Bearer) { manifest, module (base64), signature, description? }
 *   GET  /api/v1/marketplace/plugins/{name}                    → { plugin: PluginSummary, versions: VersionEntry[] }
 *   GET  /api/v1/marketplace/plugins/{name}/resolve?range=^1   the highest non-yanked match → VersionDoc
 *   GET  /api/v1/marketplace/plugins/{name}/{version}          → VersionDoc (yanked versions too)
 *   GET  /api/v1/marketplace/plugins/{name}/{version}/module.wasm
 *   POST /api/v1/marketplace/plugins/{name}/{version}/yank     (Bearer)
 *
 * Every refusal is a 4xx with `{ error, reason }` and counts in
 * `riptide_marketplace_api_refused_total{reason}`.
 *
 * @example
 *   const app = createMarketplaceApp({ store: openStore('file:///var/lib/riptide/store'), publishTokens: [process.env.TOKEN!] });
 *   serve({ fetch: app.fetch, port: 8686 });
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { Hono } from 'hono';
import type { Context } from 'hono';
import { metrics as globalMetrics } from '../../agent/metrics.ts';
import type { MetricsRegistry } from '../../agent/metrics.ts';
import type { ObjectStore } from '../../agent/shipping/store.ts';
import { ABI_MARKER_EXPORT, HOOK_EXPORTS } from '../../sdk-plugin/src/abi.ts';
import type { HookName } from '../../sdk-plugin/src/abi.ts';
import { ManifestError, parseManifest } from '../../sdk-plugin/src/manifest.ts';
import type { PluginManifest } from '../../sdk-plugin/src/manifest.ts';
import { sha256Hex } from '../../sdk-plugin/src/hash.ts';
import { MARKETPLACE_NAME_RE, parseSignatureFile, verifyPluginSignature } from '../../lib/marketplace/signing.ts';
import type { SignatureFile } from '../../lib/marketplace/signing.ts';
import { parseRange, parseVersion, VersionRangeError } from '../../lib/marketplace/semver.ts';
import { Catalog, CatalogBusy, summarize } from './catalog.ts';
import { marketplaceHtml } from './ui.ts';
import { bodyLimit, formatBytes } from '../http/body-limit.ts';

export interface MarketplaceAppOptions {
  store: ObjectStore;
  /** Bearer tokens allowed to publish and yank. Empty: publishing is off (read-only mirror). */
  publishTokens: readonly string[];
  /** Largest module accepted, bytes. Default 4 MiB. */
  maxModuleBytes?: number;
  metrics?: MetricsRegistry;
  /** Claims older than this are from a crashed publisher (default 60 s). */
  lockTtlMs?: number;
}

/** What a version fetch or resolve returns. */
export interface VersionDoc {
  name: string;
  version: string;
  yanked: boolean;
  manifest: PluginManifest;
  signature: SignatureFile;
  /** Path of the module on this server. */
  module_url: string;
}

export type RefusalReason =
  | 'unauthorized'
  | 'too_large'
  | 'invalid_body'
  | 'invalid_name'
  | 'invalid_version'
  | 'invalid_manifest'
  | 'wrong_abi'
  | 'invalid_module'
  | 'hash_mismatch'
  | 'unsigned'
  | 'bad_signature'
  | 'duplicate_version'
  | 'owner_mismatch'
  | 'invalid_range'
  | 'not_found'
  | 'busy';

class Refusal extends Error {
  constructor(
    readonly status: 400 | 401 | 403 | 404 | 409 | 413 | 422 | 503,
    readonly reason: RefusalReason,
    message: string,
  ) {
    super(message);
  }
}

const MODULE_FILE_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}\.wasm$/;
export const API = '/api/v1/marketplace';

function sameSecret(a: string, b: string): boolean {
  const h = (s: string): Buffer => createHash('sha256').update(s).digest();
  return timingSafeEqual(h(a), h(b));
}

function checkName(name: string): string {
  if (!MARKETPLACE_NAME_RE.test(name)) throw new Refusal(400, 'invalid_name', `plugin name ${JSON.stringify(name.slice(0, 80))} is not allowed: 1-64 characters of a-z, 0-9 and -, starting with a letter`);
  return name;
}

/** Longest version taken: it is a path segment in the store (a file name caps at 255 bytes). */
export const MAX_VERSION_LENGTH = 64;

function checkVersion(v: string): string {
  if (v.length > MAX_VERSION_LENGTH) throw new Refusal(400, 'invalid_version', `version ${JSON.stringify(v.slice(0, 40) + '…')} is ${v.length} characters; at most ${MAX_VERSION_LENGTH} are allowed`);
  if (!parseVersion(v)) throw new Refusal(400, 'invalid_version', `version ${JSON.stringify(v.slice(0, 80))} is not semver (1.2.3 or 1.2.3-rc.1; no build metadata)`);
  return v;
}

/** The slice of the WebAssembly JS API used here (the project's lib does not declare it). */
const Wasm = (globalThis as unknown as { WebAssembly: { compile(b: Uint8Array): Promise<object>; Module: { exports(m: object): Array<{ name: string }> } } }).WebAssembly;

/** Checks a module compiles and speaks our ABI with the hooks its manifest declares. */
async function checkModule(bytes: Uint8Array, hooks: readonly HookName[]): Promise<void> {
  let mod: object;
  try {
    mod = await Wasm.compile(bytes);
  } catch (err) {
    throw new Refusal(422, 'invalid_module', `the module is not valid WebAssembly: ${(err as Error).message.split('\n')[0]}`);
  }
  const exported = Wasm.Module.exports(mod).map((e) => e.name);
  if (!exported.includes(ABI_MARKER_EXPORT)) {
    const other = exported.find((e) => /^riptide_abi_v\d+$/.test(e));
    throw new Refusal(422, 'wrong_abi', other ? `the module speaks ${other}; this marketplace takes ${ABI_MARKER_EXPORT}` : `the module has no ${ABI_MARKER_EXPORT} export (not built with the Riptide SDK?)`);
  }
  for (const h of hooks) {
    if (!exported.includes(HOOK_EXPORTS[h])) throw new Refusal(422, 'wrong_abi', `the manifest declares hook "${h}" but the module does not export ${HOOK_EXPORTS[h]}`);
  }
}

export function createMarketplaceApp(o: MarketplaceAppOptions): Hono {
  const maxModule = o.maxModuleBytes ?? 4 << 20;
  const m = o.metrics ?? globalMetrics;
  const refused = m.counter('riptide_marketplace_api_refused_total', 'Marketplace API requests refused with a 4xx, by reason');
  const published = m.counter('riptide_marketplace_published_total', 'Plugin versions published');
  const catalog = new Catalog(o.store, { lockTtlMs: o.lockTtlMs });
  const tokens = o.publishTokens.filter((t) => t.length > 0);

  const refuse = (c: Context, r: Refusal): Response => {
    refused.inc({ reason: r.reason });
    return c.json({ error: r.message, reason: r.reason }, r.status);
  };
  const authorize = (c: Context): void => {
    if (tokens.length === 0) throw new Refusal(403, 'unauthorized', 'publishing is turned off on this marketplace (no publish tokens configured)');
    const given = /^Bearer\s+(.+)$/i.exec(c.req.header('authorization') ?? '')?.[1]?.trim();
    if (!given || !tokens.some((t) => sameSecret(given, t))) throw new Refusal(401, 'unauthorized', 'publishing needs a valid publish token (Authorization: Bearer <token>)');
  };
  const versionDoc = (name: string, version: string, st: { manifest: PluginManifest; signature: SignatureFile; yanked: boolean }): VersionDoc => ({
    name,
    version,
    yanked: st.yanked,
    manifest: st.manifest,
    signature: st.signature,
    module_url: `${API}/plugins/${name}/${version}/module.wasm`,
  });

  const app = new Hono();
  app.onError((err, c) => {
    if (err instanceof Refusal) return refuse(c, err);
    if (err instanceof CatalogBusy) return refuse(c, new Refusal(503, 'busy', err.message));
    const msg = (err instanceof Error ? err.message : String(err)).split('\n')[0].slice(0, 300);
    process.stderr.write(`riptide marketplace: ${c.req.method} ${c.req.path}: ${msg}\n`);
    return c.json({ error: `internal error: ${msg}` }, 500);
  });

  app.get('/marketplace', (c) => c.html(marketplaceHtml()));

  app.get(`${API}/plugins`, async (c) => {
    const q = (c.req.query('q') ?? '').toLowerCase().trim();
    const protocol = c.req.query('protocol') ?? '';
    const hook = c.req.query('hook') ?? '';
    const name = c.req.query('name') ?? '';
    const all = (await catalog.all()).map(summarize);
    const hits = all.filter(
      (p) =>
        (!name || p.name === name) &&
        (!protocol || p.protocols.includes(protocol)) &&
        (!hook || p.hooks.includes(hook as HookName)) &&
        (!q || p.name.includes(q) || p.description.toLowerCase().includes(q) || p.protocols.some((x) => x.includes(q)) || p.hooks.some((x) => x.includes(q))),
    );
    hits.sort((a, b) => a.name.localeCompare(b.name));
    return c.json({ plugins: hits });
  });

  app.post(
    `${API}/plugins`,
    // The token first: a caller without one is refused before any of the body is read.
    async (c, next) => {
      authorize(c);
      await next();
    },
    // Counted while it streams in. Base64 inflates by 4/3; the rest of the body is small.
    bodyLimit({
      maxBytes: Math.ceil((maxModule * 4) / 3) + (256 << 10),
      limit: 'marketplace_publish',
      metrics: m,
      respond: (c) => refuse(c, new Refusal(413, 'too_large', `the request is larger than a ${formatBytes(maxModule)} module allows`)),
    }),
    async (c) => {
      let body: Record<string, unknown>;
      try {
        const b: unknown = await c.req.json();
        if (b === null || typeof b !== 'object' || Array.isArray(b)) throw new Error('not an object');
        body = b as Record<string, unknown>;
      } catch {
        throw new Refusal(400, 'invalid_body', 'the body must be JSON: { "manifest": {…}, "module": "<base64>", "signature": {…}, "description"?: "…" }');
      }
      const rawManifest = body.manifest;
      if (rawManifest && typeof rawManifest === 'object' && typeof (rawManifest as { name?: unknown }).name === 'string') checkName((rawManifest as { name: string }).name);
      let manifest: PluginManifest;
      try {
        manifest = parseManifest(rawManifest);
      } catch (err) {
        if (err instanceof ManifestError) throw new Refusal(400, /"abi"/.test(err.message) ? 'wrong_abi' : 'invalid_manifest', `invalid manifest: ${err.message}`);
        throw err;
      }
      checkName(manifest.name);
      checkVersion(manifest.version);
      if (!MODULE_FILE_RE.test(manifest.module)) throw new Refusal(400, 'invalid_manifest', 'invalid manifest: "module" must be a plain file name ending in .wasm');
      if (typeof body.module !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(body.module)) throw new Refusal(400, 'invalid_body', '"module" must be the module bytes in base64');
      const module = new Uint8Array(Buffer.from(body.module, 'base64'));
      if (module.length > maxModule) throw new Refusal(413, 'too_large', `the module is ${module.length} bytes; the limit is ${maxModule}`);
      if (module.length === 0) throw new Refusal(422, 'invalid_module', 'the module is empty');
      const digest = sha256Hex(module);
      if (digest !== manifest.sha256) throw new Refusal(422, 'hash_mismatch', `the module's sha256 is ${digest}, the manifest says ${manifest.sha256}`);
      await checkModule(module, manifest.hooks);
      const sigCheck = verifyPluginSignature(manifest, digest, body.signature, 'embedded');
      if (!sigCheck.ok) throw new Refusal(sigCheck.reason === 'unsigned' ? 400 : 422, sigCheck.reason === 'untrusted_key' ? 'bad_signature' : sigCheck.reason, sigCheck.message);
      const signature = parseSignatureFile(body.signature) as SignatureFile;
      let description: string | undefined;
      if (body.description !== undefined) {
        if (typeof body.description !== 'string' || body.description.length > 500) throw new Refusal(400, 'invalid_body', '"description" must be a string of at most 500 characters');
        description = body.description;
      }
      const r = await catalog.publish({ manifest, module, signature, description });
      if (r === 'duplicate') throw new Refusal(409, 'duplicate_version', `${manifest.name}@${manifest.version} is already published; versions are immutable — publish a new version`);
      if (r !== 'ok') throw new Refusal(403, 'owner_mismatch', `"${manifest.name}" belongs to key ${r.owner}; this upload is signed by ${signature.keyId}`);
      published.inc();
      return c.json(versionDoc(manifest.name, manifest.version, { manifest, signature, yanked: false }), 201);
    },
  );

  app.get(`${API}/plugins/:name`, async (c) => {
    const name = checkName(c.req.param('name'));
    const idx = await catalog.index(name);
    if (!idx) throw new Refusal(404, 'not_found', `no plugin named "${name}"`);
    return c.json({ plugin: summarize(idx), versions: idx.versions });
  });

  app.get(`${API}/plugins/:name/resolve`, async (c) => {
    const name = checkName(c.req.param('name'));
    const range = c.req.query('range') ?? '*';
    try {
      parseRange(range);
    } catch (err) {
      if (err instanceof VersionRangeError) throw new Refusal(400, 'invalid_range', err.message);
      throw err;
    }
    const version = await catalog.resolve(name, range);
    if (!version) throw new Refusal(404, 'not_found', `no published, non-yanked version of "${name}" matches ${range}`);
    const st = await catalog.version(name, version);
    if (!st) throw new Refusal(404, 'not_found', `${name}@${version} is not available`);
    return c.json(versionDoc(name, version, st));
  });

  app.get(`${API}/plugins/:name/:version`, async (c) => {
    const name = checkName(c.req.param('name'));
    const version = checkVersion(c.req.param('version'));
    const st = await catalog.version(name, version);
    if (!st) throw new Refusal(404, 'not_found', `${name}@${version} is not published`);
    return c.json(versionDoc(name, version, st));
  });

  app.get(`${API}/plugins/:name/:version/module.wasm`, async (c) => {
    const name = checkName(c.req.param('name'));
    const version = checkVersion(c.req.param('version'));
    const bytes = await catalog.module(name, version);
    if (!bytes) throw new Refusal(404, 'not_found', `${name}@${version} is not published`);
    return c.body(new Uint8Array(bytes), 200, { 'content-type': 'application/wasm', 'cache-control': 'public, max-age=31536000, immutable' });
  });

  app.post(`${API}/plugins/:name/:version/yank`, async (c) => {
    authorize(c);
    const name = checkName(c.req.param('name'));
    const version = checkVersion(c.req.param('version'));
    const r = await catalog.yank(name, version);
    if (r === 'not_found') throw new Refusal(404, 'not_found', `${name}@${version} is not published`);
    return c.json({ name, version, yanked: true });
  });

  return app;
}

/**
 * `riptide plugin keygen | sign | publish | search | install | yank` — the marketplace half of the
 * plugin command (agent/cli/commands/plugin.ts parses the flags and calls in here). Every failure is
 * one line: a {@link UsageError} for what the user typed, a {@link FatalError} for the rest.
 */
import { constants } from 'node:fs';
import { access, readFile, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { DeniedError, FatalError, ListenError, UnreachableError, UsageError, firstLine } from '../cli/command.ts';
import { ManifestError, parseManifest } from '../../sdk-plugin/src/manifest.ts';
import type { PluginManifest } from '../../sdk-plugin/src/manifest.ts';
import { sha256Hex } from '../../sdk-plugin/src/hash.ts';
import { resolveManifestPath } from './host.ts';
import { MarketplaceClient, MarketplaceError, MarketplaceRefused, loadTrustedKeys, parsePluginSpec } from './marketplace-client.ts';
import { KeyError, generatePublisherKey, parsePrivateKey, signPlugin, verifyPluginSignature } from '../../lib/marketplace/signing.ts';
import type { SignatureFile } from '../../lib/marketplace/signing.ts';
import { VersionRangeError, parseVersion } from '../../lib/marketplace/semver.ts';

export interface MarketplaceCliOptions {
  out?: string;
  key?: string;
  marketplace?: string;
  token?: string;
  trustedKeys: string[];
  dir?: string;
  dataDir: string;
  description?: string;
  protocol?: string;
  hook?: string;
  store?: string;
  s3Endpoint?: string;
  publishTokens?: string[];
  port?: number;
  host?: string;
  maxModuleBytes?: number;
}

const say = (s: string): void => void process.stdout.write(s + '\n');

async function exists(p: string): Promise<boolean> {
  try {
    await access(p, constants.F_OK);
    return true;
  } catch {
    return false;
  }
}

interface BuiltPlugin {
  manifestPath: string;
  manifest: PluginManifest;
  module: Uint8Array;
}

async function readBuilt(target: string): Promise<BuiltPlugin> {
  let manifestPath: string;
  try {
    manifestPath = await resolveManifestPath(target);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  let manifest: PluginManifest;
  try {
    manifest = parseManifest(JSON.parse(await readFile(manifestPath, 'utf8')));
  } catch (err) {
    if (err instanceof ManifestError || err instanceof SyntaxError) throw new UsageError(`${manifestPath}: ${err.message}`);
    throw err;
  }
  const module = new Uint8Array(await readFile(join(dirname(manifestPath), manifest.module)));
  const digest = sha256Hex(module);
  if (digest !== manifest.sha256) throw new UsageError(`${manifestPath}: the module's sha256 is ${digest}, the manifest says ${manifest.sha256} (rebuild it)`);
  return { manifestPath, manifest, module };
}

async function signWith(keyFile: string, p: BuiltPlugin): Promise<SignatureFile> {
  let pem: string;
  try {
    pem = await readFile(keyFile, 'utf8');
  } catch (err) {
    throw new UsageError(`--key ${keyFile}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  try {
    return signPlugin(p.manifest, parsePrivateKey(pem));
  } catch (err) {
    if (err instanceof KeyError) throw new UsageError(`--key ${keyFile}: ${err.message}`);
    throw err;
  }
}

function needMarketplace(o: MarketplaceCliOptions): string {
  if (!o.marketplace) throw new UsageError('--marketplace <url> is required (or RIPTIDE_MARKETPLACE)');
  try {
    new URL(o.marketplace);
  } catch {
    throw new UsageError(`--marketplace ${o.marketplace}: not a URL (want http(s)://host:port)`);
  }
  if (!/^https?:\/\//.test(o.marketplace)) throw new UsageError(`--marketplace ${o.marketplace}: want an http(s) URL`);
  return o.marketplace;
}

export async function runMarketplaceCommand(sub: string, target: string | undefined, o: MarketplaceCliOptions): Promise<number> {
  try {
    return await run(sub, target, o);
  } catch (err) {
    if (err instanceof MarketplaceRefused) throw new FatalError(`refused (${err.reason}): ${err.message}`);
    if (err instanceof MarketplaceError) {
      // No status: the request never got an answer. 401/403: the token was refused.
      if (err.status === undefined) throw new UnreachableError(err.message);
      if (err.status === 401 || err.status === 403) throw new DeniedError(err.message);
      throw new FatalError(err.message);
    }
    if (err instanceof KeyError || err instanceof VersionRangeError) throw new UsageError(err.message);
    throw err;
  }
}

async function run(sub: string, target: string | undefined, o: MarketplaceCliOptions): Promise<number> {
  switch (sub) {
    case 'keygen': {
      if (target) throw new UsageError(`keygen takes no argument (use --out ${target})`);
      const prefix = resolve(o.out ?? 'riptide-publisher');
      for (const f of [`${prefix}.key`, `${prefix}.pub`]) if (await exists(f)) throw new UsageError(`${f} exists; refusing to overwrite a key (pick another --out)`);
      const k = generatePublisherKey();
      await writeFile(`${prefix}.key`, k.privatePem, { mode: 0o600, flag: 'wx' });
      await writeFile(`${prefix}.pub`, k.publicPem, { flag: 'wx' });
      say(`key ${k.keyId}\n  private ${prefix}.key (keep it secret; sign and publish with --key)\n  public  ${prefix}.pub (give it to agents: --trusted-key ${prefix}.pub)`);
      return 0;
    }
    case 'sign': {
      if (!target) throw new UsageError('sign: missing plugin folder or manifest');
      if (!o.key) throw new UsageError('sign: --key <file> is required');
      const p = await readBuilt(target);
      const sig = await signWith(o.key, p);
      const out = join(dirname(p.manifestPath), 'signature.json');
      await writeFile(out, JSON.stringify(sig, null, 2) + '\n');
      say(`signed ${p.manifest.name}@${p.manifest.version} with key ${sig.keyId}\n  ${out}`);
      return 0;
    }
    case 'publish': {
      if (!target) throw new UsageError('publish: missing plugin folder or manifest');
      const url = needMarketplace(o);
      if (!o.token) throw new UsageError('publish: --token or RIPTIDE_MARKETPLACE_TOKEN is required');
      const p = await readBuilt(target);
      let signature: SignatureFile;
      if (o.key) signature = await signWith(o.key, p);
      else {
        const sigPath = join(dirname(p.manifestPath), 'signature.json');
        let raw: unknown;
        try {
          raw = JSON.parse(await readFile(sigPath, 'utf8'));
        } catch {
          throw new UsageError(`publish: no ${sigPath}; run riptide plugin sign first or pass --key`);
        }
        const check = verifyPluginSignature(p.manifest, p.manifest.sha256, raw, 'embedded');
        if (!check.ok) throw new UsageError(`publish: ${sigPath}: ${check.message} (sign again)`);
        signature = raw as SignatureFile;
      }
      let description = o.description;
      if (description === undefined) {
        for (const cand of [join(dirname(p.manifestPath), '..', 'plugin.json'), join(dirname(p.manifestPath), 'plugin.json')]) {
          try {
            const d = (JSON.parse(await readFile(cand, 'utf8')) as { description?: unknown }).description;
            if (typeof d === 'string') description = d;
            break;
          } catch {
            // no source manifest there
          }
        }
      }
      const client = new MarketplaceClient({ url, trusted: new Map() });
      await client.getJson('/api/v1/marketplace/plugins', {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${o.token}` },
        body: JSON.stringify({ manifest: p.manifest, module: Buffer.from(p.module).toString('base64'), signature, description }),
      });
      say(`published ${p.manifest.name}@${p.manifest.version} (${p.module.length} bytes, key ${signature.keyId}) to ${client.base}`);
      return 0;
    }
    case 'search': {
      const client = new MarketplaceClient({ url: needMarketplace(o), trusted: new Map() });
      const qs = new URLSearchParams();
      if (target) qs.set('q', target);
      if (o.protocol) qs.set('protocol', o.protocol);
      if (o.hook) qs.set('hook', o.hook);
      const { plugins } = await client.getJson<{ plugins: Array<{ name: string; latest: string | null; protocols: string[]; hooks: string[]; description: string }> }>(`/api/v1/marketplace/plugins?${qs}`);
      if (plugins.length === 0) say('no plugins match');
      for (const p of plugins) {
        say(`${p.name}@${p.latest ?? '-'}  hooks: ${p.hooks.join(',')}${p.protocols.length ? `  protocols: ${p.protocols.join(',')}` : ''}${p.description ? `  — ${p.description}` : ''}`);
      }
      return 0;
    }
    case 'install': {
      if (!target) throw new UsageError('install: missing name@range (e.g. tinyrpc@^1)');
      const spec = parsePluginSpec(target.includes('@') ? target : `${target}@*`);
      if (!spec) throw new UsageError(`install: "${target}" is not name@range (names are a-z, 0-9 and -)`);
      if (o.trustedKeys.length === 0) throw new UsageError('install: --trusted-key is required (the publisher public keys you trust)');
      const client = new MarketplaceClient({ url: needMarketplace(o), trusted: await loadTrustedKeys(o.trustedKeys), log: () => undefined });
      const dir = resolve(o.dir ?? join(o.dataDir, 'plugins'));
      const r = await client.install(spec, dir);
      say(`${r.changed ? 'installed' : 'already installed'} ${r.name}@${r.version} (hash and signature verified)\n  ${r.dir}\n  load it with: riptide agent --plugin ${r.current}`);
      return 0;
    }
    case 'yank': {
      const m = target ? /^([a-z][a-z0-9-]{0,63})@(.+)$/.exec(target) : null;
      if (!m || !parseVersion(m[2])) throw new UsageError('yank: want name@version (e.g. tinyrpc@1.0.1)');
      if (!o.token) throw new UsageError('yank: --token or RIPTIDE_MARKETPLACE_TOKEN is required');
      const client = new MarketplaceClient({ url: needMarketplace(o), trusted: new Map() });
      await client.getJson(`/api/v1/marketplace/plugins/${m[1]}/${m[2]}/yank`, { method: 'POST', headers: { authorization: `Bearer ${o.token}` } });
      say(`yanked ${m[1]}@${m[2]}: ranges no longer resolve to it`);
      return 0;
    }
    case 'serve': {
      if (target) throw new UsageError(`serve takes no argument`);
      const { serve } = await import('@hono/node-server');
      const { openStore } = await import('../shipping/store.ts');
      const { metrics } = await import('../metrics.ts');
      const { createMarketplaceApp } = await import('../../functions/marketplace/app.ts');
      const url = o.store ?? pathToFileURL(resolve(o.dataDir, 'store')).href;
      let store;
      try {
        store = openStore(url, { s3Endpoint: o.s3Endpoint });
      } catch (err) {
        throw new UsageError((err as Error).message);
      }
      const market = createMarketplaceApp({ store, publishTokens: o.publishTokens ?? [], maxModuleBytes: o.maxModuleBytes });
      const { Hono } = await import('hono');
      const app = new Hono();
      app.get('/healthz', (c) => c.json({ status: 'ok' }));
      app.get('/metrics', (c) => c.text(metrics.render(), 200, { 'content-type': 'text/plain; version=0.0.4' }));
      app.get('/', (c) => c.redirect('/marketplace'));
      app.route('/', market);
      const port = o.port ?? 8686;
      const host = o.host ?? '127.0.0.1';
      const server = serve({ fetch: app.fetch, port, hostname: host });
      await new Promise<void>((ok, fail) => {
        server.once('listening', () => ok());
        server.once('error', (e: Error) => fail(new ListenError(`cannot listen on ${host}:${port}: ${firstLine(e)}`)));
      });
      process.stderr.write(`riptide plugin serve: marketplace on http://${host}:${port}/marketplace; plugins in ${store.url}/plugins; publishing ${o.publishTokens?.length ? 'with a token' : 'off (no --publish-token)'}\n`);
      await new Promise<void>((done) => {
        process.once('SIGINT', () => done());
        process.once('SIGTERM', () => done());
      });
      server.close();
      await store.close();
      return 0;
    }
    default:
      throw new UsageError(`unknown subcommand "${sub}"`);
  }
}

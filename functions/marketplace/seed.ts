/**
 * Seeds a marketplace with the example plugins of this repository (`plugins/<name>/build`), so the
 * marketplace page of `riptide up --demo` shows something to install on first start instead of an
 * empty list. Each example goes through the marketplace's own publish route (every check a real
 * upload gets: manifest, hash, ABI, signature), signed with a demo publisher key kept in the data
 * dir — the same key on every start, because a name belongs to the key that first published it.
 *
 * @example
 *   const r = await seedExamplePlugins({ store, keyPrefix: '.riptide/demo-publisher' });
 *   // r.published: ['biz-trace-id@1.0.0', …] on the first start, [] later (r.present lists them)
 */
import { createPublicKey, randomBytes } from 'node:crypto';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MetricsRegistry } from '../../agent/metrics.ts';
import { generatePublisherKey, keyIdOf, parsePrivateKey, signPlugin } from '../../lib/marketplace/signing.ts';
import type { ObjectStore } from '../../agent/shipping/store.ts';
import { parseManifest } from '../../sdk-plugin/src/manifest.ts';
import { API, createMarketplaceApp } from './app.ts';

const EXAMPLES = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'plugins');

export interface SeedOptions {
  store: ObjectStore;
  /** `<prefix>.key` / `<prefix>.pub`: the demo publisher key, made on first use. */
  keyPrefix: string;
  /** Where the example plugins live (default: this repository's `plugins/`). */
  pluginsDir?: string;
}

export interface SeedResult {
  /** name@version published by this call. */
  published: string[];
  /** name@version already there. */
  present: string[];
  /** Examples that could not be published, with the marketplace's reason. */
  refused: string[];
  /** The demo publisher's key id and public key file (what an agent needs in --trusted-key). */
  keyId: string;
  publicKeyFile: string;
}

async function demoKey(prefix: string): Promise<{ pem: string; keyId: string }> {
  try {
    const pem = await readFile(`${prefix}.key`, 'utf8');
    return { pem, keyId: keyIdOf(createPublicKey(parsePrivateKey(pem))) };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const k = generatePublisherKey();
  await writeFile(`${prefix}.key`, k.privatePem, { mode: 0o600 });
  await writeFile(`${prefix}.pub`, k.publicPem);
  return { pem: k.privatePem, keyId: k.keyId };
}

export async function seedExamplePlugins(o: SeedOptions): Promise<SeedResult> {
  const dir = o.pluginsDir ?? EXAMPLES;
  const key = await demoKey(o.keyPrefix);
  const privateKey = parsePrivateKey(key.pem);
  // A marketplace app of its own over the same store, with a token that never leaves this process.
  const token = randomBytes(32).toString('hex');
  const app = createMarketplaceApp({ store: o.store, publishTokens: [token], metrics: new MetricsRegistry() });
  const out: SeedResult = { published: [], present: [], refused: [], keyId: key.keyId, publicKeyFile: `${o.keyPrefix}.pub` };
  for (const name of (await readdir(dir)).sort()) {
    let manifestText: string;
    try {
      manifestText = await readFile(join(dir, name, 'build', 'manifest.json'), 'utf8');
    } catch {
      continue; // not a built plugin
    }
    const manifest = parseManifest(JSON.parse(manifestText));
    const module = await readFile(join(dir, name, 'build', manifest.module));
    let description: string | undefined;
    try {
      const d = (JSON.parse(await readFile(join(dir, name, 'plugin.json'), 'utf8')) as { description?: unknown }).description;
      if (typeof d === 'string') description = d;
    } catch {
      // no description
    }
    const res = await app.request(`${API}/plugins`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ manifest, module: module.toString('base64'), signature: signPlugin(manifest, privateKey), description }),
    });
    const id = `${manifest.name}@${manifest.version}`;
    if (res.status === 201) out.published.push(id);
    else if (res.status === 409) out.present.push(id);
    else out.refused.push(`${id}: ${((await res.json()) as { error?: string }).error ?? res.status}`);
  }
  return out;
}

/**
 * Shared pieces for the marketplace tests: the example plugins from plugins/ as publish bodies,
 * signed with throwaway keys, and a marketplace served over HTTP on a free port.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { serve } from '@hono/node-server';
import type { KeyObject } from 'node:crypto';
import { parseManifest } from '../../sdk-plugin/src/manifest.ts';
import type { PluginManifest } from '../../sdk-plugin/src/manifest.ts';
import { signPlugin } from '../../lib/marketplace/signing.ts';
import type { SignatureFile } from '../../lib/marketplace/signing.ts';
import { createMarketplaceApp } from '../../functions/marketplace/app.ts';
import type { MarketplaceAppOptions } from '../../functions/marketplace/app.ts';
import { MetricsRegistry } from '../../agent/metrics.ts';
import { REPO } from '../helpers/agent.ts';

export const EXAMPLES = ['tinyrpc', 'biz-trace-id', 'http-error-200'] as const;
export const TOKEN = 'test-publish-token';

export interface Built {
  manifest: PluginManifest;
  module: Uint8Array;
}

export function example(name: string): Built {
  const dir = join(REPO, 'plugins', name, 'build');
  const manifest = parseManifest(JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')));
  return { manifest, module: new Uint8Array(readFileSync(join(dir, manifest.module))) };
}

/** The same module under another version (what a release with unchanged code looks like). */
export function withVersion(b: Built, version: string): Built {
  return { manifest: { ...b.manifest, version }, module: b.module };
}

export function publishBody(b: Built, key: KeyObject, extra: Record<string, unknown> = {}): { manifest: PluginManifest; module: string; signature: SignatureFile } & Record<string, unknown> {
  return { manifest: b.manifest, module: Buffer.from(b.module).toString('base64'), signature: signPlugin(b.manifest, key), ...extra };
}

export interface Served {
  url: string;
  metrics: MetricsRegistry;
  close(): Promise<void>;
}

export async function serveMarketplace(o: Omit<MarketplaceAppOptions, 'metrics'>): Promise<Served> {
  const metrics = new MetricsRegistry();
  const app = createMarketplaceApp({ ...o, metrics });
  const server = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' });
  await new Promise<void>((r) => server.once('listening', () => r()));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    metrics,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

// The marketplace end to end: the CLI makes a key, signs and publishes the example plugins and finds
// them; a real eBPF agent configured with `--plugin tinyrpc@^1` installs tinyrpc from the
// marketplace and parses live tinyrpc traffic with it; a newer matching version is swapped in
// without a restart; a tampered module and a plugin signed by an untrusted key are refused, logged
// and counted while the running version carries on.
import { execFile } from 'node:child_process';
import { cp, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileStore } from '../../agent/shipping/store.ts';
import { generatePublisherKey, parsePrivateKey } from '../../lib/marketplace/signing.ts';
import { TinyRpcClient } from '../../plugins/tinyrpc/demo/client.ts';
import { startServer } from '../../plugins/tinyrpc/demo/server.ts';
import type { RunningAgent } from '../helpers/agent.ts';
import { REPO, RIPTIDE, freePort, startAgent } from '../helpers/agent.ts';
import { TOKEN, example, publishBody, serveMarketplace, withVersion } from './fixtures.ts';
import type { Served } from './fixtures.ts';

const run = promisify(execFile);

async function riptide(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await run(process.execPath, [RIPTIDE, ...args], { cwd: REPO, env: { ...process.env, RIPTIDE_MARKETPLACE_TOKEN: TOKEN } });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

async function until(what: string, pred: () => boolean | Promise<boolean>, timeoutMs = 40_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await pred())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** A bucket an attacker controls: some objects are swapped as they are written. */
class TamperingStore extends FileStore {
  readonly swap = new Map<string, Uint8Array>();
  override put(key: string, body: Uint8Array): Promise<void> {
    return super.put(key, this.swap.get(key) ?? body);
  }
}

describe('marketplace: CLI and a live agent installing by name', () => {
  let tmp: string;
  let store: TamperingStore;
  let market: Served;
  let agent: RunningAgent | undefined;
  const servers: Array<{ close(): void }> = [];

  beforeAll(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'riptide-market-e2e-'));
    store = new TamperingStore(join(tmp, 'store'));
    market = await serveMarketplace({ store, publishTokens: [TOKEN] });
  });
  afterAll(async () => {
    for (const s of servers) s.close();
    await agent?.stop();
    await market?.close();
    await rm(tmp, { recursive: true, force: true });
  });

  it('keygen, sign, publish and search with the CLI; install verifies against trusted keys', async () => {
    const prefix = join(tmp, 'pub');
    const kg = await riptide('plugin', 'keygen', '--out', prefix);
    expect(kg.code, kg.stderr).toBe(0);
    expect(kg.stdout).toMatch(/^key [0-9a-f]{16}/);
    expect((await riptide('plugin', 'keygen', '--out', prefix)).code).toBe(2); // never overwrites a key

    for (const name of ['tinyrpc', 'http-error-200']) {
      // a copy: signing writes signature.json next to the manifest
      const dir = join(tmp, 'src', name);
      await cp(join(REPO, 'plugins', name, 'build'), dir, { recursive: true });
      const signed = await riptide('plugin', 'sign', dir, '--key', `${prefix}.key`);
      expect(signed.code, signed.stderr).toBe(0);
      const pub = await riptide('plugin', 'publish', dir, '--marketplace', market.url, '--description', `${name} example plugin`);
      expect(pub.code, pub.stderr).toBe(0);
      expect(pub.stdout).toContain(`published ${name}@1.0.0`);
    }
    const again = await riptide('plugin', 'publish', join(tmp, 'src', 'tinyrpc'), '--marketplace', market.url);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/409: tinyrpc@1\.0\.0 is already published/);

    const found = await riptide('plugin', 'search', '--protocol', 'tinyrpc', '--marketplace', market.url);
    expect(found.stdout.trim()).toBe('tinyrpc@1.0.0  hooks: check,parse  protocols: tinyrpc  — tinyrpc example plugin');

    const inst = await riptide('plugin', 'install', 'http-error-200@^1', '--marketplace', market.url, '--trusted-key', `${prefix}.pub`, '--dir', join(tmp, 'cli-plugins'));
    expect(inst.code, inst.stderr).toBe(0);
    expect(inst.stdout).toContain('installed http-error-200@1.0.0 (hash and signature verified)');
    const check = await riptide('plugin', 'check', join(tmp, 'cli-plugins', 'http-error-200', 'current'));
    expect(check.stdout).toContain('ok http-error-200@1.0.0');

    const stranger = generatePublisherKey();
    const refused = await riptide('plugin', 'install', 'tinyrpc@^1', '--marketplace', market.url, '--trusted-key', stranger.publicPem.replace(/-----[A-Z ]+-----|\n/g, ''), '--dir', join(tmp, 'cli-plugins'));
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/refused \(untrusted_key\): tinyrpc@1\.0\.0 is signed by key [0-9a-f]{16}, which is not among the 1 trusted key/);
  }, 180_000);

  it('an agent installs tinyrpc@^1 by name, parses live traffic with it, and picks up 1.1.0 without a restart', async () => {
    const key = parsePrivateKey(await readFile(join(tmp, 'pub.key'), 'utf8'));
    // biz-trace-id published by someone this agent does not trust
    const stranger = generatePublisherKey().privateKey;
    const bizRes = await fetch(`${market.url}/api/v1/marketplace/plugins`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' }, body: JSON.stringify(publishBody(example('biz-trace-id'), stranger)) });
    expect(bizRes.status).toBe(201);

    const rpcPort = await freePort();
    const dataDir = join(tmp, 'agent');
    agent = await startAgent([
      '--filter-port', String(rpcPort),
      '--data-dir', dataDir,
      '--marketplace', market.url,
      '--trusted-key', join(tmp, 'pub.pub'),
      '--plugin', 'tinyrpc@^1,biz-trace-id@^1',
      '--marketplace-poll-seconds', '1',
    ]);
    const a = agent;
    expect(a.stderr()).toContain('marketplace plugin tinyrpc@^1 → 1.0.0 installed');
    expect(a.stderr()).toMatch(/marketplace plugin refused \(untrusted_key\): biz-trace-id@1\.0\.0 is signed by key/);
    const metricsUrl = /metrics on (http:\/\/\S+\/metrics)/.exec(a.stderr())?.[1] as string;
    const metricsText = async (): Promise<string> => (await fetch(metricsUrl)).text();
    expect(await metricsText()).toContain('riptide_marketplace_refused_total{reason="untrusted_key"} 1');

    servers.push(await startServer(rpcPort));
    const callOnce = async (arg: string): Promise<void> => {
      const client = await TinyRpcClient.connect(rpcPort);
      await client.call('echo', arg);
      client.close();
    };
    await callOnce('v1');
    await a.waitFor((l) => l.l7_protocol === 'tinyrpc' && l.msg_type === 'request', 1, 30_000);

    // a new matching release: the agent installs it and the host swaps it in
    const r = await fetch(`${market.url}/api/v1/marketplace/plugins`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' }, body: JSON.stringify(publishBody(withVersion(example('tinyrpc'), '1.1.0'), key)) });
    expect(r.status).toBe(201);
    await until('1.1.0 to be loaded', () => a.stderr().includes('plugin tinyrpc@1.1.0 loaded'));
    expect(a.stderr()).toContain('marketplace plugin tinyrpc@^1 → 1.1.0 installed; hot reload swaps it in');
    const before = a.lines.filter((l) => l.l7_protocol === 'tinyrpc').length;
    await callOnce('v1.1');
    await a.waitFor((l) => l.l7_protocol === 'tinyrpc', before + 1, 30_000);
    expect(await metricsText()).toMatch(/riptide_plugin_reloads_total\{plugin="tinyrpc"\} 1/);

    // 1.2.0 is published, but the bucket swaps its module as it is stored: refused, 1.1.0 keeps running
    const evil = new Uint8Array(example('tinyrpc').module);
    evil[evil.length - 1] ^= 0xff;
    store.swap.set('plugins/tinyrpc/1.2.0/module.wasm', evil);
    const r2 = await fetch(`${market.url}/api/v1/marketplace/plugins`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' }, body: JSON.stringify(publishBody(withVersion(example('tinyrpc'), '1.2.0'), key)) });
    expect(r2.status).toBe(201);
    await until('the tampered module to be refused', () => a.stderr().includes('marketplace plugin refused (hash_mismatch): tinyrpc@1.2.0'));
    await new Promise((res) => setTimeout(res, 2500)); // a couple more polls: refused once, not re-counted
    expect(await metricsText()).toContain('riptide_marketplace_refused_total{reason="hash_mismatch"} 1');
    expect(a.stderr()).not.toContain('plugin tinyrpc@1.2.0 loaded');
    const n = a.lines.filter((l) => l.l7_protocol === 'tinyrpc').length;
    await callOnce('still 1.1');
    await a.waitFor((l) => l.l7_protocol === 'tinyrpc', n + 1, 30_000);
    expect(a.stderr()).not.toMatch(/plugin tinyrpc@\S+ disabled/);
  }, 180_000);
});

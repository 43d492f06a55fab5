// The host against hostile plugins: each broken rule disables that plugin only (one log line,
// one count), the call returns promptly, and the other plugins keep working. Plus hot reload and
// non-ASCII strings both ways.
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadPlugins } from '../../agent/plugins/host.ts';
import type { LoadedPlugins } from '../../agent/plugins/host.ts';
import type { HttpHookPlugin } from '../../agent/plugins/types.ts';
import { MetricsRegistry } from '../../agent/metrics.ts';
import type { L7Message, ParseContext } from '../../agent/protocols/parser.ts';
import { buildPlugin } from '../../sdk-plugin/src/build.ts';
import { sha256Hex } from '../../sdk-plugin/src/hash.ts';
import { writeHostilePlugin } from './fixtures/hostile.ts';

const root = new URL('../../', import.meta.url).pathname;
const ctx: ParseContext = { direction: 'ingress', role: 'server', l4: 'tcp', localPort: 8080, remotePort: 40000, socketId: 9, bytes: 0, state: {} };
const utf8 = new TextEncoder();

/** A module with memory and a hook but no `riptide_abi_v1` marker. */
const NO_MARKER = Uint8Array.from([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
  0x01, 0x07, 0x01, 0x60, 0x02, 0x7f, 0x7f, 0x01, 0x7f,
  0x03, 0x02, 0x01, 0x00,
  0x05, 0x03, 0x01, 0x00, 0x01,
  0x07, 0x24, 0x02, 0x06, ...utf8.encode('memory'), 0x02, 0x00, 0x17, ...utf8.encode('riptide_on_http_request'), 0x00, 0x00,
  0x0a, 0x06, 0x01, 0x04, 0x00, 0x41, 0x00, 0x0b,
]);

let work: string;
let hostileWasm: Uint8Array;
let hostileManifest: Record<string, unknown>;
let bizDir: string;

async function install(name: string, wasm: Uint8Array, manifest: Record<string, unknown>): Promise<string> {
  const dir = join(work, name);
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, `${name}.wasm`), wasm);
  await writeFile(join(dir, 'manifest.json'), JSON.stringify({ ...manifest, name, module: `${name}.wasm` }));
  return dir;
}

function request(path: string, body = '', extra = ''): [L7Message, Uint8Array] {
  const msg: L7Message = { l7Protocol: 'http1', msgType: 'request', requestType: 'POST', requestDomain: 'svc', requestResource: path };
  return [msg, utf8.encode(`POST ${path} HTTP/1.1\r\nHost: svc\r\nContent-Type: application/json\r\n${extra}\r\n${body}`)];
}

function call(h: HttpHookPlugin, path: string, body = '') {
  const [m, p] = request(path, body);
  return h.onHttpRequest(m, p, ctx);
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'riptide-plugins-'));
  const built = await buildPlugin(await writeHostilePlugin(join(work, 'hostile-src')), { outDir: join(work, 'hostile-build') });
  hostileWasm = await readFile(built.wasmPath);
  hostileManifest = built.manifest as unknown as Record<string, unknown>;
  bizDir = join(root, 'plugins/biz-trace-id');
});

afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

describe('plugin host', () => {
  let plugins: LoadedPlugins;
  const lines: string[] = [];
  const registry = new MetricsRegistry();
  const hook = (name: string): HttpHookPlugin => {
    const h = plugins.httpHooks.find((x) => x.name === name);
    if (!h) throw new Error(`no hook ${name}`);
    return h;
  };

  beforeAll(async () => {
    const paths = [bizDir];
    for (const n of ['loop', 'copyloop', 'oom', 'trap', 'big', 'abort', 'recurse', 'echo']) paths.push(await install(n, hostileWasm, hostileManifest));
    paths.push(await install('wrongabi', NO_MARKER, { ...hostileManifest, sha256: sha256Hex(NO_MARKER) }));
    paths.push(await install('abitwo', hostileWasm, { ...hostileManifest, abi: 2 }));
    paths.push(await install('tampered', hostileWasm, { ...hostileManifest, sha256: 'f'.repeat(64) }));
    paths.push(join(work, 'missing'));
    plugins = await loadPlugins({ paths, reloadIntervalMs: 0, metrics: registry, log: (l) => lines.push(l) });
  });

  it('refuses modules that fail load checks, each with its reason', () => {
    const st = Object.fromEntries(plugins.host.status().map((s) => [s.path.split('/').pop(), s]));
    expect(st.wrongabi).toMatchObject({ state: 'disabled', reason: 'wrong_abi' });
    expect(st.abitwo).toMatchObject({ state: 'disabled', reason: 'wrong_abi' });
    expect(st.tampered).toMatchObject({ state: 'disabled', reason: 'hash_mismatch' });
    expect(st.missing).toMatchObject({ state: 'disabled', reason: 'load_error' });
    expect(st['biz-trace-id'].state).toBe('active');
    expect(lines.filter((l) => l.includes('tampered'))).toHaveLength(1);
  });

  it.each([
    ['loop', '/loop', 'timeout'],
    ['copyloop', '/copyloop', 'timeout'],
    ['oom', '/oom', 'memory_limit'],
    ['trap', '/trap', 'trap'],
    ['abort', '/abort', 'trap'],
    ['recurse', '/recurse', 'trap'],
    ['big', '/big', 'oversized_output'],
  ])('disables %s (%s → %s) and the others carry on', (name, path, reason) => {
    const h = hook(name);
    expect(call(h, '/ok')).toEqual({ xRequestId: 'hostile-ok' });
    const t0 = performance.now();
    expect(call(h, path)).toBeNull();
    expect(performance.now() - t0).toBeLessThan(2000);
    const st = plugins.host.status().find((s) => s.name === name);
    expect(st).toMatchObject({ state: 'disabled', reason });
    expect(lines.filter((l) => l.includes(`plugin ${name}@`))).toHaveLength(1);
    expect(lines.find((l) => l.includes(`plugin ${name}@`))).toMatch(new RegExp(`disabled \\(${reason}\\)`));
    // disabled: answers null without calling in; a neighbour still works
    expect(call(h, '/ok')).toBeNull();
    expect(call(hook('echo'), '/ok')).toEqual({ xRequestId: 'hostile-ok' });
    expect(call(hook('biz-trace-id'), '/pay', '{"txn_id":"T1"}')).toMatchObject({ traceId: 'T1' });
    expect(registry.render()).toContain(`riptide_plugin_disabled_total{plugin="${name}",reason="${reason}"} 1`);
  });

  it('round-trips non-ASCII strings in both directions', () => {
    const [m, p] = request('/echo', '{"msg":"naïve — 你好 🌊"}', 'X-Note: ok\r\n');
    m.requestType = 'ПОСТ';
    m.requestDomain = 'café.example';
    expect(hook('echo').onHttpRequest(m, p, ctx)).toEqual({
      traceId: 'ПОСТ',
      attributes: { 'café.example': 'naïve — 你好 🌊' },
      responseException: 'ok',
    });
  });

  afterAll(() => plugins.close());
});

describe('hot reload', () => {
  it('swaps in a new version without a restart, and refuses a broken one while the old keeps running', async () => {
    const dir = join(work, 'reload');
    await mkdir(dir, { recursive: true });
    const bizManifest = JSON.parse(await readFile(join(bizDir, 'build/manifest.json'), 'utf8')) as Record<string, unknown>;
    await copyFile(join(bizDir, 'build', String(bizManifest.module)), join(dir, String(bizManifest.module)));
    await writeFile(join(dir, 'manifest.json'), JSON.stringify(bizManifest));
    const lines: string[] = [];
    const plugins = await loadPlugins({ paths: [dir], reloadIntervalMs: 0, metrics: new MetricsRegistry(), log: (l) => lines.push(l) });
    const h = plugins.httpHooks[0];
    expect(call(h, '/pay', '{"txn_id":"A"}')).toMatchObject({ traceId: 'A' });

    // version 2: same name, different module (the hostile one answers /pay with x-request-id)
    await writeFile(join(dir, 'v2.wasm'), hostileWasm);
    await writeFile(join(dir, 'manifest.json'), JSON.stringify({ ...hostileManifest, name: 'biz-trace-id', version: '2.0.0', module: 'v2.wasm' }));
    await plugins.host.poll(); // sees the change
    await plugins.host.poll(); // files unchanged since: loads
    expect(call(h, '/pay', '{"txn_id":"A"}')).toEqual({ xRequestId: 'hostile-ok' });
    expect(plugins.host.status()[0]).toMatchObject({ version: '2.0.0', state: 'active', reloads: 1 });

    // version 3 is tampered with: refused, version 2 keeps running
    await writeFile(join(dir, 'manifest.json'), JSON.stringify({ ...hostileManifest, name: 'biz-trace-id', version: '3.0.0', module: 'v2.wasm', sha256: '0'.repeat(64) }));
    await plugins.host.poll();
    await plugins.host.poll();
    expect(call(h, '/pay', '{}')).toEqual({ xRequestId: 'hostile-ok' });
    expect(lines.some((l) => /3\.0\.0.*refused \(hash_mismatch\)/.test(l))).toBe(true);

    // a disabled plugin comes back with a fixed version
    expect(call(h, '/trap')).toBeNull();
    expect(plugins.host.status()[0].state).toBe('disabled');
    await writeFile(join(dir, 'manifest.json'), JSON.stringify({ ...hostileManifest, name: 'biz-trace-id', version: '4.0.0', module: 'v2.wasm' }));
    await plugins.host.poll();
    await plugins.host.poll();
    expect(plugins.host.status()[0]).toMatchObject({ version: '4.0.0', state: 'active' });
    expect(call(h, '/ok')).toEqual({ xRequestId: 'hostile-ok' });
    plugins.close();
  });
});

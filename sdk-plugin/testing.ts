/**
 * Test helper for plugin authors: runs a compiled plugin against payload fixtures from a Vitest
 * (or any) test, in the same sandbox the agent uses — same metering, memory cap and ABI checks.
 *
 * Fixtures live in a folder as pairs: `<name>.http` (text; header lines get CRLF), `<name>.bin`
 * (raw bytes) or `<name>.hex` (hex, whitespace ignored), plus `<name>.json`:
 *   { "hook": "http_request" | "http_response" | "parse" | "check", "ctx": {…}, "fields": {…}, "expect": … }
 *
 * @example
 *   const plugin = await loadPluginForTest('plugins/biz-trace-id');
 *   for (const f of await plugin.runFixtures('plugins/biz-trace-id/fixtures')) expect(f.result, f.name).toEqual(f.expect);
 */
import { readFile, readdir } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import type { HookName, HttpFieldsInput, InputContext, PluginMessage, PluginResult } from './src/abi.ts';
import { buildPlugin } from './src/build.ts';
import { sha256Hex } from './src/hash.ts';
import { parseManifest } from './src/manifest.ts';
import type { PluginManifest } from './src/manifest.ts';
import { PluginSandbox } from './src/sandbox.ts';

export { PluginFault } from './src/sandbox.ts';
export type { PluginMessage, PluginResult } from './src/abi.ts';

export const DEFAULT_CTX: InputContext = { direction: 'egress', role: 'client', l4: 'tcp', localPort: 40000, remotePort: 8080, socketId: 1, bytes: 0 };

export interface FixtureRun {
  name: string;
  hook: HookName;
  result: PluginMessage[] | PluginResult | number | null;
  expect: unknown;
}

export class PluginUnderTest {
  constructor(
    readonly manifest: PluginManifest,
    readonly sandbox: PluginSandbox,
  ) {}

  private ctx(payload: Uint8Array, ctx?: Partial<InputContext>): InputContext {
    return { ...DEFAULT_CTX, bytes: payload.length, ...ctx };
  }

  check(payload: Uint8Array | string, ctx?: Partial<InputContext>): number {
    const p = bytes(payload);
    return this.sandbox.check(this.ctx(p, ctx), p);
  }
  parse(payload: Uint8Array | string, ctx?: Partial<InputContext>): PluginMessage[] {
    const p = bytes(payload);
    return this.sandbox.parse(this.ctx(p, ctx), p);
  }
  httpRequest(payload: Uint8Array | string, fields: HttpFieldsInput = {}, ctx?: Partial<InputContext>): PluginResult | null {
    const p = bytes(payload);
    return this.sandbox.http('http_request', this.ctx(p, ctx), fields, p);
  }
  httpResponse(payload: Uint8Array | string, fields: HttpFieldsInput = {}, ctx?: Partial<InputContext>): PluginResult | null {
    const p = bytes(payload);
    return this.sandbox.http('http_response', this.ctx(p, { direction: 'ingress', ...ctx }), fields, p);
  }

  /** Runs every fixture in `dir` through the hook its `.json` names. */
  async runFixtures(dir: string): Promise<FixtureRun[]> {
    const files = (await readdir(dir)).sort();
    const out: FixtureRun[] = [];
    for (const f of files) {
      if (!f.endsWith('.json')) continue;
      const name = f.slice(0, -5);
      const spec = JSON.parse(await readFile(join(dir, f), 'utf8')) as { hook: HookName; ctx?: Partial<InputContext>; fields?: HttpFieldsInput; expect?: unknown };
      const payloadFile = files.find((x) => x.startsWith(name + '.') && x !== f);
      if (!payloadFile) throw new Error(`fixture ${name}: no payload file next to ${f}`);
      const payload = await readFixture(join(dir, payloadFile));
      let result: FixtureRun['result'];
      switch (spec.hook) {
        case 'check': result = this.check(payload, spec.ctx); break;
        case 'parse': result = this.parse(payload, spec.ctx); break;
        case 'http_request': result = this.httpRequest(payload, spec.fields, spec.ctx); break;
        case 'http_response': result = this.httpResponse(payload, spec.fields, spec.ctx); break;
        default: throw new Error(`fixture ${name}: unknown hook ${String(spec.hook)}`);
      }
      out.push({ name, hook: spec.hook, result, expect: spec.expect ?? null });
    }
    return out;
  }
}

function bytes(p: Uint8Array | string): Uint8Array {
  return typeof p === 'string' ? new TextEncoder().encode(p) : p;
}

/** Reads a fixture payload: `.http` (LF → CRLF in the head), `.hex`, or raw bytes. */
export async function readFixture(path: string): Promise<Uint8Array> {
  if (path.endsWith('.hex')) {
    const hex = (await readFile(path, 'utf8')).replace(/#[^\n]*/g, '').replace(/\s+/g, '');
    return Uint8Array.from(hex.match(/../g) ?? [], (h) => parseInt(h, 16));
  }
  if (path.endsWith('.http')) {
    const text = await readFile(path, 'utf8');
    const sep = text.indexOf('\n\n');
    const head = sep < 0 ? text : text.slice(0, sep);
    const body = sep < 0 ? '' : text.slice(sep + 2).replace(/\n$/, '');
    return new TextEncoder().encode(head.replace(/\r?\n/g, '\r\n') + '\r\n\r\n' + body);
  }
  return new Uint8Array(await readFile(path));
}

/**
 * Loads a plugin for a test: from `<dir>/build/manifest.json` (or a manifest path), verifying the
 * hash like the agent. With `build: true`, compiles first into `outDir` (default `<dir>/build`).
 */
export async function loadPluginForTest(dirOrManifest: string, opts: { build?: boolean; outDir?: string } = {}): Promise<PluginUnderTest> {
  let manifestPath = resolve(dirOrManifest);
  if (opts.build) manifestPath = (await buildPlugin(dirOrManifest, { outDir: opts.outDir })).manifestPath;
  else if (!manifestPath.endsWith('.json')) manifestPath = join(manifestPath, 'build', 'manifest.json');
  const manifest = parseManifest(JSON.parse(await readFile(manifestPath, 'utf8')));
  const wasm = await readFile(join(dirname(manifestPath), manifest.module));
  if (sha256Hex(wasm) !== manifest.sha256) throw new Error(`${manifest.module}: sha256 does not match ${manifestPath} (rebuild with riptide plugin build)`);
  const sandbox = await PluginSandbox.load(wasm, manifest, manifest.hooks);
  return new PluginUnderTest(manifest, sandbox);
}

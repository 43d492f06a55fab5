/**
 * Test helper for plugin authors: runs a compiled plugin against payload fixtures from a Vitest
 * (or any) test, in the same sandbox the agent uses — same metering, memory cap and ABI checks.
 *
 * Fixtures live in a folder as pairs: `<name>.http` (text; header lines get CRLF), `<name>.bin`
 * (raw bytes) or `<name>.hex` (hex, whitespace ignored), plus `<name>.json`:
 *   { "hook": "http_request" | "http_response" | "parse" | "check", "ctx": {…}, "fields": {…}, "expect": … }
 *
 * Every fixture run reports the fuel the call used (≈ wasm instructions; what `timeBudgetMs`
 * buys, at {@link FUEL_PER_MS} per ms) and prints it, so an author sees how close a realistic
 * payload comes to the budget. A fixture that runs out of fuel fails with the fuel it needed.
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
import { HOST_CEILINGS, parseManifest } from './src/manifest.ts';
import type { PluginManifest } from './src/manifest.ts';
import { FUEL_PER_MS, PluginFault, PluginSandbox } from './src/sandbox.ts';

export { PluginFault } from './src/sandbox.ts';
export type { PluginMessage, PluginResult } from './src/abi.ts';

export const DEFAULT_CTX: InputContext = { direction: 'egress', role: 'client', l4: 'tcp', localPort: 40000, remotePort: 8080, socketId: 1, bytes: 0 };

export interface FixtureRun {
  name: string;
  hook: HookName;
  result: PluginMessage[] | PluginResult | number | null;
  expect: unknown;
  /** Fuel the call used. */
  fuel: number;
  /** Fuel per call the manifest's `timeBudgetMs` allows. */
  fuelBudget: number;
}

export interface RunFixturesOptions {
  /** Where the per-fixture fuel lines go (default: stdout, which Vitest shows with the test). `null`: nowhere. */
  log?: ((line: string) => void) | null;
}

export class PluginUnderTest {
  private roomy: Promise<PluginSandbox> | undefined;

  constructor(
    readonly manifest: PluginManifest,
    readonly sandbox: PluginSandbox,
    private readonly wasm?: Uint8Array,
  ) {}

  /** Fuel per call the manifest's `timeBudgetMs` allows. */
  get fuelBudget(): number {
    return Math.round(this.manifest.timeBudgetMs * FUEL_PER_MS);
  }
  /** Fuel the last call used (≈ wasm instructions). */
  get lastFuelUsed(): number {
    return this.sandbox.lastFuelUsed;
  }

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

  /**
   * Runs every fixture in `dir` through the hook its `.json` names and logs one line per fixture:
   * `fixture <name> (<hook>): <fuel> fuel of <budget> (<n>%)`. A fixture that runs out of fuel
   * throws with the fuel it needs (measured again under the host's ceiling).
   */
  async runFixtures(dir: string, opts: RunFixturesOptions = {}): Promise<FixtureRun[]> {
    const log = opts.log === undefined ? (line: string) => void process.stdout.write(line + '\n') : opts.log;
    const files = (await readdir(dir)).sort();
    const out: FixtureRun[] = [];
    for (const f of files) {
      if (!f.endsWith('.json')) continue;
      const name = f.slice(0, -5);
      const spec = JSON.parse(await readFile(join(dir, f), 'utf8')) as FixtureSpec;
      const payloadFile = files.find((x) => x.startsWith(name + '.') && x !== f);
      if (!payloadFile) throw new Error(`fixture ${name}: no payload file next to ${f}`);
      const payload = await readFixture(join(dir, payloadFile));
      let result: FixtureRun['result'];
      try {
        result = runSpec(this, spec, payload, name);
      } catch (err) {
        if (!(err instanceof PluginFault) || err.reason !== 'timeout') throw err;
        throw new Error(`fixture ${name}: ${this.manifest.name} ran out of fuel: ${await this.fuelNeeded(spec, payload, name)}`);
      }
      const run: FixtureRun = { name, hook: spec.hook, result, expect: spec.expect ?? null, fuel: this.lastFuelUsed, fuelBudget: this.fuelBudget };
      log?.(`fixture ${name} (${run.hook}, ${payload.length} B): ${run.fuel} fuel of ${run.fuelBudget} (${((run.fuel / run.fuelBudget) * 100).toFixed(1)}% of timeBudgetMs ${this.manifest.timeBudgetMs})`);
      out.push(run);
    }
    return out;
  }

  /** Reruns a fixture that ran out of fuel under the host's ceiling and says what it needs. */
  private async fuelNeeded(spec: FixtureSpec, payload: Uint8Array, name: string): Promise<string> {
    const have = `timeBudgetMs ${this.manifest.timeBudgetMs} allows ${this.fuelBudget} fuel`;
    if (!this.wasm) return have;
    this.roomy ??= PluginSandbox.load(this.wasm, { ...this.manifest, timeBudgetMs: HOST_CEILINGS.timeBudgetMs }, this.manifest.hooks);
    const roomy = new PluginUnderTest({ ...this.manifest, timeBudgetMs: HOST_CEILINGS.timeBudgetMs }, await this.roomy);
    try {
      runSpec(roomy, spec, payload, name);
    } catch (err) {
      if (err instanceof PluginFault && err.reason === 'timeout') return `${have}; it needs more than ${roomy.fuelBudget} (the host's ceiling, ${HOST_CEILINGS.timeBudgetMs} ms)`;
      throw err;
    }
    const ms = Math.ceil((roomy.lastFuelUsed / FUEL_PER_MS) * 10) / 10;
    return `${have}; this payload needs ${roomy.lastFuelUsed} (set "timeBudgetMs" ≥ ${ms} in plugin.json, or do less per call)`;
  }
}

interface FixtureSpec {
  hook: HookName;
  ctx?: Partial<InputContext>;
  fields?: HttpFieldsInput;
  expect?: unknown;
}

function runSpec(p: PluginUnderTest, spec: FixtureSpec, payload: Uint8Array, name: string): FixtureRun['result'] {
  switch (spec.hook) {
    case 'check': return p.check(payload, spec.ctx);
    case 'parse': return p.parse(payload, spec.ctx);
    case 'http_request': return p.httpRequest(payload, spec.fields, spec.ctx);
    case 'http_response': return p.httpResponse(payload, spec.fields, spec.ctx);
    default: throw new Error(`fixture ${name}: unknown hook ${String(spec.hook)}`);
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
  return new PluginUnderTest(manifest, sandbox, wasm);
}

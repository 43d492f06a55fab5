/**
 * Builds a plugin: compiles `<dir>/assembly/index.ts` (or the manifest's `entry`) with the
 * AssemblyScript compiler and writes `<dir>/build/<name>.wasm` and `<dir>/build/manifest.json`.
 *
 * Imports of `@riptide/sdk-plugin/assembly` resolve like any AssemblyScript package: first from a
 * `node_modules/@riptide/sdk-plugin` above the plugin (the version a project installed), else from
 * the SDK doing the build (this folder), so a plugin copied from the template builds anywhere in
 * this repository — or outside it — without an install step or a relative path.
 *
 * Compiler flags: `-O3 --runtime stub`. The stub runtime is a bump allocator that the ABI resets at
 * every call (`riptide_alloc`), so there is no GC to run and nothing leaks across calls; it yields
 * smaller, faster modules than `--runtime incremental` (measured in docs/BENCHMARKS.md).
 *
 * @example
 *   const { manifest, wasmPath } = await buildPlugin('plugins/biz-trace-id');
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ABI_VERSION } from './abi.ts';
import { sha256Hex } from './hash.ts';
import { ManifestError, parseSourceManifest } from './manifest.ts';
import type { PluginManifest } from './manifest.ts';

export interface BuildOptions {
  /** Output folder (default `<dir>/build`). */
  outDir?: string;
  /** AssemblyScript runtime (default `stub`; the ABI needs `heap.reset`, which only stub has). */
  runtime?: 'stub' | 'incremental' | 'minimal';
  /** Optimisation level flag (default `-O3`). */
  optimize?: string;
}

export interface BuildResult {
  manifest: PluginManifest;
  manifestPath: string;
  wasmPath: string;
  /** Compile wall time. */
  ms: number;
}

export class BuildError extends Error {}

/** The SDK's own folder (sdk-plugin/), whose `assembly/` a plugin imports as `@riptide/sdk-plugin/assembly`. */
export const SDK_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
/**
 * A package folder handed to asc with `--path` (searched after every `node_modules`): it does not
 * exist on disk; `readSource` serves `<it>/@riptide/sdk-plugin/<file>` from {@link SDK_ROOT}.
 */
const SDK_PACKAGES = join(SDK_ROOT, '.packages');
const SDK_PACKAGE = join(SDK_PACKAGES, '@riptide', 'sdk-plugin') + sep;

async function readSource(filename: string, baseDir: string): Promise<string | null> {
  let path = resolve(baseDir, filename);
  if (path.startsWith(SDK_PACKAGE)) path = join(SDK_ROOT, path.slice(SDK_PACKAGE.length));
  try {
    return await readFile(path, 'utf8');
  } catch {
    return null;
  }
}

export { sha256Hex };

export async function buildPlugin(dir: string, opts: BuildOptions = {}): Promise<BuildResult> {
  const root = resolve(dir);
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(join(root, 'plugin.json'), 'utf8'));
  } catch (err) {
    throw new BuildError(`cannot read ${join(root, 'plugin.json')}: ${(err as Error).message}`);
  }
  let src;
  try {
    src = parseSourceManifest(raw);
  } catch (err) {
    if (err instanceof ManifestError) throw new BuildError(`${join(root, 'plugin.json')}: ${err.message}`);
    throw err;
  }
  const entry = resolve(root, src.entry ?? 'assembly/index.ts');
  const outDir = resolve(opts.outDir ?? join(root, 'build'));
  const { default: asc } = await import('assemblyscript/asc');
  let binary: Uint8Array | undefined;
  const errors: string[] = [];
  const t0 = performance.now();
  const result = await asc.main(
    [entry, opts.optimize ?? '-O3', '--runtime', opts.runtime ?? 'stub', '--path', SDK_PACKAGES, '--outFile', 'plugin.wasm', '--noColors'],
    {
      readFile: readSource,
      writeFile: (name: string, contents: Uint8Array | string) => {
        if (name.endsWith('.wasm') && typeof contents !== 'string') binary = contents;
      },
      stdout: { write: () => true } as never,
      stderr: { write: (s: string | Uint8Array) => (errors.push(String(s)), true) } as never,
    },
  );
  const ms = performance.now() - t0;
  if (result.error || !binary) throw new BuildError(`asc failed for ${entry}:\n${errors.join('').trim() || String(result.error)}`);
  const sha256 = sha256Hex(binary);
  const moduleName = `${src.name}.wasm`;
  const { entry: _entry, ...fields } = src;
  const manifest: PluginManifest = { ...fields, abi: ABI_VERSION, module: moduleName, sha256 };
  await mkdir(outDir, { recursive: true });
  const wasmPath = join(outDir, moduleName);
  const manifestPath = join(outDir, 'manifest.json');
  await writeFile(wasmPath, binary);
  await writeFile(manifestPath, JSON.stringify(manifest, null, 2) + '\n');
  return { manifest, manifestPath, wasmPath, ms };
}

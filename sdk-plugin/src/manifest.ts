/**
 * The plugin manifest: what a built plugin declares, next to its module. Written by
 * `riptide plugin build`, read by the agent, which refuses a module whose sha256 differs.
 *
 * Source form (`<plugin dir>/plugin.json`) is the same minus `abi`, `module` and `sha256`.
 *
 * @example
 *   { "name": "tinyrpc", "version": "1.0.0", "abi": 1, "hooks": ["check", "parse"],
 *     "protocols": [{ "name": "tinyrpc", "transports": ["tcp"], "parallel": true }],
 *     "module": "tinyrpc.wasm", "sha256": "…", "memoryPages": 16, "timeBudgetMs": 2, "maxOutputBytes": 65536 }
 */
import { ABI_VERSION } from './abi.ts';
import type { HookName } from './abi.ts';

export interface ProtocolDecl {
  /** The `l7_protocol` value of spans this plugin produces. */
  name: string;
  transports: Array<'tcp' | 'udp'>;
  /** Responses pair with requests by request id (true) or in order (false). */
  parallel: boolean;
}

export interface PluginManifest {
  name: string;
  version: string;
  abi: number;
  hooks: HookName[];
  protocols: ProtocolDecl[];
  /** Module file, relative to the manifest. */
  module: string;
  /** Lower-case hex sha256 of the module file. */
  sha256: string;
  /** Linear memory cap, 64 KiB pages. */
  memoryPages: number;
  /** Per-call time budget. */
  timeBudgetMs: number;
  /** Largest result a call may return. */
  maxOutputBytes: number;
}

export type SourceManifest = Omit<PluginManifest, 'abi' | 'module' | 'sha256'> & { entry?: string };

/** timeBudgetMs 5 = 2.5 M fuel: four jsonField lookups in a 16 KiB JSON body with room to spare (docs/BENCHMARKS.md, "JSON fields"). */
export const MANIFEST_DEFAULTS = { memoryPages: 16, timeBudgetMs: 5, maxOutputBytes: 65536 } as const;
/** Hard ceilings, whatever a manifest asks for. */
export const HOST_CEILINGS = { memoryPages: 256, timeBudgetMs: 50, maxOutputBytes: 1 << 20 } as const;

const HOOKS: readonly HookName[] = ['check', 'parse', 'http_request', 'http_response'];

export class ManifestError extends Error {}

function obj(v: unknown, what: string): Record<string, unknown> {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new ManifestError(`${what} must be an object`);
  return v as Record<string, unknown>;
}

function num(o: Record<string, unknown>, key: string, def: number, max: number): number {
  const v = o[key] ?? def;
  if (typeof v !== 'number' || !(v > 0) || v > max) throw new ManifestError(`"${key}" must be a number in (0, ${max}]`);
  return v;
}

/** Validates the fields shared by source and built manifests. */
export function parseSourceManifest(raw: unknown): SourceManifest {
  const o = obj(raw, 'manifest');
  const name = o.name;
  if (typeof name !== 'string' || !/^[a-z][a-z0-9_-]{0,31}$/.test(name)) throw new ManifestError('"name" must be 1-32 chars of a-z, 0-9, _ or -, starting with a letter');
  const version = o.version;
  if (typeof version !== 'string' || !/^\d+\.\d+\.\d+([-+][\w.-]+)?$/.test(version)) throw new ManifestError('"version" must be semver (1.2.3)');
  if (!Array.isArray(o.hooks) || o.hooks.length === 0) throw new ManifestError('"hooks" must list at least one of ' + HOOKS.join(', '));
  const hooks = o.hooks.map((h) => {
    if (!HOOKS.includes(h as HookName)) throw new ManifestError(`unknown hook "${String(h)}" (one of ${HOOKS.join(', ')})`);
    return h as HookName;
  });
  const protocols = (Array.isArray(o.protocols) ? o.protocols : []).map((p, i): ProtocolDecl => {
    const po = obj(p, `protocols[${i}]`);
    if (typeof po.name !== 'string' || !/^[a-z][a-z0-9_-]{0,31}$/.test(po.name)) throw new ManifestError(`protocols[${i}].name is invalid`);
    const transports = (Array.isArray(po.transports) ? po.transports : ['tcp']).map((t) => {
      if (t !== 'tcp' && t !== 'udp') throw new ManifestError(`protocols[${i}].transports: "${String(t)}" is not tcp or udp`);
      return t;
    });
    return { name: po.name, transports, parallel: po.parallel === true };
  });
  const parses = hooks.includes('parse');
  if (parses !== hooks.includes('check')) throw new ManifestError('hooks "check" and "parse" go together');
  if (parses && protocols.length === 0) throw new ManifestError('a plugin with a "parse" hook must declare its protocol in "protocols"');
  const out: SourceManifest = {
    name,
    version,
    hooks,
    protocols,
    memoryPages: num(o, 'memoryPages', MANIFEST_DEFAULTS.memoryPages, HOST_CEILINGS.memoryPages),
    timeBudgetMs: num(o, 'timeBudgetMs', MANIFEST_DEFAULTS.timeBudgetMs, HOST_CEILINGS.timeBudgetMs),
    maxOutputBytes: num(o, 'maxOutputBytes', MANIFEST_DEFAULTS.maxOutputBytes, HOST_CEILINGS.maxOutputBytes),
  };
  if (typeof o.entry === 'string') out.entry = o.entry;
  return out;
}

/** Validates a built manifest (`build/manifest.json`). Throws {@link ManifestError}. */
export function parseManifest(raw: unknown): PluginManifest {
  const o = obj(raw, 'manifest');
  const base = parseSourceManifest(raw);
  if (o.abi !== ABI_VERSION) throw new ManifestError(`"abi" is ${String(o.abi)}; this host speaks ABI ${ABI_VERSION}`);
  if (typeof o.module !== 'string' || o.module.includes('..')) throw new ManifestError('"module" must be a file name next to the manifest');
  if (typeof o.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(o.sha256)) throw new ManifestError('"sha256" must be 64 lower-case hex digits');
  delete base.entry;
  return { ...base, abi: ABI_VERSION, module: o.module, sha256: o.sha256 } as PluginManifest;
}

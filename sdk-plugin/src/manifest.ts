/**
 * The plugin manifest: what a built plugin declares, next to its module. Written by
 * `riptide plugin build`, read by the agent, which refuses a module whose sha256 differs.
 *
 * Source form (`<plugin dir>/plugin.json`) is the same minus `abi`, `module` and `sha256`.
 *
 * @example
 *   { "name": "tinyrpc", "version": "1.0.0", "abi": 1, "hooks": ["check", "parse"],
 *     "protocols": [{ "name": "tinyrpc", "transports": ["tcp"], "pairing": "by-id", "oneWay": [{ "requestType": "NOTIFY", "when": "always" }] }],
 *     "module": "tinyrpc.wasm", "sha256": "…", "memoryPages": 16, "timeBudgetMs": 2, "maxOutputBytes": 65536 }
 */
import { ABI_VERSION } from './abi.ts';
import type { HookName } from './abi.ts';

/**
 * One protocol a plugin parses, with the same descriptor a built-in parser declares
 * (agent/protocols/parser.ts `ProtocolDescriptor`): the agent puts it in every batch holding the
 * protocol's messages, and the span builder pairs them by it.
 */
export interface ProtocolDecl {
  /** The `l7_protocol` value of spans this plugin produces. */
  name: string;
  transports: Array<'tcp' | 'udp'>;
  /** `by-id`: responses pair with requests by request id; `in-order`: first in, first out per socket (default). */
  pairing: 'in-order' | 'by-id';
  /** `pairing === 'by-id'`. The older manifest flag: still accepted on input (mapped to `pairing`) and written for older hosts. */
  parallel: boolean;
  /** Other `l7_protocol` names for the same exchanges (default none). */
  aliases: string[];
  /** Requests never answered: `when: 'always'` closes them at once in the span builder; other conditions are the parser's to flag (`oneWay`). */
  oneWay: Array<{ requestType: string; when: string }>;
  /** How long a request waits for its answer before it is a timeout (default 60 000 ms). */
  timeoutMs?: number;
  /** Offsets at which the two ends of one exchange may see its request TCP sequence (default [0]). */
  sequenceSlack?: number[];
}

const PROTOCOL_NAME = /^[a-z][a-z0-9_-]{0,31}$/;

/** The descriptor part of `protocols[i]`; throws {@link ManifestError} naming the field and the value. */
function protocolDescriptor(po: Record<string, unknown>, i: number): Omit<ProtocolDecl, 'name' | 'transports'> {
  const at = `protocols[${i}]`;
  const show = (v: unknown): string => JSON.stringify(v) ?? String(v);
  if (po.parallel !== undefined && typeof po.parallel !== 'boolean') throw new ManifestError(`${at}.parallel must be true or false, got ${show(po.parallel)} (or use "pairing": "by-id" | "in-order")`);
  if (po.pairing !== undefined && po.pairing !== 'in-order' && po.pairing !== 'by-id') throw new ManifestError(`${at}.pairing must be "in-order" or "by-id", got ${show(po.pairing)}`);
  const fromFlag = po.parallel === undefined ? undefined : po.parallel ? 'by-id' : 'in-order';
  if (po.pairing !== undefined && fromFlag !== undefined && po.pairing !== fromFlag) throw new ManifestError(`${at}: "parallel": ${show(po.parallel)} contradicts "pairing": ${show(po.pairing)} (drop "parallel")`);
  const pairing = (po.pairing as ProtocolDecl['pairing'] | undefined) ?? fromFlag ?? 'in-order';
  const list = (key: string): unknown[] => {
    const v = po[key] ?? [];
    if (!Array.isArray(v)) throw new ManifestError(`${at}.${key} must be an array, got ${show(v)}`);
    return v;
  };
  const aliases = list('aliases').map((a, k) => {
    if (typeof a !== 'string' || !PROTOCOL_NAME.test(a)) throw new ManifestError(`${at}.aliases[${k}] must be a protocol name (a-z, 0-9, _ or -), got ${show(a)}`);
    if (a === po.name) throw new ManifestError(`${at}.aliases[${k}] repeats the protocol's own name`);
    return a;
  });
  const oneWay = list('oneWay').map((r, k) => {
    const ro = obj(r, `${at}.oneWay[${k}]`);
    if (typeof ro.requestType !== 'string' || ro.requestType.length === 0 || ro.requestType.length > 64) throw new ManifestError(`${at}.oneWay[${k}].requestType must be 1-64 characters, got ${show(ro.requestType)}`);
    const when = ro.when ?? 'always';
    if (typeof when !== 'string' || when.length === 0 || when.length > 64) throw new ManifestError(`${at}.oneWay[${k}].when must be 1-64 characters ("always" or the condition the parser flags), got ${show(when)}`);
    return { requestType: ro.requestType, when };
  });
  const out: Omit<ProtocolDecl, 'name' | 'transports'> = { pairing, parallel: pairing === 'by-id', aliases, oneWay };
  if (po.timeoutMs !== undefined) {
    const t = po.timeoutMs;
    if (typeof t !== 'number' || !Number.isInteger(t) || t < 1 || t > 3_600_000) throw new ManifestError(`${at}.timeoutMs must be a whole number of ms in [1, 3600000], got ${show(t)}`);
    out.timeoutMs = t;
  }
  if (po.sequenceSlack !== undefined) {
    const xs = list('sequenceSlack');
    if (xs.length > 8 || xs.some((x) => typeof x !== 'number' || !Number.isInteger(x) || Math.abs(x) > 64)) throw new ManifestError(`${at}.sequenceSlack must be at most 8 whole numbers in [-64, 64], got ${show(xs)}`);
    out.sequenceSlack = xs as number[];
  }
  return out;
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
    if (typeof po.name !== 'string' || !PROTOCOL_NAME.test(po.name)) throw new ManifestError(`protocols[${i}].name is invalid`);
    const transports = (Array.isArray(po.transports) ? po.transports : ['tcp']).map((t) => {
      if (t !== 'tcp' && t !== 'udp') throw new ManifestError(`protocols[${i}].transports: "${String(t)}" is not tcp or udp`);
      return t;
    });
    return { name: po.name, transports, ...protocolDescriptor(po, i) };
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

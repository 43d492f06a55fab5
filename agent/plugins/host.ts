/**
 * The agent's Wasm plugin host: loads plugins by path, verifies each module against its manifest
 * (sha256, ABI, hooks), runs them in a {@link PluginSandbox} (metered, memory-capped, traps caught),
 * disables a plugin that breaks a rule — one log line, `riptide_plugin_disabled_total{plugin,reason}`
 * — and hot-reloads a plugin whose files change.
 *
 * The parsers and hooks it hands out are stable objects that delegate to whichever version is
 * loaded, so a reload needs nothing from the registry. Calls are synchronous, in-thread.
 *
 * @example
 *   const plugins = await loadPlugins({ paths: ['plugins/tinyrpc', '/etc/riptide/biz/manifest.json'] });
 *   plugins.parsers.forEach((p) => registry.register(p));   // as `riptide agent` does
 *   runHttpHooks(plugins.httpHooks, msg, payload, ctx);   // from ./types.ts
 *   plugins.close();
 */
import { readFile, stat } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { metrics as globalMetrics } from '../metrics.ts';
import type { MetricsRegistry } from '../metrics.ts';
import type { L7Message, ParseContext, ProtocolDescriptor, ProtocolParser } from '../protocols/parser.ts';
import { declareDescriptor } from '../protocols/descriptors.ts';
import type { HookName, HttpFieldsInput } from '../../sdk-plugin/src/abi.ts';
import { ManifestError, parseManifest, HOST_CEILINGS } from '../../sdk-plugin/src/manifest.ts';
import type { PluginManifest, ProtocolDecl } from '../../sdk-plugin/src/manifest.ts';
import { HOST_OUTPUT_CAP_BYTES, PluginFault, PluginSandbox } from '../../sdk-plugin/src/sandbox.ts';
import type { FaultReason } from '../../sdk-plugin/src/sandbox.ts';
import { sha256Hex } from '../../sdk-plugin/src/hash.ts';
import type { HttpHookPlugin, PluginResult } from './types.ts';

export interface PluginsConfig {
  /** Plugin locations: a manifest file, a folder holding `manifest.json`, or a plugin source folder (uses `build/manifest.json`). */
  paths: readonly string[];
  /** Poll interval for hot reload; 0 turns reload off. Default 1000 ms. */
  reloadIntervalMs?: number;
  /** Host caps: a manifest asking for more is clamped to these. */
  maxMemoryPages?: number;
  maxTimeBudgetMs?: number;
  /** Bytes of payload a plugin sees at most (longer payloads are cut; `bytes` keeps the real size). */
  maxPayloadBytes?: number;
  /**
   * Bytes of result one call may return, whatever the manifest asks for (default
   * {@link HOST_OUTPUT_CAP_BYTES}); more disables the plugin (`oversized_output`).
   */
  maxOutputBytes?: number;
  metrics?: MetricsRegistry;
  log?: (line: string) => void;
}

export { HOST_OUTPUT_CAP_BYTES };

export type PluginState = 'active' | 'disabled';

export interface PluginStatus {
  path: string;
  name: string;
  version: string;
  state: PluginState;
  /** Why it is disabled. */
  reason?: FaultReason;
  detail?: string;
  calls: number;
  reloads: number;
}

/** Resolves a configured path to the manifest file it means. */
export async function resolveManifestPath(p: string): Promise<string> {
  const abs = resolve(p);
  let st;
  try {
    st = await stat(abs);
  } catch (err) {
    throw new PluginFault('load_error', `cannot open ${abs}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  if (st.isFile()) return abs;
  for (const cand of [join(abs, 'manifest.json'), join(abs, 'build', 'manifest.json')]) {
    try {
      if ((await stat(cand)).isFile()) return cand;
    } catch {
      // try the next one
    }
  }
  throw new PluginFault('load_error', `no manifest.json in ${abs} or ${join(abs, 'build')} (run riptide plugin build ${p})`);
}

/** One configured plugin: the loaded version (if any) and its bookkeeping. */
class PluginSlot {
  sandbox: PluginSandbox | null = null;
  manifest: PluginManifest | null = null;
  state: PluginState = 'disabled';
  reason?: FaultReason;
  detail?: string;
  calls = 0;
  reloads = 0;
  outputBytes = 0;
  loadedStamp = '';
  pendingStamp = '';
  manifestPath = '';

  constructor(
    readonly path: string,
    private readonly host: PluginHost,
  ) {}

  get label(): string {
    return this.manifest ? this.manifest.name : this.path;
  }

  /** Disables the plugin: one log line, one count. Capture carries on without it. */
  fault(err: unknown): void {
    const f = err instanceof PluginFault ? err : new PluginFault('trap', err instanceof Error ? err.message : String(err));
    this.sandbox = null;
    this.state = 'disabled';
    this.reason = f.reason;
    this.detail = f.message;
    this.host.recordDisabled(this, f);
  }
}

export class PluginHost {
  private readonly slots: PluginSlot[] = [];
  private readonly cfg: Required<Omit<PluginsConfig, 'metrics' | 'log'>>;
  private readonly log: (line: string) => void;
  private readonly disabledTotal;
  private timer: NodeJS.Timeout | undefined;
  private polling = false;
  private readonly listeners: Array<() => void> = [];
  readonly parsers: ProtocolParser[] = [];
  readonly httpHooks: HttpHookPlugin[] = [];

  constructor(config: PluginsConfig) {
    this.cfg = {
      paths: config.paths,
      reloadIntervalMs: config.reloadIntervalMs ?? 1000,
      maxMemoryPages: config.maxMemoryPages ?? HOST_CEILINGS.memoryPages,
      maxTimeBudgetMs: config.maxTimeBudgetMs ?? HOST_CEILINGS.timeBudgetMs,
      maxPayloadBytes: config.maxPayloadBytes ?? 65536,
      maxOutputBytes: config.maxOutputBytes ?? HOST_OUTPUT_CAP_BYTES,
    };
    this.log = config.log ?? ((l) => process.stderr.write(l + '\n'));
    const reg = config.metrics ?? globalMetrics;
    this.disabledTotal = reg.counter('riptide_plugin_disabled_total', 'Wasm plugins disabled for breaking a rule (timeout, memory_limit, trap, oversized_output, bad_output, wrong_abi, hash_mismatch, invalid_module, load_error)');
    const calls = reg.counter('riptide_plugin_calls_total', 'Calls into Wasm plugins');
    const active = reg.gauge('riptide_plugin_active', 'Wasm plugins loaded and enabled (1) or disabled (0)');
    const reloads = reg.counter('riptide_plugin_reloads_total', 'Wasm plugin versions swapped in without a restart');
    const outBytes = reg.counter('riptide_plugin_output_bytes_total', 'Bytes of results the host copied out of Wasm plugins');
    reg.onCollect(() => {
      for (const s of this.slots) {
        calls.setTotal(s.calls, { plugin: s.label });
        active.set(s.state === 'active' ? 1 : 0, { plugin: s.label });
        reloads.setTotal(s.reloads, { plugin: s.label });
        outBytes.setTotal(s.outputBytes, { plugin: s.label });
      }
    });
  }

  /** Loads every configured plugin (failures disable that plugin only) and starts the reload poll. */
  async start(): Promise<void> {
    for (const p of this.cfg.paths) {
      const slot = new PluginSlot(p, this);
      this.slots.push(slot);
      await this.loadInto(slot, true);
      this.addAdapters(slot);
    }
    if (this.cfg.reloadIntervalMs > 0) {
      this.timer = setInterval(() => void this.poll(), this.cfg.reloadIntervalMs);
      this.timer.unref();
    }
  }

  /** Stops the reload poll. */
  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Called after a reload that changed the set of parsers or hooks. */
  onChange(fn: () => void): void {
    this.listeners.push(fn);
  }

  status(): PluginStatus[] {
    return this.slots.map((s) => ({
      path: s.path,
      name: s.manifest?.name ?? '',
      version: s.manifest?.version ?? '',
      state: s.state,
      reason: s.reason,
      detail: s.detail,
      calls: s.calls,
      reloads: s.reloads,
    }));
  }

  recordDisabled(slot: PluginSlot, f: PluginFault): void {
    const who = slot.manifest ? `${slot.manifest.name}@${slot.manifest.version}` : slot.path;
    this.log(`riptide: plugin ${who} disabled (${f.reason}): ${f.message}; capture continues without it`);
    this.disabledTotal.inc({ plugin: slot.label, reason: f.reason });
  }

  /** Checks every plugin's files once; swaps in a changed version. Exposed for tests. */
  async poll(): Promise<void> {
    if (this.polling) return;
    this.polling = true;
    try {
      for (const slot of this.slots) {
        let stamp: string;
        try {
          stamp = await this.stamp(slot);
        } catch {
          continue; // files mid-replace or gone: keep what runs
        }
        if (stamp === slot.loadedStamp) continue;
        // act only once the files have stopped changing (two polls alike): a build writes the
        // module and then the manifest, and a half-written pair must not be judged
        if (stamp !== slot.pendingStamp) {
          slot.pendingStamp = stamp;
          continue;
        }
        const before = this.adapterKey();
        await this.loadInto(slot, false);
        this.addAdapters(slot);
        if (this.adapterKey() !== before) for (const fn of this.listeners) fn();
      }
    } finally {
      this.polling = false;
    }
  }

  private async stamp(slot: PluginSlot): Promise<string> {
    const mp = await resolveManifestPath(slot.path);
    const ms = await stat(mp);
    let mod = '';
    try {
      const m = JSON.parse(await readFile(mp, 'utf8')) as { module?: unknown };
      if (typeof m.module === 'string') {
        const ws = await stat(join(dirname(mp), m.module));
        mod = `${ws.mtimeMs}:${ws.size}`;
      }
    } catch {
      mod = 'unreadable';
    }
    return `${mp}:${ms.mtimeMs}:${ms.size}:${mod}`;
  }

  /**
   * Reads, verifies and loads the plugin at the slot's path. At start a failure disables the slot;
   * on reload a bad new version is refused (logged, counted) and the running version keeps going.
   */
  private async loadInto(slot: PluginSlot, initial: boolean): Promise<void> {
    let manifest: PluginManifest | null = null;
    let stamp = '';
    try {
      stamp = await this.stamp(slot).catch(() => '');
      const mp = await resolveManifestPath(slot.path);
      let raw: unknown;
      try {
        raw = JSON.parse(await readFile(mp, 'utf8'));
      } catch (err) {
        throw new PluginFault('load_error', `cannot read manifest ${mp}: ${(err as Error).message}`);
      }
      try {
        manifest = parseManifest(raw);
      } catch (err) {
        if (err instanceof ManifestError) throw new PluginFault(/"abi"/.test(err.message) ? 'wrong_abi' : 'load_error', `manifest ${mp}: ${err.message}`);
        throw err;
      }
      if (initial || !slot.manifest) slot.manifest = manifest;
      const wasmPath = join(dirname(mp), manifest.module);
      let wasm: Uint8Array;
      try {
        wasm = await readFile(wasmPath);
      } catch (err) {
        throw new PluginFault('load_error', `cannot read module ${wasmPath}: ${(err as Error).message}`);
      }
      const digest = sha256Hex(wasm);
      if (digest !== manifest.sha256) {
        throw new PluginFault('hash_mismatch', `module ${wasmPath} has sha256 ${digest.slice(0, 16)}…, the manifest says ${manifest.sha256.slice(0, 16)}…`);
      }
      const sandbox = await PluginSandbox.load(
        wasm,
        {
          memoryPages: Math.min(manifest.memoryPages, this.cfg.maxMemoryPages),
          timeBudgetMs: Math.min(manifest.timeBudgetMs, this.cfg.maxTimeBudgetMs),
          maxOutputBytes: Math.min(manifest.maxOutputBytes, this.cfg.maxOutputBytes),
        },
        manifest.hooks,
      );
      const replaced = slot.sandbox !== null;
      slot.manifest = manifest;
      slot.sandbox = sandbox;
      slot.state = 'active';
      slot.reason = undefined;
      slot.detail = undefined;
      slot.loadedStamp = stamp;
      slot.pendingStamp = stamp;
      if (!initial) {
        slot.reloads++;
        this.log(`riptide: plugin ${manifest.name}@${manifest.version} loaded from ${mp}${replaced ? ' (replaced the running version)' : ''}`);
      }
    } catch (err) {
      slot.loadedStamp = stamp;
      slot.pendingStamp = stamp;
      if (!initial && slot.sandbox && manifest) {
        const f = err instanceof PluginFault ? err : new PluginFault('load_error', String(err));
        this.log(`riptide: plugin ${manifest.name}@${manifest.version} from ${slot.path} refused (${f.reason}): ${f.message}; the running version stays`);
        this.disabledTotal.inc({ plugin: manifest.name, reason: f.reason });
        return;
      }
      if (!slot.manifest && manifest) slot.manifest = manifest;
      slot.fault(err);
    }
  }

  private adapterKey(): string {
    return this.parsers.map((p) => p.name).join(',') + '|' + this.httpHooks.map((h) => h.name).join(',');
  }

  /** Creates the stable parser / hook objects for a slot's manifest (once per protocol or hook set). */
  private addAdapters(slot: PluginSlot): void {
    const m = slot.manifest;
    if (!m) return;
    for (const proto of m.protocols) {
      if (this.parsers.some((p) => p.name === proto.name)) continue;
      this.parsers.push(this.parserFor(slot, proto));
    }
    if ((m.hooks.includes('http_request') || m.hooks.includes('http_response')) && !this.httpHooks.some((h) => h.name === m.name)) {
      this.httpHooks.push(this.hookFor(slot, m.name));
    }
  }

  private cut(payload: Uint8Array): Uint8Array {
    return payload.length > this.cfg.maxPayloadBytes ? payload.subarray(0, this.cfg.maxPayloadBytes) : payload;
  }

  private parserFor(slot: PluginSlot, proto: ProtocolDecl): ProtocolParser {
    const { name, transports } = proto;
    const protoIndex = (): number => (slot.manifest ? slot.manifest.protocols.findIndex((p) => p.name === name) : -1);
    const descriptor: ProtocolDescriptor = { name, aliases: proto.aliases, pairing: proto.pairing, oneWay: proto.oneWay, ...(proto.timeoutMs === undefined ? {} : { timeoutMs: proto.timeoutMs }), ...(proto.sequenceSlack === undefined ? {} : { sequenceSlack: proto.sequenceSlack }) };
    // The batches this agent writes carry it, so the span builder pairs the plugin's messages by it.
    declareDescriptor(descriptor);
    return {
      name,
      parallel: descriptor.pairing === 'by-id',
      descriptor,
      transports,
      check: (payload: Uint8Array, ctx: ParseContext): boolean => {
        const sb = slot.sandbox;
        if (!sb) return false;
        slot.calls++;
        try {
          return sb.check(ctx, this.cut(payload)) === protoIndex() + 1;
        } catch (err) {
          slot.fault(err);
          return false;
        }
      },
      parse: (payload: Uint8Array, ctx: ParseContext): L7Message[] | null => {
        const sb = slot.sandbox;
        if (!sb) return null;
        slot.calls++;
        try {
          const msgs = sb.parse(ctx, this.cut(payload));
          slot.outputBytes += sb.lastOutputBytes;
          if (msgs.length === 0) return null;
          return msgs.map((m) => ({ l7Protocol: name, ...m }));
        } catch (err) {
          slot.fault(err);
          return null;
        }
      },
    };
  }

  private hookFor(slot: PluginSlot, name: string): HttpHookPlugin {
    const call = (hook: HookName & ('http_request' | 'http_response'), msg: L7Message, payload: Uint8Array, ctx: ParseContext): PluginResult | null => {
      const sb = slot.sandbox;
      if (!sb || !sb.has(hook)) return null;
      slot.calls++;
      try {
        const r = sb.http(hook, ctx, msg as HttpFieldsInput, this.cut(payload));
        slot.outputBytes += sb.lastOutputBytes;
        return r;
      } catch (err) {
        slot.fault(err);
        return null;
      }
    };
    return {
      name,
      onHttpRequest: (msg, payload, ctx) => call('http_request', msg, payload, ctx),
      onHttpResponse: (msg, payload, ctx) => call('http_response', msg, payload, ctx),
    };
  }
}

export interface LoadedPlugins {
  /** One parser per custom protocol, to try before the built-ins. Grows if a reload adds one. */
  parsers: ProtocolParser[];
  /** HTTP hooks in configuration order. */
  httpHooks: HttpHookPlugin[];
  host: PluginHost;
  /** Stops hot reload. */
  close(): void;
}

/**
 * Loads the configured plugins. Never throws for a bad plugin: it is disabled (logged, counted)
 * and the rest load.
 */
export async function loadPlugins(config: PluginsConfig): Promise<LoadedPlugins> {
  const host = new PluginHost(config);
  await host.start();
  return { parsers: host.parsers, httpHooks: host.httpHooks, host, close: () => host.close() };
}

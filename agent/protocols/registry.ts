/**
 * The protocol registry: which parser owns a socket, and the per-socket state parsers keep.
 *
 * - Inference is content-based: each parser's `check` looks at the head of a payload; plugins are
 *   asked before built-ins (a plugin is how a user overrides or refines a built-in). The winner is
 *   cached per socket.
 * - A retry budget bounds the work spent on sockets that carry nothing we know (TLS, a private
 *   protocol): after `inferenceBudget` unrecognised payloads the socket is marked unknown until it
 *   closes. A cached parser that keeps rejecting payloads is dropped and inference starts again.
 * - State lives per (socket, direction) plus one object per socket for the parsers that pair the two
 *   directions; sockets are forgotten on close and the table is an LRU capped at `maxSockets`.
 * - `parse` never throws: a parser that throws is counted in `riptide_parser_errors_total{protocol}`
 *   and the payload yields nothing.
 *
 * @example
 *   const registry = createDefaultRegistry({ extraHeaders: ['x-tenant'] });
 *   for (const m of registry.parse(captured)) console.log(m.l7Protocol, m.msgType, m.requestResource);
 *   registry.onSocketClosed(captured.socketId);
 */

import type { CapturedMessage, Direction } from '../capture/message.ts';
import { BurstLogger, metrics as defaultMetrics } from '../metrics.ts';
import type { Counter, Gauge, MetricsRegistry } from '../metrics.ts';
import { BUILTIN_PARSERS } from './builtins.ts';
import { pendingBytes } from './lib/stream.ts';
import type { L7Message, ParseContext, ParserState, ProtocolParser } from './parser.ts';

export interface RegistryOptions {
  /** Built-in parsers to use; defaults to all of them. Names not in this list are left out. */
  builtins?: readonly ProtocolParser[];
  /** Only enable these protocols (by parser name); default: all. */
  enabled?: readonly string[];
  /** Unrecognised payloads per socket before the socket is given up on (default 8). */
  inferenceBudget?: number;
  /** Payloads a cached parser may reject in a row before inference starts again (default 4). */
  maxConsecutiveRejects?: number;
  /** Sockets whose state is kept at once; the least recently used is forgotten past it (default 16384). */
  maxSockets?: number;
  /** Extra HTTP headers (case-insensitive) to copy into attributes. */
  extraHeaders?: readonly string[];
  /** Where counters go; defaults to the process-wide registry. */
  metrics?: MetricsRegistry;
  /** Where the once-per-burst error line goes; defaults to stderr. */
  log?: (line: string) => void;
}

/** What the registry knows about one socket. */
interface SocketEntry {
  parser: ProtocolParser | null;
  /** Unrecognised payloads so far (inference) — counts against the budget. */
  misses: number;
  /** Consecutive payloads the cached parser rejected. */
  rejects: number;
  /** True once the budget is spent: nothing more is tried until the socket closes. */
  gaveUp: boolean;
  egress: ParserState | null;
  ingress: ParserState | null;
  shared: ParserState;
  /**
   * Which direction carries requests, learnt from the first message parsed, for sockets whose role
   * the capture could not tell (a server forked after accept, UDP): parsers then see a role.
   */
  requestDir?: Direction;
  /** Reads too short to recognise (servers that read a header byte by byte), kept for inference. */
  headEgress?: Uint8Array;
  headIngress?: Uint8Array;
  /** The LRU list, least recently used first (a linked list: a hit is two pointer moves, not a Map delete and insert). */
  id: number;
  older: SocketEntry | null;
  newer: SocketEntry | null;
}

/** Most bytes of short reads joined to recognise a protocol whose server reads in small pieces. */
const MAX_HEAD = 256;
/** Reads shorter than this do not count against the inference budget while a head is gathered. */
const SHORT_READ = 16;

export interface RegistryStats {
  sockets: number;
  parsers: string[];
}

export class ProtocolRegistry {
  private plugins: ProtocolParser[] = [];
  private readonly builtins: ProtocolParser[];
  /** plugins first, then built-ins; rebuilt on register/unregister. */
  private order: ProtocolParser[] = [];
  private readonly sockets = new Map<number, SocketEntry>();
  private oldest: SocketEntry | null = null;
  private newest: SocketEntry | null = null;
  private readonly budget: number;
  private readonly maxRejects: number;
  private readonly maxSockets: number;
  private readonly extraHeaders: readonly string[];
  private readonly errors: Counter;
  private readonly messages: Counter;
  private readonly evicted: Counter;
  private readonly gaveUp: Counter;
  private readonly socketGauge: Gauge;
  private readonly errorLog: BurstLogger;
  /** Message counts kept locally (label rendering is too slow for the hot path), published on collect. */
  private readonly counts = new Map<string, { labels: Record<string, string>; n: number }>();
  /** The same counters by protocol then type, so counting builds no key string per message. */
  private readonly countsByProtocol = new Map<string, { request?: { n: number }; response?: { n: number } }>();

  constructor(opts: RegistryOptions = {}) {
    const enabled = opts.enabled ? new Set(opts.enabled) : undefined;
    this.builtins = (opts.builtins ?? BUILTIN_PARSERS).filter((p) => !enabled || enabled.has(p.name));
    this.budget = opts.inferenceBudget ?? 8;
    this.maxRejects = opts.maxConsecutiveRejects ?? 4;
    this.maxSockets = Math.max(1, opts.maxSockets ?? 16384);
    this.extraHeaders = (opts.extraHeaders ?? []).map((h) => h.toLowerCase());
    const m = opts.metrics ?? defaultMetrics;
    this.errors = m.counter('riptide_parser_errors_total', 'Payloads whose parser threw, by protocol');
    this.messages = m.counter('riptide_parser_messages_total', 'L7 messages parsed, by protocol and type');
    this.evicted = m.counter('riptide_parser_sockets_evicted_total', 'Socket states forgotten because the table was full');
    this.gaveUp = m.counter('riptide_parser_inference_gave_up_total', 'Sockets given up on after the inference budget');
    this.socketGauge = m.gauge('riptide_parser_sockets', 'Sockets with parser state');
    this.errorLog = new BurstLogger('parser errors', opts.log);
    m.onCollect(() => {
      this.socketGauge.set(this.sockets.size);
      for (const c of this.counts.values()) this.messages.setTotal(c.n, c.labels);
    });
    this.rebuild();
  }

  /** Add a parser at runtime (a Wasm plugin). Plugins are tried before built-ins; a newer one with
   * the same name replaces the old (hot reload), and sockets it owned are inferred again. */
  register(parser: ProtocolParser): void {
    if (this.plugins.includes(parser)) return; // the same object again (a host re-syncing): keep socket state
    this.unregister(parser.name, true);
    this.plugins.push(parser);
    this.rebuild();
  }

  /** Remove a runtime parser; its sockets are inferred afresh. Built-ins stay. */
  unregister(name: string, quiet = false): boolean {
    const before = this.plugins.length;
    this.plugins = this.plugins.filter((p) => p.name !== name);
    if (this.plugins.length === before) return false;
    for (const e of this.sockets.values()) {
      if (e.parser?.name === name) this.resetEntry(e);
    }
    if (!quiet) this.rebuild();
    return true;
  }

  /** Parsers in the order they are tried. */
  parsers(): readonly ProtocolParser[] {
    return this.order;
  }

  /** The L7 messages in one captured syscall; [] when unknown. Never throws. */
  parse(msg: CapturedMessage): L7Message[] {
    if (msg.payload.length === 0) return [];
    const key = entryKey(msg);
    let e = this.sockets.get(key);
    if (e) {
      // LRU: most recently used last.
      if (e !== this.newest) {
        this.unlink(e);
        this.append(e);
      }
    } else {
      e = { parser: null, misses: 0, rejects: 0, gaveUp: false, egress: null, ingress: null, shared: {}, id: key, older: null, newer: null };
      this.sockets.set(key, e);
      this.append(e);
      if (this.sockets.size > this.maxSockets) {
        const oldest = this.oldest;
        if (oldest !== null) {
          this.sockets.delete(oldest.id);
          this.unlink(oldest);
          this.evicted.inc();
        }
      }
    }
    if (e.gaveUp) return [];
    if (e.parser) {
      const out = this.run(e.parser, e, msg);
      if (out !== null) {
        e.rejects = 0;
        return out;
      }
      if (++e.rejects < this.maxRejects) return [];
      this.resetEntry(e); // the socket changed protocol (upgrade, reuse) or was misidentified
    }
    // Short complete reads (a server reading a header byte by byte) are joined for recognition:
    // the read alone is tried first, then joined to the short reads before it.
    let probe = msg;
    const complete = msg.bytes <= msg.payload.length;
    const prev = msg.direction === 'egress' ? e.headEgress : e.headIngress;
    const probes = [msg];
    if (complete && prev && prev.length + msg.payload.length <= MAX_HEAD) {
      const joined = new Uint8Array(prev.length + msg.payload.length);
      joined.set(prev, 0);
      joined.set(msg.payload, prev.length);
      probe = { ...msg, payload: joined, bytes: joined.length };
      probes.push(probe);
    }
    for (const candidate of probes) {
      for (const p of this.order) {
        if (!p.transports.includes(msg.l4)) continue;
        const ctx = this.context(e, candidate, p);
        let mine = false;
        try {
          mine = p.check(candidate.payload, ctx);
        } catch (err) {
          this.fail(p, err);
        }
        if (!mine) continue;
        e.parser = p;
        e.headEgress = e.headIngress = undefined;
        const out = this.run(p, e, candidate);
        if (out !== null) {
          // Recognised only with the short reads before it: the message began with them.
          if (candidate !== msg && out.length > 0 && prev && msg.l4 === 'tcp') msg.tcpSeq = (msg.tcpSeq - prev.length) >>> 0;
          return out;
        }
        this.resetEntry(e);
      }
    }
    if (complete && msg.l4 === 'tcp' && probe.payload.length < MAX_HEAD) {
      if (msg.direction === 'egress') e.headEgress = probe.payload.slice();
      else e.headIngress = probe.payload.slice();
    } else if (msg.direction === 'egress') e.headEgress = undefined;
    else e.headIngress = undefined;
    if (probe.payload.length < SHORT_READ && complete) return [];
    if (++e.misses >= this.budget) {
      e.gaveUp = true;
      e.headEgress = e.headIngress = undefined;
      this.gaveUp.inc();
    }
    return [];
  }

  /** True once the socket spent its inference budget: nothing is tried on it until it closes. */
  gaveUpOn(socketId: number): boolean {
    return this.sockets.get(socketId)?.gaveUp === true;
  }

  /** The protocol cached for a socket, if any. */
  protocolOf(socketId: number): string | undefined {
    return this.sockets.get(socketId)?.parser?.name;
  }

  /** Forget a socket's protocol and state (call on close; socket ids are never reused in a run). */
  onSocketClosed(socketId: number): void {
    for (const key of [socketId, tlsPlaintextKey(socketId)]) {
      const e = this.sockets.get(key);
      if (e === undefined) continue;
      this.sockets.delete(key);
      this.unlink(e);
    }
  }

  private append(e: SocketEntry): void {
    e.older = this.newest;
    e.newer = null;
    if (this.newest !== null) this.newest.newer = e;
    else this.oldest = e;
    this.newest = e;
  }

  private unlink(e: SocketEntry): void {
    if (e.older !== null) e.older.newer = e.newer;
    else if (this.oldest === e) this.oldest = e.newer;
    if (e.newer !== null) e.newer.older = e.older;
    else if (this.newest === e) this.newest = e.older;
    e.older = e.newer = null;
  }

  stats(): RegistryStats {
    return { sockets: this.sockets.size, parsers: this.order.map((p) => p.name) };
  }

  private rebuild(): void {
    this.order = [...this.plugins, ...this.builtins];
  }

  private resetEntry(e: SocketEntry): void {
    e.parser = null;
    e.rejects = 0;
    e.egress = null;
    e.ingress = null;
    e.shared = {};
    e.requestDir = undefined;
  }

  private context(e: SocketEntry, msg: CapturedMessage, p: ProtocolParser): ParseContext {
    let state = msg.direction === 'egress' ? e.egress : e.ingress;
    if (!state || e.parser !== p) {
      state = p.newState ? p.newState() : {};
      if (e.parser === p) {
        if (msg.direction === 'egress') e.egress = state;
        else e.ingress = state;
      }
    }
    let role = msg.role;
    if (role === 'unknown' && e.requestDir) role = e.requestDir === msg.direction ? (msg.direction === 'egress' ? 'client' : 'server') : msg.direction === 'egress' ? 'server' : 'client';
    return {
      direction: msg.direction,
      role,
      l4: msg.l4,
      localPort: msg.localPort,
      remotePort: msg.remotePort,
      socketId: msg.socketId,
      bytes: msg.bytes,
      state,
      socketState: e.shared,
      extraHeaders: this.extraHeaders,
    };
  }

  private run(p: ProtocolParser, e: SocketEntry, msg: CapturedMessage): L7Message[] | null {
    try {
      const ctx = this.context(e, msg, p);
      const carried = msg.l4 === 'tcp' ? pendingBytes(ctx.state) : 0;
      const out = p.parse(msg.payload, ctx);
      // A message completed from a head kept from earlier reads began that many bytes before this
      // read: its sequence is its first byte's, as the other end of the connection saw it.
      if (out && out.length > 0 && carried > 0) msg.tcpSeq = (msg.tcpSeq - carried) >>> 0;
      if (out) {
        for (const m of out) this.count(m);
        if (msg.role === 'unknown' && !e.requestDir && out.length > 0 && msg.l4 === 'tcp' && !p.parallel) {
          e.requestDir = out[0].msgType === 'request' ? msg.direction : msg.direction === 'egress' ? 'ingress' : 'egress';
        }
      }
      return out;
    } catch (err) {
      this.fail(p, err);
      return [];
    }
  }

  private count(m: L7Message): void {
    const byType = this.countsByProtocol.get(m.l7Protocol);
    const c = byType === undefined ? undefined : m.msgType === 'request' ? byType.request : byType.response;
    if (c !== undefined) c.n++;
    else this.countSlow(m);
  }

  private countSlow(m: L7Message): void {
    const key = m.msgType === 'request' ? m.l7Protocol + '>' : m.l7Protocol + '<';
    let c = this.counts.get(key);
    if (c) c.n++;
    else if (this.counts.size < 1024) this.counts.set(key, (c = { labels: { protocol: m.l7Protocol, type: m.msgType }, n: 1 }));
    if (c === undefined || (m.msgType !== 'request' && m.msgType !== 'response')) return;
    let byType = this.countsByProtocol.get(m.l7Protocol);
    if (byType === undefined) this.countsByProtocol.set(m.l7Protocol, (byType = {}));
    byType[m.msgType] = c;
  }

  private fail(p: ProtocolParser, err: unknown): void {
    this.errors.inc({ protocol: p.name });
    this.errorLog.record(1, `${p.name}: ${err instanceof Error ? err.message : String(err)}`);
  }
}

/**
 * A TLS socket carries two streams: its record layer (handshake and alert records, for the `tls`
 * parser; agent/capture/tls-join.ts) and the plaintext decrypted from it (`msg.tls`, any parser).
 * Each gets its own entry, so neither takes the socket from the other. Socket ids are ≥ 0.
 */
function tlsPlaintextKey(socketId: number): number {
  return -1 - socketId;
}

function entryKey(msg: CapturedMessage): number {
  return msg.tls === true ? tlsPlaintextKey(msg.socketId) : msg.socketId;
}

/**
 * A registry with every built-in parser, ready for the agent.
 *
 * @example
 *   const registry = createDefaultRegistry({ inferenceBudget: 8, extraHeaders: ['x-tenant-id'] });
 *   const fields = registry.parse(msg);
 */
export function createDefaultRegistry(options: RegistryOptions = {}): ProtocolRegistry {
  return new ProtocolRegistry(options);
}

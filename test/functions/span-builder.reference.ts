/**
 * REFERENCE ONLY: the object-per-message span builder as it was before the allocation-free rewrite
 * of functions/span-builder/span-builder.ts (commit 8f870b0), kept verbatim so the equivalence test
 * (span-builder.equivalence.test.ts) and the benchmark (`--compare`) can check that the fast path
 * gives identical rows. Never import it from product code.
 */
import type { ParsedMessage, Batch } from '../../agent/shipping/batch.ts';
import type { L7Message } from '../../agent/protocols/parser.ts';
import { Hash64, stringWords } from '../../functions/span-builder/hash.ts';
import type { PairState, SpanRow } from '../../functions/span-builder/span-row.ts';

export interface SlotWindow {
  agentId: string;
  /** The owner slot. */
  slot: number;
  /**
   * Batches (all parts) of the same agent: the slots before the owner (usually just slot-1; more
   * when slots are shorter than the pairing window), the owner's, and the slots after; [] when absent.
   */
  prev: readonly Batch[];
  cur: readonly Batch[];
  next: readonly Batch[];
}

export interface SpanBuilderOptions {
  /** Per-protocol request timeout in ms (default {@link DEFAULT_TIMEOUTS_MS}). */
  timeoutsMs?: Readonly<Record<string, number>>;
  /** For protocols not listed (default 60 000 ms). */
  defaultTimeoutMs?: number;
  /** Protocols paired in order even when messages carry a request id (default {@link SERIAL_PROTOCOLS}). */
  serialProtocols?: ReadonlySet<string>;
}

export interface SpanBuildStats {
  messages: number;
  requests: number;
  responses: number;
  paired: number;
  timeouts: number;
  responseOnly: number;
}

export interface SpanBuildResult {
  /** Live rows owned by the window's slot, in a deterministic order. */
  spans: SpanRow[];
  /** `_deleted = 1` rows for response_only ids that this window shows to be paired. */
  tombstones: SpanRow[];
  stats: SpanBuildStats;
}

/** Serial protocols pair in order even if a parser reports a request id (MySQL's is a statement id). */
export const SERIAL_PROTOCOLS: ReadonlySet<string> = new Set(['http1', 'redis', 'mysql', 'postgresql']);

/** DNS answers in milliseconds or never; everything else gets a minute (bounded by the window anyway). */
export const DEFAULT_TIMEOUTS_MS: Readonly<Record<string, number>> = { dns: 5_000 };

interface Entry {
  m: ParsedMessage;
  /** -1, 0, +1: slot relative to the owner. */
  rel: number;
  /**
   * ns since the epoch as a double (256 ns granularity at today's dates): enough to order one
   * socket's messages, and ties fall back to capture order (`ord`). Avoids a BigInt per message.
   */
  t: number;
  ord: number;
}

interface SocketEntries {
  before: Entry[] | null;
  own: Entry[];
  after: Entry[] | null;
}

interface Pending {
  e: Entry;
  l7: L7Message;
  idx: number;
  done: boolean;
}

const SALT_REQUEST = 0x52455131; // span ids keyed by the request
const SALT_RESPONSE = 0x52455350; // response_only span ids

export class ReferenceSpanBuilder {
  private readonly timeouts: Readonly<Record<string, number>>;
  private readonly defaultTimeoutNs: number;
  private readonly serial: ReadonlySet<string>;

  constructor(options: SpanBuilderOptions = {}) {
    this.timeouts = { ...DEFAULT_TIMEOUTS_MS, ...(options.timeoutsMs ?? {}) };
    this.defaultTimeoutNs = (options.defaultTimeoutMs ?? 60_000) * 1e6;
    this.serial = options.serialProtocols ?? SERIAL_PROTOCOLS;
  }

  private timeoutNs(proto: string): number {
    const ms = this.timeouts[proto];
    return ms === undefined ? this.defaultTimeoutNs : ms * 1e6;
  }

  build(w: SlotWindow): SpanBuildResult {
    const version = w.prev.length + w.cur.length + w.next.length;
    const stats: SpanBuildStats = { messages: 0, requests: 0, responses: 0, paired: 0, timeouts: 0, responseOnly: 0 };
    const spans: SpanRow[] = [];
    const tombstones: SpanRow[] = [];
    if (w.cur.length === 0) return { spans, tombstones, stats };
    const agent = stringWords(w.agentId);

    // Group by socket: every socket with a message in the owner slot, with its messages from the
    // neighbours too. Sockets seen only in a neighbour belong to that neighbour's window.
    // One pass per slot; the owner slot first, so neighbours only join sockets it has.
    const sockets = new Map<number, SocketEntries>();
    const cur = sortParts(w.cur);
    for (const b of cur) {
      stats.messages += b.messages.length;
      const partOrd = slotOrd(b, w.slot);
      const msgs = b.messages;
      for (let i = 0; i < msgs.length; i++) {
        const m = msgs[i];
        if (m.l7.length === 0) continue; // no protocol recognised: nothing to pair
        let s = sockets.get(m.socketId);
        if (s === undefined) {
          s = { before: null, own: [], after: null };
          sockets.set(m.socketId, s);
        }
        s.own.push({ m, rel: 0, t: Number(m.tsNs), ord: partOrd + i });
      }
    }
    for (const b of sortParts(w.prev)) {
      const partOrd = slotOrd(b, w.slot);
      const msgs = b.messages;
      for (let i = 0; i < msgs.length; i++) {
        const m = msgs[i];
        if (m.l7.length === 0) continue;
        const s = sockets.get(m.socketId);
        if (s !== undefined) (s.before ??= []).push({ m, rel: -1, t: Number(m.tsNs), ord: partOrd + i });
      }
    }
    for (const b of sortParts(w.next)) {
      const partOrd = slotOrd(b, w.slot);
      const msgs = b.messages;
      for (let i = 0; i < msgs.length; i++) {
        const m = msgs[i];
        const l7 = m.l7;
        // A request in the next slot is younger than every pending owner request, so FIFO and id
        // pairing never give it a response an owner request could take: skip it.
        if (l7.length === 0 || (l7.length === 1 && l7[0].msgType === 'request')) continue;
        const s = sockets.get(m.socketId);
        if (s !== undefined) (s.after ??= []).push({ m, rel: 1, t: Number(m.tsNs), ord: partOrd + i });
      }
    }

    const socketIds = [...sockets.keys()].sort((a, b) => a - b);
    for (const sid of socketIds) {
      const s = sockets.get(sid) as SocketEntries;
      // In slot order, so the list is already sorted when every batch is.
      const entries = s.before ? s.before.concat(s.own, s.after ?? []) : s.after ? s.own.concat(s.after) : s.own;
      sortEntries(entries);
      const mine: SpanRow[] = [];
      this.pairSocket(entries, w, agent, version, mine, tombstones, stats);
      // Rows of one socket in time order (timeouts are found out of order); sockets in id order.
      let sorted = true;
      for (let i = 1; i < mine.length && sorted; i++) sorted = mine[i - 1].start_time_us <= mine[i].start_time_us;
      if (!sorted) mine.sort((a, b) => a.start_time_us - b.start_time_us); // stable
      for (let i = 0; i < mine.length; i++) spans.push(mine[i]);
    }
    return { spans, tombstones, stats };
  }

  private pairSocket(entries: Entry[], w: SlotWindow, agent: [number, number], version: number, spans: SpanRow[], tombstones: SpanRow[], stats: SpanBuildStats): void {
    // Queues keyed by "protocol|request direction" (serial) or "protocol|direction|id" (parallel).
    // Queue keys are numbers: protocol index × 2 + direction bit, and for parallel protocols
    // also the request id (ids are < 2^32) — no string building per message.
    const queues = new Map<number, Pending[]>();
    const heads = new Map<number, number>();
    const timedOut = (p: Pending): void => {
      p.done = true;
      if (p.e.rel === 0) {
        spans.push(this.row(w, agent, version, p, null, 'request_only'));
        stats.timeouts++;
      }
    };
    for (const e of entries) {
      const l7s = e.m.l7;
      for (let idx = 0; idx < l7s.length; idx++) {
        const l7 = l7s[idx];
        const parallel = l7.requestId !== undefined && !this.serial.has(l7.l7Protocol);
        if (l7.msgType === 'request') {
          if (e.rel === 0) stats.requests++;
          const p: Pending = { e, l7, idx, done: false };
          if (l7.oneWay) {
            p.done = true;
            if (e.rel === 0) spans.push(this.row(w, agent, version, p, null, 'one_way'));
            continue;
          }
          const key = queueKey(l7, e.m.direction === 'egress' ? 1 : 0, parallel);
          let q = queues.get(key);
          if (q === undefined) {
            q = [];
            queues.set(key, q);
            heads.set(key, 0);
          }
          q.push(p);
          continue;
        }
        // A response: find the oldest pending request in the other direction.
        if (e.rel === 0) stats.responses++;
        const key = queueKey(l7, e.m.direction === 'egress' ? 0 : 1, parallel);
        const q = queues.get(key);
        let match: Pending | null = null;
        if (q !== undefined) {
          const limit = this.timeoutNs(l7.l7Protocol);
          let h = heads.get(key) as number;
          while (h < q.length) {
            const p = q[h];
            if (p.done) {
              h++;
              continue;
            }
            if (p.e.t > e.t) break; // the request came later: this response is not its answer
            if (e.t - p.e.t > limit) {
              timedOut(p);
              h++;
              continue;
            }
            match = p;
            p.done = true;
            h++;
            break;
          }
          heads.set(key, h);
        }
        const resp: Pending = { e, l7, idx, done: true };
        if (match !== null) {
          if (match.e.rel === 0) {
            spans.push(this.row(w, agent, version, match, resp, 'paired'));
            stats.paired++;
          } else if (match.e.rel === -1 && e.rel === 0) {
            const t = this.row(w, agent, version, null, resp, 'response_only');
            t._deleted = 1;
            tombstones.push(t);
          }
        } else if (e.rel === 0) {
          spans.push(this.row(w, agent, version, null, resp, 'response_only'));
          stats.responseOnly++;
        }
      }
    }
    // Whatever is left unanswered at the end of the window timed out.
    const left: Pending[] = [];
    for (const [key, q] of queues) {
      for (let h = heads.get(key) as number; h < q.length; h++) if (!q[h].done && q[h].e.rel === 0) left.push(q[h]);
    }
    left.sort((a, b) => a.e.t - b.e.t || a.e.ord - b.e.ord || a.idx - b.idx);
    for (const p of left) timedOut(p);
  }

  private row(w: SlotWindow, agent: [number, number], version: number, req: Pending | null, resp: Pending | null, state: PairState): SpanRow {
    const first = (req ?? resp) as Pending;
    const m = first.e.m;
    const rq = req?.l7;
    const rs = resp?.l7;
    const rm = req?.e.m;
    const sm = resp?.e.m;
    const h = new Hash64(req ? SALT_REQUEST : SALT_RESPONSE).word(agent[0]).word(agent[1]).num(m.socketId).big(m.tsNs).word(m.tcpSeq).word(first.idx);
    // Side: the socket's role when capture knew it, else who sent the request (egress = client).
    let side: 'client' | 'server';
    if (m.role === 'client' || m.role === 'server') side = m.role;
    else if (rm) side = rm.direction === 'egress' ? 'client' : 'server';
    else side = m.direction === 'ingress' ? 'client' : 'server';
    const local = side === 'client';
    const startUs = Number(m.tsNs / 1000n);
    let endUs = startUs;
    if (req && resp) endUs = Number(resp.e.m.tsNs / 1000n);
    if (endUs < startUs) endUs = startUs;
    const l7 = (rq ?? rs) as L7Message;
    let status = rs?.responseStatus ?? 'unknown';
    if (state === 'request_only') status = 'timeout';
    else if (state === 'one_way') status = 'ok';
    if (rm?.connectFailed) status = rq?.responseStatus ?? 'server_error';
    let attributes: Record<string, string>;
    if (rq?.attributes || rs?.attributes) attributes = { ...(rs?.attributes ?? {}), ...(rq?.attributes ?? {}) };
    else attributes = NO_ATTRIBUTES;
    return {
      span_id: h.hex(),
      trace_id: rq?.traceId ?? rs?.traceId ?? '',
      app_span_id: rq?.spanId ?? rs?.spanId ?? '',
      app_parent_span_id: rq?.parentSpanId ?? rs?.parentSpanId ?? '',
      signal_source: m.observationPoint ? 'net' : 'ebpf',
      agent_id: w.agentId,
      slot: w.slot,
      start_time_us: startUs,
      end_time_us: endUs,
      duration_us: endUs - startUs,
      side,
      pair_state: state,
      l7_protocol: l7.l7Protocol,
      version: rq?.version ?? rs?.version ?? '',
      request_type: rq?.requestType ?? '',
      request_domain: rq?.requestDomain ?? '',
      request_resource: rq?.requestResource ?? '',
      endpoint: rq?.endpoint ?? rs?.endpoint ?? '',
      request_id: l7.requestId ?? -1,
      response_code: rs?.responseCode ?? -1,
      response_status: status,
      response_exception: rs?.responseException ?? '',
      request_bytes: rq ? (rq.requestLength ?? (rm as ParsedMessage).bytes) : 0,
      response_bytes: rs ? (rs.responseLength ?? (sm as ParsedMessage).bytes) : 0,
      process_name: m.processName,
      pid: m.pid,
      tid: rm?.tid ?? 0,
      resp_tid: sm?.tid ?? 0,
      coroutine_id: rm?.coroutineId ?? 0,
      resp_coroutine_id: sm?.coroutineId ?? 0,
      socket_id: m.socketId,
      l4_protocol: m.l4,
      client_ip: local ? m.localIp : m.remoteIp,
      client_port: local ? m.localPort : m.remotePort,
      server_ip: local ? m.remoteIp : m.localIp,
      server_port: local ? m.remotePort : m.localPort,
      req_tcp_seq: rm?.tcpSeq ?? 0,
      resp_tcp_seq: sm?.tcpSeq ?? 0,
      syscall_trace_id_req: rm?.syscallTraceId ?? 0,
      syscall_trace_id_resp: sm?.syscallTraceId ?? 0,
      x_request_id_req: rq?.xRequestId ?? '',
      x_request_id_resp: rs?.xRequestId ?? '',
      handoff_trace_id: rm?.handoffTraceId ?? 0,
      observation_point: m.observationPoint ?? '',
      tcp_retransmits: (rm?.tcpRetransmits ?? 0) + (sm?.tcpRetransmits ?? 0),
      tcp_srtt_us: sm?.tcpSrttUs ?? rm?.tcpSrttUs ?? 0,
      tcp_connect_failures: rm?.connectFailed ? 1 : 0,
      attributes,
      host_id: 0,
      process_id: 0,
      container_id: 0,
      pod_id: 0,
      service_id: 0,
      node_id: 0,
      namespace_id: 0,
      peer_pod_id: 0,
      peer_service_id: 0,
      _version: version,
      _deleted: 0,
    };
  }
}

const NO_ATTRIBUTES: Record<string, string> = Object.freeze({}) as Record<string, string>;

/** Small stable index per protocol name (process-wide; only used inside one build). */
const protoIndex = new Map<string, number>();

function queueKey(l7: L7Message, dirBit: number, parallel: boolean): number {
  let p = protoIndex.get(l7.l7Protocol);
  if (p === undefined) {
    p = protoIndex.size;
    protoIndex.set(l7.l7Protocol, p);
  }
  const k = p * 2 + dirBit;
  // Parallel keys are >= 2^32 so they never meet serial ones; ids are taken modulo 2^32.
  return parallel ? (k + 1) * 2 ** 32 + ((l7.requestId as number) >>> 0) : k;
}

function sortParts(batches: readonly Batch[]): Batch[] {
  return [...batches].sort((a, b) => a.slot - b.slot || a.part - b.part || (a.run ?? 0) - (b.run ?? 0));
}

/** Capture order across the window: slot (relative to the owner), then part, then index (< 2^24). */
function slotOrd(b: Batch, owner: number): number {
  return ((Math.max(-1000, Math.min(1000, b.slot - owner)) + 1024) * 65536 + Math.min(b.part, 65535)) * 2 ** 24;
}

function sortEntries(entries: Entry[]): void {
  for (let i = 1; i < entries.length; i++) {
    const a = entries[i - 1];
    const b = entries[i];
    if (a.t > b.t || (a.t === b.t && a.ord > b.ord)) {
      entries.sort((x, y) => x.t - y.t || x.ord - y.ord);
      return;
    }
  }
}

/** Convenience: one call with default options. */
export function referenceBuildSpans(window: SlotWindow, options?: SpanBuilderOptions): SpanBuildResult {
  return new ReferenceSpanBuilder(options).build(window);
}

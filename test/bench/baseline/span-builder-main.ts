// Baseline for test/bench/span-builder.bench.ts --main: functions/span-builder/span-builder.ts as it
// was on main before the always-one-way rules (git show 7a76fdb:functions/span-builder/span-builder.ts,
// import paths adjusted). Not used by any product code.
/**
 * SpanBuilder: pairs the requests and responses one agent captured into spans.
 *
 * The unit of work is a *slot window*: the batches of one agent for slot N (the owner) plus the
 * adjacent slots N-1 and N+1 when present. Pairing runs over the whole window so a request at the
 * end of slot N finds its response in N+1, but only the spans *owned* by N are emitted:
 *   - a span is owned by the slot of its request (the response's slot for a response_only span);
 *   - a response in N that pairs with a request in N-1 yields a tombstone for the response_only row
 *     an earlier run (made before N-1 arrived) may have written.
 * Everything is a pure function of the window's batches: same batches in, identical rows out,
 * whatever the order or the replica. `_version` is the number of batch objects in the window, so a
 * better-informed run (more neighbours present) replaces a worse-informed one in ReplacingMergeTree.
 *
 * Pairing, per socket:
 *   - serial protocols (HTTP/1, Redis, MySQL, PostgreSQL, and any message without a request id):
 *     first-in first-out per (protocol, request direction); pipelined requests pair in order.
 *   - parallel protocols (HTTP/2, gRPC, DNS, Kafka, MQTT, plugins that set a request id): by
 *     (protocol, request direction, request id).
 *   - a request still unanswered after its protocol's timeout, or at the end of the window, becomes a
 *     `request_only` span with status `timeout`; a `oneWay` request closes at once.
 * How a protocol pairs (in order or by id) and its timeout come from the protocol descriptors the
 * batches carry (format 4: built-ins and Wasm plugins as the agent knew them), falling back to the
 * built-in table (agent/protocols/descriptors.ts) for older batches and protocols a batch does not
 * describe. Which requests are one-way is the parser's call (`oneWay`, checked against the
 * descriptor's rules by the conformance suite): a rule's condition ('QoS 0', 'noreply') is in the
 * bytes, not in the descriptor.
 *
 * @example
 *   const { spans, tombstones } = buildSpans({ agentId: 'node-1', slot: 100, prev: [], cur: [batch], next: [] });
 */
import type { ParsedMessage, Batch } from '../../../agent/shipping/batch.ts';
import type { L7Message, ProtocolDescriptor } from '../../../agent/protocols/parser.ts';
import { BUILTIN_DESCRIPTORS, descriptorFor } from '../../../agent/protocols/descriptors.ts';
import { spanIdHex, stringWords } from '../../../functions/span-builder/hash.ts';
import type { PairState, SpanRow } from '../../../functions/span-builder/span-row.ts';

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
  /** Per-protocol request timeout in ms, over what the descriptors say (default: the descriptors' `timeoutMs`). */
  timeoutsMs?: Readonly<Record<string, number>>;
  /** For protocols whose descriptor sets no timeout (default 60 000 ms). */
  defaultTimeoutMs?: number;
  /** Protocols paired in order even when messages carry a request id, instead of the descriptors' `pairing`. */
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

/**
 * Serial protocols pair in order even if a parser reports a request id (MySQL's is a statement id):
 * the built-in descriptors with `pairing: 'in-order'` (agent/protocols/<name>/descriptor.ts).
 */
export const SERIAL_PROTOCOLS: ReadonlySet<string> = new Set(BUILTIN_DESCRIPTORS.filter((d) => d.pairing === 'in-order').flatMap((d) => [d.name, ...d.aliases]));

/** Per-protocol timeouts from the descriptors (DNS: 5 s); everything else gets a minute (bounded by the window anyway). */
export const DEFAULT_TIMEOUTS_MS: Readonly<Record<string, number>> = Object.fromEntries(
  BUILTIN_DESCRIPTORS.filter((d) => d.timeoutMs !== undefined).flatMap((d) => [d.name, ...d.aliases].map((n) => [n, d.timeoutMs as number])),
);

/**
 * How it runs (the hot path: hundreds of thousands of messages per window). No object is allocated
 * per message: the window's messages that can take part in pairing are *entries*, numbered 0..n-1,
 * with their time, capture order, slot and socket in typed arrays; each socket's entries are a
 * segment of one index array (a counting sort by socket); pending requests are small integers
 * into per-socket typed arrays. BigInt timestamps are read through a 64-bit scratch cell, never
 * divided. Only the output rows (and their ids) are allocated.
 */

/** Per protocol name: its queue index, whether it pairs in order, and its timeout. */
interface ProtoInfo {
  index: number;
  serial: boolean;
  timeoutNs: number;
}

/** The window's descriptors by every name they cover: the owner slot's batches first, then the neighbours'. */
function windowDescriptors(w: SlotWindow): Map<string, ProtocolDescriptor> | null {
  let t: Map<string, ProtocolDescriptor> | null = null;
  for (const list of [w.cur, w.prev, w.next]) {
    for (const b of list) {
      if (b.descriptors === undefined) continue;
      t ??= new Map();
      for (const d of b.descriptors) for (const n of [d.name, ...d.aliases]) if (!t.has(n)) t.set(n, d);
    }
  }
  return t;
}

/** One queue of pending requests (ids into the socket's pending table) and its read position. */
interface Queue {
  q: number[];
  h: number;
}

/** The window's entries, as columns. */
interface Entries {
  m: ParsedMessage[];
  /** ns since the epoch as a double (256 ns granularity at today's dates); ties fall back to `ord`. */
  t: Float64Array;
  /** Capture order across the window (slot, part, index). */
  ord: Float64Array;
  /** -1, 0, +1: slot relative to the owner. */
  rel: Int8Array;
}

const SALT_REQUEST = 0x52455131; // span ids keyed by the request
const SALT_RESPONSE = 0x52455350; // response_only span ids

export class SpanBuilder {
  private readonly timeouts: Readonly<Record<string, number>>;
  private readonly defaultTimeoutNs: number;
  private readonly serial: ReadonlySet<string> | undefined;
  /** Per build: protocol facts as the window's batches describe them. */
  private readonly protos = new Map<string, ProtoInfo>();
  private described: Map<string, ProtocolDescriptor> | null = null;
  // Per-socket pending table, reused across sockets and builds (grown on demand).
  private pEntry = new Int32Array(1024);
  private pIdx = new Int32Array(1024);
  private pDone = new Uint8Array(1024);
  // The window's entry columns, reused across builds (grown on demand; message refs cleared after).
  private eM: ParsedMessage[] = [];
  private eT = new Float64Array(0);
  private eOrd = new Float64Array(0);
  private eRel = new Int8Array(0);
  private eSock = new Int32Array(0);
  private order = new Int32Array(0);
  /** Queue objects, reused from socket to socket. */
  private readonly queuePool: Queue[] = [];

  constructor(options: SpanBuilderOptions = {}) {
    this.timeouts = options.timeoutsMs ?? {};
    this.defaultTimeoutNs = (options.defaultTimeoutMs ?? 60_000) * 1e6;
    this.serial = options.serialProtocols;
  }

  private proto(name: string): ProtoInfo {
    let p = this.protos.get(name);
    if (p === undefined) {
      const d = this.described?.get(name) ?? descriptorFor(name);
      const ms = this.timeouts[name] ?? d?.timeoutMs;
      p = {
        index: this.protos.size,
        serial: this.serial !== undefined ? this.serial.has(name) : d?.pairing === 'in-order',
        timeoutNs: ms === undefined ? this.defaultTimeoutNs : ms * 1e6,
      };
      this.protos.set(name, p);
    }
    return p;
  }

  build(w: SlotWindow): SpanBuildResult {
    const version = w.prev.length + w.cur.length + w.next.length;
    const stats: SpanBuildStats = { messages: 0, requests: 0, responses: 0, paired: 0, timeouts: 0, responseOnly: 0 };
    const spans: SpanRow[] = [];
    const tombstones: SpanRow[] = [];
    if (w.cur.length === 0) return { spans, tombstones, stats };
    const agent = stringWords(w.agentId);
    // Protocol facts are per window: batches from different agents (or agent versions) may
    // describe a plugin protocol differently.
    this.protos.clear();
    this.described = windowDescriptors(w);

    let cap = 0;
    for (const b of w.prev) cap += b.messages.length;
    for (const b of w.cur) cap += b.messages.length;
    for (const b of w.next) cap += b.messages.length;
    if (this.eT.length < cap) {
      const size = Math.max(cap, this.eT.length * 2);
      this.eT = new Float64Array(size);
      this.eOrd = new Float64Array(size);
      this.eRel = new Int8Array(size);
      this.eSock = new Int32Array(size);
      this.order = new Int32Array(size);
    }
    const E: Entries = { m: this.eM, t: this.eT, ord: this.eOrd, rel: this.eRel };
    /** Dense socket number of each entry. */
    const eSock = this.eSock;
    let n = 0;

    // Group by socket: every socket with a message in the owner slot, with its messages from the
    // neighbours too. Sockets seen only in a neighbour belong to that neighbour's window.
    // One pass per slot; the owner slot first, so neighbours only join sockets it has.
    const sockets = new Map<number, number>(); // socket id -> dense number
    const sockIds: number[] = [];
    const counts: number[] = [];
    for (const b of sortParts(w.cur)) {
      stats.messages += b.messages.length;
      const partOrd = slotOrd(b, w.slot);
      const msgs = b.messages;
      for (let i = 0; i < msgs.length; i++) {
        const m = msgs[i];
        if (m.l7.length === 0) continue; // no protocol recognised: nothing to pair
        let s = sockets.get(m.socketId);
        if (s === undefined) {
          s = sockIds.length;
          sockets.set(m.socketId, s);
          sockIds.push(m.socketId);
          counts.push(0);
        }
        counts[s]++;
        E.m[n] = m;
        E.t[n] = tsNumber(m.tsNs);
        E.ord[n] = partOrd + i;
        E.rel[n] = 0;
        eSock[n] = s;
        n++;
      }
    }
    const ownEnd = n;
    for (const b of sortParts(w.prev)) {
      const partOrd = slotOrd(b, w.slot);
      const msgs = b.messages;
      for (let i = 0; i < msgs.length; i++) {
        const m = msgs[i];
        if (m.l7.length === 0) continue;
        const s = sockets.get(m.socketId);
        if (s === undefined) continue;
        counts[s]++;
        E.m[n] = m;
        E.t[n] = tsNumber(m.tsNs);
        E.ord[n] = partOrd + i;
        E.rel[n] = -1;
        eSock[n] = s;
        n++;
      }
    }
    const prevEnd = n;
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
        if (s === undefined) continue;
        counts[s]++;
        E.m[n] = m;
        E.t[n] = tsNumber(m.tsNs);
        E.ord[n] = partOrd + i;
        E.rel[n] = 1;
        eSock[n] = s;
        n++;
      }
    }

    // Each socket's entries as one segment of `order`, in slot order (before, own, after), so a
    // segment is already sorted when every batch is.
    const nSock = sockIds.length;
    const start = new Int32Array(nSock + 1);
    for (let s = 0; s < nSock; s++) start[s + 1] = start[s] + counts[s];
    const fill = start.slice(0, nSock);
    const order = this.order;
    for (let k = ownEnd; k < prevEnd; k++) order[fill[eSock[k]]++] = k;
    for (let k = 0; k < ownEnd; k++) order[fill[eSock[k]]++] = k;
    for (let k = prevEnd; k < n; k++) order[fill[eSock[k]]++] = k;

    const bySocketId = Array.from({ length: nSock }, (_, i) => i).sort((a, b) => sockIds[a] - sockIds[b]);
    const queues = new Map<number, Queue>();
    const mine: SpanRow[] = [];
    for (const s of bySocketId) {
      sortSegment(E, order, start[s], start[s + 1]);
      mine.length = 0;
      queues.clear();
      this.queuesUsed = 0;
      this.pairSocket(E, order, start[s], start[s + 1], queues, w, agent, version, mine, tombstones, stats);
      // Rows of one socket in time order (timeouts are found out of order); sockets in id order.
      let sorted = true;
      for (let i = 1; i < mine.length && sorted; i++) sorted = mine[i - 1].start_time_us <= mine[i].start_time_us;
      if (!sorted) mine.sort((a, b) => a.start_time_us - b.start_time_us); // stable
      for (let i = 0; i < mine.length; i++) spans.push(mine[i]);
    }
    E.m.fill(undefined as unknown as ParsedMessage, 0, n); // don't keep the batches alive
    return { spans, tombstones, stats };
  }

  private queuesUsed = 0;

  /** An empty queue from the pool. */
  private queue(): Queue {
    let q = this.queuePool[this.queuesUsed];
    if (q === undefined) {
      q = { q: [], h: 0 };
      this.queuePool.push(q);
    } else {
      q.q.length = 0;
      q.h = 0;
    }
    this.queuesUsed++;
    return q;
  }

  private growPending(need: number): void {
    let size = this.pEntry.length;
    while (size < need) size *= 2;
    this.pEntry = new Int32Array(size);
    this.pIdx = new Int32Array(size);
    this.pDone = new Uint8Array(size);
  }

  private pairSocket(E: Entries, order: Int32Array, from: number, to: number, queues: Map<number, Queue>, w: SlotWindow, agent: [number, number], version: number, spans: SpanRow[], tombstones: SpanRow[], stats: SpanBuildStats): void {
    // Queues keyed by "protocol|request direction" (serial) or "protocol|direction|id" (parallel).
    // Queue keys are numbers: protocol index × 2 + direction bit, and for parallel protocols
    // also the request id (ids are < 2^32) — no string building per message.
    // Pending requests are numbered per socket: their entry and l7 index in typed arrays.
    let np = 0;
    // One socket nearly always speaks one protocol, and a serial protocol's requests and responses
    // share one queue: remember the last protocol and the last queue instead of looking them up.
    let lastProto = '';
    let info: ProtoInfo | undefined;
    let lastKey = -1;
    let lastQ: Queue | undefined;
    for (let j = from; j < to; j++) {
      const e = order[j];
      const m = E.m[e];
      const rel = E.rel[e];
      const l7s = m.l7;
      for (let idx = 0; idx < l7s.length; idx++) {
        const l7 = l7s[idx];
        if (info === undefined || l7.l7Protocol !== lastProto) {
          lastProto = l7.l7Protocol;
          info = this.proto(lastProto);
        }
        const parallel = l7.requestId !== undefined && !info.serial;
        if (l7.msgType === 'request') {
          if (rel === 0) stats.requests++;
          if (l7.oneWay) {
            if (rel === 0) spans.push(this.row(E, w, agent, version, e, idx, -1, -1, 'one_way'));
            continue;
          }
          const key = queueKey(info.index, l7, m.direction === 'egress' ? 1 : 0, parallel);
          let q = key === lastKey ? lastQ : queues.get(key);
          if (q === undefined) {
            q = this.queue();
            queues.set(key, q);
          }
          lastKey = key;
          lastQ = q;
          if (np === this.pEntry.length) this.growPending(np + 1);
          this.pEntry[np] = e;
          this.pIdx[np] = idx;
          this.pDone[np] = 0;
          q.q.push(np++);
          continue;
        }
        // A response: find the oldest pending request in the other direction.
        if (rel === 0) stats.responses++;
        const key = queueKey(info.index, l7, m.direction === 'egress' ? 0 : 1, parallel);
        const q = key === lastKey ? lastQ : queues.get(key);
        if (q !== undefined) {
          lastKey = key;
          lastQ = q;
        }
        let match = -1;
        if (q !== undefined) {
          const limit = info.timeoutNs;
          const t = E.t[e];
          const pq = q.q;
          let h = q.h;
          while (h < pq.length) {
            const p = pq[h];
            if (this.pDone[p] === 1) {
              h++;
              continue;
            }
            const pt = E.t[this.pEntry[p]];
            if (pt > t) break; // the request came later: this response is not its answer
            if (t - pt > limit) {
              this.timedOut(E, p, w, agent, version, spans, stats);
              h++;
              continue;
            }
            match = p;
            this.pDone[p] = 1;
            h++;
            break;
          }
          q.h = h;
        }
        if (match !== -1) {
          const me = this.pEntry[match];
          const mrel = E.rel[me];
          if (mrel === 0) {
            spans.push(this.row(E, w, agent, version, me, this.pIdx[match], e, idx, 'paired'));
            stats.paired++;
          } else if (mrel === -1 && rel === 0) {
            const t = this.row(E, w, agent, version, -1, -1, e, idx, 'response_only');
            t._deleted = 1;
            tombstones.push(t);
          }
        } else if (rel === 0) {
          spans.push(this.row(E, w, agent, version, -1, -1, e, idx, 'response_only'));
          stats.responseOnly++;
        }
      }
    }
    // Whatever is left unanswered at the end of the window timed out.
    let left: number[] | null = null;
    for (const q of queues.values()) {
      for (let h = q.h; h < q.q.length; h++) {
        const p = q.q[h];
        if (this.pDone[p] === 0 && E.rel[this.pEntry[p]] === 0) (left ??= []).push(p);
      }
    }
    if (left === null) return;
    const pe = this.pEntry;
    const pi = this.pIdx;
    left.sort((a, b) => E.t[pe[a]] - E.t[pe[b]] || E.ord[pe[a]] - E.ord[pe[b]] || pi[a] - pi[b]);
    for (const p of left) this.timedOut(E, p, w, agent, version, spans, stats);
  }

  private timedOut(E: Entries, p: number, w: SlotWindow, agent: [number, number], version: number, spans: SpanRow[], stats: SpanBuildStats): void {
    this.pDone[p] = 1;
    const e = this.pEntry[p];
    if (E.rel[e] === 0) {
      spans.push(this.row(E, w, agent, version, e, this.pIdx[p], -1, -1, 'request_only'));
      stats.timeouts++;
    }
  }

  /** A row from a request (entry, l7 index) and/or a response; -1 for the absent side. */
  private row(E: Entries, w: SlotWindow, agent: [number, number], version: number, reqE: number, reqI: number, respE: number, respI: number, state: PairState): SpanRow {
    const rm = reqE >= 0 ? E.m[reqE] : undefined;
    const sm = respE >= 0 ? E.m[respE] : undefined;
    const rq = rm?.l7[reqI];
    const rs = sm?.l7[respI];
    const m = (rm ?? sm) as ParsedMessage;
    const firstIdx = rm ? reqI : respI;
    splitTs(m.tsNs);
    const tsLo = TS_WORDS[TS_LO];
    const tsHi = TS_WORDS[TS_HI];
    const spanId = spanIdHex(rm ? SALT_REQUEST : SALT_RESPONSE, agent[0], agent[1], m.socketId, tsLo, tsHi, m.tcpSeq, firstIdx);
    // Side: the socket's role when capture knew it, else who sent the request (egress = client).
    let side: 'client' | 'server';
    if (m.role === 'client' || m.role === 'server') side = m.role;
    else if (rm) side = rm.direction === 'egress' ? 'client' : 'server';
    else side = m.direction === 'ingress' ? 'client' : 'server';
    const local = side === 'client';
    const startUs = usFromWords(tsLo, tsHi, m.tsNs);
    let endUs = startUs;
    if (rm && sm) {
      splitTs(sm.tsNs);
      endUs = usFromWords(TS_WORDS[TS_LO], TS_WORDS[TS_HI], sm.tsNs);
    }
    if (endUs < startUs) endUs = startUs;
    const l7 = (rq ?? rs) as L7Message;
    let status = rs?.responseStatus ?? 'unknown';
    if (state === 'request_only') status = 'timeout';
    else if (state === 'one_way') status = 'ok';
    if (rm?.connectFailed) status = rq?.responseStatus ?? 'server_error'; // net capture: a failed connect
    let attributes: Record<string, string>;
    if (rq?.attributes || rs?.attributes) attributes = { ...(rs?.attributes ?? {}), ...(rq?.attributes ?? {}) };
    else attributes = NO_ATTRIBUTES;
    // Decoded from TLS plaintext (agent/capture/tls-join.ts): an attribute until spans get a column.
    if (rq?.tls || rs?.tls) attributes = { ...attributes, tls: 'true' };
    return {
      span_id: spanId,
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
      request_type: rq?.requestType ?? rs?.requestType ?? '',
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
      // Client span: the hand-off the request's send carried (a reader waking a worker). Server span:
      // the wake-back its answer carried (the worker whose result the answering thread waited for).
      handoff_trace_id: (side === 'server' ? sm?.handoffTraceId : rm?.handoffTraceId) ?? 0,
      ...netColumns(rm, sm),
      x_request_id_req: rq?.xRequestId ?? '',
      x_request_id_resp: rs?.xRequestId ?? '',
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

/**
 * Network-span and TCP health columns (issue 19): the interface of a network span; the retransmits
 * the request's and the response's messages were told of (each retransmit is told to one message:
 * the next of its connection), the last smoothed RTT, and the failed connect.
 */
function netColumns(rm: ParsedMessage | undefined, sm: ParsedMessage | undefined): Pick<SpanRow, 'observation_point' | 'tcp_retransmits' | 'tcp_srtt_us' | 'tcp_connect_failures'> {
  const m = (rm ?? sm) as ParsedMessage;
  const retrans = (rm?.tcpRetransmits ?? 0) + (sm?.tcpRetransmits ?? 0);
  return {
    observation_point: m.observationPoint ?? '',
    tcp_retransmits: retrans,
    tcp_srtt_us: sm?.tcpSrttUs ?? rm?.tcpSrttUs ?? 0,
    tcp_connect_failures: rm?.connectFailed ? 1 : 0,
  };
}

/** A 64-bit scratch cell: a BigInt stored here is read back as two 32-bit words, no BigInt arithmetic. */
const TS_CELL = new BigUint64Array(1);
const TS_WORDS = new Uint32Array(TS_CELL.buffer);
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
const TS_LO = LITTLE_ENDIAN ? 0 : 1;
const TS_HI = LITTLE_ENDIAN ? 1 : 0;

const U64_MAX = 2n ** 64n - 1n;

/** Store `ts` (mod 2^64, as `& 0xffffffffn` / `>> 32n` see it) in the scratch cell. */
function splitTs(ts: bigint): void {
  TS_CELL[0] = ts;
}

/**
 * `Number(ts)`: for a u64 (every timestamp capture gives) hi·2^32 is exact and the one addition
 * rounds to nearest-even as the conversion does; ~5x cheaper than converting the BigInt.
 */
function tsNumber(ts: bigint): number {
  if (ts < 0n || ts > U64_MAX) return Number(ts);
  TS_CELL[0] = ts;
  return TS_WORDS[TS_HI] * 4294967296 + TS_WORDS[TS_LO];
}

/**
 * `Number(ts / 1000n)` from the words of `ts` (already in the scratch cell) = hi·2^32 + lo, with
 * 2^32 = 4294967·1000 + 296: ts / 1000 = hi·4294967 + (hi·296 + lo) / 1000, every term exact in a
 * double while hi < 2^30 (until the year 2116). Anything else (negative, far future) takes the
 * BigInt path.
 */
function usFromWords(lo: number, hi: number, ts: bigint): number {
  if (hi < 0x40000000 && ts <= U64_MAX) return hi * 4294967 + Math.floor((hi * 296 + lo) / 1000);
  return Number(ts / 1000n);
}

/** Queue key from the protocol's index (see {@link SpanBuilder.proto}). */
function queueKey(protoIndex: number, l7: L7Message, dirBit: number, parallel: boolean): number {
  const k = protoIndex * 2 + dirBit;
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

/** Sort one socket's segment of `order` by (time, capture order), stably; usually already sorted. */
function sortSegment(E: Entries, order: Int32Array, from: number, to: number): void {
  const t = E.t;
  const ord = E.ord;
  for (let i = from + 1; i < to; i++) {
    const a = order[i - 1];
    const b = order[i];
    if (t[a] > t[b] || (t[a] === t[b] && ord[a] > ord[b])) {
      const seg = Array.from(order.subarray(from, to)).sort((x, y) => t[x] - t[y] || ord[x] - ord[y]);
      order.set(seg, from);
      return;
    }
  }
}

/** Convenience: one call with default options. */
export function buildSpans(window: SlotWindow, options?: SpanBuilderOptions): SpanBuildResult {
  return new SpanBuilder(options).build(window);
}

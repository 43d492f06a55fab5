/**
 * Zero-code trace assembly: from any span, find the spans of the same request and choose each one's
 * parent, without any header injected by anyone. The rules are written down, with their reasons and
 * failure modes, in docs/TRACE-ASSEMBLY.md; each has a unit test in assemble.test.ts.
 *
 * Two phases, repeated until nothing new appears (bounded by iterations and span count):
 *  1. search — ask a {@link SpanSource} for every span sharing a key with the spans of the trace so
 *     far: syscall-trace id, TCP sequence, X-Request-ID, application trace id, the client calls a
 *     server span's thread made inside it, the server spans of a process that contain a client span,
 *     the DNS id of a UDP exchange — all inside a time window around the seed;
 *  2. link — choose parents by {@link linkParents}, then keep only the tree that holds the seed.
 * Only members of the seed's tree seed the next search: a span that merely shares a busy thread or a
 * reused connection with the trace is fetched, but never widens the search unless a rule attaches it.
 *
 * @example
 *   const trace = await assembleTrace(new ClickHouseSpanSource(ch), '3f2a…', {});
 *   for (const s of trace?.spans ?? []) console.log(s.depth, s.span.span_id, s.parent_id, s.rule);
 */
import type { AsmSpan } from './span.ts';
import { descriptorFor } from '../../agent/protocols/descriptors.ts';
import type { ProtocolDescriptor } from '../../agent/protocols/parser.ts';
import { placeNetHops, withoutNetSpans } from './net-hops.ts';
import { timingLinks } from './timing.ts';
import { answered, idTokens, inside } from './links.ts';
import type { Link, ParentRule } from './links.ts';

export { idTokens };
export type { Link, ParentRule };

export interface AssembleOptions {
  /**
   * Search window on each side of the seed span (µs). Kept short because every round reads the
   * window; a trace that reaches within half of it of either edge is searched again with
   * {@link AssembleOptions.wideWindowUs} around its extent.
   */
  windowUs: number;
  /** The second, wide window on each side of a long trace's extent (µs). */
  wideWindowUs: number;
  /** Search rounds at most. */
  maxIterations: number;
  /** Spans fetched at most; past it the trace is marked truncated. */
  maxSpans: number;
  /** How far apart the two ends of one network exchange may be seen by the same agent (µs). */
  networkDelayUs: number;
  /** Extra tolerance between two agents' clocks (µs). */
  clockOffsetUs: number;
  /**
   * Links whose confidence ({@link RULE_CONFIDENCE}) is below this stay unattached: a wrong parent is
   * worse than a missing one. 0 takes every rule's link; 1 only exact evidence (sequence, headers).
   */
  minConfidence: number;
  /**
   * Descriptor by protocol name, for aliases and sequence slack (default: the built-in table; the
   * query app passes built-ins + stored plugin descriptors, storage/protocol-descriptors.ts).
   */
  descriptorOf?: (l7Protocol: string) => ProtocolDescriptor | undefined;
  /**
   * Use the `timing` rule (functions/query/timing.ts): with a source that can {@link SpanSource.sample}
   * a loop thread, calls an event loop left unattached are matched to requests by learned order and
   * delay. False gives the rules without it (the baseline of the fidelity tests).
   */
  timing: boolean;
}

export const DEFAULT_ASSEMBLE_OPTIONS: AssembleOptions = {
  windowUs: 2_000_000,
  wideWindowUs: 30_000_000,
  maxIterations: 16,
  maxSpans: 2000,
  networkDelayUs: 50_000,
  clockOffsetUs: 10_000,
  minConfidence: 0.5,
  timing: true,
};

/** "Spans inside this server span, made by its threads" (parent → children search). */
export interface InsideProbe {
  agent_id: string;
  /** Sorting-key columns (0 = unknown): let ClickHouse read only this process's granules. */
  host_id: number;
  process_id: number;
  pid: number;
  tids: number[];
  /** Any thread of the process (a Go process: goroutines move between threads, and hand calls to others). */
  anyThread?: boolean;
  from: number;
  to: number;
}

/**
 * "Server spans of this process and thread that contain [from, to]" (child → parent search). Only
 * the client's own threads: a server span on another thread can only be its parent through syscall
 * ids, and those are searched directly.
 */
export interface ContainingProbe {
  agent_id: string;
  host_id: number;
  process_id: number;
  pid: number;
  tids: number[];
  /** Any thread of the process (a Go process: goroutines move between threads, and hand calls to others). */
  anyThread?: boolean;
  from: number;
  to: number;
}

/** UDP exchanges have no TCP sequence: the protocol's request id and both ports stand in for it. */
export interface UdpProbe {
  request_id: number;
  client_port: number;
  server_port: number;
}

/** What one search round asks for; every list holds only values not asked before. */
export interface SearchKeys {
  syscallIds: number[];
  /** Request sequences (`req_tcp_seq`): the only sequence the rules link by (tcp_seq pairs a server
   * span with the client span of the same request sequence; response sequences only break ties). */
  tcpSeqs: number[];
  xRequestIds: string[];
  traceIds: string[];
  inside: InsideProbe[];
  containing: ContainingProbe[];
  udp: UdpProbe[];
}

export interface TimeWindow {
  from: number;
  to: number;
}

/** Where assembly reads spans: ClickHouse in production, an array in unit tests. */
export interface SpanSource<T extends AsmSpan> {
  bySpanId(spanId: string): Promise<T | undefined>;
  /** Spans starting inside `window` that match any of `keys` (see {@link matchesKeys}); at most `limit`. */
  find(keys: SearchKeys, window: TimeWindow, limit: number): Promise<T[]>;
  /**
   * Every eBPF span of one thread starting inside `window`, ordered by start, at most `limit` (the
   * `timing` rule learns from, and decides on, a complete sample of an event loop). Optional: a
   * source without it gets no `timing` links.
   */
  sample?(probe: ThreadProbe, window: TimeWindow, limit: number): Promise<T[]>;
}

/** One thread of one process (the `timing` rule's sample). */
export interface ThreadProbe {
  agent_id: string;
  host_id: number;
  process_id: number;
  pid: number;
  tid: number;
}

/** The rule that chose a span's parent (docs/TRACE-ASSEMBLY.md). */

/**
 * How likely each rule's link is right (0–1), from what the evidence can and cannot rule out; the
 * reasons are in docs/TRACE-ASSEMBLY.md. `tcp_seq` with an equal response sequence too is
 * {@link TCP_SEQ_EXACT}.
 */
export const RULE_CONFIDENCE: Readonly<Record<ParentRule, number>> = {
  tcp_seq: 0.95,
  udp_request_id: 0.9,
  traceparent: 1,
  otel_parent: 1,
  x_request_id: 0.95,
  syscall_response: 0.9,
  syscall_chain: 0.8,
  content: 0.7,
  thread: 0.6,
  handoff: 0.45,
  handback: 0.9,
  goroutine: 0.9,
  timing: 0.65,
  net_hop: 0.95,
};

/**
 * Confidence of a `handback` link ({@link handbacks}) by what the forward hand-off of the same call
 * says: it names the same request (`agree`), nothing among the open requests (`alone`: the worker was
 * busy and took the task without sleeping, or its waker's request is not open), or another open
 * request (`disagree`: the reader that woke the worker is not the one whose task it took — the
 * wake-back is the exact direction, since only the thread that ran a task completes its future).
 * A call reached through the worker's chain (not the one whose reply id the answer carried) is
 * {@link HANDBACK_CHAIN_PENALTY} less sure: the chain's start rests on the task boundary checks.
 */
export const HANDBACK_CONFIDENCE = { agree: 0.95, alone: 0.9, disagree: 0.75 } as const;
export const HANDBACK_CHAIN_PENALTY = 0.05;
/** Request and response sequences both equal: the two ends of one exchange, 64 bits of evidence. */
export const TCP_SEQ_EXACT = 1;

export interface AssembledSpan<T extends AsmSpan> {
  span: T;
  parent_id: string | null;
  rule: ParentRule | null;
  /** The link's confidence; null for a root. */
  confidence: number | null;
  depth: number;
}

export interface AssembledTrace<T extends AsmSpan> {
  /** The application trace id when any span carries one, else one derived from the root span id. */
  trace_id: string;
  /** Parents before children; siblings by start time. */
  spans: AssembledSpan<T>[];
  iterations: number;
  fetched: number;
  truncated: boolean;
}

/** The trace id of a trace without an application trace id: 16 zeros then the root's span id. */
export function derivedTraceId(rootSpanId: string): string {
  return rootSpanId.padStart(32, '0');
}

/** The root span id inside a {@link derivedTraceId}, or undefined for an application trace id. */
export function spanIdOfDerivedTraceId(traceId: string): string | undefined {
  return /^0{16}[0-9a-f]{16}$/.test(traceId) ? traceId.slice(16) : undefined;
}

function emptyKeys(): SearchKeys {
  return { syscallIds: [], tcpSeqs: [], xRequestIds: [], traceIds: [], inside: [], containing: [], udp: [] };
}

function keysEmpty(k: SearchKeys): boolean {
  return !k.syscallIds.length && !k.tcpSeqs.length && !k.xRequestIds.length && !k.traceIds.length && !k.inside.length && !k.containing.length && !k.udp.length;
}

/** Same semantics as the SQL of the ClickHouse source; used by in-memory sources. */
export function matchesKeys(s: AsmSpan, k: SearchKeys, w: TimeWindow): boolean {
  if (s.start_time_us < w.from || s.start_time_us > w.to) return false;
  if (k.syscallIds.length && (k.syscallIds.includes(s.syscall_trace_id_req) || k.syscallIds.includes(s.syscall_trace_id_resp) || (!!s.handoff_trace_id && k.syscallIds.includes(s.handoff_trace_id)))) return true;
  if (k.tcpSeqs.length && k.tcpSeqs.includes(s.req_tcp_seq)) return true;
  if (k.xRequestIds.length && (k.xRequestIds.includes(s.x_request_id_req) || k.xRequestIds.includes(s.x_request_id_resp))) return true;
  if (k.traceIds.length && k.traceIds.includes(s.trace_id)) return true;
  const sameProc = (p: InsideProbe | ContainingProbe): boolean => p.process_id === 0 || (s.host_id === p.host_id && s.process_id === p.process_id);
  for (const p of k.inside) {
    if (sameProc(p) && s.side === 'client' && s.agent_id === p.agent_id && s.pid === p.pid && (p.anyThread || p.tids.includes(s.tid)) && s.start_time_us >= p.from && s.end_time_us <= p.to) return true;
  }
  for (const p of k.containing) {
    if (sameProc(p) && s.side === 'server' && s.agent_id === p.agent_id && s.pid === p.pid && (p.anyThread || p.tids.includes(s.tid)) && s.start_time_us <= p.from && s.end_time_us >= p.to) return true;
  }
  for (const p of k.udp) {
    if (s.l4_protocol === 'udp' && s.request_id === p.request_id && s.client_port === p.client_port && s.server_port === p.server_port) return true;
  }
  return false;
}

interface Asked {
  sys: Set<number>;
  seq: Set<number>;
  xrid: Set<string>;
  trace: Set<string>;
  udp: Set<string>;
}

/** Links strong enough that a client span's competing parents need not be searched for. */
/**
 * Links that no other server span of the call's thread can overturn. `syscall_chain` is not one: it
 * holds only if the thread served nothing else at the time, so the search fetches the thread's other
 * server spans around such a call (the "thread, up" probe) to find out.
 */
const STRONG: ReadonlySet<ParentRule> = new Set(['traceparent', 'x_request_id', 'syscall_response']);

function addKeys(k: SearchKeys, s: AsmSpan, asked: Asked, link: Link | undefined, of?: AssembleOptions['descriptorOf']): void {
  // A call sent by a thread that had received nothing yet (a client program like curl, a fresh
  // worker) serves no request of that thread: nothing up the thread or along its ids to look for.
  // A goroutine that received nothing may still serve a request: Go's HTTP transport writes a call
  // from its own goroutine, handed the request by the handler's.
  const go = (s.coroutine_id ?? 0) !== 0;
  const unserved = s.signal_source === 'ebpf' && s.side === 'client' && s.syscall_trace_id_req === 0 && !go;
  // A handed-off id names the request the waking thread had just read (`handoff` rule).
  for (const id of unserved ? [] : [s.syscall_trace_id_req, s.syscall_trace_id_resp, s.handoff_trace_id ?? 0]) {
    if (id !== 0 && !asked.sys.has(id)) {
      asked.sys.add(id);
      k.syscallIds.push(id);
    }
  }
  if (s.l4_protocol !== 'udp') {
    // Only the request sequence: asking response sequences too doubled the keys (and the bloom
    // filter false positives, which grow with the number of keys) and found nothing a rule uses.
    if (s.req_tcp_seq !== 0) {
      for (const d of seqSlack(s.l7_protocol, of)) {
        const v = (s.req_tcp_seq + d) >>> 0;
        if (!asked.seq.has(v)) {
          asked.seq.add(v);
          k.tcpSeqs.push(v);
        }
      }
    }
  } else if (s.request_id >= 0) {
    const key = `${s.request_id}|${s.client_port}|${s.server_port}`;
    if (!asked.udp.has(key)) {
      asked.udp.add(key);
      k.udp.push({ request_id: s.request_id, client_port: s.client_port, server_port: s.server_port });
    }
  }
  for (const x of [s.x_request_id_req, s.x_request_id_resp]) {
    if (x !== '' && !asked.xrid.has(x)) {
      asked.xrid.add(x);
      k.xRequestIds.push(x);
    }
  }
  if (s.trace_id !== '' && !asked.trace.has(s.trace_id)) {
    asked.trace.add(s.trace_id);
    k.traceIds.push(s.trace_id);
  }
  if (s.signal_source !== 'ebpf' || s.pid === 0) return;
  const tids = [...new Set([s.tid, s.resp_tid].filter((t) => t !== 0))];
  if (tids.length === 0) return;
  if (s.side === 'server') {
    // The same syscall-trace id on request and response: the thread received nothing in between,
    // so it made no answered call while serving (a leaf, like every Redis or database server span).
    const leaf = s.syscall_trace_id_req !== 0 && s.syscall_trace_id_req === s.syscall_trace_id_resp;
    if (!leaf) k.inside.push({ agent_id: s.agent_id, host_id: s.host_id, process_id: s.process_id, pid: s.pid, tids, anyThread: go, from: s.start_time_us, to: s.end_time_us });
  } else if (!unserved && (!link || !STRONG.has(link.rule))) {
    // A call linked by `handback` through the worker's chain: every open request of the process is
    // asked for, not only its own thread's — the chain must see an open request whose task nobody
    // named (it could be this call's) to stop there.
    const anyThread = go || link?.rule === 'handback';
    k.containing.push({ agent_id: s.agent_id, host_id: s.host_id, process_id: s.process_id, pid: s.pid, tids, anyThread, from: s.start_time_us, to: s.end_time_us });
  }
}

/**
 * Offsets at which the two ends of one exchange may see its sequence: the descriptor's
 * `sequenceSlack`. Protocols framed by a 4-byte length header (MySQL, Kafka) are often read header
 * first, then payload: the message the parser keeps starts 4 bytes later on that side.
 */
function seqSlack(protocol: string, of = descriptorFor): readonly number[] {
  return of(protocol)?.sequenceSlack ?? NO_SLACK;
}
const NO_SLACK: readonly number[] = [0];

const byStart = (a: AsmSpan, b: AsmSpan): number => a.start_time_us - b.start_time_us || (a.span_id < b.span_id ? -1 : a.span_id > b.span_id ? 1 : 0);

/** HTTP/2 and gRPC are one exchange seen by parsers that may name it differently (descriptor aliases). */
function sameProtocol(a: string, b: string, of = descriptorFor): boolean {
  if (a === b) return true;
  const d = of(a);
  return d !== undefined && d === of(b);
}


/**
 * The confidence of a `handoff` link made while other open requests of the process had to be
 * accounted for (see {@link byHandoff}): below the default `minConfidence` (0.5), so such calls
 * stay unattached unless a user lowers the floor.
 */
export const HANDOFF_INFERRED_CONFIDENCE = 0.4;

/**
 * The `handoff` rule: the server span whose request the thread that woke this call's thread had just
 * read (kernel evidence from sched_waking, `handoff_trace_id`), among the server spans of the process
 * that contain the call. Only when nothing contradicts it, since a wake-up says who woke the thread,
 * not which work it then took (a pool's queue may give a woken worker another request's task):
 * - exactly one containing server span read its request with that id;
 * - no other containing server span was read or answered by the call's own thread (the thread that
 *   makes a call and later answers a request is serving that request: the wake-up was for other work);
 * - every other containing server span is accounted for by another thread: answered by a worker
 *   (`resp_tid` neither its reader nor the call's thread), or named by an earlier call of another
 *   thread with its own hand-off. An open request nobody is seen working on may be the task the
 *   woken worker took instead (the queue's head), so its presence leaves the call unattached.
 * The accounting is itself inferred: another call's hand-off may name the wrong task, and a
 * request answered on a thread other than its reader need not have been served by a worker (a
 * reader pool answers on whichever reader is free). Measured on the merged tree: 6 wrong of 300
 * links at 30 concurrent on the reader-answers shape, with either kind of accounting — and even
 * with the named request the only containing one fetched (0.67%: the request the worker really took
 * was not among the spans fetched). So every hand-off link is below the default floor (0.5): {@link
 * RULE_CONFIDENCE}.handoff (0.45) when the named request is the only open request containing the
 * call, {@link HANDOFF_INFERRED_CONFIDENCE} (0.4) when others had to be accounted for. The kernel
 * evidence is captured (`--handoff`); assembly uses it only with a lowered `minConfidence`. `others` are the process's client
 * spans (to find those earlier calls).
 */
export function byHandoff<T extends AsmSpan>(c: T, containing: readonly T[], others: readonly T[]): [T, number] | undefined {
  const id = c.handoff_trace_id ?? 0;
  if (id === 0) return undefined;
  const named = containing.filter((srv) => srv.syscall_trace_id_req === id);
  if (named.length !== 1) return undefined;
  const [srv] = named;
  if (c.tid !== 0 && containing.some((o) => o !== srv && (o.tid === c.tid || o.resp_tid === c.tid))) return undefined;
  const answered = (o: T): boolean => o.resp_tid !== 0 && o.resp_tid !== o.tid && o.resp_tid !== c.tid;
  const handedElsewhere = (o: T): boolean =>
    others.some((x) => x !== c && x.tid !== c.tid && x.handoff_trace_id === o.syscall_trace_id_req && o.syscall_trace_id_req !== 0 && x.start_time_us <= c.start_time_us);
  const rest = containing.filter((o) => o !== srv);
  if (rest.length === 0) return [srv, RULE_CONFIDENCE.handoff];
  return rest.every((o) => answered(o) || handedElsewhere(o)) ? [srv, HANDOFF_INFERRED_CONFIDENCE] : undefined;
}

/**
 * The `handback` rule (issue 15), from the reverse direction of a hand-off: with `--handoff`, a
 * server span whose answer was sent right after a wake-up by a thread that had just read a reply
 * carries that thread's syscall-trace id (`handoff_trace_id` of a *server* span: the wake-back). A
 * reader that handed its request to a worker and waits for the result (a CompletableFuture) is woken
 * by exactly the worker that ran its task, when it completes the future; the worker's id then is the
 * response id of its last call for that task. So the server span's task is: the one containing call
 * of another thread whose response id is the stamp, then back along that worker's chain (a call's
 * request id is the response id of the worker's previous call) while
 * - the previous call lies inside the server span, its reply was read by the thread that sent the
 *   next one, before it was sent, and exactly one call qualifies;
 * - it is not the named call of another server span's wake-back (the worker's previous task, whose
 *   reader was woken with that id);
 * - its forward hand-off id is the same (a different one means the worker slept and was woken again
 *   in between: a new task). A worker that went from one task to the next without sleeping, whose
 *   previous task's reader was never woken (it had not yet parked when the future completed), is
 *   caught by one more check: no other open request containing the previous call lacks a wake-back
 *   (one that does, answered by its reader or by that worker, may own the call). The search asks
 *   for every containing server span of the process around a call linked this way.
 * A call claimed by two server spans is left to the other rules. Returns, per call span id, the
 * server span and the link's confidence ({@link HANDBACK_CONFIDENCE}).
 */
export function handbacks<T extends AsmSpan>(servers: readonly T[], clients: readonly T[]): Map<string, [T, number]> {
  const out = new Map<string, [T, number]>();
  const stamped = servers.filter((s) => (s.handoff_trace_id ?? 0) !== 0 && s.handoff_trace_id !== s.syscall_trace_id_req);
  if (stamped.length === 0) return out;
  const byResp = new Map<number, T[]>();
  for (const c of clients) {
    if (c.syscall_trace_id_resp === 0) continue;
    const l = byResp.get(c.syscall_trace_id_resp);
    if (l) l.push(c);
    else byResp.set(c.syscall_trace_id_resp, [c]);
  }
  const stampers = new Map<number, T[]>();
  for (const s of stamped) {
    const l = stampers.get(s.handoff_trace_id as number);
    if (l) l.push(s);
    else stampers.set(s.handoff_trace_id as number, [s]);
  }
  const claims = new Map<string, [T, number] | null>();
  const claim = (c: T, srv: T, chained: boolean): void => {
    if (claims.has(c.span_id)) {
      const prev = claims.get(c.span_id);
      if (prev && prev[0] !== srv) claims.set(c.span_id, null);
      return;
    }
    const fwd = c.handoff_trace_id ?? 0;
    let conf: number = HANDBACK_CONFIDENCE.alone;
    if (fwd !== 0 && fwd === srv.syscall_trace_id_req) conf = HANDBACK_CONFIDENCE.agree;
    else if (fwd !== 0 && servers.some((o) => o !== srv && o.syscall_trace_id_req === fwd && inside(c, o))) conf = HANDBACK_CONFIDENCE.disagree;
    claims.set(c.span_id, [srv, chained ? conf - HANDBACK_CHAIN_PENALTY : conf]);
  };
  // Another open request containing `d` whose task no wake-back names, answered by its reader (it
  // waited for a worker) or by d's thread: d may be the end of its task (its reader had not parked
  // when the future completed, so nothing woke it back) — the chain stops before d.
  const hasStamp = (o: T): boolean => (o.handoff_trace_id ?? 0) !== 0 && o.handoff_trace_id !== o.syscall_trace_id_req;
  const unnamedOwner = (d: T, srv: T): boolean =>
    servers.some((o) => o !== srv && !hasStamp(o) && (o.resp_tid === o.tid || o.resp_tid === d.resp_tid) && inside(d, o));
  for (const srv of stamped) {
    const stamp = srv.handoff_trace_id as number;
    if ((stampers.get(stamp) ?? []).length !== 1) continue;
    const named = (byResp.get(stamp) ?? []).filter((c) => inside(c, srv) && c.resp_tid !== srv.resp_tid);
    if (named.length !== 1) continue;
    let cur = named[0];
    claim(cur, srv, false);
    for (let i = 0; i < 64 && cur.syscall_trace_id_req !== 0; i++) {
      const at = cur;
      const prev = (byResp.get(at.syscall_trace_id_req) ?? []).filter(
        (d) =>
          d !== at &&
          inside(d, srv) &&
          d.resp_tid === at.tid &&
          d.end_time_us <= at.start_time_us &&
          (d.handoff_trace_id ?? 0) === (at.handoff_trace_id ?? 0) &&
          !(stampers.get(d.syscall_trace_id_resp) ?? []).some((o) => o !== srv) &&
          !unnamedOwner(d, srv),
      );
      if (prev.length !== 1) break;
      cur = prev[0];
      claim(cur, srv, true);
    }
  }
  for (const [id, c] of claims) if (c) out.set(id, c);
  return out;
}

/**
 * The `goroutine` rule (issue 15): in a Go process the kernel gives each syscall its goroutine id
 * (`coroutine_id`), and goroutines move between OS threads, so the thread says nothing. A call made
 * by the goroutine of exactly one server span containing it belongs to that span (goroutine ids are
 * never reused in a process, and an HTTP/1 connection's goroutine serves one request at a time).
 * A call made by another goroutine — net/http's transport writes requests from its connection's own
 * goroutine, a handler may `go` — has no kernel evidence of its parent: only the content rule (an id
 * of exactly one open request reappearing in the call) may decide, else it stays unattached.
 * Returns undefined for a span without a goroutine id (the thread rules apply).
 */
export function goroutineParent<T extends AsmSpan>(call: T, servers: readonly T[], byContent: (c: T, among: T[]) => T | undefined): [T | undefined, ParentRule] | undefined {
  const g = call.coroutine_id ?? 0;
  if (g === 0) return undefined;
  const mine = servers.filter((srv) => srv.coroutine_id === g || srv.resp_coroutine_id === g);
  if (mine.length === 1) return [mine[0], 'goroutine'];
  return [byContent(call, mine.length > 1 ? mine : [...servers]), 'content'];
}

/** Evidence decided outside the spans being linked: `timing` links from a complete sample of a loop thread. */
export interface LinkEvidence {
  /** Per call span id, the `timing` link {@link timingLinks} decided on a sample of its thread. */
  timing?: ReadonlyMap<string, Link>;
}

/** How far before and after the calls in question a loop thread is sampled (µs), and how many spans at most. */
export const TIMING_SAMPLE_MARGIN_US = 1_000_000;
export const TIMING_SAMPLE_LIMIT = 5000;

/**
 * Calls of the seed's trace that an event loop left unattached: an eBPF call of a thread (not a
 * goroutine) that several server spans of its thread contain, one of them in the trace. Per thread,
 * the probe and the time span of those calls.
 */
function loopOrphans<T extends AsmSpan>(set: ReadonlyMap<string, T>, links: ReadonlyMap<string, Link>, inTrace: ReadonlySet<string>): Map<string, [ThreadProbe, number, number]> {
  const out = new Map<string, [ThreadProbe, number, number]>();
  const servers = [...set.values()].filter((s) => s.signal_source === 'ebpf' && s.side === 'server');
  for (const c of set.values()) {
    if (c.signal_source !== 'ebpf' || c.side !== 'client' || c.tid === 0 || (c.coroutine_id ?? 0) !== 0 || links.has(c.span_id)) continue;
    const same = servers.filter((srv) => srv.agent_id === c.agent_id && srv.pid === c.pid && (srv.tid === c.tid || srv.resp_tid === c.tid) && inside(c, srv));
    if (same.length < 2 || !same.some((srv) => inTrace.has(srv.span_id))) continue;
    const k = `${c.agent_id}|${c.pid}|${c.tid}`;
    const e = out.get(k);
    const end = Math.max(c.start_time_us, c.end_time_us);
    if (!e) out.set(k, [{ agent_id: c.agent_id, host_id: c.host_id, process_id: c.process_id, pid: c.pid, tid: c.tid }, c.start_time_us, end]);
    else out.set(k, [e[0], Math.min(e[1], c.start_time_us), Math.max(e[2], end)]);
  }
  return out;
}

/**
 * Choose each span's parent. Rules in order of precedence, per kind of span (docs/TRACE-ASSEMBLY.md):
 * - eBPF server span: `tcp_seq` (the client span of the same exchange: same request TCP sequence
 *   (±4 for protocols read header first), same protocol, times within the network tolerance — across
 *   hosts too; an equal response sequence breaks ties), `udp_request_id` (UDP: same request id and ports), `traceparent` (an OTel client span whose
 *   id the request carried: the caller was instrumented but not captured).
 * - eBPF client span: `traceparent` (the OTel span that injected the header), then among the server
 *   spans of the same process that contain it in time: `x_request_id`, `syscall_response` (the server
 *   answered right after this call returned), `handoff` (the thread that woke this call's thread had
 *   just read that server span's request, and nothing contradicts it: {@link byHandoff}), `syscall_chain` (the thread went from receiving the
 *   server's request to sending this call, possibly through earlier calls such as a DNS lookup),
 *   `content` (several server spans of the thread contain it: the one whose resource holds an id
 *   that reappears in the call's), `thread` (same thread, and only one server span of that thread
 *   contains it); in a Go process (goroutine ids) instead of the thread rules: `goroutine`, else
 *   `content` ({@link goroutineParent}).
 * Each link carries its {@link RULE_CONFIDENCE}; one below `minConfidence` is not made.
 * - OTel span: `otel_parent` (its parent id: the eBPF server span that carried it in, else the OTel
 *   span with that id).
 * A link that would close a cycle is skipped and the next rule is tried.
 */
export function linkParents<T extends AsmSpan>(all: readonly T[], options: Partial<AssembleOptions> = {}, evidence: LinkEvidence = {}): Map<string, Link> {
  const o = { ...DEFAULT_ASSEMBLE_OPTIONS, ...options };
  // Network spans (issue 19) are placed after the process rules, between client and server.
  const spans = withoutNetSpans(all);
  const clientsBySeq = new Map<number, T[]>();
  const udpClients = new Map<string, T[]>();
  const procs = new Map<string, { servers: T[]; clients: T[] }>();
  const otelById = new Map<string, T>();
  const ebpfServersByAppId = new Map<string, T[]>();
  const push = <K>(m: Map<K, T[]>, k: K, s: T): void => {
    const l = m.get(k);
    if (l) l.push(s);
    else m.set(k, [s]);
  };
  const procKey = (s: AsmSpan): string => `${s.agent_id}\u0000${s.pid}`;
  for (const s of spans) {
    if (s.signal_source === 'otel') {
      if (s.app_span_id) otelById.set(s.app_span_id, s);
      continue;
    }
    if (s.side === 'client') {
      if (s.l4_protocol === 'udp') {
        if (s.request_id >= 0) push(udpClients, `${s.l7_protocol}|${s.request_id}|${s.client_port}|${s.server_port}`, s);
      } else if (s.req_tcp_seq !== 0) push(clientsBySeq, s.req_tcp_seq, s);
    } else if (s.app_span_id) push(ebpfServersByAppId, s.app_span_id, s);
    let p = procs.get(procKey(s));
    if (!p) procs.set(procKey(s), (p = { servers: [], clients: [] }));
    (s.side === 'server' ? p.servers : p.clients).push(s);
  }
  for (const p of procs.values()) p.clients.sort(byStart);

  // The syscall-trace ids a server's thread carried while serving it: the request's id, then the
  // response id of each call made with an id already in the chain (each receive starts a new id).
  const chains = new Map<string, Set<number>>();
  const chainOf = (srv: T): Set<number> => {
    let chain = chains.get(srv.span_id);
    if (chain) return chain;
    chain = new Set(srv.syscall_trace_id_req !== 0 ? [srv.syscall_trace_id_req] : []);
    if (chain.size) {
      for (const c of procs.get(procKey(srv))?.clients ?? []) {
        if (c.start_time_us > srv.end_time_us) break;
        if (!inside(c, srv)) continue;
        if (c.syscall_trace_id_req !== 0 && chain.has(c.syscall_trace_id_req) && c.syscall_trace_id_resp !== 0) chain.add(c.syscall_trace_id_resp);
      }
    }
    chains.set(srv.span_id, chain);
    return chain;
  };

  const tokenCache = new Map<string, readonly string[]>();
  const tokens = (x: T): readonly string[] => {
    let t = tokenCache.get(x.span_id);
    if (!t) tokenCache.set(x.span_id, (t = idTokens(x.request_resource)));
    return t;
  };
  const byContent = (c: T, servers: T[]): T | undefined => {
    const mine = tokens(c);
    if (mine.length === 0) return undefined;
    let found: T | undefined;
    for (const tok of mine) {
      const holders = servers.filter((srv) => tokens(srv).includes(tok));
      if (holders.length > 1) continue;
      if (holders.length === 1) {
        if (found && found !== holders[0]) return undefined; // two tokens point at two requests
        found = holders[0];
      }
    }
    return found;
  };

  // Wake-backs, per process: the calls each stamped server span's worker made for it (`handback`).
  const handbackCache = new Map<string, Map<string, [T, number]>>();
  const handbackOf = (c: T): [T, number] | undefined => {
    const k = procKey(c);
    let m = handbackCache.get(k);
    if (!m) {
      const p = procs.get(k);
      handbackCache.set(k, (m = p ? handbacks(p.servers, p.clients) : new Map<string, [T, number]>()));
    }
    return m.get(c.span_id);
  };

  const links = new Map<string, Link>();
  const wouldCycle = (child: string, parent: string): boolean => {
    let cur: string | undefined = parent;
    for (let i = 0; cur !== undefined && i <= spans.length; i++) {
      if (cur === child) return true;
      cur = links.get(cur)?.parent;
    }
    return false;
  };
  const latest = (l: T[]): T | undefined => l.reduce<T | undefined>((best, s) => (!best || byStart(s, best) > 0 ? s : best), undefined);
  const nearest = (l: T[], t: number): T | undefined =>
    l.reduce<T | undefined>((best, s) => (!best || Math.abs(s.start_time_us - t) < Math.abs(best.start_time_us - t) ? s : best), undefined);

  const networkPeer = (srv: T, c: T): boolean => {
    if (c === srv || !sameProtocol(c.l7_protocol, srv.l7_protocol, o.descriptorOf)) return false;
    const tol = o.networkDelayUs + (c.agent_id !== srv.agent_id ? o.clockOffsetUs : 0);
    if (srv.start_time_us < c.start_time_us - tol) return false;
    if (answered(c) && answered(srv) && srv.end_time_us > c.end_time_us + tol) return false;
    return srv.start_time_us <= (answered(c) ? c.end_time_us : c.start_time_us) + tol;
  };

  type Candidate = [T | undefined, ParentRule, number?];
  const candidates = (s: T): Candidate[] => {
    if (s.signal_source === 'otel') {
      const p = s.app_parent_span_id;
      if (!p) return [];
      const carriers = (ebpfServersByAppId.get(p) ?? []).filter((e) => e.trace_id === s.trace_id);
      return [[nearest(carriers, s.start_time_us) ?? otelById.get(p), 'otel_parent']];
    }
    const out: Candidate[] = [];
    const app = s.app_span_id ? otelById.get(s.app_span_id) : undefined;
    const appParent = app && app.trace_id === s.trace_id ? app : undefined;
    if (s.side === 'server') {
      if (s.l4_protocol === 'udp') {
        const l = udpClients.get(`${s.l7_protocol}|${s.request_id}|${s.client_port}|${s.server_port}`) ?? [];
        out.push([nearest(l.filter((c) => networkPeer(s, c)), s.start_time_us), 'udp_request_id']);
      } else if (s.req_tcp_seq !== 0) {
        // The request sequence identifies the exchange (it moves on with every request of a
        // keep-alive connection). Response sequences may differ when one side reads a response in
        // several pieces and the parser keeps a later one: equal ones only break ties.
        const l = seqSlack(s.l7_protocol, o.descriptorOf)
          .flatMap((d) => clientsBySeq.get((s.req_tcp_seq + d) >>> 0) ?? [])
          .filter((c) => networkPeer(s, c));
        const exact = l.filter((c) => c.resp_tcp_seq !== 0 && c.resp_tcp_seq === s.resp_tcp_seq);
        out.push([nearest(exact.length ? exact : l, s.start_time_us), 'tcp_seq', exact.length ? TCP_SEQ_EXACT : RULE_CONFIDENCE.tcp_seq]);
      }
      out.push([appParent, 'traceparent']);
      return out;
    }
    out.push([appParent, 'traceparent']);
    const servers = (procs.get(procKey(s))?.servers ?? []).filter((srv) => inside(s, srv));
    if (servers.length === 0) return out;
    const x = s.x_request_id_req;
    if (x) out.push([latest(servers.filter((srv) => srv.x_request_id_req === x || srv.x_request_id_resp === x)), 'x_request_id']);
    const byResponse = s.syscall_trace_id_resp !== 0 ? latest(servers.filter((srv) => srv.syscall_trace_id_resp === s.syscall_trace_id_resp)) : undefined;
    const go = goroutineParent(s, servers, byContent);
    if (go) {
      out.push([byResponse, 'syscall_response'], go);
      return out;
    }
    // Two server spans of one thread both containing the call: an event loop serving requests
    // concurrently. What such a thread last received may belong to any of them (nginx writes one
    // request's upstream call right after reading another's request or reply), so neither the chain
    // of request-side ids nor the thread says which one made the call: no guess.
    const same = s.tid !== 0 ? servers.filter((srv) => srv.tid === s.tid || srv.resp_tid === s.tid) : [];
    if (same.length > 1) {
      out.push(...sharedLoop(byResponse, byContent(s, servers)));
      // Last on a shared loop: a request matched by learned order and delay (functions/query/timing.ts).
      const t = evidence.timing?.get(s.span_id);
      if (t) out.push([same.find((srv) => srv.span_id === t.parent), 'timing', t.confidence]);
      return out;
    }
    out.push([byResponse, 'syscall_response']);
    const back = handbackOf(s);
    if (back && inside(s, back[0])) out.push([back[0], 'handback', back[1]]);
    // (On a shared loop above byHandoff could not hold: the calling thread serves other requests.)
    if (s.handoff_trace_id) {
      const h = byHandoff(s, servers, procs.get(procKey(s))?.clients ?? []);
      out.push([h?.[0], 'handoff', h?.[1]]);
    }
    if (s.syscall_trace_id_req !== 0) out.push([latest(servers.filter((srv) => chainOf(srv).has(s.syscall_trace_id_req))), 'syscall_chain']);
    if (same.length === 1) out.push([same[0], 'thread']);
    return out;
  };

  /**
   * A call on a thread serving several requests at once: the response-side id, then what the request
   * said (an id of exactly one open request reappears in the call: `/orders/17` → `/stock/17`; an id
   * two open requests share says nothing). When the two name different requests, the content wins:
   * a loop that reads every ready socket before running the tasks they woke (Python asyncio's
   * selector loop) writes one request's response right after reading another request's reply, so
   * the response id then names the wrong request, while the call's own resource still names its own.
   */
  const sharedLoop = (response: T | undefined, content: T | undefined): Candidate[] =>
    response && content && response !== content
      ? [[content, 'content']]
      : [
          [response, 'syscall_response'],
          [content, 'content'],
        ];

  for (const s of [...spans].sort(byStart)) {
    for (const [p, rule, c] of candidates(s)) {
      const confidence = c ?? RULE_CONFIDENCE[rule];
      // Too weak: try the next rule (they are in falling order, so this mostly leaves it unattached).
      if (p && p !== s && confidence >= o.minConfidence && !wouldCycle(s.span_id, p.span_id)) {
        links.set(s.span_id, { parent: p.span_id, rule, confidence });
        break;
      }
    }
  }
  return placeNetHops(all, links, { ...o, confidence: RULE_CONFIDENCE.net_hop });
}

/** The ids of the tree holding `seed`: its root and all the root's descendants. */
export function treeOf(seed: string, links: ReadonlyMap<string, Link>, ids: Iterable<string>): Set<string> {
  const children = new Map<string, string[]>();
  for (const id of ids) {
    const l = links.get(id);
    if (!l) continue;
    const c = children.get(l.parent);
    if (c) c.push(id);
    else children.set(l.parent, [id]);
  }
  let root = seed;
  for (let i = 0, p = links.get(root); p && i < 100_000; i++, p = links.get(root)) root = p.parent;
  const out = new Set<string>([root]);
  const stack = [root];
  while (stack.length) {
    for (const c of children.get(stack.pop() as string) ?? []) {
      if (!out.has(c)) {
        out.add(c);
        stack.push(c);
      }
    }
  }
  return out;
}

function rootOf(id: string, links: ReadonlyMap<string, Link>): string {
  let root = id;
  for (let i = 0, p = links.get(root); p && i < 100_000; i++, p = links.get(root)) root = p.parent;
  return root;
}

/**
 * Members of the seed's trace: the seed's tree, plus the trees of spans sharing an application trace
 * id with it (an instrumented service whose spans could not be tied in by a rule still belongs).
 */
function members<T extends AsmSpan>(seed: string, links: ReadonlyMap<string, Link>, set: ReadonlyMap<string, T>): Set<string> {
  const tree = treeOf(seed, links, set.keys());
  const traceIds = new Set<string>();
  for (const id of tree) {
    const t = set.get(id)?.trace_id;
    if (t) traceIds.add(t);
  }
  if (traceIds.size === 0) return tree;
  for (const [id, s] of set) {
    if (tree.has(id) || !s.trace_id || !traceIds.has(s.trace_id)) continue;
    for (const m of treeOf(rootOf(id, links), links, set.keys())) tree.add(m);
  }
  return tree;
}

/**
 * Assemble the trace holding `seedSpanId`. Returns undefined when the span does not exist.
 * Cost: one lookup plus one query per search round (usually 3–6 rounds).
 */
export async function assembleTrace<T extends AsmSpan>(source: SpanSource<T>, seedSpanId: string, options: Partial<AssembleOptions> = {}): Promise<AssembledTrace<T> | undefined> {
  const o = { ...DEFAULT_ASSEMBLE_OPTIONS, ...options };
  const seed = await source.bySpanId(seedSpanId);
  if (!seed) return undefined;
  let window: TimeWindow = { from: seed.start_time_us - o.windowUs, to: Math.max(seed.end_time_us, seed.start_time_us) + o.windowUs };
  const set = new Map<string, T>([[seed.span_id, seed]]);
  let expanded = new Set<string>();
  let asked: Asked = { sys: new Set(), seq: new Set(), xrid: new Set(), trace: new Set(), udp: new Set() };
  let iterations = 0;
  let truncated = false;
  let wide = false;
  // `timing` links decided on samples of loop threads (one sample per thread per assembly).
  const timing = new Map<string, Link>();
  const sampled = new Set<string>();
  const relink = (): Map<string, Link> => linkParents([...set.values()], o, { timing });
  /** Sample the loop threads holding unattached calls of the trace; true when a new link may follow. */
  const sampleLoops = async (): Promise<boolean> => {
    if (!o.timing || !source.sample) return false;
    let found = false;
    for (const [k, [probe, lo, hi]] of loopOrphans(set, links, members(seed.span_id, links, set))) {
      if (sampled.has(k)) continue;
      sampled.add(k);
      const w = { from: lo - TIMING_SAMPLE_MARGIN_US, to: hi + TIMING_SAMPLE_MARGIN_US };
      const rows = await source.sample(probe, w, TIMING_SAMPLE_LIMIT);
      // Ordered by start: a full sample lost only its tail; spans at its last start may be cut.
      const to = rows.length >= TIMING_SAMPLE_LIMIT ? rows[rows.length - 1].start_time_us - 1 : w.to;
      const base = linkParents(rows, { ...o, timing: false });
      for (const [id, l] of timingLinks({ spans: rows, from: w.from, to }, base, RULE_CONFIDENCE.timing)) {
        if (!timing.has(id)) {
          timing.set(id, l);
          found = true;
        }
      }
    }
    return found;
  };
  let links = relink();
  while (iterations < o.maxIterations && !truncated) {
    const keys = emptyKeys();
    for (const id of members(seed.span_id, links, set)) {
      if (expanded.has(id)) continue;
      expanded.add(id);
      addKeys(keys, set.get(id) as T, asked, links.get(id), o.descriptorOf);
    }
    let added = 0;
    if (!keysEmpty(keys)) {
      iterations++;
      const rows = await source.find(keys, window, o.maxSpans + 1);
      for (const r of rows) {
        if (set.has(r.span_id)) continue;
        if (set.size >= o.maxSpans) {
          truncated = true;
          break;
        }
        set.set(r.span_id, r);
        added++;
      }
    }
    if (added > 0) {
      links = relink();
      continue;
    }
    if (await sampleLoops()) {
      links = relink();
      continue;
    }
    // Converged in the short window. Search once more around the trace's whole extent with the wide
    // window (asking every key again) when it may go on beyond the short one: it reaches near an
    // edge, or its root is a call made by a thread that was serving something (a parent is missing).
    if (wide) break;
    let lo = Infinity;
    let hi = -Infinity;
    for (const id of members(seed.span_id, links, set)) {
      const m = set.get(id) as T;
      lo = Math.min(lo, m.start_time_us);
      hi = Math.max(hi, m.end_time_us, m.start_time_us);
    }
    const root = set.get(rootOf(seed.span_id, links)) as T;
    const orphanCall = root.signal_source === 'ebpf' && root.side === 'client' && root.syscall_trace_id_req !== 0;
    if (!orphanCall && lo - window.from >= o.windowUs / 2 && window.to - hi >= o.windowUs / 2) break;
    wide = true;
    window = { from: lo - o.wideWindowUs, to: hi + o.wideWindowUs };
    expanded = new Set();
    asked = { sys: new Set(), seq: new Set(), xrid: new Set(), trace: new Set(), udp: new Set() };
  }
  const ids = members(seed.span_id, links, set);
  return { ...order(ids, links, set), iterations, fetched: set.size, truncated };
}

/** Parents before children (depth-first), roots and siblings by start time. */
function order<T extends AsmSpan>(ids: Set<string>, links: ReadonlyMap<string, Link>, set: ReadonlyMap<string, T>): { trace_id: string; spans: AssembledSpan<T>[] } {
  const spans = [...ids].map((id) => set.get(id) as T).sort(byStart);
  const children = new Map<string, T[]>();
  const roots: T[] = [];
  for (const s of spans) {
    const l = links.get(s.span_id);
    if (l && ids.has(l.parent)) {
      const c = children.get(l.parent);
      if (c) c.push(s);
      else children.set(l.parent, [s]);
    } else roots.push(s);
  }
  const out: AssembledSpan<T>[] = [];
  const visit = (s: T, depth: number): void => {
    const l = links.get(s.span_id);
    const linked = l && ids.has(l.parent) ? l : undefined;
    out.push({ span: s, parent_id: linked?.parent ?? null, rule: linked?.rule ?? null, confidence: linked?.confidence ?? null, depth });
    for (const c of children.get(s.span_id) ?? []) visit(c, depth + 1);
  };
  for (const r of roots) visit(r, 0);
  const withTrace = out.find((s) => s.span.trace_id !== '');
  return { trace_id: withTrace?.span.trace_id ?? derivedTraceId(roots[0]?.span_id ?? ''), spans: out };
}

/** An in-memory {@link SpanSource} (tests, small tools). */
export class ArraySpanSource<T extends AsmSpan> implements SpanSource<T> {
  queries = 0;
  constructor(private readonly spans: readonly T[]) {}
  bySpanId(spanId: string): Promise<T | undefined> {
    return Promise.resolve(this.spans.find((s) => s.span_id === spanId));
  }
  find(keys: SearchKeys, window: TimeWindow, limit: number): Promise<T[]> {
    this.queries++;
    return Promise.resolve(this.spans.filter((s) => matchesKeys(s, keys, window)).slice(0, limit));
  }
  sample(p: ThreadProbe, window: TimeWindow, limit: number): Promise<T[]> {
    this.queries++;
    const l = this.spans.filter((s) => s.signal_source === 'ebpf' && s.agent_id === p.agent_id && s.pid === p.pid && s.tid === p.tid && s.start_time_us >= window.from && s.start_time_us <= window.to);
    return Promise.resolve(l.sort(byStart).slice(0, limit));
  }
}

/**
 * The `timing` rule (issue 15): time evidence learned from the data, for the calls of an event loop
 * that no exact rule attaches (a call answered before the loop answers its request, whose resource
 * carries nothing of the request: a constant `/stock`, a health check, a queue poll).
 *
 * What it learns, per loop thread, destination (protocol and port), caller endpoint (the server
 * span's protocol, port and resource shape) and call shape (the call's resource with id tokens
 * masked and the query dropped), from the calls the exact rules linked ({@link TIMING_ANCHOR_RULES}):
 * - that the endpoint's calls to the destination leave in the order the loop read their requests
 *   (FIFO: the linked calls, by start, have parents in non-decreasing order of request read). A
 *   Node.js handler that calls right after its request was read queues the call on the agent's one
 *   FIFO per destination, so it holds; a call made after another call's reply (the second of a
 *   sequence) leaves in reply order, which the check finds out of order under concurrency, and then
 *   the endpoint's calls to that destination are not used;
 * - that each request makes a call of the shape at most once (no parent holds two linked ones);
 * - the delay from the parent's request read to the call's start (its range over the samples of the
 *   shape when there are {@link TIMING_MIN_SAMPLES}, else over the endpoint's calls to the destination).
 * At least {@link TIMING_MIN_SAMPLES} exact links of the endpoint to the destination are needed.
 *
 * The decision, between two consecutive linked calls of the shape (anchors X → request P, Y → request
 * Q): the unattached calls of the shape sent between X and Y must belong, in order, to the endpoint's
 * requests read between P and Q that have no call of the shape yet. Only when the two counts are
 * equal and every pair fits (the call lies inside the request, its delay inside the learned range) is
 * every call of the segment linked; otherwise none is. A call before the first anchor or after the
 * last stays unattached. The sample must be complete between the anchors: every span of the loop
 * thread starting in the window (the source's `sample`, ordered by start so a truncated sample loses
 * only its tail), which is why the rule is not decided from the spans a trace search happened to
 * fetch (those lack other requests' calls, and a missing call and a missing request would balance
 * the count).
 */
import type { AsmSpan } from './span.ts';
import { idTokens, inside } from './links.ts';
import type { Link, ParentRule } from './links.ts';

/** Links the timing model learns from: evidence that names the request, not a guess by time. */
export const TIMING_ANCHOR_RULES: ReadonlySet<ParentRule> = new Set<ParentRule>(['syscall_response', 'syscall_chain', 'content', 'traceparent', 'x_request_id', 'thread']);

/** Linked calls of a shape needed before the shape is used (its delay range and FIFO order learned). */
export const TIMING_MIN_SAMPLES = 20;

/** Resource with id-like tokens masked and the query dropped: `/orders/1017?x=1` → `/orders/{id}`. */
export function resourceShape(resource: string | undefined): string {
  const path = (resource ?? '').split('?')[0];
  const ids = new Set(idTokens(path));
  return path
    .split(/([\s/;,:#]+)/)
    .map((t) => (ids.has(t) ? '{id}' : t))
    .join('');
}

/** A server span's endpoint: protocol, port, resource shape. */
export const endpointOf = (s: AsmSpan): string => `${s.l7_protocol} :${s.server_port} ${resourceShape(s.request_resource)}`;

/** What a timing decision needs to know about the window the sample covers. */
export interface TimingSample<T extends AsmSpan> {
  /** Every span of the thread(s) starting in [from, to] (a truncated sample: `to` = its last start). */
  spans: readonly T[];
  from: number;
  to: number;
}

/** Learned facts of one (thread, call shape), for tests and the docs' figures. */
export interface ShapeModel {
  shape: string;
  /** The caller endpoint (server span shape) this was learned for. */
  endpoint: string;
  /** Exact links of this shape, and of every shape the endpoint sends to its destination. */
  samples: number;
  pooled: number;
  delay: [number, number];
  fifo: boolean;
  once: boolean;
}

/**
 * The timing links of a complete sample: per call span id, the link (rule `timing`, confidence
 * `confidence`). `base` are the links the other rules made on the same sample. `models` (optional)
 * receives what was learned per shape.
 */
export function timingLinks<T extends AsmSpan>(sample: TimingSample<T>, base: ReadonlyMap<string, Link>, confidence: number, models?: ShapeModel[]): Map<string, Link> {
  const out = new Map<string, Link>();
  const byId = new Map(sample.spans.map((s) => [s.span_id, s]));
  const threads = new Map<string, { servers: T[]; calls: Map<string, T[]> }>();
  for (const s of sample.spans) {
    if (s.signal_source !== 'ebpf' || s.tid === 0 || (s.coroutine_id ?? 0) !== 0 || s.start_time_us < sample.from || s.start_time_us > sample.to) continue;
    const k = `${s.agent_id}|${s.pid}|${s.tid}`;
    let t = threads.get(k);
    if (!t) threads.set(k, (t = { servers: [], calls: new Map() }));
    if (s.side === 'server') t.servers.push(s);
    else {
      const shape = endpointOf(s); // a call's shape: its destination's protocol, port and resource shape
      const l = t.calls.get(shape);
      if (l) l.push(s);
      else t.calls.set(shape, [s]);
    }
  }
  const byStart = (a: T, b: T): number => a.start_time_us - b.start_time_us || (a.span_id < b.span_id ? -1 : 1);
  // Each server span's endpoint is asked for once per linked call and per endpoint: shape it once.
  const endpoints = new Map<T, string>();
  const ep = (s: T): string => {
    let e = endpoints.get(s);
    if (e === undefined) endpoints.set(s, (e = endpointOf(s)));
    return e;
  };
  for (const t of threads.values()) {
    t.servers.sort(byStart);
    // Linked calls whose parent is a request read by this thread.
    const parentOf = (c: T): T | undefined => {
      const l = base.get(c.span_id);
      const p = l ? byId.get(l.parent) : undefined;
      return p && p.side === 'server' && p.tid === c.tid ? p : undefined;
    };
    // One destination's calls share one queue (Node's agent keeps one FIFO per host:port): order is
    // learned per destination, over every shape sent to it; the matching is per shape.
    const dests = new Map<string, string[]>();
    for (const shape of t.calls.keys()) {
      const d = shape.slice(0, shape.indexOf(' ', shape.indexOf(':')));
      dests.set(d, [...(dests.get(d) ?? []), shape]);
    }
    for (const shapes of dests.values()) {
      const all = shapes.flatMap((sh) => t.calls.get(sh) as T[]).sort(byStart);
      const linkedAll = all.filter((c) => parentOf(c));
      // Per caller endpoint: a handler that calls right after its request was read sends in read
      // order; one that calls after another call's reply (the second of a sequence) does not.
      for (const endpoint of new Set(linkedAll.map((c) => ep(parentOf(c) as T)))) {
        const linked = linkedAll.filter((c) => ep(parentOf(c) as T) === endpoint);
        const exact = linked.filter((c) => TIMING_ANCHOR_RULES.has((base.get(c.span_id) as Link).rule));
        // FIFO: parents in order of request read (a request's own calls share it).
        let fifo = true;
        for (let i = 1; i < linked.length; i++) if ((parentOf(linked[i]) as T).start_time_us < (parentOf(linked[i - 1]) as T).start_time_us) fifo = false;
        const pooled = exact.map((c) => c.start_time_us - (parentOf(c) as T).start_time_us);
        const requests = t.servers.filter((s) => ep(s) === endpoint);
        for (const shape of shapes) {
          const calls = (t.calls.get(shape) as T[]).sort(byStart);
          const inShape = new Set(calls);
          const mine = linked.filter((c) => inShape.has(c));
          const anchors = exact.filter((c) => inShape.has(c));
          const parents = mine.map((c) => parentOf(c) as T);
          // Once per request: no request holds two linked calls of the shape.
          const once = new Set(parents.map((p) => p.span_id)).size === parents.length;
          const own = anchors.map((c) => c.start_time_us - (parentOf(c) as T).start_time_us);
          const delays = own.length >= TIMING_MIN_SAMPLES ? own : pooled;
          const lo = delays.length ? Math.min(...delays) : 0;
          const hi = delays.length ? Math.max(...delays) : 0;
          models?.push({ shape, endpoint, samples: anchors.length, pooled: exact.length, delay: [lo, hi], fifo, once });
          if (exact.length < TIMING_MIN_SAMPLES || !fifo || !once || anchors.length < 2) continue;
          const taken = new Set(parents.map((p) => p.span_id));
          for (let i = 1; i < anchors.length; i++) {
            const [x, y] = [anchors[i - 1], anchors[i]];
            const [p, q] = [parentOf(x) as T, parentOf(y) as T];
            // Unattached calls of the shape between the anchors (another endpoint's among them only
            // make the counts differ).
            const open = calls.filter((c) => c.start_time_us > x.start_time_us && c.start_time_us < y.start_time_us && !base.has(c.span_id));
            if (open.length === 0) continue;
            const reqs = requests.filter((r) => r.start_time_us > p.start_time_us && r.start_time_us < q.start_time_us && !taken.has(r.span_id));
            if (reqs.length !== open.length) continue;
            const fits = open.every((c, j) => {
              const d = c.start_time_us - reqs[j].start_time_us;
              return inside(c, reqs[j]) && d >= lo && d <= hi;
            });
            if (fits) open.forEach((c, j) => out.set(c.span_id, { parent: reqs[j].span_id, rule: 'timing', confidence }));
          }
        }
      }
    }
  }
  return out;
}

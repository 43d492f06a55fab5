// Strict judging of header-free traces against ground truth, shared by the whole-system fidelity
// tests (event-loop.test.ts, asyncio.test.ts). The ground truth is what each test's services put in
// their paths (the request number), never evidence assembly is given.
// Strict: a trace counts only if it holds exactly the request's spans (every hop's client and server
// side), every parent is right and every child lies inside its parent. Each link is scored
// right / unattached / wrong / missing (span never stored) per hop and rule, and printed; a trace whose
// links are all right but that still fails is printed with why (spans of other requests in it, a child
// outside its parent).
import { expect } from 'vitest';
import type { SpanJson } from '../../functions/query/span.ts';

export type Outcome = 'right' | 'unattached' | 'wrong' | 'missing';

/** One request's expected spans as [name, key] (key: `${side} ${port} ${resource}`) and links as [hop, child, parent]. */
export interface Truth {
  spans: Array<[string, string]>;
  links: Array<[string, string, string]>;
}

/** One request to judge: its label (`seq/17`), the variant it belongs to, and its truth; `root` names its root span. */
export interface Case {
  label: string;
  variant: string;
  truth: Truth;
  root: string;
}

export interface Score {
  traces: number;
  strict: number;
  links: Record<Outcome, number>;
  /** `${variant} ${hop} [rule]` → outcome counts. */
  breakdown: Map<string, Record<Outcome, number>>;
}

export interface StoredSpan {
  span_id: string;
}

/**
 * Score every case: `stored` maps a span key to the stored span, `traceOf` assembles the trace holding
 * a span id (through the query API). Prints the summary and per-link breakdown under `prefix, label`.
 */
export async function score(prefix: string, label: string, cases: readonly Case[], stored: ReadonlyMap<string, StoredSpan>, traceOf: (spanId: string) => Promise<SpanJson[]>): Promise<Score> {
  const out: Score = { traces: 0, strict: 0, links: { right: 0, unattached: 0, wrong: 0, missing: 0 }, breakdown: new Map() };
  const cache = new Map<string, SpanJson[]>();
  const trace = async (spanId: string): Promise<SpanJson[]> => {
    let t = cache.get(spanId);
    if (!t) {
      t = await traceOf(spanId);
      for (const s of t) cache.set(s.span_id, t);
    }
    return t;
  };
  for (const k of cases) {
    out.traces++;
    const tr = k.truth;
    const ids = new Map(tr.spans.map(([name, key]) => [name, stored.get(key)?.span_id]));
    const root = ids.get(k.root);
    const spans = root ? await trace(root) : [];
    const inTrace = new Map(spans.map((s) => [s.span_id, s]));
    let strict = root !== undefined && spans.length === tr.spans.length && tr.spans.every(([name]) => inTrace.has(ids.get(name) ?? ''));
    // Why a trace whose links are all right still is not strict: other spans in it, or a child outside its parent.
    const why: string[] = [];
    let allRight = true;
    if (root !== undefined && !strict) {
      const mine = new Set(tr.spans.map(([name]) => ids.get(name)));
      const foreign = spans.filter((x) => !mine.has(x.span_id));
      why.push(`${spans.length} spans of ${tr.spans.length} expected${foreign.length ? `; not of this request: ${foreign.map((x) => `${x.side} :${x.server_port} ${x.request_resource} [${x.parent_rule}]`).join(', ')}` : ''}`);
    }
    for (const [hop, child, parent] of tr.links) {
      const c = ids.get(child);
      const p = ids.get(parent);
      let outcome: Outcome;
      let rule = '-';
      if (!c || !p) outcome = 'missing';
      else {
        // The child's parent as assembly decided it: in the root's trace, or in its own.
        const cs = inTrace.get(c) ?? (await trace(c)).find((s) => s.span_id === c);
        rule = cs?.parent_rule ?? '-';
        outcome = !cs?.parent_id ? 'unattached' : cs.parent_id === p ? 'right' : 'wrong';
        const ps = inTrace.get(p);
        if (cs && ps && outcome === 'right' && (cs.start_time_us < ps.start_time_us - 1000 || cs.end_time_us > ps.end_time_us + 1000)) {
          strict = false;
          why.push(`${hop} outside its parent: ${cs.start_time_us - ps.start_time_us} µs after its start, ${cs.end_time_us - ps.end_time_us} µs after its end`);
        }
        if (outcome === 'wrong') process.stderr.write(`${prefix} (${label}): WRONG ${k.label} ${hop}: parent ${cs?.parent_id} [${rule} ${cs?.parent_confidence}] instead of ${p}\n`);
      }
      if (outcome !== 'right') {
        strict = false;
        allRight = false;
      }
      out.links[outcome]++;
      const key = `${k.variant} ${hop} [${rule}]`;
      const b = out.breakdown.get(key) ?? { right: 0, unattached: 0, wrong: 0, missing: 0 };
      b[outcome]++;
      out.breakdown.set(key, b);
    }
    if (strict) out.strict++;
    else if (allRight) process.stderr.write(`${prefix} (${label}): NOT STRICT ${k.label}: ${why.join('; ')}\n`);
  }
  const lines = [...out.breakdown].sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, b]) => `  ${k.padEnd(40)} right ${b.right}  unattached ${b.unattached}  wrong ${b.wrong}  missing ${b.missing}`);
  const total = linkCount(out);
  process.stderr.write(
    `${prefix}, ${label}: ${out.strict}/${out.traces} traces strictly right (${((100 * out.strict) / out.traces).toFixed(1)}%); ` +
      `links: ${out.links.right} right, ${out.links.unattached} unattached, ${out.links.wrong} wrong (${((100 * out.links.wrong) / total).toFixed(2)}%), ${out.links.missing} missing of ${total}\n${lines.join('\n')}\n`,
  );
  return out;
}

export const linkCount = (s: Score): number => Object.values(s.links).reduce((a, b) => a + b, 0);
export const wrongShare = (s: Score): number => s.links.wrong / linkCount(s);

/**
 * What a concurrent run must show: wrong links at most 0.1% with and without the content rule, no
 * span lost, at least `strictFloor` of traces strictly right, and (without content) at least
 * `baseRightFloor` of links right.
 */
export function expectConcurrent(s: Score, base: Score, strictFloor: number, baseRightFloor: number): void {
  expectWhole(s, strictFloor);
  expect(wrongShare(base), 'wrong links without content').toBeLessThanOrEqual(0.001);
  expect(base.links.right / linkCount(base), 'right links without content').toBeGreaterThanOrEqual(baseRightFloor);
}

/** What the full rules must show: wrong links at most 0.1%, no span lost, at least `strictFloor` of traces strictly right. */
export function expectWhole(s: Score, strictFloor: number): void {
  expect(wrongShare(s), 'wrong links').toBeLessThanOrEqual(0.001);
  expect(s.links.missing, 'spans never stored').toBe(0);
  expect(s.strict / s.traces, 'strict traces').toBeGreaterThanOrEqual(strictFloor);
}

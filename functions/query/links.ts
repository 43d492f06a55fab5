/**
 * What a parent link is, and the time tests every rule uses, shared by trace assembly (assemble.ts)
 * and the modules it calls (timing.ts, net-hops.ts), so that those need not import assemble.ts back.
 */
import type { AsmSpan } from './span.ts';

export type ParentRule =
  | 'tcp_seq'
  | 'udp_request_id'
  | 'traceparent'
  | 'otel_parent'
  | 'x_request_id'
  | 'syscall_response'
  | 'syscall_chain'
  | 'content'
  | 'thread'
  | 'handoff'
  | 'handback'
  | 'goroutine'
  | 'timing'
  | 'net_hop';

export interface Link {
  parent: string;
  rule: ParentRule;
  /** 0–1: the rule's confidence (RULE_CONFIDENCE in assemble.ts, or TCP_SEQ_EXACT). */
  confidence: number;
}

/**
 * The id-like tokens of a request resource (path segments, query values, words of a command): those
 * with two digits or more, or eight characters or more with a digit — `17`, `a3f9c2d1`, a UUID — and
 * not `v1`, `api`, `a`, which many unrelated requests share.
 */
export function idTokens(resource: string | undefined): string[] {
  if (!resource) return [];
  const out: string[] = [];
  for (const t of resource.split(/[\s/?&=;,:#]+/)) {
    if (t.length > 128) continue;
    const digits = t.replace(/\D/g, '').length;
    if ((digits >= 2 || (digits >= 1 && t.length >= 8)) && !out.includes(t)) out.push(t);
  }
  return out;
}

/** A client span without a response (timeout) has end == start: only its start can be checked. */
export function answered(s: AsmSpan): boolean {
  return s.end_time_us > s.start_time_us;
}

/** `c` lies within `s` in time (the client call happened while the server was serving). */
export function inside(c: AsmSpan, s: AsmSpan): boolean {
  if (c.start_time_us < s.start_time_us) return false;
  return answered(c) ? c.end_time_us <= s.end_time_us : c.start_time_us <= s.end_time_us;
}

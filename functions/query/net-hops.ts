/**
 * Network spans in a trace (issue 19). A network span (`signal_source = 'net'`) is one exchange as
 * an interface saw it: its request packet out towards the server, its response packet back. It
 * carries the request's TCP sequence, so it belongs to the client span and server span of the
 * same sequence. Assembly links process spans without them ({@link withoutNetSpans}), then
 * {@link placeNetHops} puts them in between:
 *
 *   client span → net span (first interface the request crossed) → … → net span (last) → server span
 *
 * ordered by when each interface saw the request (the request crosses the client's interface first).
 * A net span with no client span of its sequence (the caller was not captured) still goes above the
 * server span. {@link hopSplits} then divides a client span's time into client (process → first
 * interface and back), network (first interface → server process and back, less the server span)
 * and server time.
 */
import type { AsmSpan } from './span.ts';
import { descriptorFor } from '../../agent/protocols/descriptors.ts';
import type { ProtocolDescriptor } from '../../agent/protocols/parser.ts';
import type { Link } from './links.ts';

export const isNetSpan = (s: AsmSpan): boolean => (s.signal_source as string) === 'net';

/** The spans the process rules link (every span but the network ones). */
export function withoutNetSpans<T extends AsmSpan>(spans: readonly T[]): readonly T[] {
  return spans.some(isNetSpan) ? spans.filter((s) => !isNetSpan(s)) : spans;
}

export interface NetHopOptions {
  networkDelayUs: number;
  clockOffsetUs: number;
  minConfidence: number;
  /** The `net_hop` rule's confidence (RULE_CONFIDENCE in assemble.ts, which calls this). */
  confidence: number;
  /** Descriptor by protocol name (default: the built-in table). */
  descriptorOf?: (l7Protocol: string) => ProtocolDescriptor | undefined;
}


type DescriptorOf = (l7Protocol: string) => ProtocolDescriptor | undefined;

function sameProtocol(a: string, b: string, of: DescriptorOf): boolean {
  if (a === b) return true;
  const d = of(a);
  return d !== undefined && d === of(b);
}

function seqs(s: AsmSpan, of: DescriptorOf): number[] {
  return (of(s.l7_protocol)?.sequenceSlack ?? [0]).map((d) => (s.req_tcp_seq + d) >>> 0);
}

/**
 * Adds the links of the network spans in `spans` to `links` (made by the process rules without
 * them) and moves each server span below the last network span of its exchange. Returns `links`.
 */
export function placeNetHops<T extends AsmSpan, L extends Link>(spans: readonly T[], links: Map<string, L>, o: NetHopOptions): Map<string, L> {
  const conf = o.confidence;
  const of = o.descriptorOf ?? descriptorFor;
  const hop = (parent: string): L => ({ parent, rule: 'net_hop', confidence: conf }) as L;
  if (conf < o.minConfidence) return links;
  const netBySeq = new Map<number, T[]>();
  for (const s of spans) {
    if (!isNetSpan(s) || s.side !== 'client' || s.l4_protocol !== 'tcp' || s.req_tcp_seq === 0) continue;
    const l = netBySeq.get(s.req_tcp_seq);
    if (l) l.push(s);
    else netBySeq.set(s.req_tcp_seq, [s]);
  }
  if (netBySeq.size === 0) return links;
  const claimed = new Set<string>();
  const within = (net: T, s: T): boolean => {
    const tol = o.networkDelayUs + (net.agent_id !== s.agent_id ? o.clockOffsetUs : 0);
    const end = s.end_time_us > s.start_time_us ? s.end_time_us : s.start_time_us;
    return net.start_time_us >= s.start_time_us - tol && net.start_time_us <= end + tol && sameProtocol(net.l7_protocol, s.l7_protocol, of);
  };
  const hopsOf = (s: T): T[] =>
    seqs(s, of)
      .flatMap((q) => netBySeq.get(q) ?? [])
      .filter((n) => !claimed.has(n.span_id) && within(n, s))
      .sort((a, b) => a.start_time_us - b.start_time_us || (a.span_id < b.span_id ? -1 : 1));
  const chain = (top: T | undefined, hops: T[]): T => {
    let parent = top;
    for (const n of hops) {
      claimed.add(n.span_id);
      if (parent) links.set(n.span_id, hop(parent.span_id));
      parent = n;
    }
    return hops[hops.length - 1];
  };
  const byId = new Map(spans.map((s) => [s.span_id, s]));
  const ordered = [...spans].sort((a, b) => a.start_time_us - b.start_time_us);
  // Client spans first: their exchange's server spans then hang below the last hop.
  for (const c of ordered) {
    if (isNetSpan(c) || c.signal_source !== 'ebpf' || c.side !== 'client' || c.l4_protocol !== 'tcp' || c.req_tcp_seq === 0) continue;
    const hops = hopsOf(c);
    if (hops.length === 0) continue;
    const last = chain(c, hops);
    for (const s of ordered) {
      const l = links.get(s.span_id);
      if (l && l.parent === c.span_id && s.side === 'server' && s.signal_source === 'ebpf' && (l.rule === 'tcp_seq' || l.rule === 'udp_request_id')) {
        links.set(s.span_id, { ...l, parent: last.span_id });
      }
    }
  }
  // Server spans whose caller was not captured: the hops that carried their request go above them.
  for (const s of ordered) {
    if (isNetSpan(s) || s.signal_source !== 'ebpf' || s.side !== 'server' || s.req_tcp_seq === 0 || links.has(s.span_id)) continue;
    const hops = hopsOf(s);
    if (hops.length === 0) continue;
    const last = chain(undefined, hops);
    if (byId.has(last.span_id)) links.set(s.span_id, hop(last.span_id));
  }
  return links;
}

/** Where a client span's time went, µs (`server_us` null when the server span is not in the trace). */
export interface HopSplit {
  client_us: number;
  network_us: number;
  server_us: number | null;
}

interface Placed {
  span: AsmSpan;
  parent_id: string | null;
}

/** Per client span with network spans below it: the split of its duration. */
export function hopSplits(spans: readonly Placed[]): Map<string, HopSplit> {
  const children = new Map<string, AsmSpan[]>();
  for (const p of spans) {
    if (p.parent_id === null) continue;
    const l = children.get(p.parent_id);
    if (l) l.push(p.span);
    else children.set(p.parent_id, [p.span]);
  }
  const dur = (s: AsmSpan): number => Math.max(0, s.end_time_us - s.start_time_us);
  const out = new Map<string, HopSplit>();
  for (const { span: c } of spans) {
    if (isNetSpan(c) || c.side !== 'client') continue;
    const first = (children.get(c.span_id) ?? []).find(isNetSpan);
    if (!first) continue;
    // Down the chain of hops to the server span.
    let cur: AsmSpan = first;
    let server: AsmSpan | undefined;
    for (let i = 0; i < 64; i++) {
      const kids: AsmSpan[] = children.get(cur.span_id) ?? [];
      const nextNet = kids.find(isNetSpan);
      server = kids.find((k) => !isNetSpan(k) && k.side === 'server');
      if (server || !nextNet) break;
      cur = nextNet;
    }
    const client = Math.max(0, dur(c) - dur(first));
    out.set(c.span_id, server ? { client_us: client, network_us: Math.max(0, dur(first) - dur(server)), server_us: dur(server) } : { client_us: client, network_us: dur(first), server_us: null });
  }
  return out;
}

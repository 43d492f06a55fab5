/**
 * The allocation-free span builder (functions/span-builder) against the object-per-message builder
 * it replaced (span-builder.reference.ts): on randomised windows covering every pairing path —
 * serial FIFO, parallel ids (and ids reused), one-way requests, timeouts (DNS's 5 s and the window
 * end), several L7 messages in one read, unknown roles, attributes, unsorted and multi-part
 * batches, two agent runs in one slot, neighbours several slots away, sub-microsecond timestamps —
 * both must give identical rows, tombstones and stats.
 */
import { describe, expect, it } from 'vitest';
import { buildSpans } from '../../functions/span-builder/span-builder.ts';
import type { Batch, ParsedMessage } from '../../agent/shipping/batch.ts';
import type { L7Message } from '../../agent/protocols/parser.ts';
import { referenceBuildSpans } from './span-builder.reference.ts';
import { BASE_NS, BASE_SLOT, SLOT_SECONDS } from './fixtures.ts';

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    return s / 0x100000000;
  };
}

const SLOT_NS = BigInt(SLOT_SECONDS) * 1_000_000_000n;

function randomWindow(seed: number): { agentId: string; slot: number; prev: Batch[]; cur: Batch[]; next: Batch[] } {
  const r = rng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)];
  const protos = ['http1', 'redis', 'dns', 'http2', 'kafka', 'mqtt', 'mysql'];
  const sockets = 1 + Math.floor(r() * 12);
  const spanSlots = 1 + Math.floor(r() * 3); // neighbours up to 3 slots away
  const bySlot = new Map<number, ParsedMessage[]>();
  for (let s = 0; s < sockets; s++) {
    const role = pick(['client', 'server', 'unknown'] as const);
    const socketId = r() < 0.2 ? 2 ** 40 + s : 7 + s * 3; // some ids above 2^32
    const n = Math.floor(r() * 40);
    for (let i = 0; i < n; i++) {
      const slotOff = Math.floor(r() * (2 * spanSlots + 1)) - spanSlots;
      // Sub-microsecond offsets; some identical timestamps to exercise the capture-order tie-break.
      const off = r() < 0.1 ? 1_000_000_000n : BigInt(Math.floor(r() * Number(SLOT_NS)));
      const ts = BASE_NS + BigInt(slotOff) * SLOT_NS + off;
      const l7: L7Message[] = [];
      const k = r() < 0.1 ? 0 : r() < 0.8 ? 1 : 2 + Math.floor(r() * 3);
      for (let j = 0; j < k; j++) {
        const proto = pick(protos);
        const request = r() < 0.5;
        const m: L7Message = { l7Protocol: proto, msgType: request ? 'request' : 'response' };
        if (proto !== 'http1' && proto !== 'redis' && r() < 0.9) m.requestId = Math.floor(r() * 4);
        if (proto === 'mysql' && r() < 0.5) m.requestId = 3;
        if (request) {
          m.requestType = pick(['GET', 'POST', 'SET']);
          if (r() < 0.5) m.requestResource = `/r/${i}`;
          if (r() < 0.3) m.requestDomain = 'svc';
          if (r() < 0.3) m.endpoint = '/r';
          if (r() < 0.3) m.requestLength = 10 + i;
          if (r() < 0.1) m.oneWay = true;
        } else {
          m.responseStatus = pick(['ok', 'client_error', 'server_error', 'unknown'] as const);
          if (r() < 0.7) m.responseCode = pick([200, 404, 500, 0]);
          if (r() < 0.2) m.responseException = 'boom';
          if (r() < 0.3) m.responseLength = 5 + i;
        }
        if (r() < 0.3) m.traceId = `t${i}`;
        if (r() < 0.2) m.spanId = `s${i}`;
        if (r() < 0.1) m.parentSpanId = `p${i}`;
        if (r() < 0.2) m.xRequestId = `x${i}`;
        if (r() < 0.2) m.version = '1.1';
        if (r() < 0.2) m.attributes = { a: String(i), [request ? 'q' : 's']: 'v' };
        l7.push(m);
      }
      const direction = r() < 0.5 ? 'egress' : 'ingress';
      const msg: ParsedMessage = {
        tsNs: ts, enterNs: ts, exitNs: ts + 1000n, pid: 100 + s, tid: 200 + (i % 3), coroutineId: i % 2, processName: `p${s}`,
        syscall: direction === 'egress' ? 'write' : 'read', direction, socketId, family: 'ipv4', l4: proto4(l7), localIp: '10.0.0.1', localPort: 40000 + s,
        remoteIp: '10.0.0.2', remotePort: 80, role, tcpSeq: Math.floor(r() * 2 ** 32), syscallTraceId: i, bytes: 100 + i, payload: new Uint8Array(0), l7,
      };
      const slot = BASE_SLOT + slotOff;
      if (!bySlot.has(slot)) bySlot.set(slot, []);
      (bySlot.get(slot) as ParsedMessage[]).push(msg);
    }
  }
  const batches = new Map<number, Batch[]>();
  for (const [slot, msgs] of bySlot) {
    if (r() < 0.8) msgs.sort((a, b) => (a.tsNs < b.tsNs ? -1 : a.tsNs > b.tsNs ? 1 : 0)); // sometimes unsorted
    const parts: Batch[] = [];
    const nParts = 1 + Math.floor(r() * 3);
    const size = Math.ceil(msgs.length / nParts);
    for (let p = 0; p < nParts; p++) {
      // Two agent runs in one slot write the same part number with distinct `run`s.
      const twoRuns = r() < 0.2;
      parts.push({ version: 1, agentId: 'a', host: 'a', slot, slotSeconds: SLOT_SECONDS, part: twoRuns ? 0 : p, run: twoRuns ? 1000 + p : undefined, messages: msgs.slice(p * size, (p + 1) * size), processes: [], closed: [] });
    }
    batches.set(slot, parts.reverse()); // given in any order
  }
  const get = (from: number, to: number): Batch[] => {
    const out: Batch[] = [];
    for (let s = from; s <= to; s++) out.push(...(batches.get(s) ?? []));
    return out;
  };
  return { agentId: `agent-${seed % 5}`, slot: BASE_SLOT, prev: get(BASE_SLOT - spanSlots, BASE_SLOT - 1), cur: get(BASE_SLOT, BASE_SLOT), next: get(BASE_SLOT + 1, BASE_SLOT + spanSlots) };
}

function proto4(l7: L7Message[]): 'tcp' | 'udp' {
  return l7.some((m) => m.l7Protocol === 'dns') ? 'udp' : 'tcp';
}

describe('span builder: allocation-free path = reference builder', () => {
  it('gives identical rows, tombstones and stats on 400 random windows', () => {
    let rows = 0;
    const states = new Set<string>();
    for (let seed = 1; seed <= 400; seed++) {
      const w = randomWindow(seed);
      const opts = seed % 3 === 0 ? { timeoutsMs: { http1: 2_000 }, defaultTimeoutMs: 7_000 } : undefined;
      const fast = buildSpans(w, opts);
      const ref = referenceBuildSpans(w, opts);
      expect(fast, `seed ${seed}`).toEqual(ref);
      rows += fast.spans.length + fast.tombstones.length;
      for (const s of fast.spans) states.add(s.pair_state);
      if (fast.tombstones.length > 0) states.add('tombstone');
    }
    // The generator reaches every path.
    expect([...states].sort()).toEqual(['one_way', 'paired', 'request_only', 'response_only', 'tombstone']);
    expect(rows).toBeGreaterThan(10_000);
  });

  it('converts timestamps exactly at the edges (sub-µs, 2^53 ns, far future)', () => {
    for (const ts of [0n, 999n, 1000n, 2n ** 32n - 1n, 2n ** 32n, 2n ** 53n + 1n, BASE_NS + 999n, 4n * 10n ** 18n + 123_456_789n, 2n ** 62n + 7n, 2n ** 64n - 1n, -5_000_000n, 2n ** 64n + 5n]) {
      const l7req: L7Message = { l7Protocol: 'http1', msgType: 'request' };
      const l7resp: L7Message = { l7Protocol: 'http1', msgType: 'response', responseStatus: 'ok' };
      const m = (t: bigint, l7: L7Message, direction: 'egress' | 'ingress'): ParsedMessage => ({
        tsNs: t, enterNs: t, exitNs: t, pid: 1, tid: 1, coroutineId: 0, processName: 'p', syscall: 'write', direction, socketId: 5, family: 'ipv4', l4: 'tcp',
        localIp: 'a', localPort: 1, remoteIp: 'b', remotePort: 2, role: 'client', tcpSeq: 1, syscallTraceId: 0, bytes: 1, payload: new Uint8Array(0), l7: [l7],
      });
      const b: Batch = { version: 1, agentId: 'a', host: 'a', slot: 1, slotSeconds: 5, part: 0, messages: [m(ts, l7req, 'egress'), m(ts + 1500n, l7resp, 'ingress')], processes: [], closed: [] };
      const w = { agentId: 'a', slot: 1, prev: [], cur: [b], next: [] };
      expect(buildSpans(w), String(ts)).toEqual(referenceBuildSpans(w));
    }
  });
});

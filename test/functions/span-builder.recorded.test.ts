/**
 * Golden spans from *recorded* traffic: every protocol fixture recorded from a real server
 * (test/fixtures/protocols, the parsers' conformance corpus) is replayed through its built-in parser
 * as a client socket, cut into a batch, and paired by the span builder. The compact projection of
 * the spans is the golden file; the invariants below hold for every recording.
 */
import { describe, expect, it } from 'vitest';
import { BUILTIN_PARSERS } from '../../agent/protocols/builtins.ts';
import { loadAllFixtures, ParserSession } from '../../agent/protocols/fixtures.ts';
import type { Batch, ParsedMessage } from '../../agent/shipping/batch.ts';
import { buildSpans } from '../../functions/span-builder/span-builder.ts';
import { BASE_NS, BASE_SLOT, SLOT_SECONDS } from './fixtures.ts';

function parserFor(protocol: string) {
  return BUILTIN_PARSERS.find((p) => p.name === protocol || (protocol === 'grpc' && p.name === 'http2'));
}

describe('span builder on recorded protocol traffic', () => {
  it('pairs every recorded exchange of every protocol', async () => {
    const out: Record<string, unknown[]> = {};
    const fixtures = loadAllFixtures();
    expect(fixtures.length).toBeGreaterThan(10);
    for (const [n, f] of fixtures.entries()) {
      const parser = parserFor(f.protocol);
      if (!parser) continue;
      const session = new ParserSession(parser, 'client', f.transport);
      const seq = { egress: 1000, ingress: 5000 };
      const messages: ParsedMessage[] = [];
      f.chunks.forEach((c, i) => {
        const l7 = session.feed(c.dir, c.data) ?? [];
        const direction = c.dir === 'c2s' ? 'egress' : 'ingress';
        const ts = BASE_NS + BigInt(i + 1) * 1_000_000n;
        messages.push({
          tsNs: ts, enterNs: ts, exitNs: ts + 1000n, pid: 42, tid: 42, coroutineId: 0, processName: 'client', syscall: direction === 'egress' ? 'write' : 'read', direction,
          socketId: 100 + n, family: 'ipv4', l4: f.transport, localIp: '10.0.0.1', localPort: 40000, remoteIp: '10.0.0.2', remotePort: 8080, role: 'client',
          tcpSeq: f.transport === 'tcp' ? seq[direction] : 0, syscallTraceId: 0, bytes: c.data.length, payload: c.data, l7,
        });
        seq[direction] += c.data.length;
      });
      const batch: Batch = { version: 1, agentId: 'rec', host: 'rec', slot: BASE_SLOT, slotSeconds: SLOT_SECONDS, part: 0, messages, processes: [], closed: [] };
      const { spans } = buildSpans({ agentId: 'rec', slot: BASE_SLOT, prev: [], cur: [batch], next: [] });
      out[`${f.protocol}/${f.name}`] = spans.map((s) => [s.l7_protocol, s.pair_state, s.request_type, s.request_resource.slice(0, 60), s.response_status, s.response_code]);
      const requests = messages.flatMap((m) => m.l7).filter((l) => l.msgType === 'request').length;
      const responses = messages.flatMap((m) => m.l7).filter((l) => l.msgType === 'response').length;
      // Every request yields exactly one span; every response is used once.
      expect(spans.filter((s) => s.pair_state !== 'response_only').length, f.name).toBe(requests);
      expect(spans.filter((s) => s.pair_state === 'paired' || s.pair_state === 'response_only').length, f.name).toBe(responses);
      expect(new Set(spans.map((s) => s.span_id)).size, f.name).toBe(spans.length);
    }
    await expect(JSON.stringify(out, null, 1)).toMatchFileSnapshot('golden/recorded.json');
  });
});

// The conformance suite takes any ProtocolParser. A Wasm plugin reaches the registry through an
// adapter whose calls cross a bytes-in/bytes-out boundary; this stand-in adapter does the same with
// JSON around a built-in parser (its state held on the host side), and must pass the same suite.
import { describe, expect, it } from 'vitest';
import { describeConformance, descriptorViolations, fuzz, otherFixtures } from './conformance.ts';
import { loadFixtures, replay } from './fixtures.ts';
import type { L7Message, ParseContext, ProtocolParser } from './parser.ts';
import { redisParser } from './redis/index.ts';

function boundaryAdapter(inner: ProtocolParser): ProtocolParser {
  const enc = new TextEncoder();
  const dec = new TextDecoder();
  const cross = (out: L7Message[] | null): L7Message[] | null => (out === null ? null : (JSON.parse(dec.decode(enc.encode(JSON.stringify(out)))) as L7Message[]));
  return {
    name: `${inner.name}`,
    parallel: inner.parallel,
    transports: inner.transports,
    check: (p: Uint8Array, ctx: ParseContext) => inner.check(p.slice(), ctx),
    parse: (p: Uint8Array, ctx: ParseContext) => cross(inner.parse(p.slice(), ctx)),
    newState: inner.newState,
  };
}

const adapted = boundaryAdapter(redisParser);
describeConformance(adapted, { own: loadFixtures('redis'), others: otherFixtures('redis') });

describe('conformance tooling', () => {
  it('fuzz() reports iterations, time, slowest call and heap growth', () => {
    const r = fuzz(adapted, loadFixtures('redis'), [], 2000);
    expect(r.iterations).toBe(2000);
    expect(r.elapsedMs).toBeGreaterThan(0);
    expect(r.slowestMs).toBeGreaterThanOrEqual(0);
  });

  it("descriptorViolations() holds a parser to its descriptor's always-rules, and to no conditional one", () => {
    const own = loadFixtures('redis');
    const first = own.flatMap((f) => replay(redisParser, f.chunks, { l4: f.transport })).find((m) => m.msgType === 'request' && m.requestType);
    const type = first?.requestType as string;
    expect(type, 'a redis fixture has a request').toBeTruthy();
    const claims = (when: string, flag: boolean): ProtocolParser => ({
      ...redisParser,
      descriptor: { name: 'redis', aliases: [], pairing: 'in-order', oneWay: [{ requestType: type, when }] },
      parse: (p, ctx) => {
        const out = redisParser.parse(p, ctx);
        if (flag) for (const m of out ?? []) if (m.msgType === 'request' && m.requestType === type) m.oneWay = true;
        return out;
      },
    });
    expect(descriptorViolations(claims('always', false), own).some((v) => v.includes(`${type} has a when: 'always' one-way rule, but the parser did not set oneWay`))).toBe(true);
    expect(descriptorViolations(claims('always', true), own)).toEqual([]);
    // A conditional rule is the parser's call: unflagged requests of that type are fine.
    expect(descriptorViolations(claims('noreply', false), own)).toEqual([]);
    // A flag no rule names is refused.
    expect(descriptorViolations({ ...claims('always', true), descriptor: { name: 'redis', aliases: [], pairing: 'in-order', oneWay: [] } }, own).some((v) => v.includes("is not among the descriptor's oneWay rules"))).toBe(true);
  });

  it('fuzz() surfaces a parser that throws, with the input that did it', () => {
    const fragile: ProtocolParser = { name: 'fragile', parallel: false, transports: ['tcp'], check: () => false, parse: (p) => { if (p[0] === 0x2a) throw new Error('boom'); return []; } };
    expect(() => fuzz(fragile, loadFixtures('redis'), [], 5000)).toThrow(/fragile threw on fuzz input #\d+/);
  });
});

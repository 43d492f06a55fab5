/**
 * The conformance suite every protocol parser passes — built-ins here, Wasm plugins through an
 * adapter that implements ProtocolParser. It registers vitest tests:
 *
 *   - `check` recognises the heads of its own fixtures and rejects the heads of every other protocol's;
 *   - parse results are well-formed (known msgType/status, bounded strings, finite numbers);
 *   - the same messages come out when reads are split at any byte or coalesced into one;
 *   - payloads truncated at the capture limit parse without error;
 *   - garbage, truncations and mutations never throw (optionally a million-input fuzz run that also
 *     watches time per call and heap growth).
 *
 * @example
 *   describeConformance(redisParser, { own: loadFixtures('redis'), others: otherFixtures('redis') });
 */

import { describe, expect, it } from 'vitest';
import type { L7Message, ProtocolParser } from './parser.ts';
import { L7_FIELDS, RESPONSE_STATUSES, l7FieldsOfKind } from '../contract/fields.ts';
import { alwaysOneWay, descriptorOf } from './descriptors.ts';
import { ParserSession, loadAllFixtures, replay } from './fixtures.ts';
import type { Fixture, FixtureChunk } from './fixtures.ts';

export interface ConformanceOptions {
  own: readonly Fixture[];
  /** Fixtures of other protocols, whose heads `check` must reject. */
  others: readonly Fixture[];
  /** Stream parsers must give the same messages for split and coalesced reads (default: TCP parsers). */
  streaming?: boolean;
  /**
   * Whether the protocol allows a client to send every request before reading any reply (default
   * true). False for protocols whose requests depend on earlier replies (MySQL prepared statement ids):
   * the coalescing test then only merges consecutive reads of one direction.
   */
  pipelining?: boolean;
  /** Capture limit for the truncation tests (default 1024). */
  captureLimit?: number;
  /** Mutated inputs for the fuzz run (0 to skip; default 0). */
  fuzzIterations?: number;
  /** Seed for the fuzz PRNG (default 1). */
  fuzzSeed?: number;
}

const MSG_TYPES = new Set(['request', 'response']);
const STATUSES = new Set<string>(RESPONSE_STATUSES);
// The field lists come from the catalogue (agent/contract/fields.ts).
const STRING_FIELDS = l7FieldsOfKind('string');
const NUMBER_FIELDS = l7FieldsOfKind('number');
const FLAG_FIELDS = l7FieldsOfKind('flag');
const KNOWN_FIELDS = new Set<string>(L7_FIELDS.map((f) => f.key));

/** Fixtures of every protocol a parser does not handle. */
export function otherFixtures(...mine: string[]): Fixture[] {
  return loadAllFixtures().filter((f) => !mine.includes(f.protocol));
}

/** Throws with a reason when a message is not well-formed. */
export function assertWellFormed(m: L7Message): void {
  if (typeof m !== 'object' || m === null) throw new Error('message is not an object');
  if (typeof m.l7Protocol !== 'string' || m.l7Protocol.length === 0 || m.l7Protocol.length > 64) throw new Error(`bad l7Protocol ${String(m.l7Protocol)}`);
  if (!MSG_TYPES.has(m.msgType)) throw new Error(`bad msgType ${String(m.msgType)}`);
  if (m.responseStatus !== undefined && !STATUSES.has(m.responseStatus)) throw new Error(`bad responseStatus ${m.responseStatus}`);
  for (const f of STRING_FIELDS) {
    const v = m[f];
    if (v !== undefined && (typeof v !== 'string' || v.length > 4096)) throw new Error(`bad ${f}`);
  }
  for (const f of NUMBER_FIELDS) {
    const v = m[f];
    if (v !== undefined && (typeof v !== 'number' || !Number.isFinite(v))) throw new Error(`bad ${f}: ${String(v)}`);
  }
  for (const f of FLAG_FIELDS) {
    const v = m[f];
    if (v !== undefined && typeof v !== 'boolean') throw new Error(`bad ${f}: ${String(v)}`);
  }
  // A property outside the catalogue would be dropped by the batch format without a word.
  for (const k of Object.keys(m)) if (!KNOWN_FIELDS.has(k)) throw new Error(`unknown field ${k} (not in agent/contract/fields.ts)`);
  if (m.attributes !== undefined) {
    const keys = Object.keys(m.attributes);
    if (keys.length > 64) throw new Error('too many attributes');
    for (const k of keys) if (typeof m.attributes[k] !== 'string' || m.attributes[k].length > 4096) throw new Error(`bad attribute ${k}`);
  }
}

/** Heads a parser's check sees first: the first chunk of each direction. */
function heads(f: Fixture): FixtureChunk[] {
  const out: FixtureChunk[] = [];
  const c = f.chunks.find((x) => x.dir === 'c2s');
  const s = f.chunks.find((x) => x.dir === 's2c');
  if (c) out.push(c);
  if (s) out.push(s);
  return out;
}

/** Split chunk `i` at byte `at` into two reads. */
function splitAt(chunks: readonly FixtureChunk[], i: number, at: number): FixtureChunk[] {
  const c = chunks[i];
  return [...chunks.slice(0, i), { dir: c.dir, data: c.data.subarray(0, at) }, { dir: c.dir, data: c.data.subarray(at) }, ...chunks.slice(i + 1)];
}

/** Consecutive reads of one direction merged into one read. */
function coalesceRuns(chunks: readonly FixtureChunk[]): FixtureChunk[] {
  const out: FixtureChunk[] = [];
  for (const c of chunks) {
    const last = out.at(-1);
    if (last && last.dir === c.dir) out[out.length - 1] = { dir: c.dir, data: new Uint8Array(Buffer.concat([last.data, c.data])) };
    else out.push(c);
  }
  return out;
}

/** All reads of one direction as a single read each, requests first (a fully pipelined client). */
function coalesce(chunks: readonly FixtureChunk[]): FixtureChunk[] {
  const join = (dir: 'c2s' | 's2c'): FixtureChunk[] => {
    const parts = chunks.filter((c) => c.dir === dir);
    if (parts.length === 0) return [];
    return [{ dir, data: new Uint8Array(Buffer.concat(parts.map((p) => p.data))) }];
  };
  return [...join('c2s'), ...join('s2c')];
}

function multiset(msgs: readonly L7Message[]): string[] {
  const sorted = (o: object): object => Object.fromEntries(Object.entries(o).sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, v]) => [k, v && typeof v === 'object' ? sorted(v as object) : v]));
  return msgs.map((m) => JSON.stringify(sorted(m))).sort();
}

/** Split positions worth trying in a chunk: every byte for short ones, a spread for long ones. */
function splitPoints(len: number): number[] {
  if (len <= 96) return Array.from({ length: Math.max(0, len - 1) }, (_, i) => i + 1);
  const pts = new Set<number>([1, 2, 3, 4, 5, 8, 9, 10, len - 1, len - 2]);
  for (let k = 1; k < 40; k++) pts.add(Math.floor((len * k) / 40));
  return [...pts].filter((p) => p > 0 && p < len).sort((a, b) => a - b);
}

/**
 * Where a parser's messages on `fixtures` break its descriptor, one line each (empty: none): an
 * `l7Protocol` outside its name and aliases; a one-way message that is not a request, or whose
 * type no rule names; a request whose type has a `when: 'always'` rule that the parser did not
 * flag `oneWay` (the span builder closes it anyway, but the parser and its descriptor disagree).
 */
export function descriptorViolations(parser: ProtocolParser, fixtures: readonly Fixture[]): string[] {
  const d = descriptorOf(parser);
  const names = new Set([d.name, ...d.aliases]);
  const oneWay = new Set(d.oneWay.map((r) => r.requestType));
  const always = alwaysOneWay(d);
  const out: string[] = [];
  for (const f of fixtures) {
    for (const m of replay(parser, f.chunks, { l4: f.transport })) {
      if (!names.has(m.l7Protocol)) out.push(`${f.name}: l7Protocol ${m.l7Protocol} is not ${[...names].join(' or ')}`);
      if (m.oneWay) {
        if (m.msgType !== 'request') out.push(`${f.name}: a one-way ${m.requestType} must be a request`);
        if (!oneWay.has(m.requestType ?? '')) out.push(`${f.name}: one-way ${m.requestType} is not among the descriptor's oneWay rules`);
      } else if (m.msgType === 'request' && m.requestType !== undefined && always.has(m.requestType)) {
        out.push(`${f.name}: ${m.requestType} has a when: 'always' one-way rule, but the parser did not set oneWay`);
      }
    }
  }
  return out;
}

export function describeConformance(parser: ProtocolParser, opts: ConformanceOptions): void {
  const limit = opts.captureLimit ?? 1024;
  const streaming = opts.streaming ?? parser.transports.includes('tcp');

  describe(`${parser.name} conformance`, () => {
    it('has fixtures', () => {
      expect(opts.own.length).toBeGreaterThan(0);
    });

    it('check() recognises the head of each of its own conversations', () => {
      for (const f of opts.own) {
        const early = f.chunks.slice(0, 4);
        const s = new ParserSession(parser, 'client', f.transport);
        const ok = early.some((c) => parser.check(c.data, s.context(c.dir, c.data.length)));
        expect(ok, `${f.protocol}/${f.name}`).toBe(true);
      }
    });

    it("check() rejects the heads of other protocols' conversations", () => {
      for (const f of opts.others) {
        for (const c of heads(f)) {
          const s = new ParserSession(parser, 'client', f.transport);
          expect(parser.check(c.data, s.context(c.dir, c.data.length)), `${parser.name} claimed ${f.protocol}/${f.name} ${c.dir}`).toBe(false);
        }
      }
    });

    it('parses its fixtures into well-formed messages, from both ends of the socket', () => {
      for (const f of opts.own) {
        for (const perspective of ['client', 'server'] as const) {
          const msgs = replay(parser, f.chunks, { perspective, l4: f.transport });
          expect(msgs.length, `${f.name} from the ${perspective}`).toBeGreaterThan(0);
          for (const m of msgs) assertWellFormed(m);
          // Both ends of one socket see the same conversation.
          if (perspective === 'server') expect(msgs).toEqual(replay(parser, f.chunks, { perspective: 'client', l4: f.transport }));
        }
      }
    });

    it('keeps to its protocol descriptor: names, pairing, one-way requests', () => {
      const d = descriptorOf(parser);
      expect(d.name).toBe(parser.name);
      expect(parser.parallel, 'parallel must say what descriptor.pairing says').toBe(d.pairing === 'by-id');
      expect(descriptorViolations(parser, opts.own)).toEqual([]);
    });

    it('survives the capture limit: every read cut to the limit parses without error', () => {
      for (const f of opts.own) {
        const msgs = replay(parser, f.chunks, { captureLimit: limit, l4: f.transport });
        for (const m of msgs) assertWellFormed(m);
        const small = replay(parser, f.chunks, { captureLimit: 64, l4: f.transport });
        for (const m of small) assertWellFormed(m);
      }
    });

    if (streaming) {
      it('gives the same messages when a read is split at any byte', () => {
        for (const f of opts.own) {
          if (f.transport !== 'tcp') continue;
          const whole = replay(parser, f.chunks);
          f.chunks.forEach((c, i) => {
            for (const at of splitPoints(c.data.length)) {
              const got = replay(parser, splitAt(f.chunks, i, at));
              expect(got, `${f.name}: chunk ${i} split at ${at}`).toEqual(whole);
            }
          });
        }
      });

      it('gives the same messages when all reads of a direction are coalesced', () => {
        for (const f of opts.own) {
          if (f.transport !== 'tcp') continue;
          expect(replay(parser, coalesceRuns(f.chunks)), `${f.name}: consecutive reads merged`).toEqual(replay(parser, f.chunks));
          if (opts.pipelining === false) continue;
          // Everything one way first, then everything back: the same messages (order may differ
          // where both sides send requests, as MQTT's PUBLISH does).
          const whole = multiset(replay(parser, f.chunks));
          const merged = multiset(replay(parser, coalesce(f.chunks)));
          expect(merged, `${f.name}: fully pipelined`).toEqual(whole);
        }
      });
    }

    it('never throws on garbage, prefixes or bit flips', () => {
      const rnd = prng(7);
      const seeds = opts.own.flatMap((f) => f.chunks.map((c) => c.data));
      const s = new ParserSession(parser, 'client', parser.transports[0]);
      for (let i = 0; i < 300; i++) {
        const len = rnd() % 600;
        const buf = new Uint8Array(len);
        for (let j = 0; j < len; j++) buf[j] = rnd() & 0xff;
        run(parser, s, i & 1 ? 'c2s' : 's2c', buf, len + (rnd() % 4000));
      }
      for (const seed of seeds) {
        const fresh = new ParserSession(parser, 'client', parser.transports[0]);
        for (let n = 0; n <= Math.min(seed.length, 200); n++) run(parser, fresh, 'c2s', seed.subarray(0, n), n);
        for (let n = 0; n <= Math.min(seed.length, 200); n++) run(parser, fresh, 's2c', seed.subarray(0, n), seed.length);
      }
    });

    if (opts.fuzzIterations && opts.fuzzIterations > 0) {
      const iterations = opts.fuzzIterations;
      it(`survives ${iterations.toLocaleString('en')} mutated inputs (no throw, no hang, bounded memory)`, () => {
        const r = fuzz(parser, opts.own, opts.others, iterations, opts.fuzzSeed ?? 1);
        expect(r.slowestMs, 'slowest single call').toBeLessThan(250);
        expect(r.heapGrowthMb, 'heap growth').toBeLessThan(64);
        expect(r.iterations).toBe(iterations);
      }, 120_000);
    }
  });
}

function run(parser: ProtocolParser, s: ParserSession, dir: 'c2s' | 's2c', payload: Uint8Array, bytes: number): void {
  const ctx = s.context(dir, Math.max(bytes, payload.length));
  parser.check(payload, ctx);
  const out = parser.parse(payload, ctx);
  if (out !== null) {
    if (!Array.isArray(out)) throw new Error('parse returned neither an array nor null');
    for (const m of out) assertWellFormed(m);
  }
}

/** xorshift32: deterministic and fast. */
export function prng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
}

export interface FuzzResult {
  iterations: number;
  elapsedMs: number;
  slowestMs: number;
  heapGrowthMb: number;
}

/**
 * Feed `iterations` mutated inputs to a parser: bit flips, byte sets, truncations, splices of two
 * seeds, duplicated spans and random bytes, over its own fixtures (mostly) and others'. Sessions are
 * kept for a while so state-carrying paths (pending heads, skips, HPACK tables) are exercised, then
 * dropped. Any throw escapes to the caller with the input that caused it.
 */
export function fuzz(parser: ProtocolParser, own: readonly Fixture[], others: readonly Fixture[], iterations: number, seed = 1): FuzzResult {
  const rnd = prng(seed);
  const ownSeeds = own.flatMap((f) => f.chunks.map((c) => c.data.subarray(0, 1500)));
  const otherSeeds = others.flatMap((f) => f.chunks.map((c) => c.data.subarray(0, 600)));
  if (ownSeeds.length === 0) ownSeeds.push(new Uint8Array(16));
  const buf = new Uint8Array(4096);
  const transports = parser.transports;
  let session = new ParserSession(parser, 'client', transports[0]);
  let slowest = 0;
  globalThis.gc?.();
  const heapBefore = process.memoryUsage().heapUsed;
  const t0 = performance.now();
  for (let i = 0; i < iterations; i++) {
    if ((i & 63) === 0) session = new ParserSession(parser, (i & 64) === 0 ? 'client' : 'server', transports[(i >> 7) % transports.length]);
    const pick = rnd();
    const seedBuf = (pick & 7) === 0 && otherSeeds.length > 0 ? otherSeeds[(pick >>> 3) % otherSeeds.length] : ownSeeds[(pick >>> 3) % ownSeeds.length];
    let len = seedBuf.length;
    buf.set(seedBuf, 0);
    const kind = rnd() % 8;
    switch (kind) {
      case 0: // bit flips
      case 1: {
        const flips = 1 + (rnd() % 4);
        for (let k = 0; k < flips && len > 0; k++) buf[rnd() % len] ^= 1 << (rnd() & 7);
        break;
      }
      case 2: // interesting bytes
        for (let k = 0; k < 3 && len > 0; k++) buf[rnd() % len] = [0, 0xff, 0x7f, 0x80, 0x0d, 0x0a, 0x24, 0x2a][rnd() & 7];
        break;
      case 3: // truncation
        len = len > 0 ? rnd() % len : 0;
        break;
      case 4: {
        // splice: head of this seed + tail of another
        const other = ownSeeds[rnd() % ownSeeds.length];
        const cut = len > 0 ? rnd() % len : 0;
        const from = other.length > 0 ? rnd() % other.length : 0;
        const n = Math.min(other.length - from, buf.length - cut);
        buf.set(other.subarray(from, from + n), cut);
        len = cut + n;
        break;
      }
      case 5: {
        // duplicate a span (repeated headers, repeated frames)
        if (len > 2) {
          const a = rnd() % len;
          const n = Math.min(1 + (rnd() % 64), len - a, buf.length - len);
          buf.copyWithin(a + n, a, len);
          len += n;
        }
        break;
      }
      case 6: {
        // random bytes
        len = rnd() % 256;
        for (let k = 0; k < len; k++) buf[k] = rnd() & 0xff;
        break;
      }
      default: {
        // a length field blown up: overwrite 4 bytes with a large or negative-looking number
        if (len > 4) {
          const a = rnd() % (len - 4);
          const v = rnd();
          buf[a] = v >>> 24;
          buf[a + 1] = v >>> 16;
          buf[a + 2] = v >>> 8;
          buf[a + 3] = v;
        }
      }
    }
    const payload = buf.subarray(0, len);
    const bytes = (rnd() & 3) === 0 ? len + (rnd() % 70000) : len;
    const dir = rnd() & 1 ? 'c2s' : 's2c';
    const timed = (i & 1023) === 0;
    const ts = timed ? performance.now() : 0;
    try {
      run(parser, session, dir, payload, bytes);
    } catch (err) {
      const hex = Buffer.from(payload).toString('hex');
      throw new Error(`${parser.name} threw on fuzz input #${i} (${dir}, bytes=${bytes}): ${hex}: ${err instanceof Error ? err.stack : String(err)}`);
    }
    if (timed) slowest = Math.max(slowest, performance.now() - ts);
  }
  const elapsedMs = performance.now() - t0;
  session = new ParserSession(parser);
  globalThis.gc?.();
  const heapGrowthMb = Math.max(0, process.memoryUsage().heapUsed - heapBefore) / 1048576;
  return { iterations, elapsedMs, slowestMs: slowest, heapGrowthMb };
}

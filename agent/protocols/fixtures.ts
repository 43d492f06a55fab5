/**
 * Recorded protocol fixtures (test/fixtures/protocols/<proto>/*.json, written by
 * test/protocols/record-fixtures.ts) and a replay harness that feeds them to a parser the way the
 * registry would: one call per recorded read, per-direction state, one shared socket state.
 */

import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Direction, L4Protocol, SocketRole } from '../capture/message.ts';
import type { L7Message, ParseContext, ParserState, ProtocolParser } from './parser.ts';

export interface FixtureChunk {
  /** c2s: client to server (the request direction); s2c: server to client. */
  dir: 'c2s' | 's2c';
  data: Uint8Array;
}

export interface Fixture {
  protocol: string;
  transport: L4Protocol;
  name: string;
  description: string;
  chunks: FixtureChunk[];
}

/** RIPTIDE_FIXTURES_DIR points the tests at freshly recorded fixtures (record-fixtures.ts with RIPTIDE_FIXTURES_OUT). */
const FIXTURE_ROOT = process.env.RIPTIDE_FIXTURES_DIR ?? path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../test/fixtures/protocols');

interface FixtureJson {
  protocol: string;
  transport: L4Protocol;
  name: string;
  description: string;
  chunks: Array<{ dir: 'c2s' | 's2c'; b64: string }>;
}

/** Every fixture of one protocol folder (sorted by name). */
export function loadFixtures(protocol: string): Fixture[] {
  const dir = path.join(FIXTURE_ROOT, protocol);
  if (!fs.existsSync(dir)) return [];
  return fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((f) => {
      const j = JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8')) as FixtureJson;
      return {
        protocol: j.protocol,
        transport: j.transport,
        name: j.name,
        description: j.description,
        chunks: j.chunks.map((c) => ({ dir: c.dir, data: new Uint8Array(Buffer.from(c.b64, 'base64')) })),
      };
    });
}

/** Every fixture of every protocol. */
export function loadAllFixtures(): Fixture[] {
  if (!fs.existsSync(FIXTURE_ROOT)) return [];
  return fs
    .readdirSync(FIXTURE_ROOT)
    .sort()
    .flatMap((p) => loadFixtures(p));
}

export type Perspective = 'client' | 'server';

/** One simulated socket: the state a registry would keep for a parser. */
export class ParserSession {
  private egress: ParserState;
  private ingress: ParserState;
  private readonly shared: ParserState = {};
  constructor(
    private readonly parser: ProtocolParser,
    private readonly perspective: Perspective = 'client',
    private readonly l4: L4Protocol = 'tcp',
    private readonly extraHeaders: readonly string[] = [],
  ) {
    this.egress = parser.newState ? parser.newState() : {};
    this.ingress = parser.newState ? parser.newState() : {};
  }

  context(dir: 'c2s' | 's2c', bytes: number): ParseContext {
    const direction: Direction = (dir === 'c2s') === (this.perspective === 'client') ? 'egress' : 'ingress';
    const role: SocketRole = this.perspective;
    return {
      direction,
      role,
      l4: this.l4,
      localPort: this.perspective === 'client' ? 40000 : 8080,
      remotePort: this.perspective === 'client' ? 8080 : 40000,
      socketId: 1,
      bytes,
      state: direction === 'egress' ? this.egress : this.ingress,
      socketState: this.shared,
      extraHeaders: this.extraHeaders,
    };
  }

  /** Parse one read; `captureLimit` cuts the payload like the kernel would (bytes keeps the full length). */
  feed(dir: 'c2s' | 's2c', data: Uint8Array, captureLimit = Infinity): L7Message[] | null {
    const payload = data.length > captureLimit ? data.subarray(0, captureLimit) : data;
    return this.parser.parse(payload, this.context(dir, data.length));
  }
}

/** Replay chunks through one session; returns the messages in order (null results count as none). */
export function replay(parser: ProtocolParser, chunks: readonly FixtureChunk[], opts: { perspective?: Perspective; l4?: L4Protocol; captureLimit?: number; extraHeaders?: readonly string[] } = {}): L7Message[] {
  const s = new ParserSession(parser, opts.perspective ?? 'client', opts.l4 ?? 'tcp', opts.extraHeaders ?? []);
  const out: L7Message[] = [];
  for (const c of chunks) {
    const r = s.feed(c.dir, c.data, opts.captureLimit);
    if (r) out.push(...r);
  }
  return out;
}

// The cleartext of a TLS socket's record layer (handshake and alert records before the first
// ChangeCipherSpec / application data) reaches the `tls` parser; application data never does.
// Replays real handshakes (test/fixtures/protocols/tls, curl and openssl against nginx) as the
// syscalls of one socket through the joiner.
import { describe, expect, it } from 'vitest';
import { MetricsRegistry } from '../metrics.ts';
import { loadFixtures, replay } from '../protocols/fixtures.ts';
import type { FixtureChunk } from '../protocols/fixtures.ts';
import { createDefaultRegistry } from '../protocols/registry.ts';
import { tlsParser } from '../protocols/tls/index.ts';
import type { CapturedMessage } from './message.ts';
import { TlsJoiner } from './tls-join.ts';

const fixtures = loadFixtures('tls');

/** The fixture's reads as the server's syscalls (sequence numbers per direction); `split` reads record headers apart. */
function syscalls(chunks: readonly FixtureChunk[], split = false): CapturedMessage[] {
  const seq = { egress: 1000, ingress: 5000 };
  const out: CapturedMessage[] = [];
  let trace = 1;
  for (const c of chunks) {
    const direction = c.dir === 'c2s' ? 'ingress' : 'egress';
    const parts = split && c.data.length > 5 ? [c.data.subarray(0, 5), c.data.subarray(5)] : [c.data];
    for (const p of parts) {
      out.push({
        tsNs: 1n, enterNs: 1n, exitNs: 2n, pid: 10, tid: 11, coroutineId: 0, processName: 'nginx', syscall: direction === 'egress' ? 'write' : 'read', direction,
        socketId: 42, family: 'ipv4', l4: 'tcp', localIp: '127.0.0.1', localPort: 443, remoteIp: '127.0.0.1', remotePort: 50000, role: 'server',
        tcpSeq: seq[direction], syscallTraceId: trace++, bytes: p.length, payload: p,
      });
      seq[direction] = (seq[direction] + p.length) >>> 0;
    }
  }
  return out;
}

function passedOn(msgs: readonly CapturedMessage[], captureLimit = Infinity): CapturedMessage[] {
  const emitted: CapturedMessage[] = [];
  const j = new TlsJoiner((m) => emitted.push(m));
  for (const m of msgs) {
    const cut = m.payload.length > captureLimit ? { ...m, payload: m.payload.subarray(0, captureLimit) } : m;
    expect(j.onSyscall(cut), 'a TLS syscall is kept from the parsers').toBe(true);
  }
  return emitted;
}

describe('TLS record layer: handshake and alerts to the tls parser, ciphertext never', () => {
  for (const f of fixtures) {
    for (const split of [false, true]) {
      it(`${f.name}${split ? ', record headers read apart' : ''}: the tls parser sees the same handshake; no application data is passed on`, () => {
        const emitted = passedOn(syscalls(f.chunks, split));
        expect(emitted.length).toBeGreaterThan(0);
        // What is passed on, joined per direction, is a run of whole handshake and alert records.
        for (const dir of ['ingress', 'egress'] as const) {
          const parts = emitted.filter((m) => m.direction === dir);
          for (const m of parts) expect(m.tls).toBeUndefined();
          const joined = Buffer.concat(parts.map((m) => m.payload));
          let off = 0;
          while (off < joined.length) {
            expect([21, 22], `${dir} record at ${off}`).toContain(joined[off]);
            off += 5 + joined.readUInt16BE(off + 3);
          }
          expect(off, `${dir}: ends on a record boundary`).toBe(joined.length);
          const raw = f.chunks.filter((c) => (c.dir === 'c2s') === (dir === 'ingress')).reduce((n, c) => n + leadingCleartext(c), 0);
          expect(joined.length).toBeLessThanOrEqual(raw);
        }
        const fromEmitted = replay(tlsParser, emitted.map((m) => ({ dir: m.direction === 'ingress' ? 'c2s' : 's2c', data: m.payload })), { perspective: 'server' });
        expect(fromEmitted).toEqual(replay(tlsParser, f.chunks, { perspective: 'server' }));
      });
    }
  }

  it('a connection first seen after its handshake passes nothing on', () => {
    const f = fixtures.find((x) => x.name === 'curl-tls13-h2');
    const later = syscalls(f!.chunks).slice(3);
    expect(passedOn(later)).toEqual([]);
  });

  it('a ServerHello flight past the capture limit passes on what was captured, as cut', () => {
    const f = fixtures.find((x) => x.name === 'curl-tls12-http1')!;
    const emitted = passedOn(syscalls(f.chunks), 1024);
    const sh = emitted.find((m) => m.direction === 'egress');
    expect(sh && sh.payload.length <= 1024 && sh.bytes >= sh.payload.length).toBe(true);
    expect(replay(tlsParser, emitted.map((m) => ({ dir: m.direction === 'ingress' ? 'c2s' : 's2c', data: m.payload })), { perspective: 'server' }).map((m) => m.version)).toEqual(['TLSv1.2', 'TLSv1.2']);
  });

  it('the registry keeps a TLS socket\'s record layer and its decrypted plaintext apart: both are parsed', () => {
    const f = fixtures.find((x) => x.name === 'curl-tls12-http1')!;
    const reg = createDefaultRegistry({ metrics: new MetricsRegistry(), log: () => undefined });
    const out = passedOn(syscalls(f.chunks)).flatMap((m) => reg.parse(m));
    const req = new TextEncoder().encode('GET / HTTP/1.1\r\nHost: shop.riptide.test\r\n\r\n');
    const plaintext: CapturedMessage = { ...syscalls(f.chunks)[4], payload: req, bytes: req.length, tls: true };
    out.push(...reg.parse(plaintext));
    expect(out.map((m) => `${m.l7Protocol}:${m.msgType}`)).toEqual(['tls:request', 'tls:response', 'http1:request']);
    reg.onSocketClosed(42);
    expect(reg.stats().sockets).toBe(0);
  });
});

/** Bytes of a read up to its first record that is neither handshake nor alert. */
function leadingCleartext(c: FixtureChunk): number {
  let off = 0;
  while (off + 5 <= c.data.length && (c.data[off] === 21 || c.data[off] === 22)) off += 5 + ((c.data[off + 3] << 8) | c.data[off + 4]);
  return Math.min(off, c.data.length);
}

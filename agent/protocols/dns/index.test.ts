import { describe, expect, it } from 'vitest';
import { describeConformance, otherFixtures } from '../conformance.ts';
import { ParserSession, loadFixtures, replay } from '../fixtures.ts';
import { dnsParser } from './index.ts';

const own = loadFixtures('dns');
const fixture = (name: string) => {
  const f = own.find((x) => x.name === name);
  if (!f) throw new Error(`no fixture ${name}`);
  return f;
};

describeConformance(dnsParser, { own, others: otherFixtures('dns'), fuzzIterations: 1_000_000 });

describe('dns against dnsmasq', () => {
  it('pairs a UDP query and answer by id, with QTYPE, QNAME and the address', () => {
    const f = fixture('dig-udp-a');
    const id = (f.chunks[0].data[0] << 8) | f.chunks[0].data[1];
    const [q, a] = replay(dnsParser, f.chunks, { l4: 'udp' });
    expect(q).toEqual({ l7Protocol: 'dns', msgType: 'request', requestId: id, requestType: 'A', requestDomain: 'svc.riptide.test', requestResource: 'svc.riptide.test', endpoint: 'svc.riptide.test' });
    expect(a).toMatchObject({ msgType: 'response', requestId: id, responseCode: 0, responseStatus: 'ok', attributes: { 'dns.answers': '10.0.0.7' } });
  });

  it('reads AAAA answers', () => {
    const [, a] = replay(dnsParser, fixture('dig-udp-aaaa').chunks, { l4: 'udp' });
    expect(a).toMatchObject({ requestType: 'AAAA', attributes: { 'dns.answers': 'fd00::8' } });
  });

  it('reports NXDOMAIN as a client error', () => {
    const [, a] = replay(dnsParser, fixture('dig-udp-nxdomain').chunks, { l4: 'udp' });
    expect(a).toMatchObject({ responseCode: 3, responseStatus: 'client_error', requestDomain: 'missing.riptide.test' });
  });

  it('reads DNS over TCP behind the 2-byte length', () => {
    const f = fixture('dig-tcp-nxdomain');
    const id = (f.chunks[0].data[2] << 8) | f.chunks[0].data[3];
    const msgs = replay(dnsParser, f.chunks, { l4: 'tcp' });
    expect(msgs.map((m) => [m.msgType, m.requestId, m.requestType, m.responseCode])).toEqual([
      ['request', id, 'MX', undefined],
      ['response', id, 'MX', 3],
    ]);
  });
});

describe('dns over TCP, several messages per read', () => {
  it('recognises and reads the A and AAAA queries glibc sends in one write, and both answers in one read', () => {
    const f = fixture('glibc-tcp-a-aaaa');
    const s = new ParserSession(dnsParser, 'client', 'tcp');
    for (const c of f.chunks) expect(dnsParser.check(c.data, s.context(c.dir, c.data.length)), c.dir).toBe(true);
    const msgs = replay(dnsParser, f.chunks, { l4: 'tcp' });
    expect(msgs.map((m) => [m.msgType, m.requestType, m.requestDomain])).toEqual([
      ['request', 'A', 'db.riptide.test'],
      ['request', 'AAAA', 'db.riptide.test'],
      ['response', 'A', 'db.riptide.test'],
      ['response', 'AAAA', 'db.riptide.test'],
    ]);
    expect(msgs[2]).toMatchObject({ requestId: msgs[0].requestId, attributes: { 'dns.answers': '10.0.0.8' } });
    expect(msgs[3]).toMatchObject({ requestId: msgs[1].requestId, attributes: { 'dns.answers': 'fd00::8' } });
  });

  it('still refuses a read whose second message is not DNS', () => {
    const q = fixture('dig-tcp-a').chunks[0].data;
    const junk = new Uint8Array(Buffer.concat([q, Buffer.from('\x00\x20GET / HTTP/1.1\r\nHost: x\r\n\r\n12345', 'latin1')]));
    expect(dnsParser.check(junk, new ParserSession(dnsParser, 'client', 'tcp').context('c2s', junk.length))).toBe(false);
  });
});

describe('dns over TCP, the length read before the agent started', () => {
  // dnsmasq reads the 2-byte length a byte at a time; when that read began before the agent, the
  // agent's first server-side read is the bare message (seen under the real agent).
  it('recognises a bare query filling the read, then frames the next one behind its length', () => {
    const q = fixture('dig-tcp-a').chunks[0].data;
    const s = new ParserSession(dnsParser, 'server', 'tcp');
    const bare = q.subarray(2);
    expect(dnsParser.check(bare, s.context('c2s', bare.length))).toBe(true);
    const first = dnsParser.parse(bare, s.context('c2s', bare.length));
    expect(first).toEqual([expect.objectContaining({ msgType: 'request', requestType: 'A', requestDomain: 'db.riptide.test' })]);
    const again = [q.subarray(0, 1), q.subarray(1, 2), q.subarray(2)].flatMap((c) => dnsParser.parse(c, s.context('c2s', c.length)) ?? []);
    expect(again).toEqual(first);
  });

  it('refuses a bare message that does not end exactly at the end of the read', () => {
    const bare = fixture('dig-tcp-a').chunks[0].data.subarray(2);
    const s = new ParserSession(dnsParser, 'server', 'tcp');
    for (const p of [bare.subarray(0, bare.length - 1), new Uint8Array(Buffer.concat([bare, Buffer.from([0])]))]) expect(dnsParser.check(p, s.context('c2s', p.length))).toBe(false);
  });
});

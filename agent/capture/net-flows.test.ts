import { describe, expect, it } from 'vitest';
import { NetFlows, TcpHealth } from './net-flows.ts';
import type { NetHealthEvent, NetPacket } from './net-flows.ts';
import { parseInterfacePattern, selectInterfaces } from './net-interfaces.ts';
import type { CapturedMessage } from './message.ts';

const pkt = (over: Partial<NetPacket>): NetPacket => ({
  kind: 'packet', monoNs: 1000n, ifindex: 7, direction: 'ingress', family: 'ipv4',
  srcIp: '10.0.0.2', srcPort: 40000, dstIp: '10.0.0.1', dstPort: 80, seq: 100, payloadLen: 10, payload: new Uint8Array([1]), ...over,
});

describe('NetFlows', () => {
  it('makes the first sender the client and emits only the first segment of each direction run', () => {
    const f = new NetFlows((m) => m + 5n, 1000);
    const req = f.onPacket(pkt({}), 'veth1', 0);
    expect(req).toMatchObject({ role: 'client', direction: 'egress', localIp: '10.0.0.2', localPort: 40000, remoteIp: '10.0.0.1', remotePort: 80, tcpSeq: 100, socketId: 1000, tsNs: 1005n, observationPoint: 'veth1', pid: 0, bytes: 10 });
    expect(f.onPacket(pkt({ seq: 110 }), 'veth1', 0)).toBeNull(); // continuation of the request
    const resp = f.onPacket(pkt({ srcIp: '10.0.0.1', srcPort: 80, dstIp: '10.0.0.2', dstPort: 40000, seq: 9, direction: 'egress' }), 'veth1', 0);
    expect(resp).toMatchObject({ direction: 'ingress', localIp: '10.0.0.2', remoteIp: '10.0.0.1', remotePort: 80, tcpSeq: 9, socketId: 1000 });
    expect(f.onPacket(pkt({ seq: 120 }), 'veth1', 0)).toMatchObject({ direction: 'egress', tcpSeq: 120 }); // next request
    expect(f.stats).toEqual({ messages: 3, continuations: 1 });
    // the same flow on another interface is another observation point
    expect(f.onPacket(pkt({ ifindex: 8 }), 'veth2', 0)?.socketId).toBe(1001);
  });

  it('forgets idle flows and returns their ids', () => {
    const f = new NetFlows((m) => m, 1);
    f.onPacket(pkt({}), 'a', 0);
    expect(f.expire(10_000, 60_000)).toEqual([]);
    expect(f.expire(60_000, 60_000)).toEqual([1]);
    expect(f.size).toBe(0);
  });
});

describe('TcpHealth', () => {
  const ev = (over: Partial<NetHealthEvent>): NetHealthEvent => ({
    kind: 'retransmit', monoNs: 0n, sk: 1n, family: 'ipv4', localIp: '10.0.0.2', localPort: 40000, remoteIp: '10.0.0.1', remotePort: 80, oldState: 0, newState: 0, srttUs: 400, totalRetrans: 1, ...over,
  });
  it('counts retransmits per connection and reads them onto its messages', () => {
    const h = new TcpHealth();
    expect(h.onEvent(ev({}))).toBe(false);
    h.onEvent(ev({ srttUs: 0 }));
    const m = { l4: 'tcp', localIp: '10.0.0.2', localPort: 40000, remoteIp: '10.0.0.1', remotePort: 80 } as CapturedMessage;
    h.annotate(m);
    expect(m.tcpRetransmits).toBe(2);
    expect(m.tcpSrttUs).toBe(400);
    // told once: the next message of the connection has none until there are more
    const next = { ...m, tcpRetransmits: undefined };
    h.annotate(next);
    expect(next.tcpRetransmits).toBeUndefined();
    h.onEvent(ev({}));
    h.annotate(next);
    expect(next.tcpRetransmits).toBe(1);
    const other = { l4: 'tcp', localIp: '10.0.0.1', localPort: 80, remoteIp: '10.0.0.2', remotePort: 40000 } as CapturedMessage;
    h.annotate(other);
    expect(other.tcpRetransmits).toBeUndefined();
  });
  it('keeps no state for connections that never retransmit, and never overrides the RTT a capture record carries', () => {
    const h = new TcpHealth();
    // a connect finishing and an established connection: no entry, messages pass untouched
    expect(h.onEvent(ev({ kind: 'state', oldState: 2, newState: 1, srttUs: 90 }))).toBe(false);
    const quiet = { l4: 'tcp', localIp: '10.0.0.2', localPort: 40000, remoteIp: '10.0.0.1', remotePort: 80 } as CapturedMessage;
    h.annotate(quiet);
    expect(quiet.tcpSrttUs).toBeUndefined();
    expect(quiet.tcpRetransmits).toBeUndefined();
    // after a retransmit: the count is told, but the record's own (fresher) RTT stays
    h.onEvent(ev({ srttUs: 400 }));
    const m = { ...quiet, tcpSrttUs: 250 } as CapturedMessage;
    h.annotate(m);
    expect(m.tcpRetransmits).toBe(1);
    expect(m.tcpSrttUs).toBe(250);
  });
  it('reports SYN_SENT -> CLOSE as a failed connect', () => {
    const h = new TcpHealth();
    expect(h.onEvent(ev({ kind: 'state', oldState: 2, newState: 7 }))).toBe(true);
    expect(h.onEvent(ev({ kind: 'state', oldState: 2, newState: 1 }))).toBe(false);
  });
});

describe('interface patterns', () => {
  const all = [
    { ifindex: 1, name: 'lo', kind: '', vethHostSide: false },
    { ifindex: 2, name: 'eth0', kind: '', vethHostSide: false },
    { ifindex: 3, name: 'vethab12', kind: 'veth', vethHostSide: true },
    { ifindex: 4, name: 'vpeer', kind: 'veth', vethHostSide: false },
  ];
  it('veth picks host-side veth ends only, never a physical NIC', () => {
    expect(selectInterfaces(all, parseInterfacePattern('veth')).map((i) => i.name)).toEqual(['vethab12']);
  });
  it('names, globs and exclusions', () => {
    expect(selectInterfaces(all, parseInterfacePattern('veth,eth*')).map((i) => i.name)).toEqual(['eth0', 'vethab12']);
    expect(selectInterfaces(all, parseInterfacePattern('v*,!vpeer')).map((i) => i.name)).toEqual(['vethab12']);
  });
  it('refuses empty and malformed patterns', () => {
    expect(() => parseInterfacePattern(' , ')).toThrow(/empty pattern/);
    expect(() => parseInterfacePattern('eth0;rm')).toThrow(/not an interface name/);
  });
});

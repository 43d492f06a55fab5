// NetCapture without a kernel: a fake program whose ring yields records built with the generated
// layout. What is checked is the agent's side of issue 19's defaults: its filters apply to network
// records (ports go into the kernel when they are the only filter; with a pid/name filter a network
// message waits for a process message of its connection), and a kernel refusing TC costs one line.
import { describe, expect, it } from 'vitest';
import type { CapturedMessage } from './message.ts';
import { HOLD_MS, NetCapture, connKey, isKernelRefusal } from './net-capture.ts';
import type { NetCaptureOptions, NetProgramLike } from './net-capture.ts';
import type { NetProgramOptions } from './net-program.ts';
import { interfacesFromIp, parseInterfacePattern, selectInterfaces } from './net-interfaces.ts';
import type { NetInterface } from './net-interfaces.ts';
import { RT_NET_PACKET, RT_NET_STATE, RT_TCP_CLOSE, RT_TCP_SYN_SENT, RtNetEvent as E } from './net-layout.generated.ts';
import type { RingReader } from './ring-reader.ts';

interface Tuple {
  src: [string, number];
  dst: [string, number];
}

function v4(ip: string): number[] {
  return ip.split('.').map(Number);
}

function packetRecord(t: Tuple, seq: number, payload: string, ifindex = 3): Uint8Array {
  const body = Buffer.from(payload);
  const b = Buffer.alloc(E.payload.offset + body.length);
  b.writeBigUInt64LE(1_000_000n, E.ts_ns.offset);
  b.writeUInt32LE(RT_NET_PACKET, E.kind.offset);
  b.writeUInt32LE(ifindex, E.ifindex.offset);
  b.writeUInt32LE(seq, E.seq.offset);
  b.writeUInt32LE(body.length, E.payload_len.offset);
  b.writeUInt32LE(body.length, E.captured.offset);
  b.writeUInt16LE(t.src[1], E.sport.offset);
  b.writeUInt16LE(t.dst[1], E.dport.offset);
  b[E.family.offset] = 4;
  b.set(v4(t.src[0]), E.saddr.offset);
  b.set(v4(t.dst[0]), E.daddr.offset);
  body.copy(b, E.payload.offset);
  return b;
}

function failedConnect(local: [string, number], remote: [string, number]): Uint8Array {
  const b = Buffer.alloc(E.payload.offset);
  b.writeUInt32LE(RT_NET_STATE, E.kind.offset);
  b.writeInt32LE(RT_TCP_SYN_SENT, E.old_state.offset);
  b.writeInt32LE(RT_TCP_CLOSE, E.new_state.offset);
  b.writeUInt16LE(local[1], E.sport.offset);
  b.writeUInt16LE(remote[1], E.dport.offset);
  b[E.family.offset] = 4;
  b.set(v4(local[0]), E.saddr.offset);
  b.set(v4(remote[0]), E.daddr.offset);
  return b;
}

class FakeProgram implements NetProgramLike {
  readonly records: Uint8Array[] = [];
  readonly attached = new Map<number, string>();
  attempts = 0;
  mode: 'tcx' | 'clsact' | '' = '';
  tcUnavailable: string | undefined = undefined;
  closed = false;
  constructor(
    readonly loadedWith: NetProgramOptions,
    private readonly attachError?: (name: string) => string | undefined,
  ) {}
  get interfaces(): ReadonlyMap<number, string> {
    return this.attached;
  }
  attach(ifindex: number, name: string): void {
    this.attempts++;
    const err = this.attachError?.(name);
    if (err) throw new Error(err);
    this.mode = 'tcx';
    this.attached.set(ifindex, name);
  }
  detach(ifindex: number): void {
    this.attached.delete(ifindex);
  }
  ringReader(): RingReader {
    const reader = {
      drain: (cb: (view: DataView, bytes: Uint8Array, off: number, len: number) => void): number => {
        const n = this.records.length;
        for (const r of this.records.splice(0)) cb(new DataView(r.buffer, r.byteOffset, r.byteLength), r, 0, r.byteLength);
        return n;
      },
      close: () => undefined,
    };
    return reader as unknown as RingReader;
  }
  counters() {
    return { packets: 0, ringbufFull: 0, notTcp: 0, noPayload: 0, filtered: 0 };
  }
  close(): void {
    this.closed = true;
  }
}

const IFS: NetInterface[] = [
  { ifindex: 1, name: 'lo', kind: '', vethHostSide: false },
  { ifindex: 3, name: 'vethpod1', kind: 'veth', vethHostSide: true },
  { ifindex: 4, name: 'vethpod2', kind: 'veth', vethHostSide: true },
];

function start(opts: Partial<NetCaptureOptions>, attachError?: (name: string) => string | undefined) {
  let program: FakeProgram | undefined;
  const out: CapturedMessage[] = [];
  const failed: CapturedMessage[] = [];
  const refused: string[] = [];
  const cap = NetCapture.start(
    {
      pattern: parseInterfacePattern('veth'),
      rescanMs: 0,
      pollMs: 1_000_000, // drained by the test only
      list: () => IFS,
      load: (o) => (program = new FakeProgram(o, attachError)),
      onTcRefused: (r) => refused.push(r),
      ...opts,
    },
    { onMessage: (m) => out.push(m), onParsed: (m) => failed.push(m), onSocketClosed: () => undefined },
  );
  return { cap, program: program!, out, failed, refused };
}

const OURS: Tuple = { src: ['10.9.0.2', 41000], dst: ['10.9.0.1', 8080] };
const OTHERS: Tuple = { src: ['10.9.0.2', 41001], dst: ['10.9.0.1', 9090] };

describe('network capture applies the agent filters', () => {
  it('puts --filter-port into the kernel when it is the only filter, and keeps only those ports', () => {
    const { cap, program, out } = start({ ports: [8080] });
    expect(program.loadedWith.kernelPorts).toEqual([8080]);
    program.records.push(packetRecord(OURS, 1, 'GET /a HTTP/1.1\r\n'), packetRecord(OTHERS, 1, 'GET /b HTTP/1.1\r\n'));
    cap.drainOnce();
    expect(out.map((m) => [m.observationPoint, m.remotePort])).toEqual([['vethpod1', 8080]]);
    cap.stop();
    expect(program.closed).toBe(true);
  });

  it('with no filter keeps every connection, and the kernel filters nothing', () => {
    const { cap, program, out } = start({});
    expect(program.loadedWith.kernelPorts).toEqual([]);
    program.records.push(packetRecord(OURS, 1, 'x'), packetRecord(OTHERS, 1, 'y'));
    cap.drainOnce();
    expect(out).toHaveLength(2);
    cap.stop();
  });

  it('with a pid/name filter, holds a network message until a process message claims its connection, drops the unclaimed after the hold', () => {
    const { cap, program, out } = start({ ports: [5432], processFilter: true });
    // pids may own any port: nothing can be filtered in the kernel
    expect(program.loadedWith.kernelPorts).toEqual([]);
    const t0 = 1_000_000;
    program.records.push(packetRecord(OURS, 1, 'GET /a'), packetRecord(OTHERS, 1, 'GET /b'), packetRecord({ src: ['10.9.0.2', 41002], dst: ['10.9.0.1', 5432] }, 1, 'Q'));
    cap.drainOnce(t0);
    // the port filter still applies at once; the others wait
    expect(out.map((m) => m.remotePort)).toEqual([5432]);
    // the server (a filtered pid) reads the request: its socket sees the tuple the other way round,
    // through a dual-stack socket
    cap.annotate({ l4: 'tcp', localIp: '::ffff:10.9.0.1', localPort: 8080, remoteIp: '::ffff:10.9.0.2', remotePort: 41000 } as CapturedMessage, t0 + 5);
    cap.drainOnce(t0 + 10);
    expect(out.map((m) => m.remotePort)).toEqual([5432, 8080]);
    // the response on a claimed connection goes straight through
    program.records.push(packetRecord({ src: OURS.dst, dst: OURS.src }, 7, 'HTTP/1.1 200 OK'));
    cap.drainOnce(t0 + 20);
    expect(out).toHaveLength(3);
    // nobody claims 9090: gone after the hold, never emitted
    cap.drainOnce(t0 + HOLD_MS + 1);
    cap.stop();
    expect(out.map((m) => m.remotePort)).toEqual([5432, 8080, 8080]);
  });

  it('reports a failed connect only when its port matches, once there is any filter', () => {
    const ports = start({ ports: [8080] });
    ports.program.records.push(failedConnect(['10.9.0.2', 41000], ['10.9.0.1', 8080]), failedConnect(['10.9.0.2', 41001], ['10.9.0.1', 9090]));
    ports.cap.drainOnce();
    expect(ports.failed.map((m) => m.remotePort)).toEqual([8080]);
    ports.cap.stop();
    const pids = start({ processFilter: true });
    pids.program.records.push(failedConnect(['10.9.0.2', 41000], ['10.9.0.1', 8080]));
    pids.cap.drainOnce();
    expect(pids.failed).toEqual([]);
    pids.cap.stop();
    const none = start({});
    none.program.records.push(failedConnect(['10.9.0.2', 41000], ['10.9.0.1', 8080]));
    none.cap.drainOnce();
    expect(none.failed).toHaveLength(1);
    none.cap.stop();
  });

  it('keys a connection the same either way round and across IPv4-mapped addresses', () => {
    expect(connKey('10.0.0.1', 80, '10.0.0.2', 5000)).toBe(connKey('::ffff:10.0.0.2', 5000, '::ffff:10.0.0.1', 80));
    expect(connKey('10.0.0.1', 80, '10.0.0.2', 5000)).not.toBe(connKey('10.0.0.1', 81, '10.0.0.2', 5000));
  });
});

describe('a kernel that refuses TC', () => {
  it('is said once, stops the attempts, and keeps capture running', () => {
    const { cap, program, refused } = start({}, () => 'attaching a tc filter to vethpod1 failed: EOPNOTSUPP: Operation not supported');
    expect(refused).toHaveLength(1);
    expect(cap.tcRefused).toMatch(/EOPNOTSUPP/);
    expect(program.attempts).toBe(1); // not tried on vethpod2
    cap.rescan();
    expect(program.attempts).toBe(1);
    cap.stop();
  });

  it('is said at start when the TC programs did not load (TCP health alone), with no attach attempt', () => {
    let program: FakeProgram | undefined;
    const refused: string[] = [];
    const cap = NetCapture.start(
      {
        pattern: parseInterfacePattern('veth'),
        rescanMs: 0,
        pollMs: 1_000_000,
        list: () => IFS,
        load: (o) => {
          program = new FakeProgram(o);
          program.tcUnavailable = 'loading the network BPF programs was refused by the kernel: EPERM: Operation not permitted';
          return program;
        },
        onTcRefused: (r) => refused.push(r),
      },
      { onMessage: () => undefined, onParsed: () => undefined, onSocketClosed: () => undefined },
    );
    expect(refused).toHaveLength(1);
    expect(program!.attempts).toBe(0);
    cap.stop();
  });

  it('is not concluded from one interface failing after another attached', () => {
    const { cap, program, refused } = start({}, (name) => (name === 'vethpod2' ? 'attaching tc ingress to vethpod2 failed: EINVAL: Invalid argument' : undefined));
    expect(refused).toEqual([]);
    expect(cap.tcRefused).toBeUndefined();
    expect([...program.attached.values()]).toEqual(['vethpod1']);
    cap.stop();
  });

  it('tells refusals from interface trouble', () => {
    expect(isKernelRefusal('attaching a tc filter to x failed: EPERM: Operation not permitted')).toBe(true);
    expect(isKernelRefusal('creating the clsact qdisc on x failed: errno 524: Unknown error 524')).toBe(true);
    expect(isKernelRefusal('attaching tc ingress to x failed: ENODEV: No such device')).toBe(false);
  });
});

describe('the default pattern, veth', () => {
  // `ip -json -details address show` as iproute2 prints it (trimmed)
  const links = interfacesFromIp([
    { ifindex: 1, ifname: 'lo', addr_info: [{ family: 'inet', local: '127.0.0.1', scope: 'host' }] },
    { ifindex: 2, ifname: 'eth0', addr_info: [{ family: 'inet', local: '192.0.2.2', scope: 'global' }, { family: 'inet6', local: 'fe80::1', scope: 'link' }] },
    { ifindex: 3, ifname: 'dummy7', linkinfo: { info_kind: 'dummy' }, addr_info: [] },
    // a pod's host-side end: peer in another namespace, no address but the IPv6 link-local one
    { ifindex: 4, ifname: 'vethpod', link_netnsid: 0, linkinfo: { info_kind: 'veth' }, addr_info: [{ family: 'inet6', local: 'fe80::2', scope: 'link' }] },
    // a namespace's uplink (or a pod's eth0): peer elsewhere, but its own address
    { ifindex: 5, ifname: 'uplink0', link_netnsid: 1, linkinfo: { info_kind: 'veth' }, addr_info: [{ family: 'inet', local: '10.7.0.2', scope: 'global' }] },
    // both ends in this namespace
    { ifindex: 6, ifname: 'vloop', linkinfo: { info_kind: 'veth' }, addr_info: [] },
  ]);
  it('matches host-side veth ends only: not lo, a NIC, a dummy, an addressed uplink or a local pair', () => {
    expect(selectInterfaces(links, parseInterfacePattern('veth')).map((i) => i.name)).toEqual(['vethpod']);
    expect(selectInterfaces(links, parseInterfacePattern('veth,uplink0,dummy*')).map((i) => i.name)).toEqual(['dummy7', 'vethpod', 'uplink0']);
  });
  it('"none" stands alone', () => {
    expect(() => parseInterfacePattern('none,eth0')).toThrow(/cannot be combined/);
  });
});

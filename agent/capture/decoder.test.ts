import { describe, expect, it } from 'vitest';
import { DecodeError, RecordDecoder, formatIpv6 } from './decoder.ts';
import { RT_EV_CLOSE, RT_EV_DATA, RtCloseEvent, RtDataEvent } from './layout.generated.ts';

function dataRecord(payload: string, patch: (v: DataView, b: Uint8Array) => void = () => {}): Uint8Array {
  const b = new Uint8Array(RtDataEvent.SIZE + payload.length);
  const v = new DataView(b.buffer);
  v.setUint32(RtDataEvent.kind.offset, RT_EV_DATA, true);
  v.setUint32(RtDataEvent.pid.offset, 100, true);
  v.setUint32(RtDataEvent.tid.offset, 101, true);
  v.setUint32(RtDataEvent.payload_len.offset, payload.length, true);
  v.setBigUint64(RtDataEvent.enter_ns.offset, 1_000n, true);
  v.setBigUint64(RtDataEvent.exit_ns.offset, 3_000n, true);
  v.setBigUint64(RtDataEvent.socket_id.offset, 77n, true);
  v.setBigInt64(RtDataEvent.bytes.offset, 5000n, true);
  v.setUint16(RtDataEvent.family.offset, 10, true);
  v.setUint16(RtDataEvent.local_port.offset, 8080, true);
  v.setUint16(RtDataEvent.remote_port.offset, 40000, true);
  b[RtDataEvent.l4.offset] = 6;
  b[RtDataEvent.direction.offset] = 1;
  b[RtDataEvent.role.offset] = 2;
  b[RtDataEvent.syscall.offset] = 7;
  // v4-mapped addresses on a dual-stack socket
  b.set([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 1], RtDataEvent.local_addr.offset);
  b.set([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 2], RtDataEvent.remote_addr.offset);
  b.set(Buffer.from('nginx'), RtDataEvent.comm.offset);
  b.set(Buffer.from(payload, 'latin1'), RtDataEvent.SIZE);
  patch(v, b);
  return b;
}

describe('RecordDecoder', () => {
  const dec = new RecordDecoder();
  const decode = (b: Uint8Array) => dec.decode(new DataView(b.buffer), b, 0, b.length);

  it('decodes a data record with the generated layout, mapping v4-mapped addresses to IPv4', () => {
    const r = decode(dataRecord('GET / HTTP/1.1\r\n'));
    expect(r.kind).toBe('data');
    if (r.kind !== 'data') return;
    const m = r.message;
    expect(m).toMatchObject({
      pid: 100, tid: 101, socketId: 77, bytes: 5000, family: 'ipv4', l4: 'tcp', direction: 'ingress', role: 'server',
      syscall: 'recvfrom', localIp: '10.0.0.1', remoteIp: '10.0.0.2', localPort: 8080, remotePort: 40000, processName: 'nginx',
    });
    expect(Buffer.from(m.payload).toString()).toBe('GET / HTTP/1.1\r\n');
    // Ingress time is the syscall exit.
    expect(m.tsNs - m.enterNs).toBe(2000n);
  });

  it('copies the payload so the ring slot can be reused', () => {
    const b = dataRecord('abc');
    const r = decode(b);
    b.fill(0x7a, RtDataEvent.SIZE);
    if (r.kind === 'data') expect(Buffer.from(r.message.payload).toString()).toBe('abc');
  });

  it('decodes a close record', () => {
    const b = new Uint8Array(RtCloseEvent.SIZE);
    const v = new DataView(b.buffer);
    v.setUint32(0, RT_EV_CLOSE, true);
    v.setUint32(RtCloseEvent.pid.offset, 5, true);
    v.setBigUint64(RtCloseEvent.socket_id.offset, 9n, true);
    expect(decode(b)).toMatchObject({ kind: 'close', event: { pid: 5, socketId: 9 } });
  });

  it('rejects truncated, inconsistent and unknown records with a DecodeError', () => {
    expect(() => decode(new Uint8Array(4))).toThrow(DecodeError);
    expect(() => decode(dataRecord('abc').subarray(0, 64))).toThrow(/want at least/);
    expect(() => decode(dataRecord('abc', (v) => v.setUint32(RtDataEvent.payload_len.offset, 999, true)))).toThrow(/claims 999 payload bytes/);
    expect(() => decode(dataRecord('', (v) => v.setUint32(0, 99, true)))).toThrow(/unknown record kind 99/);
  });

  it('never throws anything but DecodeError on random bytes', () => {
    let seed = 1;
    const rnd = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff);
    for (let i = 0; i < 20000; i++) {
      const b = dataRecord('x'.repeat(rnd() % 64));
      for (let k = 0; k < 4; k++) b[rnd() % b.length] = rnd() & 0xff;
      const cut = b.subarray(0, rnd() % (b.length + 1));
      try {
        decode(cut);
      } catch (err) {
        expect(err).toBeInstanceOf(DecodeError);
      }
    }
  });
});

describe('formatIpv6', () => {
  it('writes the RFC 5952 form', () => {
    const ip = (hex: string) => Uint8Array.from(Buffer.from(hex, 'hex'));
    expect(formatIpv6(ip('00000000000000000000000000000001'))).toBe('::1');
    expect(formatIpv6(ip('20010db8000000000000000000000001'))).toBe('2001:db8::1');
    expect(formatIpv6(ip('20010db8000100000001000000000001'))).toBe('2001:db8:1:0:1::1');
    expect(formatIpv6(ip('fe800000000000000000000000000000'))).toBe('fe80::');
    expect(formatIpv6(ip('00000000000000000000ffff7f000001'))).toBe('::ffff:127.0.0.1');
  });

  it('hands out payload views into the ring when asked, copies otherwise', () => {
    const b = dataRecord('GET /view HTTP/1.1\r\n');
    const copying = new RecordDecoder();
    const viewing = new RecordDecoder();
    viewing.payloadViews = true;
    const c = copying.decode(new DataView(b.buffer), b, 0, b.length);
    const v = viewing.decode(new DataView(b.buffer), b, 0, b.length);
    if (c.kind !== 'data' || v.kind !== 'data') throw new Error('not data');
    expect(Buffer.from(v.message.payload).toString('latin1')).toBe('GET /view HTTP/1.1\r\n');
    expect(v.message.payload.buffer).toBe(b.buffer);
    expect(c.message.payload.buffer).not.toBe(b.buffer);
    b[RtDataEvent.SIZE] = 0x50; // the ring is reused: a view sees it, a copy does not
    expect(String.fromCharCode(v.message.payload[0])).toBe('P');
    expect(String.fromCharCode(c.message.payload[0])).toBe('G');
  });
});

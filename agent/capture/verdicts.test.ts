import { describe, expect, it } from 'vitest';
import { DEFAULT_CAPTURE_SIZES, SocketVerdicts, parseCaptureSizes } from './verdicts.ts';
import { RT_VERDICT_CAP, RT_VERDICT_COUNT, RT_VERDICT_FULL } from './layout.generated.ts';

function target() {
  const calls: Array<[number, number, number, number]> = [];
  return { calls, setVerdict: (id: number, mode: number, e: number, i: number) => (calls.push([id, mode, e, i]), true) };
}

describe('parseCaptureSizes', () => {
  it('starts from the defaults, overrides, removes and clears', () => {
    expect(parseCaptureSizes(undefined)).toEqual(DEFAULT_CAPTURE_SIZES);
    expect(parseCaptureSizes('postgresql.request=600, http1.response=256')).toEqual({ http1: { response: 256 }, postgresql: { request: 600 } });
    expect(parseCaptureSizes('http1.response=0')).toEqual({ http1: {} });
    expect(parseCaptureSizes('none')).toEqual({});
  });
  it('rejects what it cannot read, saying why', () => {
    expect(() => parseCaptureSizes('http1=512')).toThrow(/protocol.request=bytes/);
    expect(() => parseCaptureSizes('http1.response=10')).toThrow(/between 64 and 8192/);
    expect(() => parseCaptureSizes('http1.body=512')).toThrow(/not protocol/);
  });
});

describe('SocketVerdicts', () => {
  it('caps the response direction of a recognised protocol, once per socket', () => {
    const t = target();
    const v = new SocketVerdicts(t);
    v.recognised(1, 'http1', 'ingress', false); // server: requests come in, responses go out
    v.recognised(1, 'http1', 'ingress', false);
    v.recognised(2, 'http1', 'egress', false); // client
    expect(t.calls).toEqual([
      [1, RT_VERDICT_CAP, 512, 0],
      [2, RT_VERDICT_CAP, 0, 512],
    ]);
  });
  it('tells nothing for protocols without a cap, and count-only once for unparseable sockets', () => {
    const t = target();
    const v = new SocketVerdicts(t);
    v.recognised(3, 'redis', 'egress', false);
    v.unparseable(4);
    v.unparseable(4);
    expect(t.calls).toEqual([[4, RT_VERDICT_COUNT, 0, 0]]);
    expect(v.isCountOnly(4)).toBe(true);
    v.closed(4);
    expect(v.isCountOnly(4)).toBe(false);
  });
  it('lifts HTTP caps once hook plugins are loaded, and re-decides when the protocol changes', () => {
    const t = target();
    const v = new SocketVerdicts(t);
    v.recognised(5, 'http1', 'ingress', false);
    v.recognised(5, 'http1', 'ingress', true);
    v.recognised(5, 'http1', 'ingress', true);
    v.recognised(6, 'http1', 'egress', false);
    v.recognised(6, 'redis', 'egress', false);
    expect(t.calls).toEqual([
      [5, RT_VERDICT_CAP, 512, 0],
      [5, RT_VERDICT_FULL, 0, 0],
      [6, RT_VERDICT_CAP, 0, 512],
      [6, RT_VERDICT_FULL, 0, 0],
    ]);
  });
});

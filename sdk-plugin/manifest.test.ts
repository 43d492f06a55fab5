import { describe, expect, it } from 'vitest';
import { ManifestError, parseSourceManifest } from './src/manifest.ts';

const base = { name: 'p', version: '1.0.0', hooks: ['check', 'parse'] };
const proto = (extra: Record<string, unknown>) => parseSourceManifest({ ...base, protocols: [{ name: 'rpcx', ...extra }] }).protocols[0];
const refused = (extra: Record<string, unknown>): string => {
  try {
    proto(extra);
  } catch (err) {
    expect(err).toBeInstanceOf(ManifestError);
    return (err as Error).message;
  }
  throw new Error('expected a ManifestError');
};

describe('plugin manifest: protocols[] carry the protocol descriptor', () => {
  it('reads the full descriptor', () => {
    expect(proto({ transports: ['tcp'], pairing: 'in-order', aliases: ['rpcx2'], oneWay: [{ requestType: 'NOTIFY', when: 'always' }, { requestType: 'PUSH' }], timeoutMs: 2500, sequenceSlack: [0, 4, -4] })).toEqual({
      name: 'rpcx',
      transports: ['tcp'],
      pairing: 'in-order',
      parallel: false,
      aliases: ['rpcx2'],
      oneWay: [
        { requestType: 'NOTIFY', when: 'always' },
        { requestType: 'PUSH', when: 'always' },
      ],
      timeoutMs: 2500,
      sequenceSlack: [0, 4, -4],
    });
  });

  it('still accepts the old parallel flag and maps it; the default is in-order', () => {
    expect(proto({ parallel: true })).toMatchObject({ pairing: 'by-id', parallel: true, aliases: [], oneWay: [] });
    expect(proto({ parallel: false })).toMatchObject({ pairing: 'in-order', parallel: false });
    expect(proto({})).toMatchObject({ pairing: 'in-order', parallel: false });
    expect(proto({ parallel: true, pairing: 'by-id' })).toMatchObject({ pairing: 'by-id' });
  });

  it('refuses bad values with a message naming the field and the value', () => {
    expect(refused({ pairing: 'parallel' })).toBe('protocols[0].pairing must be "in-order" or "by-id", got "parallel"');
    expect(refused({ parallel: 'yes' })).toMatch(/^protocols\[0\]\.parallel must be true or false, got "yes"/);
    expect(refused({ parallel: true, pairing: 'in-order' })).toMatch(/contradicts "pairing": "in-order"/);
    expect(refused({ aliases: 'grpc' })).toMatch(/protocols\[0\]\.aliases must be an array/);
    expect(refused({ aliases: ['Bad Name'] })).toMatch(/aliases\[0\] must be a protocol name/);
    expect(refused({ aliases: ['rpcx'] })).toMatch(/repeats the protocol's own name/);
    expect(refused({ oneWay: [{ when: 'always' }] })).toMatch(/oneWay\[0\]\.requestType must be 1-64 characters/);
    expect(refused({ oneWay: ['NOTIFY'] })).toMatch(/oneWay\[0\] must be an object/);
    expect(refused({ timeoutMs: 0 })).toMatch(/timeoutMs must be a whole number of ms in \[1, 3600000\], got 0/);
    expect(refused({ timeoutMs: 1.5 })).toMatch(/timeoutMs/);
    expect(refused({ sequenceSlack: [0, 100] })).toMatch(/sequenceSlack must be at most 8 whole numbers in \[-64, 64\]/);
  });
});

import { describe, expect, it } from 'vitest';
import { VersionRangeError, maxSatisfying, parseRange, satisfies, sortVersions } from '../../lib/marketplace/semver.ts';

describe('marketplace semver', () => {
  it('orders versions with pre-releases before their release', () => {
    expect(sortVersions(['1.10.0', '1.2.0', '1.2.0-rc.2', '1.2.0-rc.10', '1.2.0-beta', '0.9.9', 'junk'])).toEqual(['0.9.9', '1.2.0-beta', '1.2.0-rc.2', '1.2.0-rc.10', '1.2.0', '1.10.0']);
  });

  it.each([
    ['1.4.2', '^1.2', true],
    ['2.0.0', '^1.2', false],
    ['0.2.5', '^0.2.3', true],
    ['0.3.0', '^0.2.3', false],
    ['0.0.4', '^0.0.3', false],
    ['1.2.9', '~1.2.3', true],
    ['1.3.0', '~1.2.3', false],
    ['1.9.0', '1.x', true],
    ['1.2.7', '1.2.*', true],
    ['3.0.0', '*', true],
    ['1.5.0', '>=1.2.0 <2', true],
    ['2.0.0', '>=1.2.0 <2', false],
    ['3.1.0', '^1 || ^3', true],
    ['1.3.0', '1.2.0 - 1.4', true],
    ['1.5.0', '1.2.0 - 1.4', false],
    ['1.2.3', '1.2.3', true],
    ['2.0.0-rc.1', '^1', false],
    ['1.3.0-beta', '^1.2', false],
    ['1.3.0-beta.2', '>=1.3.0-beta.1 <2', true],
  ])('%s satisfies %s: %s', (v, r, want) => {
    expect(satisfies(v, r)).toBe(want);
  });

  it('picks the highest match and refuses nonsense ranges', () => {
    expect(maxSatisfying(['1.0.0', '1.9.0', '2.0.0', '1.10.0-rc.1'], '^1')).toBe('1.9.0');
    expect(maxSatisfying(['1.0.0'], '^2')).toBeUndefined();
    for (const bad of ['', '>>1', '1.2.3.4', 'latest', '^a']) expect(() => parseRange(bad), bad).toThrow(VersionRangeError);
  });
});

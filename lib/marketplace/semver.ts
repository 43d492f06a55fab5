/**
 * Just enough semver for plugin versions: parse `1.2.3` / `1.2.3-rc.1`, compare with precedence
 * rules (a pre-release sorts before its release), and match npm-style ranges.
 *
 * Ranges: `1.2.3` or `=1.2.3`, `^1.2`, `~1.2.3`, `1.x`, `1.2.*`, `*`, comparators
 * (`>=1.2.0 <2.0.0`, space = AND), `||` = OR, hyphen ranges (`1.2.0 - 1.4`). A pre-release version
 * matches only a range that names a pre-release of the same major.minor.patch (npm's rule), so
 * `^1` never picks `2.0.0-rc.1` nor `1.3.0-beta`.
 *
 * @example
 *   satisfies('1.4.2', '^1.2');          // true
 *   maxSatisfying(['1.0.0', '1.9.0', '2.0.0'], '^1'); // '1.9.0'
 */

export interface SemVer {
  major: number;
  minor: number;
  patch: number;
  pre: Array<string | number>;
  raw: string;
}

const VERSION_RE = /^(0|[1-9]\d{0,8})\.(0|[1-9]\d{0,8})\.(0|[1-9]\d{0,8})(?:-([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?$/;

/** Parses a full version (`1.2.3`, `1.2.3-rc.1`); undefined when it is not one. Build metadata (`+x`) is refused. */
export function parseVersion(v: string): SemVer | undefined {
  const m = VERSION_RE.exec(v);
  if (!m) return undefined;
  const pre = m[4] ? m[4].split('.').map((p) => (/^\d+$/.test(p) ? Number(p) : p)) : [];
  return { major: Number(m[1]), minor: Number(m[2]), patch: Number(m[3]), pre, raw: v };
}

export function compareVersions(a: SemVer, b: SemVer): number {
  if (a.major !== b.major) return a.major - b.major;
  if (a.minor !== b.minor) return a.minor - b.minor;
  if (a.patch !== b.patch) return a.patch - b.patch;
  if (a.pre.length === 0 || b.pre.length === 0) return b.pre.length - a.pre.length;
  for (let i = 0; i < Math.max(a.pre.length, b.pre.length); i++) {
    const x = a.pre[i];
    const y = b.pre[i];
    if (x === undefined) return -1;
    if (y === undefined) return 1;
    if (x === y) continue;
    if (typeof x === 'number' && typeof y === 'number') return x - y;
    if (typeof x === 'number') return -1;
    if (typeof y === 'number') return 1;
    return x < y ? -1 : 1;
  }
  return 0;
}

/** Sorts version strings ascending; strings that are not versions are dropped. */
export function sortVersions(vs: readonly string[]): string[] {
  return vs
    .map(parseVersion)
    .filter((v): v is SemVer => v !== undefined)
    .sort(compareVersions)
    .map((v) => v.raw);
}

type Op = '<' | '<=' | '>' | '>=' | '=';
interface Comparator {
  op: Op;
  v: SemVer;
}
/** A parsed range: OR of AND-sets of comparators. */
export type Range = Comparator[][];

export class VersionRangeError extends Error {}

interface Partial {
  major?: number;
  minor?: number;
  patch?: number;
  pre: Array<string | number>;
}

function partial(s: string, whole: string): Partial {
  const m = /^v?(\d+|[xX*])(?:\.(\d+|[xX*]))?(?:\.(\d+|[xX*]))?(?:-([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?$/.exec(s);
  if (!m) throw new VersionRangeError(`"${whole}" is not a version range (try ^1.2, ~1.2.3, 1.x, >=1.0.0 <2)`);
  const n = (x: string | undefined): number | undefined => (x === undefined || /^[xX*]$/.test(x) ? undefined : Number(x));
  const major = n(m[1]);
  const minor = major === undefined ? undefined : n(m[2]);
  const patch = minor === undefined ? undefined : n(m[3]);
  const pre = patch !== undefined && m[4] ? m[4].split('.').map((p) => (/^\d+$/.test(p) ? Number(p) : p)) : [];
  return { major, minor, patch, pre };
}

function ver(major: number, minor: number, patch: number, pre: Array<string | number> = []): SemVer {
  return { major, minor, patch, pre, raw: `${major}.${minor}.${patch}${pre.length ? '-' + pre.join('.') : ''}` };
}

/** The lowest pre-release of a version: `<2.0.0-0` excludes 2.0.0's pre-releases too. */
const LOW: Array<string | number> = [0];

function expand(op: string, p: Partial): Comparator[] {
  const { major, minor, patch, pre } = p;
  if (major === undefined) return op === '<' || op === '>' ? [{ op: '<', v: ver(0, 0, 0, LOW) }] : [];
  const lo = ver(major, minor ?? 0, patch ?? 0, pre);
  switch (op) {
    case '^': {
      const hi = major > 0 || minor === undefined ? ver(major + 1, 0, 0, LOW) : minor > 0 || patch === undefined ? ver(0, minor + 1, 0, LOW) : ver(0, 0, patch + 1, LOW);
      return [{ op: '>=', v: lo }, { op: '<', v: hi }];
    }
    case '~': {
      const hi = minor === undefined ? ver(major + 1, 0, 0, LOW) : ver(major, minor + 1, 0, LOW);
      return [{ op: '>=', v: lo }, { op: '<', v: hi }];
    }
    case '':
    case '=': {
      if (patch !== undefined) return [{ op: '=', v: lo }];
      const hi = minor === undefined ? ver(major + 1, 0, 0, LOW) : ver(major, minor + 1, 0, LOW);
      return [{ op: '>=', v: lo }, { op: '<', v: hi }];
    }
    case '>':
      if (patch !== undefined) return [{ op: '>', v: lo }];
      return [{ op: '>=', v: minor === undefined ? ver(major + 1, 0, 0) : ver(major, minor + 1, 0) }];
    case '>=':
      return [{ op: '>=', v: lo }];
    case '<':
      return [{ op: '<', v: patch === undefined ? ver(major, minor ?? 0, 0, LOW) : lo }];
    case '<=':
      if (patch !== undefined) return [{ op: '<=', v: lo }];
      return [{ op: '<', v: minor === undefined ? ver(major + 1, 0, 0, LOW) : ver(major, minor + 1, 0, LOW) }];
    default:
      throw new VersionRangeError(`unknown operator "${op}"`);
  }
}

/** Parses a range; throws {@link VersionRangeError} with one clear line. */
export function parseRange(range: string): Range {
  const text = range.trim();
  if (text.length === 0 || text.length > 256) throw new VersionRangeError('a version range must be 1-256 characters');
  return text.split('||').map((alt) => {
    const s = alt.trim();
    if (s === '') return [];
    const hy = /^(\S+)\s+-\s+(\S+)$/.exec(s);
    if (hy) {
      const a = partial(hy[1], range);
      const b = partial(hy[2], range);
      return [...expand('>=', a), ...expand('<=', b)];
    }
    const out: Comparator[] = [];
    // "^ 1.2" and ">= 1.2" are allowed: glue operators to what follows
    for (const tok of s.replace(/(\^|~|>=|<=|>|<|=)\s+/g, '$1').split(/\s+/)) {
      const m = /^(\^|~|>=|<=|>|<|=)?(.*)$/.exec(tok);
      out.push(...expand(m?.[1] ?? '', partial(m?.[2] ?? '', range)));
    }
    return out;
  });
}

function test(c: Comparator, v: SemVer): boolean {
  const d = compareVersions(v, c.v);
  switch (c.op) {
    case '<':
      return d < 0;
    case '<=':
      return d <= 0;
    case '>':
      return d > 0;
    case '>=':
      return d >= 0;
    case '=':
      return d === 0;
  }
}

function sameTuple(a: SemVer, b: SemVer): boolean {
  return a.major === b.major && a.minor === b.minor && a.patch === b.patch;
}

export function satisfies(version: string | SemVer, range: string | Range): boolean {
  const v = typeof version === 'string' ? parseVersion(version) : version;
  if (!v) return false;
  const r = typeof range === 'string' ? parseRange(range) : range;
  return r.some((set) => {
    if (!set.every((c) => test(c, v))) return false;
    if (v.pre.length === 0) return true;
    // a pre-release only where the range names one on the same version (LOW bounds do not count)
    return set.some((c) => c.v.pre.length > 0 && c.v.pre !== LOW && sameTuple(c.v, v));
  });
}

/** The highest version satisfying the range, or undefined. */
export function maxSatisfying(versions: readonly string[], range: string): string | undefined {
  const r = parseRange(range);
  let best: SemVer | undefined;
  for (const s of versions) {
    const v = parseVersion(s);
    if (v && satisfies(v, r) && (!best || compareVersions(v, best) > 0)) best = v;
  }
  return best?.raw;
}

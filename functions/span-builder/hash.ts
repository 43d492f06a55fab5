/**
 * Small, fast, deterministic 64-bit hashing for span ids and tag ids. Not cryptographic: it only has
 * to be stable across processes, replicas and releases (changing it changes every id: don't).
 * Two independent 32-bit murmur3-style lanes over 32-bit words.
 */

const HEX: string[] = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

const C1 = 0xcc9e2d51;
const C2 = 0x1b873593;

function mixWord(h: number, k: number): number {
  k = Math.imul(k, C1);
  k = (k << 15) | (k >>> 17);
  k = Math.imul(k, C2);
  h ^= k;
  h = (h << 13) | (h >>> 19);
  return (Math.imul(h, 5) + 0xe6546b64) | 0;
}

function fmix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** A pair of 32-bit lanes being fed words. */
export class Hash64 {
  private a: number;
  private b: number;
  private n = 0;
  constructor(seed = 0) {
    this.a = (0x9747b28c ^ seed) | 0;
    this.b = (0x5bd1e995 ^ Math.imul(seed, 31)) | 0;
  }
  word(k: number): this {
    this.a = mixWord(this.a, k | 0);
    this.b = mixWord(this.b, Math.imul(k | 0, 0x2545f491) ^ 0x68e31da4);
    this.n++;
    return this;
  }
  /** A non-negative integer below 2^53 (split in a high and a low word). */
  num(v: number): this {
    return this.word(v % 0x100000000).word(Math.floor(v / 0x100000000));
  }
  big(v: bigint): this {
    return this.word(Number(v & 0xffffffffn)).word(Number((v >> 32n) & 0xffffffffn));
  }
  str(s: string): this {
    for (let i = 0; i < s.length; i += 2) this.word(s.charCodeAt(i) | ((i + 1 < s.length ? s.charCodeAt(i + 1) : 0) << 16));
    return this.word(s.length);
  }
  /** Both lanes finalised: [high, low] unsigned 32-bit words. */
  digest(): [number, number] {
    const a = fmix(this.a ^ this.n);
    const b = fmix(this.b ^ Math.imul(this.n, 0x27d4eb2d));
    // Cross-mix so each output word depends on both lanes.
    return [fmix((a ^ Math.imul(b, 0x165667b1)) >>> 0), fmix((b + Math.imul(a, 0x9e3779b1)) >>> 0)];
  }
  hex(): string {
    const [hi, lo] = this.digest();
    return HEX[hi >>> 24] + HEX[(hi >>> 16) & 255] + HEX[(hi >>> 8) & 255] + HEX[hi & 255] + HEX[lo >>> 24] + HEX[(lo >>> 16) & 255] + HEX[(lo >>> 8) & 255] + HEX[lo & 255];
  }
  /** A positive integer below 2^53 (exact in a JS number and in JSON); never 0. */
  id53(): number {
    const [hi, lo] = this.digest();
    const v = (hi & 0x1fffff) * 0x100000000 + lo;
    return v === 0 ? 1 : v;
  }
}

/** Hash of a string, as [high, low] words; used to pre-hash agent ids once per window. */
export function stringWords(s: string): [number, number] {
  return new Hash64(7).str(s).digest();
}

/**
 * The span id: exactly `new Hash64(salt).word(a0).word(a1).num(socketId).word(tsLo).word(tsHi)
 * .word(tcpSeq).word(idx).hex()` (the span builder's key, with the timestamp already split into
 * words), without the object: it runs once per span on the hot path.
 */
export function spanIdHex(salt: number, a0: number, a1: number, socketId: number, tsLo: number, tsHi: number, tcpSeq: number, idx: number): string {
  let a = (0x9747b28c ^ salt) | 0;
  let b = (0x5bd1e995 ^ Math.imul(salt, 31)) | 0;
  const sLo = socketId % 0x100000000;
  const sHi = Math.floor(socketId / 0x100000000);
  a = mixWord(a, a0 | 0);
  b = mixWord(b, Math.imul(a0 | 0, 0x2545f491) ^ 0x68e31da4);
  a = mixWord(a, a1 | 0);
  b = mixWord(b, Math.imul(a1 | 0, 0x2545f491) ^ 0x68e31da4);
  a = mixWord(a, sLo | 0);
  b = mixWord(b, Math.imul(sLo | 0, 0x2545f491) ^ 0x68e31da4);
  a = mixWord(a, sHi | 0);
  b = mixWord(b, Math.imul(sHi | 0, 0x2545f491) ^ 0x68e31da4);
  a = mixWord(a, tsLo | 0);
  b = mixWord(b, Math.imul(tsLo | 0, 0x2545f491) ^ 0x68e31da4);
  a = mixWord(a, tsHi | 0);
  b = mixWord(b, Math.imul(tsHi | 0, 0x2545f491) ^ 0x68e31da4);
  a = mixWord(a, tcpSeq | 0);
  b = mixWord(b, Math.imul(tcpSeq | 0, 0x2545f491) ^ 0x68e31da4);
  a = mixWord(a, idx | 0);
  b = mixWord(b, Math.imul(idx | 0, 0x2545f491) ^ 0x68e31da4);
  const fa = fmix(a ^ 8);
  const fb = fmix(b ^ Math.imul(8, 0x27d4eb2d));
  const hi = fmix((fa ^ Math.imul(fb, 0x165667b1)) >>> 0);
  const lo = fmix((fb + Math.imul(fa, 0x9e3779b1)) >>> 0);
  // One flat 16-character string: 8 concatenations made 6 intermediate strings and a cons string.
  const d = HEX_CODES;
  return String.fromCharCode(
    d[hi >>> 28], d[(hi >>> 24) & 15], d[(hi >>> 20) & 15], d[(hi >>> 16) & 15], d[(hi >>> 12) & 15], d[(hi >>> 8) & 15], d[(hi >>> 4) & 15], d[hi & 15],
    d[lo >>> 28], d[(lo >>> 24) & 15], d[(lo >>> 20) & 15], d[(lo >>> 16) & 15], d[(lo >>> 12) & 15], d[(lo >>> 8) & 15], d[(lo >>> 4) & 15], d[lo & 15],
  );
}

/** Char codes of '0'..'9', 'a'..'f'. */
const HEX_CODES = new Uint8Array(Array.from({ length: 16 }, (_, i) => i.toString(16).charCodeAt(0)));

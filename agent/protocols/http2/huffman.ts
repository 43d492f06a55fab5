/**
 * The HPACK Huffman code (RFC 7541 Appendix B). The code is canonical: codes of one length are
 * consecutive and ordered by symbol, shorter lengths first, so the code lengths alone define it.
 * `CODE_LENGTHS[sym]` is the length in bits of symbol `sym` (256 = EOS); the decoder is derived from it.
 */

// prettier-ignore
const CODE_LENGTHS: readonly number[] = [
  13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, // 0x00
  28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 28, // 0x10
  6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, //          ' ' … '/'
  5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10, //              '0' … '?'
  13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, //                '@' … 'O'
  7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6, //            'P' … '_'
  15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5, //               '`' … 'o'
  6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28, //           'p' … 0x7f
  20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23, // 0x80
  24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24, // 0x90
  22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23, // 0xa0
  21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23, // 0xb0
  26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, // 0xc0
  19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27, // 0xd0
  20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23, // 0xe0
  26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26, // 0xf0
  30, //                                                               EOS
];

const MAX_LEN = 30;
/** Per code length: the first code of that length, and where its symbols start in SORTED. */
const FIRST_CODE = new Int32Array(MAX_LEN + 2);
const FIRST_INDEX = new Int32Array(MAX_LEN + 2);
const COUNT = new Int32Array(MAX_LEN + 2);
const SORTED = new Uint16Array(257);
/** For each 8-bit prefix: (symbol << 4) | code length when a code of ≤ 8 bits starts it, else 0. */
const PEEK8 = new Uint16Array(256);

(function build(): void {
  for (const l of CODE_LENGTHS) COUNT[l]++;
  let code = 0;
  let index = 0;
  for (let len = 1; len <= MAX_LEN; len++) {
    code = (code + COUNT[len - 1]) << 1;
    FIRST_CODE[len] = code;
    FIRST_INDEX[len] = index;
    index += COUNT[len];
  }
  const order = CODE_LENGTHS.map((l, sym) => [l, sym] as const).sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  order.forEach(([, sym], i) => (SORTED[i] = sym));
  // Fast path: every code of at most 8 bits (the common characters) decoded from one 8-bit peek.
  for (let sym = 0; sym < 256; sym++) {
    const len = CODE_LENGTHS[sym];
    if (len > 8) continue;
    const [code] = huffmanCode(sym);
    const first = code << (8 - len);
    for (let k = 0; k < 1 << (8 - len); k++) PEEK8[first + k] = (sym << 4) | len;
  }
})();

/** The code of a symbol (for tests and encoding fixtures): [code, length]. */
export function huffmanCode(sym: number): [number, number] {
  const len = CODE_LENGTHS[sym];
  let rank = 0;
  for (let s = 0; s < sym; s++) if (CODE_LENGTHS[s] === len) rank++;
  return [FIRST_CODE[len] + rank, len];
}

/**
 * Decode a Huffman-coded string; undefined on an invalid code, an EOS symbol, or bad padding.
 * Stops (and returns what it has) after `maxOut` characters.
 */
export function huffmanDecode(buf: Uint8Array, start: number, end: number, maxOut = 8192): string | undefined {
  let out = '';
  // Bit accumulator: `acc` holds `bits` unread bits, most significant first.
  let acc = 0;
  let bits = 0;
  let p = start;
  while (true) {
    while (bits <= 16 && p < end) {
      acc = ((acc << 8) | buf[p++]) >>> 0;
      bits += 8;
    }
    if (bits === 0) break;
    if (bits >= 8) {
      const hit = PEEK8[(acc >>> (bits - 8)) & 0xff];
      if (hit !== 0) {
        out += String.fromCharCode(hit >> 4);
        bits -= hit & 0xf;
        acc &= bits === 0 ? 0 : 0xffffffff >>> (32 - bits);
        if (out.length >= maxOut) return out;
        continue;
      }
    }
    // A longer code (or the tail): walk the canonical code bit by bit.
    let code = 0;
    let len = 0;
    let sym = -1;
    while (len < MAX_LEN) {
      if (bits === 0) {
        if (p >= end) break;
        acc = buf[p++];
        bits = 8;
      }
      bits--;
      code = (code << 1) | ((acc >>> bits) & 1);
      acc &= bits === 0 ? 0 : 0xffffffff >>> (32 - bits);
      len++;
      const off = code - FIRST_CODE[len];
      if (off >= 0 && off < COUNT[len]) {
        sym = SORTED[FIRST_INDEX[len] + off];
        break;
      }
    }
    if (sym < 0) {
      // Ran out of input inside a code: valid only as padding (< 8 bits, all ones, an EOS prefix).
      return len <= 7 && code === (1 << len) - 1 ? out : undefined;
    }
    if (sym === 256) return undefined;
    out += String.fromCharCode(sym);
    if (out.length >= maxOut) return out;
  }
  return out;
}

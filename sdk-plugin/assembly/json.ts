// A JSON field lookup over bytes (a request or response body) that allocates only for the value it
// returns. It never traps on malformed or truncated JSON: it returns null.
//
// Cost is what the host meters (fuel ≈ instructions: see ../ABI.md, "Time"), so the hot paths are
// small loops: keys are compared as raw bytes against the UTF-8 of the wanted key (decoded only
// when they contain escapes), skipped strings are scanned 8 bytes at a time for `"` or `\`, and a
// skipped object or array is one pass that counts brackets. Skipped values are not validated
// beyond balanced brackets and terminated strings; the path up to the value is.

import { Bytes } from "./bytes";

const QUOTES: u64 = 0x2222222222222222;
const SLASHES: u64 = 0x5c5c5c5c5c5c5c5c;
const ONES: u64 = 0x0101010101010101;
const HIGHS: u64 = 0x8080808080808080;
const FOLD: u64 = 0x2020202020202020;
const OPENS: u64 = 0x7b7b7b7b7b7b7b7b;
const CLOSES: u64 = 0x7d7d7d7d7d7d7d7d;

class Scanner {
  pos: i32 = 0;
  /** Whether the last string {@link skipStr} or {@link strEnd} passed contained a backslash escape. */
  escaped: bool = false;
  constructor(public ptr: usize, public end: i32) {}

  peek(): i32 {
    return this.pos < this.end ? <i32>load<u8>(this.ptr + <usize>this.pos) : -1;
  }
  ws(): void {
    let p = this.pos;
    while (p < this.end) {
      const c = load<u8>(this.ptr + <usize>p);
      if (c != 0x20 && c != 0x0a && c != 0x0d && c != 0x09) break;
      p++;
    }
    this.pos = p;
  }

  /**
   * Given `p` just after an opening quote, the offset just after the closing one, or -1 if the
   * string is not terminated. Scans 8 bytes per step for the first `"` or `\` (the has-zero-byte
   * test: the lowest flagged byte is always a true match).
   */
  strEnd(p: i32): i32 {
    const ptr = this.ptr;
    const end = this.end;
    this.escaped = false;
    while (p < end) {
      if (p + 8 <= end) {
        const w = load<u64>(ptr + <usize>p);
        const q = w ^ QUOTES;
        const s = w ^ SLASHES;
        const hit = (((q - ONES) & ~q) | ((s - ONES) & ~s)) & HIGHS;
        if (hit == 0) {
          p += 8;
          continue;
        }
        p += <i32>(ctz<u64>(hit) >> 3);
      }
      const c = load<u8>(ptr + <usize>p);
      if (c == 0x22) return p + 1;
      if (c == 0x5c) {
        this.escaped = true;
        p += 2; // the backslash and the character it escapes (a \u's hex digits are plain bytes)
      } else p++;
    }
    return -1;
  }

  /** Moves past the string whose opening quote is at `pos`; false if it is not terminated. */
  skipStr(): bool {
    const e = this.strEnd(this.pos + 1);
    if (e < 0) return false;
    this.pos = e;
    return true;
  }

  /**
   * Moves past the object or array whose bracket is at `pos`; false if it is not closed. Between
   * strings it scans 8 bytes per step for a quote or a bracket (`x | 0x20` folds `[` onto `{` and
   * `]` onto `}`).
   */
  skipContainer(): bool {
    const ptr = this.ptr;
    const end = this.end;
    let p = this.pos + 1;
    let depth = 1;
    while (p < end) {
      if (p + 8 <= end) {
        const w = load<u64>(ptr + <usize>p);
        const x = w | FOLD;
        const o = x ^ OPENS;
        const c = x ^ CLOSES;
        const q = w ^ QUOTES;
        const hit = (((o - ONES) & ~o) | ((c - ONES) & ~c) | ((q - ONES) & ~q)) & HIGHS;
        if (hit == 0) {
          p += 8;
          continue;
        }
        p += <i32>(ctz<u64>(hit) >> 3);
      }
      const b = load<u8>(ptr + <usize>p);
      p++;
      if (b == 0x22) {
        p = this.strEnd(p);
        if (p < 0) return false;
        continue;
      }
      const k = b | 0x20;
      if (k == 0x7b) depth++; // { or [
      else if (k == 0x7d && --depth == 0) { // } or ]
        this.pos = p;
        return true;
      }
    }
    return false;
  }

  /** Moves past one value; false if malformed or truncated. */
  skipValue(): bool {
    this.ws();
    const c = this.peek();
    if (c == 0x22) return this.skipStr();
    if (c == 0x7b || c == 0x5b) return this.skipContainer();
    // scalar: number, true, false, null
    const start = this.pos;
    let p = start;
    while (p < this.end) {
      const d = load<u8>(this.ptr + <usize>p);
      if (d == 0x2c || d == 0x7d || d == 0x5d || d == 0x20 || d == 0x0a || d == 0x0d || d == 0x09) break;
      p++;
    }
    this.pos = p;
    return p > start;
  }

  /** Decodes the string whose opening quote is at `from` and ends before `this.pos`. */
  decode(from: i32): string | null {
    if (!this.escaped) return String.UTF8.decodeUnsafe(this.ptr + <usize>(from + 1), <usize>(this.pos - from - 2));
    return decodeEscaped(this.ptr, from + 1, this.pos - 1);
  }
}

/** Decodes the body of a JSON string with escapes (between the quotes, [start, end)). Null if malformed. */
function decodeEscaped(ptr: usize, start: i32, end: i32): string | null {
  let out = "";
  let run = start;
  let p = start;
  while (p < end) {
    if (load<u8>(ptr + <usize>p) != 0x5c) {
      p++;
      continue;
    }
    out += String.UTF8.decodeUnsafe(ptr + <usize>run, <usize>(p - run));
    if (p + 1 >= end) return null;
    const e = load<u8>(ptr + <usize>(p + 1));
    p += 2;
    if (e == 0x6e) out += "\n";
    else if (e == 0x74) out += "\t";
    else if (e == 0x72) out += "\r";
    else if (e == 0x62) out += "\b";
    else if (e == 0x66) out += "\f";
    else if (e == 0x75) {
      if (p + 4 > end) return null;
      let code: i32 = 0;
      for (let k = 0; k < 4; k++) {
        const h = <i32>load<u8>(ptr + <usize>(p + k));
        let d: i32 = -1;
        if (h >= 0x30 && h <= 0x39) d = h - 0x30;
        else if (h >= 0x61 && h <= 0x66) d = h - 0x57;
        else if (h >= 0x41 && h <= 0x46) d = h - 0x37;
        if (d < 0) return null;
        code = (code << 4) | d;
      }
      p += 4;
      out += String.fromCharCode(code); // surrogate halves pair up in UTF-16
    } else out += String.fromCharCode(e); // \" \\ \/ (and, leniently, any other)
    run = p;
  }
  return out + String.UTF8.decodeUnsafe(ptr + <usize>run, <usize>(end - run));
}

/** Whether the `n` bytes at `a` equal the `n` UTF-16 code units at `b` (all below 0x80). */
function asciiEqual(a: usize, b: usize, n: i32): bool {
  for (let i = 0; i < n; i++) if (<u16>load<u8>(a + <usize>i) != load<u16>(b + (<usize>i << 1))) return false;
  return true;
}

/**
 * Looks up `path` (dot-separated keys, e.g. "order.txn_id") in a JSON object and returns the value:
 * strings decoded (escapes, non-ASCII), other values as their JSON text. Null when absent or malformed.
 * The first of duplicate keys wins.
 *
 *   jsonField(body, "error.message")
 */
export function jsonField(body: Bytes, path: string): string | null {
  const s = new Scanner(body.ptr, body.length);
  const pptr = changetype<usize>(path);
  const plen = path.length;
  let seg = 0;
  while (true) {
    // the next key of the path: [seg, stop) in UTF-16 code units
    let stop = seg;
    let ascii = true;
    while (stop < plen) {
      const ch = load<u16>(pptr + (<usize>stop << 1));
      if (ch == 0x2e) break;
      if (ch >= 0x80) ascii = false;
      stop++;
    }
    const key = ascii ? "" : path.substring(seg, stop);
    const want = ascii ? new ArrayBuffer(0) : String.UTF8.encode(key);
    s.ws();
    if (s.peek() != 0x7b) return null;
    s.pos++;
    while (true) {
      s.ws();
      if (s.peek() != 0x22) return null; // `}` (absent) or malformed
      const from = s.pos;
      if (!s.skipStr()) return null;
      const at = s.ptr + <usize>(from + 1);
      const len = s.pos - from - 2;
      let same = false;
      if (s.escaped) {
        const k = s.decode(from);
        same = k !== null && k == (ascii ? path.substring(seg, stop) : key);
      } else if (ascii) same = len == stop - seg && asciiEqual(at, pptr + (<usize>seg << 1), len);
      else same = len == want.byteLength && memory.compare(at, changetype<usize>(want), <usize>len) == 0;
      s.ws();
      if (s.peek() != 0x3a) return null;
      s.pos++;
      if (same) break;
      if (!s.skipValue()) return null;
      s.ws();
      const n = s.peek();
      s.pos++;
      if (n != 0x2c) return null;
    }
    if (stop >= plen) break;
    seg = stop + 1;
  }
  s.ws();
  const start = s.pos;
  if (s.peek() == 0x22) return s.skipStr() ? s.decode(start) : null;
  if (!s.skipValue()) return null;
  return String.UTF8.decodeUnsafe(s.ptr + <usize>start, <usize>(s.pos - start));
}

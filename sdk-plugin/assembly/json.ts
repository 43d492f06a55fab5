// A small, allocation-light JSON field lookup over bytes (a request or response body).
// It never traps on malformed or truncated JSON: it returns null.

import { Bytes } from "./bytes";

const MAX_DEPTH: i32 = 32;

class Scanner {
  pos: i32;
  constructor(public ptr: usize, public end: i32) {
    this.pos = 0;
  }
  peek(): i32 {
    return this.pos < this.end ? <i32>load<u8>(this.ptr + <usize>this.pos) : -1;
  }
  ws(): void {
    while (this.pos < this.end) {
      const c = load<u8>(this.ptr + <usize>this.pos);
      if (c != 0x20 && c != 0x09 && c != 0x0a && c != 0x0d) break;
      this.pos++;
    }
  }

  /** Reads a string at `pos` (which must be at a quote), decoding escapes. Null if malformed. */
  str(): string | null {
    if (this.peek() != 0x22) return null;
    this.pos++;
    let out = "";
    let run = this.pos;
    while (this.pos < this.end) {
      const c = load<u8>(this.ptr + <usize>this.pos);
      if (c == 0x22) {
        out += String.UTF8.decodeUnsafe(this.ptr + <usize>run, <usize>(this.pos - run));
        this.pos++;
        return out;
      }
      if (c == 0x5c) {
        out += String.UTF8.decodeUnsafe(this.ptr + <usize>run, <usize>(this.pos - run));
        if (this.pos + 1 >= this.end) return null;
        const e = load<u8>(this.ptr + <usize>(this.pos + 1));
        this.pos += 2;
        if (e == 0x6e) out += "\n";
        else if (e == 0x74) out += "\t";
        else if (e == 0x72) out += "\r";
        else if (e == 0x62) out += "\b";
        else if (e == 0x66) out += "\f";
        else if (e == 0x75) {
          if (this.pos + 4 > this.end) return null;
          let code: i32 = 0;
          for (let k = 0; k < 4; k++) {
            const h = <i32>load<u8>(this.ptr + <usize>(this.pos + k));
            let d: i32 = -1;
            if (h >= 0x30 && h <= 0x39) d = h - 0x30;
            else if (h >= 0x61 && h <= 0x66) d = h - 0x57;
            else if (h >= 0x41 && h <= 0x46) d = h - 0x37;
            if (d < 0) return null;
            code = (code << 4) | d;
          }
          this.pos += 4;
          out += String.fromCharCode(code); // surrogate halves pair up in UTF-16
        } else out += String.fromCharCode(e); // \" \\ \/
        run = this.pos;
        continue;
      }
      this.pos++;
    }
    return null;
  }

  /** Skips one value; false if malformed or too deep. */
  skip(depth: i32): bool {
    if (depth > MAX_DEPTH) return false;
    this.ws();
    const c = this.peek();
    if (c == 0x22) return this.str() !== null;
    if (c == 0x7b || c == 0x5b) {
      const close = c == 0x7b ? 0x7d : 0x5d;
      this.pos++;
      this.ws();
      if (this.peek() == close) {
        this.pos++;
        return true;
      }
      while (true) {
        this.ws();
        if (c == 0x7b) {
          if (this.str() === null) return false;
          this.ws();
          if (this.peek() != 0x3a) return false;
          this.pos++;
        }
        if (!this.skip(depth + 1)) return false;
        this.ws();
        const n = this.peek();
        this.pos++;
        if (n == close) return true;
        if (n != 0x2c) return false;
      }
    }
    // scalar: number, true, false, null
    const start = this.pos;
    while (this.pos < this.end) {
      const d = load<u8>(this.ptr + <usize>this.pos);
      if (d == 0x2c || d == 0x7d || d == 0x5d || d == 0x20 || d == 0x0a || d == 0x0d || d == 0x09) break;
      this.pos++;
    }
    return this.pos > start;
  }
}

/**
 * Looks up `path` (dot-separated keys, e.g. "order.txn_id") in a JSON object and returns the value:
 * strings decoded (escapes, non-ASCII), other values as their JSON text. Null when absent or malformed.
 *
 *   jsonField(body, "error.message")
 */
export function jsonField(body: Bytes, path: string): string | null {
  const s = new Scanner(body.ptr, body.length);
  const keys = path.split(".");
  for (let k = 0; k < keys.length; k++) {
    s.ws();
    if (s.peek() != 0x7b) return null;
    s.pos++;
    let found = false;
    while (true) {
      s.ws();
      if (s.peek() == 0x7d) return null;
      const key = s.str();
      if (key === null) return null;
      s.ws();
      if (s.peek() != 0x3a) return null;
      s.pos++;
      s.ws();
      if (key == keys[k]) {
        found = true;
        break;
      }
      if (!s.skip(0)) return null;
      s.ws();
      const n = s.peek();
      s.pos++;
      if (n != 0x2c) return null;
    }
    if (!found) return null;
  }
  s.ws();
  if (s.peek() == 0x22) return s.str();
  const start = s.pos;
  if (!s.skip(0)) return null;
  return String.UTF8.decodeUnsafe(s.ptr + <usize>start, <usize>(s.pos - start));
}

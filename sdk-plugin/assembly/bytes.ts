// Byte views and a bounds-checked reader over guest memory.

/** A window of guest memory (part of the input). Never outlives the hook call. */
export class Bytes {
  constructor(public ptr: usize, public length: i32) {}

  at(i: i32): u8 {
    return i >= 0 && i < this.length ? load<u8>(this.ptr + <usize>i) : 0;
  }

  slice(start: i32, end: i32 = i32.MAX_VALUE): Bytes {
    if (start < 0) start = 0;
    if (end > this.length) end = this.length;
    if (start > end) start = end;
    return new Bytes(this.ptr + <usize>start, end - start);
  }

  /** Offset of the first occurrence of `needle` (ASCII) at or after `from`, or -1. */
  indexOf(needle: string, from: i32 = 0): i32 {
    const n = needle.length;
    let i = from < 0 ? 0 : from;
    const last = this.length - n;
    if (n == 0) return i <= this.length ? i : -1;
    const np = changetype<usize>(needle);
    const first = <u8>load<u16>(np);
    const ptr = this.ptr;
    while (i <= last) {
      // a tight loop for the first byte (the host meters instructions), then compare the rest
      while (i <= last && load<u8>(ptr + <usize>i) != first) i++;
      if (i > last) return -1;
      let j = 1;
      while (j < n && load<u8>(ptr + <usize>(i + j)) == <u8>load<u16>(np + (<usize>j << 1))) j++;
      if (j == n) return i;
      i++;
    }
    return -1;
  }

  /** Whether the bytes start with `prefix` (ASCII). */
  startsWith(prefix: string): bool {
    if (prefix.length > this.length) return false;
    for (let i = 0; i < prefix.length; i++) if (load<u8>(this.ptr + <usize>i) != <u8>prefix.charCodeAt(i)) return false;
    return true;
  }

  /** Decodes as UTF-8 (invalid sequences become U+FFFD). */
  toString(): string {
    return String.UTF8.decodeUnsafe(this.ptr, <usize>this.length);
  }

  reader(): Reader {
    return new Reader(this.ptr, this.length);
  }
}

/**
 * Sequential reader. Reading past the end never traps: it returns 0 and clears `ok`, so a parser
 * can read a whole header and check `ok` once.
 */
export class Reader {
  pos: i32 = 0;
  ok: bool = true;
  constructor(public ptr: usize, public length: i32) {}

  remaining(): i32 {
    return this.length - this.pos;
  }

  private take(n: i32): usize {
    if (n < 0 || this.pos + n > this.length) {
      this.ok = false;
      this.pos = this.length;
      return 0;
    }
    const p = this.ptr + <usize>this.pos;
    this.pos += n;
    return p;
  }

  u8(): u32 {
    const p = this.take(1);
    return p ? <u32>load<u8>(p) : 0;
  }
  u16be(): u32 {
    const p = this.take(2);
    return p ? (<u32>load<u8>(p) << 8) | <u32>load<u8>(p + 1) : 0;
  }
  u16le(): u32 {
    const p = this.take(2);
    return p ? <u32>load<u16>(p) : 0;
  }
  u32be(): u32 {
    const p = this.take(4);
    return p ? bswap<u32>(load<u32>(p)) : 0;
  }
  u32le(): u32 {
    const p = this.take(4);
    return p ? load<u32>(p) : 0;
  }
  skip(n: i32): void {
    this.take(n);
  }
  bytes(n: i32): Bytes {
    const p = this.take(n);
    return p ? new Bytes(p, n) : new Bytes(this.ptr, 0);
  }
  /** `n` bytes decoded as UTF-8. */
  utf8(n: i32): string {
    const p = this.take(n);
    return p ? String.UTF8.decodeUnsafe(p, <usize>n) : "";
  }
}

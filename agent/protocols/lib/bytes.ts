/**
 * Small, allocation-light readers over captured payload bytes. Every reader is bounds-checked and
 * returns -1 / '' / undefined instead of throwing: payloads are untrusted and often truncated.
 */

const utf8 = new TextDecoder('utf-8', { fatal: false });

/** Longest string a parser copies out of a payload (resources, statements, exceptions). */
export const MAX_FIELD_CHARS = 512;

/** Decode bytes [start, end) as UTF-8, clamped to the buffer and to `max` bytes. */
export function text(buf: Uint8Array, start: number, end: number, max = MAX_FIELD_CHARS): string {
  if (start < 0) start = 0;
  if (end > buf.length) end = buf.length;
  if (end - start > max) end = utf8Boundary(buf, start, start + max);
  if (end <= start) return '';
  // Short ASCII runs are the common case (methods, paths, keys): skip the decoder's call overhead.
  if (end - start <= 32) {
    let s = '';
    for (let i = start; i < end; i++) {
      const c = buf[i];
      if (c >= 0x80) return utf8.decode(buf.subarray(start, end));
      s += String.fromCharCode(c);
    }
    return s;
  }
  return utf8.decode(buf.subarray(start, end));
}

/**
 * The largest cut ≤ `end` (and ≥ `start`) that does not split a UTF-8 character: when the byte at
 * `end` continues a character begun before it, back off to that character's lead byte. A cap or a
 * capture limit then drops the whole character instead of leaving U+FFFD.
 *
 * @example utf8Boundary(bytesOf('aé'), 0, 2) === 1   // 'é' is 2 bytes at 1..2: cutting at 2 splits it
 */
export function utf8Boundary(buf: Uint8Array, start: number, end: number): number {
  if (end >= buf.length || end <= start) return Math.min(end, buf.length);
  // At most three continuation bytes (10xxxxxx) follow a lead byte.
  let i = end;
  while (i > start && end - i < 3 && (buf[i] & 0xc0) === 0x80) i--;
  if ((buf[i] & 0xc0) === 0x80) return end; // not UTF-8 (a run of continuations): cut where asked
  if (i === end) return end; // `end` starts a character (or is ASCII)
  const lead = buf[i];
  const len = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc0 ? 2 : 1;
  return i + len <= end ? end : i;
}

/**
 * `end` moved back before a trailing partial UTF-8 character, for text whose bytes stop at a cut
 * that is not the field's real end (a capture limit).
 */
export function utf8CompleteEnd(buf: Uint8Array, start: number, end: number): number {
  if (end > buf.length) end = buf.length;
  let i = end - 1;
  while (i >= start && end - i <= 3 && (buf[i] & 0xc0) === 0x80) i--;
  if (i < start || buf[i] < 0xc0) return end;
  const lead = buf[i];
  const len = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : 2;
  return i + len > end ? i : end;
}

/** Index of the first `byte` in [start, end), or -1. */
export function indexOfByte(buf: Uint8Array, byte: number, start: number, end = buf.length): number {
  if (end > buf.length) end = buf.length;
  for (let i = start; i < end; i++) if (buf[i] === byte) return i;
  return -1;
}

/** Index of the first CRLF at or after `start`, or -1. */
export function indexOfCrlf(buf: Uint8Array, start: number, end = buf.length): number {
  if (end > buf.length) end = buf.length;
  for (let i = start; i + 1 < end; i++) if (buf[i] === 13 && buf[i + 1] === 10) return i;
  return -1;
}

export function u16be(b: Uint8Array, o: number): number {
  return o + 2 <= b.length ? (b[o] << 8) | b[o + 1] : -1;
}
export function u24be(b: Uint8Array, o: number): number {
  return o + 3 <= b.length ? (b[o] << 16) | (b[o + 1] << 8) | b[o + 2] : -1;
}
export function u32be(b: Uint8Array, o: number): number {
  return o + 4 <= b.length ? ((b[o] << 24) >>> 0) + ((b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]) : -1;
}
export function i32be(b: Uint8Array, o: number): number | undefined {
  return o + 4 <= b.length ? (b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3] : undefined;
}
export function i16be(b: Uint8Array, o: number): number | undefined {
  if (o + 2 > b.length) return undefined;
  const v = (b[o] << 8) | b[o + 1];
  return v >= 0x8000 ? v - 0x10000 : v;
}
export function u16le(b: Uint8Array, o: number): number {
  return o + 2 <= b.length ? b[o] | (b[o + 1] << 8) : -1;
}
export function u24le(b: Uint8Array, o: number): number {
  return o + 3 <= b.length ? b[o] | (b[o + 1] << 8) | (b[o + 2] << 16) : -1;
}
export function u32le(b: Uint8Array, o: number): number {
  return o + 4 <= b.length ? (b[o] | (b[o + 1] << 8) | (b[o + 2] << 16)) + ((b[o + 3] << 24) >>> 0) : -1;
}

/** True when every byte in [start, end) is printable ASCII (or tab). */
export function isPrintable(buf: Uint8Array, start: number, end: number): boolean {
  if (end > buf.length) return false;
  for (let i = start; i < end; i++) {
    const c = buf[i];
    if ((c < 0x20 && c !== 9) || c > 0x7e) return false;
  }
  return true;
}

export function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

export function asciiBytes(s: string): Uint8Array {
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i) & 0xff;
  return out;
}

/** Does `buf` at `off` start with the ASCII bytes of `prefix` (case-sensitive)? */
export function startsWithAscii(buf: Uint8Array, off: number, prefix: string): boolean {
  if (off + prefix.length > buf.length) return false;
  for (let i = 0; i < prefix.length; i++) if (buf[off + i] !== prefix.charCodeAt(i)) return false;
  return true;
}

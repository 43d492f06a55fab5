/**
 * An HPACK decoder (RFC 7541): static table, a dynamic table per connection direction, integer and
 * string (plain or Huffman) literals. Bounded: the dynamic table never exceeds `maxTableSize`, a header
 * list never exceeds `maxHeaders` entries, strings are capped.
 */

import { text } from '../lib/bytes.ts';
import { huffmanDecode } from './huffman.ts';

// prettier-ignore
const STATIC: ReadonlyArray<readonly [string, string]> = [
  ['', ''], // index 0 is unused
  [':authority', ''], [':method', 'GET'], [':method', 'POST'], [':path', '/'], [':path', '/index.html'],
  [':scheme', 'http'], [':scheme', 'https'], [':status', '200'], [':status', '204'], [':status', '206'],
  [':status', '304'], [':status', '400'], [':status', '404'], [':status', '500'], ['accept-charset', ''],
  ['accept-encoding', 'gzip, deflate'], ['accept-language', ''], ['accept-ranges', ''], ['accept', ''],
  ['access-control-allow-origin', ''], ['age', ''], ['allow', ''], ['authorization', ''], ['cache-control', ''],
  ['content-disposition', ''], ['content-encoding', ''], ['content-language', ''], ['content-length', ''],
  ['content-location', ''], ['content-range', ''], ['content-type', ''], ['cookie', ''], ['date', ''],
  ['etag', ''], ['expect', ''], ['expires', ''], ['from', ''], ['host', ''], ['if-match', ''],
  ['if-modified-since', ''], ['if-none-match', ''], ['if-range', ''], ['if-unmodified-since', ''],
  ['last-modified', ''], ['link', ''], ['location', ''], ['max-forwards', ''], ['proxy-authenticate', ''],
  ['proxy-authorization', ''], ['range', ''], ['referer', ''], ['refresh', ''], ['retry-after', ''],
  ['server', ''], ['set-cookie', ''], ['strict-transport-security', ''], ['transfer-encoding', ''],
  ['user-agent', ''], ['vary', ''], ['via', ''], ['www-authenticate', ''],
];
const STATIC_COUNT = STATIC.length - 1; // 61

const MAX_STRING = 4096;

export type HeaderList = Array<[string, string]>;

export class HpackDecoder {
  /** Oldest first from `first`; the newest is last (push and a moving start beat unshift/pop). */
  private entries: Array<[string, string]> = [];
  private first = 0;
  private size = 0;
  private maxSize: number;

  constructor(
    private readonly maxTableSize = 65536,
    private readonly maxHeaders = 128,
  ) {
    this.maxSize = Math.min(4096, maxTableSize);
  }

  get tableSize(): number {
    return this.size;
  }

  /**
   * Decode a header block. Returns the headers decoded before any error, whether the whole block
   * decoded cleanly (a cut block leaves the table as far as it got), and how many fields referred to
   * dynamic-table entries this decoder never saw (a connection open before the agent): those are
   * skipped, the rest of the block still decodes.
   */
  decode(buf: Uint8Array, start: number, end: number): { headers: HeaderList; ok: boolean; unresolved: number } {
    const headers: HeaderList = [];
    let unresolved = 0;
    let p = start;
    while (p < end) {
      const b = buf[p];
      if (b & 0x80) {
        const r = readInt(buf, p, end, 7);
        if (!r || r[0] === 0) return { headers, ok: false, unresolved };
        const e = this.lookup(r[0]);
        p = r[1];
        // An entry the encoder added before we saw the connection: skip the field, decode the rest.
        if (!e || e[0] === '') unresolved++;
        else if (headers.length < this.maxHeaders) headers.push([e[0], e[1]]);
      } else if ((b & 0xe0) === 0x20) {
        const r = readInt(buf, p, end, 5);
        if (!r || r[0] > this.maxTableSize) return { headers, ok: false, unresolved };
        this.maxSize = r[0];
        this.evict(0);
        p = r[1];
      } else {
        const indexing = (b & 0xc0) === 0x40;
        const r = readInt(buf, p, end, indexing ? 6 : 4);
        if (!r) return { headers, ok: false, unresolved };
        p = r[1];
        let name: string | undefined;
        if (r[0] === 0) {
          const s = readString(buf, p, end);
          if (!s) return { headers, ok: false, unresolved };
          name = s[0].toLowerCase();
          p = s[1];
        } else {
          name = this.lookup(r[0])?.[0];
          if (name === '') name = undefined;
        }
        const v = readString(buf, p, end);
        if (!v) return { headers, ok: false, unresolved };
        p = v[1];
        if (name === undefined) {
          // Named by an entry we never saw: the value is here but not what it is. An indexed one
          // still takes its place in the table, so later indices stay right.
          unresolved++;
          if (indexing) this.insert('', v[0]);
          continue;
        }
        if (indexing) this.insert(name, v[0]);
        if (headers.length < this.maxHeaders) headers.push([name, v[0]]);
      }
    }
    return { headers, ok: true, unresolved };
  }

  private lookup(index: number): readonly [string, string] | undefined {
    if (index <= 0) return undefined;
    if (index <= STATIC_COUNT) return STATIC[index];
    const i = this.entries.length - (index - STATIC_COUNT);
    return i >= this.first ? this.entries[i] : undefined;
  }

  private insert(name: string, value: string): void {
    const sz = name.length + value.length + 32;
    if (sz > this.maxSize) {
      this.entries = [];
      this.first = 0;
      this.size = 0;
      return;
    }
    this.evict(sz);
    this.entries.push([name, value]);
    this.size += sz;
  }

  private evict(room: number): void {
    while (this.size + room > this.maxSize && this.first < this.entries.length) {
      const e = this.entries[this.first++];
      this.size -= e[0].length + e[1].length + 32;
    }
    if (this.first > 64 && this.first * 2 > this.entries.length) {
      this.entries = this.entries.slice(this.first);
      this.first = 0;
    }
  }
}

/** An HPACK integer with an N-bit prefix: [value, next position]. */
export function readInt(buf: Uint8Array, p: number, end: number, prefix: number): [number, number] | undefined {
  if (p >= end) return undefined;
  const mask = (1 << prefix) - 1;
  let v = buf[p] & mask;
  p++;
  if (v < mask) return [v, p];
  let shift = 0;
  while (p < end) {
    const b = buf[p++];
    v += (b & 0x7f) * 2 ** shift;
    shift += 7;
    if (v > 0x7fffffff || shift > 35) return undefined;
    if ((b & 0x80) === 0) return [v, p];
  }
  return undefined;
}

function readString(buf: Uint8Array, p: number, end: number): [string, number] | undefined {
  if (p >= end) return undefined;
  const huff = (buf[p] & 0x80) !== 0;
  const r = readInt(buf, p, end, 7);
  if (!r) return undefined;
  const [len, s] = r;
  if (s + len > end) return undefined;
  const str = huff ? huffmanDecode(buf, s, s + len, MAX_STRING) : text(buf, s, s + len, MAX_STRING);
  if (str === undefined) return undefined;
  return [str, s + len];
}

// The decoded input of a hook call: context header, HTTP fields (for HTTP hooks) and the payload.

import { HEADER_SIZE, HOOK_HTTP_REQUEST, Tag } from "./abi";
import { Bytes } from "./bytes";
import { jsonField } from "./json";

export class Input {
  hook: u8 = 0;
  /** 0 = egress (this process sent the bytes), 1 = ingress. */
  direction: u8 = 0;
  /** 0 = unknown, 1 = client, 2 = server. */
  role: u8 = 0;
  /** 0 = TCP, 1 = UDP. */
  l4: u8 = 0;
  localPort: u16 = 0;
  remotePort: u16 = 0;
  /** Bytes the syscall moved; more than `payload.length` when the capture was cut short. */
  totalBytes: u32 = 0;
  socketId: u64 = 0;
  fields: Bytes = new Bytes(0, 0);
  /** The captured payload head. */
  payload: Bytes = new Bytes(0, 0);
  private bodyCache: Bytes | null = null;

  /** Decodes the input the host passed to a hook. */
  static read(ptr: usize, len: i32): Input {
    const inp = new Input();
    if (len < HEADER_SIZE) return inp;
    inp.hook = load<u8>(ptr);
    inp.direction = load<u8>(ptr + 1);
    inp.role = load<u8>(ptr + 2);
    inp.l4 = load<u8>(ptr + 3);
    inp.localPort = load<u16>(ptr + 4);
    inp.remotePort = load<u16>(ptr + 6);
    inp.totalBytes = load<u32>(ptr + 8);
    const fl = <i32>load<u32>(ptr + 12);
    const pl = <i32>load<u32>(ptr + 16);
    inp.socketId = load<u64>(ptr + 24);
    if (fl < 0 || pl < 0 || HEADER_SIZE + fl + pl > len) return inp;
    inp.fields = new Bytes(ptr + <usize>HEADER_SIZE, fl);
    inp.payload = new Bytes(ptr + <usize>(HEADER_SIZE + fl), pl);
    return inp;
  }

  isEgress(): bool {
    return this.direction == 0;
  }
  isRequestHook(): bool {
    return this.hook == HOOK_HTTP_REQUEST;
  }

  /** A field the built-in parser extracted (HTTP hooks), as a string; null if absent. */
  field(tag: u8): string | null {
    const f = this.fields;
    let o: i32 = 0;
    while (o + 5 <= f.length) {
      const t = load<u8>(f.ptr + <usize>o);
      const n = <i32>load<u32>(f.ptr + <usize>(o + 1));
      if (n < 0 || o + 5 + n > f.length) return null;
      if (t == tag) return String.UTF8.decodeUnsafe(f.ptr + <usize>(o + 5), <usize>n);
      o += 5 + n;
    }
    return null;
  }

  private fieldU32(tag: u8): i64 {
    const f = this.fields;
    let o: i32 = 0;
    while (o + 5 <= f.length) {
      const t = load<u8>(f.ptr + <usize>o);
      const n = <i32>load<u32>(f.ptr + <usize>(o + 1));
      if (n < 0 || o + 5 + n > f.length) return -1;
      if (t == tag && n == 4) return <i64>load<u32>(f.ptr + <usize>(o + 5));
      o += 5 + n;
    }
    return -1;
  }

  /** HTTP method (request hooks). */
  method(): string | null { return this.field(Tag.REQUEST_TYPE); }
  /** Host or :authority. */
  host(): string | null { return this.field(Tag.REQUEST_DOMAIN); }
  /** Request path. */
  path(): string | null { return this.field(Tag.REQUEST_RESOURCE); }
  /** HTTP status code (response hooks), or -1. */
  statusCode(): i32 { return <i32>this.fieldU32(Tag.RESPONSE_CODE); }

  /**
   * An HTTP/1 header from the raw payload head, matched case-insensitively; null if absent.
   * (HTTP/2 headers are HPACK-compressed: use the fields the built-in parser passed instead.)
   */
  header(name: string): string | null {
    const p = this.payload;
    let line = p.indexOf("\r\n");
    while (line >= 0 && line + 2 < p.length) {
      const start = line + 2;
      const end = p.indexOf("\r\n", start);
      const stop = end < 0 ? p.length : end;
      if (stop == start) return null; // blank line: end of headers
      if (stop - start > name.length && load<u8>(p.ptr + <usize>(start + name.length)) == 0x3a) {
        let same = true;
        for (let i = 0; i < name.length && same; i++) {
          let c = <i32>load<u8>(p.ptr + <usize>(start + i));
          let d = name.charCodeAt(i);
          if (c >= 0x41 && c <= 0x5a) c += 32;
          if (d >= 0x41 && d <= 0x5a) d += 32;
          same = c == d;
        }
        if (same) {
          let v = start + name.length + 1;
          while (v < stop && load<u8>(p.ptr + <usize>v) == 0x20) v++;
          return String.UTF8.decodeUnsafe(p.ptr + <usize>v, <usize>(stop - v));
        }
      }
      line = end;
    }
    return null;
  }

  /** The HTTP/1 body in the captured head (after the blank line; first chunk if chunked). */
  body(): Bytes {
    const cached = this.bodyCache;
    if (cached !== null) return cached;
    const p = this.payload;
    const sep = p.indexOf("\r\n\r\n");
    let b = sep < 0 ? new Bytes(p.ptr, 0) : p.slice(sep + 4);
    const te = this.header("transfer-encoding");
    if (te !== null && te.toLowerCase().includes("chunked")) {
      const eol = b.indexOf("\r\n");
      b = eol < 0 ? new Bytes(b.ptr, 0) : b.slice(eol + 2);
    }
    this.bodyCache = b;
    return b;
  }

  /** A JSON field of the body (see {@link jsonField}). */
  jsonField(path: string): string | null {
    return jsonField(this.body(), path);
  }
}

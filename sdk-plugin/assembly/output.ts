// Result builders: what a hook returns, encoded as [u32 length][TLV records] on the guest heap.

import { MsgType, Status, Tag } from "./abi";

/**
 * Builds a hook result. For `parse`, call `request()` or `response()` to open each message, then
 * set its fields; for HTTP hooks, set fields directly. Return `finish()` from the hook.
 *
 *   return new Output().response().requestId(id).status(Status.Ok).finish();
 */
export class Output {
  private buf: usize;
  private cap: i32;
  private len: i32;

  constructor() {
    this.cap = 256;
    this.buf = heap.alloc(256);
    this.len = 4;
  }

  private record(tag: u8, n: i32): usize {
    const need = this.len + 5 + n;
    if (need > this.cap) {
      let c = this.cap << 1;
      while (c < need) c <<= 1;
      this.buf = heap.realloc(this.buf, <usize>c);
      this.cap = c;
    }
    const p = this.buf + <usize>this.len;
    store<u8>(p, tag);
    store<u32>(p + 1, <u32>n);
    this.len = need;
    return p + 5;
  }

  /** Any string field by tag (UTF-8 encoded). */
  str(tag: u8, s: string): Output {
    const n = String.UTF8.byteLength(s);
    const p = this.record(tag, n);
    String.UTF8.encodeUnsafe(changetype<usize>(s), s.length, p);
    return this;
  }
  u32(tag: u8, v: u32): Output {
    store<u32>(this.record(tag, 4), v);
    return this;
  }

  request(): Output {
    store<u8>(this.record(Tag.MESSAGE, 1), <u8>MsgType.Request);
    return this;
  }
  response(): Output {
    store<u8>(this.record(Tag.MESSAGE, 1), <u8>MsgType.Response);
    return this;
  }

  requestType(s: string): Output { return this.str(Tag.REQUEST_TYPE, s); }
  domain(s: string): Output { return this.str(Tag.REQUEST_DOMAIN, s); }
  resource(s: string): Output { return this.str(Tag.REQUEST_RESOURCE, s); }
  endpoint(s: string): Output { return this.str(Tag.ENDPOINT, s); }
  requestId(id: u32): Output { return this.u32(Tag.REQUEST_ID, id); }
  code(c: i32): Output { return this.u32(Tag.RESPONSE_CODE, <u32>c); }
  status(s: Status): Output {
    store<u8>(this.record(Tag.RESPONSE_STATUS, 1), <u8>s);
    return this;
  }
  exception(s: string): Output { return this.str(Tag.RESPONSE_EXCEPTION, s); }
  requestLength(n: u32): Output { return this.u32(Tag.REQUEST_LENGTH, n); }
  responseLength(n: u32): Output { return this.u32(Tag.RESPONSE_LENGTH, n); }
  traceId(s: string): Output { return this.str(Tag.TRACE_ID, s); }
  spanId(s: string): Output { return this.str(Tag.SPAN_ID, s); }
  parentSpanId(s: string): Output { return this.str(Tag.PARENT_SPAN_ID, s); }
  xRequestId(s: string): Output { return this.str(Tag.X_REQUEST_ID, s); }
  businessId(s: string): Output { return this.str(Tag.BUSINESS_ID, s); }
  truncated(): Output {
    this.record(Tag.TRUNCATED, 0);
    return this;
  }
  /** A request the protocol never answers (the span closes at once instead of timing out). */
  oneWay(): Output {
    this.record(Tag.ONE_WAY, 0);
    return this;
  }
  version(s: string): Output { return this.str(Tag.VERSION, s); }
  attribute(key: string, value: string): Output {
    const kn = String.UTF8.byteLength(key);
    const vn = String.UTF8.byteLength(value);
    const p = this.record(Tag.ATTRIBUTE, 4 + kn + vn);
    store<u32>(p, <u32>kn);
    String.UTF8.encodeUnsafe(changetype<usize>(key), key.length, p + 4);
    String.UTF8.encodeUnsafe(changetype<usize>(value), value.length, p + 4 + <usize>kn);
    return this;
  }

  /** The pointer to return from the hook. */
  finish(): usize {
    store<u32>(this.buf, <u32>(this.len - 4));
    return this.buf;
  }
}

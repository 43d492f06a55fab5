// tinyrpc: a small length-prefixed binary RPC, parallel on one connection (responses pair with
// requests by id, in any order). Frame, big-endian:
//
//   u32 length of the rest | "TR" | u8 kind (1 request, 2 response) | u32 request id | body
//   request body:  u8 method length, method (UTF-8), argument bytes
//   response body: u8 status (0 ok, 1 bad request, 2 server error), result bytes (error text if status != 0)
//
// One read can hold several frames (pipelining); the last one may be cut by the capture limit.

import { Input, Output, Reader, Status } from "@riptide/sdk-plugin/assembly";
export { riptide_abi_v1, riptide_alloc } from "@riptide/sdk-plugin/assembly";

const MAGIC0: u32 = 0x54; // 'T'
const MAGIC1: u32 = 0x52; // 'R'
const MIN_FRAME: u32 = 7; // magic + kind + id
const MAX_FRAME: u32 = 16 << 20;
const MAX_FRAMES: i32 = 64;

function looksLikeFrame(r: Reader): bool {
  const len = r.u32be();
  const m0 = r.u8();
  const m1 = r.u8();
  const kind = r.u8();
  return r.ok && m0 == MAGIC0 && m1 == MAGIC1 && (kind == 1 || kind == 2) && len >= MIN_FRAME && len <= MAX_FRAME;
}

export function riptide_check(ptr: usize, len: i32): i32 {
  const input = Input.read(ptr, len);
  return input.l4 == 0 && looksLikeFrame(input.payload.reader()) ? 1 : 0;
}

export function riptide_parse(ptr: usize, len: i32): usize {
  const input = Input.read(ptr, len);
  const r = input.payload.reader();
  const out = new Output();
  let frames = 0;
  while (r.remaining() >= 11 && frames < MAX_FRAMES) {
    const start = r.pos;
    if (!looksLikeFrame(r)) break;
    r.pos = start;
    const frameLen = r.u32be();
    r.skip(2);
    const kind = r.u8();
    const id = r.u32be();
    const bodyLen = <i32>frameLen - 7;
    const available = r.remaining();
    const cut = bodyLen > available;
    const body = r.bytes(cut ? available : bodyLen).reader();
    if (kind == 1) {
      out.request().requestId(id).requestLength(frameLen + 4).requestType("CALL");
      const mlen = body.u8();
      const method = body.utf8(<i32>mlen);
      if (body.ok) out.resource(method).endpoint(method);
    } else {
      out.response().requestId(id).responseLength(frameLen + 4);
      const status = body.u8();
      out.code(<i32>status);
      if (status == 0) out.status(Status.Ok);
      else {
        out.status(status == 1 ? Status.ClientError : Status.ServerError);
        const msg = body.utf8(body.remaining());
        if (msg.length > 0) out.exception(msg);
      }
    }
    if (cut) {
      out.truncated();
      break;
    }
    frames++;
  }
  return frames == 0 && r.pos == 0 ? 0 : out.finish();
}

/**
 * The framing loop shared by every stream (TCP) parser: split and coalesced reads, pipelining, and
 * payloads truncated at the capture limit.
 *
 * A syscall moves `ctx.bytes` bytes of which only the head (`payload`, up to the capture limit) was
 * copied. Each call frames messages from the start of the payload:
 *   - a message whose header is split across syscalls is kept (bounded) and completed next call;
 *   - a message whose body runs past this syscall leaves a `skip` count so its continuation in the
 *     next syscalls is not mistaken for a message start;
 *   - a message cut by the capture limit is reported with what was captured, marked `truncated`.
 * After the first recognised message, bytes that do not frame are dropped silently (returning [])
 * rather than reported as "not this protocol": the stream is known, only this read is unreadable.
 */

import type { L7Message, ParseContext } from '../parser.ts';
import { concat } from './bytes.ts';

/** Returned by a framer: the header is incomplete, come back with more bytes. */
export const NEED_MORE = -1;
/** Returned by a framer: these bytes do not start a message of this protocol. */
export const INVALID = -2;
/** Returned by a framer: messages were emitted from a cut header, their wire length is unknown. */
export const UNKNOWN_LENGTH = -3;

/** Most bytes of an incomplete header kept between two reads of one socket direction. */
export const MAX_PENDING = 2048;

export interface StreamState {
  pending?: Uint8Array;
  skip: number;
  seen: boolean;
}

export interface StreamFramer {
  /**
   * Frame one message starting at `buf[off]` (bytes up to `end` are available; `cut` says the wire
   * had more that was not captured). Push the messages it carries into `out` and return its total
   * length on the wire (which may run past `end`), or NEED_MORE / INVALID / UNKNOWN_LENGTH.
   * Must push nothing when it returns NEED_MORE or INVALID.
   */
  frame(buf: Uint8Array, off: number, end: number, cut: boolean, ctx: ParseContext, out: L7Message[]): number;
  /**
   * Optional: continue a body that streams across calls (HTTP/1 chunked). Return the bytes
   * consumed at `off` (may run past `end`, up to `wire`), 0 when no body is in progress, or
   * NEED_MORE when a chunk header is split and must be completed by the next read.
   */
  resume?(buf: Uint8Array, off: number, end: number, wire: number, ctx: ParseContext): number;
}

export function streamState(ctx: ParseContext): StreamState {
  let st = ctx.state.stream as StreamState | undefined;
  if (!st) {
    st = { skip: 0, seen: false };
    ctx.state.stream = st;
  }
  return st;
}

/**
 * Bytes of an incomplete header kept from earlier reads of this socket direction (0 when none): the
 * next message framed starts that many bytes before the next read's payload. The registry moves the
 * captured message's TCP sequence back by it, so a message read in pieces carries the sequence of
 * its first byte, as the other end saw it (Go's net/http server reads a keep-alive connection's next
 * byte ahead, alone: the request then arrives as 1 byte + the rest).
 */
export function pendingBytes(state: Record<string, unknown>): number {
  return (state.stream as StreamState | undefined)?.pending?.length ?? 0;
}

export function parseStream(payload: Uint8Array, ctx: ParseContext, framer: StreamFramer, maxPending = MAX_PENDING): L7Message[] | null {
  const st = streamState(ctx);
  let data = payload;
  let wire = Math.max(ctx.bytes, payload.length);
  if (st.pending) {
    data = concat(st.pending, payload);
    wire += st.pending.length;
    st.pending = undefined;
  }
  const cut = wire > data.length;
  const out: L7Message[] = [];
  let pos = 0;
  if (st.skip > 0) {
    const s = Math.min(st.skip, wire);
    st.skip -= s;
    pos = s;
  }
  let first = true;
  while (pos < data.length) {
    if (framer.resume) {
      const c = framer.resume(data, pos, data.length, wire, ctx);
      if (c > 0) {
        pos += c;
        continue;
      }
      if (c === NEED_MORE) {
        keepPending(st, data, pos, cut, maxPending);
        break;
      }
    }
    const before = out.length;
    const r = framer.frame(data, pos, data.length, cut, ctx, out);
    if (r === INVALID) {
      if (first && !st.seen) return null;
      break;
    }
    if (r === NEED_MORE) {
      keepPending(st, data, pos, cut, maxPending);
      break;
    }
    st.seen = true;
    first = false;
    if (r === UNKNOWN_LENGTH) {
      markTruncated(out, before, cut);
      break;
    }
    const endPos = pos + Math.max(r, 1);
    if (endPos > data.length) {
      markTruncated(out, before, cut);
      // What follows on the wire past the captured head is unknown; only a remainder that runs
      // into later syscalls can be skipped there.
      if (endPos > wire) st.skip = Math.min(endPos - wire, Number.MAX_SAFE_INTEGER);
      break;
    }
    pos = endPos;
  }
  return out;
}

function keepPending(st: StreamState, data: Uint8Array, pos: number, cut: boolean, maxPending: number): void {
  if (!cut && data.length - pos <= maxPending) st.pending = data.slice(pos);
}

function markTruncated(out: L7Message[], from: number, really: boolean): void {
  if (!really) return;
  for (let i = from; i < out.length; i++) out[i].truncated = true;
}

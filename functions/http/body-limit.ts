/**
 * Request body caps enforced while the body streams in: a declared `Content-Length` over the cap is
 * refused before a byte is read; otherwise (chunked, or a length that lies) the bytes are counted as
 * they arrive and the request is answered 413 the moment the count passes the cap — the rest of the
 * body is never buffered. A body within the cap is buffered (it is at most `maxBytes`) and handed on
 * as a plain body, so handlers read it with `c.req.json()`/`arrayBuffer()` as usual and never see a
 * half-read stream.
 *
 * What happens to the unread rest is the server's business: @hono/node-server drains up to 64 MiB
 * for at most 500 ms so the client can read the 413, then closes the connection.
 *
 * Every refusal counts in `riptide_http_bodies_refused_total{limit}`.
 *
 * @example
 *   app.use('*', bodyLimit({ maxBytes: DEFAULT_LIMITS.jsonBytes, limit: 'json', metrics }));
 */
import type { Context, MiddlewareHandler } from 'hono';
import type { MetricsRegistry } from '../../agent/metrics.ts';

/** The caps of every endpoint that takes a body (bytes on the wire, before any decompression). */
export interface BodyLimits {
  /** JSON APIs (`POST /api/v1/sql`, custom tags): 1 MiB — a query or a tag update is a few KiB. */
  jsonBytes: number;
  /**
   * OTLP/HTTP `POST /v1/traces` (also the cap after gunzip): 16 MiB. An SDK batch is 512 spans,
   * ~0.5-2 MiB; the OpenTelemetry Collector's default cap on its own OTLP/HTTP receiver is 20 MiB.
   */
  otlpBytes: number;
  /** Object-created events on `POST /events`: 1 MiB — an S3 notification is ~1 KiB a record. */
  eventsBytes: number;
}

export const DEFAULT_LIMITS: Readonly<BodyLimits> = { jsonBytes: 1 << 20, otlpBytes: 16 << 20, eventsBytes: 1 << 20 };

/** Defaults overlaid with what was given; throws on a cap that is not a positive integer. */
export function resolveLimits(given: Partial<BodyLimits> = {}): BodyLimits {
  const out = { ...DEFAULT_LIMITS, ...given };
  for (const [k, v] of Object.entries(out)) {
    if (!Number.isSafeInteger(v) || v < 1) throw new RangeError(`body limit ${k} must be a positive integer of bytes, got ${String(v)}`);
  }
  return out;
}

export interface BodyLimitOptions {
  maxBytes: number;
  /** Label of `riptide_http_bodies_refused_total`: which cap refused it. */
  limit: string;
  metrics?: MetricsRegistry;
  /** The 413 to send (default `{ error }` JSON); `message` names the cap. */
  respond?: (c: Context, message: string) => Response | Promise<Response>;
}

/** "1 MiB", "16 MiB", "65 KiB", "512 bytes". */
export function formatBytes(n: number): string {
  if (n >= 1 << 20 && n % (1 << 20) === 0) return `${n / (1 << 20)} MiB`;
  if (n >= 1 << 10 && n % (1 << 10) === 0) return `${n / (1 << 10)} KiB`;
  return n === 1 ? '1 byte' : `${n} bytes`;
}

/** Read a stream into one buffer, giving up (undefined) as soon as more than `max` bytes came. */
export async function readAtMost(body: ReadableStream<Uint8Array>, max: number): Promise<Uint8Array | undefined> {
  const reader = body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.byteLength;
      // Not cancelled: cancelling the Node request stream destroys the socket before the 413 is out.
      if (size > max) return undefined;
      chunks.push(value);
    }
  } finally {
    reader.releaseLock();
  }
  const out = new Uint8Array(size);
  let at = 0;
  for (const ch of chunks) {
    out.set(ch, at);
    at += ch.byteLength;
  }
  return out;
}

export function bodyLimit(o: BodyLimitOptions): MiddlewareHandler {
  const refused = o.metrics?.counter('riptide_http_bodies_refused_total', 'Request bodies refused (413) for passing their cap, by limit');
  const message = `request body larger than ${formatBytes(o.maxBytes)} (the ${o.limit} limit)`;
  const refuse = (c: Context): Response | Promise<Response> => {
    refused?.inc({ limit: o.limit });
    return o.respond ? o.respond(c, message) : c.json({ error: message }, 413);
  };
  return async function bodyLimitMiddleware(c, next) {
    const raw = c.req.raw;
    if (!raw.body) return next();
    const declared = raw.headers.get('content-length');
    if (declared !== null && !raw.headers.has('transfer-encoding') && Number(declared) > o.maxBytes) return refuse(c);
    let body: Uint8Array | undefined;
    try {
      body = await readAtMost(raw.body, o.maxBytes);
    } catch (err) {
      // The client went away mid-body (or sent broken chunked framing): its fault, not a 5xx.
      return c.json({ error: `cannot read the request body: ${(err instanceof Error ? err.message : String(err)).split('\n')[0].slice(0, 200)}` }, 400);
    }
    if (!body) return refuse(c);
    c.req.raw = new Request(raw, { body: body as Uint8Array<ArrayBuffer> });
    return next();
  };
}

import { Hono } from 'hono';
import { describe, expect, it } from 'vitest';
import { MetricsRegistry } from '../../agent/metrics.ts';
import { DEFAULT_LIMITS, bodyLimit, formatBytes, readAtMost, resolveLimits } from './body-limit.ts';

/** A stream of `n` chunks of `size` bytes that records how many were pulled. */
function counted(n: number, size: number): { stream: ReadableStream<Uint8Array>; pulled: () => number } {
  let i = 0;
  const stream = new ReadableStream<Uint8Array>({
    pull(ctl) {
      if (i === n) return ctl.close();
      i++;
      ctl.enqueue(new Uint8Array(size).fill(0x61));
    },
  });
  return { stream, pulled: () => i };
}

function echoApp(maxBytes: number, metrics = new MetricsRegistry()): Hono {
  const app = new Hono();
  app.post('/echo', bodyLimit({ maxBytes, limit: 'test', metrics }), async (c) => c.json({ got: (await c.req.text()).length }));
  return app;
}

const post = (app: Hono, body: string | ReadableStream<Uint8Array>, headers: Record<string, string> = {}): Promise<Response> =>
  Promise.resolve(app.request('/echo', { method: 'POST', body, headers, duplex: 'half' } as RequestInit));

describe('bodyLimit', () => {
  it('passes a body within the cap through, whole and readable as usual', async () => {
    const r = await post(echoApp(10), 'x'.repeat(10));
    expect(r.status).toBe(200);
    expect(await r.json()).toEqual({ got: 10 });
  });

  it('refuses a streamed body at the cap without pulling the rest', async () => {
    const m = new MetricsRegistry();
    const { stream, pulled } = counted(1000, 1024);
    const r = await post(echoApp(4096, m), stream);
    expect(r.status).toBe(413);
    expect(await r.json()).toEqual({ error: 'request body larger than 4 KiB (the test limit)' });
    // 5 chunks make 5 KiB > 4 KiB: the stream may run a chunk or two ahead (its queue), not 1000.
    expect(pulled()).toBeLessThanOrEqual(7);
    expect(m.render()).toContain('riptide_http_bodies_refused_total{limit="test"} 1');
  });

  it('refuses a declared Content-Length over the cap before reading', async () => {
    const { stream, pulled } = counted(10, 1);
    const r = await post(echoApp(4), stream, { 'content-length': '100' });
    expect(r.status).toBe(413);
    expect(pulled()).toBeLessThanOrEqual(1);
  });

  it('counts the bytes even when Content-Length claims a small body', async () => {
    const { stream } = counted(10, 100);
    const r = await post(echoApp(500), stream, { 'content-length': '10', 'transfer-encoding': 'chunked' });
    expect(r.status).toBe(413);
  });

  it('a body that breaks off mid-way is a 400 with the reason, not a 5xx', async () => {
    let sent = false;
    const broken = new ReadableStream<Uint8Array>({
      pull(ctl) {
        if (sent) return ctl.error(new Error('Client connection prematurely closed.'));
        sent = true;
        ctl.enqueue(new Uint8Array(3));
      },
    });
    const r = await post(echoApp(100), broken);
    expect(r.status).toBe(400);
    expect(await r.json()).toEqual({ error: 'cannot read the request body: Client connection prematurely closed.' });
  });

  it('uses the caller\'s 413 response when given', async () => {
    const app = new Hono();
    app.post('/echo', bodyLimit({ maxBytes: 1, limit: 'x', respond: (c, msg) => c.json({ error: msg, reason: 'too_large' }, 413) }), (c) => c.text('no'));
    const r = await post(app, 'abc');
    expect(await r.json()).toEqual({ error: 'request body larger than 1 byte (the x limit)', reason: 'too_large' });
  });
});

describe('limits', () => {
  it('readAtMost joins chunks and gives up past the cap', async () => {
    expect(await readAtMost(counted(3, 2).stream, 6)).toEqual(new Uint8Array(6).fill(0x61));
    expect(await readAtMost(counted(4, 2).stream, 6)).toBeUndefined();
  });

  it('defaults, overrides and refuses nonsense', () => {
    expect(resolveLimits()).toEqual(DEFAULT_LIMITS);
    expect(resolveLimits({ otlpBytes: 1000 })).toEqual({ ...DEFAULT_LIMITS, otlpBytes: 1000 });
    expect(() => resolveLimits({ jsonBytes: -1 })).toThrow('body limit jsonBytes must be a positive integer of bytes, got -1');
    expect(() => resolveLimits({ eventsBytes: Number.NaN })).toThrow(/eventsBytes/);
    expect([formatBytes(1 << 20), formatBytes(16 << 20), formatBytes(3 << 10), formatBytes(1000)]).toEqual(['1 MiB', '16 MiB', '3 KiB', '1000 bytes']);
  });
});

import { describe, expect, it } from 'vitest';
import type { OtlpSpan } from './otlp.ts';
import { chunkByDay } from '../storage/span-writer.ts';
import { otlpToRows, refuseSpan } from './otlp.ts';

const NOW_MS = Date.UTC(2026, 5, 1, 12);
const ns = (ms: number): bigint => BigInt(ms) * 1_000_000n;
const span = (startNs: bigint, endNs: bigint, attributes: OtlpSpan['attributes'] = {}): OtlpSpan => ({
  traceId: 'ab'.repeat(16),
  spanId: 'cd'.repeat(8),
  parentSpanId: '',
  name: 'op',
  kind: 2,
  startNs,
  endNs,
  attributes,
  statusCode: 0,
  statusMessage: '',
  resource: { 'service.name': 's' },
});

describe('OTLP span times', () => {
  const W = { maxAgeMs: 7 * 86400e3, maxFutureMs: 3600e3 };
  it.each([
    ['now', ns(NOW_MS), ns(NOW_MS + 5), undefined],
    ['6 days ago', ns(NOW_MS - 6 * 86400e3), ns(NOW_MS - 6 * 86400e3), undefined],
    ['ending before it starts (clamped later)', ns(NOW_MS), ns(NOW_MS - 1000), undefined],
    ['30 minutes ahead (skew)', ns(NOW_MS + 1800e3), ns(NOW_MS + 1800e3), undefined],
    ['0', 0n, 0n, 'time_out_of_range'],
    ['negative', -5n, 0n, 'time_out_of_range'],
    ['8 days ago', ns(NOW_MS - 8 * 86400e3), ns(NOW_MS), 'time_out_of_range'],
    ['2 hours ahead', ns(NOW_MS + 7200e3), ns(NOW_MS + 7200e3), 'time_out_of_range'],
    ['u64 max', 2n ** 64n - 1n, 2n ** 64n - 1n, 'time_out_of_range'],
    ['40 digits', 10n ** 39n, 10n ** 39n, 'time_out_of_range'],
    ['an end past the window', ns(NOW_MS), 2n ** 63n, 'time_out_of_range'],
  ])('%s', (_what, s, e, reason) => {
    expect(refuseSpan(span(s, e), NOW_MS, W)?.reason).toBe(reason);
  });

  it('start 0 is refused even when the retention reaches back to 1970', () => {
    expect(refuseSpan(span(0n, 1n), NOW_MS, { maxAgeMs: NOW_MS + 86400e3, maxFutureMs: 0 })?.reason).toBe('time_out_of_range');
    expect(refuseSpan(span(1n, 1n), NOW_MS, { maxAgeMs: NOW_MS + 86400e3, maxFutureMs: 0 })).toBeUndefined();
  });

  it('otlpToRows counts refusals by reason, keeps the first in words, and maps odd status codes to -1', () => {
    const good = span(ns(NOW_MS - 1000), ns(NOW_MS), { 'http.response.status_code': 99_999_999_999 });
    const badIds = { ...good, spanId: 'x' };
    const { rows, refused } = otlpToRows([good, span(0n, 0n), badIds, span(0n, 1n)], NOW_MS / 1000);
    expect(rows.map((r) => r.response_code)).toEqual([-1]);
    expect(refused).toEqual({ counts: { time_out_of_range: 2, bad_ids: 1 }, total: 3, first: expect.stringMatching(/^startTimeUnixNano 0 is outside the accepted window 2026-05-25T12:00:00.000Z \.\. 2026-06-01T13:00:00.000Z$/) as unknown });
  });

  it('chunkByDay: inserts of at most N days, oldest first, every row once', () => {
    const { rows } = otlpToRows(
      Array.from({ length: 150 }, (_, i) => ({ ...span(ns(NOW_MS - i * 86400e3), ns(NOW_MS - i * 86400e3)), spanId: (i + 1).toString(16).padStart(16, '0') })),
      NOW_MS / 1000,
      { maxAgeMs: 200 * 86400e3, maxFutureMs: 0 },
    );
    const chunks = chunkByDay(rows, 50);
    expect(chunks.map((c) => new Set(c.map((r) => Math.floor(r.start_time_us / 86400e6))).size)).toEqual([50, 50, 50]);
    expect(chunks.flat().map((r) => r.span_id).sort()).toEqual(rows.map((r) => r.span_id).sort());
    expect(chunks[0][0].start_time_us).toBeLessThan(chunks[2][0].start_time_us);
  });
});

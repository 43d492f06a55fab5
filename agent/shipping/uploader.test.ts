import { describe, expect, it } from 'vitest';
import { backoffDelay, RetryingUploader } from './uploader.ts';
import type { BatchUploader, UploadResult } from './uploader.ts';

function scripted(results: UploadResult['code'][]): BatchUploader & { calls: number } {
  const u = {
    calls: 0,
    async upload(): Promise<UploadResult> {
      const code = results[Math.min(u.calls++, results.length - 1)];
      if (code === 'retryable' || code === 'failure') return { code, error: new Error(code) };
      return { code } as UploadResult;
    },
  };
  return u;
}

describe('RetryingUploader', () => {
  it('retries retryable results with backoff until success', async () => {
    const inner = scripted(['retryable', 'retryable', 'success']);
    const delays: number[] = [];
    const up = new RetryingUploader(inner, { initialDelayMs: 1, maxDelayMs: 4, onRetry: (_k, _a, d) => delays.push(d) });
    expect(await up.upload('k', new Uint8Array(1))).toEqual({ code: 'success' });
    expect(inner.calls).toBe(3);
    expect(delays).toHaveLength(2);
  });

  it('returns a failure at once, and stops when aborted', async () => {
    const failing = scripted(['failure']);
    expect((await new RetryingUploader(failing, { initialDelayMs: 1 }).upload('k', new Uint8Array(1))).code).toBe('failure');
    expect(failing.calls).toBe(1);

    const down = scripted(['retryable']);
    const ac = new AbortController();
    const p = new RetryingUploader(down, { initialDelayMs: 10_000 }).upload('k', new Uint8Array(1), ac.signal);
    setTimeout(() => ac.abort(), 20);
    expect(await p).toEqual({ code: 'aborted' });
  });

  it('backs off exponentially with jitter, capped, never below a tenth of the ceiling', () => {
    const o = { initialDelayMs: 100, maxDelayMs: 1000, multiplier: 2 };
    expect(backoffDelay(1, o, () => 1)).toBe(100);
    expect(backoffDelay(3, o, () => 1)).toBe(400);
    expect(backoffDelay(10, o, () => 1)).toBe(1000);
    expect(backoffDelay(10, o, () => 0)).toBe(100);
  });
});

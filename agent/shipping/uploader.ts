/**
 * Upload of one encoded batch, as a typed result rather than an exception (after
 * opentelemetry-js exporters): `success`, `retryable` (try again later) or `failure` (this object
 * can never be written). {@link StoreUploader} is the plain transport; {@link RetryingUploader}
 * wraps any uploader with exponential backoff and full jitter.
 *
 * @example
 *   const up = new RetryingUploader(new StoreUploader(store), { initialDelayMs: 200, maxDelayMs: 10_000 });
 *   const r = await up.upload(key, bytes, abortSignal);   // retries until success, failure or abort
 */
import type { ObjectStore } from './store.ts';
import { classifyStoreError } from './store.ts';

export type UploadResult =
  | { code: 'success' }
  | { code: 'retryable'; error: Error }
  | { code: 'failure'; error: Error }
  | { code: 'aborted' };

export interface BatchUploader {
  /** Never throws. */
  upload(key: string, bytes: Uint8Array, signal?: AbortSignal): Promise<UploadResult>;
}

function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}

/** Puts the object; classifies what went wrong. */
export class StoreUploader implements BatchUploader {
  constructor(private readonly store: ObjectStore) {}

  async upload(key: string, bytes: Uint8Array, signal?: AbortSignal): Promise<UploadResult> {
    if (signal?.aborted) return { code: 'aborted' };
    try {
      await this.store.put(key, bytes);
      return { code: 'success' };
    } catch (err) {
      return { code: classifyStoreError(err), error: asError(err) };
    }
  }
}

export interface RetryOptions {
  /** First delay after a retryable result (ms). Default 200. */
  initialDelayMs?: number;
  /** Cap on the delay (ms). Default 10 000: a store that comes back is used again within seconds. */
  maxDelayMs?: number;
  /** Growth per attempt. Default 2. */
  multiplier?: number;
  /** Give up (returning the last retryable result) after this many attempts. Default: never. */
  maxAttempts?: number;
  /** Called before each wait, for counting and logging. */
  onRetry?: (key: string, attempt: number, delayMs: number, error: Error) => void;
  /** Injectable for tests. */
  random?: () => number;
}

/** Delay before attempt `attempt` (1-based retry count): full jitter over an exponential ceiling. */
export function backoffDelay(attempt: number, o: Required<Pick<RetryOptions, 'initialDelayMs' | 'maxDelayMs' | 'multiplier'>>, random: () => number = Math.random): number {
  const ceiling = Math.min(o.maxDelayMs, o.initialDelayMs * o.multiplier ** Math.max(0, attempt - 1));
  // Full jitter, but never below a tenth of the ceiling, so a fleet does not hammer a store that just came back.
  return Math.round(ceiling * (0.1 + 0.9 * random()));
}

function sleep(ms: number, signal?: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve(false);
    const onAbort = (): void => {
      clearTimeout(t);
      resolve(false);
    };
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve(true);
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** Retries retryable results with backoff until success, failure, `maxAttempts` or abort. */
export class RetryingUploader implements BatchUploader {
  private readonly o: Required<Pick<RetryOptions, 'initialDelayMs' | 'maxDelayMs' | 'multiplier'>>;

  constructor(
    private readonly inner: BatchUploader,
    private readonly options: RetryOptions = {},
  ) {
    this.o = { initialDelayMs: options.initialDelayMs ?? 200, maxDelayMs: options.maxDelayMs ?? 10_000, multiplier: options.multiplier ?? 2 };
  }

  async upload(key: string, bytes: Uint8Array, signal?: AbortSignal): Promise<UploadResult> {
    for (let attempt = 1; ; attempt++) {
      const r = await this.inner.upload(key, bytes, signal);
      if (r.code !== 'retryable') return r;
      if (this.options.maxAttempts !== undefined && attempt >= this.options.maxAttempts) return r;
      const delay = backoffDelay(attempt, this.o, this.options.random);
      this.options.onRetry?.(key, attempt, delay, r.error);
      if (!(await sleep(delay, signal))) return { code: 'aborted' };
    }
  }
}

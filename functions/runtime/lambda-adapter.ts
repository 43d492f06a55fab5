/**
 * The functions as an AWS Lambda behind S3 event notifications. The handler takes the S3 event
 * JSON as Lambda delivers it; a thrown error makes Lambda retry the invocation (processing is
 * idempotent, so a retry after a partial success is harmless).
 *
 * @example
 *   // index.ts of the Lambda package; ch, store and ids built as startFunctions does
 *   const processor = new BatchProcessor({ ch, store, keys: shippingKeys, decode: shippingDecoder, encoder: new TagEncoder({ ids }) });
 *   export const handler = createS3Handler({ process: (k) => processor.processBatch(k), filter: { prefix: 'riptide' } });
 */
import { keysFromS3Event } from './events.ts';
import type { KeyFilter } from './events.ts';
import type { ProcessResult } from './processor.ts';

export interface S3HandlerOptions {
  process: (key: string) => Promise<ProcessResult>;
  filter?: KeyFilter;
}

export interface S3HandlerResult {
  processed: number;
  quarantined: number;
  ignored: number;
  results: ProcessResult[];
}

export function createS3Handler(o: S3HandlerOptions): (event: unknown) => Promise<S3HandlerResult> {
  return async (event) => {
    const keys = keysFromS3Event(event, o.filter);
    const results: ProcessResult[] = [];
    for (const k of keys) results.push(await o.process(k));
    return {
      processed: results.filter((r) => r.status === 'processed').length,
      quarantined: results.filter((r) => r.status === 'quarantined').length,
      ignored: results.filter((r) => r.status === 'ignored').length,
      results,
    };
  };
}

/**
 * AWS Lambda entry point for S3 event notifications: `handler` takes the S3 event JSON. Configured
 * by the same RIPTIDE_* variables as `riptide functions` (RIPTIDE_STORE=s3://bucket/prefix,
 * RIPTIDE_CLICKHOUSE_URL, RIPTIDE_S3_ENDPOINT, RIPTIDE_CLICKHOUSE_CLUSTER, RIPTIDE_ID_STRIPE,
 * RIPTIDE_SKIP_MIGRATIONS=1 when a Job migrates). The assembled functions are kept across warm
 * invocations. A thrown error makes Lambda retry the event; processing is idempotent.
 */
import { createS3Handler } from './runtime/lambda-adapter.ts';
import type { S3HandlerResult } from './runtime/lambda-adapter.ts';
import { keyFilterFor, startFunctions } from './runtime/functions-runtime.ts';
import type { Functions } from './runtime/functions-runtime.ts';

let ready: Promise<Functions> | undefined;

function functions(env: NodeJS.ProcessEnv): Promise<Functions> {
  ready ??= startFunctions({
    dataDir: env.RIPTIDE_DATA_DIR ?? '/tmp/riptide',
    store: env.RIPTIDE_STORE,
    s3Endpoint: env.RIPTIDE_S3_ENDPOINT,
    clickhouseUrl: env.RIPTIDE_CLICKHOUSE_URL,
    clickhouseCluster: env.RIPTIDE_CLICKHOUSE_CLUSTER,
    ttlDays: env.RIPTIDE_TTL_DAYS ? Number(env.RIPTIDE_TTL_DAYS) : undefined,
    idStripe: env.RIPTIDE_ID_STRIPE ? Number(env.RIPTIDE_ID_STRIPE) : undefined,
    adapter: 'http',
    kubernetes: 'off',
    skipMigrations: env.RIPTIDE_SKIP_MIGRATIONS === '1' || env.RIPTIDE_SKIP_MIGRATIONS === 'true',
  }).catch((err: unknown) => {
    ready = undefined; // the next invocation tries again
    throw err;
  });
  return ready;
}

export async function handler(event: unknown): Promise<S3HandlerResult> {
  const fx = await functions(process.env);
  const filter = process.env.RIPTIDE_STORE ? keyFilterFor(process.env.RIPTIDE_STORE) : {};
  return createS3Handler({ process: (k) => fx.processor.processBatch(k), filter })(event);
}

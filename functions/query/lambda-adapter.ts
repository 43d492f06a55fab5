/**
 * The query API on AWS Lambda behind API Gateway (REST v1 or HTTP API v2 events) or an ALB: the
 * same hono app, wrapped by hono's Lambda adapter. Lambda has no disk for embedded chDB, so it wants
 * a ClickHouse server (`RIPTIDE_CLICKHOUSE_URL`); `RIPTIDE_TOKEN` turns on the bearer token.
 *
 * @example
 *   // index.ts of the Lambda package
 *   export const handler = createQueryLambdaHandler();
 */
import { handle } from 'hono/aws-lambda';
import type { Hono } from 'hono';
import { openClickHouse } from '../storage/clickhouse.ts';
import { createQueryApp } from './app.ts';

type LambdaHandler = ReturnType<typeof handle>;

export interface QueryLambdaOptions {
  clickhouseUrl?: string;
  token?: string;
  /** For tests: an app already built. */
  app?: Hono;
}

export function createQueryLambdaHandler(o: QueryLambdaOptions = {}): LambdaHandler {
  let ready: Promise<LambdaHandler> | undefined;
  const init = async (): Promise<LambdaHandler> => {
    if (o.app) return handle(o.app);
    const url = o.clickhouseUrl ?? process.env.RIPTIDE_CLICKHOUSE_URL;
    if (!url) throw new Error('RIPTIDE_CLICKHOUSE_URL is required on Lambda (no embedded ClickHouse there)');
    const clickhouse = await openClickHouse({ url });
    return handle(createQueryApp({ clickhouse, token: o.token ?? process.env.RIPTIDE_TOKEN }));
  };
  // One app per container, built on the first invocation and reused while the container lives.
  const handler = (async (event: Parameters<LambdaHandler>[0], context: Parameters<LambdaHandler>[1]) => {
    ready ??= init();
    return (await ready)(event, context);
  }) as LambdaHandler;
  return handler;
}

/**
 * The functions as an HTTP service (Knative, Cloud Run, a Kubernetes Deployment): a hono app that
 * takes CloudEvents "object created" (structured, batched or binary mode) and S3-style
 * notification bodies on `POST /events`, the custom tags API, `/healthz`, `/readyz` and `/metrics`.
 * Any replica can take any event; a 500 asks the event source to retry (processing is idempotent).
 *
 * @example
 *   serve({ fetch: createFunctionsApp({ processor, ch }).fetch, port: 8080 });
 */
import { Hono } from 'hono';
import type { Context } from 'hono';
import { metrics as registry } from '../../agent/metrics.ts';
import type { MetricsRegistry } from '../../agent/metrics.ts';
import { readyBody } from '../../agent/status-server.ts';
import type { ClickHouse } from '../storage/clickhouse.ts';
import { getCustomTags, parseCustomTagsUpdate, setCustomTags } from '../tag-encoder/custom-tags.ts';
import { TAG_KINDS } from '../tag-encoder/tag-id.ts';
import type { TagKind } from '../tag-encoder/tag-id.ts';
import { keysFromCloudEvent, keysFromS3Event } from './events.ts';
import type { CloudEvent, KeyFilter } from './events.ts';
import type { ProcessResult } from './processor.ts';
import { bodyLimit, resolveLimits } from '../http/body-limit.ts';
import type { BodyLimits } from '../http/body-limit.ts';

export interface FunctionsAppOptions {
  /** Handles one object key (BatchProcessor.processBatch or a runtime's wrapper). */
  process: (key: string) => Promise<ProcessResult>;
  ch: ClickHouse;
  filter?: KeyFilter;
  metrics?: MetricsRegistry;
  /** Reported by /healthz; false turns it into a 503. */
  healthy?: () => boolean;
  /** Body caps: `eventsBytes` for /events, `jsonBytes` for custom tags (defaults in functions/http/body-limit.ts). */
  limits?: Partial<Pick<BodyLimits, 'eventsBytes' | 'jsonBytes'>>;
  /** Why this instance is not ready (empty: ready); `GET /readyz` answers 503 with them. */
  ready?: () => Promise<string[]>;
}

const eventsTotal = registry.counter('riptide_functions_events_total', 'Object-created events received over HTTP, by outcome');

export function createFunctionsApp(o: FunctionsAppOptions): Hono {
  const app = new Hono();
  const m = o.metrics ?? registry;
  const limits = resolveLimits(o.limits);
  const eventsLimit = bodyLimit({
    maxBytes: limits.eventsBytes,
    limit: 'events',
    metrics: m,
    respond: (c, message) => {
      eventsTotal.inc({ outcome: 'too_large' });
      return c.json({ error: message }, 413);
    },
  });

  app.get('/healthz', (c) => (o.healthy && !o.healthy() ? c.json({ status: 'unhealthy' }, 503) : c.json({ status: 'ok' })));
  app.get('/readyz', async (c) => {
    const r = readyBody(o.ready ? await o.ready() : []);
    return c.json(r.body, r.status as 200 | 503);
  });
  app.get('/metrics', (c) => c.text(m.render(), 200, { 'content-type': 'text/plain; version=0.0.4' }));

  app.post('/events', eventsLimit, async (c) => {
    let keys: string[];
    try {
      keys = await eventKeys(c, o.filter);
    } catch (err) {
      eventsTotal.inc({ outcome: 'bad_request' });
      return c.json({ error: (err as Error).message }, 400);
    }
    if (keys.length === 0) {
      eventsTotal.inc({ outcome: 'ignored' });
      return c.json({ results: [] });
    }
    const results: ProcessResult[] = [];
    try {
      for (const k of keys) results.push(await o.process(k));
    } catch (err) {
      eventsTotal.inc({ outcome: 'error' });
      return c.json({ error: `processing failed, retry: ${(err as Error).message}`, results }, 500);
    }
    eventsTotal.inc({ outcome: 'processed' });
    return c.json({ results });
  });

  app.post('/api/v1/custom-tags', bodyLimit({ maxBytes: limits.jsonBytes, limit: 'json', metrics: m }), async (c) => {
    let body: unknown;
    try {
      body = await c.req.json();
    } catch {
      return c.json({ error: 'body must be JSON' }, 400);
    }
    const u = parseCustomTagsUpdate(body);
    if (typeof u === 'string') return c.json({ error: u }, 400);
    return c.json(await setCustomTags(o.ch, u));
  });

  app.get('/api/v1/custom-tags', async (c) => {
    const kind = c.req.query('kind') as TagKind | undefined;
    const key = c.req.query('key');
    if (!kind || !TAG_KINDS.includes(kind)) return c.json({ error: `kind must be one of ${TAG_KINDS.join(', ')}` }, 400);
    if (!key || key.length > 512) return c.json({ error: 'key is required (at most 512 characters)' }, 400);
    return c.json(await getCustomTags(o.ch, kind, key));
  });

  return app;
}

async function eventKeys(c: Context, f: KeyFilter | undefined): Promise<string[]> {
  const type = c.req.header('content-type') ?? '';
  const ceType = c.req.header('ce-type');
  const text = await c.req.text();
  let body: unknown = undefined;
  if (text.trim() !== '') {
    try {
      body = JSON.parse(text);
    } catch {
      throw new Error('body is not JSON');
    }
  }
  // Binary mode: attributes in ce-* headers, the body is the data.
  if (ceType) return keysFromCloudEvent({ type: ceType, subject: c.req.header('ce-subject'), source: c.req.header('ce-source'), data: body }, f);
  if (type.includes('application/cloudevents-batch+json')) {
    if (!Array.isArray(body)) throw new Error('a CloudEvents batch must be a JSON array');
    return (body as CloudEvent[]).flatMap((e) => keysFromCloudEvent(e, f));
  }
  if (body && typeof body === 'object' && 'Records' in body) return keysFromS3Event(body, f);
  if (body && typeof body === 'object' && 'specversion' in body) return keysFromCloudEvent(body as CloudEvent, f);
  throw new Error('expected a CloudEvent (structured, batch or binary mode) or an S3 event notification');
}

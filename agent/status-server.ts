/**
 * /healthz, /readyz and /metrics for roles that have no other HTTP surface (the agent). Roles with
 * an API (query, functions) mount the same routes on their own server.
 *
 * - `GET /healthz` is liveness: 200 `{"status":"ok"}`, or 503 `{"status":"unhealthy","reason"}`
 *   when the role is stuck (restart it).
 * - `GET /readyz` is readiness: 200 `{"status":"ready"}` only when the role does its job (for the
 *   agent: capture is live), 503 `{"status":"not ready","reasons":[…]}` otherwise.
 */
import { createServer } from 'node:http';
import type { Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { metrics } from './metrics.ts';

export interface StatusServer {
  server: Server;
  port: number;
  close(): Promise<void>;
}

export interface StatusChecks {
  /** Null when live, or why not (answered as a 503 on /healthz). */
  health?: () => string | null;
  /** Why the role is not ready; empty when it is (a 503 on /readyz lists them). Default: the health problem, if any. */
  ready?: () => string[] | Promise<string[]>;
}

/** The /readyz answer every role gives. */
export function readyBody(reasons: string[]): { status: number; body: { status: 'ready' } | { status: 'not ready'; reasons: string[] } } {
  return reasons.length ? { status: 503, body: { status: 'not ready', reasons } } : { status: 200, body: { status: 'ready' } };
}

/** Listens on host:port (port 0 picks a free one). */
export async function startStatusServer(port: number, host = '127.0.0.1', checks: StatusChecks = {}): Promise<StatusServer> {
  const health = checks.health ?? (() => null);
  const ready = checks.ready ?? (() => [health()].filter((r): r is string => r !== null));
  const json = (res: ServerResponse, status: number, body: unknown): void => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  };
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/healthz') {
      const problem = health();
      json(res, problem ? 503 : 200, problem ? { status: 'unhealthy', reason: problem } : { status: 'ok' });
    } else if (path === '/readyz') {
      Promise.resolve()
        .then(ready)
        .then(
          (reasons) => {
            const r = readyBody(reasons);
            json(res, r.status, r.body);
          },
          (err: unknown) => json(res, 503, readyBody([`readiness check failed: ${err instanceof Error ? err.message : String(err)}`]).body),
        );
    } else if (path === '/metrics') {
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' });
      res.end(metrics.render());
    } else {
      json(res, 404, { error: `no route ${path}; try /healthz, /readyz or /metrics` });
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return {
    server,
    port: (server.address() as AddressInfo).port,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

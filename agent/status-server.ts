/**
 * /healthz and /metrics for roles that have no other HTTP surface (the agent). Roles with an API
 * (query, functions) mount the same two routes on their own server.
 */
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { metrics } from './metrics.ts';

export interface StatusServer {
  server: Server;
  port: number;
  close(): Promise<void>;
}

/** Listens on host:port (port 0 picks a free one). `health` returns null when healthy, or a reason. */
export async function startStatusServer(port: number, host = '127.0.0.1', health: () => string | null = () => null): Promise<StatusServer> {
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/healthz') {
      const problem = health();
      res.writeHead(problem ? 503 : 200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(problem ? { status: 'unhealthy', reason: problem } : { status: 'ok' }));
    } else if (path === '/metrics') {
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' });
      res.end(metrics.render());
    } else {
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: `no route ${path}; try /healthz or /metrics` }));
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

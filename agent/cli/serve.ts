/**
 * A hono app on a port, as one start-up step: resolves once listening, rejects with the listen
 * error (EADDRINUSE, EACCES) so the command can say which port; `close()` stops it and waits.
 *
 * @example
 *   const http = await life.start('API server', () => serveApp(app.fetch, 8686, '127.0.0.1'), (s) => s.close());
 */
import { serve } from '@hono/node-server';

export interface Listening {
  /** The port bound (the one asked for, or the one picked for 0). */
  port: number;
  close(): Promise<void>;
}

export function serveApp(fetch: (req: Request) => Response | Promise<Response>, port: number, hostname: string): Promise<Listening> {
  const server = serve({ fetch, port, hostname });
  return new Promise((res, rej) => {
    server.once('error', rej);
    server.once('listening', () => {
      server.off('error', rej);
      const addr = server.address();
      res({
        port: typeof addr === 'object' && addr ? addr.port : port,
        close: () => new Promise<void>((r) => server.close(() => r())),
      });
    });
  });
}

/**
 * A tiny tinyrpc server: `echo`, `upper`, `sleep` (answers late, so responses overtake each
 * other), `fail` (server error with a message). Run: `npx tsx plugins/tinyrpc/demo/server.ts 7070`.
 */
import { createServer } from 'node:net';
import type { Server } from 'node:net';
import { fileURLToPath } from 'node:url';
import { KIND_REQUEST, encodeResponse, takeFrames } from './protocol.ts';

export function startServer(port = 0, host = '127.0.0.1'): Promise<Server> {
  const server = createServer((sock) => {
    let buf: Buffer = Buffer.alloc(0);
    sock.on('data', (chunk) => {
      buf = Buffer.concat([buf, chunk]);
      const { frames, rest } = takeFrames(buf);
      buf = rest;
      for (const f of frames) {
        if (f.kind !== KIND_REQUEST) continue;
        const reply = (status: number, body: string, delayMs = 0): void => {
          const send = (): void => {
            if (!sock.destroyed) sock.write(encodeResponse(f.id, status, Buffer.from(body, 'utf8')));
          };
          if (delayMs > 0) setTimeout(send, delayMs);
          else send();
        };
        switch (f.method) {
          case 'echo': reply(0, f.body.toString('utf8')); break;
          case 'upper': reply(0, f.body.toString('utf8').toUpperCase()); break;
          case 'sleep': reply(0, 'slept', Number(f.body.toString('utf8')) || 20); break;
          case 'fail': reply(2, `failed: ${f.body.toString('utf8')}`); break;
          default: reply(1, `unknown method ${f.method ?? ''}`);
        }
      }
    });
    sock.on('error', () => sock.destroy());
  });
  return new Promise((resolve) => server.listen(port, host, () => resolve(server)));
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const server = await startServer(Number(process.argv[2] ?? 7070));
  const addr = server.address();
  process.stdout.write(`tinyrpc server on ${typeof addr === 'object' && addr ? addr.port : ''}\n`);
}

/**
 * A tiny tinyrpc client: many calls in flight on ONE connection, answered out of order.
 * Run: `npx tsx plugins/tinyrpc/demo/client.ts 7070`.
 */
import { connect } from 'node:net';
import type { Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { KIND_RESPONSE, encodeRequest, takeFrames } from './protocol.ts';

export interface CallResult {
  id: number;
  status: number;
  body: string;
}

export class TinyRpcClient {
  private nextId = 1;
  private buf: Buffer = Buffer.alloc(0);
  private readonly pending = new Map<number, (r: CallResult) => void>();

  private constructor(readonly socket: Socket) {
    socket.on('data', (chunk) => {
      this.buf = Buffer.concat([this.buf, chunk]);
      const { frames, rest } = takeFrames(this.buf);
      this.buf = rest;
      for (const f of frames) {
        if (f.kind !== KIND_RESPONSE) continue;
        this.pending.get(f.id)?.({ id: f.id, status: f.status ?? 0, body: f.body.toString('utf8') });
        this.pending.delete(f.id);
      }
    });
  }

  static connect(port: number, host = '127.0.0.1'): Promise<TinyRpcClient> {
    return new Promise((resolve, reject) => {
      const s = connect(port, host, () => resolve(new TinyRpcClient(s)));
      s.once('error', reject);
    });
  }

  call(method: string, arg: string): Promise<CallResult> {
    const id = this.nextId++;
    return new Promise((resolve) => {
      this.pending.set(id, resolve);
      this.socket.write(encodeRequest(id, method, Buffer.from(arg, 'utf8')));
    });
  }

  close(): void {
    this.socket.end();
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const client = await TinyRpcClient.connect(Number(process.argv[2] ?? 7070));
  const results = await Promise.all([client.call('sleep', '50'), client.call('echo', 'héllo'), client.call('upper', 'abc'), client.call('fail', 'disk full')]);
  for (const r of results) process.stdout.write(`#${r.id} status=${r.status} ${r.body}\n`);
  client.close();
}

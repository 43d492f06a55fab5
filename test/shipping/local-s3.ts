/**
 * A local S3-compatible server for tests (s3rver on 127.0.0.1, a random port, a temp folder), that
 * can be stopped and started again on the same port and folder to simulate a store outage.
 */
import S3rver from 's3rver';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { S3Store } from '../../agent/shipping/store.ts';

export const TEST_BUCKET = 'riptide-test';
export const TEST_CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };

export class LocalS3 {
  private server: S3rver | undefined;
  private constructor(
    readonly dir: string,
    public port: number,
  ) {}

  static async start(): Promise<LocalS3> {
    const s = new LocalS3(await mkdtemp(join(tmpdir(), 'riptide-s3-')), 0);
    await s.up();
    return s;
  }

  get endpoint(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get running(): boolean {
    return this.server !== undefined;
  }

  /** A store on this server; `prefix` keeps tests apart in one bucket. */
  store(prefix: string, requestTimeoutMs = 5000): S3Store {
    return new S3Store({ bucket: TEST_BUCKET, prefix, endpoint: this.endpoint, credentials: TEST_CREDENTIALS, region: 'us-east-1', requestTimeoutMs, maxAttempts: 1 });
  }

  async up(): Promise<void> {
    if (this.server) return;
    const server = new S3rver({ address: '127.0.0.1', port: this.port, silent: true, directory: this.dir, configureBuckets: [{ name: TEST_BUCKET }] });
    const addr = await server.run();
    this.port = addr.port;
    this.server = server;
  }

  async down(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    const closing = server.close();
    // Cut keep-alive and in-flight connections: an outage, not a graceful drain.
    server.httpServer?.closeAllConnections();
    await closing;
  }

  async dispose(): Promise<void> {
    await this.down();
    await rm(this.dir, { recursive: true, force: true });
  }
}

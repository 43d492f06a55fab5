/**
 * A local S3-compatible server for tests: s3rver on 127.0.0.1, a random port, a temp folder, in a
 * child process of its own (test/shipping/s3rver-child.mjs). It can be killed and started again on
 * the same port and folder to simulate a store outage.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { S3Store } from '../../agent/shipping/store.ts';

export const TEST_BUCKET = 'riptide-test';
export const TEST_CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };

const CHILD = fileURLToPath(new URL('./s3rver-child.mjs', import.meta.url));

export class LocalS3 {
  private child: ChildProcess | undefined;
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
    return this.child !== undefined;
  }

  /** A store on this server; `prefix` keeps tests apart in one bucket. */
  store(prefix: string, requestTimeoutMs = 5000): S3Store {
    return new S3Store({ bucket: TEST_BUCKET, prefix, endpoint: this.endpoint, credentials: TEST_CREDENTIALS, region: 'us-east-1', requestTimeoutMs, maxAttempts: 1 });
  }

  async up(): Promise<void> {
    if (this.child) return;
    const args = [CHILD, this.dir, TEST_BUCKET];
    if (this.port) args.push(String(this.port));
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      process.stderr.write(d);
    });
    const port = await new Promise<number>((resolve, reject) => {
      const lines = createInterface({ input: child.stdout });
      lines.once('line', (line) => resolve((JSON.parse(line) as { port: number }).port));
      child.once('exit', (code) => reject(new Error(`s3rver exited (${code}) before listening: ${stderr.trim()}`)));
    });
    this.port = port;
    this.child = child;
  }

  /** Kill the server: an outage, not a graceful drain. */
  async down(): Promise<void> {
    const child = this.child;
    if (!child) return;
    this.child = undefined;
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
  }

  async dispose(): Promise<void> {
    await this.down();
    await rm(this.dir, { recursive: true, force: true });
  }
}

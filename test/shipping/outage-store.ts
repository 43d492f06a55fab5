/** Wraps a store so a test can take it "down": every call then fails like a refused connection. */
import type { ListOptions, ObjectStore } from '../../agent/shipping/store.ts';

export class OutageStore implements ObjectStore {
  down = false;
  constructor(private readonly inner: ObjectStore) {}

  get url(): string {
    return this.inner.url;
  }

  private check(): void {
    if (this.down) throw Object.assign(new Error('connect ECONNREFUSED (simulated outage)'), { code: 'ECONNREFUSED' });
  }

  async put(key: string, body: Uint8Array): Promise<void> {
    this.check();
    await this.inner.put(key, body);
  }
  async get(key: string): Promise<Uint8Array | undefined> {
    this.check();
    return this.inner.get(key);
  }
  async list(prefix: string, options?: ListOptions): Promise<string[]> {
    this.check();
    return this.inner.list(prefix, options);
  }
  async delete(key: string): Promise<void> {
    this.check();
    await this.inner.delete(key);
  }
  async copy(fromKey: string, toKey: string): Promise<void> {
    this.check();
    await this.inner.copy(fromKey, toKey);
  }
  async close(): Promise<void> {
    await this.inner.close();
  }
}

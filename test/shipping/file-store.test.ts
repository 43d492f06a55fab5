// The shipping suite against a local folder (the embedded default), with outages simulated by a
// wrapper that refuses every call while "down".
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FileStore, openStore, StoreConfigError, S3Store } from '../../agent/shipping/store.ts';
import { OutageStore } from './outage-store.ts';
import { shippingSuite } from './shipping-suite.ts';

shippingSuite(
  'a local folder (FileStore)',
  async () => {
    const root = await mkdtemp(join(tmpdir(), 'riptide-filestore-'));
    const opened: OutageStore[] = [];
    let n = 0;
    let down = false;
    return {
      open: async () => {
        const s = new OutageStore(new FileStore(join(root, `t${n++}`)));
        s.down = down;
        opened.push(s);
        return s;
      },
      stop: async () => {
        down = true;
        for (const s of opened) s.down = true;
      },
      start: async () => {
        down = false;
        for (const s of opened) s.down = false;
      },
      dispose: async () => {
        await rm(root, { recursive: true, force: true });
      },
    };
  },
  { outageMs: 5_000 },
);

describe('openStore', () => {
  it('opens file:// and s3:// URLs and refuses anything else in one clear line', async () => {
    const f = openStore('file:///tmp/riptide-x');
    expect(f).toBeInstanceOf(FileStore);
    expect(f.url).toBe('file:///tmp/riptide-x');
    const s = openStore('s3://bucket/some/prefix', { s3Endpoint: 'http://127.0.0.1:9', credentials: { accessKeyId: 'a', secretAccessKey: 'b' } });
    expect(s).toBeInstanceOf(S3Store);
    expect(s.url).toBe('s3://bucket/some/prefix/');
    await s.close();
    expect(() => openStore('/tmp/x')).toThrow(StoreConfigError);
    expect(() => openStore('http://x/y')).toThrow(/unsupported scheme http:/);
    expect(() => openStore('file://host/x')).toThrow(/absolute path/);
  });
});

// The marketplace API suite on a local folder (FileStore, the embedded default).
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileStore } from '../../agent/shipping/store.ts';
import { marketplaceSuite } from './api-suite.ts';

marketplaceSuite(
  'FileStore',
  async () => {
    const dir = await mkdtemp(join(tmpdir(), 'riptide-market-'));
    return { open: async () => new FileStore(dir), dispose: () => rm(dir, { recursive: true, force: true }) };
  },
  { full: true },
);

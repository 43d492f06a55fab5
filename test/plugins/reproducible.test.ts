// The committed example modules are what their sources build to: rebuild each and compare hashes.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { buildPlugin } from '../../sdk-plugin/src/build.ts';

const root = new URL('../../', import.meta.url).pathname;
const out = await mkdtemp(join(tmpdir(), 'riptide-repro-'));

describe('example plugin builds are reproducible', () => {
  afterAll(() => rm(out, { recursive: true, force: true }));
  it.each(['biz-trace-id', 'tinyrpc', 'http-error-200'])('%s', async (name) => {
    const committed = JSON.parse(await readFile(join(root, 'plugins', name, 'build/manifest.json'), 'utf8')) as { sha256: string };
    const r = await buildPlugin(join(root, 'plugins', name), { outDir: join(out, name) });
    expect(r.manifest.sha256, `plugins/${name}: run npx riptide plugin build plugins/${name} and commit build/`).toBe(committed.sha256);
  });
});

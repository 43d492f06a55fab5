// The template's own test, and the pattern for yours: build, then run every fixture.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadPluginForTest } from '../testing.ts';

const dir = new URL('.', import.meta.url).pathname;
const out = await mkdtemp(join(tmpdir(), 'riptide-template-'));

describe('plugin template', () => {
  afterAll(() => rm(out, { recursive: true, force: true }));

  it('builds and passes its fixtures', async () => {
    const plugin = await loadPluginForTest(dir, { build: true, outDir: out });
    for (const r of await plugin.runFixtures(join(dir, 'fixtures'))) expect(r.result, r.name).toEqual(r.expect);
  });
});

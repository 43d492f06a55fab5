// This plugin's test, and the pattern for yours: build from source, then run every fixture in
// ./fixtures through the same sandbox the agent uses (metering, memory cap, ABI checks). Each
// fixture prints the fuel it used against the plugin's budget. Run: npx vitest run <this folder>
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { loadPluginForTest } from '@riptide/sdk-plugin/testing';

const dir = fileURLToPath(new URL('.', import.meta.url));

describe(`plugin ${basename(dir)}`, () => {
  it('builds and passes its fixtures', async () => {
    const out = await mkdtemp(join(tmpdir(), 'riptide-plugin-'));
    try {
      const plugin = await loadPluginForTest(dir, { build: true, outDir: out });
      for (const r of await plugin.runFixtures(join(dir, 'fixtures'))) expect(r.result, r.name).toEqual(r.expect);
    } finally {
      await rm(out, { recursive: true, force: true });
    }
  });
});

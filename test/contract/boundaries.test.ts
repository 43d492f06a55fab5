// The import-direction rule (eslint.boundaries.js) fails code that crosses the agent ↔ functions
// boundary outside the contract, and the repository as it is keeps to it.
import { ESLint } from 'eslint';
import { describe, expect, it } from 'vitest';
import tseslint from 'typescript-eslint';
import boundaries from '../../eslint.boundaries.js';
import { REPO } from '../helpers/agent.ts';

const lint = new ESLint({
  cwd: REPO,
  overrideConfigFile: true,
  overrideConfig: [{ files: ['**/*.ts'], languageOptions: { parser: tseslint.parser } }, ...boundaries],
});

async function errors(code: string, filePath: string): Promise<string[]> {
  const [r] = await lint.lintText(code, { filePath });
  return r.messages.map((m) => m.message);
}

describe('agent ↔ functions import boundary', () => {
  it('refuses functions code imported by the agent (the CLI excepted)', async () => {
    const code = "import { buildSpans } from '../../functions/span-builder/span-builder.ts';\nexport const f = buildSpans;\n";
    expect(await errors(code, 'agent/shipping/new.ts')).toEqual([expect.stringMatching(/the agent does not import the functions/)]);
    expect(await errors(code.replace('../../', '../../../'), 'agent/cli/commands/new.ts')).toEqual([]);
  });

  it('lets the functions import the contract and nothing else of the agent', async () => {
    const ok = [
      "import { L7_FIELDS } from '../../agent/contract/fields.ts';",
      "import type { Batch } from '../../agent/shipping/batch.ts';",
      "import { decodeBatch } from '../../agent/shipping/codec.ts';",
      "import { BUILTIN_DESCRIPTORS } from '../../agent/protocols/descriptors.ts';",
      "import type { L7Message } from '../../agent/protocols/parser.ts';",
    ];
    for (const line of ok) expect(await errors(`${line}\n`, 'functions/span-builder/new.ts'), line).toEqual([]);
    for (const line of ["import { http1Parser } from '../../agent/protocols/http1/index.ts';", "import { Batcher } from '../../agent/shipping/batcher.ts';"]) {
      expect(await errors(`${line}\n`, 'functions/query/new.ts'), line).toEqual([expect.stringMatching(/only through the contract/)]);
    }
  });

  it('keeps lib/ (shared by both, e.g. marketplace signing) free of either side', async () => {
    expect(await errors("import { metrics } from '../../agent/metrics.ts';\n", 'lib/marketplace/new.ts')).toEqual([expect.stringMatching(/imports neither/)]);
    expect(await errors("import { queryRows } from '../../functions/storage/clickhouse.ts';\n", 'lib/marketplace/new.ts')).toEqual([expect.stringMatching(/imports neither/)]);
    expect(await errors("import type { PluginManifest } from '../../sdk-plugin/src/manifest.ts';\n", 'lib/marketplace/new.ts')).toEqual([]);
    // Marketplace code is no longer the agent's: the functions cannot reach it through agent/plugins.
    expect(await errors("import { canonicalJson } from '../../agent/plugins/marketplace-client.ts';\n", 'functions/marketplace/new.ts')).toEqual([expect.stringMatching(/only through the contract/)]);
  });

  it('the repository keeps to it today', async () => {
    const results = await lint.lintFiles(['agent/**/*.ts', 'functions/**/*.ts', 'lib/**/*.ts']);
    const bad = results.flatMap((r) => r.messages.map((m) => `${r.filePath.slice(REPO.length + 1)}:${m.line} ${m.message.split('.')[0]}`));
    expect(bad).toEqual([]);
  }, 60_000);
});

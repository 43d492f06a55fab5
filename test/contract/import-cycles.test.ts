// No module of the repository imports itself through others: each folder can be read, tested and
// moved from the leaves up (a circle is how app.ts and jaeger.ts once came to need each other).
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { REPO } from '../helpers/agent.ts';
import { importCycles, importGraph } from './import-graph.ts';

/** Every folder of TypeScript the repository has (tsconfig.json "include"). */
const ROOTS = ['agent', 'functions', 'lib', 'sdk-plugin', 'plugins', 'infra', 'bpf', 'test'];

const tmp = mkdtempSync(join(tmpdir(), 'riptide-cycles-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function tree(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmp, 't-'));
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(join(dir, path, '..'), { recursive: true });
    writeFileSync(join(dir, path), text);
  }
  return dir;
}

describe('import cycles', () => {
  it('finds a circle, type-only and re-export edges included, and not a lazy import()', () => {
    const dir = tree({
      'src/app.ts': "import { mount } from './routes/jaeger.ts';\nexport const x = mount;\n",
      'src/routes/jaeger.ts': "import type { Ctx } from '../ctx.ts';\nexport const mount = (c: Ctx) => c;\n",
      'src/ctx.ts': "export { x } from './app.ts';\nexport interface Ctx { a: number }\n",
      'src/lazy-a.ts': "import { b } from './lazy-b.ts';\nexport const a = b;\n",
      'src/lazy-b.ts': "export const b = async () => (await import('./lazy-a.ts')).a;\n",
      'src/leaf.ts': "import { readFileSync } from 'node:fs';\nexport const f = readFileSync;\n",
    });
    expect(importCycles(importGraph(dir, ['src']))).toEqual([['src/app.ts', 'src/routes/jaeger.ts', 'src/ctx.ts', 'src/app.ts']]);
    expect(importCycles(importGraph(dir, ['src/routes']))).toEqual([]); // edges leaving the roots are not followed
  });

  it('finds none in the repository', () => {
    const g = importGraph(REPO, ROOTS);
    expect(g.size).toBeGreaterThan(200); // the walk reached the tree
    expect(g.get('functions/query/jaeger.ts')).toContain('functions/query/request.ts');
    expect(importCycles(g).map((c) => c.join(' → '))).toEqual([]);
  });
});

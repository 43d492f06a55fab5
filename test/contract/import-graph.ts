/**
 * The static import graph of the repository's TypeScript, and the cycles in it. An edge is an
 * `import … from` / `export … from` of a relative path (type-only imports included: a circle of
 * types is still two modules that cannot be understood apart); `await import()` is not an edge —
 * it is how a command loads a role only when it runs.
 *
 * @example
 *   const g = importGraph(REPO, ['agent', 'functions']);
 *   importCycles(g); // [] when the tree has none; else each cycle as [a, b, …, a]
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import ts from 'typescript';

/** Module (repo-relative path, `/`-separated) → the modules it imports statically. */
export type ImportGraph = Map<string, string[]>;

function tsFiles(dir: string, out: string[]): string[] {
  for (const name of readdirSync(dir)) {
    if (name === 'node_modules' || name === 'build' || name === 'dist' || name.startsWith('.')) continue;
    const p = join(dir, name);
    if (statSync(p).isDirectory()) tsFiles(p, out);
    else if (name.endsWith('.ts') && !name.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

/** The relative module specifiers a file imports or re-exports statically. */
export function staticImports(fileName: string, text: string): string[] {
  const sf = ts.createSourceFile(fileName, text, ts.ScriptTarget.Latest, false, ts.ScriptKind.TS);
  const out: string[] = [];
  for (const st of sf.statements) {
    if ((ts.isImportDeclaration(st) || ts.isExportDeclaration(st)) && st.moduleSpecifier && ts.isStringLiteral(st.moduleSpecifier)) {
      const spec = st.moduleSpecifier.text;
      if (spec.startsWith('.')) out.push(spec);
    }
  }
  return out;
}

/** The graph of every .ts file under `roots` (folders relative to `repo`). */
export function importGraph(repo: string, roots: readonly string[]): ImportGraph {
  const g: ImportGraph = new Map();
  const rel = (p: string): string => relative(repo, p).split(sep).join('/');
  for (const root of roots) {
    for (const file of tsFiles(join(repo, root), [])) {
      const deps = staticImports(file, readFileSync(file, 'utf8'))
        .filter((s) => s.endsWith('.ts'))
        .map((s) => rel(resolve(dirname(file), s)));
      g.set(rel(file), [...new Set(deps)]);
    }
  }
  return g;
}

/**
 * Every strongly connected component with more than one module (or a module importing itself),
 * each reported as one cycle through it: [a, b, …, a]. Tarjan's algorithm, iterative.
 */
export function importCycles(g: ImportGraph): string[][] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const onStack = new Set<string>();
  const stack: string[] = [];
  const components: string[][] = [];
  let next = 0;
  for (const start of g.keys()) {
    if (index.has(start)) continue;
    const work: Array<{ v: string; i: number }> = [{ v: start, i: 0 }];
    index.set(start, next);
    low.set(start, next++);
    stack.push(start);
    onStack.add(start);
    while (work.length) {
      const top = work[work.length - 1];
      const deps = g.get(top.v) ?? [];
      if (top.i < deps.length) {
        const w = deps[top.i++];
        if (!g.has(w)) continue; // outside the roots
        if (!index.has(w)) {
          index.set(w, next);
          low.set(w, next++);
          stack.push(w);
          onStack.add(w);
          work.push({ v: w, i: 0 });
        } else if (onStack.has(w)) low.set(top.v, Math.min(low.get(top.v)!, index.get(w)!));
        continue;
      }
      work.pop();
      if (work.length) low.set(work[work.length - 1].v, Math.min(low.get(work[work.length - 1].v)!, low.get(top.v)!));
      if (low.get(top.v) === index.get(top.v)) {
        const comp: string[] = [];
        let w: string;
        do {
          w = stack.pop()!;
          onStack.delete(w);
          comp.push(w);
        } while (w !== top.v);
        if (comp.length > 1 || (g.get(top.v) ?? []).includes(top.v)) components.push(comp);
      }
    }
  }
  return components.map((c) => cycleThrough(g, new Set(c)));
}

/** One concrete cycle inside a component: a shortest path from its first module (sorted) back to it. */
function cycleThrough(g: ImportGraph, comp: Set<string>): string[] {
  const first = [...comp].sort()[0];
  const prev = new Map<string, string>();
  const queue = [first];
  for (let k = 0; k < queue.length; k++) {
    const v = queue[k];
    for (const w of g.get(v) ?? []) {
      if (!comp.has(w)) continue;
      if (w === first) {
        const path = [first];
        for (let x = v; x !== first; x = prev.get(x)!) path.splice(1, 0, x);
        return [...path, first];
      }
      if (!prev.has(w)) {
        prev.set(w, v);
        queue.push(w);
      }
    }
  }
  return [first, first];
}

// The module graph of ts/ has no cycle. Every way one module names another counts: imports
// (type-only ones too), `export … from`, `import x = require(…)`, require() and dynamic import().
// bench/ is in the graph too (ts/cli.ts loads its harness, which imports ts/), so that no cycle of
// ts/ modules runs through it; cycles inside bench/ alone are not this test's business. The graph is read from the sources with TypeScript's own pre-processor, so it
// needs no build.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import ts from 'typescript';
import { ROOT } from './helpers';

const ROOTS = [path.join(ROOT, 'ts'), path.join(ROOT, 'bench')];

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = path.join(dir, name);
    if (statSync(p).isDirectory()) return sources(p);
    return p.endsWith('.ts') && !p.endsWith('.d.ts') ? [p] : [];
  });
}

/** The ts/ or bench/ file a relative specifier names, or null (packages, node: built-ins, other files). */
function resolveLocal(from: string, spec: string): string | null {
  if (!spec.startsWith('.')) return null;
  const base = path.resolve(path.dirname(from), spec);
  for (const f of [`${base}.ts`, path.join(base, 'index.ts'), base.replace(/\.js$/, '.ts')]) {
    try {
      if (ROOTS.some((r) => f.startsWith(r + path.sep)) && statSync(f).isFile()) return f;
    } catch {
      /* not this one */
    }
  }
  return null;
}

/** file → the ts/ and bench/ files it names. */
function importGraph(files: string[]): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  for (const file of files) {
    const info = ts.preProcessFile(readFileSync(file, 'utf8'), true, true);
    const deps = info.importedFiles.map((f) => resolveLocal(file, f.fileName)).filter((f): f is string => f !== null);
    graph.set(file, [...new Set(deps)]);
  }
  return graph;
}

/** The strongly connected components with more than one module, or one module naming itself (Tarjan). */
function cycles(graph: Map<string, string[]>): string[][] {
  let counter = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const out: string[][] = [];
  const visit = (v: string) => {
    index.set(v, counter);
    low.set(v, counter);
    counter++;
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) === index.get(v)) {
      const scc: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        scc.push(w);
      } while (w !== v);
      if (scc.length > 1 || (graph.get(v) ?? []).includes(v)) out.push(scc.sort());
    }
  };
  for (const v of graph.keys()) if (!index.has(v)) visit(v);
  return out;
}

t.test('the checker sees a cycle, type-only and re-export edges included', async (t) => {
  const g = new Map([
    ['a', ['b']],
    ['b', ['c']],
    ['c', ['a']],
    ['d', ['d']],
    ['e', ['a']],
  ]);
  t.same(cycles(g), [['a', 'b', 'c'], ['d']]);
  const pre = ts.preProcessFile("import type { X } from './x';\nexport { Y } from './y';\nexport * from './z';\nconst w = import('./w');\n", true, true);
  t.same(pre.importedFiles.map((f) => f.fileName).sort(), ['./w', './x', './y', './z']);
});

t.test('no import cycle among the modules of ts/', async (t) => {
  const files = ROOTS.flatMap(sources);
  t.ok(files.length > 40, `${files.length} modules`);
  const graph = importGraph(files);
  const found = cycles(graph)
    .filter((c) => c.some((f) => f.startsWith(ROOTS[0] + path.sep)))
    .map((c) => c.map((f) => path.relative(ROOT, f)));
  t.same(found, [], found.map((c) => `cycle: ${c.join(' ⇄ ')}`).join('\n') || 'no cycle');
});

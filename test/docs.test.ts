// The documentation holds together: the README stays a front page, every relative link and image in the
// README and docs/ points at a file of the repository (and every #anchor into a markdown file at one of its
// headings), and every docs/….md path the code mentions exists.
import t from 'tap';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';

/** The repository root: the nearest folder above this file with bia-torch's package.json (works from test/ and dist/test/). */
function repoRoot(): string {
  for (let dir = __dirname; ; dir = path.dirname(dir)) {
    const pkg = path.join(dir, 'package.json');
    if (existsSync(pkg) && (JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'bia-torch') return dir;
    if (path.dirname(dir) === dir) throw new Error(`no bia-torch package.json above ${__dirname}`);
  }
}

const ROOT = repoRoot();
const README = path.join(ROOT, 'README.md');
const DOCS = path.join(ROOT, 'docs');
const README_MAX_LINES = 250;

/** Files under dir (recursive) whose name passes keep; skips node_modules, dot folders and build outputs. */
function walk(dir: string, keep: (name: string) => boolean, skip: ReadonlySet<string> = new Set()): string[] {
  if (!existsSync(dir)) return [];
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) {
      if (e.name === 'node_modules' || e.name.startsWith('.') || skip.has(p)) continue;
      out.push(...walk(p, keep, skip));
    } else if (e.isFile() && keep(e.name)) out.push(p);
  }
  return out.sort();
}

const rel = (p: string) => path.relative(ROOT, p);

/** Markdown without fenced code blocks and inline code spans (links inside code are not links). */
function proseOf(markdown: string): string {
  return markdown
    .replace(/^(```|~~~)[^\n]*\n[\s\S]*?^\1[^\n]*$/gm, (block) => '\n'.repeat(block.split('\n').length - 1))
    .replace(/`[^`\n]*`/g, '');
}

interface Link {
  target: string;
  line: number;
}

/** Inline links and images `[text](target "title")` and reference definitions `[id]: target`. */
function linksOf(markdown: string): Link[] {
  const prose = proseOf(markdown);
  const links: Link[] = [];
  const lineAt = (index: number) => prose.slice(0, index).split('\n').length;
  for (const m of prose.matchAll(/!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^)\s>]*)>?(?:\s+(?:"[^"]*"|'[^']*'))?\s*\)/g)) {
    links.push({ target: m[1], line: lineAt(m.index ?? 0) });
  }
  for (const m of prose.matchAll(/^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$/gm)) links.push({ target: m[1], line: lineAt(m.index ?? 0) });
  return links;
}

const EXTERNAL = /^(?:[a-z][a-z0-9+.-]*:|\/\/)/i; // http:, https:, mailto:, … and protocol-relative

/** GitHub's heading anchors of a markdown file (lower case, punctuation dropped, spaces → '-', repeats numbered). */
function anchorsOf(markdown: string): Set<string> {
  const seen = new Map<string, number>();
  const anchors = new Set<string>();
  for (const m of proseOfHeadings(markdown)) {
    const base = m
      .toLowerCase()
      .replace(/<[^>]*>/g, '')
      .replace(/[^\p{L}\p{N}\p{M}\s_-]/gu, '')
      .trim()
      .replace(/\s/g, '-');
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    anchors.add(n === 0 ? base : `${base}-${n}`);
  }
  return anchors;
}

/** The text of every ATX heading outside fenced code (inline code keeps its text, without the backticks). */
function proseOfHeadings(markdown: string): string[] {
  const noFences = markdown.replace(/^(```|~~~)[^\n]*\n[\s\S]*?^\1[^\n]*$/gm, '');
  return [...noFences.matchAll(/^ {0,3}#{1,6}\s+(.*?)\s*#*\s*$/gm)].map((m) => m[1].replace(/`/g, '').replace(/\[([^\]]*)\]\([^)]*\)/g, '$1'));
}

const markdownFiles = [README, ...walk(DOCS, (n) => n.endsWith('.md'))];

t.test(`README.md is a front page of at most ${README_MAX_LINES} lines`, async (t) => {
  const text = readFileSync(README, 'utf8');
  const lines = text.endsWith('\n') ? text.slice(0, -1).split('\n').length : text.split('\n').length;
  t.ok(lines <= README_MAX_LINES, `README.md has ${lines} lines (at most ${README_MAX_LINES}; the rest belongs in docs/)`);
});

t.test('every relative link and image in README.md and docs/ resolves to a file of the repository', async (t) => {
  t.ok(existsSync(DOCS), 'docs/ exists');
  let checked = 0;
  for (const file of markdownFiles) {
    for (const { target, line } of linksOf(readFileSync(file, 'utf8'))) {
      if (target === '' || target.startsWith('#') || EXTERNAL.test(target)) continue;
      checked++;
      const [filePart] = target.split('#');
      const decoded = decodeURIComponent(filePart.split('?')[0]);
      const resolved = path.resolve(path.dirname(file), decoded);
      const where = `${rel(file)}:${line} → ${target}`;
      if (resolved !== ROOT && !resolved.startsWith(ROOT + path.sep)) {
        t.fail(`${where} points outside the repository`);
        continue;
      }
      t.ok(existsSync(resolved), `${where} exists`);
    }
  }
  t.ok(checked > 0, `${checked} relative links checked`);
});

t.test('every #anchor of a link into a markdown file names one of its headings', async (t) => {
  const anchorCache = new Map<string, Set<string>>();
  const anchorsFor = (file: string) => {
    if (!anchorCache.has(file)) anchorCache.set(file, anchorsOf(readFileSync(file, 'utf8')));
    return anchorCache.get(file)!;
  };
  for (const file of markdownFiles) {
    for (const { target, line } of linksOf(readFileSync(file, 'utf8'))) {
      if (!target.includes('#') || EXTERNAL.test(target)) continue;
      const [filePart, anchor] = target.split('#');
      const resolved = filePart === '' ? file : path.resolve(path.dirname(file), decodeURIComponent(filePart));
      if (!resolved.endsWith('.md') || !existsSync(resolved) || statSync(resolved).isDirectory()) continue;
      t.ok(anchorsFor(resolved).has(decodeURIComponent(anchor).toLowerCase()), `${rel(file)}:${line} → ${target}: #${anchor} is a heading of ${rel(resolved)}`);
    }
  }
});

t.test('every docs/….md path mentioned in ts/, native/, bench/ and test/ exists', async (t) => {
  const SOURCE = /\.(?:ts|mts|cts|js|mjs|cjs|cc|cpp|h|hpp|py|sh|json|txt|md)$/;
  const skip = new Set([path.join(ROOT, 'bench', 'out')]);
  const self = new Set([path.join(ROOT, 'test', 'docs.test.ts')]);
  const files = ['ts', 'native', 'bench', 'test'].flatMap((d) => walk(path.join(ROOT, d), (n) => SOURCE.test(n), skip)).filter((f) => !self.has(f));
  const mentioned = new Map<string, string[]>();
  for (const file of files) {
    const lines = readFileSync(file, 'utf8').split('\n');
    lines.forEach((text, i) => {
      for (const m of text.matchAll(/(?<![\w./-])docs\/[\w./-]*?\.md\b/g)) {
        const where = `${rel(file)}:${i + 1}`;
        mentioned.set(m[0], [...(mentioned.get(m[0]) ?? []), where]);
      }
    });
  }
  for (const [doc, where] of [...mentioned].sort(([a], [b]) => a.localeCompare(b))) {
    const ok = existsSync(path.join(ROOT, doc));
    t.ok(ok, `${doc} exists (mentioned at ${where.slice(0, 6).join(', ')}${where.length > 6 ? `, and ${where.length - 6} more` : ''})`);
  }
});

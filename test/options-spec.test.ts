// The erase options are specified once (ERASE_OPTIONS); the library's defaults and validation, the CLI's
// flags and help, and the table in docs/cli.md must all agree with it.
import t from 'tap';
import { readFileSync } from 'node:fs';
import nodePath from 'node:path';
import { ERASE_HELP, parseEraseArgs } from '../ts/cli/erase';
import { ERASE_DEFAULTS, ERASE_OPTION_KEYS, ERASE_OPTIONS, eraseOptionsMarkdown, resolveEraseOptions, withOptionsTable } from '../ts/erase/options';

const ROOT = nodePath.resolve(__dirname, '..', '..');
const base = ['in.png', '--diffusion', 'd.pt', '--encoder', 'e.pt', '--out', 'o'];

t.test('docs/cli.md carries the generated options table', async (t) => {
  const doc = readFileSync(nodePath.join(ROOT, 'docs', 'cli.md'), 'utf8');
  t.equal(withOptionsTable(doc), doc, 'regenerate with `npm run docs:options`');
  for (const k of ERASE_OPTION_KEYS) t.match(eraseOptionsMarkdown(), `| \`${k}\` |`);
});

t.test('the defaults are the spec\'s, and each passes its own check', async (t) => {
  t.same(Object.keys(ERASE_DEFAULTS), ERASE_OPTION_KEYS);
  t.same(resolveEraseOptions({}), ERASE_DEFAULTS);
  for (const k of ERASE_OPTION_KEYS) t.same(ERASE_DEFAULTS[k], ERASE_OPTIONS[k].default, k);
});

t.test('library and CLI accept and refuse the same values', async (t) => {
  for (const k of ERASE_OPTION_KEYS) {
    const s = ERASE_OPTIONS[k];
    t.match(ERASE_HELP, `--${s.flag}`, `help lists --${s.flag}`);
    if (s.kind === 'int' || s.kind === 'number') {
      // the limits themselves are accepted by both (steps ≤ t0 + 1 is a cross-check: move the other one)
      const extra = k === 'steps' ? { t0: 999 } : k === 't0' ? { steps: 2 } : {};
      const extraArgs = Object.entries(extra).flatMap(([key, v]) => [`--${ERASE_OPTIONS[key as 't0'].flag}`, String(v)]);
      const inside = [s.kind === 'number' && s.minExclusive ? s.min + 0.5 : s.min, s.kind === 'number' && s.maxExclusive ? s.max - 0.01 : s.max];
      for (const v of inside) {
        t.equal(resolveEraseOptions({ ...extra, [k]: v })[k], v, `${k} = ${v} accepted by the library`);
        t.equal(parseEraseArgs([...base, ...extraArgs, `--${s.flag}=${v}`]).options[k], v, `--${s.flag} ${v} accepted by the CLI`);
      }
      const outside = [s.kind === 'number' && s.minExclusive ? s.min : s.min - 1, s.kind === 'number' && s.maxExclusive ? s.max : s.max * 2 + 1];
      for (const v of outside) {
        t.throws(() => resolveEraseOptions({ [k]: v }), { code: 'BIA_INVALID_ARGUMENT', message: new RegExp(`^${k} must`) }, `${k} = ${v} refused by the library`);
        t.throws(() => parseEraseArgs([...base, `--${s.flag}=${v}`]), { name: 'UsageError', message: new RegExp(`^--${s.flag} must`) }, `--${s.flag} ${v} refused by the CLI`);
      }
    } else if (s.kind === 'enum') {
      for (const v of s.values) t.equal(parseEraseArgs([...base, `--${s.flag}`, v, ...(v === 'others' ? ['--others', 'people'] : [])]).options[k], v);
      t.throws(() => resolveEraseOptions({ [k]: 'nonsense' }), { message: new RegExp(`${k} must be one of`) });
      t.throws(() => parseEraseArgs([...base, `--${s.flag}`, 'nonsense']), { name: 'UsageError' });
    } else if (s.kind === 'pair') {
      t.same(parseEraseArgs([...base, `--${s.flag}`, `${s.min},${s.max}`]).options[k], [s.min, s.max]);
      t.throws(() => resolveEraseOptions({ [k]: [s.max, s.min] }), { message: new RegExp(`${k} must have lo`) });
      t.throws(() => parseEraseArgs([...base, `--${s.flag}`, `${s.max},${s.min}`]), { name: 'UsageError' });
    } else {
      t.equal(parseEraseArgs([...base, `--${s.flag}`]).options[k], false, `--${s.flag} turns ${k} off`);
      t.throws(() => resolveEraseOptions({ [k]: 'yes' as unknown as boolean }), { message: new RegExp(`${k} must be a boolean`) });
    }
  }
});

t.test('checks between options', async (t) => {
  t.throws(() => resolveEraseOptions({ t0: 10, steps: 12 }), { message: /steps must be at most t0 \+ 1 = 11/ });
  t.equal(resolveEraseOptions({ t0: 10, steps: 11 }).steps, 11);
  t.throws(() => resolveEraseOptions({ walkStep: [0, 0] }), { message: /walkStep must not be \[0, 0\]/ });
});

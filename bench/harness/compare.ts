/**
 * Compare a run with a baseline: like with like (same config, device, precision, threads, smoke,
 * and per case the same suite, name and params), flagging a change only when it is larger than
 * both the tolerance and the trials' measured spread.
 */
import { BiaError } from '../../ts/errors';
import { formatSeconds } from './run';
import { SCHEMA, type BenchRun, type Measurement } from './types';

export type Verdict = 'regression' | 'improvement' | 'unchanged' | 'noisy' | 'new' | 'missing';

export interface ComparedCase {
  key: string;
  suite: string;
  case: string;
  params: Measurement['params'];
  old: number | null;
  new: number | null;
  /** new / old − 1 of the median time (positive: slower). */
  change: number | null;
  /** The measured noise: the mean of both runs' relative spreads. */
  noise: number | null;
  verdict: Verdict;
}

export interface ComparedMemory {
  suite: string;
  what: 'peakRssBytes' | 'peakCudaAllocatedBytes';
  old: number;
  new: number;
  change: number;
  verdict: 'regression' | 'improvement' | 'unchanged';
}

export interface Comparison {
  tolerance: number;
  /** Why the runs are not like with like (empty: comparable). */
  incomparable: string[];
  /** Environment differences worth knowing (machine, library versions, commit). */
  environment: string[];
  cases: ComparedCase[];
  memory: ComparedMemory[];
  regressions: number;
  improvements: number;
}

/** Parse '10%', '10', or '0.1' (a fraction when ≤ 1 and without %). */
export function parseTolerance(s: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(%?)\s*$/.exec(s);
  if (!m) throw new BiaError('BIA_INVALID_ARGUMENT', `--tolerance must be a percentage such as 10% or 0.1, got '${s}'`);
  const v = Number(m[1]);
  const t = m[2] === '%' || v > 1 ? v / 100 : v;
  if (!(t > 0 && t < 10)) throw new BiaError('BIA_INVALID_ARGUMENT', `--tolerance must be above 0% and below 1000%, got '${s}'`);
  return t;
}

export function caseKey(m: Pick<Measurement, 'suite' | 'case' | 'params'>): string {
  const p = Object.keys(m.params).sort().map((k) => `${k}=${m.params[k]}`).join(',');
  return `${m.suite}/${m.case}${p ? `{${p}}` : ''}`;
}

/** Check that a parsed JSON value is a bench run (schema and shape). */
export function asBenchRun(v: unknown, what: string): BenchRun {
  const r = v as BenchRun;
  if (!r || typeof r !== 'object' || r.schema !== SCHEMA || !Array.isArray(r.suites) || !r.options || !r.environment) {
    throw new BiaError('BIA_INVALID_ARGUMENT', `${what} is not a bia bench result (schema '${SCHEMA}')`);
  }
  return r;
}

const MEMORY_FLOOR = 16 * 2 ** 20; // memory changes under 16 MiB are not judged

export function compareRuns(baseline: BenchRun, current: BenchRun, tolerance: number): Comparison {
  const o = baseline.options;
  const n = current.options;
  const incomparable: string[] = [];
  for (const k of ['config', 'device', 'dtype', 'autocast', 'threads', 'smoke'] as const) {
    if (JSON.stringify(o[k] ?? null) !== JSON.stringify(n[k] ?? null)) incomparable.push(`${k}: ${JSON.stringify(o[k] ?? null)} vs ${JSON.stringify(n[k] ?? null)}`);
  }
  const e0 = baseline.environment;
  const e1 = current.environment;
  const environment: string[] = [];
  const diff = (what: string, a: unknown, b: unknown) => {
    if (JSON.stringify(a) !== JSON.stringify(b)) environment.push(`${what}: ${JSON.stringify(a)} → ${JSON.stringify(b)}`);
  };
  diff('cpu', e0.cpu, e1.cpu);
  diff('cores', e0.cores, e1.cores);
  diff('gpus', e0.cuda.gpus, e1.cuda.gpus);
  diff('LibTorch', e0.torch, e1.torch);
  diff('BLAS', e0.blas.name, e1.blas.name);
  diff('commit', e0.git.commit, e1.git.commit);

  const cases: ComparedCase[] = [];
  const memory: ComparedMemory[] = [];
  if (incomparable.length === 0) {
    const old = new Map<string, Measurement>();
    for (const s of baseline.suites) for (const m of s.measurements) old.set(caseKey(m), m);
    const seen = new Set<string>();
    for (const s of current.suites) {
      for (const m of s.measurements) {
        const key = caseKey(m);
        seen.add(key);
        const b = old.get(key);
        if (!b) {
          cases.push({ key, suite: m.suite, case: m.case, params: m.params, old: null, new: m.median, change: null, noise: null, verdict: 'new' });
          continue;
        }
        const change = m.median / b.median - 1;
        const noise = (b.spread + m.spread) / 2;
        let verdict: Verdict = 'unchanged';
        if (Math.abs(change) > tolerance) verdict = Math.abs(change) > noise ? (change > 0 ? 'regression' : 'improvement') : 'noisy';
        cases.push({ key, suite: m.suite, case: m.case, params: m.params, old: b.median, new: m.median, change, noise, verdict });
      }
    }
    const ranSuites = new Set(current.suites.map((s) => s.suite));
    for (const [key, b] of old) {
      if (!seen.has(key) && ranSuites.has(b.suite)) {
        cases.push({ key, suite: b.suite, case: b.case, params: b.params, old: b.median, new: null, change: null, noise: null, verdict: 'missing' });
      }
    }
    for (const s of current.suites) {
      const b = baseline.suites.find((x) => x.suite === s.suite);
      if (!b) continue;
      for (const what of ['peakRssBytes', 'peakCudaAllocatedBytes'] as const) {
        const a = b.memory[what];
        const c = s.memory[what];
        if (a === undefined || c === undefined || !(a > 0)) continue;
        const change = c / a - 1;
        const judged = Math.abs(c - a) > MEMORY_FLOOR && Math.abs(change) > tolerance;
        memory.push({ suite: s.suite, what, old: a, new: c, change, verdict: judged ? (change > 0 ? 'regression' : 'improvement') : 'unchanged' });
      }
    }
  }
  const regressions = cases.filter((c) => c.verdict === 'regression').length + memory.filter((m) => m.verdict === 'regression').length;
  const improvements = cases.filter((c) => c.verdict === 'improvement').length + memory.filter((m) => m.verdict === 'improvement').length;
  return { tolerance, incomparable, environment, cases, memory, regressions, improvements };
}

const pct = (x: number | null) => (x === null ? '—' : `${x >= 0 ? '+' : ''}${(100 * x).toFixed(1)}%`);
const mib = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;

function rows(c: Comparison): string[][] {
  return [
    ...c.cases.map((x) => [x.key, x.old === null ? '—' : formatSeconds(x.old), x.new === null ? '—' : formatSeconds(x.new), pct(x.change), x.noise === null ? "—" : `${(100 * x.noise).toFixed(1)}%`, x.verdict]),
    ...c.memory.map((m) => [`${m.suite} ${m.what === 'peakRssBytes' ? 'peak RSS' : 'peak CUDA allocated'}`, mib(m.old), mib(m.new), pct(m.change), '', m.verdict]),
  ];
}

const HEADER = ['case', 'baseline', 'now', 'change', 'noise', 'verdict'];

/** A plain-text table of the comparison. */
export function formatComparison(c: Comparison, table: (h: string[], r: string[][]) => string): string {
  if (c.incomparable.length) return `not comparable with the baseline (${c.incomparable.join('; ')})`;
  const lines = [table(HEADER, rows(c))];
  if (c.environment.length) lines.push(`environment changed: ${c.environment.join('; ')}`);
  lines.push(`${c.regressions} regression(s), ${c.improvements} improvement(s) beyond ${(100 * c.tolerance).toFixed(0)}% and the measured spread`);
  return lines.join('\n');
}

/** A markdown summary (for a CI job summary or a PR comment). */
export function markdownComparison(c: Comparison, current: BenchRun): string {
  const e = current.environment;
  const out = [
    `## bia bench: ${current.options.suites.join(', ')} (${current.options.config}, ${current.options.device})`,
    '',
    `${e.cuda.gpus.length ? e.cuda.gpus.join(', ') : e.cpu}, ${e.threads} threads, LibTorch ${e.torch}, commit ${e.git.commit?.slice(0, 10) ?? 'unknown'}`,
    '',
  ];
  if (c.incomparable.length) {
    out.push(`Not comparable with the baseline: ${c.incomparable.join('; ')}.`);
    return `${out.join('\n')}\n`;
  }
  out.push(`| ${HEADER.join(' | ')} |`, `|${HEADER.map(() => '---').join('|')}|`);
  for (const r of rows(c)) out.push(`| ${r.map((x, i) => (i === 5 && x === 'regression' ? '**regression**' : x.replace(/\|/g, '\\|'))).join(' | ')} |`);
  out.push('', `**${c.regressions} regression(s)**, ${c.improvements} improvement(s) beyond ${(100 * c.tolerance).toFixed(0)}% and the measured spread.`);
  if (c.environment.length) out.push('', `Environment changed: ${c.environment.join('; ')}.`);
  return `${out.join('\n')}\n`;
}

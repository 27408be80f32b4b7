/**
 * Compare a run with a baseline: like with like (same config, device, precision, threads, smoke,
 * and per case the same suite, name and params). Per case, the bootstrap confidence interval of the
 * ratio of medians decides (bench/harness/stats.ts `judge`): a regression only when the whole
 * interval lies beyond the tolerance, unchanged when it lies within, otherwise inconclusive.
 */
import { BiaError } from '../../ts/errors';
import { formatSeconds } from './run';
import { judge, seedOf, stability, type CaseVerdict } from './stats';
import { SCHEMA, type BenchRun, type Measurement } from './types';

export type Verdict = CaseVerdict | 'new' | 'missing';

export interface ComparedCase {
  key: string;
  suite: string;
  case: string;
  params: Measurement['params'];
  old: number | null;
  new: number | null;
  /** new / old − 1 of the median time (positive: slower). */
  change: number | null;
  /** The confidence interval of new / old − 1 (null for new and missing cases). */
  interval: { lo: number; hi: number; confidence: number } | null;
  verdict: Verdict;
  /** Why the verdict is what it is (the interval, too few samples, a busier machine…). */
  reasons: string[];
  /** Stability flags of either run ('baseline: …', 'now: …'). */
  unstable: string[];
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
  /** Two-sided confidence of the intervals. */
  confidence: number;
  /** Why the runs are not like with like (empty: comparable). */
  incomparable: string[];
  /** Environment differences worth knowing (machine, library versions, commit). */
  environment: string[];
  cases: ComparedCase[];
  memory: ComparedMemory[];
  regressions: number;
  improvements: number;
  inconclusive: number;
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

/** Parse a confidence such as 99%, 99 or 0.99 (between 50% and 99.9%). */
export function parseConfidence(s: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(%?)\s*$/.exec(s);
  const v = m ? Number(m[1]) : NaN;
  const c = m && (m[2] === '%' || v > 1) ? v / 100 : v;
  if (!(c >= 0.5 && c <= 0.999)) throw new BiaError('BIA_INVALID_ARGUMENT', `--confidence must be between 50% and 99.9% (e.g. 99% or 0.99), got '${s}'`);
  return c;
}

function flags(m: Measurement): string[] {
  return (m.stability ?? stability(m.samples, m.load)).unstable;
}

/**
 * `paired`: the two runs were interleaved process by process (`--against`: process k of each side ran
 * next to each other), and each case is judged on the pairs' ratios (stats.ts, pairedRatioInterval).
 */
export function compareRuns(baseline: BenchRun, current: BenchRun, tolerance: number, confidence = 0.99, opts: { ignoreLoad?: boolean; paired?: boolean } = {}): Comparison {
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
          cases.push({ key, suite: m.suite, case: m.case, params: m.params, old: null, new: m.median, change: null, interval: null, verdict: 'new', reasons: [], unstable: flags(m).map((f) => `now: ${f}`) });
          continue;
        }
        const j = judge({ samples: b.samples, load: b.load, processes: b.processes }, { samples: m.samples, load: m.load, processes: m.processes }, tolerance, { confidence, seed: seedOf(key), ignoreLoad: opts.ignoreLoad, paired: opts.paired });
        cases.push({
          key, suite: m.suite, case: m.case, params: m.params, old: b.median, new: m.median,
          change: j.ratio.value - 1,
          interval: { lo: j.ratio.lo - 1, hi: j.ratio.hi - 1, confidence },
          verdict: j.verdict,
          reasons: j.reasons,
          unstable: [...flags(b).map((f) => `baseline: ${f}`), ...flags(m).map((f) => `now: ${f}`)],
        });
      }
    }
    const ranSuites = new Set(current.suites.map((s) => s.suite));
    for (const [key, b] of old) {
      if (!seen.has(key) && ranSuites.has(b.suite)) {
        cases.push({ key, suite: b.suite, case: b.case, params: b.params, old: b.median, new: null, change: null, interval: null, verdict: 'missing', reasons: [], unstable: [] });
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
  const inconclusive = cases.filter((c) => c.verdict === 'inconclusive').length;
  return { tolerance, confidence, incomparable, environment, cases, memory, regressions, improvements, inconclusive };
}

const pct = (x: number | null) => (x === null ? '—' : `${x >= 0 ? '+' : ''}${(100 * x).toFixed(1)}%`);
const mib = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;

const span = (x: ComparedCase['interval']) => (x === null ? '—' : `${pct(x.lo)} … ${pct(x.hi)}`);

function rows(c: Comparison): string[][] {
  return [
    ...c.cases.map((x) => [
      x.key, x.old === null ? '—' : formatSeconds(x.old), x.new === null ? '—' : formatSeconds(x.new), pct(x.change),
      span(x.interval),
      `${x.verdict}${x.unstable.length ? ' (unstable)' : ''}`,
    ]),
    ...c.memory.map((m) => [`${m.suite} ${m.what === 'peakRssBytes' ? 'peak RSS' : 'peak CUDA allocated'}`, mib(m.old), mib(m.new), pct(m.change), '', m.verdict]),
  ];
}

function header(c: Comparison): string[] {
  return ['case', 'baseline', 'now', 'change', `${(100 * c.confidence).toFixed(0)}% interval`, 'verdict'];
}

/** Why each case that is not plainly unchanged came out as it did, and which cases are unstable. */
function notes(c: Comparison): string[] {
  const out: string[] = [];
  for (const x of c.cases) {
    if (x.verdict === 'regression' || x.verdict === 'improvement' || x.verdict === 'inconclusive') out.push(`${x.key}: ${x.verdict} — ${x.reasons.join('; ')}`);
    if (x.unstable.length) out.push(`${x.key}: unstable — ${x.unstable.join('; ')}`);
  }
  return out;
}

function summary(c: Comparison): string {
  return `${c.regressions} regression(s), ${c.improvements} improvement(s), ${c.inconclusive} inconclusive: a change counts when the whole ` +
    `${(100 * c.confidence).toFixed(0)}% interval of the median ratio lies beyond ±${(100 * c.tolerance).toFixed(0)}%`;
}

/** A plain-text table of the comparison. */
export function formatComparison(c: Comparison, table: (h: string[], r: string[][]) => string): string {
  if (c.incomparable.length) return `not comparable with the baseline (${c.incomparable.join('; ')})`;
  const lines = [table(header(c), rows(c))];
  const n = notes(c);
  if (n.length) lines.push(n.map((x) => `  ${x}`).join('\n'));
  if (c.environment.length) lines.push(`environment changed: ${c.environment.join('; ')}`);
  lines.push(summary(c));
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
  const h = header(c);
  out.push(`| ${h.join(' | ')} |`, `|${h.map(() => '---').join('|')}|`);
  for (const r of rows(c)) out.push(`| ${r.map((x, i) => (i === 5 && x.startsWith('regression') ? x.replace('regression', '**regression**') : x.replace(/\|/g, '\\|'))).join(' | ')} |`);
  out.push('', `**${summary(c)}.**`);
  const n = notes(c);
  if (n.length) out.push('', ...n.map((x) => `- ${x.replace(/\|/g, '\\|')}`));
  if (c.environment.length) out.push('', `Environment changed: ${c.environment.join('; ')}.`);
  return `${out.join('\n')}\n`;
}

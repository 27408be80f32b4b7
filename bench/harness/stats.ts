/**
 * The bench's statistics: how many calls make a sample (calibration), the median and its bootstrap
 * confidence interval, the interval of the ratio of two medians, stability flags (bimodal samples,
 * high dispersion, a busy machine) and the verdict of a comparison. Pure functions of sample arrays:
 * the bootstrap draws from a seeded generator, so a verdict is reproducible from the JSON files.
 */
import { invalidArgument } from '../../ts/errors';
import { prng } from '../../ts/blackhole/svm';

/** The p-quantile (0 ≤ p ≤ 1) of ascending-sorted values, linear between order statistics. */
export function quantileSorted(sorted: ArrayLike<number>, p: number): number {
  const n = sorted.length;
  if (n === 0) throw invalidArgument('no values to take a quantile of');
  const h = (n - 1) * p;
  const lo = Math.floor(h);
  const hi = Math.min(n - 1, lo + 1);
  return sorted[lo] + (h - lo) * (sorted[hi] - sorted[lo]);
}

/** The arithmetic mean (NaN for no values). */
export function mean(xs: readonly number[]): number {
  return xs.reduce((a, b) => a + b, 0) / xs.length;
}

export function median(xs: readonly number[]): number {
  if (xs.length === 0) throw invalidArgument('no values to take a median of');
  return quantileSorted([...xs].sort((a, b) => a - b), 0.5);
}

/** A seeded uniform generator on [0, 1): the library's mulberry32 (ts/blackhole/svm.ts). */
export const seededRandom: (seed: number) => () => number = prng;

/** A 32-bit seed from a string (FNV-1a): each case's bootstrap draws from its own, fixed stream. */
export function seedOf(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

export interface BootstrapOptions {
  /** Two-sided confidence of the interval (default 0.99). */
  confidence?: number;
  /** Bootstrap resamples (default 2000). */
  resamples?: number;
  /** Seed of the resampling (default 1). */
  seed?: number;
}

function checkBootstrap(o: BootstrapOptions): Required<BootstrapOptions> {
  const confidence = o.confidence ?? 0.99;
  const resamples = o.resamples ?? 2000;
  if (!(confidence > 0 && confidence < 1)) throw invalidArgument(`confidence must be between 0 and 1 (exclusive), got ${confidence}`);
  if (!Number.isInteger(resamples) || resamples < 100) throw invalidArgument(`resamples must be an integer ≥ 100, got ${resamples}`);
  return { confidence, resamples, seed: o.seed ?? 1 };
}

/**
 * The medians of `resamples` bootstrap resamples of xs (each n draws with replacement). With `groups`
 * (the process each sample came from) naming two or more, the resampling is hierarchical: the groups are
 * drawn with replacement, then as many samples as each holds from within it — so a difference between
 * processes widens the interval instead of hiding in it (pyperf runs its values in several processes
 * for this reason).
 */
function bootstrapMedians(xs: readonly number[], resamples: number, rand: () => number, groups?: readonly number[]): Float64Array {
  const n = xs.length;
  const buf = new Float64Array(n);
  const out = new Float64Array(resamples);
  if (groups && groups.length !== n) throw invalidArgument(`groups: one per sample (${n}), got ${groups.length}`);
  const byGroup = new Map<number, number[]>();
  if (groups) xs.forEach((x, i) => byGroup.set(groups[i], [...(byGroup.get(groups[i]) ?? []), x]));
  const members = [...byGroup.values()];
  for (let r = 0; r < resamples; r++) {
    if (members.length >= 2) {
      let k = 0;
      while (k < n) {
        const g = members[(rand() * members.length) | 0];
        for (let i = 0; i < g.length && k < n; i++) buf[k++] = g[(rand() * g.length) | 0];
      }
    } else {
      for (let i = 0; i < n; i++) buf[i] = xs[(rand() * n) | 0];
    }
    buf.sort();
    out[r] = quantileSorted(buf, 0.5);
  }
  return out;
}

export interface Interval {
  /** The point estimate (a median, or a ratio of medians). */
  value: number;
  lo: number;
  hi: number;
  confidence: number;
}

/** The median of xs with its percentile-bootstrap confidence interval (hierarchical with `groups`, see bootstrapMedians). */
export function medianInterval(xs: readonly number[], opts: BootstrapOptions = {}, groups?: readonly number[]): Interval {
  const o = checkBootstrap(opts);
  if (xs.length === 0) throw invalidArgument('no samples for a confidence interval');
  const meds = bootstrapMedians(xs, o.resamples, seededRandom(o.seed), groups).sort();
  const a = (1 - o.confidence) / 2;
  return { value: median(xs), lo: quantileSorted(meds, a), hi: quantileSorted(meds, 1 - a), confidence: o.confidence };
}

/**
 * median(now) / median(old) with its percentile-bootstrap confidence interval: both sample sets are
 * resampled independently and the ratio of their medians taken each time (criterion.rs, pyperf); with
 * groups (the process of each sample), hierarchically (bootstrapMedians).
 */
export function ratioInterval(old: readonly number[], now: readonly number[], opts: BootstrapOptions = {}, groups: { old?: readonly number[]; now?: readonly number[] } = {}): Interval {
  const o = checkBootstrap(opts);
  if (old.length === 0 || now.length === 0) throw invalidArgument('no samples for a ratio interval');
  const rand = seededRandom(o.seed);
  const a = bootstrapMedians(old, o.resamples, rand, groups.old);
  const b = bootstrapMedians(now, o.resamples, rand, groups.now);
  const ratios = new Float64Array(o.resamples);
  for (let i = 0; i < o.resamples; i++) ratios[i] = b[i] / a[i];
  ratios.sort();
  const t = (1 - o.confidence) / 2;
  return { value: median(now) / median(old), lo: quantileSorted(ratios, t), hi: quantileSorted(ratios, 1 - t), confidence: o.confidence };
}

/**
 * The ratio of medians of two interleaved builds (`bia bench --against`, ABBA…): process k of one side
 * ran next to process k of the other, so each pair's ratio median(now_k) / median(old_k) is free of
 * what the machine did between pairs (its speed drifts over minutes). The estimate is the geometric
 * mean of the pairs' ratios; its interval resamples the pairs (with replacement), then the samples
 * within each process — a disagreement between pairs widens it, a drift shared by a pair does not.
 * Null where fewer than two pairs are known (no process numbers, or no common ones).
 */
export function pairedRatioInterval(old: readonly number[], now: readonly number[], groups: { old?: readonly number[]; now?: readonly number[] }, opts: BootstrapOptions = {}): Interval | null {
  const o = checkBootstrap(opts);
  if (!groups.old || !groups.now) return null;
  if (groups.old.length !== old.length || groups.now.length !== now.length) throw invalidArgument('groups: one per sample');
  const split = (xs: readonly number[], g: readonly number[]) => {
    const m = new Map<number, number[]>();
    xs.forEach((x, i) => m.set(g[i], [...(m.get(g[i]) ?? []), x]));
    return m;
  };
  const a = split(old, groups.old);
  const b = split(now, groups.now);
  const pairs = [...a.keys()].filter((k) => b.has(k)).sort((x, y) => x - y).map((k) => ({ old: a.get(k)!, now: b.get(k)! }));
  if (pairs.length < 2) return null;
  const value = Math.exp(mean(pairs.map((p) => Math.log(median(p.now) / median(p.old)))));
  const rand = seededRandom(o.seed);
  const resampledMedian = (xs: number[], buf: Float64Array) => {
    for (let i = 0; i < xs.length; i++) buf[i] = xs[(rand() * xs.length) | 0];
    const v = buf.subarray(0, xs.length).sort();
    return quantileSorted(v, 0.5);
  };
  const buf = new Float64Array(Math.max(...pairs.map((p) => Math.max(p.old.length, p.now.length))));
  const ratios = new Float64Array(o.resamples);
  for (let r = 0; r < o.resamples; r++) {
    let sum = 0;
    for (let k = 0; k < pairs.length; k++) {
      const p = pairs[(rand() * pairs.length) | 0];
      sum += Math.log(resampledMedian(p.now, buf) / resampledMedian(p.old, buf));
    }
    ratios[r] = Math.exp(sum / pairs.length);
  }
  ratios.sort();
  const t = (1 - o.confidence) / 2;
  return { value, lo: quantileSorted(ratios, t), hi: quantileSorted(ratios, 1 - t), confidence: o.confidence };
}

// ---- stability --------------------------------------------------------------------------------

/** Samples whose IQR is above this share of the median are flagged as highly dispersed. */
export const DISPERSION_LIMIT = 0.2;
/** Two clusters: a gap where the next sorted sample is at least this many times the previous one. */
export const BIMODAL_GAP = 1.5;
/**
 * A case is measured on a busy machine when other processes' work sat on the cores it needs for more than
 * this many cores' worth on average over its samples (bench/harness/sched.ts, otherLoad).
 */
export const LOAD_LIMIT = 0.25;

export interface Stability {
  /** Interquartile range / median. */
  dispersion: number;
  /** Two clusters of samples, the lower and upper one's medians and sizes; null if none. */
  bimodal: { low: number; high: number; lowCount: number; highCount: number } | null;
  /** Samples beyond Q3 + 3 IQR (Tukey's far outliers). */
  outliers: number;
  /** Mean over the samples of other processes' load on the cores the case needs, in cores (null: not measured). */
  load: number | null;
  /** Why the case is unstable, in words (empty: stable). */
  unstable: string[];
}

/** Two clusters in the samples: the widest relative gap that leaves ≥ max(2, 10%) samples on each side. */
export function bimodality(samples: readonly number[]): Stability['bimodal'] {
  const s = [...samples].sort((a, b) => a - b);
  const n = s.length;
  const k = Math.max(2, Math.ceil(0.1 * n));
  let best = 0;
  let at = -1;
  for (let i = k; i <= n - k; i++) {
    const r = s[i - 1] > 0 ? s[i] / s[i - 1] : 0;
    if (r > best) {
      best = r;
      at = i;
    }
  }
  if (at < 0 || best < BIMODAL_GAP) return null;
  return { low: quantileSorted(s.slice(0, at), 0.5), high: quantileSorted(s.slice(at), 0.5), lowCount: at, highCount: n - at };
}

const fmt = (s: number) => (s >= 1 ? `${s.toFixed(2)} s` : s >= 1e-3 ? `${(s * 1e3).toFixed(2)} ms` : `${(s * 1e6).toFixed(1)} µs`);

/** Stability flags of one case's samples (and, where measured, other processes' load during each sample). */
export function stability(samples: readonly number[], load?: readonly number[]): Stability {
  if (samples.length === 0) throw invalidArgument('no samples to judge');
  const s = [...samples].sort((a, b) => a - b);
  const med = quantileSorted(s, 0.5);
  const q1 = quantileSorted(s, 0.25);
  const q3 = quantileSorted(s, 0.75);
  const dispersion = med > 0 ? (q3 - q1) / med : 0;
  const outliers = s.filter((x) => x > q3 + 3 * (q3 - q1)).length;
  const bimodal = s.length >= 4 ? bimodality(s) : null;
  const busy = load && load.length ? Math.max(0, mean(load)) : null;
  const unstable: string[] = [];
  if (bimodal) unstable.push(`bimodal: ${bimodal.lowCount} samples near ${fmt(bimodal.low)}, ${bimodal.highCount} near ${fmt(bimodal.high)}`);
  if (dispersion > DISPERSION_LIMIT) unstable.push(`dispersed: the middle half of the samples spans ${(100 * dispersion).toFixed(0)}% of the median`);
  if (busy !== null && busy > LOAD_LIMIT) unstable.push(`busy machine: other processes took ${busy.toFixed(2)} of the cores the case needs`);
  return { dispersion, bimodal, outliers, load: busy, unstable };
}

// ---- calibration ------------------------------------------------------------------------------

export interface CalibrationTargets {
  /** Seconds one sample should last at least (inner calls are added until it does). */
  minTime: number;
  /** Seconds of samples per case: the sample count is this over the sample's time, within [minSamples, maxSamples]. */
  caseTime: number;
  minSamples: number;
  maxSamples: number;
  /** Inner calls per sample at most. */
  maxLoops?: number;
}

/** Inner calls per sample and the number of samples, from the estimated seconds of one call. */
export function calibrate(callSeconds: number, t: CalibrationTargets): { loops: number; samples: number } {
  if (!(callSeconds >= 0) || !Number.isFinite(callSeconds)) throw invalidArgument(`a call's estimated time must be finite and ≥ 0, got ${callSeconds}`);
  if (!(t.minTime >= 0) || !(t.caseTime >= 0)) throw invalidArgument('minTime and caseTime must be ≥ 0');
  if (!Number.isInteger(t.minSamples) || !Number.isInteger(t.maxSamples) || t.minSamples < 1 || t.maxSamples < t.minSamples) {
    throw invalidArgument(`the sample count bounds must be integers with 1 ≤ min ≤ max, got ${t.minSamples}..${t.maxSamples}`);
  }
  const per = Math.max(callSeconds, 1e-7);
  const loops = Math.max(1, Math.min(t.maxLoops ?? 100_000, Math.ceil(t.minTime / per)));
  const samples = Math.max(t.minSamples, Math.min(t.maxSamples, Math.ceil(t.caseTime / (loops * per))));
  return { loops, samples };
}

/** Warm-up is steady when the last two calls are within this relative distance of each other. */
export const STEADY_WITHIN = 0.2;

export function steady(warmup: readonly number[]): boolean {
  if (warmup.length < 2) return false;
  const a = warmup[warmup.length - 1];
  const b = warmup[warmup.length - 2];
  return Math.abs(a - b) <= STEADY_WITHIN * Math.min(a, b);
}

// ---- the verdict ------------------------------------------------------------------------------

export type CaseVerdict = 'regression' | 'improvement' | 'unchanged' | 'inconclusive';

/** Fewer samples than this on either side: no change is called, whatever the interval. */
export const MIN_SAMPLES_FOR_VERDICT = 3;
/**
 * A slowdown (speed-up) is not blamed on the code when other processes' load on the needed cores was this
 * many cores more (less) than in the baseline: the machine was busier (quieter), and the verdict is
 * inconclusive. Above LOAD_LIMIT in either run no change is called at all.
 */
export const LOAD_DELTA = 0.1;

export interface JudgeInput {
  samples: readonly number[];
  /** Per-sample load of other processes on the needed cores (absent in runs that did not measure it). */
  load?: readonly number[];
  /** Per sample: the process it was measured in (runs with --processes); the interval then spans the processes. */
  processes?: readonly number[];
}

export interface Judgement {
  verdict: CaseVerdict;
  /** median(now) / median(old) of the times per call, and its interval. */
  ratio: Interval;
  /** Why the verdict is what it is, in words. */
  reasons: string[];
}

function classify(r: Interval, tolerance: number): CaseVerdict {
  if (r.lo > 1 + tolerance) return 'regression';
  if (r.hi < 1 - tolerance) return 'improvement';
  if (r.lo >= 1 - tolerance && r.hi <= 1 + tolerance) return 'unchanged';
  return 'inconclusive';
}

const pc = (x: number) => `${x >= 1 ? '+' : ''}${(100 * (x - 1)).toFixed(1)}%`;
const span = (r: Interval) => `${pc(r.lo)} … ${pc(r.hi)} at ${(100 * r.confidence).toFixed(0)}%`;

/**
 * Compare one case: a regression only when the whole confidence interval of the ratio of medians
 * lies above 1 + tolerance, an improvement only when it lies below 1 − tolerance, unchanged when it
 * lies within ±tolerance; otherwise inconclusive: the interval straddles a bound, too few samples,
 * or a busy machine — other processes took more than LOAD_LIMIT cores of those the case needs in either
 * run, or LOAD_DELTA more (for a slowdown; less for a speed-up) than in the baseline.
 * Other processes' load comes in bursts longer than a case's samples: samples taken under it are not
 * independent draws, and their interval is too narrow to call a change on (docs/benchmarks.md).
 */
export function judge(old: JudgeInput, now: JudgeInput, tolerance: number, opts: BootstrapOptions & { ignoreLoad?: boolean; paired?: boolean } = {}): Judgement {
  if (!(tolerance > 0)) throw invalidArgument(`tolerance must be > 0, got ${tolerance}`);
  const b = { confidence: opts.confidence, resamples: opts.resamples, seed: opts.seed };
  const groups = { old: old.processes, now: now.processes };
  const ratio = (opts.paired ? pairedRatioInterval(old.samples, now.samples, groups, b) : null) ?? ratioInterval(old.samples, now.samples, b, groups);
  const few = Math.min(old.samples.length, now.samples.length);
  let verdict = classify(ratio, tolerance);
  const reasons: string[] = [];
  if (verdict === 'inconclusive') reasons.push(`the interval (${span(ratio)}) straddles ±${(100 * tolerance).toFixed(0)}%: rerun with more samples (--case-time, --trials)`);
  const called = () => verdict === 'regression' || verdict === 'improvement';
  const direction = () => (verdict === 'regression' ? 'slower' : 'faster');
  if (called() && few < MIN_SAMPLES_FOR_VERDICT) {
    reasons.push(`${direction()} (${span(ratio)}) but only ${few} sample(s): rerun with --trials ${MIN_SAMPLES_FOR_VERDICT} or more`);
    verdict = 'inconclusive';
  }
  const w0 = !opts.ignoreLoad && old.load?.length ? Math.max(0, mean(old.load)) : null;
  const w1 = !opts.ignoreLoad && now.load?.length ? Math.max(0, mean(now.load)) : null;
  const cores = (w: number | null) => (w === null ? 'not measured' : `${w.toFixed(2)} cores`);
  const waited = `other processes took ${cores(w1)} of the cores it needs, ${cores(w0)} in the baseline`;
  if (called() && Math.max(w0 ?? 0, w1 ?? 0) > LOAD_LIMIT) {
    reasons.push(`${direction()} (${span(ratio)}), but the machine was busy: ${waited} (above ${LOAD_LIMIT}); rerun with the cores free (or fewer --threads)`);
    verdict = 'inconclusive';
  }
  if (called() && w0 !== null && w1 !== null && (verdict === 'regression' ? w1 - w0 : w0 - w1) > LOAD_DELTA) {
    reasons.push(`${direction()} (${span(ratio)}), but the machine was ${verdict === 'regression' ? 'busier' : 'quieter'}: ${waited}; rerun on a quieter machine`);
    verdict = 'inconclusive';
  }
  if (verdict !== 'inconclusive') reasons.unshift(span(ratio));
  return { verdict, ratio, reasons };
}

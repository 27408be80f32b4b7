// The bench's statistics on synthetic sample arrays (no timing): calibration arithmetic, the median's
// bootstrap interval, the ratio interval, stability flags and the verdict rules. Deterministic: every
// array comes from a seeded generator.
import t from 'tap';
import {
  bimodality,
  calibrate,
  judge,
  medianInterval,
  median,
  pairedRatioInterval,
  quantileSorted,
  ratioInterval,
  seededRandom,
  stability,
  steady,
} from '../bench/harness/stats';
import { mergeProcessRuns } from '../bench/harness/run';

/** n samples around `center` with log-normal noise of relative size sigma (seeded). */
function noisy(n: number, center: number, sigma: number, seed: number): number[] {
  const u = seededRandom(seed);
  return Array.from({ length: n }, () => center * Math.exp(sigma * Math.sqrt(-2 * Math.log(1 - u())) * Math.cos(2 * Math.PI * u())));
}

/** A two-level mixture: share `slow` of the samples near `high`, the rest near `low` (seeded). */
function mixture(n: number, low: number, high: number, slow: number, seed: number): number[] {
  const u = seededRandom(seed);
  return noisy(n, 1, 0.05, seed + 1).map((x) => x * (u() < slow ? high : low));
}

t.test('quantiles and medians', async (t) => {
  t.equal(quantileSorted([1, 2, 3, 4], 0.5), 2.5);
  t.equal(quantileSorted([1, 2, 3, 4], 0.25), 1.75);
  t.equal(quantileSorted([7], 0.9), 7);
  t.equal(median([3, 1, 2]), 2);
  t.throws(() => median([]), { code: 'BIA_INVALID_ARGUMENT' });
});

t.test('calibration: calls per sample and samples per case', async (t) => {
  const targets = { minTime: 0.05, caseTime: 0.5, minSamples: 5, maxSamples: 30 };
  t.same(calibrate(0.0002, targets), { loops: 250, samples: 10 }, '0.2 ms calls: 250 per 50 ms sample, 10 samples fill 0.5 s');
  t.same(calibrate(0.03, targets), { loops: 2, samples: 9 }, '30 ms calls: 2 per sample (60 ms), ⌈0.5 / 0.06⌉ = 9 samples');
  t.same(calibrate(2, targets), { loops: 1, samples: 5 }, 'a 2 s call is one sample, and the minimum count is kept');
  t.same(calibrate(0.0002, { ...targets, caseTime: 60 }), { loops: 250, samples: 30 }, 'capped at maxSamples');
  t.same(calibrate(0, { ...targets, maxLoops: 1000 }), { loops: 1000, samples: 30 }, 'a call too fast to time: maxLoops calls per sample, maxSamples samples');
  t.throws(() => calibrate(NaN, targets), { code: 'BIA_INVALID_ARGUMENT' });
  t.throws(() => calibrate(0.1, { ...targets, minSamples: 0 }), { code: 'BIA_INVALID_ARGUMENT' });
  t.throws(() => calibrate(0.1, { ...targets, maxSamples: 2 }), { code: 'BIA_INVALID_ARGUMENT' }, 'max below min');
});

t.test('warm-up is steady when the last two calls agree within 20%', async (t) => {
  t.notOk(steady([]));
  t.notOk(steady([0.01]));
  t.notOk(steady([0.1, 0.0125]), 'the first-call cost still falling');
  t.ok(steady([0.1, 0.011, 0.012]));
  t.notOk(steady([0.01, 0.013]));
});

t.test("the median's bootstrap interval", async (t) => {
  const xs = noisy(20, 1e-3, 0.1, 7);
  const ci = medianInterval(xs, { seed: 3 });
  t.equal(ci.value, median(xs));
  t.ok(ci.lo < ci.value && ci.value < ci.hi, `contains the median: ${ci.lo} < ${ci.value} < ${ci.hi}`);
  t.ok(ci.hi / ci.lo < 1.3, 'about ±10% noise and 20 samples: a narrow interval');
  t.same(medianInterval(xs, { seed: 3 }), ci, 'the same seed gives the same interval');
  t.same(medianInterval([5], {}), { value: 5, lo: 5, hi: 5, confidence: 0.99 });
  const wide = medianInterval(noisy(20, 1e-3, 0.5, 7), { seed: 3 });
  t.ok(wide.hi / wide.lo > ci.hi / ci.lo, 'more noise, a wider interval');
  const c95 = medianInterval(xs, { seed: 3, confidence: 0.95 });
  t.ok(c95.lo >= ci.lo && c95.hi <= ci.hi, 'a lower confidence, a narrower interval');
  t.throws(() => medianInterval(xs, { confidence: 1 }), { code: 'BIA_INVALID_ARGUMENT' });
  t.throws(() => medianInterval(xs, { resamples: 10 }), { code: 'BIA_INVALID_ARGUMENT' });
  t.throws(() => medianInterval([]), { code: 'BIA_INVALID_ARGUMENT' });
});

t.test('the ratio interval', async (t) => {
  const a = noisy(20, 1e-3, 0.1, 1);
  const same = ratioInterval(a, noisy(20, 1e-3, 0.1, 2));
  t.ok(same.lo < 1 && same.hi > 1, `identical distributions: the interval holds 1 (${same.lo.toFixed(3)} … ${same.hi.toFixed(3)})`);
  const slow = ratioInterval(a, noisy(20, 1.3e-3, 0.1, 2));
  t.ok(slow.lo > 1.15 && slow.hi < 1.5, `1.3× slower: ${slow.lo.toFixed(3)} … ${slow.hi.toFixed(3)}`);
  t.equal(slow.value, median(noisy(20, 1.3e-3, 0.1, 2)) / median(a));
});

t.test('verdicts: unchanged, regression, improvement, inconclusive', async (t) => {
  const base = { samples: noisy(20, 1e-3, 0.05, 11) };
  t.equal(judge(base, { samples: noisy(20, 1e-3, 0.05, 12) }, 0.1).verdict, 'unchanged');
  const reg = judge(base, { samples: noisy(20, 1.3e-3, 0.05, 12) }, 0.1);
  t.equal(reg.verdict, 'regression');
  t.ok(reg.ratio.lo > 1.1, 'the whole interval beyond the tolerance');
  t.match(reg.reasons[0], /^\+\d+\.\d% … \+\d+\.\d% at 99%$/);
  t.equal(judge(base, { samples: noisy(20, 1e-3 / 1.3, 0.05, 12) }, 0.1).verdict, 'improvement');
  // 1.3× slower but within a 50% tolerance
  t.equal(judge(base, { samples: noisy(20, 1.3e-3, 0.05, 12) }, 0.5).verdict, 'unchanged');
  // 12% slower with ±40% noise: the interval straddles +10%
  const wide = judge({ samples: noisy(10, 1e-3, 0.4, 3) }, { samples: noisy(10, 1.12e-3, 0.4, 4) }, 0.1);
  t.equal(wide.verdict, 'inconclusive');
  t.match(wide.reasons.join(), /straddles ±10%: rerun with more samples/);
  // Two samples each, 20× slower: too few to call.
  const few = judge({ samples: [1, 1.1] }, { samples: [20, 21] }, 0.1);
  t.equal(few.verdict, 'inconclusive');
  t.match(few.reasons.join(), /only 2 sample\(s\)/);
  t.throws(() => judge(base, base, 0), { code: 'BIA_INVALID_ARGUMENT' });
});

t.test('a busy machine: no change is called; a busier one below the limit neither', async (t) => {
  const old = { samples: noisy(20, 1e-3, 0.05, 21), load: Array(20).fill(0.02) };
  const slower = noisy(20, 1.5e-3, 0.05, 22);
  const busy = judge(old, { samples: slower, load: Array(20).fill(0.6) }, 0.1);
  t.equal(busy.verdict, 'inconclusive');
  t.match(busy.reasons.join(), /the machine was busy: other processes took 0\.60 cores of the cores it needs, 0\.02 cores in the baseline \(above 0\.25\)/);
  t.equal(judge({ ...old, load: Array(20).fill(0.6) }, { samples: slower, load: Array(20).fill(0.6) }, 0.1).verdict, 'inconclusive', 'busy in both runs');
  const busier = judge(old, { samples: slower, load: Array(20).fill(0.2) }, 0.1);
  t.equal(busier.verdict, 'inconclusive', '0.18 cores more load, below the 0.25 limit');
  t.match(busier.reasons.join(), /the machine was busier: other processes took 0\.20 cores of the cores it needs, 0\.02 cores in the baseline/);
  t.equal(judge(old, { samples: slower, load: Array(20).fill(0.05) }, 0.1).verdict, 'regression', '0.03 cores more load does not explain +50%');
  t.equal(judge({ samples: old.samples }, { samples: slower, load: Array(20).fill(0.05) }, 0.1).verdict, 'regression', 'a baseline without the measure');
  t.equal(judge(old, { samples: slower, load: Array(20).fill(0.6) }, 0.1, { ignoreLoad: true }).verdict, 'regression', 'ignoreLoad: the times alone');
  // The load is the mean over the samples: one busy sample in twenty does not make the case busy.
  t.equal(judge(old, { samples: slower, load: [2, ...Array(19).fill(0)] }, 0.1).verdict, 'regression', 'mean load 0.1');
  // A speed-up measured on a quieter machine is not credited to the code either.
  t.equal(judge({ samples: slower, load: Array(20).fill(0.2) }, old, 0.1).verdict, 'inconclusive');
  // Unchanged stays unchanged on a busy machine: nothing is called either way.
  t.equal(judge({ ...old, load: Array(20).fill(0.9) }, { samples: noisy(20, 1e-3, 0.05, 23), load: Array(20).fill(0.9) }, 0.1).verdict, 'unchanged');
});

t.test('stability: bimodal samples, dispersion, a busy machine', async (t) => {
  const issue = [3.99e-3, 0.28e-3, 0.21e-3, 3.5e-3, 4.15e-3]; // sgemm 256² in the issue
  const b = bimodality(issue)!;
  t.ok(b, 'two clusters');
  t.same([b.lowCount, b.highCount], [2, 3]);
  t.ok(b.low < 0.3e-3 && b.high > 3.9e-3);
  const s = stability(issue);
  t.match(s.unstable.join(), /bimodal: 2 samples near 245\.0 µs, 3 near 3\.99 ms/);
  t.match(s.unstable.join(), /dispersed/);
  const calm = stability(noisy(20, 1e-3, 0.03, 5), Array(20).fill(0.01));
  t.same(calm.unstable, [], 'unimodal ±3% noise on a quiet machine: stable');
  t.equal(calm.bimodal, null);
  t.ok(Math.abs(calm.load! - 0.01) < 1e-12, 'the mean load');
  t.equal(stability(noisy(20, 1e-3, 0.03, 5)).load, null, 'not measured');
  t.match(stability(noisy(20, 1e-3, 0.03, 5), Array(20).fill(0.8)).unstable.join(), /busy machine: other processes took 0\.80 of the cores the case needs/);
  t.equal(stability(noisy(4, 1e-3, 0.03, 5), [2, -2, 0, 0]).load, 0, 'tick noise of short samples averages out');
  t.equal(stability(noisy(4, 1e-3, 0.03, 5), [-1, -1, -1, -1]).load, 0, 'idle free cores: no load');
  t.equal(bimodality(mixture(30, 1e-3, 14e-3, 0.3, 9))!.highCount > 4, true, 'a 30% slow mode among 30 samples');
  t.equal(stability([1, 1, 1, 1, 1, 1, 1, 50]).outliers, 1, 'a far outlier');
  t.throws(() => stability([]), { code: 'BIA_INVALID_ARGUMENT' });
});

t.test('false alarms and catches over many synthetic comparisons', async (t) => {
  let alarms = 0;
  let caught = 0;
  let bimodalAlarms = 0;
  for (let i = 0; i < 100; i++) {
    const a = noisy(10, 1e-3, 0.1, 1000 + i);
    if (judge({ samples: a }, { samples: noisy(10, 1e-3, 0.1, 2000 + i) }, 0.1).verdict === 'regression') alarms++;
    if (judge({ samples: noisy(10, 1e-3, 0.05, 6000 + i) }, { samples: noisy(10, 1.3e-3, 0.05, 3000 + i) }, 0.1).verdict === 'regression') caught++;
    // The issue's bimodal sgemm: 30% of the samples a scheduler tick (4 ms) late.
    if (judge({ samples: mixture(20, 0.25e-3, 4e-3, 0.3, 4000 + i) }, { samples: mixture(20, 0.25e-3, 4e-3, 0.3, 5000 + i) }, 0.1).verdict === 'regression') bimodalAlarms++;
  }
  t.equal(alarms, 0, 'no regression called between two draws of the same ±10% distribution (100 pairs)');
  t.ok(caught >= 95, `a 1.3× slowdown with ±5% noise and 10 samples is caught in ${caught}/100`);
  t.equal(bimodalAlarms, 0, 'no regression called between two draws of the same bimodal distribution (100 pairs)');
});

// --processes: samples from several processes; the interval must span the processes, not hide their
// difference (on the 2-core machine a small UNet's median moved 25–60% between processes).
t.test('samples from several processes: the interval spans them', async (t) => {
  const g = (p: number[][]) => p.flatMap((s, k) => s.map(() => k));
  const procs = (centres: number[], seed: number) => centres.map((c, k) => noisy(10, c * 1e-3, 0.02, seed + k));
  // Five processes of 10 samples (±2%), one of them in a slow mode (1.5 ms).
  const five = procs([1, 1, 1, 1, 1.5], 40);
  const pooled = medianInterval(five.flat());
  const spread = medianInterval(five.flat(), {}, g(five));
  t.ok(pooled.hi < 1.05e-3, `pooled, the slow process hides: ${pooled.lo.toExponential(2)}…${pooled.hi.toExponential(2)}`);
  t.ok(spread.hi > 1.3e-3, `by process, a resample of several slow ones reaches it: ${spread.lo.toExponential(2)}…${spread.hi.toExponential(2)}`);
  t.throws(() => medianInterval(five.flat(), {}, g(five).slice(1)), { code: 'BIA_INVALID_ARGUMENT' });
  // One process per run: a run that lands in the slow mode is a (false) regression, and statistics cannot tell.
  t.equal(judge({ samples: procs([1], 50)[0] }, { samples: procs([1.5], 60)[0] }, 0.1).verdict, 'regression', 'one process per run: the mode is taken for the code');
  // Five per run: the modes mix in both runs, and the interval spans the processes: not called.
  const old = procs([1, 1, 1, 1, 1.5], 50);
  const now = procs([1.5, 1, 1, 1, 1], 60);
  t.not(judge({ samples: old.flat(), processes: g(old) }, { samples: now.flat(), processes: g(now) }, 0.1).verdict, 'regression', 'five processes per run: not called');
  // A real 1.3× slowdown in every process is still caught.
  const slow = procs([1.3, 1.3, 1.3, 1.3, 1.3], 70);
  const steady = procs([1, 1, 1, 1, 1], 80);
  t.equal(judge({ samples: steady.flat(), processes: g(steady) }, { samples: slow.flat(), processes: g(slow) }, 0.1).verdict, 'regression', '1.3× in every process');
  t.same(ratioInterval([1, 1], [2, 2], {}, { old: [0, 1], now: [0, 1] }).value, 2);
});

// --against: process k of each build ran next to each other (ABBA); a drift of the machine between the
// pairs is shared within a pair, and the pairs' ratios see through it where the pooled sides cannot.
t.test('interleaved builds: the interval of the pairs\' ratios', async (t) => {
  const g = (p: number[][]) => p.flatMap((s, k) => s.map(() => k));
  const procs = (centres: number[], seed: number) => centres.map((c, k) => noisy(10, c * 1e-3, 0.03, seed + k));
  // The machine 1.5× slower during the second pair; the code 1.3× slower.
  const old = procs([1, 1.5], 100);
  const now = procs([1.3, 1.95], 200);
  const pair = pairedRatioInterval(old.flat(), now.flat(), { old: g(old), now: g(now) })!;
  t.ok(Math.abs(pair.value - 1.3) < 0.03, `the pairs' ratio ${pair.value.toFixed(3)}`);
  t.ok(pair.lo > 1.2 && pair.hi < 1.4, `interval ${pair.lo.toFixed(3)}…${pair.hi.toFixed(3)}`);
  const judged = (paired: boolean) => judge({ samples: old.flat(), processes: g(old) }, { samples: now.flat(), processes: g(now) }, 0.1, { paired });
  t.equal(judged(true).verdict, 'regression', 'paired: the 1.3× slowdown is called');
  t.equal(judged(false).verdict, 'inconclusive', 'pooled by side: the drift hides it');
  // The same code on both sides, the same drift: unchanged.
  const same = procs([1, 1.5], 300);
  t.equal(judge({ samples: old.flat(), processes: g(old) }, { samples: same.flat(), processes: g(same) }, 0.1, { paired: true }).verdict, 'unchanged');
  // Pairs that disagree (1.0× and 1.6×): the interval spans both, nothing is called.
  const split = procs([1, 2.4], 400);
  const wide = pairedRatioInterval(old.flat(), split.flat(), { old: g(old), now: g(split) })!;
  t.ok(wide.lo < 1.05 && wide.hi > 1.5, `disagreeing pairs: ${wide.lo.toFixed(3)}…${wide.hi.toFixed(3)}`);
  t.equal(judge({ samples: old.flat(), processes: g(old) }, { samples: split.flat(), processes: g(split) }, 0.1, { paired: true }).verdict, 'inconclusive');
  // Fewer than two common processes: no pairs (judge falls back to the pooled interval).
  t.equal(pairedRatioInterval([1, 2], [1, 2], {}), null);
  t.equal(pairedRatioInterval([1, 2], [1, 2], { old: [0, 0], now: [1, 1] }), null);
  t.throws(() => pairedRatioInterval([1, 2], [1, 2], { old: [0], now: [0, 1] }), { code: 'BIA_INVALID_ARGUMENT' });
  t.equal(judge({ samples: noisy(10, 1e-3, 0.03, 1) }, { samples: noisy(10, 1.3e-3, 0.03, 2) }, 0.1, { paired: true }).verdict, 'regression', 'no process numbers: judged pooled');
});

t.test('mergeProcessRuns: one case from two processes', async (t) => {
  const m = (samples: number[]) => ({
    suite: 'unet', case: 'forward', params: { batch: 1 }, unit: 's' as const, warmup: 2, samples, median: median(samples), mean: 0, min: Math.min(...samples), max: Math.max(...samples), spread: 0,
    load: samples.map(() => 0), items: 1, itemsPerSecond: 1 / median(samples),
  });
  const part = (samples: number[], rss: number) => ({ suite: 'unet', ok: true, seconds: 2, measurements: [m(samples)], memory: { peakRssBytes: rss, rssScope: 'reset' as const }, notes: { a: 1 } });
  const r = mergeProcessRuns([part([1, 1.1, 0.9], 10), part([2, 2.1, 1.9], 30)]);
  const x = r.measurements[0];
  t.same(x.samples, [1, 1.1, 0.9, 2, 2.1, 1.9]);
  t.same(x.processes, [0, 0, 0, 1, 1, 1]);
  t.equal(x.median, 1.5);
  t.equal(x.itemsPerSecond, 1 / 1.5, 'recomputed from the merged median');
  t.equal(x.warmup, 4);
  t.ok(x.ci!.lo <= 1.1 && x.ci!.hi >= 1.9, 'the interval spans both processes');
  t.same([r.seconds, r.memory.peakRssBytes, r.notes.processes], [4, 30, 2]);
  t.equal(mergeProcessRuns([part([1], 1)]).measurements[0].processes, undefined, 'one process: as it was');
});

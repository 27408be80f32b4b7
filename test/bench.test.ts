// The bench harness: statistics, the baseline comparison's verdicts, and a smoke run of every suite
// through `bia bench` (tiny config, seconds) — the run CI makes so the harness never rots. Real
// numbers are not asserted; shapes, exit codes and the comparison logic are.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { BiaError, setThreads } from '../ts/index';
import { compareRuns, caseKey, parseTolerance, asBenchRun } from '../bench/harness/compare';
import { runBench, stats } from '../bench/harness/run';
import { pairedRatioInterval, seedOf } from '../bench/harness/stats';
import { SUITES } from '../bench/suites/index';
import { findPython } from '../bench/common';
import type { BenchOptions, BenchRun, Measurement, SuiteResult } from '../bench/harness/types';
import { CLI, runCli } from './helpers';

setThreads(1);
const dir = mkdtempSync(join(tmpdir(), 'bia-bench-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const ENV = { BIA_NUM_THREADS: '1' };

t.test('stats: median, extremes and relative spread', async (t) => {
  const s = stats([3, 1, 2, 10]);
  t.equal(s.median, 2.5);
  t.equal(s.min, 1);
  t.equal(s.max, 10);
  t.equal(s.spread, 9 / 2.5);
  t.equal(stats([4]).spread, 0);
  t.throws(() => stats([]), { code: 'BIA_INVALID_ARGUMENT' });
});

t.test('parseTolerance', async (t) => {
  t.equal(parseTolerance('10%'), 0.1);
  t.equal(parseTolerance('0.1'), 0.1);
  t.equal(parseTolerance('15'), 0.15);
  for (const bad of ['abc', '0%', '-5%', '']) t.throws(() => parseTolerance(bad), { code: 'BIA_INVALID_ARGUMENT' }, bad);
});

function measurement(name: string, samples: number[], params: Measurement['params'] = {}): Measurement {
  return { suite: 's', case: name, params, unit: 's', warmup: 0, ...stats(samples) };
}

function fakeRun(ms: Measurement[], opts: Partial<BenchOptions> = {}, memory: Partial<SuiteResult['memory']> = {}): BenchRun {
  const options: BenchOptions = { suites: ['s'], config: 'tiny', device: 'cpu', dtype: 'float32', autocast: null, warmup: 1, trials: 3, isolate: false, python: false, smoke: false, threads: 1, ...opts };
  const environment = {
    date: '', host: 'h', cpu: 'c', cores: 2, threads: 1, interopThreads: 1, blas: { name: 'OpenBLAS', library: '', config: '' }, torch: '1.13',
    cuda: { built: false, available: false, cudnn: false, gpus: [] }, node: 'v20', addon: '', version: '0', git: { commit: 'abc', dirty: false }, python: null, matmulPeakGflops: {},
  };
  return { schema: 'bia-bench/1', complete: true, options, environment, suites: [{ suite: 's', ok: true, seconds: 1, measurements: ms, memory: { peakRssBytes: 100 * 2 ** 20, rssScope: 'reset', ...memory }, notes: {} }] };
}

t.test('compareRuns: like with like, verdicts from the interval of the median ratio', async (t) => {
  const base = fakeRun([
    measurement('slower', [1.0, 1.01, 0.99]),
    measurement('noisy', [1.0, 0.5, 1.5]),
    measurement('same', [1.0, 1.0, 1.0]),
    measurement('faster', [1.0, 1.0, 1.0]),
    measurement('gone', [1.0]),
    measurement('p', [1.0], { batch: 1 }),
  ]);
  const now = fakeRun([
    measurement('slower', [1.3, 1.31, 1.29]),
    measurement('noisy', [1.3, 0.6, 2.0]),
    measurement('same', [1.05, 1.05, 1.05]),
    measurement('faster', [0.5, 0.5, 0.5]),
    measurement('added', [1.0]),
    measurement('p', [5.0], { batch: 4 }), // other params: not the same case
  ], {}, { peakRssBytes: 300 * 2 ** 20 });
  const c = compareRuns(base, now, 0.1);
  const v = Object.fromEntries(c.cases.map((x) => [x.key, x.verdict]));
  t.same(v, {
    's/slower': 'regression',
    's/noisy': 'inconclusive',
    's/same': 'unchanged',
    's/faster': 'improvement',
    's/added': 'new',
    's/p{batch=4}': 'new',
    's/gone': 'missing',
    's/p{batch=1}': 'missing',
  });
  const slower = c.cases.find((x) => x.key === 's/slower')!;
  t.equal(slower.change!.toFixed(3), '0.300');
  t.ok(slower.interval!.lo > 0.1 && slower.interval!.hi >= 0.3 && slower.interval!.confidence === 0.99, 'the whole interval beyond +10%');
  t.match(c.cases.find((x) => x.key === 's/noisy')!.reasons.join(), /straddles ±10%/);
  t.equal(c.inconclusive, 1);
  t.same(c.memory.map((m) => [m.what, m.verdict]), [['peakRssBytes', 'regression']], 'RSS ×3 (+200 MiB) is a memory regression');
  t.equal(c.regressions, 2);
  t.equal(c.improvements, 1);
  t.equal(c.incomparable.length, 0);
  // A wider tolerance absorbs the 30%.
  t.equal(compareRuns(base, now, 0.5).cases.find((x) => x.key === 's/slower')!.verdict, 'unchanged');
  // Different config / threads: nothing compared.
  const other = compareRuns(base, fakeRun(now.suites[0].measurements, { config: 'demo', threads: 2 }), 0.1);
  t.equal(other.cases.length, 0);
  t.match(other.incomparable.join(';'), /config.*threads/);
  t.equal(caseKey({ suite: 'a', case: 'b', params: { z: 1, a: 'x' } }), 'a/b{a=x,z=1}', 'params in sorted order');
  t.throws(() => asBenchRun({ schema: 'other' }, 'f.json'), { code: 'BIA_INVALID_ARGUMENT' });
});

t.test('a failing suite is reported and the others keep their results', async (t) => {
  const reg = SUITES as Record<string, (typeof SUITES)[string]>;
  reg.boom = { name: 'boom', description: 'fails', async run() { throw new BiaError('BIA_INVALID_ARGUMENT', 'planted failure'); } };
  try {
    const logs: string[] = [];
    const run = await runBench({ suites: ['boom', 'engine'], config: 'tiny', device: 'cpu', dtype: 'float32', autocast: null, warmup: 1, trials: 2, isolate: false, python: false, smoke: true, threads: 1 }, (m) => logs.push(m));
    t.equal(run.suites[0].ok, false);
    t.same(run.suites[0].error, { code: 'BIA_INVALID_ARGUMENT', message: 'planted failure' });
    t.equal(run.suites[1].ok, true);
    t.ok(run.suites[1].measurements.length >= 2);
    t.match(logs.join('\n'), /boom: FAILED \[BIA_INVALID_ARGUMENT\]/);
  } finally {
    delete reg.boom;
  }
});

t.test('bia bench --smoke: every suite on the tiny config, JSON and markdown', async (t) => {
  const json = join(dir, 'smoke.json');
  const md = join(dir, 'smoke.md');
  const r = runCli(['bench', '--smoke', '--config', 'tiny', '--json', json, '--markdown', md], ENV);
  t.equal(r.status, 0, r.stderr);
  const run = JSON.parse(readFileSync(json, 'utf8')) as BenchRun;
  t.equal(run.schema, 'bia-bench/1');
  t.equal(run.complete, true);
  t.same(run.suites.map((s) => s.suite), Object.keys(SUITES), 'all suites, in order');
  t.ok(Object.keys(SUITES).length >= 4);
  for (const s of run.suites) {
    t.ok(s.ok, `${s.suite} ok ${s.error?.message ?? ''}`);
    t.ok(s.measurements.length > 0, `${s.suite} measured something`);
    t.ok(s.memory.peakRssBytes > 50 * 2 ** 20, `${s.suite} peak RSS recorded`);
    for (const m of s.measurements) {
      t.ok(m.median > 0 && m.min <= m.median && m.median <= m.max, `${s.suite}/${m.case} stats`);
      if (m.flops !== undefined) t.ok(m.gflops! > 0 && m.peakFraction! > 0, `${s.suite}/${m.case} GFLOP/s vs peak`);
    }
  }
  const e = run.environment;
  t.ok(e.cores >= 1 && e.threads === 1 && e.blas.name && e.torch && e.cpu);
  t.match(e.git.commit ?? '', /^[0-9a-f]{40}$/);
  t.ok(e.matmulPeakGflops.float32! > 0);
  const unet = run.suites.find((s) => s.suite === 'unet')!;
  const fwd = unet.measurements.filter((m) => m.case === 'forward');
  t.same(fwd.map((m) => m.params.batch), [1, 4], 'the smoke batch sweep');
  t.ok(fwd[0].samples.length >= 2 && fwd[0].samples.length <= 10, 'smoke samples: at least --trials 2, at most 10');
  for (const m of run.suites.flatMap((s) => s.measurements)) {
    t.ok(m.ci && m.ci.lo <= m.median && m.median <= m.ci.hi, `${m.suite}/${m.case}: the interval holds the median`);
    t.ok(m.stability && Array.isArray(m.stability.unstable), `${m.suite}/${m.case}: stability flags`);
  }
  for (const m of run.suites.filter((s) => ['engine', 'unet', 'svm', 'identity'].includes(s.suite)).flatMap((s) => s.measurements)) {
    const c = m.calibration!;
    t.ok(c && c.firstCall > 0 && c.loops === m.loops && c.loops >= 1, `${m.suite}/${m.case}: calibrated (${m.loops} calls per sample)`);
    t.equal(m.warmup, 1 + c.warmup.length, 'the warm-up count is the first call and the further warm-up calls');
    // One sample lasts --min-time (5 ms in smoke) unless one call is longer: loops were planned from the estimate.
    t.ok(c.loops === 1 || c.loops * c.estimate >= c.minTime * 0.999, `${m.suite}/${m.case}: ${c.loops} × ${c.estimate} s ≥ ${c.minTime} s`);
    if (m.contention) t.equal(m.contention.length, m.samples.length, 'a CPU-wait share per sample');
    t.ok(m.load && m.load.length === m.samples.length && m.load.every((l) => Number.isFinite(l)), `${m.suite}/${m.case}: other processes' load per sample`);
  }
  if (findPython()) t.ok(fwd.every((m) => m.reference && m.reference.speedup > 0), 'the Python eager reference ran side by side');
  const pipe = run.suites.find((s) => s.suite === 'pipeline')!;
  const flat = pipe.notes.memoryAcrossRuns as { rssAfterRunBytes: number[]; flat: boolean };
  t.equal(flat.rssAfterRunBytes.length, 2, 'RSS after each timed pipeline run');
  t.type(flat.flat, 'boolean');
  t.ok((pipe.notes.outsideUNetShare as number) > 0 && (pipe.notes.outsideUNetShare as number) < 1);
  t.match(readFileSync(md, 'utf8'), /\| unet\/forward \| batch=1/);
  t.match(r.stdout, /pipeline\/erase/);
});

t.test('--baseline: exit 4 on a regression, 0 on an improvement, 2 when not comparable', async (t) => {
  const json = join(dir, 'engine.json');
  t.equal(runCli(['bench', 'engine', '--smoke', '--no-python', '--trials', '3', '--json', json], ENV).status, 0);
  const run = JSON.parse(readFileSync(json, 'utf8')) as BenchRun;
  // Every sample at k × the median; without the load record, so the verdict rests on the times alone
  // (a busier machine during this run cannot make it inconclusive).
  const scaled = (k: number) => ({
    ...run,
    suites: run.suites.map((s) => ({ ...s, measurements: s.measurements.map(({ contention: _c, load: _l, stability: _s, ...m }) => ({ ...m, ...stats(m.samples.map(() => m.median * k)) })) })),
  });
  const fast = join(dir, 'fast.json');
  writeFileSync(fast, JSON.stringify(scaled(1 / 20)));
  const md = join(dir, 'cmp.md');
  // --ignore-load: other processes' load on the cores (tests run side by side) must not make it inconclusive.
  const r = runCli(['bench', 'engine', '--smoke', '--no-python', '--trials', '3', '--ignore-load', '--baseline', fast, '--tolerance', '10%', '--markdown', md], ENV);
  t.equal(r.status, 4, 'a 20× faster baseline makes this run a regression');
  t.match(r.stdout, /regression/);
  t.match(readFileSync(md, 'utf8'), /\*\*regression\*\*/);
  const slow = join(dir, 'slow.json');
  writeFileSync(slow, JSON.stringify(scaled(20)));
  const r2 = runCli(['bench', 'engine', '--smoke', '--no-python', '--trials', '3', '--ignore-load', '--baseline', slow], ENV);
  t.equal(r2.status, 0, r2.stderr);
  t.match(r2.stdout, /improvement/);
  const other = join(dir, 'other.json');
  writeFileSync(other, JSON.stringify({ ...run, options: { ...run.options, config: 'demo' } }));
  const r3 = runCli(['bench', 'engine', '--smoke', '--no-python', '--baseline', other], ENV);
  t.equal(r3.status, 2);
  t.match(r3.stdout, /not comparable.*config/);
});

t.test('--isolate runs a suite in its own process', async (t) => {
  const json = join(dir, 'iso.json');
  const r = runCli(['bench', 'engine', '--smoke', '--no-python', '--isolate', '--json', json], ENV);
  t.equal(r.status, 0, r.stderr);
  const run = JSON.parse(readFileSync(json, 'utf8')) as BenchRun;
  t.ok(run.suites[0].ok);
  t.ok(['reset', 'process'].includes(run.suites[0].memory.rssScope));
  t.ok(run.environment.matmulPeakGflops.float32! > 0);
});

t.test('--against: this build and another, interleaved in fresh processes, judged against it', async (t) => {
  const root = join(__dirname, '..', '..');
  const json = join(dir, 'ab.json');
  const r = runCli(['bench', 'engine', '--smoke', '--no-python', '--ignore-load', '--against', root, '--tolerance', '300%', '--json', json], ENV);
  if (r.status !== 0) t.comment(r.stderr.slice(-2000));
  t.equal(r.status, 0, 'the same build against itself, at a 300% tolerance: no regression');
  t.match(r.stdout, /against .* \(measured interleaved\)/);
  const run = asBenchRun(JSON.parse(readFileSync(json, 'utf8')), json);
  const other = run.against!;
  t.equal(other.root, root);
  t.same(other.suites.map((s) => s.suite), ['engine']);
  for (const x of [run, other]) {
    const m = x.suites[0].measurements[0];
    t.same([...new Set(m.processes)], [0, 1], 'two processes a side (ABBA)');
    t.equal(m.processes!.length, m.samples.length);
    t.equal(x.suites[0].notes.processes, 2);
  }
  t.equal(runCli(['bench', 'engine', '--smoke', '--against', join(dir, 'nowhere')], ENV).status, 2, 'no built checkout there: usage error');
  t.match(runCli(['bench', 'engine', '--smoke', '--against', root, '--baseline', json], ENV).stderr, /--against and --baseline: give one/);
  // --paired: the same run judged on its pairs of processes.
  const pooled = compareRuns(other, run, 3, 0.99, { ignoreLoad: true });
  const paired = compareRuns(other, run, 3, 0.99, { ignoreLoad: true, paired: true });
  const m = run.suites[0].measurements[0];
  const o = other.suites[0].measurements[0];
  const direct = pairedRatioInterval(o.samples, m.samples, { old: o.processes, now: m.processes }, { seed: seedOf(paired.cases[0].key) })!;
  t.ok(Math.abs(paired.cases[0].interval!.lo - (direct.lo - 1)) < 1e-12 && Math.abs(paired.cases[0].change! - (direct.value - 1)) < 1e-12, 'paired: the interval of the pairs');
  t.not(paired.cases[0].interval!.lo, pooled.cases[0].interval!.lo, 'pooled: another interval');
  t.match(runCli(['bench', 'engine', '--smoke', '--paired'], ENV).stderr, /--paired .* needs --against/);
});

t.test('--against --lockstep: a pair of processes at once, taking turns case by case', async (t) => {
  const root = join(__dirname, '..', '..');
  const json = join(dir, 'lockstep.json');
  const r = runCli(['bench', 'engine', '--smoke', '--no-python', '--ignore-load', '--against', root, '--lockstep', '--tolerance', '300%', '--json', json], ENV);
  if (r.status !== 0) t.comment(r.stderr.slice(-2000));
  t.equal(r.status, 0, 'the same build against itself in lockstep, at a 300% tolerance: no regression');
  const run = asBenchRun(JSON.parse(readFileSync(json, 'utf8')), json);
  t.equal(run.options.lockstep, true);
  for (const x of [run, run.against!]) {
    const s = x.suites[0];
    t.same([...new Set(s.measurements[0].processes)], [0, 1], 'two processes a side');
    // the first process of each side took one turn to start and one per case
    t.equal(s.notes.lockstepTurns, 1 + s.measurements.length, `${s.notes.lockstepTurns} turns for ${s.measurements.length} cases`);
  }
  t.match(runCli(['bench', 'engine', '--smoke', '--lockstep'], ENV).stderr, /--lockstep .* needs --against/);
  // A checkout whose harness cannot take turns (a build from before --lockstep) is refused.
  const old = join(dir, 'old-checkout');
  mkdirSync(join(old, 'dist', 'bench', 'harness'), { recursive: true });
  writeFileSync(join(old, 'dist', 'bench', 'harness', 'cli.js'), '// an older harness\n');
  writeFileSync(join(old, 'dist', 'bench', 'harness', 'run.js'), '// an older harness\n');
  const refused = runCli(['bench', 'engine', '--smoke', '--against', old, '--lockstep'], ENV);
  t.equal(refused.status, 2);
  t.match(refused.stderr, /cannot take turns/);
});

t.test('bad arguments: usage errors and input errors, with messages', async (t) => {
  const bad = runCli(['bench', 'nosuch'], ENV);
  t.equal(bad.status, 2);
  t.match(bad.stderr, /unknown suite 'nosuch'/);
  t.equal(runCli(['bench', '--config', 'huge'], ENV).status, 2);
  t.equal(runCli(['bench', '--tolerance', 'lots', '--baseline', 'x.json'], ENV).status, 2);
  t.equal(runCli(['bench', '--autocast', 'float16'], ENV).status, 2, 'float16 autocast needs CUDA');
  for (const bad of [['--min-time', 'abc'], ['--case-time', '-1'], ['--trials', '5', '--max-trials', '3'], ['--confidence', '20%', '--baseline', 'x.json']]) {
    const r = runCli(['bench', ...bad], ENV);
    t.equal(r.status, 2, bad.join(' '));
    t.match(r.stderr, new RegExp(`--${bad[bad[0] === '--trials' ? 2 : 0].slice(2)}`), 'the message names the option');
  }
  const notJson = join(dir, 'bad.json');
  writeFileSync(notJson, '{ not json');
  const r = runCli(['bench', 'engine', '--smoke', '--baseline', notJson], ENV);
  t.equal(r.status, 3);
  t.match(r.stderr, /not JSON/);
  const missing = runCli(['bench', 'engine', '--smoke', '--baseline', join(dir, 'missing.json')], ENV);
  t.equal(missing.status, 3);
  t.match(missing.stderr, /BIA_IO_ERROR/);
});

t.test('a run keeps its finished suites: the file is rewritten after each suite, and Ctrl-C exits 130', async (t) => {
  const json = join(dir, 'partial.json');
  const child = spawn(process.execPath, [CLI, 'bench', 'engine', 'svm', 'unet', 'decode', 'pipeline', '--smoke', '--no-python', '--trials', '30', '--json', json], { env: { ...process.env, ...ENV }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  const deadline = Date.now() + 120_000;
  while (!existsSync(json) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  t.ok(existsSync(json), 'the partial file appeared after the first suite');
  const partial = JSON.parse(readFileSync(json, 'utf8')) as BenchRun;
  t.equal(partial.complete, false);
  t.ok(partial.suites.length >= 1 && partial.suites.length < 5);
  t.equal(partial.suites[0].suite, 'engine');
  child.kill('SIGINT');
  t.equal(await exited, 130);
  t.match(stderr, /interrupted; \d+ finished suite\(s\) are in/);
  const after = JSON.parse(readFileSync(json, 'utf8')) as BenchRun;
  t.equal(after.complete, false, 'the file still holds the finished suites');
  t.ok(after.suites.length >= partial.suites.length);
});

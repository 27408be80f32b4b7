/**
 * Can the bench's verdicts be trusted on this machine? (docs/benchmarks.md, "Measured: false alarms
 * and catches")
 *
 *   node dist/bench/verdicts.js [--runs 20] [--smoke-runs 5] [--slowdown 1.3] [--tolerance 10%]
 *                               [--out bench/results/verdicts.json] [--keep DIR] [-- extra bench args]
 *   node dist/bench/verdicts.js --ab …                 (each comparison is one `bia bench --against` this
 *                               checkout: this build and itself, interleaved; the slowdown is applied to
 *                               the interleaved baseline)
 *   node dist/bench/verdicts.js --ab --paired …        (judged on the pairs of processes, as
 *                               `bia bench --against --paired` judges them)
 *   node dist/bench/verdicts.js --from DIR [--ignore-load] …   (judge the runs a --keep DIR kept again, e.g.
 *                               without the busy-machine rule; exit codes are then not known)
 *
 * 1. false alarms: one `bia bench --config tiny` run as the baseline, then --runs more runs of the
 *    same command with `--baseline` (each its own process, as a user runs them, the code unchanged):
 *    every exit code 4 is a false alarm. The same with `--smoke` (--smoke-runs comparisons).
 * 2. catches: a baseline whose every sample (wall and CPU time) is the first run's divided by
 *    --slowdown (its medians that much faster), against which each later run is compared: the share
 *    of the cases of ≥ 1 ms that come out as regressions.
 * The machine's load (1-minute load average before and after each run, other processes' load on the cases' cores)
 * is recorded with every run: the other processes on the machine are part of the measurement.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { invalidArgument } from '../ts/errors';
import { asBenchRun, compareRuns, parseTolerance, type Comparison } from './harness/compare';
import { ROOT } from './harness/run';
import { median } from './harness/stats';
import type { BenchRun } from './harness/types';

const CLI = path.join(ROOT, 'dist', 'ts', 'cli.js');

interface RunRecord {
  index: number;
  seconds: number;
  exitCode: number | null;
  loadBefore: number;
  loadAfter: number;
  /** Median over the run's cases of other processes' load on the cores the bench needs (cores). */
  load: number | null;
  verdicts?: Record<string, number>;
  regressions?: string[];
  /** Against the --slowdown baseline: cases of ≥ 1 ms, and how many came out as regressions. */
  slowdown?: { cases: number; caught: number; missed: { key: string; verdict: string; reasons: string[] }[] };
}

function bench(args: string[], log: (s: string) => void): { seconds: number; exitCode: number | null; loadBefore: number; loadAfter: number; stdout: string } {
  const loadBefore = os.loadavg()[0];
  const t = performance.now();
  const r = spawnSync(process.execPath, [CLI, 'bench', ...args], { encoding: 'utf8', maxBuffer: 64 * 2 ** 20 });
  const seconds = (performance.now() - t) / 1000;
  const loadAfter = os.loadavg()[0];
  log(`  bia bench ${args.join(' ')} → exit ${r.status} in ${seconds.toFixed(1)} s (load ${loadBefore.toFixed(2)} → ${loadAfter.toFixed(2)})`);
  if (r.status !== 0 && r.status !== 4) log(r.stderr.slice(-2000));
  return { seconds, exitCode: r.status, loadBefore, loadAfter, stdout: r.stdout };
}

function readRun(file: string): BenchRun {
  return asBenchRun(JSON.parse(readFileSync(file, 'utf8')), file);
}

function runLoad(run: BenchRun): number | null {
  const w = run.suites.flatMap((s) => s.measurements).map((m) => m.stability?.load).filter((x): x is number => typeof x === 'number');
  return w.length ? median(w) : null;
}

function verdictCounts(c: Comparison): Record<string, number> {
  const out: Record<string, number> = {};
  for (const x of c.cases) out[x.verdict] = (out[x.verdict] ?? 0) + 1;
  return out;
}

/** A copy of a run whose every sample is divided by `k` (its medians k× faster). */
function faster(run: BenchRun, k: number): BenchRun {
  return {
    ...run,
    suites: run.suites.map((s) => ({
      ...s,
      measurements: s.measurements.map((m) => {
        const samples = m.samples.map((x) => x / k);
        // The CPU time per call too: the faster code does less work.
        return { ...m, samples, median: m.median / k, min: m.min / k, max: m.max / k, ci: m.ci && { ...m.ci, lo: m.ci.lo / k, hi: m.ci.hi / k }, cpu: m.cpu?.map((x) => x / k) };
      }),
    })),
  };
}

async function main(argv: string[]): Promise<void> {
  const dash = argv.indexOf('--');
  const extra = dash >= 0 ? argv.slice(dash + 1) : [];
  const { values } = parseArgs({
    args: dash >= 0 ? argv.slice(0, dash) : argv,
    options: {
      runs: { type: 'string', default: '20' },
      'smoke-runs': { type: 'string', default: '5' },
      slowdown: { type: 'string', default: '1.3' },
      tolerance: { type: 'string', default: '10%' },
      out: { type: 'string', default: path.join(ROOT, 'bench', 'results', 'verdicts.json') },
      keep: { type: 'string' },
      from: { type: 'string' },
      'ignore-load': { type: 'boolean', default: false },
      ab: { type: 'boolean', default: false },
      paired: { type: 'boolean', default: false },
    },
  });
  const runs = Number(values.runs);
  const smokeRuns = Number(values['smoke-runs']);
  const slowdown = Number(values.slowdown);
  if (!Number.isInteger(runs) || runs < 1) throw invalidArgument(`--runs must be an integer ≥ 1, got '${values.runs}'`);
  if (!Number.isInteger(smokeRuns) || smokeRuns < 0) throw invalidArgument(`--smoke-runs must be an integer ≥ 0, got '${values['smoke-runs']}'`);
  if (!(slowdown > 1)) throw invalidArgument(`--slowdown must be a number > 1, got '${values.slowdown}'`);
  const tolerance = parseTolerance(values.tolerance);
  const from = values.from ? path.resolve(values.from) : null;
  const ignoreLoad = values['ignore-load'];
  // --ab --paired: judged on the pairs of processes (as `bia bench --against --paired` judges them).
  const paired = values.ab && values.paired;
  const dir = from ?? (values.keep ? path.resolve(values.keep) : mkdtempSync(path.join(os.tmpdir(), 'bia-verdicts-')));
  mkdirSync(dir, { recursive: true });
  const log = (s: string) => process.stderr.write(`${s}\n`);
  const started = new Date().toISOString();
  const result: Record<string, unknown> = {
    what: 'false alarms of back-to-back self-comparisons, and catches of a slowdown (bench/verdicts.ts)',
    command: `node dist/bench/verdicts.js ${argv.join(' ')}`.trim(),
    started,
    host: os.hostname(),
    cpu: os.cpus()[0]?.model ?? 'unknown',
    cores: os.availableParallelism(),
    tolerance,
    slowdown,
    ...(from ? { judgedAgainFrom: from } : {}),
    ignoreLoad,
    paired,
  };
  const write = () => {
    mkdirSync(path.dirname(path.resolve(values.out)), { recursive: true });
    writeFileSync(values.out, `${JSON.stringify(result, null, 2)}\n`);
  };
  try {
    for (const [mode, count] of [['tiny', runs], ['smoke', smokeRuns]] as const) {
      if (count === 0) continue;
      const ab = values.ab;
      log(ab ? `${mode}: ${count} interleaved comparisons of this build with itself` : `${mode}: a baseline, then ${count} comparisons`);
      const flags = mode === 'smoke' ? ['--config', 'tiny', '--smoke', ...extra] : ['--config', 'tiny', ...extra];
      const baseFile = path.join(dir, `${mode}-0.json`);
      const kept = { seconds: NaN, exitCode: null, loadBefore: NaN, loadAfter: NaN, stdout: '' };
      const b = from || ab ? kept : bench([...flags, '--json', baseFile], log);
      if (!from && !ab && b.exitCode !== 0) throw new Error(`the baseline run failed with exit code ${b.exitCode}`);
      const firstBase = ab ? null : readRun(baseFile);
      const records: RunRecord[] = ab ? [] : [{ index: 0, seconds: b.seconds, exitCode: b.exitCode, loadBefore: b.loadBefore, loadAfter: b.loadAfter, load: runLoad(firstBase!) }];
      const summary = { runs: 0, falseAlarms: 0, exitCodes: {} as Record<string, number>, verdicts: {} as Record<string, number>, slowdown: { cases: 0, caught: 0, missedBecause: {} as Record<string, number> } };
      result[mode] = { flags, baseline: records[0], runs: records, summary };
      for (let i = 1; i <= count; i++) {
        const file = path.join(dir, `${mode}-${i}.json`);
        if (from && !existsSync(file)) break;
        const against = ab ? ['--against', ROOT] : ['--baseline', baseFile];
        const r = from ? kept : bench([...flags, '--json', file, ...against, '--tolerance', values.tolerance, ...(ignoreLoad ? ['--ignore-load'] : [])], log);
        const rec: RunRecord = { index: i, seconds: r.seconds, exitCode: r.exitCode, loadBefore: r.loadBefore, loadAfter: r.loadAfter, load: null };
        try {
          const run = readRun(file);
          const base = ab ? asBenchRun(run.against, `${file} (against)`) : firstBase!;
          const slowBase = faster(base, slowdown);
          rec.load = runLoad(run);
          const c = compareRuns(base, run, tolerance, 0.99, { ignoreLoad, paired });
          rec.verdicts = verdictCounts(c);
          rec.regressions = c.cases.filter((x) => x.verdict === 'regression').map((x) => `${x.key}: ${x.reasons.join('; ')}`);
          const s = compareRuns(slowBase, run, tolerance, 0.99, { ignoreLoad, paired });
          const judged = s.cases.filter((x) => x.old !== null && x.new !== null && x.new >= 1e-3);
          const missed = judged.filter((x) => x.verdict !== 'regression');
          rec.slowdown = { cases: judged.length, caught: judged.length - missed.length, missed: missed.map((x) => ({ key: x.key, verdict: x.verdict, reasons: x.reasons })) };
          summary.slowdown.cases += rec.slowdown.cases;
          summary.slowdown.caught += rec.slowdown.caught;
          for (const m of missed) {
            const why = m.reasons.join(' ');
            const k = /machine was busy:/.test(why) ? 'busy machine' : /machine was busier/.test(why) ? 'busier machine' : /only \d+ sample/.test(why) ? 'too few samples' : /straddles/.test(why) ? 'interval straddles the tolerance' : m.verdict;
            summary.slowdown.missedBecause[k] = (summary.slowdown.missedBecause[k] ?? 0) + 1;
          }
          for (const [k, v] of Object.entries(rec.verdicts)) summary.verdicts[k] = (summary.verdicts[k] ?? 0) + v;
        } catch (e) {
          log(`  run ${i}: ${(e as Error).message}`);
        }
        records.push(rec);
        summary.runs++;
        summary.exitCodes[String(rec.exitCode)] = (summary.exitCodes[String(rec.exitCode)] ?? 0) + 1;
        if (rec.exitCode === 4 || (from && rec.regressions?.length)) summary.falseAlarms++;
        log(`  ${mode} ${i}/${count}: exit ${rec.exitCode}, ${JSON.stringify(rec.verdicts)}, load ${rec.load?.toFixed(2)}; ` +
          `against the ${slowdown}× faster baseline ${rec.slowdown?.caught}/${rec.slowdown?.cases} cases ≥ 1 ms caught`);
        write();
      }
    }
    result.finished = new Date().toISOString();
    write();
    log(`wrote ${values.out}`);
  } finally {
    if (!values.keep && !from) rmSync(dir, { recursive: true, force: true });
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).catch((e: unknown) => {
    process.stderr.write(`verdicts: ${(e as Error).message}\n`);
    process.exitCode = 1;
  });
}

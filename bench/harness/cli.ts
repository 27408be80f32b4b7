/**
 * `bia bench [suites] [--config tiny|demo|celeba-hq-256] [--device cpu|cuda] [--json file]
 *            [--baseline old.json --tolerance 10%] [--markdown file] …` — see HELP.
 * Also the worker entry of an isolated suite (--worker-out).
 */
import { mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { BiaError, getThreads, setThreads, type ComputeDtype, type Device } from '../../ts/index';
import { writeFileAtomic } from '../../ts/images';
import { table } from '../common';
import { BENCH_CONFIGS } from './configs';
import { asBenchRun, compareRuns, formatComparison, markdownComparison, parseConfidence, parseTolerance } from './compare';
import { againstCli, closeHooks, defaultHooks, formatInterval, formatSeconds, lockstepTurn, ROOT, runBench, runSuiteHere } from './run';
import { SUITES } from '../suites/index';
import type { BenchOptions, BenchRun, Measurement } from './types';

export const BENCH_HELP = `Usage: bia bench [suites...] [options]

Suites (default: all, in this order): ${Object.keys(SUITES).join(', ')}

Options:
  --config NAME       ${Object.keys(BENCH_CONFIGS).join(' | ')} (default tiny)
  --device DEV        cpu | cuda | cuda:N (default cpu)
  --dtype T           weights' dtype: float32 | bfloat16 | float16 (default float32)
  --autocast T        bfloat16 | float16: the UNet in mixed precision (CUDA: autocast, encoders in T too;
                      CPU: bfloat16 only, the UNet's bfloat16 copy, encoders in float32)
  --warmup N          untimed calls per case at least (default 1: the first call, timed apart); warm-up
                      goes on until two calls agree within 20%
  --trials N          samples per case at least (default 5; --smoke: 2); also the Python references' runs
  --max-trials N      samples per case at most (default 30; --smoke: 10)
  --min-time S        seconds a sample lasts at least: a fast call is repeated inside one sample
                      (default 0.05; --smoke: 0.005)
  --case-time S       seconds of samples per case, which sets their number between --trials and
                      --max-trials (default 0.5; --smoke: 0.04)
  --smoke             small sizes, seconds in all (CI keeps the harness from rotting with it)
  --isolate           run each suite in its own process (clean peak memory, no shared caches)
  --processes N       run each suite in N fresh processes in turn and judge their samples together:
                      a case's interval then spans the processes (default 1; 2 with --against)
  --against DIR       another bia-torch checkout (built): each suite runs in turn in a process of this
                      build and of that one (ABBA…, --processes pairs), and this run is judged against
                      that one — a machine whose speed drifts over minutes drifts for both (the JSON
                      keeps that run under 'against')
  --paired            with --against: judge each case on the pairs of processes that ran next to each
                      other (more sensitive, and more false alarms: docs/benchmarks.md)
  --lockstep          with --against: the two processes of a pair run at the same time and take turns
                      case by case (A B, A B…), so the machine's drift falls on both within seconds
  --no-python         skip the Python eager references
  --threads N         intra-op threads (default: BIA_NUM_THREADS or all cores)
  --steps N, --neighbours N, --batches 1,4,16, --images N, --batch-size N
                      override the config's sizes (DDIM steps, black-hole neighbours, UNet batch sweep,
                      pipeline images of which the first is a warm-up, images per UNet call when decoding
                      neighbours)
  --json FILE         write the run (schema bia-bench/1); default bench/out/bench-<config>-<device>-<date>.json
  --baseline FILE     compare with an earlier run, like with like: a case is a regression only when
                      the whole bootstrap confidence interval of (median now / median then) lies
                      above 1 + tolerance (unchanged: within ±tolerance; otherwise inconclusive,
                      with the reason: the interval straddles the bound, fewer than 3 samples, or
                      a busy machine — other processes took more than 0.25 of the cores the case
                      needs in either run, or 0.1 more than in the baseline)
  --tolerance P       e.g. 10% or 0.1 (default 10%)
  --confidence P      of the intervals, e.g. 99% or 0.95 (default 99%)
  --ignore-load       judge on the times alone, however busy the machine was
  --markdown FILE     also write a markdown summary (of the comparison when --baseline is given)
  --list              list the suites and configs

Exit codes: 0 ok, 1 a suite failed, 2 usage error, 4 a regression against the baseline
`;

export const BENCH_EXIT = { ok: 0, failure: 1, usage: 2, regression: 4 } as const;

function positiveInt(v: string | undefined, name: string, lo = 1): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < lo) throw new BiaError('BIA_INVALID_ARGUMENT', `--${name} must be an integer ≥ ${lo}, got '${v}'`);
  return n;
}

function seconds(v: string | undefined, name: string, hi: number): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!/^\s*\d*\.?\d+(e-?\d+)?\s*$/i.test(v) || !(n >= 0 && n <= hi)) throw new BiaError('BIA_INVALID_ARGUMENT', `--${name} must be a number of seconds from 0 to ${hi}, got '${v}'`);
  return n;
}

function oneOf<T extends string>(v: string, name: string, allowed: readonly T[]): T {
  if (!(allowed as readonly string[]).includes(v)) throw new BiaError('BIA_INVALID_ARGUMENT', `--${name} must be one of ${allowed.join(', ')}, got '${v}'`);
  return v as T;
}

const OPTIONS = {
  config: { type: 'string', default: 'tiny' },
  device: { type: 'string', default: 'cpu' },
  dtype: { type: 'string', default: 'float32' },
  autocast: { type: 'string' },
  warmup: { type: 'string' },
  trials: { type: 'string' },
  'max-trials': { type: 'string' },
  'min-time': { type: 'string' },
  'case-time': { type: 'string' },
  confidence: { type: 'string', default: '99%' },
  'ignore-load': { type: 'boolean', default: false },
  paired: { type: 'boolean', default: false },
  lockstep: { type: 'boolean', default: false },
  smoke: { type: 'boolean', default: false },
  isolate: { type: 'boolean', default: false },
  processes: { type: 'string' },
  against: { type: 'string' },
  'no-python': { type: 'boolean', default: false },
  threads: { type: 'string' },
  steps: { type: 'string' },
  neighbours: { type: 'string' },
  batches: { type: 'string' },
  images: { type: 'string' },
  'batch-size': { type: 'string' },
  json: { type: 'string' },
  baseline: { type: 'string' },
  tolerance: { type: 'string', default: '10%' },
  markdown: { type: 'string' },
  list: { type: 'boolean', default: false },
  help: { type: 'boolean', default: false },
  'worker-out': { type: 'string' },
  'worker-options': { type: 'string' },
} as const;

/** Parse `bia bench` arguments into run options (throws coded errors on bad values). */
export function parseBenchArgs(argv: string[]): { options: BenchOptions; values: ReturnType<typeof parseArgs<{ args: string[]; options: typeof OPTIONS; allowPositionals: true }>>['values'] } {
  const { values, positionals } = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true });
  const suites = positionals.length ? positionals.flatMap((p) => p.split(',')).filter(Boolean) : Object.keys(SUITES);
  for (const s of suites) if (!SUITES[s]) throw new BiaError('BIA_INVALID_ARGUMENT', `unknown suite '${s}' (suites: ${Object.keys(SUITES).join(', ')})`);
  oneOf(values.config, 'config', Object.keys(BENCH_CONFIGS));
  if (!/^(cpu|cuda(:\d+)?)$/.test(values.device)) throw new BiaError('BIA_INVALID_ARGUMENT', `--device must be cpu, cuda or cuda:N, got '${values.device}'`);
  const dtype = oneOf(values.dtype, 'dtype', ['float32', 'bfloat16', 'float16'] as const);
  const autocast = values.autocast === undefined ? null : oneOf(values.autocast, 'autocast', ['bfloat16', 'float16'] as const);
  if (autocast === 'float16' && (values.device ?? 'cpu') === 'cpu') throw new BiaError('BIA_INVALID_ARGUMENT', '--autocast float16 needs --device cuda (the CPU runs bfloat16)');
  const smoke = values.smoke;
  const batches = values.batches?.split(',').map((b) => positiveInt(b, 'batches')!);
  const options: BenchOptions = {
    suites,
    config: values.config,
    device: values.device as Device,
    dtype: dtype as ComputeDtype,
    autocast,
    warmup: positiveInt(values.warmup, 'warmup', 0) ?? 1,
    trials: positiveInt(values.trials, 'trials') ?? (smoke ? 2 : 5),
    maxTrials: positiveInt(values['max-trials'], 'max-trials'),
    minTime: seconds(values['min-time'], 'min-time', 60),
    caseTime: seconds(values['case-time'], 'case-time', 3600),
    isolate: values.isolate,
    processes: positiveInt(values.processes, 'processes') ?? (values.against ? 2 : 1),
    ...(values.against ? { against: values.against } : {}),
    ...(values.lockstep ? { lockstep: true } : {}),
    python: !values['no-python'],
    smoke,
    threads: positiveInt(values.threads, 'threads') ?? getThreads(),
    steps: positiveInt(values.steps, 'steps', 2),
    neighbours: positiveInt(values.neighbours, 'neighbours', 4),
    batches,
    images: positiveInt(values.images, 'images', 2),
    batchSize: positiveInt(values['batch-size'], 'batch-size'),
  };
  if (options.maxTrials !== undefined && options.maxTrials < options.trials) {
    throw new BiaError('BIA_INVALID_ARGUMENT', `--max-trials (${options.maxTrials}) must be at least --trials (${options.trials})`);
  }
  for (const k of ['steps', 'neighbours', 'batches', 'images', 'batchSize', 'maxTrials', 'minTime', 'caseTime'] as const) if (options[k] === undefined) delete options[k];
  if (values.against !== undefined && values.baseline !== undefined) throw new BiaError('BIA_INVALID_ARGUMENT', '--against and --baseline: give one (--against measures its own baseline)');
  if (values.against !== undefined) againstCli(values.against);
  if (values.paired && values.against === undefined) throw new BiaError('BIA_INVALID_ARGUMENT', '--paired judges the pairs of an interleaved run: it needs --against');
  if (values.lockstep && values.against === undefined) throw new BiaError('BIA_INVALID_ARGUMENT', '--lockstep interleaves two builds: it needs --against');
  if (values.lockstep) againstCli(values.against!, { lockstep: true });
  if (values.baseline !== undefined || values.against !== undefined) {
    parseTolerance(values.tolerance);
    parseConfidence(values.confidence);
  }
  return { options, values };
}

const mib = (b: number) => `${(b / 2 ** 20).toFixed(0)} MiB`;

/** The further references of a measurement (ONNX Runtime…): 'onnxruntime 12.3 ms (addon/onnxruntime 0.95)'. */
function otherReferences(m: Measurement): string {
  return (m.references ?? []).map((r) => `${r.name} ${formatSeconds(r.median)} (addon/${r.name} ${r.ratio.toFixed(2)})`).join('; ');
}

/** The run's results as one table (plus the suites' memory and failures). */
export function formatRun(run: BenchRun): string {
  const others = run.suites.some((s) => s.measurements.some((m) => m.references?.length));
  const rows = run.suites.flatMap((s) =>
    s.measurements.map((m) => [
      `${m.suite}/${m.case}`,
      Object.entries(m.params).map(([k, v]) => `${k}=${v}`).join(' '),
      formatInterval(m),
      `${m.samples.length}${m.loops && m.loops > 1 ? ` × ${m.loops}` : ''}`,
      m.stability?.unstable.length ? m.stability.unstable.map((u) => u.split(':')[0]).join(', ') : '',
      m.itemsPerSecond === undefined ? '' : m.itemsPerSecond.toFixed(m.itemsPerSecond < 10 ? 2 : 1),
      m.gflops === undefined ? '' : m.gflops.toFixed(0),
      m.peakFraction === undefined ? '' : `${(100 * m.peakFraction).toFixed(1)}%`,
      m.reference ? formatSeconds(m.reference.median) : '',
      m.reference ? `${m.reference.speedup.toFixed(2)}×` : '',
      ...(others ? [otherReferences(m)] : []),
    ]),
  );
  const lines = [table(['case', 'params', 'median [99% interval]', 'samples × calls', 'unstable', 'items/s', 'GFLOP/s', 'of peak', 'python', 'speedup', ...(others ? ['other references'] : [])], rows)];
  lines.push(
    table(
      ['suite', 'ok', 'seconds', 'peak RSS', 'peak CUDA allocated'],
      run.suites.map((s) => [s.suite, s.ok ? 'yes' : `NO: ${s.error?.message ?? ''}`, s.seconds.toFixed(1), `${mib(s.memory.peakRssBytes)} (${s.memory.rssScope})`, s.memory.peakCudaAllocatedBytes === undefined ? '' : mib(s.memory.peakCudaAllocatedBytes)]),
    ),
  );
  return lines.join('\n\n');
}

/** A markdown table of a run (no baseline). */
export function markdownRun(run: BenchRun): string {
  const e = run.environment;
  const others = run.suites.some((s) => s.measurements.some((m) => m.references?.length));
  const out = [
    `## bia bench: ${run.options.config} on ${run.options.device} (${e.cuda.gpus.length ? e.cuda.gpus.join(', ') : e.cpu}, ${e.threads} threads, LibTorch ${e.torch})`,
    '',
    `| case | params | median [99% interval] | samples × calls | unstable | items/s | GFLOP/s | of peak | python eager | speedup |${others ? ' other references (addon/reference) |' : ''}`,
    `|---|---|---|---|---|---|---|---|---|---|${others ? '---|' : ''}`,
  ];
  for (const s of run.suites) {
    for (const m of s.measurements) {
      out.push(`| ${m.suite}/${m.case} | ${Object.entries(m.params).map(([k, v]) => `${k}=${v}`).join(' ')} | ${formatInterval(m)} | ${m.samples.length}${m.loops && m.loops > 1 ? ` × ${m.loops}` : ''} | ${(m.stability?.unstable ?? []).join('; ').replace(/\|/g, '\\|')} | ${m.itemsPerSecond?.toFixed(2) ?? ''} | ${m.gflops?.toFixed(0) ?? ''} | ${m.peakFraction === undefined ? '' : `${(100 * m.peakFraction).toFixed(1)}%`} | ${m.reference ? formatSeconds(m.reference.median) : ''} | ${m.reference ? `${m.reference.speedup.toFixed(2)}×` : ''} |${others ? ` ${otherReferences(m).replace(/\|/g, '\\|')} |` : ''}`);
    }
  }
  return `${out.join('\n')}\n`;
}

/** `bia bench …`: returns the exit code. */
export async function runBenchCli(
  argv: string[],
  out: (s: string) => void = (s) => process.stdout.write(s),
  err: (s: string) => void = (s) => process.stderr.write(s),
): Promise<number> {
  let parsed: ReturnType<typeof parseBenchArgs>;
  try {
    parsed = parseBenchArgs(argv);
  } catch (e) {
    const parse = e instanceof TypeError && (e as { code?: string }).code?.startsWith('ERR_PARSE_ARGS');
    if (!parse && !(e instanceof BiaError && e.code === 'BIA_INVALID_ARGUMENT')) throw e;
    err(`bia bench: ${(e as Error).message}\n\n${BENCH_HELP}`);
    return BENCH_EXIT.usage;
  }
  const { options, values } = parsed;
  if (values.help) {
    out(BENCH_HELP);
    return BENCH_EXIT.ok;
  }
  if (values.list) {
    out(`${Object.values(SUITES).map((s) => `${s.name.padEnd(10)} ${s.description}`).join('\n')}\n\n${Object.values(BENCH_CONFIGS).map((c) => `${c.name.padEnd(14)} ${c.description}`).join('\n')}\n`);
    return BENCH_EXIT.ok;
  }
  // Read the baseline first: a bad file is a usage error before minutes of benchmarking.
  const baseline = values.baseline === undefined ? null : asBenchRun(readJson(values.baseline), values.baseline);
  const file = values.json ?? path.join(ROOT, 'bench', 'out', `bench-${options.config}-${options.device.replace(':', '')}-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
  const save = (r: BenchRun) => writeFileAtomic(file, `${JSON.stringify(r, null, 2)}\n`, 'bench result');
  // Ctrl-C keeps the suites already finished (the file is rewritten after each suite).
  let saved = 0;
  const onInterrupt = () => {
    err(`\nbia bench: interrupted; ${saved} finished suite(s) are in ${file} (complete: false)\n`);
    process.exit(130);
  };
  process.once('SIGINT', onInterrupt);
  let run: BenchRun;
  try {
    run = await runBench(options, undefined, async (partial) => {
      await save(partial);
      saved = partial.suites.length;
    });
  } finally {
    process.removeListener('SIGINT', onInterrupt);
  }
  await save(run);
  out(`${formatRun(run)}\n\nwrote ${file}\n`);
  let code: number = run.suites.every((s) => s.ok) ? BENCH_EXIT.ok : BENCH_EXIT.failure;
  const base = baseline ?? run.against ?? null;
  if (base) {
    const c = compareRuns(base, run, parseTolerance(values.tolerance), parseConfidence(values.confidence), { ignoreLoad: values['ignore-load'], paired: !baseline && values.paired });
    out(`\nagainst ${baseline ? values.baseline : `${run.against!.root} (measured interleaved)`}:\n${formatComparison(c, table)}\n`);
    if (values.markdown) await writeFileAtomic(values.markdown, markdownComparison(c, run), 'markdown summary');
    if (c.incomparable.length) code = Math.max(code, BENCH_EXIT.usage);
    else if (c.regressions > 0) code = BENCH_EXIT.regression;
  } else if (values.markdown) {
    await writeFileAtomic(values.markdown, markdownRun(run), 'markdown summary');
  }
  return code;
}

function readJson(file: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new BiaError('BIA_IO_ERROR', `cannot read ${file}: ${(e as Error).message}`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new BiaError('BIA_INVALID_ARGUMENT', `${file} is not JSON: ${(e as Error).message}`);
  }
}

/** Worker mode: run one suite here and write its SuiteResult (with the peaks measured) to a file. */
async function worker(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true });
  const options = JSON.parse(values['worker-options']!) as BenchOptions;
  setThreads(options.threads);
  const hooks = defaultHooks(options, (m) => process.stderr.write(`${m}\n`));
  hooks.turn = lockstepTurn();
  try {
    const r = await runSuiteHere(positionals[0], options, hooks);
    await writeFileAtomic(values['worker-out']!, JSON.stringify({ ...r, peaks: hooks.peaks }), 'suite result');
  } finally {
    closeHooks(hooks);
  }
}

if (require.main === module) {
  const argv = process.argv.slice(2);
  const job = argv.includes('--worker-out') ? worker(argv).then(() => 0) : runBenchCli(argv);
  job.then(
    (code) => {
      process.exitCode = code;
    },
    (e: unknown) => {
      const usage = (e instanceof TypeError && (e as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) || (e instanceof BiaError && e.code === 'BIA_INVALID_ARGUMENT');
      process.stderr.write(`bia bench: ${(e as Error).message}${e instanceof BiaError ? ` [${e.code}]` : ''}\n`);
      process.exitCode = usage ? BENCH_EXIT.usage : BENCH_EXIT.failure;
    },
  );
}

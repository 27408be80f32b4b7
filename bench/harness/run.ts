/**
 * The bench runner: environment record, warm-up + trials per case, medians and spreads, GFLOP/s
 * against the measured matmul peak, Python eager references side by side, peak memory per suite,
 * and (optionally) each suite in its own process.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { benchmark, BiaError, cudaMemory, getThreads, info, setThreads, type ComputeDtype, type Device } from '../../ts/index';
import { findPython, PythonServer, settle } from '../common';
import { benchConfig } from './configs';
import { SUITES } from '../suites/index';
import { contention, machineTimes, otherLoad, schedTimes } from './sched';
import { calibrate, medianInterval, seedOf, stability, steady } from './stats';
import {
  SCHEMA,
  type BenchContext,
  type BenchEnvironment,
  type BenchModels,
  type BenchOptions,
  type BenchRun,
  type Calibration,
  type CaseOptions,
  type Measurement,
  type PythonRef,
  type Stats,
  type SuiteMemory,
  type SuiteResult,
} from './types';

export const ROOT = path.resolve(__dirname, '..', '..', '..');

export function stats(samples: number[]): Stats {
  if (samples.length === 0) throw new BiaError('BIA_INVALID_ARGUMENT', 'no samples to summarise');
  const s = [...samples].sort((a, b) => a - b);
  const m = s.length >> 1;
  const median = s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
  return { samples, median, min: s[0], max: s[s.length - 1], spread: median > 0 ? (s[s.length - 1] - s[0]) / median : 0 };
}

/** The sampling settings of a run, with the defaults filled in (smoke: smaller and fewer). */
export function sampling(o: Pick<BenchOptions, 'smoke' | 'warmup' | 'trials' | 'maxTrials' | 'minTime' | 'caseTime'>): { warmup: number; trials: number; maxTrials: number; minTime: number; caseTime: number } {
  return {
    warmup: Math.max(1, o.warmup),
    trials: o.trials,
    maxTrials: Math.max(o.trials, o.maxTrials ?? (o.smoke ? 10 : 30)),
    minTime: o.minTime ?? (o.smoke ? 0.005 : 0.05),
    caseTime: o.caseTime ?? (o.smoke ? 0.04 : 0.5),
  };
}

/** Most warm-up calls of a case after the first (warm-up also ends when its time is spent). */
const MAX_WARMUP_CALLS = 50;

// ---- memory ------------------------------------------------------------------------------------

function procStatusKiB(field: 'VmHWM' | 'VmRSS'): number | null {
  try {
    const m = readFileSync('/proc/self/status', 'utf8').match(new RegExp(`${field}:\\s+(\\d+) kB`));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

/** Reset the kernel's peak-RSS mark (Linux clear_refs 5); false where that is not possible. */
export function resetPeakRss(): boolean {
  try {
    writeFileSync('/proc/self/clear_refs', '5');
    return true;
  } catch {
    return false;
  }
}

/** Peak resident set size since the last reset (or process start), bytes. */
export function peakRssBytes(): number {
  const hwm = procStatusKiB('VmHWM');
  return hwm !== null ? hwm * 1024 : process.resourceUsage().maxRSS * 1024;
}

export function rssBytes(): number {
  const rss = procStatusKiB('VmRSS');
  return rss !== null ? rss * 1024 : process.memoryUsage().rss;
}


// ---- environment -------------------------------------------------------------------------------

function git(args: string[]): string | null {
  const r = spawnSync('git', args, { cwd: ROOT, encoding: 'utf8', timeout: 10_000 });
  return r.status === 0 ? r.stdout.trim() : null;
}

export async function environment(options: BenchOptions, python: { exe: string; torch: string } | null): Promise<BenchEnvironment> {
  const i = await info({ measure: false });
  const commit = git(['rev-parse', 'HEAD']);
  const status = commit ? git(['status', '--porcelain', '--untracked-files=no']) : null;
  return {
    date: new Date().toISOString(),
    host: os.hostname(),
    cpu: i.cpu,
    cores: i.cores,
    threads: getThreads(),
    interopThreads: i.interopThreads,
    blas: { name: i.blas.name, library: i.blas.library, config: i.blas.config },
    torch: i.torchVersion,
    cuda: {
      built: i.cuda.built,
      available: i.cuda.available,
      version: (i.cuda as { version?: string | null }).version ?? null,
      cudnn: i.cuda.cudnn,
      gpus: i.cuda.devices.map((d) => d.name),
    },
    node: i.node,
    addon: i.addon,
    version: i.version,
    git: { commit, dirty: status === null ? null : status.length > 0 },
    python,
    matmulPeakGflops: {},
  };
}

/** The measured matmul rate of a dtype on a device (GFLOP/s): the median of timed square products. */
export async function measurePeak(device: Device, dtype: ComputeDtype, smoke: boolean): Promise<number> {
  const gpu = device !== 'cpu';
  const m = gpu ? 8192 : smoke ? 1024 : 2048;
  const r = await benchmark({ op: 'sgemm', m, device, dtype, warmup: gpu ? 3 : 1, iterations: gpu ? 20 : smoke ? 5 : 8 });
  return r.gflops;
}

// ---- the context a suite runs in ---------------------------------------------------------------

export interface RunHooks {
  log(message: string): void;
  /** Python reference servers, shared by the suites of one process. */
  pythons: Map<string, PythonServer | null>;
  pythonExe: string | null;
  peaks: Partial<Record<ComputeDtype, number>>;
  /** --lockstep worker: wait for this process's turn (and give up the one it held) before timed work. */
  turn?: () => Promise<void>;
}

/** The environment variable that tells a suite process it runs in lockstep with another (--lockstep). */
export const LOCKSTEP_ENV = 'BIA_BENCH_LOCKSTEP';

/**
 * In a --lockstep suite process: a function that asks the parent for the next turn over IPC and resolves
 * when it is granted (asking again gives the turn back). Undefined in any other process.
 */
export function lockstepTurn(): (() => Promise<void>) | undefined {
  if (process.env[LOCKSTEP_ENV] !== '1' || !process.send) return undefined;
  return () =>
    new Promise<void>((resolve) => {
      const onMessage = (m: unknown) => {
        if ((m as { type?: string })?.type !== 'go') return;
        process.off('message', onMessage);
        resolve();
      };
      process.on('message', onMessage);
      process.send!({ type: 'turn' });
    });
}

class Context implements BenchContext {
  readonly measurements: Measurement[] = [];
  readonly notes: Record<string, unknown> = {};
  readonly steps: number;
  readonly neighbours: number;
  readonly batches: number[];
  readonly batchSize: number;
  readonly computeDtype: ComputeDtype;

  constructor(
    readonly suiteName: string,
    readonly options: BenchOptions,
    readonly config: ReturnType<typeof benchConfig>,
    private readonly hooks: RunHooks,
  ) {
    const c = config;
    this.steps = options.steps ?? (options.smoke ? c.smoke.steps : c.steps);
    this.neighbours = options.neighbours ?? (options.smoke ? c.smoke.neighbours : c.neighbours);
    this.batches = options.batches ?? (options.smoke ? c.smoke.batches : c.batches);
    this.batchSize = options.batchSize ?? c.batchSize;
    this.computeDtype = options.autocast ?? options.dtype;
  }

  async withModels<T>(fn: (models: BenchModels) => Promise<T>): Promise<T> {
    const { device, dtype, autocast } = this.options;
    const models = await this.config.models(device, { dtype, autocast });
    try {
      return await fn(models);
    } finally {
      models.dispose();
    }
  }

  log(message: string): void {
    this.hooks.log(`  ${this.suiteName}: ${message}`);
  }

  note(key: string, value: unknown): void {
    this.notes[key] = value;
  }

  async peakGflops(dtype: ComputeDtype): Promise<number> {
    if (this.hooks.peaks[dtype] === undefined) this.hooks.peaks[dtype] = await measurePeak(this.options.device, dtype, this.options.smoke);
    return this.hooks.peaks[dtype]!;
  }

  async python(script: string): Promise<PythonRef | null> {
    if (!this.options.python || !this.hooks.pythonExe) return null;
    if (!this.hooks.pythons.has(script)) {
      const server = new PythonServer(this.hooks.pythonExe, script, this.options.threads);
      try {
        await server.start();
        this.hooks.pythons.set(script, server);
      } catch (e) {
        this.log(`Python reference ${script} did not start: ${(e as Error).message}`);
        this.hooks.pythons.set(script, null);
      }
    }
    const s = this.hooks.pythons.get(script);
    if (!s || !s.alive) return null;
    return { torch: s.hello!.torch, request: <T>(body: unknown) => s.request<T>(body) };
  }

  async measure(name: string, opts: CaseOptions, fn: () => Promise<unknown>): Promise<Measurement> {
    return this.measureLoops(name, opts, async (loops) => {
      const t = process.hrtime.bigint();
      for (let i = 0; i < loops; i++) await fn();
      return Number(process.hrtime.bigint() - t) / 1e9 / loops;
    });
  }

  async measureLoops(name: string, opts: CaseOptions, sample: (loops: number) => Promise<number>): Promise<Measurement> {
    // In lockstep, each case waits for this process's turn (the other build's process has just run the same
    // case), then the other's threads get the references' pause to stop spinning.
    const turn = this.hooks.turn;
    if (turn) await turn();
    const d = sampling(this.options);
    const minTime = opts.minTime ?? d.minTime;
    const trials = opts.trials ?? d.trials;
    const warmupAtLeast = Math.max(1, opts.warmup ?? d.warmup);
    // After this process's own work (references settle for 150 ms after themselves): OpenBLAS's idle
    // threads still spin for up to about 0.1 s, which the first call and the warm-up absorb.
    await settle(this.options.device, turn ? 150 : 50);
    // The first call alone (oneDNN primitives, thread wake-up, allocator growth), then warm-up until two calls agree.
    const firstCall = await sample(1);
    const warm: number[] = [];
    let spent = firstCall;
    const warmupTime = Math.max(2 * minTime, d.caseTime / 2);
    while (warm.length + 1 < warmupAtLeast || (!steady(warm) && spent < warmupTime && warm.length < MAX_WARMUP_CALLS)) {
      const s = await sample(1);
      warm.push(s);
      spent += s;
    }
    const estimate = warm.length ? Math.min(...warm.slice(-2)) : firstCall;
    const plan = calibrate(estimate, { minTime, caseTime: d.caseTime, minSamples: trials, maxSamples: Math.max(trials, d.maxTrials) });
    const samples: number[] = [];
    const waits: number[] = [];
    const cpu: number[] = [];
    const load: number[] = [];
    for (let i = 0; i < plan.samples; i++) {
      const a = schedTimes();
      const ma = machineTimes();
      const t = process.hrtime.bigint();
      samples.push(await sample(plan.loops));
      const wall = Number(process.hrtime.bigint() - t) / 1e9;
      const b = schedTimes();
      const mb = machineTimes();
      const w = contention(a, b, wall);
      if (w !== null) waits.push(w);
      const l = otherLoad(ma, mb, wall, this.options.threads);
      if (l !== null) load.push(l);
      if (a && b) cpu.push(Math.max(0, b.runNs - a.runNs) / 1e9 / plan.loops);
    }
    const calibration: Calibration = { minTime, firstCall, warmup: warm, estimate, loops: plan.loops };
    const whole = (xs: number[]) => (xs.length === samples.length ? xs : undefined);
    return this.finish(name, opts, samples, 1 + warm.length, { loops: plan.loops, calibration, contention: whole(waits), load: whole(load), cpu: whole(cpu) });
  }

  async record(name: string, opts: CaseOptions, samples: number[], warmup = 0): Promise<Measurement> {
    return this.finish(name, opts, samples, warmup, {});
  }

  private async finish(
    name: string,
    opts: CaseOptions,
    samples: number[],
    warmup: number,
    how: { loops?: number; calibration?: Calibration; contention?: number[]; load?: number[]; cpu?: number[] },
  ): Promise<Measurement> {
    if (!samples.length || samples.some((s) => !(s >= 0) || !Number.isFinite(s))) {
      throw new BiaError('BIA_INVALID_ARGUMENT', `${this.suiteName}/${name}: trial times must be finite and non-negative, got ${JSON.stringify(samples)}`);
    }
    const st = stats(samples);
    const params = opts.params ?? {};
    const ci = medianInterval(samples, { seed: seedOf(`${this.suiteName}/${name}/${JSON.stringify(params)}`) });
    const m: Measurement = {
      suite: this.suiteName, case: name, params, unit: 's', warmup, ...st,
      loops: how.loops ?? 1,
      ci: { lo: ci.lo, hi: ci.hi, confidence: ci.confidence },
      ...(how.calibration ? { calibration: how.calibration } : {}),
      ...(how.contention ? { contention: how.contention } : {}),
      ...(how.load ? { load: how.load } : {}),
      ...(how.cpu ? { cpu: how.cpu } : {}),
      stability: stability(samples, how.load),
    };
    if (opts.items !== undefined) {
      m.items = opts.items;
      m.itemsPerSecond = opts.items / st.median;
    }
    if (opts.flops !== undefined) {
      const dtype = opts.peakDtype ?? this.computeDtype;
      m.flops = opts.flops;
      m.gflops = opts.flops / st.median / 1e9;
      m.peakDtype = dtype;
      m.peakFraction = m.gflops / (await this.peakGflops(dtype));
    }
    if (opts.reference) {
      await settle(this.options.device);
      let ref: number[] | null = null;
      try {
        ref = await opts.reference();
      } catch (e) {
        this.log(`reference of ${name} failed: ${(e as Error).message}`);
      }
      if (ref && ref.length) {
        const rs = stats(ref);
        m.reference = { name: opts.referenceName ?? 'python-eager', ...rs, speedup: rs.median / st.median };
      }
      await settle(this.options.device);
    }
    for (const r of opts.references ?? []) {
      await settle(this.options.device);
      let ref: number[] | null = null;
      try {
        ref = await r.run();
      } catch (e) {
        this.log(`reference ${r.name} of ${name} failed: ${(e as Error).message}`);
      }
      if (ref && ref.length) {
        const rs = stats(ref);
        (m.references ??= []).push({ name: r.name, ...rs, speedup: rs.median / st.median, ratio: st.median / rs.median });
      }
    }
    this.measurements.push(m);
    this.log(formatMeasurement(m));
    return m;
  }
}

export function formatSeconds(s: number): string {
  if (s >= 100) return `${s.toFixed(0)} s`;
  if (s >= 1) return `${s.toFixed(2)} s`;
  if (s >= 1e-3) return `${(s * 1e3).toFixed(2)} ms`;
  return `${(s * 1e6).toFixed(1)} µs`;
}

function formatParams(p: Measurement['params']): string {
  const e = Object.entries(p);
  return e.length ? ` [${e.map(([k, v]) => `${k}=${v}`).join(' ')}]` : '';
}

/** '1.23 ms [1.20 ms, 1.25 ms]': the median and its confidence interval. */
export function formatInterval(m: Pick<Measurement, 'median' | 'ci'>): string {
  return m.ci ? `${formatSeconds(m.median)} [${formatSeconds(m.ci.lo)}, ${formatSeconds(m.ci.hi)}]` : formatSeconds(m.median);
}

export function formatMeasurement(m: Measurement): string {
  const loops = m.loops && m.loops > 1 ? ` × ${m.loops} calls` : '';
  const first = m.calibration ? `, first call ${formatSeconds(m.calibration.firstCall)}` : '';
  const parts = [`${m.case}${formatParams(m.params)}: ${formatInterval(m)} (n=${m.samples.length}${loops}${first})`];
  if (m.itemsPerSecond !== undefined) parts.push(`${m.itemsPerSecond.toFixed(m.itemsPerSecond < 10 ? 2 : 1)}/s`);
  if (m.gflops !== undefined) parts.push(`${m.gflops.toFixed(1)} GFLOP/s (${(100 * m.peakFraction!).toFixed(1)}% of ${m.peakDtype} matmul)`);
  if (m.reference) parts.push(`${m.reference.name} ${formatSeconds(m.reference.median)} → ${m.reference.speedup.toFixed(2)}×`);
  for (const r of m.references ?? []) parts.push(`${r.name} ${formatSeconds(r.median)} (addon/${r.name} ${r.ratio.toFixed(2)})`);
  if (m.stability?.unstable.length) parts.push(`UNSTABLE (${m.stability.unstable.join('; ')})`);
  return parts.join(', ');
}

// ---- running suites ----------------------------------------------------------------------------

/** Run one suite in this process. */
export async function runSuiteHere(name: string, options: BenchOptions, hooks: RunHooks): Promise<SuiteResult> {
  const suite = SUITES[name];
  if (!suite) throw new BiaError('BIA_INVALID_ARGUMENT', `unknown suite '${name}' (suites: ${Object.keys(SUITES).join(', ')})`);
  const config = benchConfig(options.config);
  // In lockstep the whole process waits for its first turn before it loads anything; the turns it took are noted.
  let turns = 0;
  const inner = hooks.turn;
  const counted: RunHooks = inner ? { ...hooks, turn: async () => (turns++, inner()) } : hooks;
  await counted.turn?.();
  const ctx = new Context(name, options, config, counted);
  const gpuIndex = options.device === 'cpu' ? null : Number(options.device.split(':')[1] ?? 0);
  global.gc?.();
  const scoped = resetPeakRss();
  if (gpuIndex !== null) cudaMemory({ device: gpuIndex, reset: true });
  const t = performance.now();
  let error: SuiteResult['error'];
  try {
    await suite.run(ctx);
  } catch (e) {
    error = { code: e instanceof BiaError ? e.code : undefined, message: (e as Error).message };
    hooks.log(`  ${name}: FAILED${error.code ? ` [${error.code}]` : ''}: ${error.message}`);
  }
  const memory: SuiteMemory = { peakRssBytes: peakRssBytes(), rssScope: scoped ? 'reset' : 'lifetime' };
  if (gpuIndex !== null) {
    const c = cudaMemory({ device: gpuIndex });
    if (c) memory.peakCudaAllocatedBytes = c.peakAllocatedBytes;
  }
  if (inner) ctx.note('lockstepTurns', turns);
  return { suite: name, ok: !error, error, seconds: (performance.now() - t) / 1000, measurements: ctx.measurements, memory, notes: ctx.notes };
}

/** A suite's child process (the same CLI with --worker-out; its peaks are passed in) and its result. */
function spawnSuite(name: string, options: BenchOptions, hooks: RunHooks, cli: string, lockstep: boolean) {
  const out = path.join(os.tmpdir(), `bia-bench-${process.pid}-${name}-${Date.now()}-${Math.random().toString(36).slice(2, 8)}.json`);
  const args = [cli, name, '--worker-out', out, '--worker-options', JSON.stringify(options)];
  const env = { ...process.env, BIA_BENCH_PEAKS: JSON.stringify(hooks.peaks), ...(lockstep ? { [LOCKSTEP_ENV]: '1' } : {}) };
  const child = spawn(process.execPath, ['--expose-gc', ...args], { stdio: lockstep ? ['ignore', 'inherit', 'inherit', 'ipc'] : ['ignore', 'inherit', 'inherit'], env });
  const exited = new Promise<number>((resolve) => {
    child.on('exit', (c, sig) => resolve(c ?? (sig ? 128 : 1)));
    child.on('error', () => resolve(1));
  });
  const result = async (): Promise<SuiteResult> => {
    const code = await exited;
    try {
      const r = JSON.parse(readFileSync(out, 'utf8')) as SuiteResult & { peaks?: RunHooks['peaks'] };
      Object.assign(hooks.peaks, r.peaks ?? {});
      delete r.peaks;
      r.memory.rssScope = r.memory.rssScope === 'reset' ? 'reset' : 'process';
      return r;
    } catch {
      return {
        suite: name, ok: false, error: { message: `the suite's process exited with code ${code} and wrote no result` },
        seconds: 0, measurements: [], memory: { peakRssBytes: 0, rssScope: 'process' }, notes: {},
      };
    } finally {
      rmSync(out, { force: true });
    }
  };
  return { child, exited, result };
}

/** Run one suite in a child process. */
async function runSuiteIsolated(name: string, options: BenchOptions, hooks: RunHooks, cli = path.join(__dirname, 'cli.js')): Promise<SuiteResult> {
  return spawnSuite(name, options, hooks, cli, false).result();
}

/**
 * --lockstep: one suite in a process of each build at the same time, taking turns. Each process asks for
 * a turn before it loads and before each case (lockstepTurn); the parent grants one turn at a time, to the
 * other process whenever it is waiting, so the two run each case one after the other (A B, A B…, about a
 * second apart) and the machine's drift falls on both. A process that stops asking (it ended, or times
 * work of its own between cases) keeps the turn until it asks again or exits.
 */
async function runSuiteLockstep(name: string, options: BenchOptions, hooks: RunHooks, otherCli: string): Promise<[SuiteResult, SuiteResult]> {
  const sides = [spawnSuite(name, options, hooks, path.join(__dirname, 'cli.js'), true), spawnSuite(name, options, hooks, otherCli, true)];
  const waiting: number[] = [];
  let holder: number | null = null;
  let last = 1;
  const dispatch = () => {
    if (holder !== null || waiting.length === 0) return;
    const pick = waiting.includes(1 - last) ? 1 - last : waiting[0];
    waiting.splice(waiting.indexOf(pick), 1);
    holder = pick;
    last = pick;
    sides[pick].child.send({ type: 'go' });
  };
  sides.forEach((s, k) => {
    s.child.on('message', (m: unknown) => {
      if ((m as { type?: string })?.type !== 'turn') return;
      if (holder === k) holder = null;
      if (!waiting.includes(k)) waiting.push(k);
      dispatch();
    });
    void s.exited.then(() => {
      if (holder === k) holder = null;
      if (waiting.includes(k)) waiting.splice(waiting.indexOf(k), 1);
      dispatch();
    });
  });
  const [mine, theirs] = await Promise.all(sides.map((s) => s.result()));
  return [mine, theirs];
}

/** The bench worker of another checkout (--against): its built dist/bench/harness/cli.js (with --lockstep, one that takes turns). */
export function againstCli(root: string, o: { lockstep?: boolean } = {}): string {
  const cli = path.resolve(root, 'dist', 'bench', 'harness', 'cli.js');
  if (!existsSync(cli)) throw new BiaError('BIA_INVALID_ARGUMENT', `--against ${root}: no ${path.relative(path.resolve(root), cli)} there (build that checkout first: npm run setup, or npm run build:ts)`);
  const run = path.resolve(root, 'dist', 'bench', 'harness', 'run.js');
  if (o.lockstep && !(existsSync(run) && readFileSync(run, 'utf8').includes(LOCKSTEP_ENV))) {
    throw new BiaError('BIA_INVALID_ARGUMENT', `--lockstep: the harness of ${root} cannot take turns (a build from before --lockstep); use --against without it`);
  }
  return cli;
}

/**
 * One suite's results from several processes (--processes) as one: each case's samples (and their load,
 * CPU-wait and CPU records) side by side, with the process of each sample, so that its interval spans the
 * processes (stats.ts, bootstrapMedians); median-derived figures recomputed; the largest peak memory.
 */
export function mergeProcessRuns(parts: SuiteResult[]): SuiteResult {
  if (parts.length === 0) throw new BiaError('BIA_INVALID_ARGUMENT', 'no suite results to merge');
  if (parts.length === 1) return parts[0];
  const failed = parts.find((p) => !p.ok);
  const key = (m: Measurement) => `${m.case}${JSON.stringify(m.params)}`;
  const measurements: Measurement[] = [];
  for (const first of parts[0].measurements) {
    const same = parts.map((p) => p.measurements.find((m) => key(m) === key(first))).filter((m): m is Measurement => !!m);
    const samples = same.flatMap((m) => m.samples);
    const processes = same.flatMap((m, k) => m.samples.map(() => k));
    const joined = (f: 'contention' | 'load' | 'cpu') => (same.every((m) => m[f]?.length === m.samples.length) ? same.flatMap((m) => m[f]!) : undefined);
    const st = stats(samples);
    const ci = medianInterval(samples, { seed: seedOf(`${first.suite}/${key(first)}`) }, processes);
    const load = joined('load');
    const m: Measurement = {
      ...first,
      ...st,
      warmup: same.reduce((a, x) => a + x.warmup, 0),
      ci: { lo: ci.lo, hi: ci.hi, confidence: ci.confidence },
      processes,
      contention: joined('contention'),
      load,
      cpu: joined('cpu'),
      stability: stability(samples, load),
    };
    for (const f of ['contention', 'load', 'cpu'] as const) if (m[f] === undefined) delete m[f];
    if (first.references?.length) {
      // each further reference's samples from every process, against the merged median
      m.references = first.references.map((r) => {
        const rs = stats(same.flatMap((x) => x.references?.find((o) => o.name === r.name)?.samples ?? []));
        return { name: r.name, ...rs, speedup: rs.median / st.median, ratio: st.median / rs.median };
      });
    }
    if (m.items !== undefined) m.itemsPerSecond = m.items / st.median;
    if (m.flops !== undefined && first.gflops && first.peakFraction !== undefined) {
      m.gflops = m.flops / st.median / 1e9;
      m.peakFraction = (first.peakFraction * m.gflops) / first.gflops;
    }
    measurements.push(m);
  }
  return {
    ...parts[0],
    ok: !failed,
    ...(failed ? { error: failed.error } : {}),
    seconds: parts.reduce((a, p) => a + p.seconds, 0),
    measurements,
    memory: { peakRssBytes: Math.max(...parts.map((p) => p.memory.peakRssBytes)), rssScope: 'process' },
    notes: { ...parts[0].notes, processes: parts.length },
  };
}

export function defaultHooks(options: BenchOptions, log: (m: string) => void): RunHooks {
  const peaks = process.env.BIA_BENCH_PEAKS ? (JSON.parse(process.env.BIA_BENCH_PEAKS) as RunHooks['peaks']) : {};
  return { log, pythons: new Map(), pythonExe: options.python ? findPython() : null, peaks };
}

export function closeHooks(hooks: RunHooks): void {
  for (const s of hooks.pythons.values()) s?.close();
}

/** A whole run: environment, then each suite (here or in its own process), in order. */
export async function runBench(
  options: BenchOptions,
  log: (m: string) => void = (m) => process.stderr.write(`${m}\n`),
  /** Called with the partial run after each suite (complete: false), so a long run keeps finished suites. */
  onSuite?: (partial: BenchRun) => Promise<void>,
): Promise<BenchRun> {
  for (const s of options.suites) if (!SUITES[s]) throw new BiaError('BIA_INVALID_ARGUMENT', `unknown suite '${s}' (suites: ${Object.keys(SUITES).join(', ')})`);
  benchConfig(options.config);
  setThreads(options.threads);
  const hooks = defaultHooks(options, log);
  let python: BenchEnvironment['python'] = null;
  if (hooks.pythonExe) {
    const r = spawnSync(hooks.pythonExe, ['-c', 'import torch; print(torch.__version__); print(torch.version.cuda or "")'], { encoding: 'utf8', timeout: 60_000 });
    if (r.status === 0) {
      const [torch, cuda] = r.stdout.trim().split('\n');
      python = { exe: hooks.pythonExe, torch, cuda: cuda || null };
    }
  }
  const env = await environment(options, python);
  // The addon's LibTorch names no CUDA version; a CUDA build comes from the Python torch beside it (torch-config).
  if (env.cuda.built && python?.cuda) env.cuda.version = `${python.cuda} (of Python's torch ${python.torch})`;
  const dtypes = [...new Set<ComputeDtype>([options.dtype, ...(options.autocast ? [options.autocast] : [])])];
  for (const d of dtypes) hooks.peaks[d] ??= await measurePeak(options.device, d, options.smoke);
  log(`bia bench: ${options.suites.join(', ')} — config ${options.config} on ${options.device} (${options.dtype}${options.autocast ? `, autocast ${options.autocast}` : ''}), ` +
    `${env.threads} threads, ${env.blas.name}, LibTorch ${env.torch}${env.cuda.gpus.length ? `, ${env.cuda.gpus.join(', ')}` : ''}; ` +
    `matmul peak ${dtypes.map((d) => `${d} ${hooks.peaks[d]!.toFixed(0)} GFLOP/s`).join(', ')}` +
    `${python ? `; reference: Python eager torch ${python.torch}` : '; no Python reference'}${options.smoke ? ' [smoke]' : ''}`);
  const suites: SuiteResult[] = [];
  const otherSuites: SuiteResult[] = [];
  const otherCli = options.against ? againstCli(options.against) : null;
  const snapshot = (complete: boolean): BenchRun => ({
    schema: SCHEMA, complete, options, environment: { ...env, matmulPeakGflops: { ...hooks.peaks } }, suites: [...suites],
    ...(otherCli ? { against: { schema: SCHEMA, complete, options, environment: { ...env, matmulPeakGflops: { ...hooks.peaks } }, suites: [...otherSuites], root: path.resolve(options.against!) } } : {}),
  });
  try {
    for (const name of options.suites) {
      log(`• ${name}`);
      if (otherCli) {
        // Interleaved: this build and the other in turn, ABBA…, so that a drift of the machine falls on both.
        const mine: SuiteResult[] = [];
        const theirs: SuiteResult[] = [];
        for (let k = 0; k < Math.max(2, options.processes ?? 2); k++) {
          if (options.lockstep) {
            const [a, b] = await runSuiteLockstep(name, options, hooks, otherCli);
            mine.push(a);
            theirs.push(b);
            continue;
          }
          const order = k % 2 === 0 ? ['mine', 'theirs'] : ['theirs', 'mine'];
          for (const who of order) {
            if (who === 'mine') mine.push(await runSuiteIsolated(name, options, hooks));
            else theirs.push(await runSuiteIsolated(name, options, hooks, otherCli));
          }
        }
        suites.push(mergeProcessRuns(mine));
        otherSuites.push(mergeProcessRuns(theirs));
      } else if ((options.processes ?? 1) > 1) {
        const parts: SuiteResult[] = [];
        for (let k = 0; k < options.processes!; k++) parts.push(await runSuiteIsolated(name, options, hooks));
        suites.push(mergeProcessRuns(parts));
      } else {
        suites.push(options.isolate ? await runSuiteIsolated(name, options, hooks) : await runSuiteHere(name, options, hooks));
      }
      if (onSuite && suites.length < options.suites.length) await onSuite(snapshot(false));
    }
  } finally {
    closeHooks(hooks);
  }
  return snapshot(true);
}

/**
 * The bench harness's data model: what a suite is, what it measures, and the JSON a run writes
 * (schema 'bia-bench/1'). Every measurement is a set of wall-clock trials of one case; a case is
 * identified for comparison by suite, case name, params and the run's config/device/precision/threads.
 */
import type { Stability } from './stats';
import type { ComputeDtype, Device, DiffusionModel, EraseOptions, IdentityEncoder, IdentityArch, InputProtocol, Tensor } from '../../ts/index';

export const SCHEMA = 'bia-bench/1';

export type ParamValue = string | number | boolean | null;

/** Options of one measured case. */
export interface CaseOptions {
  /** Part of the case's identity: a baseline compares only cases with equal params. */
  params?: Record<string, ParamValue>;
  /** Images (or other items) processed per trial: gives items/s. */
  items?: number;
  /** Floating-point operations per trial, where known: gives GFLOP/s and the fraction of measured peak. */
  flops?: number;
  /** The matmul dtype whose measured peak `flops` is compared with (default: the run's compute dtype). */
  peakDtype?: ComputeDtype;
  /** Override the run's warm-up calls (at least; warm-up goes on until two calls agree) / minimum samples for this case. */
  warmup?: number;
  trials?: number;
  /** Override the run's seconds per sample (inner calls are added until a sample lasts this long). */
  minTime?: number;
  /**
   * The same work in a reference implementation (Python eager), run after the addon's trials:
   * returns seconds per trial. Return null when no reference is available.
   */
  reference?: () => Promise<number[] | null>;
  /** Name of the reference implementation (default 'python-eager'). */
  referenceName?: string;
  /**
   * Further references, run after `reference`, each on its own (e.g. ONNX Runtime beside Python eager):
   * `run` returns seconds per call, one per sample, or null when that reference is not available.
   */
  references?: { name: string; run: () => Promise<number[] | null> }[];
}

/** A reference's samples beside the addon's: `speedup` = reference median / addon median (> 1: the addon is faster). */
export type ReferenceResult = Stats & { name: string; speedup: number };

export interface Stats {
  /** Seconds per call, one per sample (each the mean of `loops` calls where the harness calibrated the case). */
  samples: number[];
  median: number;
  min: number;
  max: number;
  /** Relative spread of the trials: (max − min) / median. */
  spread: number;
}

/** How a calibrated case was sampled. */
export interface Calibration {
  /** The target seconds per sample. */
  minTime: number;
  /** Seconds of the first call (first-call costs: oneDNN primitives, thread wake-up, allocator growth), not in the samples. */
  firstCall: number;
  /** Seconds of each further warm-up call, until two agreed within 20% (or the warm-up time ran out); not in the samples. */
  warmup: number[];
  /** The estimated seconds of one call the loops and samples were planned from. */
  estimate: number;
  /** Calls per sample. */
  loops: number;
}

export interface Measurement extends Stats {
  suite: string;
  case: string;
  params: Record<string, ParamValue>;
  unit: 's';
  /** Untimed calls before the samples (the first call included). */
  warmup: number;
  /** Calls per sample (1 where the case was not calibrated). */
  loops?: number;
  /** The median's bootstrap confidence interval (seconds). */
  ci?: { lo: number; hi: number; confidence: number };
  calibration?: Calibration;
  /**
   * Per sample: seconds the process's threads waited for a CPU per second of the sample (bench/harness/sched.ts).
   * Recorded, not judged: on a quiet machine the process's own threads make it 0.5–0.9 for small cases.
   */
  contention?: number[];
  /**
   * Per sample: cores' worth of other processes' CPU time on the cores the bench needs (the machine's busy
   * time less the process's own, less the cores left free; bench/harness/sched.ts). Judged: a case above
   * LOAD_LIMIT is measured on a busy machine.
   */
  load?: number[];
  /** Per sample: the process it was measured in (0, 1, …), in runs with --processes N > 1. */
  processes?: number[];
  /** Per sample: CPU seconds per call, summed over the process's threads (recorded, not judged: spinning threads make it follow the load). */
  cpu?: number[];
  /** Stability flags: dispersion, two clusters, a busy machine — and why, in words. */
  stability?: Stability;
  items?: number;
  /** items / median seconds. */
  itemsPerSecond?: number;
  flops?: number;
  gflops?: number;
  /** gflops / measured matmul peak of peakDtype on this device. */
  peakFraction?: number;
  peakDtype?: ComputeDtype;
  reference?: Stats & { name: string; /** reference median / addon median: > 1 means the addon is faster. */ speedup: number };
  /** The further references of the case (CaseOptions.references), in order; `ratio` = addon median / reference median (< 1: the addon is faster). */
  references?: (ReferenceResult & { ratio: number })[];
}

export interface SuiteMemory {
  /** Peak resident set size of the process during the suite (bytes); the kernel's VmHWM after a reset. */
  peakRssBytes: number;
  /** How the peak was isolated: 'reset' (clear_refs), 'process' (own process), or 'lifetime' (since process start). */
  rssScope: 'reset' | 'process' | 'lifetime';
  /** Peak bytes allocated by the CUDA caching allocator during the suite (CUDA runs only). */
  peakCudaAllocatedBytes?: number;
}

export interface SuiteResult {
  suite: string;
  ok: boolean;
  error?: { code?: string; message: string };
  seconds: number;
  measurements: Measurement[];
  memory: SuiteMemory;
  /** Suite-specific facts (stage breakdowns, memory-flatness checks, model sizes…). */
  notes: Record<string, unknown>;
}

export interface BenchEnvironment {
  date: string;
  host: string;
  cpu: string;
  cores: number;
  threads: number;
  interopThreads: number;
  blas: { name: string; library: string; config: string };
  torch: string;
  cuda: { built: boolean; available: boolean; version?: string | null; cudnn: boolean; gpus: string[] };
  node: string;
  addon: string;
  version: string;
  git: { commit: string | null; dirty: boolean | null };
  python: { exe: string; torch: string; cuda?: string | null } | null;
  /** Measured matmul peak per dtype on the run's device, GFLOP/s. */
  matmulPeakGflops: Partial<Record<ComputeDtype, number>>;
}

export interface BenchOptions {
  suites: string[];
  config: string;
  device: Device;
  /** Weights' dtype. */
  dtype: ComputeDtype;
  /** UNet/encoder autocast on CUDA. */
  autocast: 'bfloat16' | 'float16' | null;
  /** Warm-up calls per case at least (the first call included; warm-up goes on until two calls agree). */
  warmup: number;
  /** Samples per case at least (also the Python references' iterations). */
  trials: number;
  /** Samples per case at most (default 30; smoke 10). */
  maxTrials?: number;
  /** Seconds one sample lasts at least: fast calls are repeated inside a sample (default 0.05; smoke 0.005). */
  minTime?: number;
  /** Seconds of samples per case, which sets the sample count between trials and maxTrials (default 0.5; smoke 0.04). */
  caseTime?: number;
  /** Run each suite in its own process. */
  isolate: boolean;
  /** Run each suite in this many fresh processes, one after another, and judge their samples together (default 1). */
  processes?: number;
  /** Another bia-torch checkout (built) to measure interleaved with this one and judge against (--against). */
  against?: string;
  /**
   * With `against`: each pair of processes (one of each build) runs at the same time, taking turns case by
   * case (--lockstep), instead of one process after the other.
   */
  lockstep?: boolean;
  /** Run the Python eager references where they exist. */
  python: boolean;
  /** Smaller problem sizes for a smoke run (CI): seconds, not minutes. */
  smoke: boolean;
  threads: number;
  /** Overrides of the config's sizes (steps, neighbours, UNet batch sweep). */
  steps?: number;
  neighbours?: number;
  batches?: number[];
  /** Pipeline suite: images erased, the first untimed (default 4; smoke 3). */
  images?: number;
  /** Images per UNet call when decoding neighbours (default: the config's, 16). */
  batchSize?: number;
}

export interface BenchRun {
  schema: typeof SCHEMA;
  /** False while suites are still to run (a partial file written after each suite, or an interrupted run). */
  complete: boolean;
  options: BenchOptions;
  environment: BenchEnvironment;
  suites: SuiteResult[];
  /**
   * With --against DIR: the other build's run, measured interleaved with this one (each suite in turn in a
   * process of this build and of the other, ABBA…), the baseline this run is judged against.
   */
  against?: BenchRun & { root: string };
}

/** The models of a bench configuration. */
export interface BenchModels {
  diffusion: DiffusionModel;
  encoder: IdentityEncoder;
  dispose(): void;
}

/** A bench configuration: which models, at which sizes, and the erase settings of the pipeline suite. */
export interface BenchConfig {
  name: string;
  description: string;
  resolution: number;
  /** Loads the diffusion model and the identity encoder on the device (random weights unless the config has trained ones). */
  models(device: Device, opts: { dtype: ComputeDtype; autocast: 'bfloat16' | 'float16' | null; channelsLast?: boolean }): Promise<BenchModels>;
  encoderArch: IdentityArch;
  encoderWidth: number;
  protocol: InputProtocol;
  /** UNet batch sizes of the batch sweep. */
  batches: number[];
  /** Erase settings of the pipeline/invert/decode suites. */
  t0: number;
  steps: number;
  neighbours: number;
  batchSize: number;
  /** Smoke-run overrides. */
  smoke: { batches: number[]; steps: number; neighbours: number };
  /** The pipeline suite's input images [count, 3, R, R] (default: seeded noise images). */
  inputs?(count: number, device: Device): Promise<Tensor>;
  /** The pipeline suite's erase options for this config (steps, neighbours and batch size come from the run). */
  erase?: EraseOptions;
  /** Photos of other people for erase.neighbourMode 'others' [N, 3, R, R]. */
  others?(device: Device): Promise<Tensor>;
}

/** What a suite gets: the run's options, the config, measurement and reference helpers. */
export interface BenchContext {
  readonly options: BenchOptions;
  readonly config: BenchConfig;
  /** Steps / neighbours / batches after smoke overrides. */
  readonly steps: number;
  readonly neighbours: number;
  readonly batches: number[];
  /** Images per UNet call when decoding many codes (neighbours, wrap points). */
  readonly batchSize: number;
  /** The dtype the math runs in: the autocast dtype, else the weights' (what GFLOP/s is held against by default). */
  readonly computeDtype: ComputeDtype;
  /** Run `fn` with the config's models on the run's device, dtype and autocast; they are released when it ends. */
  withModels<T>(fn: (models: BenchModels) => Promise<T>): Promise<T>;
  /**
   * Time `fn`: the first call apart, warm-up until steady, then calibrated samples (enough calls per
   * sample to last minTime, enough samples to fill caseTime); fn must finish its work (the addon's
   * jobs synchronise the device).
   */
  measure(name: string, opts: CaseOptions, fn: () => Promise<unknown>): Promise<Measurement>;
  /**
   * As measure, where `sample(loops)` makes `loops` calls itself and returns the seconds per call
   * (e.g. a native timing loop); the harness calibrates loops and samples.
   */
  measureLoops(name: string, opts: CaseOptions, sample: (loops: number) => Promise<number>): Promise<Measurement>;
  /** Record externally timed trials (seconds each), e.g. from a native timing loop. */
  record(name: string, opts: CaseOptions, samples: number[], warmup?: number): Promise<Measurement>;
  /** A started Python reference server for a bench/*.py script, or null (no Python torch, or --no-python). */
  python(script: string): Promise<PythonRef | null>;
  /** The measured matmul peak of a dtype on the run's device (GFLOP/s), measured once per run. */
  peakGflops(dtype: ComputeDtype): Promise<number>;
  /** Attach a suite-specific fact to the suite's result. */
  note(key: string, value: unknown): void;
  log(message: string): void;
}

export interface PythonRef {
  torch: string;
  /** Send a JSON request; the script answers {seconds: [...]} (or other fields, returned as is). */
  request<T = { seconds: number[] }>(body: unknown): Promise<T>;
}

export interface Suite {
  name: string;
  description: string;
  run(ctx: BenchContext): Promise<void>;
}

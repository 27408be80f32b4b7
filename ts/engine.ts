/** What the library runs on, thread control, and measured arithmetic rates. */
import os from 'node:os';
import { callNative, runJob, type JobOptions } from './jobs';
import { loadAddon, loadedAddonPath, type CudaMemoryStats, type NativeBenchmarkSpec, type NativeRuntimeInfo, type UNetStats } from './native';
export type { CudaMemoryStats, UNetStats } from './native';
import { checkDevice, checkDtype, checkInt, COMPUTE_DTYPES, type ComputeDtype, type Device } from './options';
import { invalidArgument } from './errors';
import { VERSION } from './version';

/** A timed operation: sgemm [m,k]@[k,n] or a same-padded conv2d (see NativeBenchmarkSpec). */
export interface BenchmarkSpec extends Omit<NativeBenchmarkSpec, 'device' | 'dtype'> {
  device?: Device;
  dtype?: ComputeDtype;
}

export interface BenchmarkResult {
  spec: BenchmarkSpec;
  /** Seconds per measured iteration, in order. */
  seconds: number[];
  medianSeconds: number;
  minSeconds: number;
  /** Relative spread: (max − min) / median. */
  spread: number;
  flops: number;
  /** FLOP/s at the median time, in GFLOP/s. */
  gflops: number;
  threads: number;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Time an operation through the addon (runs off the main thread; abortable; progress per iteration). */
export async function benchmark(spec: BenchmarkSpec, opts?: JobOptions): Promise<BenchmarkResult> {
  if (!spec || (spec.op !== 'sgemm' && spec.op !== 'conv2d')) throw invalidArgument("benchmark op must be 'sgemm' or 'conv2d'");
  if (spec.device !== undefined) checkDevice(spec.device);
  if (spec.dtype !== undefined) checkDtype(spec.dtype, 'dtype', COMPUTE_DTYPES);
  if (spec.iterations !== undefined) checkInt(spec.iterations, 'iterations', 1, 1_000_000);
  if (spec.warmup !== undefined) checkInt(spec.warmup, 'warmup', 0, 1000);
  for (const key of ['m', 'n', 'k', 'batch', 'inChannels', 'outChannels', 'height', 'width', 'kernel'] as const) {
    if (spec[key] !== undefined) checkInt(spec[key], key, 1, 65536);
  }
  const r = await runJob(opts, (n) => loadAddon().benchmark(spec as NativeBenchmarkSpec, n));
  const med = median(r.seconds);
  return {
    spec,
    seconds: r.seconds,
    medianSeconds: med,
    minSeconds: Math.min(...r.seconds),
    spread: (Math.max(...r.seconds) - Math.min(...r.seconds)) / med,
    flops: r.flops,
    gflops: r.flops / med / 1e9,
    threads: r.threads,
  };
}

export interface Info {
  version: string;
  torchVersion: string;
  blas: NativeRuntimeInfo['blas'];
  threads: number;
  interopThreads: number;
  cores: number;
  cpu: string;
  mkldnn: boolean;
  openmp: boolean;
  cxx11Abi: boolean;
  cuda: NativeRuntimeInfo['cuda'];
  /** Measured 1024² float32 matmul rate on the CPU (absent with {measure: false}). */
  sgemmGflops?: number;
  node: string;
  addon: string;
}

/** The runtime facts without measuring anything (synchronous). */
export function runtimeInfo(): NativeRuntimeInfo {
  return callNative(() => loadAddon().runtimeInfo());
}

/** Library, LibTorch, BLAS, threads, CUDA and a measured sgemm GFLOP/s. */
export async function info(opts?: { measure?: boolean } & JobOptions): Promise<Info> {
  const rt = runtimeInfo();
  const out: Info = {
    version: VERSION,
    torchVersion: rt.torchVersion,
    blas: rt.blas,
    threads: rt.threads,
    interopThreads: rt.interopThreads,
    cores: os.availableParallelism(),
    cpu: os.cpus()[0]?.model ?? 'unknown',
    mkldnn: rt.hasMKLDNN,
    openmp: rt.hasOpenMP,
    cxx11Abi: rt.cxx11Abi,
    cuda: rt.cuda,
    node: process.version,
    addon: loadedAddonPath(),
  };
  if (opts?.measure !== false) {
    const r = await benchmark({ op: 'sgemm', m: 1024, warmup: 2, iterations: 10 }, opts);
    out.sgemmGflops = r.gflops;
    out.threads = r.threads;
  }
  return out;
}


/**
 * Give the CPU allocator's cached blocks back to the system. Blocks of 1 MiB and more are kept
 * for reuse after release (bounded by BIA_CPU_CACHE_MB, default a quarter of RAM up to 4 GiB;
 * 0 turns the cache off); `runtimeInfo().cpuCache` shows its state.
 */
export function emptyCache(): void {
  loadAddon().emptyCache();
}

/** Set the intra-op thread count (LibTorch and OpenBLAS). Default: BIA_NUM_THREADS or all cores. */
export function setThreads(n: number): number {
  checkInt(n, 'threads', 1, 1024);
  return callNative(() => loadAddon().setNumThreads(n));
}

export function getThreads(): number {
  return runtimeInfo().threads;
}

/**
 * Wall time spent inside UNet calls (encode = down path + middle block, decode = up path) since
 * the last reset, process-wide. Host time: on CUDA, synchronise before reading it.
 */
export function unetStats(opts?: { reset?: boolean }): UNetStats {
  return callNative(() => loadAddon().unetStats(opts?.reset ?? false));
}

/**
 * The CUDA caching allocator's memory statistics for a device (default 0): bytes allocated to
 * tensors and reserved from the driver, now and at their peaks since the last reset. With
 * `reset: true` the peaks restart from the current values after this reading. null on a
 * CPU-only build or when no GPU is visible.
 */
export function cudaMemory(opts?: { device?: number; reset?: boolean }): CudaMemoryStats | null {
  const device = opts?.device === undefined ? 0 : checkInt(opts.device, 'device', 0, 1023);
  if (opts?.reset !== undefined && typeof opts.reset !== 'boolean') throw invalidArgument('reset must be a boolean');
  return callNative(() => loadAddon().cudaMemoryStats(device, opts?.reset ?? false));
}

/**
 * cuDNN benchmark mode: convolutions try each algorithm once per input shape and keep the
 * fastest (faster when shapes repeat, slower on the first call of each shape). Process-wide;
 * off by default (BIA_CUDNN_BENCHMARK=1 turns it on when the addon loads). Returns the previous value.
 */
export function setCudnnBenchmark(on: boolean): boolean {
  if (typeof on !== 'boolean') throw invalidArgument('setCudnnBenchmark takes a boolean');
  return callNative(() => loadAddon().setCudnnBenchmark(on));
}

export function getCudnnBenchmark(): boolean {
  return callNative(() => loadAddon().getCudnnBenchmark());
}

export interface OpTime {
  /** The ATen operator, e.g. 'aten::conv2d'. */
  name: string;
  calls: number;
  seconds: number;
  /** seconds / totalSeconds. */
  share: number;
}

export interface OpProfileResult<T> {
  result: T;
  /** Top-level ops only (an op's inner ops count towards it), sorted by seconds, descending. */
  ops: OpTime[];
  /** Sum of ops[].seconds. */
  totalSeconds: number;
  /** Wall time of fn as seen from JavaScript. */
  wallSeconds: number;
}

/**
 * Where the time goes: run fn and count the time of every top-level ATen op that runs in the
 * process meanwhile (on any thread; one profile at a time). Host wall time per op; with
 * `sync: true` on CUDA each op synchronises the device so its time is device time (slower).
 * The profile stops when fn settles, also when it throws.
 */
export async function profileOps<T>(fn: () => Promise<T>, opts?: { sync?: boolean }): Promise<OpProfileResult<T>> {
  if (typeof fn !== 'function') throw invalidArgument('profileOps needs a function that returns a Promise');
  if (opts?.sync !== undefined && typeof opts.sync !== 'boolean') throw invalidArgument('sync must be a boolean');
  const addon = loadAddon();
  callNative(() => addon.opProfileStart({ sync: opts?.sync ?? false }));
  const t0 = performance.now();
  let result: T;
  try {
    result = await fn();
  } catch (e) {
    try {
      addon.opProfileStop();
    } catch {
      // fn's error is the one to report
    }
    throw e;
  }
  const wallSeconds = (performance.now() - t0) / 1000;
  const p = callNative(() => addon.opProfileStop());
  const total = p.totalSeconds;
  return {
    result,
    ops: p.ops.map((o) => ({ name: o.name, calls: o.calls, seconds: o.seconds, share: total > 0 ? o.seconds / total : 0 })),
    totalSeconds: total,
    wallSeconds,
  };
}

/**
 * The one typed seam to the compiled addon: the only place that describes the `.node` file's
 * shape, and the loader that finds it. It declares every type it speaks in and imports nothing from the
 * layers above it (they import from here).
 */
import { existsSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BiaError, fromNative } from './errors';

export type NativeDtype = 'float32' | 'float16' | 'bfloat16' | 'float64' | 'uint8' | 'int32' | 'int64' | 'bool';
/** What tensors read back as (float16/bfloat16 → Float32Array, bool → Uint8Array, int64 → Float64Array). */
export type NativeArray = Float32Array | Float64Array | Uint8Array | Int32Array;

/** Wall time inside UNet encode/decode calls since the last reset (host time). */
export interface UNetStats {
  encodeCalls: number;
  decodeCalls: number;
  encodeImages: number;
  decodeImages: number;
  seconds: number;
}

/** The CUDA caching allocator's aggregate statistics for one device (peaks since the last reset). */
export interface CudaMemoryStats {
  allocatedBytes: number;
  peakAllocatedBytes: number;
  reservedBytes: number;
  peakReservedBytes: number;
}

/** Wall time (device time with sync on CUDA) of top-level ATen ops between opProfileStart and opProfileStop. */
export interface NativeOpProfile {
  /** Sorted by seconds, descending. */
  ops: { name: string; calls: number; seconds: number }[];
  totalSeconds: number;
  wallSeconds: number;
}

export interface NativeProgress {
  step: number;
  total: number;
  stage: string;
  value?: number;
}

export interface NativeJobOptions {
  onProgress?: (ev: NativeProgress) => void;
  cancel?: NativeCancelToken;
}

export interface NativeCancelToken {
  cancel(): void;
  readonly cancelled: boolean;
}

export interface NativeTensor {
  readonly shape: number[];
  readonly dtype: NativeDtype;
  readonly device: string;
  readonly nbytes: number;
  readonly disposed: boolean;
  dispose(): void;
  read(opts?: NativeJobOptions): Promise<NativeArray>;
  to(dtype: NativeDtype | undefined, device: string | undefined, opts?: NativeJobOptions): Promise<NativeTensor>;
  itemsSync(): NativeArray;
}

export interface NativeRuntimeInfo {
  torchVersion: string;
  buildConfig: string;
  parallelInfo: string;
  cxx11Abi: boolean;
  threads: number;
  interopThreads: number;
  hasMKL: boolean;
  hasMKLDNN: boolean;
  hasOpenMP: boolean;
  blas: { name: string; library: string; config: string; threads?: number };
  cuda: { built: boolean; available: boolean; cudnn: boolean; devices: { index: number; name: string; totalMemory: number }[] };
  cpuCache: {
    enabled: boolean; limitBytes: number; cachedBytes: number; liveBytes: number; hits: number; misses: number;
    /** glibc malloc's thresholds pinned at load for the blocks under 1 MiB (BIA_MALLOC_TUNE=0: not). */
    mallocTuned: boolean;
  };
}

export interface NativeBenchmarkSpec {
  op: 'sgemm' | 'conv2d';
  device?: string;
  dtype?: NativeDtype;
  warmup?: number;
  iterations?: number;
  /** sgemm: [m,k] @ [k,n] (n and k default to m). */
  m?: number;
  n?: number;
  k?: number;
  /** conv2d: input [batch, inChannels, height, width], kernel × kernel, same padding, bias. */
  batch?: number;
  inChannels?: number;
  outChannels?: number;
  height?: number;
  width?: number;
  kernel?: number;
  channelsLast?: boolean;
}

export interface NativeBenchmarkResult {
  seconds: number[];
  flops: number;
  threads: number;
}

export type NativeCheckpointFormat = 'torch-zip' | 'torch-legacy' | 'safetensors';

/** What readCheckpoint resolves to: the tensors in file order, as [name, tensor] pairs. */
export interface NativeCheckpoint {
  format: NativeCheckpointFormat;
  metadata: Record<string, string>;
  tensors: Array<[string, NativeTensor]>;
}

export interface NativeUNetConfig {
  inChannels: number;
  outChannels: number;
  ch: number;
  chMult: number[];
  numResBlocks: number;
  attnResolutions: number[];
  dropout: number;
  resampWithConv: boolean;
  resolution: number;
  /** Derived: [C, H, W] of h at `resolution`. */
  hShape: number[];
}

/** What every native model handle has (networks are ObjectWraps over a LibTorch module). */
export interface NativeModule {
  readonly parameterCount: number;
  readonly device: string;
  readonly dtype: NativeDtype;
  readonly disposed: boolean;
  dispose(): void;
  save(path: string, metadata: Record<string, string>, opts?: NativeJobOptions): Promise<void>;
  stateDict(): [string, NativeTensor][];
  loadStateDict(entries: [string, NativeTensor][], strict: boolean, opts?: NativeJobOptions): Promise<void>;
}

export interface NativeDiffusion extends NativeModule {
  readonly config: NativeUNetConfig;
  forward(x: NativeTensor, t: number[], o: { h?: NativeTensor; hDelta?: NativeTensor }, opts?: NativeJobOptions): Promise<{ eps: NativeTensor; h: NativeTensor }>;
  invert(x: NativeTensor, o: { t0?: number; steps?: number; keepAll?: boolean }, opts?: NativeJobOptions): Promise<{ xLat: NativeTensor; hR: NativeTensor; hs: NativeTensor[]; ts: number[] }>;
  decode(
    xLat: NativeTensor,
    h: NativeTensor | null,
    o: { mode?: string; eta?: number; t0?: number; steps?: number; tEdit?: number; tBoost?: number; etaBoost?: number; seed?: number; hRef?: NativeTensor; batchSize?: number; stopAfter?: number; predictX0?: boolean },
    opts?: NativeJobOptions,
  ): Promise<NativeTensor>;
}

export interface NativeEncoder extends NativeModule {
  readonly arch: string;
  readonly width: number;
  readonly embeddingSize: number;
  readonly inputNormalisation: string;
  embed(x: NativeTensor, o: { protocol?: string; normalize?: boolean }, opts?: NativeJobOptions): Promise<NativeTensor>;
}

/** loadStateDict takes torchvision's whole-model keys (features.*, classifier.* ignored) or features-only keys. */
export interface NativePerceptual extends NativeModule {
  readonly name: string;
  /** Per image, float64. */
  distance(a: NativeTensor, b: NativeTensor, opts?: NativeJobOptions): Promise<Float64Array>;
  /** The distance and ∂(Σ_i distance_i)/∂a (a's shape, dtype and device). */
  gradient(a: NativeTensor, b: NativeTensor, opts?: NativeJobOptions): Promise<{ distance: Float64Array; gradient: NativeTensor }>;
  /** [relu1_2, relu2_2, relu3_3] in the model's dtype, on its device. */
  features(x: NativeTensor, opts?: NativeJobOptions): Promise<NativeTensor[]>;
}

/** The inputs of the `optimize` absorption (docs/method.md step 8). */
export interface NativeAbsorbTensors {
  xLat: NativeTensor;
  hR: NativeTensor;
  fR: NativeTensor;
  wrap: NativeTensor;
  dq?: NativeTensor;
}

export interface NativeAbsorbOptions {
  mode?: string;
  t0?: number;
  steps?: number;
  tEdit?: number;
  backprop?: 'full' | 'one-step';
  tauM?: number;
  mu?: number;
  lambdaId?: number;
  lambdaSem?: number;
  lambdaPerc?: number;
  protocol?: string;
  /** Tests: false backpropagates through the unrolled decode in one graph (default true). */
  checkpoint?: boolean;
  /** Tests: float64 copies of both networks (default false). */
  float64?: boolean;
  /** absorbOptimize only. */
  iterations?: number;
  lr?: number;
  startDistance?: number;
}

/** The terms of the absorption loss L at one ĥ (sim raw; wrapper and loss weighted; pull, sem, mse, perc unweighted). */
export interface NativeAbsorbTerms {
  /** L = wrapper + λ_sem·sem. */
  loss: number;
  /** cos(E(Dec(ĥ)), f_r). */
  sim: number;
  /** λ_id·max(0, sim − τ_m) + μ·pull. */
  wrapper: number;
  /** min_k ‖ĥ − h_k‖² / ‖h_r‖² (unweighted). */
  pull: number;
  /** L_sem = mse + λ_perc·perc (unweighted by λ_sem). */
  sem: number;
  mse: number;
  perc: number;
}

/** Each term per iteration. */
export type NativeAbsorbHistory = { [K in keyof NativeAbsorbTerms]: Float64Array };

export type NativeTrainTarget = 'diffusion' | 'encoder' | 'attributes';

/** One batch as the native trainer takes it. */
export interface NativeTrainBatch {
  images: NativeTensor;
  labels?: NativeTensor;
  targets?: NativeTensor;
  identity?: { encoder: NativeEncoder; embeddings?: NativeTensor; keep?: NativeTensor; weight?: number; keepWeight?: number; margin?: number; protocol?: string };
}

export interface NativeStepResult {
  loss: number;
  parts: Record<string, number>;
  seconds: number;
  /** Optimiser steps done after this call. */
  step: number;
  images: number;
}

/** The trainer's options as the addon takes them (the UNet's dropout goes into the model's config instead). */
export interface NativeTrainerOptions {
  /** AdamW defaults (a step's lr overrides lr). */
  lr?: number;
  weightDecay?: number;
  betas?: [number, number];
  eps?: number;
  /** EMA decay of the weights (0, the default: no EMA). model() returns the EMA weights when on. */
  emaDecay?: number;
  /** Use min(emaDecay, (1 + k)/(10 + k)) at step k (default false). */
  emaWarmup?: boolean;
  /**
   * channels_last memory format for the network and batches (default false: measured here at batch
   * 32, 64², the default UNet, 1 thread: 1.4 s/step NCHW vs 1.7 s/step channels_last). Refused for
   * encoders on the CPU: LibTorch 1.13's CPU backward of 1×1 stride-2 convolutions in channels_last
   * corrupts memory.
   */
  channelsLast?: boolean;
  /** Name prefixes of the network parameters that learn (e.g. ['up.', 'norm_out.', 'conv_out.']); default: all. */
  trainable?: string[];
  /**
   * > 0: the network stays frozen and low-rank adapters (LoRA) of this rank on the convolution and linear
   * weights selected by `trainable` learn instead (default 0: the weights themselves learn).
   */
  adapterRank?: number;
  /** The adapters' α: they add (α / rank)·up·down to each weight (default 0: α = the rank). */
  adapterAlpha?: number;
  /** Seeds the initialisation of new networks and heads, and every step's randomness (with the step index). */
  seed?: number;
  /** Clip the global gradient norm to this (0, the default: no clipping). */
  gradClip?: number;
  /** Encoder: identities for the ArcFace head (0: no ArcFace head). */
  classes?: number;
  /** Encoder: size of the auxiliary regression head's targets (0: none). */
  auxDim?: number;
  /** Encoder: λ_aux (default 1). */
  auxWeight?: number;
  /** Encoder: the ArcFace scale s (default 32). */
  scale?: number;
  /** Random horizontal flips (p 0.5). */
  flip?: boolean;
  /** Encoder / attributes: Gaussian blur σ ~ U[0, blur] pixels on a share blurProb (default 0.5) of the images. */
  blur?: number;
  blurProb?: number;
  /** Encoder / attributes: additive Gaussian noise σ ~ U[0, noise]. */
  noise?: number;
  /** 'cpu', 'cuda' or 'cuda:N'. */
  device?: string;
}

/** What createTrainer builds the network from (weights are copied). */
export interface NativeTrainerModel {
  config?: Partial<NativeUNetConfig> | Partial<NativeAttributeConfig>;
  arch?: string;
  width?: number;
  embeddingSize?: number;
  weights?: [string, NativeTensor][];
}

export interface NativeTrainer {
  readonly target: NativeTrainTarget;
  /** Optimiser steps done (as of the last finished job). */
  readonly step: number;
  /** JSON: {target, model, options, parameterCount, headParameterCount, adapterParameterCount, device}. */
  readonly info: string;
  readonly disposed: boolean;
  dispose(): void;
  trainStep(batch: NativeTrainBatch, o: { lr?: number; margin?: number }, opts?: NativeJobOptions): Promise<NativeStepResult>;
  evaluate(batch: NativeTrainBatch, o: { margin?: number; seed?: number }, opts?: NativeJobOptions): Promise<NativeStepResult>;
  /** Resolves to the step count written. */
  save(path: string, metadata: Record<string, string>, opts?: NativeJobOptions): Promise<number>;
  load(path: string, opts?: NativeJobOptions): Promise<{ step: number; metadata: Record<string, string> }>;
  model(o: { ema?: boolean }, opts?: NativeJobOptions): Promise<NativeDiffusion | NativeEncoder | NativeAttributes>;
  /** Copies of everything a checkpoint holds, under the checkpoint's names. */
  snapshot(opts?: NativeJobOptions): Promise<[string, NativeTensor][]>;
  /** The gradient of evaluate()'s loss per trainable tensor, under the optimiser's names. */
  gradients(batch: NativeTrainBatch, o: { margin?: number; seed?: number }, opts?: NativeJobOptions): Promise<[string, NativeTensor][]>;
  /** Write the adapters as a patch file; resolves to the number of adapted layers. */
  saveAdapter(path: string, metadata: Record<string, string>, opts?: NativeJobOptions): Promise<number>;
}

export interface NativeAttributeConfig {
  inChannels: number;
  outputs: number;
  width: number;
  stages: number;
}

export interface NativeAttributes extends NativeModule {
  readonly config: NativeAttributeConfig;
  features(x: NativeTensor, opts?: NativeJobOptions): Promise<NativeTensor>;
  predict(x: NativeTensor, opts?: NativeJobOptions): Promise<NativeTensor>;
}

export interface NativeAddon {
  abiVersion: number;
  Tensor: new (...args: never[]) => NativeTensor;
  CancelToken: new () => NativeCancelToken;
  tensorFromArray(data: NativeArray, shape: number[], dtype?: NativeDtype, device?: string): NativeTensor;
  tensorFromArrayAsync(data: NativeArray, shape: number[], dtype: NativeDtype | undefined, device: string | undefined, opts?: NativeJobOptions): Promise<NativeTensor>;
  zeros(shape: number[], dtype: NativeDtype | undefined, device: string | undefined, opts?: NativeJobOptions): Promise<NativeTensor>;
  randn(shape: number[], dtype: NativeDtype | undefined, device: string | undefined, seed: number, opts?: NativeJobOptions): Promise<NativeTensor>;
  liveTensors(): number;
  externalMemory(): number;
  runtimeInfo(): NativeRuntimeInfo;
  setNumThreads(n: number): number;
  benchmark(spec: NativeBenchmarkSpec, opts?: NativeJobOptions): Promise<NativeBenchmarkResult>;
  matmul(a: NativeTensor, b: NativeTensor, opts?: NativeJobOptions): Promise<NativeTensor>;
  groupNorm(x: NativeTensor, weight: NativeTensor, bias: NativeTensor, o: { groups: number; eps: number; silu: boolean; channelsLast: boolean; reference: boolean }, opts?: NativeJobOptions): Promise<NativeTensor>;
  unetStats(reset: boolean): UNetStats;
  emptyCache(): void;
  /** null on a CPU-only build or with no GPU visible. */
  cudaMemoryStats(device: number, reset: boolean): CudaMemoryStats | null;
  /** Returns the previous value. */
  setCudnnBenchmark(on: boolean): boolean;
  getCudnnBenchmark(): boolean;
  /** Throws BIA_INVALID_ARGUMENT when a profile is already running. */
  opProfileStart(opts: { sync: boolean }): void;
  /** Throws BIA_INVALID_ARGUMENT when no profile is running. */
  opProfileStop(): NativeOpProfile;
  DiffusionModel: new (...args: never[]) => NativeDiffusion;
  createDiffusion(
    config: string | Partial<NativeUNetConfig>,
    seed: number,
    device: string,
    dtype: NativeDtype,
    channelsLast: boolean,
    autocast: 'float16' | 'bfloat16' | undefined,
    opts?: NativeJobOptions,
  ): Promise<NativeDiffusion>;
  loadDiffusion(
    path: string,
    config: string | Partial<NativeUNetConfig> | null,
    device: string,
    dtype: NativeDtype,
    channelsLast: boolean,
    autocast: 'float16' | 'bfloat16' | undefined,
    strict: boolean,
    opts?: NativeJobOptions,
  ): Promise<NativeDiffusion>;
  diffusionPreset(name: string): NativeUNetConfig;
  /** With a perceptual model, `perceptual` is its distance instead of the weight-free substitute. */
  imageLosses(
    a: NativeTensor,
    b: NativeTensor,
    perceptual: NativePerceptual | null,
    opts?: NativeJobOptions,
  ): Promise<{ mse: Float64Array; ssim: Float64Array; gradL1: Float64Array; perceptual: Float64Array; perceptualName: string }>;
  sampleNeighbours(hR: NativeTensor, n: number, alphaMax: number, seed: number, targets: NativeTensor | null, opts?: NativeJobOptions): Promise<{ codes: NativeTensor; alphas: Float64Array }>;
  offsetCodes(base: NativeTensor, rows: number[] | null, direction: NativeTensor | null, steps: Float64Array | null, opts?: NativeJobOptions): Promise<NativeTensor>;
  takeRows(parts: NativeTensor[], picks: number[], opts?: NativeJobOptions): Promise<NativeTensor>;
  IdentityEncoder: new (...args: never[]) => NativeEncoder;
  createIdentityEncoder(arch: string, width: number, embeddingSize: number, seed: number, device: string, dtype: NativeDtype, opts?: NativeJobOptions): Promise<NativeEncoder>;
  loadIdentityEncoder(path: string, arch: string | null, device: string, dtype: NativeDtype, strict: boolean, opts?: NativeJobOptions): Promise<NativeEncoder>;
  cosineSimilarity(a: NativeTensor, b: NativeTensor, matrix: boolean, opts?: NativeJobOptions): Promise<NativeTensor>;
  PerceptualModel: new (...args: never[]) => NativePerceptual;
  createPerceptual(seed: number, device: string, dtype: NativeDtype, opts?: NativeJobOptions): Promise<NativePerceptual>;
  loadPerceptual(path: string, device: string, dtype: NativeDtype, opts?: NativeJobOptions): Promise<NativePerceptual>;
  /** torch.save files (zip, legacy) and safetensors; progress events count bytes read. */
  readCheckpoint(path: string, opts?: NativeJobOptions): Promise<NativeCheckpoint>;
  /** Writes to a temporary file in the same folder, then renames it over `path`. */
  writeSafetensors(path: string, tensors: Array<[string, NativeTensor]>, metadata: Record<string, string> | undefined, opts?: NativeJobOptions): Promise<void>;
  Trainer: new (...args: never[]) => NativeTrainer;
  createTrainer(target: NativeTrainTarget, model: NativeTrainerModel, options: NativeTrainerOptions, opts?: NativeJobOptions): Promise<NativeTrainer>;
  /** A new UNet: the model's weights with an adapter patch merged in. */
  mergeAdapter(model: NativeDiffusion, path: string, opts?: NativeJobOptions): Promise<NativeDiffusion>;
  /** s·cos(θ + m·[target]) for embeddings [B, D], weight [C, D], integer labels [B] → [B, C]. */
  arcfaceLogits(embeddings: NativeTensor, weight: NativeTensor, labels: NativeTensor, arcfaceMargin: number, scale: number, opts?: NativeJobOptions): Promise<NativeTensor>;
  AttributeEstimator: new (...args: never[]) => NativeAttributes;
  createAttributeEstimator(config: Partial<NativeAttributeConfig>, seed: number, device: string, dtype: NativeDtype, opts?: NativeJobOptions): Promise<NativeAttributes>;
  loadAttributeEstimator(path: string, device: string, dtype: NativeDtype, strict: boolean, opts?: NativeJobOptions): Promise<NativeAttributes>;
  /** K = X·Xᵀ in float64 for X = codes.reshape(n, -1); [n, n] on the CPU. */
  gram(codes: NativeTensor, opts?: NativeJobOptions): Promise<NativeTensor>;
  /** Σ coef_i·codes_i in float64, shaped like one code, on the codes' device. */
  linearCombination(codes: NativeTensor, coef: Float64Array, opts?: NativeJobOptions): Promise<NativeTensor>;
  /** (w·vec(x_i) + b)/‖w‖ per code; `codes` is [n, ...w.shape] or one code of w's shape. */
  signedDistance(codes: NativeTensor, w: NativeTensor, b: number, opts?: NativeJobOptions): Promise<Float64Array>;
  /** scale·w/‖w‖ in float64. */
  unitDirection(w: NativeTensor, scale: number, opts?: NativeJobOptions): Promise<NativeTensor>;
  /** L and ∂L/∂ĥ at one ĥ (grad: like hHat, float32; float64 with the hidden float64 option). perceptual: null = the weight-free substitute. */
  absorbLoss(
    diffusion: NativeDiffusion,
    encoder: NativeEncoder,
    perceptual: NativePerceptual | null,
    tensors: NativeAbsorbTensors,
    options: NativeAbsorbOptions,
    hHat: NativeTensor,
    opts?: NativeJobOptions,
  ): Promise<NativeAbsorbTerms & { grad: NativeTensor; perceptual: string; backprop: 'full' | 'one-step' }>;
  /** Adam on ĥ from h_r + startDistance·dq; progress stage 'absorb' per iteration; lr: the absolute Adam step used. */
  absorbOptimize(
    diffusion: NativeDiffusion,
    encoder: NativeEncoder,
    perceptual: NativePerceptual | null,
    tensors: NativeAbsorbTensors,
    options: NativeAbsorbOptions,
    opts?: NativeJobOptions,
  ): Promise<{ h: NativeTensor; image: NativeTensor; history: NativeAbsorbHistory; best: number; iterations: number; perceptual: string; backprop: 'full' | 'one-step'; lr: number }>;
}

export const ADDON_ABI_VERSION = 1;

/** The package root (the folder with this package's package.json), found upwards from here. */
export function packageRoot(): string {
  let dir = __dirname;
  for (;;) {
    const pj = path.join(dir, 'package.json');
    if (existsSync(pj)) {
      try {
        if (JSON.parse(readFileSync(pj, 'utf8')).name === 'bia-torch') return dir;
      } catch {
        /* keep looking */
      }
    }
    const up = path.dirname(dir);
    if (up === dir) return path.resolve(__dirname, '..', '..');
    dir = up;
  }
}

/** Where the loader looks, in order. */
export function addonCandidates(): string[] {
  const root = packageRoot();
  // An explicit override is exclusive: if it does not load, say so rather than load another build.
  if (process.env.BIA_TORCH_ADDON) return [path.resolve(process.env.BIA_TORCH_ADDON)];
  const list: string[] = [];
  list.push(path.join(root, 'build', 'Release', 'bia_torch.node'), path.join(root, 'build', 'Debug', 'bia_torch.node'));
  return list;
}

function fixHint(failures: string[]): string {
  const text = failures.join('\n');
  if (/libtorch|libc10|libtorch_cpu/.test(text)) {
    return 'LibTorch shared libraries cannot be loaded: install them (apt-get install libtorch-dev libopenblas0-pthread) ' +
      'or, for a Python/CUDA LibTorch, rebuild so the addon records its path (npm run build:native).';
  }
  if (/not found/.test(text)) return 'The addon is not built: run `npm run setup` (or `npm run build:native`).';
  return 'Rebuild the addon: `npm run build:native`, or point BIA_TORCH_ADDON at a working bia_torch.node.';
}

let cached: NativeAddon | undefined;
let cachedPath: string | undefined;

/** The file the addon was loaded from (loads it if needed). */
export function loadedAddonPath(): string {
  loadAddon();
  return cachedPath!;
}

/**
 * How long LibTorch's idle OpenMP workers spin before they sleep: libgomp reads GOMP_SPINCOUNT once,
 * when the addon loads it. Unless GOMP_SPINCOUNT or OMP_WAIT_POLICY is set, it is set to 1000 rounds
 * instead of libgomp's default 300,000 (it spins 100 when threads outnumber cores): workers spinning between
 * jobs took the cores from OpenBLAS's threads and from other processes, and small jobs came out a
 * scheduler tick (4 ms) late or worse (docs/benchmarks.md, "Thread wake-up").
 */
export const DEFAULT_GOMP_SPINCOUNT = '1000';

/** Set GOMP_SPINCOUNT to DEFAULT_GOMP_SPINCOUNT where neither it nor OMP_WAIT_POLICY is set (before the addon loads). */
export function applyOpenMpDefaults(env: NodeJS.ProcessEnv = process.env): void {
  if (env.GOMP_SPINCOUNT === undefined && env.OMP_WAIT_POLICY === undefined) env.GOMP_SPINCOUNT = DEFAULT_GOMP_SPINCOUNT;
}

/** Load the compiled addon once; on failure throw one error that lists what was tried. */
export function loadAddon(): NativeAddon {
  if (cached) return cached;
  const threads = defaultThreads(); // a bad BIA_NUM_THREADS is its own error, not a load failure
  applyOpenMpDefaults();
  const failures: string[] = [];
  for (const file of addonCandidates()) {
    if (!existsSync(file)) {
      failures.push(`${file}: not found`);
      continue;
    }
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const addon = require(file) as NativeAddon;
      if (addon.abiVersion !== ADDON_ABI_VERSION) {
        failures.push(`${file}: built from another version (abi ${addon.abiVersion}, need ${ADDON_ABI_VERSION}); rebuild it`);
        continue;
      }
      cached = addon;
      cachedPath = file;
      configureThreads(addon, threads);
      return addon;
    } catch (e) {
      failures.push(`${file}: ${(e as Error).message.split('\n')[0]}`);
    }
  }
  throw new BiaError('BIA_ADDON_NOT_FOUND',
    `bia-torch could not load its native addon. Tried:\n  ${failures.join('\n  ')}\nFix: ${fixHint(failures)}`);
}

/** Threads: BIA_NUM_THREADS if set, else every core the machine offers. */
export function defaultThreads(): number {
  const env = process.env.BIA_NUM_THREADS;
  if (env !== undefined && env !== '') {
    const n = Number(env);
    if (!Number.isInteger(n) || n < 1 || n > 1024) {
      throw new BiaError('BIA_INVALID_ARGUMENT', `BIA_NUM_THREADS must be an integer in [1, 1024], got '${env}'`);
    }
    return n;
  }
  return os.availableParallelism();
}

function configureThreads(addon: NativeAddon, threads: number): void {
  try {
    addon.setNumThreads(threads);
  } catch (e) {
    throw fromNative(e);
  }
}

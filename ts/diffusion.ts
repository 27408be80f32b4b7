/**
 * The diffusion half of BIA: the DDPM UNet with its h-space, DDIM inversion (x0 → x_lat, h_r)
 * and decoding (x_lat, ĥ → x0) in the four injection modes of docs/method.md.
 */
import { resolve as resolvePath } from 'node:path';
import { invalidArgument } from './errors';
import { callNative, runJob, type JobOptions } from './jobs';
import { NativeModel, tensorHandle } from './model';
import { loadAddon, type NativeDiffusion, type NativeTensor, type NativeUNetConfig } from './native';
import { checkDevice, checkDtype, checkInt, COMPUTE_DTYPES, type ComputeDtype, type Device } from './options';
import { Tensor } from './tensor';

export type UNetConfig = NativeUNetConfig;
/** Built-in configurations: the official CelebA-HQ 256 model, the 64² demo size, a tiny test net. */
export type UNetPreset = 'celeba-hq-256' | 'small-64' | 'tiny';
export const UNET_PRESETS: readonly UNetPreset[] = ['celeba-hq-256', 'small-64', 'tiny'];
/** How an edited h reaches the decoder (docs/method.md, step 4). */
export type InjectMode = 'lagged' | 'first-step' | 'every-step' | 'asyrp';
export const INJECT_MODES: readonly InjectMode[] = ['lagged', 'first-step', 'every-step', 'asyrp'];

export interface DiffusionOptions {
  device?: Device;
  /** Weights and compute dtype (default float32). */
  dtype?: ComputeDtype;
  /** Run convolutions in channels_last (NHWC) memory format (default: true on CPU). */
  channelsLast?: boolean;
  /**
   * Mixed precision for forward / invert / decode; ε, h and the DDIM state stay float32. On CUDA, LibTorch
   * autocast (bfloat16 or float16): weights stay in `dtype`, convolutions and matrix products run in the
   * autocast dtype. On the CPU, bfloat16 only (float32 weights): a bfloat16 copy of the UNet runs every op
   * in bfloat16 (oneDNN's AVX-512 BF16 convolutions, the fused GroupNorm + SiLU); about 1.8× faster on the
   * 256² UNet where the CPU has AVX512-BF16, at about 1e-2 relative error in ε (docs/throughput.md).
   */
  autocast?: 'float16' | 'bfloat16';
}

export interface InvertOptions extends JobOptions {
  /** Inversion depth (default 500). */
  t0?: number;
  /** Number of timesteps in the sequence 0..t0 (default 40: 39 UNet calls). */
  steps?: number;
  /** Also return every call's h (default false). */
  keepAll?: boolean;
}

export interface InvertResult {
  /** x at t0. */
  xLat: Tensor;
  /** h of the last inversion UNet call (t = 487 for t0 500 / 40 steps). */
  hR: Tensor;
  /** Every call's h when keepAll, in call order. */
  hs: Tensor[];
  /** The t of each returned h. */
  ts: number[];
}

export interface DecodeOptions extends JobOptions {
  /** Injection mode (default 'asyrp'). */
  mode?: InjectMode;
  /** DDIM η (default 1 for 'lagged' as in the released code, else 0). */
  eta?: number;
  t0?: number;
  steps?: number;
  /** every-step / asyrp: edit only while t ≥ tEdit (default 0). */
  tEdit?: number;
  /** Asyrp's quality boosting: steps with t < tBoost run with η = etaBoost (default 0: off). */
  tBoost?: number;
  /** η of the boosted steps (default 1). */
  etaBoost?: number;
  /** Seed of the η > 0 noise (default 909090). */
  seed?: number;
  /** h_r, needed by every-step and asyrp (Δh = h − h_r). */
  hRef?: Tensor;
  /** Images decoded per batch (default 16). */
  batchSize?: number;
  /** Stop after this many DDIM steps and return that intermediate state (inspection, tests). */
  stopAfter?: number;
  /**
   * With stopAfter: return the predicted x̂0 = (x_t − √(1 − ᾱ_t)·ε)/√ᾱ_t of the last step run (ε from the
   * injected h) instead of the state after it: an image part-way down the trajectory, at stopAfter UNet steps'
   * cost (cheap neighbour labels, docs/method.md step 5).
   */
  predictX0?: boolean;
}

export interface ForwardOptions extends JobOptions {
  /** Replace the middle block's output by this h for the decoder pass. */
  h?: Tensor;
  /** Add this Δh to h (after a replacement, if any). */
  hDelta?: Tensor;
}

function checkOptional(v: unknown, what: string): NativeTensor | undefined {
  return v === undefined ? undefined : tensorHandle(v, what);
}

function checkSteps(t0: number | undefined, steps: number | undefined): void {
  const t = t0 === undefined ? 500 : checkInt(t0, 't0', 1, 999);
  if (steps !== undefined) checkInt(steps, 'steps', 2, t + 1);
}

export class DiffusionModel extends NativeModel<NativeDiffusion> {
  /** The mixed precision its forward / invert / decode run in (DiffusionOptions.autocast); null: none. */
  readonly autocast: 'float16' | 'bfloat16' | null;

  /** @internal */
  constructor(native: NativeDiffusion, autocast?: 'float16' | 'bfloat16') {
    super(native, 'DiffusionModel');
    this.autocast = autocast ?? null;
  }

  get config(): UNetConfig {
    return this.native.config;
  }
  /** Shape of one h: [C, H/2^(levels−1), W/2^(levels−1)] at the model's resolution. */
  get hShape(): number[] {
    return this.config.hShape;
  }

  /** ε_θ(x, t) and h; optionally with h replaced or shifted for the decoder pass. */
  async forward(x: Tensor, t: number | number[], opts?: ForwardOptions): Promise<{ eps: Tensor; h: Tensor }> {
    const n = this.native;
    const xs = tensorHandle(x, 'x');
    const ts = Array.isArray(t) ? t : [t];
    if (ts.length === 0) throw invalidArgument('t must be a number or a non-empty array');
    ts.forEach((v, i) => checkInt(v, `t[${i}]`, 0, 999));
    const h = checkOptional(opts?.h, 'h');
    const hDelta = checkOptional(opts?.hDelta, 'hDelta');
    const r = await runJob(opts, (j) => n.forward(xs, ts, { h, hDelta }, j));
    return { eps: new Tensor(r.eps), h: new Tensor(r.h) };
  }

  /** DDIM inversion with η = 0 from x0 (at t = 0) up to t0. */
  async invert(x: Tensor, opts?: InvertOptions): Promise<InvertResult> {
    const n = this.native;
    const xs = tensorHandle(x, 'x');
    checkSteps(opts?.t0, opts?.steps);
    const r = await runJob(opts, (j) => n.invert(xs, { t0: opts?.t0, steps: opts?.steps, keepAll: opts?.keepAll }, j));
    return { xLat: new Tensor(r.xLat), hR: new Tensor(r.hR), hs: r.hs.map((h) => new Tensor(h)), ts: r.ts };
  }

  /** Decode x_lat (batch 1 or B) with h injected (batch B; null: no injection) → images [B, C, H, W]. */
  async decode(xLat: Tensor, h: Tensor | null, opts?: DecodeOptions): Promise<Tensor> {
    const n = this.native;
    const xl = tensorHandle(xLat, 'xLat');
    const hh = h === null || h === undefined ? null : tensorHandle(h, 'h');
    const mode = opts?.mode ?? 'asyrp';
    if (!INJECT_MODES.includes(mode)) throw invalidArgument(`mode must be one of ${INJECT_MODES.join(', ')}; got ${JSON.stringify(mode)}`);
    if (opts?.eta !== undefined && !(typeof opts.eta === 'number' && opts.eta >= 0 && opts.eta <= 1)) {
      throw invalidArgument(`eta must be a number in [0, 1], got ${JSON.stringify(opts.eta)}`);
    }
    checkSteps(opts?.t0, opts?.steps);
    if (opts?.tEdit !== undefined) checkInt(opts.tEdit, 'tEdit', 0, 999);
    if (opts?.tBoost !== undefined) checkInt(opts.tBoost, 'tBoost', 0, 1000);
    if (opts?.etaBoost !== undefined && !(typeof opts.etaBoost === 'number' && opts.etaBoost >= 0 && opts.etaBoost <= 1)) {
      throw invalidArgument(`etaBoost must be a number in [0, 1], got ${JSON.stringify(opts.etaBoost)}`);
    }
    if (opts?.seed !== undefined) checkInt(opts.seed, 'seed', 0, 2 ** 52);
    if (opts?.batchSize !== undefined) checkInt(opts.batchSize, 'batchSize', 1, 4096);
    if (opts?.stopAfter !== undefined) checkInt(opts.stopAfter, 'stopAfter', 0, 1000);
    if (opts?.predictX0 !== undefined && typeof opts.predictX0 !== 'boolean') throw invalidArgument('predictX0 must be a boolean');
    if (opts?.predictX0 && !(opts.stopAfter !== undefined && opts.stopAfter > 0)) throw invalidArgument('predictX0 needs stopAfter > 0 (the step whose x̂0 is returned)');
    const hRef = checkOptional(opts?.hRef, 'hRef');
    if (hh && (mode === 'every-step' || mode === 'asyrp') && !hRef) {
      throw invalidArgument(`mode '${mode}' needs hRef (h_r from invert()) to form Δh = h − h_r`);
    }
    const native = await runJob(opts, (j) =>
      n.decode(xl, hh, { mode, eta: opts?.eta, t0: opts?.t0, steps: opts?.steps, tEdit: opts?.tEdit, tBoost: opts?.tBoost, etaBoost: opts?.etaBoost, seed: opts?.seed, hRef, batchSize: opts?.batchSize, stopAfter: opts?.stopAfter, predictX0: opts?.predictX0 }, j),
    );
    return new Tensor(native);
  }
}

function checkConfig(config: UNetPreset | (Partial<UNetConfig> & { preset?: UNetPreset })): UNetPreset | Partial<UNetConfig> {
  if (typeof config === 'string') {
    if (!UNET_PRESETS.includes(config)) throw invalidArgument(`unknown UNet preset '${config}' (known: ${UNET_PRESETS.join(', ')})`);
    return config;
  }
  if (typeof config !== 'object' || config === null) throw invalidArgument('config must be a preset name or a UNet config object');
  if (config.preset !== undefined && !UNET_PRESETS.includes(config.preset)) throw invalidArgument(`unknown UNet preset '${config.preset}'`);
  return config;
}

function checkModelOptions(opts: DiffusionOptions | undefined): {
  device: Device;
  dtype: ComputeDtype;
  channelsLast: boolean;
  autocast?: 'float16' | 'bfloat16';
} {
  const device = opts?.device === undefined ? 'cpu' : checkDevice(opts.device);
  const dtype = opts?.dtype === undefined ? 'float32' : (checkDtype(opts.dtype, 'dtype', COMPUTE_DTYPES) as ComputeDtype);
  if (opts?.channelsLast !== undefined && typeof opts.channelsLast !== 'boolean') throw invalidArgument('channelsLast must be a boolean');
  if (opts?.autocast !== undefined && opts.autocast !== 'float16' && opts.autocast !== 'bfloat16') {
    throw invalidArgument(`autocast must be 'float16' or 'bfloat16', got ${JSON.stringify(opts.autocast)}`);
  }
  return { device, dtype, channelsLast: opts?.channelsLast ?? device === 'cpu', autocast: opts?.autocast };
}

/** A UNet with LibTorch's default (seeded) initialisation: for tests, benches and training. */
export async function createDiffusion(
  config: UNetPreset | (Partial<UNetConfig> & { preset?: UNetPreset }),
  opts?: DiffusionOptions & { seed?: number } & JobOptions,
): Promise<DiffusionModel> {
  const c = checkConfig(config);
  const { device, dtype, channelsLast, autocast } = checkModelOptions(opts);
  const seed = opts?.seed === undefined ? 0 : checkInt(opts.seed, 'seed', 0, 2 ** 52);
  const n = await runJob(opts, (j) => loadAddon().createDiffusion(c, seed, device, dtype, channelsLast, autocast, j));
  return new DiffusionModel(n, autocast);
}

/**
 * Load a DDPM UNet checkpoint: torch.save (zip or legacy; bare or wrapped state dicts) or
 * safetensors, with a strict key and shape check. The config is `opts.config`, else the file's
 * own (written by save()), else celeba-hq-256 (the official `celeba_hq.ckpt`).
 */
export async function loadDiffusion(
  path: string,
  opts?: DiffusionOptions & { config?: UNetPreset | (Partial<UNetConfig> & { preset?: UNetPreset }); strict?: boolean } & JobOptions,
): Promise<DiffusionModel> {
  if (typeof path !== 'string' || path.length === 0) throw invalidArgument('path must be a non-empty string');
  const c = opts?.config === undefined ? null : checkConfig(opts.config);
  const { device, dtype, channelsLast, autocast } = checkModelOptions(opts);
  if (opts?.strict !== undefined && typeof opts.strict !== 'boolean') throw invalidArgument('strict must be a boolean');
  const n = await runJob(opts, (j) => loadAddon().loadDiffusion(path, c, device, dtype, channelsLast, autocast, opts?.strict ?? true, j));
  const m = new DiffusionModel(n, autocast);
  m.source = resolvePath(path);
  return m;
}

/** The config object of a preset. */
export function diffusionPreset(name: UNetPreset): UNetConfig {
  checkConfig(name);
  return callNative(() => loadAddon().diffusionPreset(name));
}

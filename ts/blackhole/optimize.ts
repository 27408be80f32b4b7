/**
 * The `optimize` absorption (docs/METHOD.md step 8): ĥ = h_r + δ optimised with Adam on
 *
 *   L = λ_id·max(0, cos(E(Dec(ĥ)), f_r) − τ_m) + μ·min_k ‖ĥ − h_k‖² / ‖h_r‖²     (L_wrapper)
 *     + λ_sem·(MSE(Dec(ĥ), Dec(h_r)) + λ_perc·L_perc(Dec(ĥ), Dec(h_r)))           (L_sem)
 *
 * where Dec is the DDIM decoding from x_lat (η = 0) with ĥ injected in the chosen mode and h_k are
 * the K wrap codes. ∂L/∂ĥ is computed in C++ through E and Dec: `full` backpropagates through every
 * decoding step with gradient checkpointing (one step's activations in memory), `one-step` through
 * Asyrp's one-step prediction x̂0 at t0 (one UNet call; much cheaper, less faithful).
 */
import { DiffusionModel, INJECT_MODES, type InjectMode } from '../diffusion';
import { invalidArgument } from '../errors';
import type { Backprop } from '../erase/types';
import { IdentityEncoder, INPUT_PROTOCOLS, type InputProtocol } from '../identity';
import { runJob, type JobOptions } from '../jobs';
import { tensorHandle } from '../model';
import { loadAddon, type NativeAbsorbOptions, type NativeAbsorbTensors } from '../native';
import { checkInt } from '../options';
import { PerceptualModel } from '../perceptual';
import { Tensor } from '../tensor';

export type { Backprop };

export const BACKPROPS: readonly Backprop[] = ['full', 'one-step'];

/** What the absorption works on (all from earlier steps of the pipeline). */
export interface AbsorbLatents {
  /** x at t0 from the inversion, [1, 3, H, W]. */
  xLat: Tensor;
  /** h_r, [1, C, h, w]. */
  hR: Tensor;
  /** The reference identity embedding f_r = E(x_r), [1, D]. */
  fR: Tensor;
  /** The wrap set h_k, [K, C, h, w], K ≥ 1. */
  wrap: Tensor;
  /** The unit direction out of the black hole, [C, h, w] or [1, C, h, w] (needed when startDistance > 0). */
  dq?: Tensor;
}

export interface AbsorbLossOptions extends JobOptions {
  /** How ĥ reaches the decoder (default 'asyrp'); decoding is deterministic (η = 0) in every mode. */
  mode?: InjectMode;
  /** Decoding depth and timesteps (defaults 500 and 40), as in the inversion. */
  t0?: number;
  steps?: number;
  /** every-step / asyrp: inject while t ≥ tEdit (default 0; must not exceed t0). */
  tEdit?: number;
  /** Backpropagate through every decoding step ('full', default) or through x̂0 at t0 ('one-step'). */
  backprop?: Backprop;
  /** τ_m of the identity hinge (default 0.25). */
  tauM?: number;
  /** μ of the pull towards the nearest wrap code (default 1). */
  mu?: number;
  /** λ_id on the identity hinge (default 1). */
  lambdaId?: number;
  /** λ_sem on L_sem (default 1). */
  lambdaSem?: number;
  /** λ_perc inside L_sem (default 0.5). */
  lambdaPerc?: number;
  /** Identity-encoder input protocol (default 'bia': 256² images; use 'resize' for other sizes). */
  protocol?: InputProtocol;
  /**
   * VGG16 for L_perc (loadPerceptual). Without it (null, the default) L_perc is the weight-free
   * substitute (1 − SSIM) + image-gradient L1; the result names which was used.
   */
  perceptual?: PerceptualModel | null;
  /** @internal Tests: false backpropagates through the unrolled decode in one graph (default true). */
  checkpoint?: boolean;
  /** @internal Tests: run float64 copies of both networks (default false). */
  float64?: boolean;
}

/** The terms of L at one ĥ. */
export interface AbsorbTerms {
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

export interface AbsorbLoss extends AbsorbTerms {
  /** ∂L/∂ĥ, shaped like ĥ (float32). */
  grad: Tensor;
  /** The L_perc used. */
  perceptual: string;
  backprop: Backprop;
}

export interface OptimizeAbsorptionOptions extends AbsorbLossOptions {
  /** Evaluations of L and ∂L/∂ĥ, with an Adam step between consecutive ones (default 50). */
  iterations?: number;
  /**
   * Adam's learning rate relative to h_r (default 0.01): each coordinate moves by about
   * lr·‖h_r‖/√numel per iteration, so ĥ moves by at most about lr·‖h_r‖ per iteration in norm.
   */
  lr?: number;
  /** Start at ĥ0 = h_r + startDistance·dq/‖dq‖ (absolute, default 0: start at h_r). */
  startDistance?: number;
}

export interface AbsorbHistory {
  loss: Float64Array;
  sim: Float64Array;
  wrapper: Float64Array;
  pull: Float64Array;
  sem: Float64Array;
  mse: Float64Array;
  perc: Float64Array;
}

export interface Absorption {
  /** The evaluated ĥ of lowest L, [1, C, h, w] float32. */
  h: Tensor;
  /** Dec(h) with the full decode (also after one-step optimisation), [1, 3, H, W]. */
  image: Tensor;
  /** Per evaluation, in order. */
  history: AbsorbHistory;
  /** Index into history of `h`. */
  best: number;
  /** Evaluations done (= options.iterations unless L became non-finite). */
  iterations: number;
  perceptual: string;
  backprop: Backprop;
  /** The absolute Adam learning rate used (lr·‖h_r‖/√numel). */
  lr: number;
  /** Release h and image. */
  dispose(): void;
}

function checkNumber(v: unknown, what: string, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max) {
    throw invalidArgument(`${what} must be a finite number in [${min}, ${max}], got ${JSON.stringify(v)}`);
  }
  return v;
}

function checkBool(v: unknown, what: string): boolean | undefined {
  if (v !== undefined && typeof v !== 'boolean') throw invalidArgument(`${what} must be a boolean`);
  return v as boolean | undefined;
}

function checkModels(diffusion: unknown, encoder: unknown): void {
  if (!(diffusion instanceof DiffusionModel)) throw invalidArgument('diffusion must be a DiffusionModel');
  if (!(encoder instanceof IdentityEncoder)) throw invalidArgument('encoder must be an IdentityEncoder');
}

function checkLatents(latents: unknown, needDq: boolean): NativeAbsorbTensors {
  if (typeof latents !== 'object' || latents === null) throw invalidArgument('latents must be an object {xLat, hR, fR, wrap, dq?}');
  const l = latents as Partial<AbsorbLatents>;
  const out: NativeAbsorbTensors = {
    xLat: tensorHandle(l.xLat, 'xLat'),
    hR: tensorHandle(l.hR, 'hR'),
    fR: tensorHandle(l.fR, 'fR'),
    wrap: tensorHandle(l.wrap, 'wrap'),
  };
  if (l.dq !== undefined && l.dq !== null) out.dq = tensorHandle(l.dq, 'dq');
  else if (needDq) throw invalidArgument('startDistance > 0 needs latents.dq (the unit direction out of the black hole)');
  const wrapShape = out.wrap.shape;
  if (wrapShape.length !== 4 || wrapShape[0] < 1) throw invalidArgument(`wrap must be [K, C, h, w] with K >= 1, got ${JSON.stringify(wrapShape)}`);
  return out;
}

function checkLossOptions(opts: AbsorbLossOptions | undefined): NativeAbsorbOptions {
  if (opts !== undefined && (typeof opts !== 'object' || opts === null)) throw invalidArgument('options must be an object');
  const mode = opts?.mode ?? 'asyrp';
  if (!INJECT_MODES.includes(mode)) throw invalidArgument(`mode must be one of ${INJECT_MODES.join(', ')}; got ${JSON.stringify(mode)}`);
  const backprop = opts?.backprop ?? 'full';
  if (!BACKPROPS.includes(backprop)) throw invalidArgument(`backprop must be one of ${BACKPROPS.join(', ')}; got ${JSON.stringify(backprop)}`);
  const protocol = opts?.protocol ?? 'bia';
  if (!INPUT_PROTOCOLS.includes(protocol)) throw invalidArgument(`protocol must be one of ${INPUT_PROTOCOLS.join(', ')}; got ${JSON.stringify(protocol)}`);
  const t0 = checkInt(opts?.t0 ?? 500, 't0', 1, 999);
  const steps = checkInt(opts?.steps ?? 40, 'steps', 2, t0 + 1);
  const tEdit = checkInt(opts?.tEdit ?? 0, 'tEdit', 0, 999);
  if ((mode === 'every-step' || mode === 'asyrp') && tEdit > t0) throw invalidArgument(`tEdit (${tEdit}) is above t0 (${t0}): mode '${mode}' would never inject ĥ`);
  if (opts?.perceptual !== undefined && opts.perceptual !== null && !(opts.perceptual instanceof PerceptualModel)) {
    throw invalidArgument('perceptual must be a PerceptualModel (loadPerceptual / createPerceptual) or null');
  }
  return {
    mode,
    t0,
    steps,
    tEdit,
    backprop,
    protocol,
    tauM: checkNumber(opts?.tauM ?? 0.25, 'tauM', -1, 1),
    mu: checkNumber(opts?.mu ?? 1, 'mu', 0, 1e12),
    lambdaId: checkNumber(opts?.lambdaId ?? 1, 'lambdaId', 0, 1e12),
    lambdaSem: checkNumber(opts?.lambdaSem ?? 1, 'lambdaSem', 0, 1e12),
    lambdaPerc: checkNumber(opts?.lambdaPerc ?? 0.5, 'lambdaPerc', 0, 1e12),
    checkpoint: checkBool(opts?.checkpoint, 'checkpoint'),
    float64: checkBool(opts?.float64, 'float64'),
  };
}

/** L and ∂L/∂ĥ at one ĥ ([1, C, h, w] or [C, h, w]): for tests and for callers driving their own optimiser. */
export async function absorbLoss(
  diffusion: DiffusionModel,
  encoder: IdentityEncoder,
  latents: AbsorbLatents,
  hHat: Tensor,
  opts?: AbsorbLossOptions,
): Promise<AbsorbLoss> {
  checkModels(diffusion, encoder);
  const options = checkLossOptions(opts);
  const tensors = checkLatents(latents, false);
  const h = tensorHandle(hHat, 'hHat');
  const [d, e] = [diffusion.native, encoder.native];
  const p = opts?.perceptual ? opts.perceptual.native : null;
  const r = await runJob(opts, (j) => loadAddon().absorbLoss(d, e, p, tensors, options, h, j));
  return { ...r, grad: new Tensor(r.grad) };
}

/**
 * Optimise ĥ with Adam from h_r + startDistance·dq, keeping the evaluated ĥ of lowest L; returns
 * it with its full-decode image and the per-iteration history. Progress: stage 'absorb', one event
 * per iteration (value: that iteration's L). Abort stops between iterations and between decoding
 * steps.
 */
export async function optimizeAbsorption(
  diffusion: DiffusionModel,
  encoder: IdentityEncoder,
  latents: AbsorbLatents,
  opts?: OptimizeAbsorptionOptions,
): Promise<Absorption> {
  checkModels(diffusion, encoder);
  const options = checkLossOptions(opts);
  options.iterations = checkInt(opts?.iterations ?? 50, 'iterations', 1, 1_000_000);
  options.lr = checkNumber(opts?.lr ?? 0.01, 'lr', Number.MIN_VALUE, 1e6);
  options.startDistance = checkNumber(opts?.startDistance ?? 0, 'startDistance', 0, Number.MAX_VALUE);
  const tensors = checkLatents(latents, options.startDistance > 0);
  const [d, e] = [diffusion.native, encoder.native];
  const p = opts?.perceptual ? opts.perceptual.native : null;
  const r = await runJob(opts, (j) => loadAddon().absorbOptimize(d, e, p, tensors, options, j));
  const h = new Tensor(r.h);
  const image = new Tensor(r.image);
  return {
    h,
    image,
    history: r.history,
    best: r.best,
    iterations: r.iterations,
    perceptual: r.perceptual,
    backprop: r.backprop,
    lr: r.lr,
    dispose() {
      h.dispose();
      image.dispose();
    },
  };
}

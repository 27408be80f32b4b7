/**
 * Absorption (docs/method.md, step 8): moving h_r out of its black hole.
 *
 * Three modes run on a formed black hole (absorbIdentity):
 *   walk     — the released code's validated stepping of h_r and of every wrap point along the normal
 *   line     — h_r along the normal to evenly spaced distances, keeping the shortest move that erases
 *   optimize — Adam on ĥ with the loss below, its gradient computed in C++ (absorbOptimize)
 *
 * The `optimize` loss: ĥ = h_r + δ minimises
 *
 *   L = λ_id·max(0, cos(E(Dec(ĥ)), f_r) − τ_m) + μ·min_k ‖ĥ − h_k‖² / ‖h_r‖²     (L_wrapper)
 *     + λ_sem·(MSE(Dec(ĥ), Dec(h_r)) + λ_perc·L_perc(Dec(ĥ), Dec(h_r)))           (L_sem)
 *
 * where Dec is the DDIM decoding from x_lat (η = 0) with ĥ injected in the chosen mode and h_k are
 * the K wrap codes. ∂L/∂ĥ is computed in C++ through E and Dec: `full` backpropagates through every
 * decoding step with gradient checkpointing (one step's activations in memory), `one-step` through
 * Asyrp's one-step prediction x̂0 at t0 (one UNet call; much cheaper, less faithful). absorbLoss and
 * absorbOptimize are the TypeScript face of the addon's functions of the same names.
 */
import { offsetCodes, takeRows } from '../blackhole/codes';
import { gram, prng, signedDistance } from '../blackhole/svm';
import { DiffusionModel, INJECT_MODES, type InjectMode } from '../diffusion';
import { invalidArgument } from '../errors';
import { IdentityEncoder, INPUT_PROTOCOLS, type InputProtocol } from '../identity';
import { runJob, type JobOptions, type ProgressEvent } from '../jobs';
import { tensorHandle } from '../model';
import { loadAddon, type NativeAbsorbHistory, type NativeAbsorbOptions, type NativeAbsorbTensors, type NativeAbsorbTerms } from '../native';
import { checkInt } from '../options';
import { PerceptualModel } from '../perceptual';
import { Tensor } from '../tensor';
import { splitCall, type EraseCall, type EraseModels } from './call';
import type { BlackHole } from './form';
import { decodeOptions, identitySimilarity, semanticLoss } from './measure';
import type { ResolvedEraseOptions } from './options';
import { StageClock } from './progress';
import { Scope } from './scope';
import type { AbsorbLossWeights, AbsorbMode, Backprop, Candidate } from './types';

// ---------------------------------------------------------------------------------------------------
// the addon's absorption: L and its gradient, and the Adam loop on ĥ

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

export interface AbsorbLossOptions extends JobOptions, AbsorbLossWeights {
  /** How ĥ reaches the decoder (default 'asyrp'); decoding is deterministic (η = 0) in every mode. */
  mode?: InjectMode;
  /** Decoding depth and timesteps (defaults 500 and 40), as in the inversion. */
  t0?: number;
  steps?: number;
  /** every-step / asyrp: inject while t ≥ tEdit (default 0; must not exceed t0). */
  tEdit?: number;
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

/** The terms of L at one ĥ (ts/native.ts documents each). */
export type AbsorbTerms = NativeAbsorbTerms;

export interface AbsorbLoss extends AbsorbTerms {
  /** ∂L/∂ĥ, shaped like ĥ (float32). */
  grad: Tensor;
  /** The L_perc used. */
  perceptual: string;
  backprop: Backprop;
}

export interface AbsorbOptimizeOptions extends AbsorbLossOptions {
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

/** Each term of L per evaluation, in order. */
export type AbsorbHistory = NativeAbsorbHistory;

/** What absorbOptimize returns. */
export interface OptimizedAbsorption {
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
export async function absorbOptimize(
  diffusion: DiffusionModel,
  encoder: IdentityEncoder,
  latents: AbsorbLatents,
  opts?: AbsorbOptimizeOptions,
): Promise<OptimizedAbsorption> {
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

// ---------------------------------------------------------------------------------------------------
// the modes, on a formed black hole

/** The outcome of step 8 on a black hole: its candidates (decoded and measured) and the chosen one. */
export interface Absorption extends Disposable {
  candidates: Candidate[];
  /** [N, C, H, W] codes and [N, 3, H, W] images of the candidates. */
  codes: Tensor;
  images: Tensor;
  chosen: number;
  mode: AbsorbMode;
  backprop?: 'full' | 'one-step';
  losses?: { loss: number[]; similarity: number[]; wrapper: number[]; sem: number[] };
  dispose(): void;
}

function chooseCandidate(c: Candidate[]): number {
  const pool = c.some((x) => x.accepted) ? c.filter((x) => x.accepted) : c;
  const best = c.some((x) => x.accepted)
    ? pool.reduce((a, b) => (b.similarity < a.similarity || (b.similarity === a.similarity && b.sem < a.sem) ? b : a))
    : pool.reduce((a, b) => (b.fidelity < a.fidelity ? b : a));
  return c.indexOf(best);
}

/** Fill similarity, sem, distance and signed distance of candidates from their codes and images. */
async function measureCandidates(bh: BlackHole, models: EraseModels, codes: Tensor, images: Tensor, o: ResolvedEraseOptions, job: JobOptions): Promise<{ similarity: Float64Array; sem: Float64Array; distance: Float64Array; signed: (number | null)[] }> {
  const scope = new Scope();
  try {
    const similarity = await identitySimilarity(models.encoder, images, bh.fR, o, job);
    const { sem } = await semanticLoss(images, bh.reconstruction, o, models, job);
    const n = codes.shape[0];
    const diffs = scope.add(await offsetCodes(codes, { direction: bh.hR, steps: new Float64Array(n).fill(-1), signal: job.signal }));
    const g = await scope.add(await gram(diffs, job)).data();
    const distance = Float64Array.from({ length: n }, (_, i) => Math.sqrt(Math.max(0, g[i * n + i])) / bh.hNorm);
    const signed: (number | null)[] = bh.boundary ? Array.from(await signedDistance(codes, bh.boundary.w, bh.boundary.b, job)) : Array.from({ length: n }, () => null);
    return { similarity, sem, distance, signed };
  } finally {
    scope.dispose();
  }
}

/**
 * `walk` (the released code's validated stepping, docs/method.md step 8) applied to h_r and to every wrap
 * point h_k: Δ ~ U[walkStep] (absolute, or relative to ‖h_r‖); h' = h + step·dq; accept when
 * L_fid = MSE + λ_perc·L_perc against the point's own decoding is below fidelityThreshold, else halve
 * the step, up to walkTrials trials. h_r's first step is |s(h_r)| + Δ, so it leaves the black hole.
 */
async function walk(bh: BlackHole, models: EraseModels, o: ResolvedEraseOptions, job: JobOptions, clock: StageClock): Promise<Absorption> {
  if (!bh.boundary) throw invalidArgument('walk absorption needs a boundary; this image has none (use absorb: "optimize")');
  const { diffusion } = models;
  const scope = new Scope();
  try {
    const K = bh.wrap.indices.length;
    const n = K + 1;
    const unit = o.walkStepUnit === 'relative' ? bh.hNorm : 1;
    const rand = prng(o.seed + 1);
    const deltas = Array.from({ length: n }, () => (o.walkStep[0] + (o.walkStep[1] - o.walkStep[0]) * rand()) * unit);
    const first = deltas.map((d, i) => (i === 0 ? Math.abs(bh.boundary!.sR) + d : d));
    const base = scope.add(await takeRows([bh.hR, bh.wrap.codes], [[0, 0], ...bh.wrap.indices.map((_, k) => [1, k] as [number, number])], job));
    // What each point decodes to before its step. Dec(h_r) is the reconstruction's counterpart in the injection
    // mode, and the reconstruction itself where injecting h_r changes nothing (never decoded twice).
    const before = scope.add(
      injectsNothingAtHr(o)
        ? await takeRows([bh.reconstruction, scope.add(await diffusion.decode(bh.xLat, bh.wrap.codes, decodeOptions(o, bh.hR, job)))], [[0, 0], ...bh.wrap.indices.map((_, k) => [1, k] as [number, number])], job)
        : await diffusion.decode(bh.xLat, base, decodeOptions(o, bh.hR, job)),
    );
    const state = Array.from({ length: n }, (_, i) => ({ step: first[i], trials: 0, fid: Infinity, accepted: false, pick: [0, 0] as [number, number] }));
    const codeParts: Tensor[] = [];
    const imageParts: Tensor[] = [];
    let pending = Array.from({ length: n }, (_, i) => i);
    for (let trial = 0; trial < o.walkTrials && pending.length > 0; trial++) {
      clock.emit(trial, o.walkTrials, `trial ${trial + 1}: ${pending.length} point(s)`);
      const codes = scope.add(await offsetCodes(base, { rows: pending, direction: bh.boundary.dq, steps: pending.map((i) => state[i].step), signal: job.signal }));
      const images = scope.add(await diffusion.decode(bh.xLat, codes, decodeOptions(o, bh.hR, job)));
      const refs = scope.add(await takeRows([before], pending.map((i) => [0, i] as [number, number]), job));
      const { sem: fid } = await semanticLoss(images, refs, o, models, job);
      codeParts.push(codes);
      imageParts.push(images);
      const next: number[] = [];
      pending.forEach((i, row) => {
        const s = state[i];
        s.trials = trial + 1;
        s.fid = fid[row];
        s.pick = [codeParts.length - 1, row];
        if (fid[row] < o.fidelityThreshold) s.accepted = true;
        else {
          s.step /= 2;
          next.push(i);
        }
      });
      pending = next;
    }
    const picks = state.map((s) => s.pick);
    const codes = await takeRows(codeParts, picks, job);
    const images = await takeRows(imageParts, picks, job);
    try {
      const m = await measureCandidates(bh, models, codes, images, o, job);
      const candidates: Candidate[] = state.map((s, i) => ({
        from: i === 0 ? 'source' : bh.wrap.indices[i - 1],
        distance: m.distance[i],
        signedDistance: m.signed[i],
        similarity: m.similarity[i],
        sem: m.sem[i],
        fidelity: s.fid,
        accepted: s.accepted,
        trials: s.trials,
      }));
      return absorption(candidates, codes, images, 'walk');
    } catch (e) {
      codes.dispose();
      images.dispose();
      throw e;
    }
  } finally {
    scope.dispose();
  }
}

/**
 * Whether Dec(h) with h = h_r injected is the reconstruction itself: every-step and asyrp add Δh = h − h_r = 0,
 * and with η = 0 (no boosted steps with noise) the decoding is the reconstruction's, step for step.
 */
function injectsNothingAtHr(o: ResolvedEraseOptions): boolean {
  return (o.inject === 'every-step' || o.inject === 'asyrp') && o.eta === 0 && (o.tBoost === 0 || o.etaBoost === 0);
}

/**
 * `line`: h_r moved along dq to |s(h_r)| + Δ_j, Δ_j = walkStep[1]·j/lineSteps (j = 1 … lineSteps, in
 * walkStepUnit), decoded shortest first in batches of lineBatch (0: all in one). The chosen move is the
 * shortest whose similarity is below eraseTarget and whose L_fid against the reconstruction is below
 * fidelityThreshold; failing that, the accepted move with the lowest similarity (then the one with the
 * lowest L_fid). Decoding stops after the first batch holding a qualifying move: the shortest qualifying
 * move is then known, and the output is the one all distances would give.
 */
async function line(bh: BlackHole, models: EraseModels, o: ResolvedEraseOptions, job: JobOptions, clock: StageClock): Promise<Absorption> {
  if (!bh.boundary) throw invalidArgument('line absorption needs a boundary; this image has none (use absorb: "optimize")');
  const unit = o.walkStepUnit === 'relative' ? bh.hNorm : 1;
  const steps = Array.from({ length: o.lineSteps }, (_, j) => Math.abs(bh.boundary!.sR) + (o.walkStep[1] * (j + 1) * unit) / o.lineSteps);
  const per = o.lineBatch > 0 ? o.lineBatch : steps.length;
  const scope = new Scope();
  try {
    const candidates: Candidate[] = [];
    const codeParts: Tensor[] = [];
    const imageParts: Tensor[] = [];
    let first = -1;
    for (let start = 0; start < steps.length && first < 0; start += per) {
      const part = steps.slice(start, start + per);
      clock.emit(start, steps.length, `${part.length} distances along the normal (${start + 1}–${start + part.length} of ${steps.length})`);
      const codes = scope.add(await offsetCodes(bh.hR, { rows: part.map(() => 0), direction: bh.boundary.dq, steps: part, signal: job.signal }));
      const images = scope.add(await models.diffusion.decode(bh.xLat, codes, decodeOptions(o, bh.hR, job)));
      codeParts.push(codes);
      imageParts.push(images);
      const m = await measureCandidates(bh, models, codes, images, o, job);
      part.forEach((_, i) =>
        candidates.push({
          from: 'source',
          distance: m.distance[i],
          signedDistance: m.signed[i],
          similarity: m.similarity[i],
          sem: m.sem[i],
          fidelity: m.sem[i],
          accepted: m.sem[i] < o.fidelityThreshold,
          trials: 1,
        }),
      );
      first = candidates.findIndex((c) => c.accepted && c.similarity < o.eraseTarget);
    }
    const rows = (parts: Tensor[]) => parts.flatMap((p, i) => Array.from({ length: p.shape[0] }, (_, r) => [i, r] as [number, number]));
    const codes = codeParts.length === 1 ? scope.keep(codeParts[0]) : await takeRows(codeParts, rows(codeParts), job);
    let images: Tensor | null = null;
    try {
      images = imageParts.length === 1 ? scope.keep(imageParts[0]) : await takeRows(imageParts, rows(imageParts), job);
      return absorption(candidates, codes, images, 'line', first >= 0 ? { chosen: first } : {});
    } catch (e) {
      codes.dispose();
      images?.dispose();
      throw e;
    }
  } finally {
    scope.dispose();
  }
}

function absorption(candidates: Candidate[], codes: Tensor, images: Tensor, mode: AbsorbMode, extra: Partial<Absorption> = {}): Absorption {
  return {
    candidates,
    codes,
    images,
    chosen: chooseCandidate(candidates),
    mode,
    ...extra,
    dispose() {
      codes.dispose();
      images.dispose();
    },
    [Symbol.dispose]() {
      this.dispose();
    },
  };
}

/**
 * `optimize` (docs/method.md step 8): Adam on ĥ_r with L_wrapper + λ_sem·L_sem, backpropagated in C++
 * through the decoder and the identity encoder, starting startMargin·‖h_r‖ beyond the boundary (at h_r
 * when there is none).
 */
async function optimize(bh: BlackHole, models: EraseModels, o: ResolvedEraseOptions, job: JobOptions, clock: StageClock): Promise<Absorption> {
  const startDistance = bh.boundary ? Math.abs(bh.boundary.sR) + o.startMargin * bh.hNorm : 0;
  const r = await absorbOptimize(models.diffusion, models.encoder, { xLat: bh.xLat, hR: bh.hR, fR: bh.fR, wrap: bh.wrap.codes, dq: bh.boundary?.dq }, {
    perceptual: models.perceptual,
    mode: o.inject,
    t0: o.t0,
    steps: o.steps,
    tEdit: o.tEdit,
    backprop: o.backprop,
    tauM: o.tauM,
    mu: o.mu,
    lambdaId: o.lambdaId,
    lambdaSem: o.lambdaSem,
    lambdaPerc: o.lambdaPerc,
    protocol: o.protocol,
    iterations: o.iterations,
    lr: o.lr,
    startDistance,
    signal: job.signal,
    onProgress: (ev: ProgressEvent) => clock.emit(ev.step, ev.total, ev.stage),
  });
  try {
    const m = await measureCandidates(bh, models, r.h, r.image, o, job);
    const candidates: Candidate[] = [
      {
        from: 'source',
        distance: m.distance[0],
        signedDistance: m.signed[0],
        similarity: m.similarity[0],
        sem: m.sem[0],
        fidelity: r.history.loss[r.best],
        accepted: true,
      },
    ];
    return absorption(candidates, r.h, r.image, 'optimize', {
      backprop: o.backprop,
      losses: { loss: Array.from(r.history.loss), similarity: Array.from(r.history.sim), wrapper: Array.from(r.history.wrapper), sem: Array.from(r.history.sem) },
    });
  } catch (e) {
    r.h.dispose();
    r.image.dispose();
    throw e;
  }
}

/** Step 8 on a formed black hole: `walk` or `optimize` (always `optimize` when there is no boundary). */
export async function absorbIdentity(bh: BlackHole, call: EraseCall, clock = new StageClock(call.onStage, call.onProgress)): Promise<Absorption> {
  const { models, options, job } = splitCall(call);
  const o = { ...options, ...pickFormation(bh.options) };
  clock.begin('absorb');
  const r = !bh.found || o.absorb === 'optimize' ? await optimize(bh, models, o, job, clock) : o.absorb === 'line' ? await line(bh, models, o, job, clock) : await walk(bh, models, o, job, clock);
  clock.end();
  return r;
}

/** Decoding options must match the formation's (the latent, h_r and the labels were made with them). */
function pickFormation(f: ResolvedEraseOptions): Partial<ResolvedEraseOptions> {
  return { t0: f.t0, steps: f.steps, protocol: f.protocol };
}

/**
 * The BIA erase job (docs/METHOD.md steps 1–9) as stage functions and one call:
 *   formBlackHole  — invert, neighbours (calibrated α_max), labels, SVM boundary, orientation, wrap set
 *   absorbIdentity — `walk` (the released code's validated stepping) or `optimize` (Adam on ĥ_r, C++ backprop)
 *   walkBaseline   — the paper's baseline: the same length along a random direction
 *   eraseIdentity  — all of it, plus evaluation, returning images and an EraseReport
 * Tensors stay native; JS sees the Gram matrix, SVM coefficients and per-image numbers only.
 */
import { createHash } from 'node:crypto';
import { createReadStream, statSync } from 'node:fs';
import { fitBoundary, gram, orient, prng, signedDistance, wrapSet, type Boundary } from '../blackhole/svm';
import { manifoldTargets, tryFormNeighbourhood } from '../blackhole/neighbours';
import { offsetCodes, randomDirection, takeRows } from '../blackhole/codes';
import { optimizeAbsorption } from '../blackhole/optimize';
import type { DiffusionModel } from '../diffusion';
import { BiaError, invalidArgument } from '../errors';
import type { IdentityEncoder } from '../identity';
import { similarity } from '../identity';
import type { JobOptions, ProgressEvent } from '../jobs';
import { imageLosses, PERCEPTUAL_SUBSTITUTE } from '../losses';
import type { PerceptualModel } from '../perceptual';
import { Tensor } from '../tensor';
import { VERSION } from '../version';
import { matchSimilarity, type MatchedBaseline } from './degenerate';
import { resolveEraseOptions, type ResolvedEraseOptions } from './options';
import { StageClock } from './progress';
import type { AbsorbMode, Candidate, DegenerateBaseline, EraseOptions, EraseProgress, EraseReport, EraseResult } from './types';

export interface EraseModels {
  diffusion: DiffusionModel;
  encoder: IdentityEncoder;
  /** An independent recognizer for the report's second SID (never used in a loss). */
  secondEncoder?: IdentityEncoder;
  /** VGG16 for L_perc; without it the weight-free substitute is used (and named in the report). */
  perceptual?: PerceptualModel;
  /**
   * neighbourMode 'others': photos of other people [N, 3, H, W] at the model's resolution, in [-1, 1]; their
   * inverted h give the neighbours' directions (u_j = unit(h_{j mod N} − h_r)).
   */
  others?: Tensor;
}

export interface EraseCall extends EraseOptions, EraseModels {
  /** Name of the input in the report (default 'input'). */
  inputName?: string;
  /** sha256 of the input file (default: of the image tensor's bytes). */
  inputSha256?: string;
  /** Stage-level progress (stage, step/total, overall fraction). */
  onStage?: (p: EraseProgress) => void;
  /** Also return the formed black hole (result.blackHole; disposed with the result), e.g. to walk it further. */
  keepBlackHole?: boolean;
}

const MODEL_KEYS = ['diffusion', 'encoder', 'secondEncoder', 'perceptual', 'others', 'inputName', 'inputSha256', 'onStage', 'keepBlackHole'] as const;

/** A formed black hole: everything absorption needs, reusable (saveBlackHole / loadBlackHole). */
export interface BlackHole extends Disposable {
  /** x at t0 and h_r from the inversion, f_r = E(x_r), the DDIM reconstruction Dec(h_r). */
  xLat: Tensor;
  hR: Tensor;
  fR: Tensor;
  reconstruction: Tensor;
  hNorm: number;
  reconstructionSimilarity: number;
  /** false: "no boundary" (no α_max gave both classes); absorption then runs in `optimize` mode. */
  found: boolean;
  message?: string;
  alphaMax: number;
  rounds: { alphaMax: number; share: number }[];
  /** The neighbours of the kept round: labels, similarities, absolute step lengths. */
  labels: Uint8Array;
  similarities: Float64Array;
  /** The boundary (when found): unit normal direction dq out of the black hole and s(h_r). */
  boundary: {
    w: Tensor;
    b: number;
    dq: Tensor;
    sR: number;
    trainAccuracy: number;
    heldOutAccuracy: number | null;
    majorityRate: number;
    margin: number;
    supportVectors: number;
  } | null;
  /** The wrap set: K codes nearest the boundary (label 0 first); without a boundary, the K least similar. */
  wrap: { codes: Tensor; indices: number[]; labels: number[]; distances: (number | null)[] };
  options: ResolvedEraseOptions;
  dispose(): void;
}

/** Tensors created by a stage, disposed together unless kept. */
class Scope {
  readonly #items: Tensor[] = [];
  add(t: Tensor): Tensor {
    this.#items.push(t);
    return t;
  }
  keep(t: Tensor): Tensor {
    const i = this.#items.indexOf(t);
    if (i >= 0) this.#items.splice(i, 1);
    return t;
  }
  dispose(): void {
    for (const t of this.#items.splice(0)) t.dispose();
  }
}

function splitCall(call: EraseCall): { models: EraseModels; options: ResolvedEraseOptions; job: JobOptions } {
  if (call === null || typeof call !== 'object') throw invalidArgument('eraseIdentity needs {diffusion, encoder, ...options}');
  const { diffusion, encoder, secondEncoder, perceptual, others } = call;
  if (!diffusion || typeof diffusion.decode !== 'function') throw invalidArgument('diffusion must be a DiffusionModel (loadDiffusion / createDiffusion)');
  if (!encoder || typeof encoder.embed !== 'function') throw invalidArgument('encoder must be an IdentityEncoder (loadIdentityEncoder / createIdentityEncoder)');
  if (secondEncoder !== undefined && typeof secondEncoder?.embed !== 'function') throw invalidArgument('secondEncoder must be an IdentityEncoder');
  if (perceptual !== undefined && typeof perceptual?.distance !== 'function') throw invalidArgument('perceptual must be a PerceptualModel (loadPerceptual)');
  const options = resolveEraseOptions(call, MODEL_KEYS);
  if (options.neighbourMode === 'others') {
    const c = diffusion.config;
    if (!(others instanceof Tensor) || others.shape.length !== 4 || others.shape[0] < 1 || others.shape.slice(1).join() !== [c.inChannels, c.resolution, c.resolution].join()) {
      throw invalidArgument(`neighbourMode 'others' needs others: photos of other people [N, ${c.inChannels}, ${c.resolution}, ${c.resolution}], got ${others instanceof Tensor ? JSON.stringify(others.shape) : typeof others}`);
    }
  } else if (others !== undefined && !(others instanceof Tensor)) throw invalidArgument('others must be a Tensor [N, 3, H, W]');
  return { models: { diffusion, encoder, secondEncoder, perceptual, others }, options, job: { signal: call.signal } };
}

function checkImage(image: unknown, diffusion: DiffusionModel): Tensor {
  if (!(image instanceof Tensor)) throw invalidArgument('image must be a Tensor [1, 3, H, W] in [-1, 1] (readImage gives one)');
  const c = diffusion.config;
  const want = [1, c.inChannels, c.resolution, c.resolution];
  if (image.shape.join() !== want.join()) {
    throw invalidArgument(`image must be one image of shape ${JSON.stringify(want)} (the diffusion model's resolution), got ${JSON.stringify(image.shape)}`);
  }
  return image;
}

async function sims(encoder: IdentityEncoder, images: Tensor, fR: Tensor, o: ResolvedEraseOptions, job: JobOptions): Promise<Float64Array> {
  const e = await encoder.embed(images, { protocol: o.protocol, signal: job.signal });
  try {
    const s = await similarity(e, fR, { signal: job.signal });
    try {
      const out = Float64Array.from(await s.data());
      if (out.some((v) => !Number.isFinite(v))) throw new BiaError('BIA_NATIVE_ERROR', 'an identity similarity is NaN (a decoded image is not finite)');
      return out;
    } finally {
      s.dispose();
    }
  } finally {
    e.dispose();
  }
}

/** L_sem / L_fid per image: MSE + λ_perc·L_perc against `ref` (one image, or one per image). */
async function semantic(images: Tensor, ref: Tensor, o: ResolvedEraseOptions, models: EraseModels, job: JobOptions): Promise<{ sem: Float64Array; mse: Float64Array; ssim: Float64Array }> {
  const l = await imageLosses(images, ref, { ...job, perceptual: models.perceptual });
  return { sem: l.mse.map((m, i) => m + o.lambdaPerc * l.perceptual[i]), mse: l.mse, ssim: l.ssim };
}

function decodeOptions(o: ResolvedEraseOptions, hR: Tensor, job: JobOptions, onProgress?: JobOptions['onProgress']) {
  return { mode: o.inject, eta: o.eta, t0: o.t0, steps: o.steps, tEdit: o.tEdit, tBoost: o.tBoost, etaBoost: o.etaBoost, seed: o.seed, hRef: hR, batchSize: o.batchSize, signal: job.signal, onProgress };
}

/** The h of the other people's photos, inverted exactly as x_r (the last inversion call's h). */
async function othersTargets(diffusion: DiffusionModel, others: Tensor, o: ResolvedEraseOptions, job: JobOptions, onProgress: JobOptions['onProgress'], scope: Scope): Promise<Tensor> {
  const inv = await diffusion.invert(others, { t0: o.t0, steps: o.steps, signal: job.signal, onProgress });
  inv.xLat.dispose();
  return scope.add(inv.hR);
}

/**
 * METHOD.md steps 1–7 for one image [1, 3, H, W] in [-1, 1]: inversion, f_r, neighbours with α_max
 * calibration, labels, SVM boundary (precomputed float64 Gram, exact b), orientation, wrap set.
 * "No boundary" is not an error: found = false, and the wrap set is the K least similar neighbours.
 */
export async function formBlackHole(image: Tensor, call: EraseCall, clock = new StageClock(call.onStage, call.onProgress)): Promise<BlackHole> {
  const { models, options: o, job } = splitCall(call);
  const { diffusion, encoder } = models;
  checkImage(image, diffusion);
  const scope = new Scope();
  let boundary: Boundary | null = null;
  try {
    clock.begin('invert');
    const invertProgress = clock.sub(2);
    const inv = await diffusion.invert(image, { t0: o.t0, steps: o.steps, signal: job.signal, onProgress: invertProgress });
    const xLat = scope.add(inv.xLat);
    const hR = scope.add(inv.hR);
    const reconstruction = scope.add(await diffusion.decode(xLat, null, { t0: o.t0, steps: o.steps, eta: 0, signal: job.signal, onProgress: invertProgress }));
    const fR = scope.add(await encoder.embed(image, { protocol: o.protocol, signal: job.signal }));
    const [reconstructionSimilarity] = await sims(encoder, reconstruction, fR, o, job);
    const g = scope.add(await gram(hR, job));
    const hNorm = Math.sqrt((await g.data())[0]);

    clock.begin('neighbours');
    const neighbourProgress = clock.sub((o.neighbourMode === 'manifold' ? 2 : o.neighbourMode === 'others' ? 1 : 0) + o.calibrationRounds);
    const targets =
      o.neighbourMode === 'manifold'
        ? scope.add(await manifoldTargets(diffusion, { pool: Math.min(o.neighbours, o.manifoldPool), t0: o.t0, steps: o.steps, seed: o.seed, batchSize: o.batchSize, signal: job.signal, onProgress: neighbourProgress }))
        : o.neighbourMode === 'others'
          ? await othersTargets(diffusion, models.others!, o, job, neighbourProgress, scope)
          : undefined;
    const nb = await tryFormNeighbourhood(diffusion, encoder, { xLat, hR, fR }, {
      n: o.neighbours,
      alphaMax: o.alphaMax,
      seed: o.seed,
      targets,
      mode: o.inject,
      eta: o.eta,
      t0: o.t0,
      steps: o.steps,
      tEdit: o.tEdit,
      threshold: o.threshold,
      protocol: o.protocol,
      batchSize: o.batchSize,
      shareRange: o.shareRange,
      maxRounds: o.calibrationRounds,
      signal: job.signal,
      onProgress: neighbourProgress,
    });
    const codes = scope.add(nb.codes);

    clock.begin('boundary');
    let wrapIdx: number[];
    let wrapDist: (number | null)[];
    let bh: BlackHole['boundary'] = null;
    if (nb.found) {
      boundary = await fitBoundary(codes, nb.labels as ArrayLike<0 | 1>, { C: o.C, holdout: o.holdout, seed: o.seed, signal: job.signal });
      const or = await orient(boundary, hR, job);
      const ws = await wrapSet(codes, nb.labels as ArrayLike<0 | 1>, boundary, { k: o.wrapSize, signal: job.signal });
      wrapIdx = ws.indices;
      wrapDist = ws.distances;
      bh = {
        w: boundary.w,
        b: boundary.b,
        dq: or.dq,
        sR: or.sR,
        trainAccuracy: boundary.trainAccuracy,
        heldOutAccuracy: boundary.heldOutAccuracy,
        majorityRate: boundary.majorityRate,
        margin: boundary.margin,
        supportVectors: boundary.supportVectors,
      };
    } else {
      const order = Array.from(nb.similarities.keys()).sort((a, b) => nb.similarities[a] - nb.similarities[b] || a - b);
      wrapIdx = order.slice(0, Math.min(o.wrapSize, order.length));
      wrapDist = wrapIdx.map(() => null);
    }
    const wrapCodes = await offsetCodes(codes, { rows: wrapIdx, signal: job.signal });
    clock.end();
    const kept = [xLat, hR, fR, reconstruction].map((t) => scope.keep(t));
    const ownBoundary = boundary;
    boundary = null;
    const out: BlackHole = {
      xLat: kept[0],
      hR: kept[1],
      fR: kept[2],
      reconstruction: kept[3],
      hNorm,
      reconstructionSimilarity,
      found: nb.found,
      ...(nb.message ? { message: nb.message } : {}),
      alphaMax: nb.alphaMax,
      rounds: nb.rounds,
      labels: nb.labels,
      similarities: nb.similarities,
      boundary: bh,
      wrap: { codes: wrapCodes, indices: wrapIdx, labels: wrapIdx.map((i) => nb.labels[i]), distances: wrapDist },
      options: o,
      dispose() {
        for (const t of [this.xLat, this.hR, this.fR, this.reconstruction, this.wrap.codes]) t.dispose();
        this.boundary?.dq.dispose();
        ownBoundary?.dispose();
      },
      [Symbol.dispose]() {
        this.dispose();
      },
    };
    return out;
  } finally {
    boundary?.dispose();
    scope.dispose();
  }
}

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
    const similarity = await sims(models.encoder, images, bh.fR, o, job);
    const { sem } = await semantic(images, bh.reconstruction, o, models, job);
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
 * `walk` (the released code's validated stepping, METHOD.md step 8) applied to h_r and to every wrap
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
    // What each point decodes to before its step: Dec(h_r) is the reconstruction's counterpart in the injection mode.
    const before = scope.add(await diffusion.decode(bh.xLat, base, decodeOptions(o, bh.hR, job)));
    const state = Array.from({ length: n }, (_, i) => ({ step: first[i], trials: 0, fid: Infinity, accepted: false, pick: [0, 0] as [number, number] }));
    const codeParts: Tensor[] = [];
    const imageParts: Tensor[] = [];
    let pending = Array.from({ length: n }, (_, i) => i);
    for (let trial = 0; trial < o.walkTrials && pending.length > 0; trial++) {
      clock.emit(trial, o.walkTrials, `trial ${trial + 1}: ${pending.length} point(s)`);
      const codes = scope.add(await offsetCodes(base, { rows: pending, direction: bh.boundary.dq, steps: pending.map((i) => state[i].step), signal: job.signal }));
      const images = scope.add(await diffusion.decode(bh.xLat, codes, decodeOptions(o, bh.hR, job)));
      const refs = scope.add(await takeRows([before], pending.map((i) => [0, i] as [number, number]), job));
      const { sem: fid } = await semantic(images, refs, o, models, job);
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
 * `line`: h_r moved along dq to |s(h_r)| + Δ_j, Δ_j = walkStep[1]·j/lineSteps (j = 1 … lineSteps, in
 * walkStepUnit), decoded in one batch. The chosen move is the shortest whose similarity is below
 * eraseTarget and whose L_fid against the reconstruction is below fidelityThreshold; failing that, the
 * accepted move with the lowest similarity (then the one with the lowest L_fid).
 */
async function line(bh: BlackHole, models: EraseModels, o: ResolvedEraseOptions, job: JobOptions, clock: StageClock): Promise<Absorption> {
  if (!bh.boundary) throw invalidArgument('line absorption needs a boundary; this image has none (use absorb: "optimize")');
  const unit = o.walkStepUnit === 'relative' ? bh.hNorm : 1;
  const steps = Array.from({ length: o.lineSteps }, (_, j) => Math.abs(bh.boundary!.sR) + (o.walkStep[1] * (j + 1) * unit) / o.lineSteps);
  clock.emit(0, 1, `${steps.length} distances along the normal`);
  const codes = await offsetCodes(bh.hR, { rows: steps.map(() => 0), direction: bh.boundary.dq, steps, signal: job.signal });
  let images: Tensor | null = null;
  try {
    images = await models.diffusion.decode(bh.xLat, codes, decodeOptions(o, bh.hR, job));
    const m = await measureCandidates(bh, models, codes, images, o, job);
    const candidates: Candidate[] = steps.map((_, i) => ({
      from: 'source',
      distance: m.distance[i],
      signedDistance: m.signed[i],
      similarity: m.similarity[i],
      sem: m.sem[i],
      fidelity: m.sem[i],
      accepted: m.sem[i] < o.fidelityThreshold,
      trials: 1,
    }));
    const first = candidates.findIndex((c) => c.accepted && c.similarity < o.eraseTarget);
    return absorption(candidates, codes, images, 'line', first >= 0 ? { chosen: first } : {});
  } catch (e) {
    codes.dispose();
    images?.dispose();
    throw e;
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
 * `optimize` (METHOD.md step 8): Adam on ĥ_r with L_wrapper + λ_sem·L_sem, backpropagated in C++
 * through the decoder and the identity encoder, starting margin·‖h_r‖ beyond the boundary (at h_r
 * when there is none).
 */
async function optimize(bh: BlackHole, models: EraseModels, o: ResolvedEraseOptions, job: JobOptions, clock: StageClock): Promise<Absorption> {
  const startDistance = bh.boundary ? Math.abs(bh.boundary.sR) + o.margin * bh.hNorm : 0;
  const r = await optimizeAbsorption(models.diffusion, models.encoder, { xLat: bh.xLat, hR: bh.hR, fR: bh.fR, wrap: bh.wrap.codes, dq: bh.boundary?.dq }, {
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

/** The paper's baseline: h_r moved the same length along a seeded random unit direction. */
export async function walkBaseline(bh: BlackHole, models: EraseModels, length: number, o: ResolvedEraseOptions, job: JobOptions): Promise<{ code: Tensor; image: Tensor; similarity: number; sem: number }> {
  const u = await randomDirection(bh.hR.shape.slice(1), o.seed + 2, bh.hR.device, length, job);
  try {
    const code = await offsetCodes(bh.hR, { direction: u, steps: [1], signal: job.signal });
    const image = await models.diffusion.decode(bh.xLat, code, decodeOptions(o, bh.hR, job));
    const [s] = await sims(models.encoder, image, bh.fR, o, job);
    const { sem } = await semantic(image, bh.reconstruction, o, models, job);
    return { code, image, similarity: s, sem: sem[0] };
  } finally {
    u.dispose();
  }
}

const hashCache = new Map<string, string>();

/** sha256 of a model file (cached by path, size and mtime). */
export async function fileSha256(path: string | null): Promise<string | null> {
  if (!path) return null;
  const st = statSync(path);
  const key = `${path}:${st.size}:${st.mtimeMs}`;
  const hit = hashCache.get(key);
  if (hit) return hit;
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  const d = h.digest('hex');
  hashCache.set(key, d);
  return d;
}

/**
 * The whole job for one image [1, 3, H, W] in [-1, 1]: black hole, absorption, baseline, the
 * degenerate baselines (fade / blur of the face at the output's similarity) and an EraseReport.
 * Abortable (call.signal) between native steps; progress through onStage / onProgress.
 */
export async function eraseIdentity(image: Tensor, call: EraseCall): Promise<EraseResult & { blackHole?: BlackHole }> {
  const { models, options: o, job } = splitCall(call);
  checkImage(image, models.diffusion);
  const clock = new StageClock(call.onStage, call.onProgress);
  const scope = new Scope();
  let bh: BlackHole | null = null;
  let ab: Absorption | null = null;
  try {
    clock.begin('load');
    const inputSha = call.inputSha256 ?? createHash('sha256').update(new Uint8Array((await image.data()).buffer)).digest('hex');
    const [dHash, eHash, sHash] = await Promise.all([fileSha256(models.diffusion.source), fileSha256(models.encoder.source), fileSha256(models.secondEncoder?.source ?? null)]);
    bh = await formBlackHole(image, call, clock);
    ab = await absorbIdentity(bh, call, clock);
    const chosen = ab.candidates[ab.chosen];
    const output = scope.add(await takeRows([ab.images], [[0, ab.chosen]], job));

    let base: Awaited<ReturnType<typeof walkBaseline>> | null = null;
    if (o.baseline) {
      clock.begin('baseline');
      base = await walkBaseline(bh, models, chosen.distance * bh.hNorm, o, job);
      scope.add(base.code);
      scope.add(base.image);
    }

    clock.begin('evaluate');
    let second: EraseReport['sid']['second'];
    if (models.secondEncoder) {
      const f2 = scope.add(await models.secondEncoder.embed(image, { protocol: o.protocol, signal: job.signal }));
      const parts = [bh.reconstruction, output, ...(base ? [base.image] : [])];
      const all = scope.add(await takeRows(parts, parts.map((_, i) => [i, 0] as [number, number]), job));
      const s2 = await sims(models.secondEncoder, all, f2, o, job);
      second = { reconstruction: s2[0], after: s2[1], baseline: base ? s2[2] : null };
    }
    const pres = await imageLosses(output, image, job);
    // The degenerate baselines: fade and blur of the input's face region at the output's similarity.
    let degenerate: { fade: MatchedBaseline; blur: MatchedBaseline } | null = null;
    let degenerateReport: EraseReport['degenerateBaselines'] = null;
    if (o.degenerateBaselines) {
      const match = { encoder: models.encoder, fR: bh.fR, target: chosen.similarity, protocol: o.protocol, signal: job.signal };
      clock.emit(0, 2, 'fade baseline at equal similarity');
      const fade = await matchSimilarity('fade', image, match);
      scope.add(fade.image);
      clock.emit(1, 2, 'blur baseline at equal similarity');
      const blur = await matchSimilarity('blur', image, match);
      scope.add(blur.image);
      degenerate = { fade, blur };
      const both = scope.add(await takeRows([fade.image, blur.image], [[0, 0], [1, 0]], job));
      const dp = await imageLosses(both, image, job);
      const entry = (m: MatchedBaseline, i: number): DegenerateBaseline => ({ strength: m.strength, similarity: m.similarity, reached: m.reached, preservation: { mse: dp.mse[i], ssim: dp.ssim[i] } });
      degenerateReport = { fade: entry(fade, 0), blur: entry(blur, 1) };
    }
    const timings = clock.finish();

    const report: EraseReport = {
      version: VERSION,
      input: { name: call.inputName ?? 'input', width: image.shape[3], height: image.shape[2], sha256: inputSha },
      models: {
        diffusion: { path: models.diffusion.source, sha256: dHash, config: { ...models.diffusion.config } },
        encoder: { path: models.encoder.source, sha256: eHash, arch: models.encoder.arch },
        ...(models.secondEncoder ? { secondEncoder: { path: models.secondEncoder.source, sha256: sHash, arch: models.secondEncoder.arch } } : {}),
        perceptual: models.perceptual ? models.perceptual.name : PERCEPTUAL_SUBSTITUTE,
      },
      options: o,
      device: models.diffusion.device,
      sid: {
        reconstruction: bh.reconstructionSimilarity,
        after: chosen.similarity,
        baseline: base ? base.similarity : null,
        ...(second ? { second } : {}),
      },
      blackHole: {
        found: bh.found,
        ...(bh.message ? { message: bh.message } : {}),
        alphaMax: bh.found ? bh.alphaMax : null,
        rounds: bh.rounds,
        labelShare: bh.labels.reduce((a, b) => a + b, 0) / bh.labels.length,
        similarities: Array.from(bh.similarities),
        svm: bh.boundary
          ? {
              trainAccuracy: bh.boundary.trainAccuracy,
              heldOutAccuracy: bh.boundary.heldOutAccuracy,
              majorityRate: bh.boundary.majorityRate,
              margin: bh.boundary.margin,
              supportVectors: bh.boundary.supportVectors,
            }
          : null,
        sourceDistance: bh.boundary ? bh.boundary.sR : null,
        hNorm: bh.hNorm,
        wrap: bh.wrap.indices.map((index, k) => ({ index, label: bh!.wrap.labels[k], distance: bh!.wrap.distances[k] ?? NaN })),
      },
      absorption: {
        mode: ab.mode,
        ...(ab.backprop ? { backprop: ab.backprop } : {}),
        candidates: ab.candidates,
        chosen: ab.chosen,
        ...(ab.losses ? { losses: ab.losses } : {}),
      },
      baseline: base ? { distance: chosen.distance, similarity: base.similarity, sem: base.sem } : null,
      degenerateBaselines: degenerateReport,
      preservation: { mse: pres.mse[0], ssim: pres.ssim[0] },
      timings,
      seeds: { neighbours: o.seed, svm: o.seed, walk: o.seed + 1, baseline: o.seed + 2, decode: o.seed },
      finishedAt: new Date().toISOString(),
    };
    // Copies for the result, so that the black hole and the absorption can be released whole.
    const reconstruction = scope.add(await takeRows([bh.reconstruction], [[0, 0]], job));
    const candidates = scope.add(await takeRows([ab.images], ab.candidates.map((_, i) => [0, i] as [number, number]), job));
    const keep = [output, reconstruction, candidates, ...(base ? [base.image] : []), ...(degenerate ? [degenerate.fade.image, degenerate.blur.image] : [])].map((t) => scope.keep(t));
    const kept = call.keepBlackHole ? bh : null;
    return {
      image: keep[0],
      reconstruction: keep[1],
      candidates: keep[2],
      baseline: base ? base.image : null,
      degenerate: degenerate ? { fade: degenerate.fade.image, blur: degenerate.blur.image } : null,
      report,
      ...(kept ? { blackHole: kept } : {}),
      dispose() {
        for (const t of keep) t.dispose();
        kept?.dispose();
      },
    };
  } catch (e) {
    if (call.keepBlackHole) bh?.dispose();
    throw e;
  } finally {
    if (!call.keepBlackHole) bh?.dispose();
    ab?.dispose();
    scope.dispose();
  }
}

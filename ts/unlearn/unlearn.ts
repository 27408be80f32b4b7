/**
 * Identity unlearning of the diffusion model itself (first slice of `bia unlearn`): the UNet is
 * fine-tuned so that, decoded WITHOUT any h-space edit, the photos of a person go where the frozen
 * model sends their absorbed codes — the person falls into their own black hole for good.
 *
 * Teacher–student, per DDIM step: for each given photo, the black hole is formed and absorbed as in
 * eraseIdentity (ĥ_r); the frozen teacher decodes x_lat with ĥ_r injected (every-step), and at sampled
 * steps j of that trajectory the pair (x_j, t_j) gets the teacher's ε under the edit, ε(x_j, t_j; h + Δh)
 * with Δh = ĥ_r − h_r, as the student's target. Photos of other people give retain pairs: states of
 * their own reconstruction trajectories with the teacher's unedited ε. The student regresses both
 * (native distillation step, AdamW, only the chosen parameters learn); there is no backpropagation
 * through the trajectory. With η = 0 and every-step decoding, a student that matches the targets
 * decodes the photo exactly as the teacher decodes the absorbed code.
 */
import { takeRows } from '../blackhole/codes';
import type { DiffusionModel } from '../diffusion';
import { invalidArgument } from '../errors';
import { absorbIdentity } from '../erase/absorb';
import { type EraseModels } from '../erase/call';
import { formBlackHole } from '../erase/form';
import { identitySimilarity } from '../erase/measure';
import { resolveEraseOptions } from '../erase/options';
import { Scope } from '../erase/scope';
import type { EraseOptions } from '../erase/types';
import type { IdentityEncoder } from '../identity';
import type { JobOptions } from '../jobs';
import { checkInt } from '../options';
import { tensor, type Tensor } from '../tensor';
import { createTrainer, type Trainer } from '../train/trainer';

/** Which UNet parameters learn: all of them, or the decoder half (up blocks and the output head). */
export type UnlearnParams = 'all' | 'decoder';
export const UNLEARN_PARAMS: readonly UnlearnParams[] = ['all', 'decoder'];
/** The official UNet's decoder: its up path and output head (encoder, middle block and time embedding frozen). */
export const DECODER_PREFIXES = ['up.', 'norm_out.', 'conv_out.'];

export interface UnlearnOptions extends JobOptions {
  /** The erase settings that form and absorb each photo's black hole (inject must be 'every-step'). */
  erase?: EraseOptions;
  /** Parameters that learn (default 'decoder'). */
  params?: UnlearnParams;
  /** Optimiser steps (default 200). */
  iterations?: number;
  /** AdamW learning rate (default 2e-5). */
  lr?: number;
  /** Trajectory states per batch (default 8). */
  batchSize?: number;
  /** Trajectory states sampled per code, evenly over the decoding steps (default 6). */
  statesPerCode?: number;
  /** Share of each batch drawn from the retain states (default 0.5). */
  retainShare?: number;
  seed?: number;
  /** A trainer checkpoint to resume from (written by a previous, interrupted run's onCheckpoint). */
  resumeFrom?: string;
  /** Called every `checkpointEvery` steps with a trainer to save (default every 50 steps). */
  onCheckpoint?: (trainer: Trainer<'diffusion'>, step: number) => Promise<void>;
  checkpointEvery?: number;
  /** Per optimiser step. */
  onStep?: (s: { step: number; iterations: number; loss: number }) => void;
}

export interface UnlearnReport {
  photos: number;
  others: number;
  params: UnlearnParams;
  iterations: number;
  forgetStates: number;
  retainStates: number;
  /** Similarity to each photo's own embedding of its plain reconstruction: original model, unlearned model, and the BIA output (the target). */
  forget: { before: number[]; after: number[]; absorbed: number[] };
  /** Similarity of each other person's reconstruction to their photo: original and unlearned model. */
  retain: { before: number[]; after: number[] };
  losses: number[];
  seconds: number;
}

export interface UnlearnResult extends Disposable {
  /** The unlearned UNet (a new model; the original is untouched). */
  model: DiffusionModel;
  /** Reconstructions of the photos by the original and the unlearned model, [N, 3, H, W] each. */
  images: { before: Tensor; after: Tensor; absorbed: Tensor; othersBefore: Tensor; othersAfter: Tensor };
  report: UnlearnReport;
  dispose(): void;
}

interface States {
  x: Tensor[];
  eps: Tensor[];
  t: number[];
}

function checkNumber(v: number, what: string, lo: number, hi: number): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= lo || v > hi) throw invalidArgument(`${what} must be a number in (${lo}, ${hi}], got ${JSON.stringify(v)}`);
  return v;
}

/** Δh = ĥ − h_r as a tensor (h is small: C·H·W numbers). */
async function delta(hHat: Tensor, hR: Tensor): Promise<Tensor> {
  const [a, b] = [await hHat.data(), await hR.data()];
  const d = new Float32Array(a.length);
  for (let i = 0; i < a.length; i++) d[i] = a[i] - b[i];
  return tensor(d, hR.shape, { device: hR.device as never });
}

/** The decode call indices to sample: `k` of 0..steps−1, evenly spread, always including the first. */
export function sampledSteps(steps: number, k: number): number[] {
  const n = Math.min(steps, k);
  return [...new Set(Array.from({ length: n }, (_, i) => Math.round((i * (steps - 1)) / Math.max(1, n - 1))))];
}

/**
 * Teacher states of one code's decoding trajectory: at call j the state x_j (x_lat for j = 0) and the
 * teacher's ε there, with Δh added while t ≥ tEdit (Δh null: plain reconstruction).
 */
async function trajectory(diffusion: DiffusionModel, xLat: Tensor, hR: Tensor, dh: Tensor | null, hHat: Tensor | null, seq: number[], picks: number[], o: { t0: number; steps: number; tEdit: number }, job: JobOptions, out: States): Promise<void> {
  for (const j of picks) {
    const t = seq[seq.length - 1 - j];
    const x = j === 0 ? xLat : await diffusion.decode(xLat, hHat, { mode: 'every-step', hRef: hR, t0: o.t0, steps: o.steps, tEdit: o.tEdit, eta: 0, stopAfter: j, signal: job.signal });
    const r = await diffusion.forward(x, t, { hDelta: dh && t >= o.tEdit ? dh : undefined, signal: job.signal });
    r.h.dispose();
    out.x.push(j === 0 ? await takeRows([xLat], [[0, 0]]) : x);
    out.eps.push(r.eps);
    out.t.push(t);
  }
}

/**
 * Unlearn the person shown in `photos` ([N, 3, H, W] in [-1, 1] at the model's resolution) from
 * `models.diffusion`, keeping `models.others` (photos of other people) as they were.
 */
export async function unlearnIdentity(photos: Tensor, models: EraseModels & { diffusion: DiffusionModel; encoder: IdentityEncoder; others: Tensor }, opts: UnlearnOptions = {}): Promise<UnlearnResult> {
  const start = performance.now();
  const o = resolveEraseOptions({ inject: 'every-step', ...opts.erase });
  if (o.inject !== 'every-step') throw invalidArgument(`unlearning distils every-step decoding; erase.inject must be 'every-step', got '${o.inject}'`);
  if (o.eta !== 0) throw invalidArgument('unlearning distils deterministic decoding; erase.eta must be 0');
  const params = opts.params ?? 'decoder';
  if (!UNLEARN_PARAMS.includes(params)) throw invalidArgument(`params must be one of ${UNLEARN_PARAMS.join(', ')}; got ${JSON.stringify(params)}`);
  const iterations = checkInt(opts.iterations ?? 200, 'iterations', 1, 1_000_000);
  const lr = checkNumber(opts.lr ?? 2e-5, 'lr', 0, 1);
  const batchSize = checkInt(opts.batchSize ?? 8, 'batchSize', 1, 4096);
  const perCode = checkInt(opts.statesPerCode ?? 6, 'statesPerCode', 1, 1000);
  const retainShare = opts.retainShare ?? 0.5;
  if (!(retainShare >= 0 && retainShare < 1)) throw invalidArgument(`retainShare must be in [0, 1), got ${JSON.stringify(retainShare)}`);
  const seed = checkInt(opts.seed ?? o.seed, 'seed', 0, 2 ** 52);
  const checkpointEvery = checkInt(opts.checkpointEvery ?? 50, 'checkpointEvery', 1, 1_000_000);
  if (photos.shape.length !== 4 || photos.shape[0] < 1) throw invalidArgument(`photos must be [N, 3, H, W], got [${photos.shape}]`);
  if (models.others.shape.length !== 4 || models.others.shape[0] < 1) throw invalidArgument(`others must be [N, 3, H, W] photos of other people, got [${models.others.shape}]`);
  const { diffusion, encoder } = models;
  const job: JobOptions = { signal: opts.signal };
  const scope = new Scope();
  let trainer: Trainer<'diffusion'> | undefined;
  try {
    const forget: States = { x: [], eps: [], t: [] };
    const retain: States = { x: [], eps: [], t: [] };
    const seqInv = await diffusion.invert(await takeRows([photos], [[0, 0]]), { t0: o.t0, steps: o.steps, keepAll: true, signal: job.signal });
    const seq = [...seqInv.ts, o.t0];
    seqInv.hs.forEach((h) => h.dispose());
    seqInv.xLat.dispose();
    seqInv.hR.dispose();
    const picks = sampledSteps(o.steps, perCode);
    const decodeArgs = { t0: o.t0, steps: o.steps, tEdit: o.tEdit };
    const fRs: Tensor[] = [];
    const absorbed: Tensor[] = [];
    const xLats: Tensor[] = [];
    for (let i = 0; i < photos.shape[0]; i++) {
      const photo = scope.add(await takeRows([photos], [[0, i]]));
      const bh = await formBlackHole(photo, { ...o, ...models, signal: job.signal });
      try {
        const ab = await absorbIdentity(bh, { ...o, ...models, signal: job.signal });
        try {
          const hHat = scope.add(await takeRows([ab.codes], [[0, ab.chosen]]));
          absorbed.push(scope.add(await takeRows([ab.images], [[0, ab.chosen]])));
          const dh = scope.add(await delta(hHat, bh.hR));
          await trajectory(diffusion, bh.xLat, bh.hR, dh, hHat, seq, picks, decodeArgs, job, forget);
          fRs.push(scope.add(await takeRows([bh.fR], [[0, 0]])));
          xLats.push(scope.add(await takeRows([bh.xLat], [[0, 0]])));
        } finally {
          ab.dispose();
        }
      } finally {
        bh.dispose();
      }
    }
    const otherLats: Tensor[] = [];
    for (let i = 0; i < models.others.shape[0]; i++) {
      const photo = scope.add(await takeRows([models.others], [[0, i]]));
      const inv = await diffusion.invert(photo, { t0: o.t0, steps: o.steps, signal: job.signal });
      scope.add(inv.xLat);
      scope.add(inv.hR);
      await trajectory(diffusion, inv.xLat, inv.hR, null, null, seq, picks, decodeArgs, job, retain);
      otherLats.push(inv.xLat);
    }
    [...forget.x, ...forget.eps, ...retain.x, ...retain.eps].forEach((t) => scope.add(t));

    trainer = await createTrainer('diffusion', diffusion, { lr, seed, trainable: params === 'decoder' ? DECODER_PREFIXES : undefined, device: diffusion.device as never, signal: job.signal });
    let first = 0;
    if (opts.resumeFrom) first = (await trainer.load(opts.resumeFrom, job)).step;
    const losses: number[] = [];
    const nRetain = Math.round(batchSize * retainShare);
    let rng = (seed ^ 0x5bd1e995) >>> 0;
    const rand = (n: number) => {
      rng = (Math.imul(rng ^ (rng >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) >>> 0;
      return rng % n;
    };
    for (let s = 0; s < first * batchSize; s++) rand(1); // the same draws as an uninterrupted run
    const parts = [...forget.x, ...retain.x];
    const epsParts = [...forget.eps, ...retain.eps];
    for (let step = first; step < iterations; step++) {
      const picksF: [number, number][] = [];
      const picksR: [number, number][] = [];
      for (let b = 0; b < batchSize; b++) {
        const fromRetain = b < nRetain;
        const pool = fromRetain ? retain : forget;
        const k = rand(pool.x.length);
        (fromRetain ? picksR : picksF).push([k, 0]);
      }
      const idx = [...picksF.map(([k]) => ({ pool: forget, k })), ...picksR.map(([k]) => ({ pool: retain, k }))];
      const at = idx.map(({ pool, k }) => (pool === forget ? k : forget.x.length + k));
      const images = await takeRows(parts, at.map((p) => [p, 0]));
      const targets = await takeRows(epsParts, at.map((p) => [p, 0]));
      try {
        const r = await trainer.step({ images, labels: Int32Array.from(idx.map(({ pool, k }) => pool.t[k])), targets }, { lr, signal: job.signal });
        losses.push(r.loss);
        opts.onStep?.({ step: r.step, iterations, loss: r.loss });
        if (opts.onCheckpoint && (r.step % checkpointEvery === 0 || r.step === iterations)) await opts.onCheckpoint(trainer, r.step);
      } finally {
        images.dispose();
        targets.dispose();
      }
    }
    const model = await trainer.model({ signal: job.signal });

    // The report: plain reconstructions (no edit) by both models.
    const recon = async (m: DiffusionModel, lats: Tensor[]) => {
      const xl = await takeRows(lats, lats.map((_, i) => [i, 0]));
      try {
        return await m.decode(xl, null, { t0: o.t0, steps: o.steps, eta: 0, signal: job.signal });
      } finally {
        xl.dispose();
      }
    };
    const before = await recon(diffusion, xLats);
    const after = await recon(model, xLats);
    const absorbedAll = await takeRows(absorbed, absorbed.map((_, i) => [i, 0]));
    const othersBefore = await recon(diffusion, otherLats);
    const othersAfter = await recon(model, otherLats);
    const fR = await takeRows(fRs, fRs.map((_, i) => [i, 0]));
    // each image against its own reference row (pairwise similarity of equal batches): one embedding job
    const simEach = async (images: Tensor, refs: Tensor) => Array.from(await identitySimilarity(encoder, images, refs, o, job));
    const othersEmb = await encoder.embed(models.others, { protocol: o.protocol, signal: job.signal });
    const report: UnlearnReport = {
      photos: photos.shape[0],
      others: models.others.shape[0],
      params,
      iterations,
      forgetStates: forget.x.length,
      retainStates: retain.x.length,
      forget: { before: await simEach(before, fR), after: await simEach(after, fR), absorbed: await simEach(absorbedAll, fR) },
      retain: { before: await simEach(othersBefore, othersEmb), after: await simEach(othersAfter, othersEmb) },
      losses,
      seconds: (performance.now() - start) / 1000,
    };
    othersEmb.dispose();
    fR.dispose();
    const images = { before, after, absorbed: absorbedAll, othersBefore, othersAfter };
    const dispose = () => {
      model.dispose();
      Object.values(images).forEach((t) => t.dispose());
    };
    return { model, images, report, dispose, [Symbol.dispose]: dispose };
  } finally {
    trainer?.dispose();
    scope.dispose();
  }
}

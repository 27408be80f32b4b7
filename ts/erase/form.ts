/**
 * Black hole formation (docs/method.md, steps 1–7): invert the image, sample neighbours of h_r with a
 * calibrated α_max, label them by identity, fit the SVM boundary, orient it, and take the wrap set.
 */
import { manifoldTargets, tryFormNeighbourhood, type Neighbourhood } from '../blackhole/neighbours';
import { offsetCodes } from '../blackhole/codes';
import { fitBoundary, gram, orient, wrapSet, type Boundary } from '../blackhole/svm';
import type { DiffusionModel } from '../diffusion';
import type { JobOptions } from '../jobs';
import type { Tensor } from '../tensor';
import { checkImage, splitCall, type EraseCall } from './call';
import { identitySimilarity } from './measure';
import type { ResolvedEraseOptions } from './options';
import { StageClock } from './progress';
import { Scope } from './scope';

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
  rounds: Neighbourhood['rounds'];
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
    /** The SVM's geometric margin 1/‖w‖. */
    geometricMargin: number;
    supportVectors: number;
  } | null;
  /** The wrap set: K codes nearest the boundary (label 0 first); without a boundary, the K least similar. */
  wrap: { codes: Tensor; indices: number[]; labels: number[]; distances: (number | null)[] };
  options: ResolvedEraseOptions;
  dispose(): void;
}

/**
 * The inverted h of each `others` tensor, per diffusion model and (t0, steps): the same photos are inverted
 * once however many images are erased with them (a folder, `bia eval`). Tensors are immutable, so a cached
 * entry stays right for as long as both keys live; both maps are weak, and a cached h is released with them.
 */
const othersCache = new WeakMap<Tensor, WeakMap<DiffusionModel, Map<string, Tensor>>>();

/** The h of the other people's photos, inverted exactly as x_r (the last inversion call's h); cached, not owned. */
async function othersTargets(diffusion: DiffusionModel, others: Tensor, o: ResolvedEraseOptions, job: JobOptions, onProgress: JobOptions['onProgress']): Promise<Tensor> {
  let perModel = othersCache.get(others);
  if (!perModel) othersCache.set(others, (perModel = new WeakMap()));
  let perSchedule = perModel.get(diffusion);
  if (!perSchedule) perModel.set(diffusion, (perSchedule = new Map()));
  const key = `${o.t0}/${o.steps}`;
  const cached = perSchedule.get(key);
  if (cached && !cached.disposed) return cached;
  const inv = await diffusion.invert(others, { t0: o.t0, steps: o.steps, signal: job.signal, onProgress });
  inv.xLat.dispose();
  perSchedule.set(key, inv.hR);
  return inv.hR;
}

/**
 * docs/method.md steps 1–7 for one image [1, 3, H, W] in [-1, 1]: inversion, f_r, neighbours with α_max
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
    const [reconstructionSimilarity] = await identitySimilarity(encoder, reconstruction, fR, o, job);
    const g = scope.add(await gram(hR, job));
    const hNorm = Math.sqrt((await g.data())[0]);

    clock.begin('neighbours');
    const neighbourProgress = clock.sub((o.neighbourMode === 'manifold' ? 2 : o.neighbourMode === 'others' ? 1 : 0) + o.calibrationRounds);
    const targets =
      o.neighbourMode === 'manifold'
        ? scope.add(await manifoldTargets(diffusion, { pool: Math.min(o.neighbours, o.manifoldPool), t0: o.t0, steps: o.steps, seed: o.seed, batchSize: o.batchSize, signal: job.signal, onProgress: neighbourProgress }))
        : o.neighbourMode === 'others'
          ? await othersTargets(diffusion, models.others!, o, job, neighbourProgress)
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
      labelSteps: o.labelSteps,
      labelFrom: o.labelFrom,
      labelRefine: o.labelRefine,
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
        geometricMargin: boundary.geometricMargin,
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

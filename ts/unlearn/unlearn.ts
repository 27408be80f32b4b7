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
import { similarity, type IdentityEncoder } from '../identity';
import type { JobOptions } from '../jobs';
import { checkInt } from '../options';
import { tensor, type Tensor } from '../tensor';
import { createTrainer, type Trainer } from '../train/trainer';

/**
 * What learns: all UNet weights, the decoder half's weights (up blocks and the output head), or low-rank
 * adapters on the decoder half's convolutions and linear layers (the weights stay; the adapters can be
 * saved apart as a patch and merged at load with mergeAdapter).
 */
export type UnlearnParams = 'all' | 'decoder' | 'adapters';
export const UNLEARN_PARAMS: readonly UnlearnParams[] = ['all', 'decoder', 'adapters'];
/** The official UNet's decoder: its up path and output head (encoder, middle block and time embedding frozen). */
export const DECODER_PREFIXES = ['up.', 'norm_out.', 'conv_out.'];

export interface UnlearnOptions extends JobOptions {
  /** The erase settings that form and absorb each photo's black hole (inject must be 'every-step'). */
  erase?: EraseOptions;
  /** Parameters that learn (default 'decoder'). */
  params?: UnlearnParams;
  /** params 'adapters': their rank (default 8; α = the rank). */
  adapterRank?: number;
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
  /**
   * Also forget the mirrored photos (default false): each is inverted on its own and shifted by the
   * mirrored Δh. Measured on the default models, the mirrored shift erases far less than the photo's own
   * (similarity 0.73–0.90 against 0.33–0.62; docs/unlearning.md), so these targets teach little.
   */
  mirror?: boolean;
  /**
   * Per photo, this many codes inside its black hole (h_r moved half of α_max towards another person's code,
   * as neighbours are drawn) are decoded, inverted like photos and shifted by the photo's Δh; those that still
   * show the person (similarity ≥ the threshold) and whose shifted decoding falls below it become forget codes
   * too: other pictures of the person, made by the model (default 0).
   */
  variants?: number;
  /**
   * The model whose decoding of other people the student must keep (default: `models.diffusion`, the model
   * being fine-tuned). When a person is unlearned from a model that has already unlearned others, pass the
   * original model: the retain trajectories then come from it, and everyone else is kept as the original
   * decodes them rather than as the previous round left them. Same UNet config as `models.diffusion`.
   */
  anchor?: DiffusionModel;
  /**
   * Per photo, this many composites: the photo's face region (`faceRegion`) blended into a retain photo of
   * another person, so that the person's face is seen with other hair, clothes and backgrounds. Each is
   * inverted and shifted by its photo's Δh; those the encoder still takes for the person and whose shifted
   * decoding falls below the threshold become forget codes, next to the other person's photo as a retain
   * code: the two differ only in the face (default 0).
   */
  composites?: number;
  /**
   * Where the face is in the model's aligned portraits, for `composites`: an ellipse, centre and radii as
   * shares of the width and height (default { cx: 0.5, cy: 0.5, rx: 0.18, ry: 0.22 }: the synthetic world's
   * and the usual FFHQ/CelebA-HQ alignment put the face there).
   */
  faceRegion?: FaceRegion;
  /**
   * Weight of an identity term on every forget state (default 0: off): the clean picture x̂0 that the
   * student's ε implies there goes through the identity encoder, and its cosine to the photo's embedding
   * above `identityMargin` is penalised (Batch.identity of the trainer). The encoder, which tells the person
   * from everyone else, then says what must change, next to the teacher's per-step target.
   */
  identityWeight?: number;
  /** Cosine to the photo's embedding below which a forget state's x̂0 costs nothing (default: erase.tauM, 0.25). */
  identityMargin?: number;
  /**
   * Weight of the identity term on every retain state (default: identityWeight): the x̂0 the student's ε
   * implies there must stay at least as like the other person (their photo's embedding) as the teacher's x̂0.
   * It tells the student that faces in general must stay who they are; only hers must change.
   */
  identityKeepWeight?: number;
  /**
   * Also take forget states from the photos' plain trajectories — the ones the original model follows when it
   * reconstructs them, where an unlearned model starts out — with the teacher's ε under the photo's Δh as
   * the target (default false).
   */
  plainStates?: boolean;
  /**
   * Every this many steps (default 0: never), the states of other people (and with `plainStates` of the photos'
   * plain reconstructions) are taken again along the trajectories the student itself now follows, with the
   * frozen model's ε there as the target; they replace the previous such set, beside the frozen model's own
   * trajectories. A student trained only on the teacher's states drifts off them on its own decoding, and small
   * errors add up over the steps; these states teach it the way back. A resumed run takes them again at the
   * step it resumes from, so with `refreshEvery` a resumed run is not bit-identical to an uninterrupted one.
   */
  refreshEvery?: number;
  seed?: number;
  /** A trainer checkpoint to resume from (written by a previous, interrupted run's onCheckpoint). */
  resumeFrom?: string;
  /** Called every `checkpointEvery` steps with a trainer to save (default every 50 steps). */
  onCheckpoint?: (trainer: Trainer<'diffusion'>, step: number) => Promise<void>;
  checkpointEvery?: number;
  /** Per optimiser step. */
  onStep?: (s: { step: number; iterations: number; loss: number }) => void;
}

/** An ellipse in an image: centre and radii as shares of the width (x) and height (y). */
export interface FaceRegion {
  cx: number;
  cy: number;
  rx: number;
  ry: number;
}
export const DEFAULT_FACE_REGION: Readonly<FaceRegion> = { cx: 0.5, cy: 0.5, rx: 0.18, ry: 0.22 };

/** Extra forget codes made from the photos: how many, how many kept, each one's similarity to its photo before and after its shift. */
export interface ExtraCodesReport {
  made: number;
  kept: number;
  similarity: number[];
  absorbed: number[];
}

export interface UnlearnReport {
  photos: number;
  /** Retain photos used; othersLeftOut: the indices of those left out because the encoder took them for the person. */
  others: number;
  othersLeftOut?: number[];
  params: UnlearnParams;
  iterations: number;
  mirror: boolean;
  forgetStates: number;
  retainStates: number;
  /** Similarity to each photo's own embedding of its plain reconstruction: original model, unlearned model, and the BIA output (the target). */
  forget: { before: number[]; after: number[]; absorbed: number[]; mirroredAbsorbed?: number[] };
  /** Similarity of each other person's reconstruction to their photo: original and unlearned model. */
  retain: { before: number[]; after: number[] };
  /**
   * With `variants`: how many were decoded from inside the black holes, how many were kept as forget codes,
   * each one's similarity to its photo, and that of its shifted decoding (kept: the first at or above the
   * threshold, the second below it).
   */
  variants?: ExtraCodesReport;
  /** With `composites`: the same figures for the composites (the photo's face in another person's picture). */
  composites?: ExtraCodesReport;
  /** identityWeight or identityKeepWeight > 0: per step, the away term (hinge) and the forget states' mean cosine, the keep term and the retain states' mean cosine. */
  identity?: { weight: number; margin: number; hinge: number[]; similarity: number[]; keepWeight: number; keep: number[]; keepSimilarity: number[] };
  losses: number[];
  seconds: number;
}

export interface UnlearnResult extends Disposable {
  /** The unlearned UNet (a new model; the original is untouched; with adapters, they are merged in). */
  model: DiffusionModel;
  /** params 'adapters': write them as a patch file (Trainer.saveAdapter); resolves to the layers adapted. */
  saveAdapter?: (path: string) => Promise<number>;
  /** Reconstructions of the photos by the original and the unlearned model, [N, 3, H, W] each. */
  images: { before: Tensor; after: Tensor; absorbed: Tensor; others: Tensor; othersBefore: Tensor; othersAfter: Tensor };
  report: UnlearnReport;
  dispose(): void;
}

/** Trajectory states: batches of x_j and the teacher's ε there, and per state (batch, row, t_j, the photo a forget state shows and the other person a retain state shows, −1 for none). */
interface States {
  x: Tensor[];
  eps: Tensor[];
  at: { part: number; row: number; t: number; photo: number; other: number }[];
}

function emptyStates(): States {
  return { x: [], eps: [], at: [] };
}

function checkNumber(v: number, what: string, lo: number, hi: number): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= lo || v > hi) throw invalidArgument(`${what} must be a number in (${lo}, ${hi}], got ${JSON.stringify(v)}`);
  return v;
}

/** a − b, or a + b, elementwise, as a new tensor on a's device (h codes are small: B·C·H·W numbers). */
async function combine(a: Tensor, b: Tensor, sign: 1 | -1): Promise<Tensor> {
  const [x, y] = [await a.data(), await b.data()];
  const d = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) d[i] = x[i] + sign * y[i];
  return tensor(d, a.shape, { device: a.device as never });
}

/** h + α·(t_k − h) for each row t_k of `targets` (h: one code). */
async function towards(h: Tensor, targets: Tensor, alpha: number): Promise<Tensor> {
  const [a, b] = [await h.data(), await targets.data()];
  const d = new Float32Array(b.length);
  for (let i = 0; i < b.length; i++) d[i] = a[i % a.length] + alpha * (b[i] - a[i % a.length]);
  return tensor(d, targets.shape, { device: targets.device as never });
}

/** The mirror image along the last axis (width) of a [B, C, H, W] tensor. */
export async function mirrored(x: Tensor): Promise<Tensor> {
  const v = await x.data();
  const w = x.shape[x.shape.length - 1];
  const d = new Float32Array(v.length);
  for (let r = 0; r < v.length; r += w) for (let k = 0; k < w; k++) d[r + k] = v[r + w - 1 - k];
  return tensor(d, x.shape, { device: x.device as never });
}

/**
 * Row k of the result: `face` row faceRows[k] blended into `scene` row sceneRows[k] inside `region` (an
 * ellipse with a soft edge: full weight within 85% of the radius, none beyond it), [B, C, H, W] each.
 */
export async function blendFaces(face: Tensor, faceRows: number[], scene: Tensor, sceneRows: number[], region: FaceRegion): Promise<Tensor> {
  const [C, H, W] = face.shape.slice(1);
  if (faceRows.length !== sceneRows.length) throw invalidArgument('blendFaces: one scene row per face row');
  if (face.shape.length !== 4 || scene.shape.length !== 4 || scene.shape.slice(1).some((v, k) => v !== face.shape[k + 1])) {
    throw invalidArgument(`blendFaces: face and scene must be [B, C, H, W] of one picture size, got [${face.shape}] and [${scene.shape}]`);
  }
  const inRange = (rows: number[], n: number) => rows.every((r) => Number.isInteger(r) && r >= 0 && r < n);
  if (!inRange(faceRows, face.shape[0]) || !inRange(sceneRows, scene.shape[0])) throw invalidArgument('blendFaces: a row index is outside its batch');
  checkRegion(region);
  const [f, g] = [await face.data(), await scene.data()];
  const mask = new Float32Array(H * W);
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      const r = Math.hypot(((x + 0.5) / W - region.cx) / region.rx, ((y + 0.5) / H - region.cy) / region.ry);
      const u = Math.min(1, Math.max(0, (1 - r) / 0.15));
      mask[y * W + x] = u * u * (3 - 2 * u);
    }
  }
  const per = C * H * W;
  const out = new Float32Array(faceRows.length * per);
  faceRows.forEach((fr, k) => {
    for (let c = 0; c < C; c++) {
      for (let p = 0; p < H * W; p++) {
        const m = mask[p];
        out[k * per + c * H * W + p] = m * f[fr * per + c * H * W + p] + (1 - m) * g[sceneRows[k] * per + c * H * W + p];
      }
    }
  });
  return tensor(out, [faceRows.length, C, H, W], { device: face.device as never });
}

function checkRegion(r: FaceRegion): FaceRegion {
  const ok = (v: unknown, lo: number, hi: number) => typeof v === 'number' && Number.isFinite(v) && v > lo && v <= hi;
  if (typeof r !== 'object' || r === null || !ok(r.cx, 0, 1) || !ok(r.cy, 0, 1) || !ok(r.rx, 0, 1) || !ok(r.ry, 0, 1)) {
    throw invalidArgument(`faceRegion must be { cx, cy, rx, ry }, each a share of the image in (0, 1]; got ${JSON.stringify(r)}`);
  }
  return r;
}

/** The decode call indices to sample: `k` of 0..steps−1, evenly spread, always including the first. */
export function sampledSteps(steps: number, k: number): number[] {
  const n = Math.min(steps, k);
  return [...new Set(Array.from({ length: n }, (_, i) => Math.round((i * (steps - 1)) / Math.max(1, n - 1))))];
}

/**
 * Codes to decode, batched: x_lat and h_r [B], and for forget codes the shift Δh and ĥ = h_r + Δh, and the
 * photo each row shows (−1: another person). plain: the states follow the unedited trajectory even where
 * the teacher's ε there is taken under Δh.
 */
interface Codes {
  xLat: Tensor;
  hR: Tensor;
  dh: Tensor | null;
  hHat: Tensor | null;
  photo?: number[];
  other?: number[];
  plain?: boolean;
}

/**
 * Teacher states of a batch of decoding trajectories: at call j the states x_j (x_lat for j = 0) and the
 * teacher's ε there, with Δh added while t ≥ tEdit (dh null: plain reconstruction). One batched
 * decode per sampled call.
 */
async function trajectories(diffusion: DiffusionModel, c: Codes, seq: number[], picks: number[], o: { t0: number; steps: number; tEdit: number }, job: JobOptions, out: States, from: DiffusionModel = diffusion): Promise<void> {
  const n = c.xLat.shape[0];
  for (const j of picks) {
    const t = seq[seq.length - 1 - j];
    const hHat = c.plain ? null : c.hHat;
    const x = j === 0 ? await takeRows([c.xLat], Array.from({ length: n }, (_, i) => [0, i])) : await from.decode(c.xLat, hHat, { mode: 'every-step', hRef: hHat ? c.hR : undefined, t0: o.t0, steps: o.steps, tEdit: o.tEdit, eta: 0, stopAfter: j, batchSize: 64, signal: job.signal });
    const r = await diffusion.forward(x, t, { hDelta: c.dh && t >= o.tEdit ? c.dh : undefined, signal: job.signal });
    r.h.dispose();
    const part = out.x.length;
    out.x.push(x);
    out.eps.push(r.eps);
    for (let row = 0; row < n; row++) out.at.push({ part, row, t, photo: c.photo?.[row] ?? -1, other: c.other?.[row] ?? -1 });
  }
}

/** Rows 0..n−1 of each part, concatenated. */
function allRows(parts: Tensor[]): Promise<Tensor> {
  return takeRows(parts, parts.flatMap((p, k) => Array.from({ length: p.shape[0] }, (_, i): [number, number] => [k, i])));
}

/** Shapes at the model's resolution; every picture finite and not blank (a constant picture shows no one). */
async function checkPhotos(x: Tensor, what: string, diffusion: DiffusionModel): Promise<void> {
  const c = diffusion.config;
  const want = [c.inChannels, c.resolution, c.resolution];
  if (x.shape.length !== 4 || x.shape[0] < 1 || x.shape.slice(1).some((v, k) => v !== want[k])) {
    throw invalidArgument(`${what} must be [N, ${want.join(', ')}] images at the model's resolution, got [${x.shape}]`);
  }
  const v = await x.data();
  const per = v.length / x.shape[0];
  for (let i = 0; i < x.shape[0]; i++) {
    let lo = Infinity;
    let hi = -Infinity;
    for (let k = i * per; k < (i + 1) * per; k++) {
      const p = v[k];
      if (!Number.isFinite(p)) throw invalidArgument(`${what}: picture ${i} holds NaN or infinite values`);
      if (p < lo) lo = p;
      if (p > hi) hi = p;
    }
    if (hi - lo < 2 / 255) throw invalidArgument(`${what}: picture ${i} is blank (one colour): there is no face to unlearn or keep`);
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
  const mirror = opts.mirror ?? false;
  if (typeof mirror !== 'boolean') throw invalidArgument(`mirror must be true or false, got ${JSON.stringify(mirror)}`);
  const seed = checkInt(opts.seed ?? o.seed, 'seed', 0, 2 ** 52);
  const checkpointEvery = checkInt(opts.checkpointEvery ?? 50, 'checkpointEvery', 1, 1_000_000);
  const adapterRank = checkInt(opts.adapterRank ?? 8, 'adapterRank', 1, 1024);
  const variants = checkInt(opts.variants ?? 0, 'variants', 0, 1024);
  const composites = checkInt(opts.composites ?? 0, 'composites', 0, 1024);
  const faceRegion = checkRegion(opts.faceRegion ?? DEFAULT_FACE_REGION);
  const identityWeight = opts.identityWeight ?? 0;
  if (!(typeof identityWeight === 'number' && identityWeight >= 0 && identityWeight <= 1e6)) throw invalidArgument(`identityWeight must be a number in [0, 1e6], got ${JSON.stringify(identityWeight)}`);
  const identityMargin = opts.identityMargin ?? o.tauM;
  if (!(typeof identityMargin === 'number' && identityMargin >= -1 && identityMargin < 1)) throw invalidArgument(`identityMargin must be a number in [-1, 1), got ${JSON.stringify(identityMargin)}`);
  const identityKeepWeight = opts.identityKeepWeight ?? identityWeight;
  if (!(typeof identityKeepWeight === 'number' && identityKeepWeight >= 0 && identityKeepWeight <= 1e6)) throw invalidArgument(`identityKeepWeight must be a number in [0, 1e6], got ${JSON.stringify(identityKeepWeight)}`);
  const plainStates = opts.plainStates ?? false;
  const refreshEvery = checkInt(opts.refreshEvery ?? 0, 'refreshEvery', 0, 1_000_000);
  if (typeof plainStates !== 'boolean') throw invalidArgument(`plainStates must be true or false, got ${JSON.stringify(plainStates)}`);
  const { diffusion, encoder } = models;
  const anchor = opts.anchor ?? diffusion;
  if (anchor !== diffusion && JSON.stringify(anchor.config) !== JSON.stringify(diffusion.config)) {
    throw invalidArgument(`anchor must have the UNet config of the model being unlearned (${JSON.stringify(diffusion.config)}), got ${JSON.stringify(anchor.config)}`);
  }
  await checkPhotos(photos, 'photos', diffusion);
  await checkPhotos(models.others, 'others (photos of other people)', diffusion);
  const job: JobOptions = { signal: opts.signal };
  const scope = new Scope();
  let trainer: Trainer<'diffusion'> | undefined;
  try {
    const forget = emptyStates();
    const retain = emptyStates();
    const seqInv = await diffusion.invert(await takeRows([photos], [[0, 0]]), { t0: o.t0, steps: o.steps, keepAll: true, signal: job.signal });
    const seq = [...seqInv.ts, o.t0];
    seqInv.hs.forEach((h) => h.dispose());
    seqInv.xLat.dispose();
    seqInv.hR.dispose();
    const picks = sampledSteps(o.steps, perCode);
    const decodeArgs = { t0: o.t0, steps: o.steps, tEdit: o.tEdit };

    // A retain photo that the encoder takes for the person would teach the model to keep her: it is left out
    // (and named in the report); if none is left, the call is refused (before any long work).
    const othersEmb = scope.add(await encoder.embed(models.others, { protocol: o.protocol, signal: job.signal }));
    const photosEmb = scope.add(await encoder.embed(photos, { protocol: o.protocol, signal: job.signal }));
    const lookAlike = new Set<number>();
    for (let i = 0; i < photos.shape[0]; i++) {
      const row = scope.add(await takeRows([photosEmb], [[0, i]]));
      const sim = await similarity(othersEmb, row, job);
      (await sim.data()).forEach((v, k) => v >= o.threshold && lookAlike.add(k));
      sim.dispose();
    }
    const keptOthers = Array.from({ length: models.others.shape[0] }, (_, k) => k).filter((k) => !lookAlike.has(k));
    if (keptOthers.length === 0) throw invalidArgument(`others: every picture looks like the person to unlearn (similarity ≥ the threshold ${o.threshold}); give photos of other people`);
    const others = lookAlike.size ? scope.add(await takeRows([models.others], keptOthers.map((k) => [0, k]))) : models.others;
    const othersEmbKept = lookAlike.size ? scope.add(await takeRows([othersEmb], keptOthers.map((k) => [0, k]))) : othersEmb;

    const othersInv = await diffusion.invert(others, { t0: o.t0, steps: o.steps, signal: job.signal });
    scope.add(othersInv.xLat);
    scope.add(othersInv.hR);

    // Each photo's black hole and absorbed code ĥ_r; Δh = ĥ_r − h_r.
    const per = { fR: [] as Tensor[], absorbed: [] as Tensor[], xLat: [] as Tensor[], hR: [] as Tensor[], dh: [] as Tensor[], variants: [] as Tensor[], variantOf: [] as number[] };
    for (let i = 0; i < photos.shape[0]; i++) {
      const photo = scope.add(await takeRows([photos], [[0, i]]));
      const bh = await formBlackHole(photo, { ...o, ...models, signal: job.signal });
      try {
        const ab = await absorbIdentity(bh, { ...o, ...models, signal: job.signal });
        try {
          const hHat = scope.add(await takeRows([ab.codes], [[0, ab.chosen]]));
          per.absorbed.push(scope.add(await takeRows([ab.images], [[0, ab.chosen]])));
          per.dh.push(scope.add(await combine(hHat, bh.hR, -1)));
          per.fR.push(scope.add(await takeRows([bh.fR], [[0, 0]])));
          per.xLat.push(scope.add(await takeRows([bh.xLat], [[0, 0]])));
          per.hR.push(scope.add(await takeRows([bh.hR], [[0, 0]])));
          // inside the black hole: h_r moved part of the way (half α_max) towards other people's codes,
          // as the neighbours are drawn; decoded, these are other pictures of the person
          if (variants > 0) {
            const toward = Array.from({ length: variants }, (_, k): [number, number] => [0, (i * variants + k) % othersInv.hR.shape[0]]);
            const targets = scope.add(await takeRows([othersInv.hR], toward));
            const codes = scope.add(await towards(bh.hR, targets, bh.alphaMax / 2));
            per.variants.push(scope.add(await diffusion.decode(bh.xLat, codes, { mode: 'every-step', hRef: bh.hR, ...decodeArgs, eta: 0, signal: job.signal })));
            per.variantOf.push(...toward.map(() => i));
          }
        } finally {
          ab.dispose();
        }
      } finally {
        bh.dispose();
      }
    }
    const photoIds = Array.from({ length: photos.shape[0] }, (_, i) => i);
    const given: Codes = { xLat: scope.add(await allRows(per.xLat)), hR: scope.add(await allRows(per.hR)), dh: scope.add(await allRows(per.dh)), hHat: null, photo: photoIds };
    given.hHat = scope.add(await combine(given.hR, given.dh!, 1));
    await trajectories(diffusion, given, seq, picks, decodeArgs, job, forget);
    if (plainStates) await trajectories(diffusion, { ...given, plain: true }, seq, picks.filter((j) => j > 0), decodeArgs, job, forget);

    // Other pictures of the person (made from the photos): inverted like photos and shifted by their photo's
    // Δh; kept only where the encoder still takes them for the person and the frozen model, so shifted,
    // decodes them below the threshold.
    const fRAll = scope.add(await allRows(per.fR));
    const extraCodes = async (images: Tensor, of: number[]): Promise<ExtraCodesReport> => {
      const inv = await diffusion.invert(images, { t0: o.t0, steps: o.steps, signal: job.signal });
      const rows = of.map((p): [number, number] => [0, p]);
      const v: Codes = { xLat: scope.add(inv.xLat), hR: scope.add(inv.hR), dh: scope.add(await takeRows([given.dh!], rows)), hHat: null };
      v.hHat = scope.add(await combine(v.hR, v.dh!, 1));
      const refs = scope.add(await takeRows([fRAll], rows));
      const shifted = scope.add(await diffusion.decode(v.xLat, v.hHat, { mode: 'every-step', hRef: v.hR, ...decodeArgs, eta: 0, batchSize: 64, signal: job.signal }));
      const similarity = Array.from(await identitySimilarity(encoder, images, refs, o, job));
      const absorbed = Array.from(await identitySimilarity(encoder, shifted, refs, o, job));
      const keep = absorbed.map((a, k) => (similarity[k] >= o.threshold && a < o.threshold ? k : -1)).filter((k) => k >= 0);
      if (keep.length > 0) {
        const pick = (t: Tensor) => takeRows([t], keep.map((k) => [0, k]));
        const kept: Codes = { xLat: scope.add(await pick(v.xLat)), hR: scope.add(await pick(v.hR)), dh: scope.add(await pick(v.dh!)), hHat: scope.add(await pick(v.hHat)), photo: keep.map((k) => of[k]) };
        await trajectories(diffusion, kept, seq, picks, decodeArgs, job, forget);
      }
      return { made: absorbed.length, kept: keep.length, similarity, absorbed };
    };
    const variantReport = per.variants.length > 0 ? await extraCodes(scope.add(await allRows(per.variants)), per.variantOf) : undefined;
    // The person's face in other people's pictures: photo i's face region in retain photos (i·N + k) mod M.
    let compositeReport: ExtraCodesReport | undefined;
    if (composites > 0) {
      const of = Array.from({ length: photos.shape[0] * composites }, (_, j) => Math.floor(j / composites));
      const scenes = of.map((_, j) => j % others.shape[0]);
      compositeReport = await extraCodes(scope.add(await blendFaces(photos, of, others, scenes, faceRegion)), of);
    }

    // The mirrored photos: their own inversion, with the mirrored shift (the UNet is convolutional, so
    // mirroring the photo mirrors h; the report says how far the mirrored shift erases).
    let mirroredAbsorbed: Tensor | null = null;
    if (mirror) {
      const flipped = scope.add(await mirrored(photos));
      const inv = await diffusion.invert(flipped, { t0: o.t0, steps: o.steps, signal: job.signal });
      const m: Codes = { xLat: scope.add(inv.xLat), hR: scope.add(inv.hR), dh: scope.add(await mirrored(given.dh!)), hHat: null, photo: photoIds };
      m.hHat = scope.add(await combine(m.hR, m.dh!, 1));
      await trajectories(diffusion, m, seq, picks, decodeArgs, job, forget);
      const decoded = scope.add(await diffusion.decode(m.xLat, m.hHat, { mode: 'every-step', hRef: m.hR, ...decodeArgs, eta: 0, signal: job.signal }));
      mirroredAbsorbed = scope.add(await mirrored(decoded));
    }

    // Other people: their own reconstruction trajectories, unedited (by the anchor when one is given).
    const otherIds = Array.from({ length: others.shape[0] }, (_, k) => k);
    let retainCodes: Codes = { xLat: othersInv.xLat, hR: othersInv.hR, dh: null, hHat: null, other: otherIds };
    if (anchor !== diffusion) {
      const anchored = await anchor.invert(others, { t0: o.t0, steps: o.steps, signal: job.signal });
      retainCodes = { xLat: scope.add(anchored.xLat), hR: scope.add(anchored.hR), dh: null, hHat: null, other: otherIds };
    }
    await trajectories(anchor, retainCodes, seq, picks, decodeArgs, job, retain);
    [...forget.x, ...forget.eps, ...retain.x, ...retain.eps].forEach((t) => scope.add(t));

    trainer = await createTrainer('diffusion', diffusion, {
      lr,
      seed,
      trainable: params === 'all' ? undefined : DECODER_PREFIXES,
      adapterRank: params === 'adapters' ? adapterRank : undefined,
      device: diffusion.device as never,
      signal: job.signal,
    });
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
    let xParts = [...forget.x, ...retain.x];
    let epsParts = [...forget.eps, ...retain.eps];
    // refreshEvery: the states along the student's own trajectories, replaced at each refresh
    const base = { forget: forget.at.length, retain: retain.at.length, forgetParts: forget.x.length, retainParts: retain.x.length };
    let refreshed: Tensor[] = [];
    const refresh = async () => {
      const student = await trainer!.model({ signal: job.signal });
      try {
        const f = emptyStates();
        const r = emptyStates();
        await trajectories(anchor, retainCodes, seq, picks.filter((j) => j > 0), decodeArgs, job, r, student);
        if (plainStates) await trajectories(diffusion, { ...given, plain: true }, seq, picks.filter((j) => j > 0), decodeArgs, job, f, student);
        refreshed.forEach((t) => scope.keep(t).dispose());
        refreshed = [...f.x, ...f.eps, ...r.x, ...r.eps].map((t) => scope.add(t));
        forget.at.length = base.forget;
        retain.at.length = base.retain;
        forget.x.length = forget.eps.length = base.forgetParts;
        retain.x.length = retain.eps.length = base.retainParts;
        for (const s of f.at) forget.at.push({ ...s, part: s.part + base.forgetParts });
        for (const s of r.at) retain.at.push({ ...s, part: s.part + base.retainParts });
        forget.x.push(...f.x);
        forget.eps.push(...f.eps);
        retain.x.push(...r.x);
        retain.eps.push(...r.eps);
        xParts = [...forget.x, ...retain.x];
        epsParts = [...forget.eps, ...retain.eps];
      } finally {
        student.dispose();
      }
    };
    // identity term: each forget state's photo embedding, a zero row for retain states
    const D = fRAll.shape[1];
    const withIdentity = identityWeight > 0 || identityKeepWeight > 0;
    const zero = withIdentity ? scope.add(await tensor(new Float32Array(D), [1, D], { device: fRAll.device as never })) : null;
    const idHinge: number[] = [];
    const idSimilarity: number[] = [];
    const keepTerm: number[] = [];
    const keepSimilarity: number[] = [];
    for (let step = first; step < iterations; step++) {
      if (refreshEvery > 0 && step > 0 && (step % refreshEvery === 0 || step === first)) await refresh();
      const chosen: States['at'] = [];
      for (let b = 0; b < batchSize; b++) {
        const fromRetain = b < nRetain;
        const pool = fromRetain ? retain : forget;
        const s = pool.at[rand(pool.at.length)];
        chosen.push(fromRetain ? { ...s, part: forget.x.length + s.part } : s);
      }
      const rows = chosen.map((c): [number, number] => [c.part, c.row]);
      const images = await takeRows(xParts, rows);
      const targets = await takeRows(epsParts, rows);
      const embeddings = identityWeight > 0 ? await takeRows([fRAll, zero!], chosen.map((c): [number, number] => (c.photo >= 0 ? [0, c.photo] : [1, 0]))) : undefined;
      const keep = identityKeepWeight > 0 ? await takeRows([othersEmbKept, zero!], chosen.map((c): [number, number] => (c.other >= 0 ? [0, c.other] : [1, 0]))) : undefined;
      try {
        const identity = withIdentity ? { encoder, embeddings, keep, weight: identityWeight, keepWeight: identityKeepWeight, margin: identityMargin, protocol: o.protocol } : undefined;
        const r = await trainer.step({ images, labels: Int32Array.from(chosen.map((c) => c.t)), targets, identity }, { lr, signal: job.signal });
        losses.push(r.loss);
        if (r.parts.identity !== undefined) {
          idHinge.push(r.parts.identity);
          idSimilarity.push(r.parts.identitySimilarity);
        }
        if (r.parts.identityKeep !== undefined) {
          keepTerm.push(r.parts.identityKeep);
          keepSimilarity.push(r.parts.identityKeepSimilarity);
        }
        opts.onStep?.({ step: r.step, iterations, loss: r.loss });
        if (opts.onCheckpoint && (r.step % checkpointEvery === 0 || r.step === iterations)) await opts.onCheckpoint(trainer, r.step);
      } finally {
        images.dispose();
        targets.dispose();
        embeddings?.dispose();
        keep?.dispose();
      }
    }
    const model = await trainer.model({ signal: job.signal });

    // The report: plain reconstructions (no edit) by both models.
    const recon = (m: DiffusionModel, xl: Tensor) => m.decode(xl, null, { t0: o.t0, steps: o.steps, eta: 0, batchSize: 64, signal: job.signal });
    const before = await recon(diffusion, given.xLat);
    const after = await recon(model, given.xLat);
    const absorbedAll = await allRows(per.absorbed);
    const othersBefore = await recon(diffusion, othersInv.xLat);
    const othersAfter = await recon(model, othersInv.xLat);
    const fR = fRAll;
    // each image against its own reference row (pairwise similarity of equal batches): one embedding job
    const simEach = async (images: Tensor, refs: Tensor) => Array.from(await identitySimilarity(encoder, images, refs, o, job));
    const report: UnlearnReport = {
      photos: photos.shape[0],
      others: others.shape[0],
      ...(lookAlike.size ? { othersLeftOut: [...lookAlike].sort((a, b) => a - b) } : {}),
      params,
      iterations,
      mirror,
      forgetStates: forget.at.length,
      retainStates: retain.at.length,
      forget: {
        before: await simEach(before, fR),
        after: await simEach(after, fR),
        absorbed: await simEach(absorbedAll, fR),
        ...(mirroredAbsorbed ? { mirroredAbsorbed: await simEach(mirroredAbsorbed, fR) } : {}),
      },
      retain: { before: await simEach(othersBefore, othersEmbKept), after: await simEach(othersAfter, othersEmbKept) },
      ...(variantReport ? { variants: variantReport } : {}),
      ...(compositeReport ? { composites: compositeReport } : {}),
      ...(withIdentity ? { identity: { weight: identityWeight, margin: identityMargin, hinge: idHinge, similarity: idSimilarity, keepWeight: identityKeepWeight, keep: keepTerm, keepSimilarity } } : {}),
      losses,
      seconds: (performance.now() - start) / 1000,
    };
    const images = { before, after, absorbed: absorbedAll, others: await allRows([others]), othersBefore, othersAfter };
    const kept = params === 'adapters' ? trainer : undefined;
    if (kept) trainer = undefined; // the result owns it: it writes the patch
    const dispose = () => {
      model.dispose();
      kept?.dispose();
      Object.values(images).forEach((t) => t.dispose());
    };
    const saveAdapter = kept ? (path: string) => kept.saveAdapter(path, { metadata: { 'bia.unlearn': JSON.stringify({ photos: report.photos, iterations }) } }) : undefined;
    return { model, images, report, saveAdapter, dispose, [Symbol.dispose]: dispose };
  } finally {
    trainer?.dispose();
    scope.dispose();
  }
}

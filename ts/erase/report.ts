/**
 * The evaluation and the report of one erase job: the hashes that identify its inputs, what the
 * `evaluate` stage measures on the output (the second recognizer, preservation, the degenerate
 * baselines at equal similarity), and the EraseReport assembled from every stage.
 */
import { takeRows } from '../blackhole/codes';
import type { JobOptions } from '../jobs';
import { imageLosses, PERCEPTUAL_SUBSTITUTE } from '../losses';
import type { Tensor } from '../tensor';
import { cachedSha256File, sha256 } from '../util/hash';
import { VERSION } from '../version';
import type { Absorption } from './absorb';
import type { RandomBaseline } from './baseline';
import type { EraseCall, EraseModels } from './call';
import { matchSimilarity, type MatchedBaseline } from './degenerate';
import type { BlackHole } from './form';
import { identitySimilarity } from './measure';
import type { ResolvedEraseOptions } from './options';
import type { StageClock } from './progress';
import type { Scope } from './scope';
import type { DegenerateBaseline, EraseReport } from './types';

/** SHA-256 of the input (the file's when the caller gives it, else of the image tensor's bytes) and of the model files. */
export interface InputHashes {
  input: string;
  diffusion: string | null;
  encoder: string | null;
  secondEncoder: string | null;
}

export async function hashInputs(image: Tensor, call: EraseCall, models: EraseModels): Promise<InputHashes> {
  const input = call.inputSha256 ?? sha256(new Uint8Array((await image.data()).buffer));
  const [diffusion, encoder, secondEncoder] = await Promise.all([
    cachedSha256File(models.diffusion.source),
    cachedSha256File(models.encoder.source),
    cachedSha256File(models.secondEncoder?.source ?? null),
  ]);
  return { input, diffusion, encoder, secondEncoder };
}

/** What the stages before `evaluate` made: the input, its black hole, the absorption, the output and the random baseline. */
export interface Outcome {
  image: Tensor;
  bh: BlackHole;
  ab: Absorption;
  /** The chosen candidate's image, [1, 3, H, W]. */
  output: Tensor;
  base: RandomBaseline | null;
}

/** What the `evaluate` stage measures. */
export interface Evaluation {
  /** The similarities under the second recognizer, when there is one. */
  second?: EraseReport['sid']['second'];
  /** The output against the input. */
  preservation: { mse: number; ssim: number };
  /** The fade and blur of the input's face at the output's similarity (their images are in the scope). */
  degenerate: { fade: MatchedBaseline; blur: MatchedBaseline } | null;
  degenerateReport: EraseReport['degenerateBaselines'];
}

/** The `evaluate` stage; the tensors it makes go into `scope`. */
export async function evaluate(x: Outcome, models: EraseModels, o: ResolvedEraseOptions, job: JobOptions, clock: StageClock, scope: Scope): Promise<Evaluation> {
  const { image, bh, output, base } = x;
  const chosen = x.ab.candidates[x.ab.chosen];
  let second: EraseReport['sid']['second'];
  if (models.secondEncoder) {
    const f2 = scope.add(await models.secondEncoder.embed(image, { protocol: o.protocol, signal: job.signal }));
    const parts = [bh.reconstruction, output, ...(base ? [base.image] : [])];
    const all = scope.add(await takeRows(parts, parts.map((_, i) => [i, 0] as [number, number]), job));
    const s2 = await identitySimilarity(models.secondEncoder, all, f2, o, job);
    second = { reconstruction: s2[0], after: s2[1], randomBaseline: base ? s2[2] : null };
  }
  const pres = await imageLosses(output, image, job);
  // The degenerate baselines: fade and blur of the input's face region at the output's similarity.
  let degenerate: Evaluation['degenerate'] = null;
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
  return { ...(second ? { second } : {}), preservation: { mse: pres.mse[0], ssim: pres.ssim[0] }, degenerate, degenerateReport };
}

/** The report of a finished job (plain data: report.json is exactly this). */
export function buildReport(call: EraseCall, models: EraseModels, o: ResolvedEraseOptions, x: Outcome, hashes: InputHashes, ev: Evaluation, timings: EraseReport['timings']): EraseReport {
  const { image, bh, ab, base } = x;
  const chosen = ab.candidates[ab.chosen];
  return {
    version: VERSION,
    input: { name: call.inputName ?? 'input', width: image.shape[3], height: image.shape[2], sha256: hashes.input },
    models: {
      diffusion: { path: models.diffusion.source, sha256: hashes.diffusion, config: { ...models.diffusion.config }, autocast: models.diffusion.autocast },
      encoder: { path: models.encoder.source, sha256: hashes.encoder, arch: models.encoder.arch },
      ...(models.secondEncoder ? { secondEncoder: { path: models.secondEncoder.source, sha256: hashes.secondEncoder, arch: models.secondEncoder.arch } } : {}),
      perceptual: models.perceptual ? models.perceptual.name : PERCEPTUAL_SUBSTITUTE,
    },
    options: o,
    device: models.diffusion.device,
    sid: {
      reconstruction: bh.reconstructionSimilarity,
      after: chosen.similarity,
      randomBaseline: base ? base.similarity : null,
      ...(ev.second ? { second: ev.second } : {}),
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
            geometricMargin: bh.boundary.geometricMargin,
            supportVectors: bh.boundary.supportVectors,
          }
        : null,
      sourceDistance: bh.boundary ? bh.boundary.sR : null,
      hNorm: bh.hNorm,
      wrap: bh.wrap.indices.map((index, k) => ({ index, label: bh.wrap.labels[k], distance: bh.wrap.distances[k] ?? NaN })),
    },
    absorption: {
      mode: ab.mode,
      ...(ab.backprop ? { backprop: ab.backprop } : {}),
      candidates: ab.candidates,
      chosen: ab.chosen,
      ...(ab.losses ? { losses: ab.losses } : {}),
    },
    randomBaseline: base ? { distance: chosen.distance, similarity: base.similarity, sem: base.sem } : null,
    degenerateBaselines: ev.degenerateReport,
    preservation: ev.preservation,
    timings,
    seeds: { neighbours: o.seed, svm: o.seed, walk: o.seed + 1, randomBaseline: o.seed + 2, decode: o.seed },
    finishedAt: new Date().toISOString(),
  };
}

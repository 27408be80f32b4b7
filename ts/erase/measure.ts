/** The per-image numbers every stage of the erase job measures: identity similarity, L_sem, and how candidates decode. */
import { BiaError } from '../errors';
import { similarity, type IdentityEncoder } from '../identity';
import type { JobOptions } from '../jobs';
import { imageLosses } from '../losses';
import type { Tensor } from '../tensor';
import type { EraseModels } from './call';
import type { ResolvedEraseOptions } from './options';

/** cos(E(image_i), f_r) per image; a non-finite one (an image that is not finite) is an error. */
export async function identitySimilarity(encoder: IdentityEncoder, images: Tensor, fR: Tensor, o: ResolvedEraseOptions, job: JobOptions): Promise<Float64Array> {
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
export async function semanticLoss(images: Tensor, ref: Tensor, o: ResolvedEraseOptions, models: EraseModels, job: JobOptions): Promise<{ sem: Float64Array; mse: Float64Array; ssim: Float64Array }> {
  const l = await imageLosses(images, ref, { ...job, perceptual: models.perceptual });
  return { sem: l.mse.map((m, i) => m + o.lambdaPerc * l.perceptual[i]), mse: l.mse, ssim: l.ssim };
}

/** How moved codes are decoded (the absorption's candidates and the random baseline): injected, with quality boosting. */
export function decodeOptions(o: ResolvedEraseOptions, hR: Tensor, job: JobOptions) {
  return { mode: o.inject, eta: o.eta, t0: o.t0, steps: o.steps, tEdit: o.tEdit, tBoost: o.tBoost, etaBoost: o.etaBoost, seed: o.seed, hRef: hR, batchSize: o.batchSize, signal: job.signal };
}

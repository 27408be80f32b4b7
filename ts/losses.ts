/**
 * Image losses of the absorption step (docs/METHOD.md step 8): MSE, SSIM, the image-gradient L1 and
 * the weight-free perceptual substitute L_perc = (1 − SSIM) + mean |∇a − ∇b| that stands in for
 * VGG16 when no weights are given (named so in reports). SSIM uses an 11×11 Gaussian window
 * (σ 1.5), C1 = (0.01·2)², C2 = (0.03·2)² for images in [-1, 1]. Computed in float64 in C++.
 */
import { invalidArgument } from './errors';
import { runJob, type JobOptions } from './jobs';
import { loadAddon } from './native';
import { Tensor } from './tensor';

export interface ImageLosses {
  /** Per image. */
  mse: Float64Array;
  ssim: Float64Array;
  gradL1: Float64Array;
  /** (1 − ssim) + gradL1: the weight-free perceptual substitute. */
  perceptual: Float64Array;
}

export const PERCEPTUAL_SUBSTITUTE = '(1 - SSIM) + image-gradient L1 (weight-free substitute for VGG16)';

/** Losses between image batches a and b ([B, C, H, W], same shape, H and W at least 11). */
export async function imageLosses(a: Tensor, b: Tensor, opts?: JobOptions): Promise<ImageLosses> {
  if (!(a instanceof Tensor) || !(b instanceof Tensor)) throw invalidArgument('imageLosses takes two Tensors');
  const [sa, sb] = [a.shape, b.shape];
  if (sa.length !== 4 || sa.join() !== sb.join()) throw invalidArgument(`imageLosses needs two [B, C, H, W] tensors of the same shape, got ${JSON.stringify(sa)} and ${JSON.stringify(sb)}`);
  if (sa[2] < 11 || sa[3] < 11) throw invalidArgument('SSIM needs images of at least 11x11');
  const [ha, hb] = [a.handle, b.handle];
  return runJob(opts, (j) => loadAddon().imageLosses(ha, hb, j));
}

/**
 * Image losses of the absorption step (docs/method.md step 8): MSE, SSIM, the image-gradient L1 and
 * the weight-free perceptual substitute L_perc = (1 − SSIM) + mean |∇a − ∇b| that stands in for
 * VGG16 when no weights are given (named so in reports). SSIM uses an 11×11 Gaussian window
 * (σ 1.5), C1 = (0.01·2)², C2 = (0.03·2)² for images in [-1, 1]. Computed in float64 in C++.
 * With a `perceptual` model (./perceptual: VGG16 weights), L_perc is its distance instead.
 */
import { invalidArgument } from './errors';
import { runJob, type JobOptions } from './jobs';
import { loadAddon } from './native';
import { checkPerceptualPair, PerceptualModel } from './perceptual';
import { Tensor } from './tensor';

export interface ImageLosses {
  /** Per image. */
  mse: Float64Array;
  ssim: Float64Array;
  gradL1: Float64Array;
  /** L_perc: (1 − ssim) + gradL1 (the weight-free substitute), or the `perceptual` model's distance. */
  perceptual: Float64Array;
  /** Which L_perc `perceptual` holds: PERCEPTUAL_SUBSTITUTE or the model's name (VGG16_PERCEPTUAL). */
  perceptualName: string;
}

export interface ImageLossesOptions extends JobOptions {
  /** VGG16 weights: `perceptual` becomes their distance (computed in the model's dtype) instead of the substitute. */
  perceptual?: PerceptualModel;
}

export const PERCEPTUAL_SUBSTITUTE = '(1 - SSIM) + image-gradient L1 (weight-free substitute for VGG16)';

/**
 * Losses between image batches a and b ([B, C, H, W], same shape, H and W at least 11; C = 3 with a
 * perceptual model). b may also be one image [1, C, H, W], compared with each image of a.
 */
export async function imageLosses(a: Tensor, b: Tensor, opts?: ImageLossesOptions): Promise<ImageLosses> {
  if (!(a instanceof Tensor) || !(b instanceof Tensor)) throw invalidArgument('imageLosses takes two Tensors');
  const [sa, sb] = [a.shape, b.shape];
  const oneRef = sb.length === 4 && sb[0] === 1 && sa.slice(1).join() === sb.slice(1).join();
  if (sa.length !== 4 || (sa.join() !== sb.join() && !oneRef)) {
    throw invalidArgument(`imageLosses needs two [B, C, H, W] tensors of the same shape (or b one image), got ${JSON.stringify(sa)} and ${JSON.stringify(sb)}`);
  }
  if (sa[2] < 11 || sa[3] < 11) throw invalidArgument('SSIM needs images of at least 11x11');
  let net = null;
  if (opts?.perceptual !== undefined) {
    if (!(opts.perceptual instanceof PerceptualModel)) throw invalidArgument('perceptual must be a PerceptualModel');
    checkPerceptualPair(a, b);
    net = opts.perceptual.native;
  }
  const [ha, hb] = [a.handle, b.handle];
  return runJob(opts, (j) => loadAddon().imageLosses(ha, hb, net, j));
}

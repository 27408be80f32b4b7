/**
 * The learned perceptual distance L_perc of the absorption step (docs/method.md step 8): VGG16
 * features at relu1_2, relu2_2 and relu3_3 of images in [-1, 1] mapped to [0, 1] and normalised with
 * ImageNet's mean (0.485, 0.456, 0.406) and std (0.229, 0.224, 0.225), no clamping;
 * distance_i = Σ over the three layers of mean_{c,y,x} |φ(a_i) − φ(b_i)|. Its batch mean is the
 * released BIA code's VGG feature mean-L1 sum. Without VGG16 weights the absorption uses the
 * weight-free substitute of ./losses (PERCEPTUAL_SUBSTITUTE).
 *
 * Weights: torchvision's `vgg16-397923af.pth` (torch zip or legacy format), the same keys in
 * safetensors (what save() writes), or a features-only state dict (`vgg16().features.state_dict()`).
 * Only features.0–14 (up to relu3_3) are used; the rest of a whole-model file is ignored. vgg16_bn and
 * other VGG layouts are refused (BIA_CHECKPOINT_MISMATCH), as is a file missing a needed tensor.
 */
import { invalidArgument } from './errors';
import { runJob, type JobOptions } from './jobs';
import { NativeModel, tensorHandle } from './model';
import { loadAddon, type NativePerceptual } from './native';
import { checkDevice, checkDtype, COMPUTE_DTYPES, type ComputeDtype, type Device } from './options';
import { Tensor } from './tensor';

/** What PerceptualModel.name (and reports) call the VGG16 distance. */
export const VGG16_PERCEPTUAL = 'vgg16 relu1_2/relu2_2/relu3_3 mean L1';

export interface PerceptualOptions {
  device?: Device;
  dtype?: ComputeDtype;
}

function checkOptions(opts?: PerceptualOptions): { device: Device; dtype: ComputeDtype } {
  return {
    device: opts?.device === undefined ? 'cpu' : checkDevice(opts.device),
    dtype: opts?.dtype === undefined ? 'float32' : (checkDtype(opts.dtype, 'dtype', COMPUTE_DTYPES) as ComputeDtype),
  };
}

const FLOATING = ['float32', 'float64', 'float16', 'bfloat16'];

/** The image pair a distance takes: [B, 3, H, W], same H and W (≥ 4), equal batches or one of them 1. */
export function checkPerceptualPair(a: unknown, b: unknown): void {
  if (!(a instanceof Tensor) || !(b instanceof Tensor)) throw invalidArgument('the perceptual distance takes two Tensors');
  const [sa, sb] = [a.shape, b.shape];
  if (sa.length !== 4 || sb.length !== 4 || sa[1] !== 3 || sb[1] !== 3) {
    throw invalidArgument(`the VGG16 perceptual distance takes RGB images [B, 3, H, W]; got ${JSON.stringify(sa)} and ${JSON.stringify(sb)}`);
  }
  if (sa[2] !== sb[2] || sa[3] !== sb[3]) throw invalidArgument(`the VGG16 perceptual distance needs images of the same size; got ${JSON.stringify(sa)} and ${JSON.stringify(sb)}`);
  if (sa[2] < 4 || sa[3] < 4) throw invalidArgument(`the VGG16 perceptual distance needs images of at least 4x4; got ${JSON.stringify(sa)}`);
  if (sa[0] < 1 || sb[0] < 1) throw invalidArgument('the VGG16 perceptual distance got an empty batch');
  if (sa[0] !== sb[0] && sa[0] !== 1 && sb[0] !== 1) throw invalidArgument(`the VGG16 perceptual distance needs equal batches (or one of them 1); got ${sa[0]} and ${sb[0]}`);
  if (!FLOATING.includes(a.dtype) || !FLOATING.includes(b.dtype)) throw invalidArgument('the VGG16 perceptual distance needs floating-point images');
}

export class PerceptualModel extends NativeModel<NativePerceptual> {
  /** @internal */
  constructor(native: NativePerceptual) {
    super(native, 'PerceptualModel');
  }

  /** The distance's name, as reports give it: VGG16_PERCEPTUAL. */
  get name(): string {
    return this.native.name;
  }

  /** The distance per image between a and b ([B, 3, H, W] in [-1, 1]; b may have batch 1). */
  async distance(a: Tensor, b: Tensor, opts?: JobOptions): Promise<Float64Array> {
    const n = this.native;
    checkPerceptualPair(a, b);
    const [ha, hb] = [a.handle, b.handle];
    return runJob(opts, (j) => n.distance(ha, hb, j));
  }

  /** The distance and its gradient ∂(Σ_i distance_i)/∂a (a tensor shaped like a, on a's device). */
  async gradient(a: Tensor, b: Tensor, opts?: JobOptions): Promise<{ distance: Float64Array; gradient: Tensor }> {
    const n = this.native;
    checkPerceptualPair(a, b);
    const [ha, hb] = [a.handle, b.handle];
    const r = await runJob(opts, (j) => n.gradient(ha, hb, j));
    return { distance: r.distance, gradient: new Tensor(r.gradient) };
  }

  /** The features [relu1_2, relu2_2, relu3_3] of images [B, 3, H, W] in [-1, 1] (model dtype and device). */
  async features(images: Tensor, opts?: JobOptions): Promise<[Tensor, Tensor, Tensor]> {
    const n = this.native;
    checkPerceptualPair(images, images);
    const x = tensorHandle(images, 'images');
    const f = await runJob(opts, (j) => n.features(x, j));
    return [new Tensor(f[0]), new Tensor(f[1]), new Tensor(f[2])];
  }
}

/** A VGG16 with torchvision's random initialisation (for tests and benchmarks; seeded). */
export async function createPerceptual(opts?: PerceptualOptions & { seed?: number } & JobOptions): Promise<PerceptualModel> {
  const { device, dtype } = checkOptions(opts);
  const seed = opts?.seed ?? 0;
  if (!Number.isSafeInteger(seed) || seed < 0) throw invalidArgument('seed must be a non-negative integer');
  return new PerceptualModel(await runJob(opts, (j) => loadAddon().createPerceptual(seed, device, dtype, j)));
}

/** Load VGG16 weights (see the layouts above) from a torch.save file or safetensors. */
export async function loadPerceptual(path: string, opts?: PerceptualOptions & JobOptions): Promise<PerceptualModel> {
  if (typeof path !== 'string' || path.length === 0) throw invalidArgument('path must be a non-empty string');
  const { device, dtype } = checkOptions(opts);
  return new PerceptualModel(await runJob(opts, (j) => loadAddon().loadPerceptual(path, device, dtype, j)));
}

/**
 * Identity encoders (ArcFace family) for BIA's labels, losses and evaluation: TreB1eN's IR-SE50
 * (`model_ir_se50.pth`), insightface's iresnet r18/r34/r50/r100 (`backbone.pth`) and
 * MobileFaceNet. Embeddings are L2-normalised; sim(a, b) is their cosine.
 */
import { resolve as resolvePath } from 'node:path';
import { invalidArgument } from './errors';
import { runJob, type JobOptions } from './jobs';
import { NativeModel, tensorHandle } from './model';
import { loadAddon, type NativeEncoder, type NativeTensor } from './native';
import { checkDevice, checkDtype, COMPUTE_DTYPES, type ComputeDtype, type Device } from './options';
import { Tensor } from './tensor';

export type IdentityArch = 'ir_se50' | 'iresnet18' | 'iresnet34' | 'iresnet50' | 'iresnet100' | 'mobilefacenet';
export const IDENTITY_ARCHS: readonly IdentityArch[] = ['ir_se50', 'iresnet18', 'iresnet34', 'iresnet50', 'iresnet100', 'mobilefacenet'];

/**
 * How images reach the 112×112 encoder:
 * - 'bia': 256² in [-1, 1] → crop rows 35:223, cols 32:220 → adaptive average pool to 112 (BIA /
 *   DiffusionCLIP; the default);
 * - 'insightface': 112² aligned faces in [-1, 1] ((x/255 − 0.5)/0.5), as they are;
 * - 'resize': any size → 112² (average pooling down, bilinear up).
 */
export type InputProtocol = 'bia' | 'insightface' | 'resize';
export const INPUT_PROTOCOLS: readonly InputProtocol[] = ['bia', 'insightface', 'resize'];

export interface EncoderOptions {
  device?: Device;
  dtype?: ComputeDtype;
}

function checkEncoderOptions(opts?: EncoderOptions): { device: Device; dtype: ComputeDtype } {
  return {
    device: opts?.device === undefined ? 'cpu' : checkDevice(opts.device),
    dtype: opts?.dtype === undefined ? 'float32' : (checkDtype(opts.dtype, 'dtype', COMPUTE_DTYPES) as ComputeDtype),
  };
}

function checkArch(arch: unknown): IdentityArch {
  if (typeof arch !== 'string' || !IDENTITY_ARCHS.includes(arch as IdentityArch)) {
    throw invalidArgument(`arch must be one of ${IDENTITY_ARCHS.join(', ')}; got ${JSON.stringify(arch)}`);
  }
  return arch as IdentityArch;
}


export class IdentityEncoder extends NativeModel<NativeEncoder> {
  /** @internal */
  constructor(native: NativeEncoder) {
    super(native, 'IdentityEncoder');
  }

  get arch(): IdentityArch {
    return this.native.arch as IdentityArch;
  }
  /** Channel scale relative to the official network (1 = official). */
  get width(): number {
    return this.native.width;
  }
  get embeddingSize(): number {
    return this.native.embeddingSize;
  }
  /**
   * The pixel normalisation the weights expect, e.g. "(x/255 - 0.5) / 0.5" (ArcFace) or
   * "(x - 127) / 128" (the converted faceplugin MobileFaceNet); embed() maps [-1, 1] images to it.
   */
  get inputNormalisation(): string {
    return this.native.inputNormalisation;
  }

  /** Embeddings [B, D] of images [B, 3, H, W] in [-1, 1] (L2-normalised unless normalize: false). */
  async embed(images: Tensor, opts?: { protocol?: InputProtocol; normalize?: boolean } & JobOptions): Promise<Tensor> {
    const n = this.native;
    const x = tensorHandle(images, 'images');
    const protocol = opts?.protocol ?? 'bia';
    if (!INPUT_PROTOCOLS.includes(protocol)) throw invalidArgument(`protocol must be one of ${INPUT_PROTOCOLS.join(', ')}; got ${JSON.stringify(protocol)}`);
    if (opts?.normalize !== undefined && typeof opts.normalize !== 'boolean') throw invalidArgument('normalize must be a boolean');
    return new Tensor(await runJob(opts, (j) => n.embed(x, { protocol, normalize: opts?.normalize }, j)));
  }
}

/** An encoder with LibTorch's default (seeded) initialisation; `width` scales every channel count. */
export async function createIdentityEncoder(
  arch: IdentityArch,
  opts?: EncoderOptions & { width?: number; embeddingSize?: number; seed?: number } & JobOptions,
): Promise<IdentityEncoder> {
  const a = checkArch(arch);
  const { device, dtype } = checkEncoderOptions(opts);
  const width = opts?.width ?? 1;
  if (!(typeof width === 'number' && width > 0 && width <= 4)) throw invalidArgument(`width must be a number in (0, 4], got ${JSON.stringify(width)}`);
  const emb = opts?.embeddingSize ?? 512;
  if (!Number.isInteger(emb) || emb < 1 || emb > 65536) throw invalidArgument(`embeddingSize must be an integer in [1, 65536], got ${JSON.stringify(emb)}`);
  const seed = opts?.seed ?? 0;
  if (!Number.isSafeInteger(seed) || seed < 0) throw invalidArgument('seed must be a non-negative integer');
  return new IdentityEncoder(await runJob(opts, (j) => loadAddon().createIdentityEncoder(a, width, emb, seed, device, dtype, j)));
}

/**
 * Load an encoder checkpoint (torch.save zip/legacy, or safetensors). The architecture, width and
 * embedding size are read from its keys and shapes; `arch`, when given, must agree.
 */
export async function loadIdentityEncoder(path: string, opts?: EncoderOptions & { arch?: IdentityArch; strict?: boolean } & JobOptions): Promise<IdentityEncoder> {
  if (typeof path !== 'string' || path.length === 0) throw invalidArgument('path must be a non-empty string');
  const arch = opts?.arch === undefined ? null : checkArch(opts.arch);
  const { device, dtype } = checkEncoderOptions(opts);
  const m = new IdentityEncoder(await runJob(opts, (j) => loadAddon().loadIdentityEncoder(path, arch, device, dtype, opts?.strict ?? true, j)));
  m.source = resolvePath(path);
  return m;
}

/**
 * Cosine similarities of embeddings a [N, D] and b [M, D]: pairwise → [N] (equal batches, or one
 * of them 1), or every pair with `matrix: true` → [N, M].
 */
export async function similarity(a: Tensor, b: Tensor, opts?: { matrix?: boolean } & JobOptions): Promise<Tensor> {
  const ha = tensorHandle(a, 'a');
  const hb = tensorHandle(b, 'b');
  return new Tensor(await runJob(opts, (j) => loadAddon().cosineSimilarity(ha, hb, opts?.matrix ?? false, j)));
}

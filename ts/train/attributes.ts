/**
 * The attribute estimator: a small CNN that regresses a float vector per image (e.g. the synthetic
 * portraits' non-identity attributes), used only to measure attribute preservation. Architecture in
 * native/train.h; trained with createTrainer('attributes', …); saved as safetensors with its config
 * in the "bia.attributes.config" metadata.
 */
import { resolve as resolvePath } from 'node:path';
import { invalidArgument } from '../errors';
import { runJob, type JobOptions } from '../jobs';
import { NativeModel, tensorHandle } from '../model';
import { loadAddon, type NativeAttributeConfig, type NativeAttributes } from '../native';
import { checkDevice, checkDtype, checkInt, COMPUTE_DTYPES, type ComputeDtype, type Device } from '../options';
import { Tensor } from '../tensor';

/** stages × [conv3×3 s2 → GN → SiLU → conv3×3 → GN → SiLU] (width·2^i channels, at most 8·width), mean pool, linear. */
export type AttributeConfig = NativeAttributeConfig;

export const ATTRIBUTE_DEFAULTS: AttributeConfig = { inChannels: 3, outputs: 8, width: 32, stages: 4 };

export function checkAttributeConfig(config: unknown): AttributeConfig {
  if (typeof config !== 'object' || config === null) throw invalidArgument('the attribute estimator config must be an object');
  const c = { ...ATTRIBUTE_DEFAULTS, ...(config as Partial<AttributeConfig>) };
  checkInt(c.inChannels, 'config.inChannels', 1, 64);
  checkInt(c.outputs, 'config.outputs', 1, 65536);
  checkInt(c.width, 'config.width', 1, 1024);
  checkInt(c.stages, 'config.stages', 1, 8);
  return { inChannels: c.inChannels, outputs: c.outputs, width: c.width, stages: c.stages };
}

export class AttributeEstimator extends NativeModel<NativeAttributes> {
  /** @internal */
  constructor(native: NativeAttributes) {
    super(native, 'AttributeEstimator');
  }

  get config(): AttributeConfig {
    return this.native.config;
  }

  /** Predicted attributes [B, outputs] (float32) of images [B, C, H, W] in [-1, 1]. */
  async predict(images: Tensor, opts?: JobOptions): Promise<Tensor> {
    const n = this.native;
    const x = tensorHandle(images, 'images');
    return new Tensor(await runJob(opts, (j) => n.predict(x, j)));
  }

  /** The head's input: the last stage's activations averaged over space, [B, channels] (float32). */
  async features(images: Tensor, opts?: JobOptions): Promise<Tensor> {
    const n = this.native;
    const x = tensorHandle(images, 'images');
    return new Tensor(await runJob(opts, (j) => n.features(x, j)));
  }
}

function checkOpts(opts?: { device?: Device; dtype?: ComputeDtype }): { device: Device; dtype: ComputeDtype } {
  return {
    device: opts?.device === undefined ? 'cpu' : checkDevice(opts.device),
    dtype: opts?.dtype === undefined ? 'float32' : (checkDtype(opts.dtype, 'dtype', COMPUTE_DTYPES) as ComputeDtype),
  };
}

/** A freshly initialised estimator (LibTorch's default initialisation, seeded). */
export async function createAttributeEstimator(
  config: Partial<AttributeConfig>,
  opts?: { seed?: number; device?: Device; dtype?: ComputeDtype } & JobOptions,
): Promise<AttributeEstimator> {
  const c = checkAttributeConfig(config);
  const { device, dtype } = checkOpts(opts);
  const seed = opts?.seed === undefined ? 0 : checkInt(opts.seed, 'seed', 0, 2 ** 52);
  return new AttributeEstimator(await runJob(opts, (j) => loadAddon().createAttributeEstimator(c, seed, device, dtype, j)));
}

/** Load an estimator saved by save() (or a trainer checkpoint, with strict: false). */
export async function loadAttributeEstimator(
  path: string,
  opts?: { device?: Device; dtype?: ComputeDtype; strict?: boolean } & JobOptions,
): Promise<AttributeEstimator> {
  if (typeof path !== 'string' || path.length === 0) throw invalidArgument('path must be a non-empty string');
  const { device, dtype } = checkOpts(opts);
  if (opts?.strict !== undefined && typeof opts.strict !== 'boolean') throw invalidArgument('strict must be a boolean');
  const m = new AttributeEstimator(await runJob(opts, (j) => loadAddon().loadAttributeEstimator(path, device, dtype, opts?.strict ?? true, j)));
  m.source = resolvePath(path);
  return m;
}

/**
 * The Trainer: one network being trained (the DDPM UNet, an identity encoder with an ArcFace head
 * and an optional auxiliary regression head, or the attribute estimator), AdamW, EMA of the weights
 * and checkpoints that resume bit-identically. Each method is one native job; schedules live in the
 * caller (see ./loop), which passes the step's lr and ArcFace margin.
 *
 * Losses: 'diffusion' ε-prediction (t ~ U{0..999}, x_t = √ᾱ_t·x0 + √(1−ᾱ_t)·ε, MSE(ε_θ(x_t, t), ε));
 * 'encoder' cross-entropy of s·cos(θ + m·[target]) (ArcFace; m = 0: normalised softmax) on integer
 * labels, plus auxWeight·MSE(Linear(ê), targets); 'attributes' MSE(net(x), targets).
 */
import { invalidArgument } from '../errors';
import { callNative, runJob, type JobOptions } from '../jobs';
import { DiffusionModel, createDiffusion, type UNetConfig, type UNetPreset, UNET_PRESETS } from '../diffusion';
import { IdentityEncoder, createIdentityEncoder, IDENTITY_ARCHS, type IdentityArch, type InputProtocol } from '../identity';
import { loadAddon, type NativeDiffusion, type NativeEncoder, type NativeAttributes, type NativeTensor, type NativeTrainBatch, type NativeTrainer, type NativeTrainerModel, type NativeTrainerOptions } from '../native';
import { checkDevice, checkInt, type Device } from '../options';
import { Tensor } from '../tensor';
import { NativeHandle } from '../model';
import { AttributeEstimator, createAttributeEstimator, checkAttributeConfig, type AttributeConfig } from './attributes';

export type TrainTarget = 'diffusion' | 'encoder' | 'attributes';
export const TRAIN_TARGETS: readonly TrainTarget[] = ['diffusion', 'encoder', 'attributes'];

/** What each target trains, and what model() gives back. */
export interface TargetModels {
  diffusion: DiffusionModel;
  encoder: IdentityEncoder;
  attributes: AttributeEstimator;
}

/** What a trainer can start from: an existing model (its weights are copied) or a description. */
export interface TargetSpecs {
  diffusion: DiffusionModel | UNetPreset | (Partial<UNetConfig> & { preset?: UNetPreset });
  encoder: IdentityEncoder | { arch: IdentityArch; width?: number; embeddingSize?: number };
  attributes: AttributeEstimator | Partial<AttributeConfig>;
}

/** The trainer's options: the addon's (ts/native.ts documents each), with a checked device and the UNet's dropout. */
export interface TrainerOptions extends NativeTrainerOptions {
  device?: Device;
  /** Diffusion: the UNet's dropout while training (default: the model's config's; presets have 0). */
  dropout?: number;
}

/**
 * One batch. labels: integer identities (encoder with classes); targets: [B, auxDim] or [B, outputs] floats.
 * Diffusion distillation: images are states x_t, labels their timesteps and targets (a Tensor of the images'
 * shape) the ε to predict there; without labels and targets a diffusion batch is clean images (the DDPM loss).
 */
export interface Batch {
  images: Tensor;
  labels?: Int32Array | Tensor;
  targets?: Float32Array | Tensor;
  /**
   * Diffusion distillation only: identity terms added to the loss. From each state's x_t and the UNet's ε̂
   * the implied clean image x̂0 = (x_t − √(1−ᾱ_t)·ε̂)/√ᾱ_t goes through the frozen `encoder` (its weights get no
   * gradient). `embeddings`: weight · mean over the rows with a non-zero embedding of
   * relu(cos(E(x̂0), embedding) − margin), which pushes those states' pictures away from that person
   * (StepResult.parts `identity`, and `identitySimilarity` the rows' mean cosine). `keep`: keepWeight · mean over
   * the rows with a non-zero row of relu(cos(E(x̂0 of the target ε), keep) − cos(E(x̂0), keep)): those pictures
   * must stay at least as like that person as the target's (parts `identityKeep`, `identityKeepSimilarity`).
   * Rows of zeros have no such term.
   */
  identity?: IdentityTerm;
}

export interface IdentityTerm {
  encoder: IdentityEncoder;
  /** [B, D]: per state, the person to move away from (D the encoder's embedding size). */
  embeddings?: Tensor;
  /** [B, D]: per state, the person to stay like. */
  keep?: Tensor;
  /** Default 1. */
  weight?: number;
  /** Default 1. */
  keepWeight?: number;
  /** Cosine below which a state costs nothing, in [-1, 1) (default 0). */
  margin?: number;
  /** How x̂0 reaches the encoder (default 'resize'). */
  protocol?: InputProtocol;
}

export interface StepResult {
  loss: number;
  /** The loss's terms and diagnostics: mse; arcface, accuracy, aux; gradNorm (training only). */
  parts: Record<string, number>;
  /** Compute time of the step in C++. */
  seconds: number;
  /** Optimiser steps done after this call. */
  step: number;
  images: number;
}

export interface TrainerInfo {
  target: TrainTarget;
  model: Record<string, unknown>;
  options: Record<string, unknown>;
  parameterCount: number;
  headParameterCount: number;
  device: string;
}

function finiteIn(v: unknown, what: string, lo: number, hi: number, hiOpen = true): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < lo || (hiOpen ? v >= hi : v > hi)) {
    throw invalidArgument(`${what} must be a number in [${lo}, ${hi}${hiOpen ? ')' : ']'}, got ${JSON.stringify(v)}`);
  }
  return v;
}

function checkBool(v: unknown, what: string): void {
  if (v !== undefined && typeof v !== 'boolean') throw invalidArgument(`${what} must be a boolean`);
}

/** Validate trainer options (BIA_INVALID_ARGUMENT with the option's name). */
export function checkTrainerOptions(target: TrainTarget, o: TrainerOptions | undefined): NativeTrainerOptions & { dropout?: number } {
  const opts = o ?? {};
  if (typeof opts !== 'object') throw invalidArgument('options must be an object');
  const known = new Set(['lr', 'weightDecay', 'betas', 'eps', 'emaDecay', 'emaWarmup', 'channelsLast', 'seed', 'gradClip', 'classes', 'auxDim', 'auxWeight', 'scale', 'flip', 'blur', 'blurProb', 'noise', 'device', 'dropout', 'trainable', 'adapterRank', 'adapterAlpha', 'signal', 'onProgress']);
  for (const k of Object.keys(opts)) if (!known.has(k)) throw invalidArgument(`unknown trainer option '${k}'`);
  if (opts.lr !== undefined) finiteIn(opts.lr, 'lr', 0, 10);
  if (opts.weightDecay !== undefined) finiteIn(opts.weightDecay, 'weightDecay', 0, 10);
  if (opts.eps !== undefined && !(typeof opts.eps === 'number' && opts.eps > 0 && opts.eps < 1)) throw invalidArgument('eps must be a number in (0, 1)');
  if (opts.betas !== undefined) {
    if (!Array.isArray(opts.betas) || opts.betas.length !== 2) throw invalidArgument('betas must be [beta1, beta2]');
    opts.betas.forEach((b, i) => finiteIn(b, `betas[${i}]`, 0, 1));
  }
  if (opts.emaDecay !== undefined) finiteIn(opts.emaDecay, 'emaDecay', 0, 1);
  checkBool(opts.emaWarmup, 'emaWarmup');
  checkBool(opts.channelsLast, 'channelsLast');
  checkBool(opts.flip, 'flip');
  if (opts.seed !== undefined) checkInt(opts.seed, 'seed', 0, 2 ** 52);
  if (opts.gradClip !== undefined) finiteIn(opts.gradClip, 'gradClip', 0, Infinity);
  if (opts.classes !== undefined) checkInt(opts.classes, 'classes', 0, 2 ** 24);
  if (opts.auxDim !== undefined) checkInt(opts.auxDim, 'auxDim', 0, 65536);
  if (opts.auxWeight !== undefined) finiteIn(opts.auxWeight, 'auxWeight', 0, Infinity);
  if (opts.scale !== undefined) finiteIn(opts.scale, 'scale', 1e-6, 1024, false);
  if (opts.blur !== undefined) finiteIn(opts.blur, 'blur', 0, 16, false);
  if (opts.blurProb !== undefined) finiteIn(opts.blurProb, 'blurProb', 0, 1, false);
  if (opts.noise !== undefined) finiteIn(opts.noise, 'noise', 0, 4, false);
  if (opts.dropout !== undefined) finiteIn(opts.dropout, 'dropout', 0, 1);
  if (opts.trainable !== undefined && (!Array.isArray(opts.trainable) || opts.trainable.length > 256 || opts.trainable.some((p) => typeof p !== 'string' || p.length === 0))) {
    throw invalidArgument('trainable must be an array of non-empty parameter-name prefixes');
  }
  if (opts.adapterRank !== undefined) checkInt(opts.adapterRank, 'adapterRank', 0, 1024);
  if (opts.adapterAlpha !== undefined) finiteIn(opts.adapterAlpha, 'adapterAlpha', 0, 1e4);
  if (opts.adapterRank && opts.emaDecay) throw invalidArgument('emaDecay is not available with adapters (adapterRank > 0)');
  const device = opts.device === undefined ? 'cpu' : checkDevice(opts.device);
  if (target === 'encoder') {
    if (!opts.classes && !opts.auxDim) throw invalidArgument('an encoder trainer needs classes (ArcFace head) and/or auxDim (auxiliary regression head)');
    if (opts.classes === 1) throw invalidArgument('classes must be at least 2');
  } else {
    if (opts.classes || opts.auxDim) throw invalidArgument(`classes and auxDim are options of the 'encoder' target, not '${target}'`);
  }
  if (target === 'diffusion' && (opts.blur || opts.noise)) throw invalidArgument("blur and noise augmentation are for the 'encoder' and 'attributes' targets");
  if (target !== 'diffusion' && opts.dropout !== undefined) throw invalidArgument("dropout is an option of the 'diffusion' target");
  return {
    lr: opts.lr, weightDecay: opts.weightDecay, betas: opts.betas, eps: opts.eps, emaDecay: opts.emaDecay, emaWarmup: opts.emaWarmup,
    channelsLast: opts.channelsLast ?? false, seed: opts.seed, gradClip: opts.gradClip, classes: opts.classes, auxDim: opts.auxDim,
    auxWeight: opts.auxWeight, scale: opts.scale, flip: opts.flip, blur: opts.blur, blurProb: opts.blurProb, noise: opts.noise, device,
    dropout: opts.dropout, trainable: opts.trainable, adapterRank: opts.adapterRank, adapterAlpha: opts.adapterAlpha,
  };
}

/** The batch as native handles; temporaries made here are returned for disposal. */
function nativeBatch(batch: Batch): { native: NativeTrainBatch; temporaries: NativeTensor[] } {
  if (typeof batch !== 'object' || batch === null) throw invalidArgument('batch must be an object {images, labels?, targets?}');
  if (!(batch.images instanceof Tensor)) throw invalidArgument('batch.images must be a Tensor');
  const images = batch.images.handle;
  const n = images.shape[0];
  const temporaries: NativeTensor[] = [];
  const addon = loadAddon();
  let labels: NativeTensor | undefined;
  let targets: NativeTensor | undefined;
  if (batch.labels instanceof Int32Array) {
    if (batch.labels.length !== n) throw invalidArgument(`batch.labels has ${batch.labels.length} entries for ${n} images`);
    labels = callNative(() => addon.tensorFromArray(batch.labels as Int32Array, [n], 'int64'));
    temporaries.push(labels);
  } else if (batch.labels !== undefined) {
    if (!(batch.labels instanceof Tensor)) throw invalidArgument('batch.labels must be an Int32Array or a Tensor');
    labels = batch.labels.handle;
  }
  if (batch.targets instanceof Float32Array) {
    const t = batch.targets;
    if (n === 0 || t.length % n !== 0) throw invalidArgument(`batch.targets has ${t.length} numbers, not a multiple of the ${n} images`);
    targets = callNative(() => addon.tensorFromArray(t, [n, t.length / n]));
    temporaries.push(targets);
  } else if (batch.targets !== undefined) {
    if (!(batch.targets instanceof Tensor)) throw invalidArgument('batch.targets must be a Float32Array or a Tensor');
    targets = batch.targets.handle;
  }
  let identity: NativeTrainBatch['identity'];
  if (batch.identity !== undefined) {
    const id = batch.identity;
    const tensorOrNone = (v: unknown) => v === undefined || v instanceof Tensor;
    if (typeof id !== 'object' || id === null || !(id.encoder instanceof IdentityEncoder) || !tensorOrNone(id.embeddings) || !tensorOrNone(id.keep) || (!id.embeddings && !id.keep)) {
      throw invalidArgument('batch.identity must be { encoder: IdentityEncoder, embeddings?: Tensor [B, D], keep?: Tensor [B, D] (at least one), weight?, keepWeight?, margin?, protocol? }');
    }
    if (id.weight !== undefined) finiteIn(id.weight, 'batch.identity.weight', 0, 1e6);
    if (id.keepWeight !== undefined) finiteIn(id.keepWeight, 'batch.identity.keepWeight', 0, 1e6);
    if (id.margin !== undefined) finiteIn(id.margin, 'batch.identity.margin', -1, 1);
    identity = { encoder: id.encoder.native, embeddings: id.embeddings?.handle, keep: id.keep?.handle, weight: id.weight, keepWeight: id.keepWeight, margin: id.margin, protocol: id.protocol };
  }
  return { native: { images, labels, targets, identity }, temporaries };
}

export class Trainer<T extends TrainTarget = TrainTarget> extends NativeHandle<NativeTrainer> {
  /** @internal */
  constructor(native: NativeTrainer) {
    super(native, 'Trainer');
  }

  get target(): T {
    return this.native.target as T;
  }
  /** Optimiser steps done (as of the last finished call). */
  get stepCount(): number {
    return this.native.step;
  }
  get info(): TrainerInfo {
    return JSON.parse(this.native.info) as TrainerInfo;
  }

  /** One optimiser step on a batch with this step's learning rate and (encoder) ArcFace margin. */
  async step(batch: Batch, opts?: { lr?: number; arcfaceMargin?: number } & JobOptions): Promise<StepResult> {
    const n = this.native;
    if (opts?.lr !== undefined) finiteIn(opts.lr, 'lr', 0, 10);
    if (opts?.arcfaceMargin !== undefined) finiteIn(opts.arcfaceMargin, 'arcfaceMargin', 0, 1.5);
    const b = nativeBatch(batch);
    try {
      return await runJob(opts, (j) => n.trainStep(b.native, { lr: opts?.lr, margin: opts?.arcfaceMargin }, j));
    } finally {
      for (const t of b.temporaries) t.dispose();
    }
  }

  /** The loss (and parts, e.g. accuracy) of a batch without training: eval mode, no augmentation, seeded draws. */
  async evaluate(batch: Batch, opts?: { arcfaceMargin?: number; seed?: number } & JobOptions): Promise<StepResult> {
    const n = this.native;
    if (opts?.arcfaceMargin !== undefined) finiteIn(opts.arcfaceMargin, 'arcfaceMargin', 0, 1.5);
    if (opts?.seed !== undefined) checkInt(opts.seed, 'seed', 0, 2 ** 52);
    const b = nativeBatch(batch);
    try {
      return await runJob(opts, (j) => n.evaluate(b.native, { margin: opts?.arcfaceMargin, seed: opts?.seed }, j));
    } finally {
      for (const t of b.temporaries) t.dispose();
    }
  }

  /**
   * Write a checkpoint (safetensors, atomically): the network under its official names, head.*, ema.*,
   * optim.exp_avg.*, optim.exp_avg_sq.*, optim.step, and the trainer's metadata ("bia.trainer") plus
   * the model's own ("bia.unet.config" / "arch" / "bia.attributes.config"), so that loadDiffusion /
   * loadIdentityEncoder / loadAttributeEstimator read it with strict: false (with adapters, lora.* too: such a
   * load gives the base network without them; use model() or saveAdapter for the adapted one). Resolves to the
   * step written.
   */
  async save(path: string, opts?: { metadata?: Record<string, string> } & JobOptions): Promise<number> {
    const n = this.native;
    if (typeof path !== 'string' || path.length === 0) throw invalidArgument('path must be a non-empty string');
    const metadata = opts?.metadata ?? {};
    for (const [k, v] of Object.entries(metadata)) if (typeof v !== 'string') throw invalidArgument(`metadata['${k}'] must be a string`);
    return runJob(opts, (j) => n.save(path, metadata, j));
  }

  /** Restore a checkpoint of a trainer built the same way (network, heads, EMA): weights, EMA, AdamW state and step. */
  async load(path: string, opts?: JobOptions): Promise<{ step: number; metadata: Record<string, string> }> {
    const n = this.native;
    if (typeof path !== 'string' || path.length === 0) throw invalidArgument('path must be a non-empty string');
    return runJob(opts, (j) => n.load(path, j));
  }

  /** A copy of the trained network as the library's model (EMA weights when EMA is on, unless ema: false). */
  async model(opts?: { ema?: boolean } & JobOptions): Promise<TargetModels[T]> {
    const n = this.native;
    checkBool(opts?.ema, 'ema');
    const target = this.target;
    const m = await runJob(opts, (j) => n.model({ ema: opts?.ema }, j));
    if (target === 'diffusion') return new DiffusionModel(m as NativeDiffusion) as TargetModels[T];
    if (target === 'encoder') return new IdentityEncoder(m as NativeEncoder) as TargetModels[T];
    return new AttributeEstimator(m as NativeAttributes) as TargetModels[T];
  }

  /**
   * The gradient of evaluate()'s loss (eval mode, seeded draws) with respect to every tensor that learns,
   * under the optimiser's names (the network's, head.*, lora.*); nothing is updated. For gradient checks.
   */
  async gradients(batch: Batch, opts?: { arcfaceMargin?: number; seed?: number } & JobOptions): Promise<Map<string, Tensor>> {
    const n = this.native;
    if (opts?.arcfaceMargin !== undefined) finiteIn(opts.arcfaceMargin, 'arcfaceMargin', 0, 1.5);
    if (opts?.seed !== undefined) checkInt(opts.seed, 'seed', 0, 2 ** 52);
    const b = nativeBatch(batch);
    try {
      const entries = await runJob(opts, (j) => n.gradients(b.native, { margin: opts?.arcfaceMargin, seed: opts?.seed }, j));
      return new Map(entries.map(([k, v]) => [k, new Tensor(v)]));
    } finally {
      for (const t of b.temporaries) t.dispose();
    }
  }

  /**
   * Write the low-rank adapters (a trainer made with adapterRank > 0) as a patch: safetensors with
   * "<layer>.lora_down.weight" [r, fan-in] and "<layer>.lora_up.weight" [out, r] per adapted layer and the
   * metadata "bia.lora" {rank, alpha} (and, for a UNet, its config). `mergeAdapter` applies it to a model.
   * Resolves to the number of adapted layers.
   */
  async saveAdapter(path: string, opts?: { metadata?: Record<string, string> } & JobOptions): Promise<number> {
    const n = this.native;
    if (typeof path !== 'string' || path.length === 0) throw invalidArgument('path must be a non-empty string');
    const metadata = opts?.metadata ?? {};
    for (const [k, v] of Object.entries(metadata)) if (typeof v !== 'string') throw invalidArgument(`metadata['${k}'] must be a string`);
    return runJob(opts, (j) => n.saveAdapter(path, metadata, j));
  }

  /** Copies of everything a checkpoint holds, under the checkpoint's names (inspection, tests). */
  async snapshot(opts?: JobOptions): Promise<Map<string, Tensor>> {
    const n = this.native;
    const entries = await runJob(opts, (j) => n.snapshot(j));
    return new Map(entries.map(([k, v]) => [k, new Tensor(v)]));
  }

}

/**
 * A trainer for `target`, starting from `model` (an existing model, whose weights are copied; or a
 * description, built with the seeded default initialisation).
 */
export async function createTrainer<T extends TrainTarget>(target: T, model: TargetSpecs[T], opts?: TrainerOptions & JobOptions): Promise<Trainer<T>> {
  if (!TRAIN_TARGETS.includes(target)) throw invalidArgument(`target must be one of ${TRAIN_TARGETS.join(', ')}; got ${JSON.stringify(target)}`);
  const o = checkTrainerOptions(target, opts);
  const { dropout, ...nativeOptions } = o;
  const seed = o.seed ?? 0;
  let spec: NativeTrainerModel;
  const owned: { dispose(): void }[] = [];
  try {
    if (target === 'diffusion') {
      const given = model as TargetSpecs['diffusion'];
      let m: DiffusionModel;
      if (given instanceof DiffusionModel) {
        m = given;
      } else {
        if (typeof given === 'string' && !UNET_PRESETS.includes(given)) throw invalidArgument(`unknown UNet preset '${given}' (known: ${UNET_PRESETS.join(', ')})`);
        m = await createDiffusion(given, { seed, channelsLast: false });
        owned.push(m);
      }
      const config = { ...m.config, dropout: dropout ?? m.config.dropout };
      spec = { config, weights: m.native.stateDict() };
    } else if (target === 'encoder') {
      const given = model as TargetSpecs['encoder'];
      let m: IdentityEncoder;
      if (given instanceof IdentityEncoder) {
        m = given;
      } else {
        if (typeof given !== 'object' || given === null || !IDENTITY_ARCHS.includes(given.arch)) throw invalidArgument(`the encoder model must be an IdentityEncoder or {arch, width?, embeddingSize?} with arch one of ${IDENTITY_ARCHS.join(', ')}`);
        m = await createIdentityEncoder(given.arch, { width: given.width, embeddingSize: given.embeddingSize, seed });
        owned.push(m);
      }
      spec = { arch: m.arch, width: m.width, embeddingSize: m.embeddingSize, weights: m.native.stateDict() };
    } else {
      const given = model as TargetSpecs['attributes'];
      let m: AttributeEstimator;
      if (given instanceof AttributeEstimator) {
        m = given;
      } else {
        m = await createAttributeEstimator(checkAttributeConfig(given), { seed });
        owned.push(m);
      }
      spec = { config: m.config, weights: m.native.stateDict() };
    }
    const n = await runJob(opts, (j) => loadAddon().createTrainer(target, spec, nativeOptions, j));
    return new Trainer<T>(n);
  } finally {
    for (const m of owned) m.dispose();
  }
}

/** ArcFace logits s·cos(θ + m·[j = label]) of embeddings [B, D] against class weights [C, D] (m = 0: s·cos θ). */
export async function arcfaceLogits(embeddings: Tensor, weight: Tensor, labels: Int32Array | Tensor, opts?: { arcfaceMargin?: number; scale?: number } & JobOptions): Promise<Tensor> {
  if (!(embeddings instanceof Tensor) || !(weight instanceof Tensor)) throw invalidArgument('embeddings and weight must be Tensors');
  const arcfaceMargin = opts?.arcfaceMargin === undefined ? 0 : finiteIn(opts.arcfaceMargin, 'arcfaceMargin', 0, 1.5);
  const scale = opts?.scale === undefined ? 32 : finiteIn(opts.scale, 'scale', 1e-6, 1024, false);
  const addon = loadAddon();
  const l = labels instanceof Int32Array ? callNative(() => addon.tensorFromArray(labels, [labels.length], 'int64')) : labels instanceof Tensor ? labels.handle : null;
  if (!l) throw invalidArgument('labels must be an Int32Array or a Tensor');
  try {
    return new Tensor(await runJob(opts, (j) => addon.arcfaceLogits(embeddings.handle, weight.handle, l, arcfaceMargin, scale, j)));
  } finally {
    if (labels instanceof Int32Array) l.dispose();
  }
}

/**
 * A new diffusion model: `model`'s weights with the adapter patch at `path` (written by
 * Trainer.saveAdapter, e.g. `bia unlearn --params adapters`) merged in, W + (α / r)·up·down per layer; `model` is
 * untouched. BIA_CHECKPOINT_MISMATCH when the patch names layers the model lacks or shapes that do not fit.
 */
export async function mergeAdapter(model: DiffusionModel, path: string, opts?: JobOptions): Promise<DiffusionModel> {
  if (!(model instanceof DiffusionModel)) throw invalidArgument('model must be a DiffusionModel');
  if (typeof path !== 'string' || path.length === 0) throw invalidArgument('path must be a non-empty string');
  const native = model.native;
  return new DiffusionModel(await runJob(opts, (j) => loadAddon().mergeAdapter(native, path, j)));
}

/**
 * The built-in default models of the synthetic portrait world, and the recipes that train them
 * (issue "Built-in default models"): a DDPM UNet (the official architecture at ch 32), an identity
 * encoder (iresnet18 at width 0.25, 128-d, ArcFace head on 2,000 identities plus an auxiliary head
 * regressing the generator's identity parameters) and an attribute estimator (used only to measure
 * preservation). Training is resumable: full trainer state lives in .cache/train/, the exported
 * weights in models/ with models/manifest.json (sha256, config, command, data seed, metrics).
 *
 *   node dist/ts/world/defaults.js train <encoder|diffusion|attributes> [--minutes M] [--steps N] [--fresh]
 *   node dist/ts/world/defaults.js export <encoder|diffusion|attributes>     (the trainer checkpoint → models/)
 *   node dist/ts/world/defaults.js evaluate <encoder|diffusion|attributes>
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { loadDiffusion, type DiffusionModel, type UNetConfig } from '../diffusion';
import { invalidArgument } from '../errors';
import { loadIdentityEncoder, similarity, type IdentityEncoder } from '../identity';
import { imageLosses } from '../losses';
import { comparisonGrid, writeFileAtomic } from '../images';
import { takeRows } from '../blackhole/codes';
import { randn, type Tensor } from '../tensor';
import { sha256File } from '../util/hash';
import { loadAttributeEstimator, type AttributeEstimator } from '../train/attributes';
import { train } from '../train/loop';
import { cosineSchedule, linearRamp, piecewise } from '../train/schedules';
import { createTrainer, type Batch } from '../train/trainer';
import { createRng, hashSeed, IDENTITY_NAMES, attributeNames } from './attributes';
import { HELDOUT_IDENTITIES, portraitBatch, TRAIN_IDENTITIES, type PortraitItem } from './portraits';
import { QUALITY_OUTPUTS, qualityBatch } from './quality';

export const ROOT = path.resolve(__dirname, '..', '..', '..');
export const MODELS_DIR = path.join(ROOT, 'models');
const CACHE_DIR = path.join(ROOT, '.cache', 'train');
export const MANIFEST = path.join(MODELS_DIR, 'manifest.json');

/**
 * The world's models: the DDPM and the identity encoder used by the erase job, and three networks used
 * only to measure it (never in a loss): the attribute estimator, the portrait-quality net (validity and
 * realism, ./quality) and a second recognizer of another architecture and seed.
 */
export type DefaultModel = 'encoder' | 'diffusion' | 'attributes' | 'quality' | 'recognizer';
export const DEFAULT_MODELS: readonly DefaultModel[] = ['diffusion', 'encoder', 'attributes', 'quality', 'recognizer'];
export const DEFAULT_FILES: Record<DefaultModel, string> = {
  diffusion: path.join(MODELS_DIR, 'portrait-unet.safetensors'),
  encoder: path.join(MODELS_DIR, 'portrait-encoder.safetensors'),
  attributes: path.join(MODELS_DIR, 'portrait-attributes.safetensors'),
  quality: path.join(MODELS_DIR, 'portrait-quality.safetensors'),
  recognizer: path.join(MODELS_DIR, 'portrait-recognizer2.safetensors'),
};

/** The UNet of the official DDPM code at ch 32: ~1.5 M parameters, h = 256×8×8 at 64². */
export const PORTRAIT_UNET: Partial<UNetConfig> = { ch: 32, chMult: [1, 2, 2, 2], numResBlocks: 1, attnResolutions: [16], resolution: 64, dropout: 0.1 };
export const PORTRAIT_ENCODER = { arch: 'iresnet18' as const, width: 0.25, embeddingSize: 128 };
/** The second recognizer: another architecture (MobileFaceNet), width, embedding size and seed. */
export const PORTRAIT_RECOGNIZER2 = { arch: 'mobilefacenet' as const, width: 0.5, embeddingSize: 96 };
/** The quality net: the attribute estimator's architecture with the quality outputs. */
export const PORTRAIT_QUALITY = { outputs: QUALITY_OUTPUTS.length, width: 32, stages: 4 };
/** Seeds of the training data streams (batch k of model m is drawn from hashSeed(seed, k)). */
export const DATA_SEEDS: Record<DefaultModel, number> = { encoder: 11, diffusion: 22, attributes: 33, quality: 55, recognizer: 44 };

interface Recipe {
  batch: number;
  steps: number;
  lr: number;
}
export const RECIPES: Record<DefaultModel, Recipe> = {
  encoder: { batch: 64, steps: 2000, lr: 2e-3 },
  diffusion: { batch: 32, steps: 6000, lr: 5e-4 },
  attributes: { batch: 64, steps: 1500, lr: 2e-3 },
  quality: { batch: 64, steps: 1200, lr: 2e-3 },
  recognizer: { batch: 64, steps: 2500, lr: 2e-3 },
};

function itemsFor(model: DefaultModel, batch: number, step: number, range: readonly [number, number]): PortraitItem[] {
  const rng = createRng(hashSeed(DATA_SEEDS[model], step));
  return Array.from({ length: batch }, () => ({ identity: range[0] + Math.floor(rng() * (range[1] - range[0])), seed: Math.floor(rng() * 2 ** 32) }));
}

/** batch(step), rendering step + 1 while step trains. */
function prefetching(make: (step: number) => Promise<Batch>): { data: (step: number) => Promise<Batch>; drain(): Promise<void> } {
  let ahead: { step: number; p: Promise<Batch> } | null = null;
  return {
    data: async (step) => {
      const p = ahead && ahead.step === step ? ahead.p : make(step);
      if (ahead && ahead.step !== step) void ahead.p.then((b) => b.images.dispose());
      ahead = { step: step + 1, p: make(step + 1) };
      return p;
    },
    drain: async () => {
      if (ahead) (await ahead.p).images.dispose();
      ahead = null;
    },
  };
}

function batchMaker(model: DefaultModel): (step: number) => Promise<Batch> {
  const { batch } = RECIPES[model];
  let ddpm: Promise<DiffusionModel> | null = null;
  return async (step) => {
    const b = await portraitBatch(itemsFor(model, batch, step, TRAIN_IDENTITIES));
    if (model === 'quality') {
      ddpm ??= loadDiffusion(DEFAULT_FILES.diffusion);
      const q = await qualityBatch(b.images, await ddpm, hashSeed(DATA_SEEDS.quality, step));
      b.images.dispose();
      return { images: q.images, targets: q.targets };
    }
    if (model === 'encoder' || model === 'recognizer') return { images: b.images, labels: b.identities, targets: b.identityParams };
    if (model === 'attributes') return { images: b.images, targets: b.attributes };
    return { images: b.images };
  };
}

interface ManifestEntry {
  file: string;
  sha256: string;
  bytes: number;
  parameters: number;
  config: unknown;
  command: string;
  dataSeed: number;
  steps: number;
  /** Wall time of the run that wrote the entry (null for an export of a checkpoint). */
  trainingSeconds: number | null;
  metrics: Record<string, unknown>;
  trainedAt: string;
}

export function readManifest(): Record<string, ManifestEntry> {
  return existsSync(MANIFEST) ? (JSON.parse(readFileSync(MANIFEST, 'utf8')) as Record<string, ManifestEntry>) : {};
}

async function writeManifestEntry(name: DefaultModel, e: ManifestEntry): Promise<void> {
  const m = readManifest();
  m[name] = e;
  await writeFileAtomic(MANIFEST, `${JSON.stringify(m, null, 2)}\n`, 'manifest');
}

/** Train (or continue training) one default model for at most `minutes` or until `steps`. */
export async function trainDefault(model: DefaultModel, opts: { minutes?: number; steps?: number; fresh?: boolean; exportOnly?: boolean; log?: (s: string) => void } = {}): Promise<void> {
  const r = RECIPES[model];
  const steps = opts.steps ?? r.steps;
  mkdirSync(CACHE_DIR, { recursive: true });
  mkdirSync(MODELS_DIR, { recursive: true });
  const ckpt = path.join(CACHE_DIR, `${model}.safetensors`);
  const encoderOptions = { lr: r.lr, weightDecay: 5e-4, classes: TRAIN_IDENTITIES[1] - TRAIN_IDENTITIES[0], auxDim: IDENTITY_NAMES.length, auxWeight: 1, blur: 1.0, noise: 0.05, emaDecay: 0.999, emaWarmup: true };
  const trainer =
    model === 'encoder'
      ? await createTrainer('encoder', PORTRAIT_ENCODER, { ...encoderOptions, seed: 1 })
      : model === 'recognizer'
        ? await createTrainer('encoder', PORTRAIT_RECOGNIZER2, { ...encoderOptions, seed: 7 })
        : model === 'diffusion'
          ? await createTrainer('diffusion', PORTRAIT_UNET, { lr: r.lr, weightDecay: 0, emaDecay: 0.999, emaWarmup: true, gradClip: 1, seed: 1 })
          : model === 'quality'
            ? await createTrainer('attributes', PORTRAIT_QUALITY, { lr: r.lr, weightDecay: 1e-4, seed: 5 })
            : await createTrainer('attributes', { outputs: attributeNames().length, width: 32, stages: 4 }, { lr: r.lr, weightDecay: 1e-4, blur: 0.5, noise: 0.03, seed: 1 });
  const half = Math.floor(steps / 2);
  const schedule =
    model === 'encoder' || model === 'recognizer'
      ? { lr: cosineSchedule(r.lr, Math.min(100, Math.floor(steps / 4)), steps, r.lr * 0.02), arcfaceMargin: piecewise([0, 0], [half, linearRamp(0, 0.3, half, steps)]) }
      : { lr: cosineSchedule(r.lr, Math.min(200, Math.floor(steps / 4)), steps, r.lr * 0.05) };
  const ctl = new AbortController();
  const timer = opts.minutes ? setTimeout(() => ctl.abort(), opts.minutes * 60_000) : null;
  const src = prefetching(batchMaker(model));
  const log = opts.log ?? ((s: string) => process.stderr.write(`${s}\n`));
  let res: Awaited<ReturnType<typeof train>> | null = null;
  const onSigint = () => ctl.abort();
  process.once('SIGINT', onSigint);
  try {
    if (opts.exportOnly) {
      if (!existsSync(ckpt)) throw invalidArgument(`nothing to export: ${ckpt} does not exist`);
      await trainer.load(ckpt);
    } else res = await train({ trainer, data: src.data, steps, schedule, checkpoint: { path: ckpt, every: 100 }, resume: !opts.fresh && existsSync(ckpt), disposeBatches: true, signal: ctl.signal, log: true, logEvery: 25 });
  } catch (e) {
    if ((e as { code?: string }).code !== 'BIA_ABORTED') throw e;
    log(`${model}: stopped (time limit or Ctrl-C); the checkpoint ${ckpt} holds the state to resume from`);
  } finally {
    process.removeListener('SIGINT', onSigint);
    if (timer) clearTimeout(timer);
    await src.drain();
  }
  const done = trainer.stepCount;
  const m = await trainer.model({ ema: model !== 'attributes' && model !== 'quality' });
  const file = DEFAULT_FILES[model];
  await (m as { save(p: string, o?: { metadata?: Record<string, string> }): Promise<void> }).save(file, { metadata: { 'bia.trained.steps': String(done) } });
  const prev = readManifest()[model];
  const metrics = await evaluateDefault(model, m as never);
  await writeManifestEntry(model, {
    file: path.relative(ROOT, file),
    sha256: await sha256File(file),
    bytes: readFileSync(file).length,
    parameters: m.parameterCount,
    config: model === 'diffusion' ? (m as DiffusionModel).config : model === 'encoder' ? PORTRAIT_ENCODER : model === 'recognizer' ? PORTRAIT_RECOGNIZER2 : (m as AttributeEstimator).config,
    command: `node dist/ts/world/defaults.js train ${model} --steps ${steps}`,
    dataSeed: DATA_SEEDS[model],
    steps: done,
    trainingSeconds: opts.exportOnly ? null : (opts.fresh ? 0 : (prev?.trainingSeconds ?? 0)) + (res?.seconds ?? 0),
    metrics,
    trainedAt: new Date().toISOString(),
  });
  log(`${model}: ${done} steps; ${JSON.stringify(metrics)}`);
  m.dispose();
  trainer.dispose();
}

/**
 * Continue training the default DDPM from its exported weights (`init`, default models/portrait-unet.safetensors)
 * at a constant learning rate, resumable (.cache/train/diffusion-continue.safetensors), writing an EMA snapshot
 * every `snapshotEvery` steps to .cache/train/diffusion-snapshots/step-<N>.safetensors (N counts from the init's
 * own steps), so sample realism can be tracked against steps. Data batches are drawn from a stream offset by
 * 1,000,000 so the continuation sees batches the first run did not.
 */
export async function continueDiffusion(opts: { init?: string; steps: number; snapshotEvery?: number; minutes?: number; lr?: number; log?: (s: string) => void }): Promise<{ step: number; snapshots: string[] }> {
  const log = opts.log ?? ((s: string) => process.stderr.write(`${s}\n`));
  const every = opts.snapshotEvery ?? 400;
  const lr = opts.lr ?? 2e-4;
  const snapDir = path.join(CACHE_DIR, 'diffusion-snapshots');
  mkdirSync(snapDir, { recursive: true });
  const ckpt = path.join(CACHE_DIR, 'diffusion-continue.safetensors');
  const initFile = opts.init ?? DEFAULT_FILES.diffusion;
  const init = await loadDiffusion(initFile);
  const base = Number((readManifest().diffusion?.steps as number | undefined) ?? 0);
  const trainer = await createTrainer('diffusion', init, { lr, weightDecay: 0, emaDecay: 0.999, emaWarmup: true, gradClip: 1, seed: 2 });
  init.dispose();
  const make = batchMaker('diffusion');
  const src = prefetching((step) => make(step + 1_000_000));
  const ctl = new AbortController();
  const timer = opts.minutes ? setTimeout(() => ctl.abort(), opts.minutes * 60_000) : null;
  const onSig = () => ctl.abort();
  process.once('SIGINT', onSig);
  process.once('SIGTERM', onSig);
  const snapshots: string[] = [];
  try {
    if (existsSync(ckpt)) await trainer.load(ckpt);
    while (trainer.stepCount < opts.steps && !ctl.signal.aborted) {
      const target = Math.min(opts.steps, (Math.floor(trainer.stepCount / every) + 1) * every);
      await train({ trainer, data: src.data, steps: target, schedule: { lr: () => lr }, checkpoint: { path: ckpt, every: 100 }, resume: false, disposeBatches: true, signal: ctl.signal, log: (l) => log(l), logEvery: 50 });
      const m = await trainer.model({ ema: true });
      const file = path.join(snapDir, `step-${base + trainer.stepCount}.safetensors`);
      await m.save(file, { metadata: { 'bia.trained.steps': String(base + trainer.stepCount) } });
      m.dispose();
      snapshots.push(file);
      log(`diffusion: snapshot ${path.relative(ROOT, file)}`);
    }
  } catch (e) {
    if ((e as { code?: string }).code !== 'BIA_ABORTED') throw e;
    log(`diffusion: stopped at ${trainer.stepCount} continuation steps; ${path.relative(ROOT, ckpt)} holds the state to resume from`);
  } finally {
    process.removeListener('SIGINT', onSig);
    process.removeListener('SIGTERM', onSig);
    if (timer) clearTimeout(timer);
    await src.drain();
  }
  const step = trainer.stepCount;
  trainer.dispose();
  return { step, snapshots };
}

/** Held-out portraits: `perIdentity` pictures of each of `count` held-out identities. */
export async function heldOut(count: number, perIdentity: number, seed = 5): Promise<Awaited<ReturnType<typeof portraitBatch>>> {
  const items: PortraitItem[] = [];
  const rng = createRng(hashSeed(seed, 0x4e1d));
  for (let i = 0; i < count; i++) for (let j = 0; j < perIdentity; j++) items.push({ identity: HELDOUT_IDENTITIES[0] + i, seed: Math.floor(rng() * 2 ** 32) });
  return portraitBatch(items);
}

/**
 * Photos of other people for neighbourMode 'others': one portrait each of `count` training identities
 * (1999, 1998, …; never a held-out one), with fixed seeds.
 */
export async function otherPeople(count = 16): Promise<Tensor> {
  const rng = createRng(hashSeed(61, 0x07e));
  const items: PortraitItem[] = Array.from({ length: count }, (_, i) => ({ identity: TRAIN_IDENTITIES[1] - 1 - i, seed: Math.floor(rng() * 2 ** 32) }));
  return (await portraitBatch(items)).images;
}

/** Verification metrics from a similarity matrix and labels: AUC, TAR at FAR 1e-2 / 1e-3, the FAR-1e-2 threshold. */
export function verificationMetrics(sim: Float32Array | Float64Array, ids: Int32Array): { auc: number; tarAtFar1e2: number; tarAtFar1e3: number; thresholdAtFar1e2: number; genuine: number; impostor: number } {
  const n = ids.length;
  const gen: number[] = [];
  const imp: number[] = [];
  for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) (ids[i] === ids[j] ? gen : imp).push(sim[i * n + j]);
  imp.sort((a, b) => b - a);
  gen.sort((a, b) => a - b);
  const thr = (far: number) => imp[Math.max(0, Math.ceil(far * imp.length) - 1)];
  const tar = (t: number) => gen.filter((g) => g > t).length / gen.length;
  // AUC by ranks: P(genuine > impostor).
  let k = 0;
  let below = 0;
  const impAsc = [...imp].reverse();
  for (const g of gen) {
    while (k < impAsc.length && impAsc[k] < g) k++;
    below += k;
  }
  return { auc: below / (gen.length * imp.length), tarAtFar1e2: tar(thr(1e-2)), tarAtFar1e3: tar(thr(1e-3)), thresholdAtFar1e2: thr(1e-2), genuine: gen.length, impostor: imp.length };
}

async function evaluateEncoder(enc: IdentityEncoder): Promise<Record<string, unknown>> {
  const b = await heldOut(200, 5);
  const e = await enc.embed(b.images, { protocol: 'resize' });
  const s = await similarity(e, e, { matrix: true });
  const m = verificationMetrics((await s.data()) as Float32Array, b.identities);
  for (const t of [b.images, e, s]) t.dispose();
  return { heldOutIdentities: 200, picturesPerIdentity: 5, ...m };
}

async function evaluateDiffusion(d: DiffusionModel): Promise<Record<string, unknown>> {
  const b = await heldOut(20, 1, 9);
  const inv = await d.invert(b.images, { t0: 500, steps: 40 });
  const rec = await d.decode(inv.xLat, null, { t0: 500, steps: 40, eta: 0 });
  const l = await imageLosses(rec, b.images);
  const psnr = Array.from(l.mse, (m) => 10 * Math.log10(4 / m)); // range 2: peak² = 4
  const out: Record<string, unknown> = { reconstructionPsnrDb: psnr.reduce((a, v) => a + v, 0) / psnr.length, reconstructionSsim: Array.from(l.ssim).reduce((a, v) => a + v, 0) / l.ssim.length };
  if (existsSync(DEFAULT_FILES.encoder)) {
    const enc = await loadIdentityEncoder(DEFAULT_FILES.encoder);
    const [ea, eb] = [await enc.embed(b.images, { protocol: 'resize' }), await enc.embed(rec, { protocol: 'resize' })];
    const s = Array.from(await (await similarity(ea, eb)).data());
    out.reconstructionSimilarity = s.reduce((a, v) => a + v, 0) / s.length;
    out.reconstructionSimilarityMin = Math.min(...s);
    enc.dispose();
  }
  // Unconditional samples, for an honest look (models/samples.png).
  const xT = await randn([16, 3, 64, 64], { seed: 123 });
  const samples = await d.decode(xT, null, { t0: 999, steps: 40, eta: 0 });
  const cells = await Promise.all(Array.from({ length: 16 }, (_, i) => takeRows([samples], [[0, i]])));
  await comparisonGrid([cells.slice(0, 8).map((tensor) => ({ tensor })), cells.slice(8).map((tensor) => ({ tensor }))], path.join(MODELS_DIR, 'samples.png'));
  for (const t of [b.images, inv.xLat, inv.hR, rec, xT, samples, ...cells]) t.dispose();
  return out;
}

async function evaluateAttributes(a: AttributeEstimator): Promise<Record<string, unknown>> {
  const b = await heldOut(100, 2, 13);
  const p = await a.predict(b.images);
  const pred = await p.data();
  const names = attributeNames();
  const n = b.identities.length;
  const mae: Record<string, number> = {};
  names.forEach((name, j) => {
    let s = 0;
    for (let i = 0; i < n; i++) s += Math.abs(pred[i * names.length + j] - b.attributes[i * names.length + j]);
    mae[name] = s / n;
  });
  b.images.dispose();
  p.dispose();
  return { heldOutImages: n, meanAbsoluteError: mae, overallMae: Object.values(mae).reduce((x, y) => x + y, 0) / names.length };
}

/**
 * The quality net on held-out portraits: mean validity of clean images and of each degradation (at mid
 * severity, face region and whole picture), and the share of damaged images scored below 0.5.
 */
async function evaluateQuality(q: AttributeEstimator): Promise<Record<string, unknown>> {
  const b = await heldOut(120, 1, 17);
  const diffusion = await loadDiffusion(DEFAULT_FILES.diffusion);
  const batch = await qualityBatch(b.images, diffusion, 4242, 0.375);
  const p = await q.predict(batch.images);
  const v = await p.data();
  const k = QUALITY_OUTPUTS.length;
  const byKind: Record<string, number[]> = { clean: [] };
  for (let i = 0; i < b.identities.length; i++) {
    const row = Array.from(batch.targets.subarray(i * k, (i + 1) * k));
    const kind = row[0] === 1 ? 'clean' : QUALITY_OUTPUTS[row.slice(1).findIndex((x) => x > 0) + 1];
    (byKind[kind] ??= []).push(v[i * k]);
  }
  const mean = (xs: number[]) => xs.reduce((a, x) => a + x, 0) / xs.length;
  const damaged = Object.entries(byKind).filter(([kk]) => kk !== 'clean').flatMap(([, xs]) => xs);
  for (const t of [b.images, batch.images, p]) t.dispose();
  diffusion.dispose();
  return {
    heldOutImages: b.identities.length,
    meanValidity: Object.fromEntries(Object.entries(byKind).map(([kk, xs]) => [kk, mean(xs)])),
    cleanAtLeast05: byKind.clean.filter((x) => x >= 0.5).length / byKind.clean.length,
    damagedBelow05: damaged.filter((x) => x < 0.5).length / damaged.length,
  };
}

export async function evaluateDefault(model: DefaultModel, m?: DiffusionModel | IdentityEncoder | AttributeEstimator): Promise<Record<string, unknown>> {
  const own = !m;
  const x =
    m ??
    (model === 'diffusion'
      ? await loadDiffusion(DEFAULT_FILES.diffusion)
      : model === 'encoder' || model === 'recognizer'
        ? await loadIdentityEncoder(DEFAULT_FILES[model])
        : await loadAttributeEstimator(DEFAULT_FILES[model]));
  try {
    if (model === 'encoder' || model === 'recognizer') return await evaluateEncoder(x as IdentityEncoder);
    if (model === 'quality') return await evaluateQuality(x as AttributeEstimator);
    if (model === 'diffusion') return await evaluateDiffusion(x as DiffusionModel);
    return await evaluateAttributes(x as AttributeEstimator);
  } finally {
    if (own) x.dispose();
  }
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({ allowPositionals: true, options: { minutes: { type: 'string' }, steps: { type: 'string' }, fresh: { type: 'boolean', default: false }, init: { type: 'string' }, 'snapshot-every': { type: 'string' }, lr: { type: 'string' } } });
  const [cmd, what] = positionals;
  if (cmd === 'continue' && what === 'diffusion') {
    await continueDiffusion({ init: values.init, steps: Number(values.steps ?? 20000), minutes: values.minutes ? Number(values.minutes) : undefined, snapshotEvery: values['snapshot-every'] ? Number(values['snapshot-every']) : undefined, lr: values.lr ? Number(values.lr) : undefined });
    return;
  }
  if (!DEFAULT_MODELS.includes(what as DefaultModel)) throw invalidArgument(`usage: defaults.js train|export|evaluate ${DEFAULT_MODELS.join('|')} [--minutes M] [--steps N] [--fresh]; defaults.js continue diffusion [--steps N] [--minutes M] [--snapshot-every K] [--lr LR] [--init FILE]`);
  const model = what as DefaultModel;
  if (cmd === 'export') await trainDefault(model, { exportOnly: true, steps: values.steps ? Number(values.steps) : undefined });
  else if (cmd === 'train') await trainDefault(model, { minutes: values.minutes ? Number(values.minutes) : undefined, steps: values.steps ? Number(values.steps) : undefined, fresh: values.fresh });
  else if (cmd === 'evaluate') console.log(JSON.stringify(await evaluateDefault(model), null, 2));
  else throw invalidArgument(`unknown command '${cmd}'`);
}

if (require.main === module) {
  main().catch((e) => {
    console.error(e);
    process.exit(1);
  });
}

export type { Tensor };

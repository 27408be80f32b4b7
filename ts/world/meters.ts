/**
 * The measuring networks of the synthetic world, none of them used in any loss: the second recognizer,
 * the attribute estimator (errors per attribute group) and the portrait-quality net (validity, realism FD
 * against held-out real portraits), plus the loss encoder's and the recognizer's calibrated thresholds.
 * Used by `bia eval` and `npm run demo`.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { takeRows } from '../blackhole/codes';
import { BiaError, invalidArgument } from '../errors';
import { loadIdentityEncoder, similarity, type IdentityEncoder } from '../identity';
import type { FeatureSet } from '../metrics/frechet';
import type { Tensor } from '../tensor';
import { loadAttributeEstimator, type AttributeEstimator } from '../train/attributes';
import { attributeNames, createRng, hashSeed } from './attributes';
import { DEFAULT_FILES, readManifest, ROOT } from './defaults';
import { HELDOUT_IDENTITIES, portraitBatch, type PortraitItem } from './portraits';
import { concatFeatures, qualityFeatures, RealismMeter, validityScores } from './quality';

/** Attribute groups (names of attributeNames(); categorical ones as their one-hot columns). */
export const ATTRIBUTE_GROUPS: Record<string, (name: string) => boolean> = {
  pose: (n) => ['rotation', 'shiftX', 'shiftY', 'scale'].includes(n),
  expression: (n) => ['smile', 'browRaise'].includes(n),
  eyes: (n) => n === 'eyeOpenness',
  hair: (n) => n.startsWith('hairStyle=') || n.startsWith('hairColour='),
  glasses: (n) => n.startsWith('glasses='),
  clothing: (n) => n.startsWith('clothing'),
  background: (n) => n.startsWith('background'),
  lighting: (n) => n.startsWith('light'),
};
export const GROUP_NAMES = Object.keys(ATTRIBUTE_GROUPS);

/** Per-group mean |prediction − truth| of one image's attribute vector. */
export function groupErrors(pred: ArrayLike<number>, truth: ArrayLike<number>, names = attributeNames()): Record<string, number> {
  if (pred.length !== names.length || truth.length !== names.length) throw invalidArgument(`attribute vectors must have ${names.length} entries`);
  const out: Record<string, number> = {};
  for (const [g, has] of Object.entries(ATTRIBUTE_GROUPS)) {
    let s = 0;
    let n = 0;
    names.forEach((name, j) => {
      if (!has(name)) return;
      s += Math.abs(pred[j] - truth[j]);
      n++;
    });
    out[g] = n ? s / n : NaN;
  }
  return out;
}

/** The measuring networks (never used in a loss), with the recognizers' calibrated thresholds. */
export interface Meters {
  encoder: IdentityEncoder;
  /** null while the second recognizer is not trained yet (similarity2 is then NaN). */
  recognizer: IdentityEncoder | null;
  attributes: AttributeEstimator;
  quality: AttributeEstimator;
  realism: RealismMeter;
  thresholds: { encoder: number; recognizer: number };
  dispose(): void;
}

/** Held-out real portraits for the realism reference: identities 2100–2199, 5 pictures each (500). */
export async function referencePortraits(perIdentity = 5): Promise<Tensor> {
  const rng = createRng(hashSeed(77, 0x4ef));
  const items: PortraitItem[] = [];
  for (let i = 0; i < 100; i++) for (let j = 0; j < perIdentity; j++) items.push({ identity: HELDOUT_IDENTITIES[0] + 100 + i, seed: Math.floor(rng() * 2 ** 32) });
  return (await portraitBatch(items)).images;
}

function threshold(model: 'encoder' | 'recognizer'): number {
  const t = (readManifest()[model]?.metrics as { thresholdAtFar1e2?: number } | undefined)?.thresholdAtFar1e2;
  if (typeof t !== 'number') throw new BiaError('BIA_IO_ERROR', `models/manifest.json has no calibrated threshold for the ${model}`);
  return t;
}

function missing(m: 'recognizer' | 'quality' | 'attributes'): void {
  if (!existsSync(DEFAULT_FILES[m])) throw new BiaError('BIA_IO_ERROR', `the measuring model ${path.relative(ROOT, DEFAULT_FILES[m])} is missing (node dist/ts/world/defaults.js train ${m})`);
}

/** The quality net and the realism meter fitted on the reference portraits (all that FD and validity need). */
export async function loadRealism(): Promise<{ quality: AttributeEstimator; realism: RealismMeter; dispose(): void }> {
  missing('quality');
  const quality = await loadAttributeEstimator(DEFAULT_FILES.quality);
  const ref = await referencePortraits();
  try {
    return { quality, realism: new RealismMeter(await featuresOf(quality, ref)), dispose: () => quality.dispose() };
  } finally {
    ref.dispose();
  }
}

export async function loadMeters(encoder?: IdentityEncoder): Promise<Meters> {
  for (const m of ['quality', 'attributes'] as const) missing(m);
  const hasRecognizer = existsSync(DEFAULT_FILES.recognizer);
  const thresholds = { encoder: threshold('encoder'), recognizer: hasRecognizer ? threshold('recognizer') : NaN };
  const own = !encoder;
  const enc = encoder ?? (await loadIdentityEncoder(DEFAULT_FILES.encoder));
  const recognizer = hasRecognizer ? await loadIdentityEncoder(DEFAULT_FILES.recognizer) : null;
  const attributes = await loadAttributeEstimator(DEFAULT_FILES.attributes);
  const { quality, realism } = await loadRealism();
  return {
    encoder: enc,
    recognizer,
    attributes,
    quality,
    realism,
    thresholds,
    dispose() {
      if (own) enc.dispose();
      recognizer?.dispose();
      attributes.dispose();
      quality.dispose();
    },
  };
}

export async function featuresOf(quality: AttributeEstimator, images: Tensor, batch = 100): Promise<FeatureSet> {
  const n = images.shape[0];
  const parts: FeatureSet[] = [];
  for (let i = 0; i < n; i += batch) {
    const rows = Array.from({ length: Math.min(batch, n - i) }, (_, k) => [0, i + k] as [number, number]);
    const sub = await takeRows([images], rows);
    parts.push(await qualityFeatures(quality, sub));
    sub.dispose();
  }
  return concatFeatures(parts);
}

/** cos(E(image_i), ref) per image, the 'resize' protocol; ref: embeddings [1, D] or one per image. */
export async function similarityTo(enc: IdentityEncoder, images: Tensor, ref: Tensor): Promise<number[]> {
  const e = await enc.embed(images, { protocol: 'resize' });
  const s = await similarity(e, ref);
  const out = Array.from(await s.data());
  e.dispose();
  s.dispose();
  return out;
}

/** Pairwise identity similarity of two image sets (same order). */
async function sims(enc: IdentityEncoder, images: Tensor, ref: Tensor): Promise<number[]> {
  const r = await enc.embed(ref, { protocol: 'resize' });
  try {
    return await similarityTo(enc, images, r);
  } finally {
    r.dispose();
  }
}

/** Every per-image measure of one image set against the inputs (same order). */
export interface SetScores {
  similarity: number[];
  similarity2: number[];
  validity: number[];
  attributeErrors: Record<string, number>[];
}

export async function scoreSet(m: Meters, images: Tensor, inputs: Tensor, truth: Float32Array): Promise<SetScores> {
  const A = attributeNames().length;
  const p = await m.attributes.predict(images);
  const pv = await p.data();
  p.dispose();
  const n = images.shape[0];
  return {
    similarity: await sims(m.encoder, images, inputs),
    similarity2: m.recognizer ? await sims(m.recognizer, images, inputs) : Array.from({ length: n }, () => NaN),
    validity: await validityScores(m.quality, images),
    attributeErrors: Array.from({ length: n }, (_, i) => groupErrors(pv.subarray(i * A, (i + 1) * A), truth.subarray(i * A, (i + 1) * A))),
  };
}

/** A grid label: similarity to the input (loss encoder / second recognizer) and validity. */
export function cellLabel(kind: string, s: { similarity: number; similarity2: number; validity: number }): string {
  const f = (v: number) => (Number.isFinite(v) ? v.toFixed(2) : '-');
  return `${kind} ${f(s.similarity)}/${f(s.similarity2)} v${f(s.validity)}`;
}

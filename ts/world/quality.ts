/**
 * The portrait-quality net of the synthetic world: a small CNN (the attribute estimator's architecture,
 * its own weights) trained to tell clean portraits from damaged ones — faded, blurred, noised,
 * colour-shifted and half-denoised (the DDPM's one-step x̂0 from a noisy x_t), over the whole picture or
 * the face region only. It is never used in a loss. It gives:
 * - a per-image validity score (output 0: 1 for clean portraits, 0 for damaged ones), and
 * - a feature space (the pooled last stage) for a Fréchet distance between image sets and held-out
 *   real portraits (realism), projected by PCA fitted on reference portraits.
 */
import { invalidArgument } from '../errors';
import { blurPixels, FACE_ELLIPSE } from '../erase/degenerate';
import type { DiffusionModel } from '../diffusion';
import { frechetDistance, fitProjection, project, type FeatureSet, type Projection } from '../metrics/frechet';
import { tensor, type Tensor } from '../tensor';
import type { AttributeEstimator } from '../train/attributes';
import { createRng, hashSeed, type Rng } from './attributes';

/** Outputs of the quality net, in order. */
export const QUALITY_OUTPUTS = ['validity', 'fade', 'blur', 'noise', 'colour', 'halfDenoised'] as const;
export type Degradation = Exclude<(typeof QUALITY_OUTPUTS)[number], 'validity'>;
export const DEGRADATIONS: readonly Degradation[] = ['fade', 'blur', 'noise', 'colour', 'halfDenoised'];



/** ᾱ_t of the DDPM schedule (β linear 1e-4 … 2e-2 over 1,000 steps), float64. */
export function alphaBar(t: number): number {
  let prod = 1;
  for (let i = 0; i <= t; i++) prod *= 1 - (1e-4 + ((2e-2 - 1e-4) * i) / 999);
  return prod;
}

/** A soft ellipse mask [s·s]; jitter moves and scales it (training), none gives FACE_ELLIPSE. */
export function ellipseMask(s: number, e = FACE_ELLIPSE, feather = 1.5): Float32Array {
  const m = new Float32Array(s * s);
  for (let i = 0; i < s; i++) {
    for (let j = 0; j < s; j++) {
      const dy = ((i + 0.5) / s - e.cy) / e.ry;
      const dx = ((j + 0.5) / s - e.cx) / e.rx;
      const r = Math.sqrt(dx * dx + dy * dy); // 1 on the edge
      const px = (r - 1) * Math.min(e.rx, e.ry) * s; // ≈ pixels beyond the edge
      m[i * s + j] = Math.min(1, Math.max(0, 0.5 - px / feather));
    }
  }
  return m;
}

function gauss(rng: Rng): number {
  const u = Math.max(rng(), 1e-12);
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rng());
}

function uniform(rng: Rng, lo: number, hi: number): number {
  return lo + (hi - lo) * rng();
}

/**
 * Damage one image [3, s, s] (in place) with a degradation of severity in (0, 1], over the whole picture
 * or a jittered face ellipse. `denoised` is the DDPM's one-step x̂0 of this image (halfDenoised only).
 */
export function degrade(img: Float32Array, s: number, kind: Degradation, severity: number, rng: Rng, local: boolean, denoised?: Float32Array): void {
  const mask = local
    ? ellipseMask(s, { cx: FACE_ELLIPSE.cx + uniform(rng, -0.05, 0.05), cy: FACE_ELLIPSE.cy + uniform(rng, -0.05, 0.05), rx: FACE_ELLIPSE.rx * uniform(rng, 0.7, 1.15), ry: FACE_ELLIPSE.ry * uniform(rng, 0.7, 1.15) })
    : null;
  const target = Float32Array.from(img);
  const n = s * s;
  if (kind === 'fade') {
    for (let c = 0; c < 3; c++) {
      let sum = 0;
      let w = 0;
      for (let p = 0; p < n; p++) {
        const mw = mask ? mask[p] : 1;
        sum += mw * img[c * n + p];
        w += mw;
      }
      const mean = sum / Math.max(w, 1e-9);
      for (let p = 0; p < n; p++) target[c * n + p] = img[c * n + p] + severity * (mean - img[c * n + p]);
    }
  } else if (kind === 'blur') {
    target.set(blurPixels({ data: img, shape: [1, 3, s, s] }, new Float32Array(n).fill(1), 0.6 + 2.6 * severity));
  } else if (kind === 'noise') {
    const sigma = 0.1 + 0.4 * severity;
    for (let i = 0; i < target.length; i++) target[i] += sigma * gauss(rng);
  } else if (kind === 'colour') {
    for (let c = 0; c < 3; c++) {
      const shift = (rng() < 0.5 ? -1 : 1) * (0.15 + 0.55 * severity) * uniform(rng, 0.5, 1);
      const gain = 1 + uniform(rng, -0.3, 0.3) * severity;
      for (let p = 0; p < n; p++) target[c * n + p] = img[c * n + p] * gain + shift;
    }
  } else {
    if (!denoised) throw invalidArgument('halfDenoised needs the one-step x̂0');
    target.set(denoised);
  }
  for (let c = 0; c < 3; c++) {
    for (let p = 0; p < n; p++) {
      const w = mask ? mask[p] : 1;
      const v = img[c * n + p] + w * (target[c * n + p] - img[c * n + p]);
      img[c * n + p] = Math.max(-1, Math.min(1, v));
    }
  }
}

/** The DDPM's one-step prediction x̂0 from x_t = √ᾱ_t·x0 + √(1−ᾱ_t)·ε at the given t (one t per image). */
export async function oneStepDenoise(diffusion: DiffusionModel, images: Tensor, ts: number[], seed: number): Promise<Float32Array> {
  const x0 = (await images.data()) as Float32Array;
  const per = x0.length / ts.length;
  const rng = createRng(seed);
  const xt = new Float32Array(x0.length);
  const noise = new Float32Array(x0.length);
  ts.forEach((t, b) => {
    const a = alphaBar(t);
    for (let i = 0; i < per; i++) {
      const e = gauss(rng);
      noise[b * per + i] = e;
      xt[b * per + i] = Math.sqrt(a) * x0[b * per + i] + Math.sqrt(1 - a) * e;
    }
  });
  const xtT = await tensor(xt, images.shape);
  const { eps, h } = await diffusion.forward(xtT, ts);
  const e = await eps.data();
  for (const t of [xtT, eps, h]) t.dispose();
  const out = new Float32Array(x0.length);
  ts.forEach((t, b) => {
    const a = alphaBar(t);
    for (let i = 0; i < per; i++) out[b * per + i] = Math.max(-1, Math.min(1, (xt[b * per + i] - Math.sqrt(1 - a) * e[b * per + i]) / Math.sqrt(a)));
  });
  return out;
}

/**
 * A training batch for the quality net from clean portraits [B, 3, s, s]: the first `cleanShare` of the
 * images stay clean (target validity 1), the rest get one degradation each, in turn (validity 0, the
 * degradation's output = its severity). Returns the pixels and the [B, 6] targets.
 */
export async function qualityBatch(clean: Tensor, diffusion: DiffusionModel, seed: number, cleanShare = 0.375): Promise<{ images: Tensor; targets: Float32Array }> {
  const [B, C, s] = clean.shape;
  if (C !== 3) throw invalidArgument('quality batches need RGB images');
  const rng = createRng(hashSeed(seed, 0x9a11));
  const px = (await clean.data()) as Float32Array;
  const per = 3 * s * s;
  const nClean = Math.round(B * cleanShare);
  const kinds = Array.from({ length: B }, (_, i) => (i < nClean ? null : DEGRADATIONS[(i - nClean) % DEGRADATIONS.length]));
  const halfIdx = kinds.flatMap((k, i) => (k === 'halfDenoised' ? [i] : []));
  let denoised: Float32Array | null = null;
  if (halfIdx.length) {
    const sub = new Float32Array(halfIdx.length * per);
    halfIdx.forEach((i, j) => sub.set(px.subarray(i * per, (i + 1) * per), j * per));
    const subT = await tensor(sub, [halfIdx.length, 3, s, s]);
    denoised = await oneStepDenoise(diffusion, subT, halfIdx.map(() => Math.round(uniform(rng, 250, 750))), hashSeed(seed, 0xde));
    subT.dispose();
  }
  const targets = new Float32Array(B * QUALITY_OUTPUTS.length);
  kinds.forEach((kind, i) => {
    const row = i * QUALITY_OUTPUTS.length;
    if (kind === null) {
      targets[row] = 1;
      return;
    }
    const severity = uniform(rng, 0.25, 1);
    const img = px.subarray(i * per, (i + 1) * per);
    const j = halfIdx.indexOf(i);
    degrade(img, s, kind, severity, rng, rng() < 0.6, j >= 0 && denoised ? denoised.subarray(j * per, (j + 1) * per) : undefined);
    targets[row + QUALITY_OUTPUTS.indexOf(kind)] = severity;
  });
  return { images: await tensor(px, [B, 3, s, s]), targets };
}

/** Per-image validity (the net's output 0): ≈1 for clean portraits, ≈0 for damaged ones. */
export async function validityScores(net: AttributeEstimator, images: Tensor): Promise<number[]> {
  const p = await net.predict(images);
  const v = await p.data();
  p.dispose();
  const k = net.config.outputs;
  return Array.from({ length: images.shape[0] }, (_, i) => v[i * k]);
}

/** The quality net's pooled features of a set of images, batched. */
export async function qualityFeatures(net: AttributeEstimator, images: Tensor): Promise<FeatureSet> {
  const f = await net.features(images);
  const data = Float64Array.from(await f.data());
  const [n, d] = f.shape;
  f.dispose();
  return { data, n, d };
}

/** Concatenate feature sets row-wise. */
export function concatFeatures(sets: FeatureSet[]): FeatureSet {
  if (sets.length === 0) throw invalidArgument('no feature sets');
  const d = sets[0].d;
  const n = sets.reduce((a, s) => a + s.n, 0);
  const data = new Float64Array(n * d);
  let o = 0;
  for (const s of sets) {
    if (s.d !== d) throw invalidArgument('feature dimensions differ');
    data.set(s.data, o);
    o += s.data.length;
  }
  return { data, n, d };
}

/**
 * Realism: FD between image features and a reference set of held-out real portraits, both projected on
 * the reference's first `components` principal directions (fitted once, reused for every set).
 */
export class RealismMeter {
  readonly projection: Projection;
  private readonly refProjected: FeatureSet;
  constructor(reference: FeatureSet, components = 32) {
    this.projection = fitProjection(reference, Math.min(components, reference.d));
    this.refProjected = project(this.projection, reference);
  }
  fd(features: FeatureSet): number {
    return frechetDistance(project(this.projection, features), this.refProjected);
  }
}

/**
 * Degenerate baselines: blunt erasers of the face region that an erasure method has to beat on
 * fidelity at equal identity loss.
 *   fadeFace  — blend the face ellipse towards the image's mean colour inside it
 *   blurFace  — Gaussian-blur the face ellipse (σ = strength·side/8, reflect padding)
 *   matchSimilarity — bisection on the strength for the smallest one whose identity similarity
 *                     to f_R is at most a target (e.g. the BIA output's)
 * The maths runs in TypeScript on the pixel values (images are 64² to 256²); the encoder runs native.
 */
import { BiaError, invalidArgument } from '../errors';
import type { IdentityEncoder, InputProtocol } from '../identity';
import { similarity } from '../identity';
import type { JobOptions } from '../jobs';
import { checkInt, type Device } from '../options';
import { Tensor, tensor } from '../tensor';

/**
 * The face region of a square portrait, as fractions of the side: centre (cx, cy), semi-axes
 * (rx, ry). A pixel (row i, column j) of an s×s image is inside when
 * (((j + 0.5)/s − cx)/rx)² + (((i + 0.5)/s − cy)/ry)² ≤ 1.
 */
export const FACE_ELLIPSE: Readonly<{ cx: number; cy: number; rx: number; ry: number }> = Object.freeze({ cx: 0.5, cy: 0.47, rx: 0.3, ry: 0.4 });

const FLOAT_DTYPES = new Set(['float32', 'float64', 'float16', 'bfloat16']);

/**
 * The face mask of an s×s image, row-major: 1 inside FACE_ELLIPSE, 0 outside, with a linear edge
 * `feather` pixels wide (0: a hard edge). The edge lies inside the ellipse, so every pixel outside it
 * is exactly 0 (a masked edit never touches them); a pixel reaches 1 once it is `feather` pixels
 * (first-order distance to the ellipse) inside.
 */
export function faceMask(size: number, feather = 1.5): Float32Array {
  const s = checkInt(size, 'size', 1, 1 << 15);
  if (typeof feather !== 'number' || !Number.isFinite(feather) || feather < 0) throw invalidArgument(`feather must be a finite number ≥ 0, got ${JSON.stringify(feather)}`);
  const { cx, cy, rx, ry } = FACE_ELLIPSE;
  const m = new Float32Array(s * s);
  for (let i = 0; i < s; i++) {
    const v = ((i + 0.5) / s - cy) / ry;
    for (let j = 0; j < s; j++) {
      const u = ((j + 0.5) / s - cx) / rx;
      const g = u * u + v * v - 1;
      if (g > 0) continue;
      if (feather === 0) {
        m[i * s + j] = 1;
        continue;
      }
      // g's gradient in pixel units; −g/|∇g| is the distance to the edge to first order.
      const gx = (2 * u) / (rx * s);
      const gy = (2 * v) / (ry * s);
      const grad = Math.sqrt(gx * gx + gy * gy);
      m[i * s + j] = grad === 0 ? 1 : Math.min(1, -g / grad / feather);
    }
  }
  return m;
}

export interface Pixels {
  data: Float32Array;
  shape: [number, number, number, number];
}

function checkImages(x: unknown, what: string, one = false): [number, number, number, number] {
  if (!(x instanceof Tensor)) throw invalidArgument(`${what} must be a Tensor [B, 3, H, W] in [-1, 1]`);
  const sh = x.shape;
  if (sh.length !== 4) throw invalidArgument(`${what} must be 4-D [B, 3, H, W], got shape ${JSON.stringify(sh)}`);
  if (sh[2] !== sh[3]) throw invalidArgument(`${what} must be square (H = W), got shape ${JSON.stringify(sh)}`);
  if (sh.some((d) => d < 1)) throw invalidArgument(`${what} must not be empty, got shape ${JSON.stringify(sh)}`);
  if (one && sh[0] !== 1) throw invalidArgument(`${what} must be one image [1, 3, H, W], got shape ${JSON.stringify(sh)}`);
  if (!FLOAT_DTYPES.has(x.dtype)) throw invalidArgument(`${what} must be a floating-point tensor, got ${x.dtype}`);
  return sh as [number, number, number, number];
}

function checkStrength(strength: unknown): number {
  if (typeof strength !== 'number' || !Number.isFinite(strength) || strength < 0 || strength > 1) {
    throw invalidArgument(`strength must be a number in [0, 1], got ${JSON.stringify(strength)}`);
  }
  return strength;
}

async function pixels(x: Tensor, shape: [number, number, number, number], job?: JobOptions): Promise<Pixels> {
  const d = await x.data(job);
  return { data: d instanceof Float32Array ? d : Float32Array.from(d as ArrayLike<number>), shape };
}

/** A tensor like x (dtype, device) holding `data` of `shape`. */
function like(x: Tensor, data: Float32Array, shape: number[], job?: JobOptions): Promise<Tensor> {
  return tensor(data, shape, { dtype: x.dtype, device: x.device as Device, signal: job?.signal });
}

/** Per image and channel: Σ mask·x / Σ mask. */
function maskedMeans(p: Pixels, mask: Float32Array): Float64Array {
  const [B, C, H, W] = p.shape;
  const n = H * W;
  let wsum = 0;
  for (let k = 0; k < n; k++) wsum += mask[k];
  const means = new Float64Array(B * C);
  for (let bc = 0; bc < B * C; bc++) {
    let s = 0;
    const off = bc * n;
    for (let k = 0; k < n; k++) s += mask[k] * p.data[off + k];
    means[bc] = wsum > 0 ? s / wsum : 0;
  }
  return means;
}

/** y = x + mask·strength·(mean − x), per image and channel (x's layout). */
function fadePixels(p: Pixels, mask: Float32Array, means: Float64Array, strength: number): Float32Array {
  const [B, C, H, W] = p.shape;
  const n = H * W;
  const out = new Float32Array(p.data.length);
  for (let bc = 0; bc < B * C; bc++) {
    const off = bc * n;
    const m = means[bc];
    for (let k = 0; k < n; k++) {
      const x = p.data[off + k];
      const a = mask[k] * strength;
      out[off + k] = a === 0 ? x : x + a * (m - x);
    }
  }
  return out;
}

/** Index of a reflect-padded position (the edge pixel not repeated), for any overshoot. */
function reflect(i: number, n: number): number {
  if (n === 1) return 0;
  const period = 2 * (n - 1);
  const r = ((i % period) + period) % period;
  return r < n ? r : period - r;
}

/** Normalised 1-D Gaussian of σ pixels, radius ⌈3σ⌉. */
function gaussian(sigma: number): Float64Array {
  const r = Math.max(1, Math.ceil(3 * sigma));
  const k = new Float64Array(2 * r + 1);
  let s = 0;
  for (let i = -r; i <= r; i++) s += k[i + r] = Math.exp(-(i * i) / (2 * sigma * sigma));
  for (let i = 0; i < k.length; i++) k[i] /= s;
  return k;
}

/** Separable Gaussian blur of every channel (σ in pixels, reflect padding), blended in by the mask. */
export function blurPixels(p: Pixels, mask: Float32Array, sigma: number): Float32Array {
  const [B, C, H, W] = p.shape;
  const n = H * W;
  const out = new Float32Array(p.data.length);
  if (sigma === 0) {
    out.set(p.data);
    return out;
  }
  const k = gaussian(sigma);
  const r = (k.length - 1) / 2;
  const idxW = Int32Array.from({ length: W + 2 * r }, (_, i) => reflect(i - r, W));
  const idxH = Int32Array.from({ length: H + 2 * r }, (_, i) => reflect(i - r, H));
  const tmp = new Float64Array(n);
  const line = new Float64Array(Math.max(H, W) + 2 * r);
  for (let bc = 0; bc < B * C; bc++) {
    const off = bc * n;
    // rows
    for (let i = 0; i < H; i++) {
      const row = off + i * W;
      for (let q = 0; q < W + 2 * r; q++) line[q] = p.data[row + idxW[q]];
      for (let j = 0; j < W; j++) {
        let s = 0;
        for (let t = 0; t < k.length; t++) s += k[t] * line[j + t];
        tmp[i * W + j] = s;
      }
    }
    // columns, then the blend
    for (let j = 0; j < W; j++) {
      for (let q = 0; q < H + 2 * r; q++) line[q] = tmp[idxH[q] * W + j];
      for (let i = 0; i < H; i++) {
        let s = 0;
        for (let t = 0; t < k.length; t++) s += k[t] * line[i + t];
        const x = p.data[off + i * W + j];
        const a = mask[i * W + j];
        out[off + i * W + j] = a === 0 ? x : x + a * (s - x);
      }
    }
  }
  return out;
}

/**
 * Fade the face: per image of x [B, 3, H, W] (H = W) in [-1, 1], y = x + mask·strength·(mean − x),
 * with mean the image's per-channel mean colour inside the mask (mask-weighted) and mask = faceMask(H).
 * strength 0 returns a copy of x; pixels outside the ellipse are never changed.
 */
export async function fadeFace(x: Tensor, strength: number, job?: JobOptions): Promise<Tensor> {
  const shape = checkImages(x, 'x');
  const a = checkStrength(strength);
  const p = await pixels(x, shape, job);
  const mask = faceMask(shape[2]);
  return like(x, fadePixels(p, mask, maskedMeans(p, mask), a), shape, job);
}

/**
 * Blur the face: a separable Gaussian blur of x [B, 3, H, W] (H = W) with σ = strength·H/8 pixels
 * (reflect padding; σ = 0 copies), blended in by the face mask: y = x + mask·(blur(x) − x).
 */
export async function blurFace(x: Tensor, strength: number, job?: JobOptions): Promise<Tensor> {
  const shape = checkImages(x, 'x');
  const a = checkStrength(strength);
  const p = await pixels(x, shape, job);
  return like(x, blurPixels(p, faceMask(shape[2]), (a * shape[2]) / 8), shape, job);
}

export type DegenerateKind = 'fade' | 'blur';
export const DEGENERATE_KINDS: readonly DegenerateKind[] = ['fade', 'blur'];

export interface MatchSimilarityOptions extends JobOptions {
  encoder: IdentityEncoder;
  /** The reference embedding f_R [1, D]. */
  fR: Tensor;
  /** The identity similarity to reach: sim(E(y), f_R) ≤ target. */
  target: number;
  /** The encoder's input protocol (default 'bia', embed's own). */
  protocol?: InputProtocol;
  /** Bisection steps: the strength is found to within 2^−iterations (default 10). */
  iterations?: number;
}

export interface MatchedBaseline {
  /** y at `strength`, [1, 3, H, W]. */
  image: Tensor;
  strength: number;
  /** sim(E(y), f_R). */
  similarity: number;
  /** false: even strength 1 stays above the target (image and numbers are strength 1's). */
  reached: boolean;
}

/**
 * The smallest strength in [0, 1] whose `kind` eraser brings the identity similarity of x (one image
 * [1, 3, H, W]) to f_R down to `target`, by bisection: strengths 0 and 1 first (0 already at or below
 * the target gives strength 0; 1 above it gives strength 1, reached false), then `iterations` halvings
 * of [lo, hi] keeping sim(hi) ≤ target < sim(lo). Two halvings share one encoder call (three strengths
 * in a batch). The similarity need not fall monotonically with the strength; the bisection then finds a
 * crossing, not necessarily the first.
 */
export async function matchSimilarity(kind: DegenerateKind, x: Tensor, opts: MatchSimilarityOptions): Promise<MatchedBaseline> {
  if (!DEGENERATE_KINDS.includes(kind)) throw invalidArgument(`kind must be one of ${DEGENERATE_KINDS.join(', ')}; got ${JSON.stringify(kind)}`);
  const shape = checkImages(x, 'x', true);
  if (opts === null || typeof opts !== 'object') throw invalidArgument('matchSimilarity needs {encoder, fR, target}');
  const { encoder, fR, target, protocol } = opts;
  if (!encoder || typeof encoder.embed !== 'function') throw invalidArgument('encoder must be an IdentityEncoder');
  if (!(fR instanceof Tensor) || fR.shape.length !== 2 || fR.shape[0] !== 1) throw invalidArgument(`fR must be one embedding Tensor [1, D], got ${fR instanceof Tensor ? JSON.stringify(fR.shape) : typeof fR}`);
  if (typeof target !== 'number' || !Number.isFinite(target)) throw invalidArgument(`target must be a finite number, got ${JSON.stringify(target)}`);
  const iterations = opts.iterations === undefined ? 10 : checkInt(opts.iterations, 'iterations', 0, 52);
  const job: JobOptions = { signal: opts.signal };

  const p = await pixels(x, shape, job);
  const mask = faceMask(shape[2]);
  const means = kind === 'fade' ? maskedMeans(p, mask) : null;
  const make = (a: number) => (kind === 'fade' ? fadePixels(p, mask, means!, a) : blurPixels(p, mask, (a * shape[2]) / 8));
  const per = p.data.length;
  const seen = new Map<number, { sim: number; pixels: Float32Array }>();

  /** Evaluate the strengths not seen yet in one encoder call. */
  const evaluate = async (strengths: number[]) => {
    const todo = [...new Set(strengths)].filter((a) => !seen.has(a));
    if (todo.length === 0) return;
    const batch = new Float32Array(per * todo.length);
    const outs = todo.map((a, i) => {
      const y = make(a);
      batch.set(y, i * per);
      return y;
    });
    const t = await like(x, batch, [todo.length, ...shape.slice(1)], job);
    let sims: Float32Array;
    try {
      const e = await encoder.embed(t, { protocol, signal: job.signal });
      try {
        const s = await similarity(e, fR, job);
        try {
          sims = Float32Array.from((await s.data(job)) as ArrayLike<number>);
        } finally {
          s.dispose();
        }
      } finally {
        e.dispose();
      }
    } finally {
      t.dispose();
    }
    todo.forEach((a, i) => {
      if (!Number.isFinite(sims[i])) throw new BiaError('BIA_NATIVE_ERROR', `the identity similarity of the ${kind} at strength ${a} is not finite`);
      seen.set(a, { sim: sims[i], pixels: outs[i] });
    });
  };
  const done = (a: number, reached: boolean) => {
    const r = seen.get(a)!;
    return like(x, r.pixels, shape, job).then((image) => ({ image, strength: a, similarity: r.sim, reached }));
  };

  await evaluate([0, 1]);
  if (seen.get(0)!.sim <= target) return done(0, true);
  if (seen.get(1)!.sim > target) return done(1, false);
  let lo = 0;
  let hi = 1;
  for (let left = iterations; left > 0; ) {
    const h = Math.min(2, left);
    // The bisection tree's next h levels below [lo, hi]: 1 or 3 strengths.
    const m = (lo + hi) / 2;
    await evaluate(h === 1 ? [m] : [(lo + m) / 2, m, (m + hi) / 2]);
    for (let k = 0; k < h; k++, left--) {
      const mid = (lo + hi) / 2;
      if (!seen.has(mid)) await evaluate([mid]);
      if (seen.get(mid)!.sim <= target) hi = mid;
      else lo = mid;
    }
  }
  return done(hi, true);
}

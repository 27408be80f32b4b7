/**
 * Black-hole formation, first half (docs/method.md steps 3–5): neighbours of h_r in h-space,
 * decoded from the same x_lat with each neighbour injected, labelled by identity similarity to the
 * reference, with α_max calibrated until both labels occur.
 */
import type { DiffusionModel, InjectMode } from '../diffusion';
import { takeRows } from './codes';
import { BiaError, invalidArgument } from '../errors';
import type { IdentityEncoder, InputProtocol } from '../identity';
import { similarity } from '../identity';
import { runJob, type JobOptions } from '../jobs';
import { loadAddon } from '../native';
import { checkInt } from '../options';
import { randn, Tensor } from '../tensor';
import type { Device } from '../options';

export interface NeighbourOptions extends JobOptions {
  /** How many neighbours (default 128, the released code's n). */
  n?: number;
  /** α_max relative to ‖h_r‖ (default 1): α_j ~ U[0, alphaMax·‖h_r‖]. */
  alphaMax?: number;
  /** Seed of the directions and step lengths (default 909090). */
  seed?: number;
  /**
   * `manifold` directions: u_j = unit(targets[j mod P] − h_r), with targets the h of random generated
   * samples (see manifoldTargets). Without targets: `isotropic` directions drawn from N(0, I).
   */
  targets?: Tensor;
}

export interface Neighbours {
  /** h_j = h_r + α_j·u_j, [n, C, H, W], on h_r's device. */
  codes: Tensor;
  /** α_j, absolute (‖h_j − h_r‖). */
  alphas: Float64Array;
}

/**
 * Neighbours h_j = h_r + α_j·u_j with α_j ~ U[0, alphaMax·‖h_r‖] (seeded): `isotropic` directions
 * u_j = unit(N(0, I)), or `manifold` ones towards opts.targets.
 */
export async function sampleNeighbours(hR: Tensor, opts?: NeighbourOptions): Promise<Neighbours> {
  if (!(hR instanceof Tensor)) throw invalidArgument('hR must be a Tensor');
  const n = checkInt(opts?.n ?? 128, 'n', 1, 65536);
  const alphaMax = opts?.alphaMax ?? 1;
  if (!(typeof alphaMax === 'number' && alphaMax > 0 && Number.isFinite(alphaMax))) throw invalidArgument(`alphaMax must be a positive number, got ${JSON.stringify(alphaMax)}`);
  const seed = checkInt(opts?.seed ?? 909090, 'seed', 0, 2 ** 52);
  const h = hR.handle;
  if (opts?.targets !== undefined && !(opts.targets instanceof Tensor)) throw invalidArgument('targets must be a Tensor');
  const targets = opts?.targets?.handle ?? null;
  const r = await runJob(opts, (j) => loadAddon().sampleNeighbours(h, n, alphaMax, seed, targets, j));
  return { codes: new Tensor(r.codes), alphas: r.alphas };
}

export interface ManifoldOptions extends JobOptions {
  /** How many random samples (default 16). */
  pool?: number;
  /** Inversion depth and steps, as for h_r (defaults 500, 40). */
  t0?: number;
  steps?: number;
  /** Seed of x_T (default 909090). */
  seed?: number;
  /** Images per batch (default 16). */
  batchSize?: number;
}

/**
 * The h of random samples, for `manifold` neighbours (docs/method.md step 3, GUIDE-style): x_T ~ N(0, I)
 * (seeded) → DDIM generation from t = 999 (η = 0, `steps` steps) → x0 → the same inversion as x_r's →
 * h of the last inversion call. h_ran is so measured exactly where h_r is. Costs 2·steps − 1 UNet
 * calls per sample. Returns [pool, C, H, W].
 */
export async function manifoldTargets(diffusion: DiffusionModel, opts?: ManifoldOptions): Promise<Tensor> {
  const pool = checkInt(opts?.pool ?? 16, 'pool', 1, 4096);
  const seed = checkInt(opts?.seed ?? 909090, 'seed', 0, 2 ** 52);
  const c = diffusion.config;
  const xT = await randn([pool, c.inChannels, c.resolution, c.resolution], { seed, device: diffusion.device as Device, dtype: 'float32' });
  let x0: Tensor | null = null;
  try {
    x0 = await diffusion.decode(xT, null, { t0: 999, steps: opts?.steps, eta: 0, batchSize: opts?.batchSize, signal: opts?.signal, onProgress: opts?.onProgress });
    const inv = await diffusion.invert(x0, { t0: opts?.t0, steps: opts?.steps, signal: opts?.signal, onProgress: opts?.onProgress });
    inv.xLat.dispose();
    return inv.hR;
  } finally {
    xT.dispose();
    x0?.dispose();
  }
}

export interface LabelOptions extends JobOptions {
  /** Injection mode of the decoding (default 'asyrp'). */
  mode?: InjectMode;
  /** DDIM η of the decoding (default 0: deterministic labels). */
  eta?: number;
  t0?: number;
  steps?: number;
  /** every-step / asyrp: edit only while t ≥ tEdit (default 0). */
  tEdit?: number;
  /** Identity threshold: label 1 (same identity) when sim > threshold (default 0.35). */
  threshold?: number;
  /** Encoder input protocol (default 'bia'). */
  protocol?: InputProtocol;
  /** Images decoded per batch (default 16). */
  batchSize?: number;
  /**
   * How many DDIM steps are decoded before labelling (default 0: the whole decoding, `steps` UNet steps from
   * t0 down to the image). With 0 < k < steps the labels cost k UNet steps per neighbour instead; `labelFrom`
   * says which image is labelled.
   */
  labelSteps?: number;
  /**
   * labelSteps > 0: `x0` labels the predicted x̂0 of the labelSteps-th step of the full schedule (the
   * default); `coarse` labels the end of a decoding with a schedule of labelSteps timesteps from t0 (≥ 2).
   */
  labelFrom?: LabelFrom;
  /**
   * labelSteps > 0: how sure a cheap label must be to be kept (default 0: every cheap label is kept). With
   * z > 0 the cheap similarities are mapped onto full-decoding ones by a line fitted on neighbours decoded in
   * full — first 8 spread over the cheap similarities' ranks, then every unrefined neighbour whose mapped
   * similarity lies within z residual deviations (at least 0.02) of the threshold, in one decoding, the line
   * refitted and the band redrawn until no such neighbour is left. Labels near the threshold, the ones that
   * decide the SVM, come from the full decoding; the rest from the mapped cheap similarity.
   */
  labelRefine?: number;
  /**
   * labelRefine > 0, [lo, hi]: stop refining as soon as the share of label 1 is sure to lie outside [lo, hi]
   * whatever the uncertain neighbours turn out to be (a calibration round that will be redone at another
   * α_max); the labels are then the mapped cheap ones and `decided` says so. Set by tryFormNeighbourhood for
   * every round but the last.
   */
  decideOutside?: [number, number];
}

export type LabelFrom = 'x0' | 'coarse';
export const LABEL_FROMS: readonly LabelFrom[] = ['x0', 'coarse'];

/**
 * The decoding a neighbour's label is read from (docs/method.md step 5): the full one, the x̂0 predicted
 * after labelSteps steps, or a coarser schedule. Shared by labelNeighbours and the throughput bench.
 */
export function labelDecodeOptions(opts: Pick<LabelOptions, 't0' | 'steps' | 'labelSteps' | 'labelFrom'> | undefined): { steps?: number; stopAfter?: number; predictX0?: boolean } {
  const steps = opts?.steps ?? 40;
  const k = checkInt(opts?.labelSteps ?? 0, 'labelSteps', 0, 1000);
  const from = opts?.labelFrom ?? 'x0';
  if (!LABEL_FROMS.includes(from)) throw invalidArgument(`labelFrom must be one of ${LABEL_FROMS.join(', ')}; got ${JSON.stringify(from)}`);
  if (k === 0 || k >= steps) return { steps: opts?.steps };
  if (from === 'coarse' && k < 2) throw invalidArgument(`labelFrom 'coarse' needs labelSteps ≥ 2 (a schedule of that many timesteps), got ${k}`);
  return from === 'x0' ? { steps: opts?.steps, stopAfter: k, predictX0: true } : { steps: k };
}

export interface Labelled {
  /** 1: the identity survived (sim > threshold); 0: another identity. */
  labels: Uint8Array;
  /** Per neighbour: the similarity its label comes from (labelRefine: full where decoded in full, else the mapped cheap one). */
  similarities: Float64Array;
  /** labelRefine > 0: how many neighbours were decoded in full as well. */
  refined?: number;
  /** decideOutside: the share was known to lie outside the range before every uncertain label was refined. */
  decided?: boolean;
}

/** labelRefine: the first batch decoded in full, and the floor of the residual deviation. */
const REFINE_FIRST = 8;
const REFINE_MIN_SD = 0.02;

function checkThreshold(thr: unknown): number {
  if (!(typeof thr === 'number' && thr >= -1 && thr <= 1)) throw invalidArgument(`threshold must be a number in [-1, 1], got ${JSON.stringify(thr)}`);
  return thr;
}

/** Decode every code from x_lat with it injected, embed, and label by similarity to f_r. */
export async function labelNeighbours(
  diffusion: DiffusionModel,
  encoder: IdentityEncoder,
  latent: { xLat: Tensor; hR: Tensor; fR: Tensor },
  codes: Tensor,
  opts?: LabelOptions,
): Promise<Labelled> {
  const threshold = checkThreshold(opts?.threshold ?? 0.35);
  const z = opts?.labelRefine ?? 0;
  if (!(typeof z === 'number' && z >= 0 && z <= 100)) throw invalidArgument(`labelRefine must be a number in [0, 100], got ${JSON.stringify(z)}`);
  const cheap = labelDecodeOptions(opts);
  const similaritiesOf = async (c: Tensor, decodeOpts: { steps?: number; stopAfter?: number; predictX0?: boolean }, onProgress?: JobOptions['onProgress']): Promise<Float64Array> => {
    const images = await diffusion.decode(latent.xLat, c, {
      mode: opts?.mode ?? 'asyrp',
      eta: opts?.eta ?? 0,
      t0: opts?.t0,
      ...decodeOpts,
      tEdit: opts?.tEdit,
      hRef: latent.hR,
      batchSize: opts?.batchSize,
      signal: opts?.signal,
      onProgress,
    });
    try {
      const emb = await encoder.embed(images, { protocol: opts?.protocol ?? 'bia', signal: opts?.signal });
      const sims = await similarity(emb, latent.fR, { signal: opts?.signal });
      const s = Float64Array.from(await sims.data());
      emb.dispose();
      sims.dispose();
      if (s.some((v) => !Number.isFinite(v))) throw new BiaError('BIA_NATIVE_ERROR', 'an identity similarity is NaN (the decoded images are not finite)');
      return s;
    } finally {
      images.dispose();
    }
  };
  const s = await similaritiesOf(codes, cheap, opts?.onProgress);
  const isCheap = cheap.stopAfter !== undefined || cheap.steps !== opts?.steps;
  if (!isCheap || z === 0) return { labels: Uint8Array.from(s, (v) => (v > threshold ? 1 : 0)), similarities: s };
  const full = new Map<number, number>();
  const decodeInFull = async (rows: number[]) => {
    const picked = await takeRows([codes], rows.map((r) => [0, r]), { signal: opts?.signal });
    try {
      const f = await similaritiesOf(picked, { steps: opts?.steps });
      rows.forEach((r, i) => full.set(r, f[i]));
    } finally {
      picked.dispose();
    }
  };
  const r = await refineLabels(s, threshold, z, decodeInFull, full, opts?.decideOutside);
  return { labels: Uint8Array.from(r.similarities, (v) => (v > threshold ? 1 : 0)), similarities: r.similarities, refined: full.size, ...(r.decided ? { decided: true } : {}) };
}

/**
 * The refinement loop of labelRefine: `cheap` similarities, `decodeInFull(rows)` fills `full` with the full
 * decoding's similarity of those rows. Returns the similarity each label is read from, and whether the loop
 * stopped early because the share of label 1 was sure to lie outside `decideOutside`.
 */
export async function refineLabels(
  cheap: Float64Array,
  threshold: number,
  z: number,
  decodeInFull: (rows: number[]) => Promise<void>,
  full: Map<number, number>,
  decideOutside?: [number, number],
): Promise<{ similarities: Float64Array; decided: boolean }> {
  const n = cheap.length;
  const all = Array.from({ length: n }, (_, i) => i);
  const byCheap = [...all].sort((a, b) => cheap[a] - cheap[b] || a - b);
  if (n <= 2 * REFINE_FIRST) await decodeInFull(all);
  else await decodeInFull([...new Set(Array.from({ length: REFINE_FIRST }, (_, i) => byCheap[Math.round((i * (n - 1)) / (REFINE_FIRST - 1))]))]);
  for (;;) {
    const rest = all.filter((i) => !full.has(i));
    if (rest.length === 0) return { similarities: Float64Array.from(all, (i) => full.get(i)!), decided: false };
    const fit = fitLine([...full].map(([i, f]) => [cheap[i], f]));
    if (!fit) {
      await decodeInFull(rest);
      continue;
    }
    const predicted = (i: number) => fit.a + fit.b * cheap[i];
    const band = z * Math.max(REFINE_MIN_SD, fit.sd);
    const unsure = rest.filter((i) => Math.abs(predicted(i) - threshold) < band);
    const mapped = () => Float64Array.from(all, (i) => full.get(i) ?? predicted(i));
    if (unsure.length === 0) return { similarities: mapped(), decided: false };
    if (decideOutside) {
      const open = new Set(unsure);
      const sureOnes = all.filter((i) => !open.has(i) && (full.get(i) ?? predicted(i)) > threshold).length;
      if ((sureOnes + unsure.length) / n < decideOutside[0] || sureOnes / n > decideOutside[1]) return { similarities: mapped(), decided: true };
    }
    await decodeInFull(unsure);
  }
}

/** Least-squares line y = a + b·x with the residual deviation; null when it cannot be trusted (too few points, flat or falling). */
function fitLine(points: [number, number][]): { a: number; b: number; sd: number } | null {
  const m = points.length;
  if (m < 3) return null;
  const mx = points.reduce((t, [x]) => t + x, 0) / m;
  const my = points.reduce((t, [, y]) => t + y, 0) / m;
  const sxx = points.reduce((t, [x]) => t + (x - mx) ** 2, 0);
  if (!(sxx > 1e-12)) return null;
  const b = points.reduce((t, [x, y]) => t + (x - mx) * (y - my), 0) / sxx;
  if (!(b > 0)) return null;
  const a = my - b * mx;
  const sd = Math.sqrt(points.reduce((t, [x, y]) => t + (y - a - b * x) ** 2, 0) / Math.max(1, m - 2));
  return { a, b, sd };
}

export interface NeighbourhoodOptions extends NeighbourOptions, Omit<LabelOptions, keyof JobOptions> {
  /** Accepted share of label-1 neighbours (default [0.2, 0.8]). */
  shareRange?: [number, number];
  /** Calibration rounds before giving up (default 6: α_max can move by 2^5 either way). */
  maxRounds?: number;
}

export interface Neighbourhood extends Neighbours, Labelled {
  /** The α_max (relative to ‖h_r‖) that gave both classes. */
  alphaMax: number;
  /** Every calibration round: α_max tried and the share of label 1 it gave. */
  /** refined / decided: labelRefine's count of neighbours decoded in full, and a round stopped early (its share then from mapped labels). */
  rounds: { alphaMax: number; share: number; refined?: number; decided?: boolean }[];
}

export interface NeighbourhoodAttempt extends Neighbourhood {
  /** false: no round gave a share in range; codes and labels are then those of the last round. */
  found: boolean;
  /** Why not found, quoting every share seen. */
  message?: string;
}

/**
 * Sample, decode and label neighbours, calibrating α_max (×2 when too many keep the identity,
 * ×0.5 when too few) until the share of label 1 lies in `shareRange`. When no round does, the
 * last round is returned with found = false (the pipeline goes on with `optimize` absorption).
 */
export async function tryFormNeighbourhood(
  diffusion: DiffusionModel,
  encoder: IdentityEncoder,
  latent: { xLat: Tensor; hR: Tensor; fR: Tensor },
  opts?: NeighbourhoodOptions & JobOptions,
): Promise<NeighbourhoodAttempt> {
  const [lo, hi] = opts?.shareRange ?? [0.2, 0.8];
  if (!(lo >= 0 && hi <= 1 && lo < hi)) throw invalidArgument(`shareRange must be [lo, hi] with 0 <= lo < hi <= 1, got ${JSON.stringify(opts?.shareRange)}`);
  const maxRounds = checkInt(opts?.maxRounds ?? 6, 'maxRounds', 1, 64);
  checkThreshold(opts?.threshold ?? 0.35);
  let alphaMax = opts?.alphaMax ?? 1;
  const rounds: Neighbourhood['rounds'] = [];
  for (let r = 0; ; r++) {
    const nb = await sampleNeighbours(latent.hR, { ...opts, alphaMax, seed: (opts?.seed ?? 909090) + r });
    let keep = false;
    try {
      const lab = await labelNeighbours(diffusion, encoder, latent, nb.codes, { ...opts, decideOutside: r + 1 < maxRounds ? [lo, hi] : undefined });
      const share = lab.labels.reduce((a, b) => a + b, 0) / lab.labels.length;
      rounds.push({ alphaMax, share, ...(lab.refined !== undefined ? { refined: lab.refined } : {}), ...(lab.decided ? { decided: true } : {}) });
      const found = share >= lo && share <= hi;
      if (found || r + 1 === maxRounds) {
        keep = true;
        if (found) return { ...nb, ...lab, alphaMax, rounds, found };
        const seen = rounds.map((x) => `α_max ${x.alphaMax.toPrecision(3)}·‖h_r‖ → ${(x.share * 100).toFixed(0)}% label 1`).join(', ');
        const message = `no boundary: no α_max gave a share of label-1 neighbours in [${lo}, ${hi}] after ${rounds.length} rounds (${seen})`;
        return { ...nb, ...lab, alphaMax, rounds, found, message };
      }
      alphaMax = share > hi ? alphaMax * 2 : alphaMax / 2;
    } finally {
      if (!keep) nb.codes.dispose();
    }
  }
}

/** As tryFormNeighbourhood, but "no boundary" is an error: BIA_NO_BOUNDARY quoting every share seen. */
export async function formNeighbourhood(
  diffusion: DiffusionModel,
  encoder: IdentityEncoder,
  latent: { xLat: Tensor; hR: Tensor; fR: Tensor },
  opts?: NeighbourhoodOptions & JobOptions,
): Promise<Neighbourhood> {
  const r = await tryFormNeighbourhood(diffusion, encoder, latent, opts);
  if (r.found) return r;
  r.codes.dispose();
  throw new BiaError('BIA_NO_BOUNDARY', r.message ?? 'no boundary');
}

/**
 * Black-hole formation, first half (docs/method.md steps 3–5): neighbours of h_r in h-space,
 * decoded from the same x_lat with each neighbour injected, labelled by identity similarity to the
 * reference, with α_max calibrated until both labels occur.
 */
import type { DiffusionModel, InjectMode } from '../diffusion';
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
  similarities: Float64Array;
}

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
  const images = await diffusion.decode(latent.xLat, codes, {
    mode: opts?.mode ?? 'asyrp',
    eta: opts?.eta ?? 0,
    t0: opts?.t0,
    ...labelDecodeOptions(opts),
    tEdit: opts?.tEdit,
    hRef: latent.hR,
    batchSize: opts?.batchSize,
    signal: opts?.signal,
    onProgress: opts?.onProgress,
  });
  try {
    const emb = await encoder.embed(images, { protocol: opts?.protocol ?? 'bia', signal: opts?.signal });
    const sims = await similarity(emb, latent.fR, { signal: opts?.signal });
    const s = Float64Array.from(await sims.data());
    emb.dispose();
    sims.dispose();
    if (s.some((v) => !Number.isFinite(v))) throw new BiaError('BIA_NATIVE_ERROR', 'an identity similarity is NaN (the decoded images are not finite)');
    return { labels: Uint8Array.from(s, (v) => (v > threshold ? 1 : 0)), similarities: s };
  } finally {
    images.dispose();
  }
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
  rounds: { alphaMax: number; share: number }[];
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
  const rounds: { alphaMax: number; share: number }[] = [];
  for (let r = 0; ; r++) {
    const nb = await sampleNeighbours(latent.hR, { ...opts, alphaMax, seed: (opts?.seed ?? 909090) + r });
    let keep = false;
    try {
      const lab = await labelNeighbours(diffusion, encoder, latent, nb.codes, opts);
      const share = lab.labels.reduce((a, b) => a + b, 0) / lab.labels.length;
      rounds.push({ alphaMax, share });
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

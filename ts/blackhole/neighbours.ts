/**
 * Black-hole formation, first half (docs/METHOD.md steps 3–5): neighbours of h_r in h-space,
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
import { Tensor } from '../tensor';

export interface NeighbourOptions extends JobOptions {
  /** How many neighbours (default 128, the released code's n). */
  n?: number;
  /** α_max relative to ‖h_r‖ (default 1): α_j ~ U[0, alphaMax·‖h_r‖]. */
  alphaMax?: number;
  /** Seed of the directions and step lengths (default 909090). */
  seed?: number;
}

export interface Neighbours {
  /** h_j = h_r + α_j·u_j, [n, C, H, W], on h_r's device. */
  codes: Tensor;
  /** α_j, absolute (‖h_j − h_r‖). */
  alphas: Float64Array;
}

/** `isotropic` neighbours: u_j = unit(N(0, I)) directions, α_j ~ U[0, alphaMax·‖h_r‖] (seeded). */
export async function sampleNeighbours(hR: Tensor, opts?: NeighbourOptions): Promise<Neighbours> {
  if (!(hR instanceof Tensor)) throw invalidArgument('hR must be a Tensor');
  const n = checkInt(opts?.n ?? 128, 'n', 1, 65536);
  const alphaMax = opts?.alphaMax ?? 1;
  if (!(typeof alphaMax === 'number' && alphaMax > 0 && Number.isFinite(alphaMax))) throw invalidArgument(`alphaMax must be a positive number, got ${JSON.stringify(alphaMax)}`);
  const seed = checkInt(opts?.seed ?? 909090, 'seed', 0, 2 ** 52);
  const h = hR.handle;
  const r = await runJob(opts, (j) => loadAddon().sampleNeighbours(h, n, alphaMax, seed, j));
  return { codes: new Tensor(r.codes), alphas: r.alphas };
}

export interface LabelOptions extends JobOptions {
  /** Injection mode of the decoding (default 'asyrp'). */
  mode?: InjectMode;
  /** DDIM η of the decoding (default 0: deterministic labels). */
  eta?: number;
  t0?: number;
  steps?: number;
  /** Identity threshold: label 1 (same identity) when sim > threshold (default 0.35). */
  threshold?: number;
  /** Encoder input protocol (default 'bia'). */
  protocol?: InputProtocol;
  /** Images decoded per batch (default 16). */
  batchSize?: number;
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
    steps: opts?.steps,
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

/**
 * Sample, decode and label neighbours, calibrating α_max (×2 when too many keep the identity,
 * ×0.5 when too few) until the share of label 1 lies in `shareRange`. Fails with BIA_NO_BOUNDARY,
 * quoting every share seen, when no round gives both classes in range.
 */
export async function formNeighbourhood(
  diffusion: DiffusionModel,
  encoder: IdentityEncoder,
  latent: { xLat: Tensor; hR: Tensor; fR: Tensor },
  opts?: NeighbourhoodOptions & JobOptions,
): Promise<Neighbourhood> {
  const [lo, hi] = opts?.shareRange ?? [0.2, 0.8];
  if (!(lo >= 0 && hi <= 1 && lo < hi)) throw invalidArgument(`shareRange must be [lo, hi] with 0 <= lo < hi <= 1, got ${JSON.stringify(opts?.shareRange)}`);
  const maxRounds = checkInt(opts?.maxRounds ?? 6, 'maxRounds', 1, 64);
  checkThreshold(opts?.threshold ?? 0.35);
  let alphaMax = opts?.alphaMax ?? 1;
  const rounds: { alphaMax: number; share: number }[] = [];
  for (let r = 0; r < maxRounds; r++) {
    const nb = await sampleNeighbours(latent.hR, { ...opts, alphaMax, seed: (opts?.seed ?? 909090) + r });
    let keep = false;
    try {
      const lab = await labelNeighbours(diffusion, encoder, latent, nb.codes, opts);
      const share = lab.labels.reduce((a, b) => a + b, 0) / lab.labels.length;
      rounds.push({ alphaMax, share });
      if (share >= lo && share <= hi) {
        keep = true;
        return { ...nb, ...lab, alphaMax, rounds };
      }
      alphaMax = share > hi ? alphaMax * 2 : alphaMax / 2;
    } finally {
      if (!keep) nb.codes.dispose();
    }
  }
  const seen = rounds.map((x) => `α_max ${x.alphaMax.toPrecision(3)}·‖h_r‖ → ${(x.share * 100).toFixed(0)}% label 1`).join(', ');
  throw new BiaError('BIA_NO_BOUNDARY', `no boundary: no α_max gave a share of label-1 neighbours in [${lo}, ${hi}] after ${rounds.length} rounds (${seen})`);
}

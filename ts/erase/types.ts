/**
 * The contract of the erase job (docs/method.md, steps 1–9): its options and the report it returns.
 * Each option's default, limits and flag are specified once, in ERASE_OPTIONS (./options.ts; the table
 * in docs/cli.md is generated from it); the comments here say what the options mean. The pipeline (ts/erase/pipeline.ts), the CLI (`bia erase`) and the HTML
 * report all speak this shape; report.json is exactly an `EraseReport`.
 */
import type { InjectMode } from '../diffusion';
import type { InputProtocol } from '../identity';
import type { JobOptions } from '../jobs';
import type { Tensor } from '../tensor';

/**
 * Where neighbour directions point: `isotropic` N(0, I); `manifold` the h of random samples of the DDPM;
 * `others` the h of given photos of other people (EraseCall.others), inverted like x_r: directions that stay
 * on the data manifold even when the DDPM's own samples are poor.
 */
export type NeighbourMode = 'isotropic' | 'manifold' | 'others';
export type AbsorbMode = 'walk' | 'optimize' | 'line';
/** optimize: backprop through every decoding step (gradient checkpointing) or through x̂0 at t0. */
export type Backprop = 'full' | 'one-step';

/**
 * The weights of the absorption loss L (L_wrapper + λ_sem·L_sem) and the path of its gradient: options
 * of the erase job (step 8) and of absorbLoss / absorbOptimize, with the same defaults.
 */
export interface AbsorbLossWeights {
  /** Backpropagate through every decoding step ('full', default) or through x̂0 at t0 ('one-step'). */
  backprop?: Backprop;
  /** τ_m of the identity hinge of L_wrapper (default 0.25). */
  tauM?: number;
  /** μ of L_wrapper's pull towards the nearest wrap code (default 1). */
  mu?: number;
  /** λ_id on the identity hinge (default 1). */
  lambdaId?: number;
  /** λ_sem on L_sem (default 1). */
  lambdaSem?: number;
  /** λ_perc inside L_sem (default 0.5); the erase job also weighs L_perc with it inside L_fid. */
  lambdaPerc?: number;
}

export interface EraseOptions extends JobOptions, AbsorbLossWeights {
  // --- inversion and decoding (docs/method.md steps 1, 4) ---
  /** Inversion depth. */
  t0?: number;
  /** Timesteps of the inversion / generation sequences. */
  steps?: number;
  /** How ĥ reaches the decoder. */
  inject?: InjectMode;
  /** DDIM η of neighbour decoding and absorption. */
  eta?: number;
  /** every-step / asyrp: edit only while t ≥ tEdit. */
  tEdit?: number;
  /**
   * Asyrp's quality boosting in the absorption's decodings (candidates and the random baseline; not the
   * neighbours' labels nor the reconstruction): steps with t < tBoost run with η = etaBoost.
   */
  tBoost?: number;
  /** η of the boosted steps. */
  etaBoost?: number;
  /** Images per decoding batch. */
  batchSize?: number;
  /** Identity-encoder input protocol. */
  protocol?: InputProtocol;

  // --- black hole formation (steps 3, 5, 6, 7) ---
  /** Neighbours. */
  neighbours?: number;
  /** Direction source of h_ran. */
  neighbourMode?: NeighbourMode;
  /** manifold: distinct random samples whose h give the directions. */
  manifoldPool?: number;
  /** Starting α_max relative to ‖h_r‖, calibrated ×2 / ×0.5. */
  alphaMax?: number;
  /** Calibration rounds. */
  calibrationRounds?: number;
  /** Accepted share of label-1 neighbours. */
  shareRange?: [number, number];
  /**
   * Neighbour labels from fewer UNet steps: 0 decodes each neighbour in full (steps − 1 UNet steps); k > 0
   * labels the image after k steps, read as `labelFrom` says.
   */
  labelSteps?: number;
  /** labelSteps > 0: the predicted x̂0 after k steps of the full schedule (`x0`), or a k-step decoding (`coarse`). */
  labelFrom?: 'x0' | 'coarse';
  /**
   * labelSteps > 0: the cheap similarities are mapped onto full ones by a line fitted on neighbours decoded in
   * full, and every neighbour whose mapped similarity lies within labelRefine residual deviations of the
   * threshold is decoded in full too (0: every cheap label is kept). docs/throughput.md measures it.
   */
  labelRefine?: number;
  /** Identity threshold: label 1 when sim > threshold. */
  threshold?: number;
  /** SVM C. */
  C?: number;
  /** Share of neighbours held out to measure the SVM's accuracy. */
  holdout?: number;
  /** Wrap-set size K. */
  wrapSize?: number;

  // --- absorption (step 8) ---
  /**
   * Absorption mode. `line`: h_r moved along the black hole's normal to lineSteps
   * distances beyond the boundary (up to walkStep[1], in walkStepUnit), keeping the shortest move whose
   * similarity falls below eraseTarget and whose L_fid passes fidelityThreshold — the least change that
   * leaves the black hole. When the image has no boundary, 'optimize' is used.
   */
  absorb?: AbsorbMode;
  /** line: number of distances tried, evenly spaced up to walkStep[1]. */
  lineSteps?: number;
  /** line: the identity similarity a move must reach to count as erased. */
  eraseTarget?: number;
  /**
   * line: distances decoded per batch, shortest first, stopping after the first batch that holds a qualifying
   * move (the output is the same as decoding all of them; the report lists the distances decoded). 0: all at once.
   */
  lineBatch?: number;
  /** walk: Δ ~ U[lo, hi]. */
  walkStep?: [number, number];
  /** walk: Δ is absolute (default, the released code's) or relative to ‖h_r‖. */
  walkStepUnit?: 'absolute' | 'relative';
  /** walk: trials, halving Δ after each rejection. */
  walkTrials?: number;
  /** walk: accept when L_fid = MSE + λ_perc·L_perc < this. */
  fidelityThreshold?: number;
  /** optimize: Adam iterations and learning rate relative to ‖h_r‖. */
  iterations?: number;
  lr?: number;
  /** optimize: start this far (relative to ‖h_r‖) beyond the boundary. */
  startMargin?: number;
  // optimize: backprop, and L's weights tauM, mu, lambdaId, lambdaSem, lambdaPerc (AbsorbLossWeights).

  // --- evaluation ---
  /** Run the random-direction baseline. */
  baseline?: boolean;
  /**
   * Run the degenerate baselines: the input's face region faded towards its mean colour,
   * and blurred, each at the smallest strength whose identity similarity is at most the BIA output's
   * (ts/erase/degenerate.ts): what BIA must beat on fidelity at equal identity loss.
   */
  degenerateBaselines?: boolean;
  /** Seed of everything random. */
  seed?: number;
}

/** Progress of the whole job: one stage at a time, each from 0 to total. */
export type EraseStage = 'load' | 'invert' | 'neighbours' | 'boundary' | 'absorb' | 'baseline' | 'evaluate';

export interface EraseProgress {
  stage: EraseStage;
  step: number;
  total: number;
  /** 0..1 over the whole job (monotone; 1 at the end). */
  fraction: number;
  message?: string;
}

export interface Candidate {
  /** 'source' (ĥ_r walked / optimised) or the index of the wrap point it came from. */
  from: 'source' | number;
  /** ‖ĥ − h_r‖ / ‖h_r‖. */
  distance: number;
  /** Signed distance to the boundary after the step (negative: outside the black hole); null without a boundary. */
  signedDistance: number | null;
  /** Identity similarity of Dec(ĥ) to f_r. */
  similarity: number;
  /** L_sem to the reconstruction Dec(h_r): MSE + λ_perc·L_perc. */
  sem: number;
  /** walk: L_fid of the accepted (or last) trial; optimize: final loss. */
  fidelity: number;
  accepted: boolean;
  /** walk: trials used. */
  trials?: number;
}

/** One degenerate baseline of the report (matchSimilarity's numbers, plus its preservation). */
export interface DegenerateBaseline {
  /** The eraser's strength in [0, 1] (fade: blend weight; blur: σ = strength·side/8 pixels). */
  strength: number;
  /** Identity similarity of its image to f_r. */
  similarity: number;
  /** false: strength 1 stayed above the BIA output's similarity. */
  reached: boolean;
  /** Its image against the input: MSE, SSIM over the whole image (as `preservation` for the output). */
  preservation: { mse: number; ssim: number };
}

export interface EraseReport {
  version: string;
  input: { name: string; width: number; height: number; sha256: string };
  models: {
    /** autocast: the UNet's mixed precision (DiffusionModel.autocast), null for none (absent in reports before it). */
    diffusion: { path: string | null; sha256: string | null; config: Record<string, unknown>; autocast?: 'float16' | 'bfloat16' | null };
    encoder: { path: string | null; sha256: string | null; arch: string };
    /** The second, independent recognizer, when given. */
    secondEncoder?: { path: string | null; sha256: string | null; arch: string };
    perceptual: string;
  };
  options: Required<Omit<EraseOptions, 'signal' | 'onProgress'>>;
  device: string;
  /** Identity similarities to f_r = E(x_r). */
  sid: {
    reconstruction: number;
    after: number;
    /** The random-direction baseline's. */
    randomBaseline: number | null;
    /** Same three with the second encoder, when given. */
    second?: { reconstruction: number; after: number; randomBaseline: number | null };
  };
  blackHole: {
    /** false: no α_max gave both classes ("no boundary"); the absorption then ran in optimize mode. */
    found: boolean;
    message?: string;
    alphaMax: number | null;
    rounds: { alphaMax: number; share: number; refined?: number; decided?: boolean }[];
    labelShare: number | null;
    /** Neighbour similarities to f_r, for the histogram. */
    similarities: number[];
    svm: { trainAccuracy: number; heldOutAccuracy: number | null; majorityRate: number; geometricMargin: number; supportVectors: number } | null;
    /** s(h_r) before orientation, and its norm ‖h_r‖. */
    sourceDistance: number | null;
    hNorm: number;
    wrap: { index: number; label: number; distance: number }[];
  };
  absorption: {
    mode: AbsorbMode;
    backprop?: Backprop;
    candidates: Candidate[];
    /** Index into candidates of the output. */
    chosen: number;
    /** optimize: per iteration. */
    losses?: { loss: number[]; similarity: number[]; wrapper: number[]; sem: number[] };
  };
  /** The random-direction baseline: h_r moved the output's distance along a random direction (null when off). */
  randomBaseline: { distance: number; similarity: number; sem: number } | null;
  /**
   * The degenerate baselines at the BIA output's similarity (sid.after): fade and blur of the input's
   * face region. null when off; absent in reports written before they existed.
   */
  degenerateBaselines?: { fade: DegenerateBaseline; blur: DegenerateBaseline } | null;
  /** Preservation of the output against the input: MSE, SSIM over the whole image. */
  preservation: { mse: number; ssim: number };
  /** Seconds per stage. */
  timings: Record<EraseStage | 'total', number>;
  seeds: { neighbours: number; svm: number; walk: number; randomBaseline: number; decode: number };
  /** ISO time the report was written. */
  finishedAt: string;
}

/** What eraseIdentity returns. Dispose it (or each tensor) when done; report is plain data. */
export interface EraseResult {
  /** The output Dec(ĥ_r) (the chosen candidate), [1, 3, H, W] in [-1, 1]. */
  image: Tensor;
  /** The DDIM reconstruction Dec(h_r), [1, 3, H, W]. */
  reconstruction: Tensor;
  /** The random-direction baseline's image, when run. */
  randomBaseline: Tensor | null;
  /** The degenerate baselines' images (fade and blur of the face region, [1, 3, H, W]), when run. */
  degenerate: { fade: Tensor; blur: Tensor } | null;
  /** Every candidate's image, [N, 3, H, W], in report.absorption.candidates order. */
  candidates: Tensor;
  report: EraseReport;
  dispose(): void;
}

/**
 * The erase job's options: defaults (the released code's settings, docs/METHOD.md "Released defaults")
 * and one validation that names the bad option.
 */
import { INJECT_MODES } from '../diffusion';
import { invalidArgument } from '../errors';
import { INPUT_PROTOCOLS } from '../identity';
import { checkInt } from '../options';
import type { AbsorbMode, Backprop, EraseOptions, NeighbourMode } from './types';

export type ResolvedEraseOptions = Required<Omit<EraseOptions, 'signal' | 'onProgress'>>;

export const ERASE_DEFAULTS: Readonly<ResolvedEraseOptions> = Object.freeze({
  t0: 500,
  steps: 40,
  inject: 'asyrp',
  eta: 0,
  tEdit: 0,
  tBoost: 0,
  etaBoost: 1,
  batchSize: 16,
  protocol: 'bia',
  neighbours: 128,
  neighbourMode: 'isotropic',
  manifoldPool: 16,
  alphaMax: 1,
  calibrationRounds: 6,
  shareRange: [0.2, 0.8],
  threshold: 0.35,
  C: 1,
  holdout: 0.25,
  wrapSize: 8,
  absorb: 'walk',
  lineSteps: 12,
  eraseTarget: 0.35,
  walkStep: [100, 120],
  walkStepUnit: 'absolute',
  walkTrials: 5,
  fidelityThreshold: 0.35,
  iterations: 50,
  lr: 0.01,
  margin: 0.05,
  backprop: 'full',
  tauM: 0.25,
  mu: 1,
  lambdaId: 1,
  lambdaSem: 1,
  lambdaPerc: 0.5,
  baseline: true,
  degenerateBaselines: true,
  seed: 909090,
} as ResolvedEraseOptions);

const NEIGHBOUR_MODES: readonly NeighbourMode[] = ['isotropic', 'manifold', 'others'];
const ABSORB_MODES: readonly AbsorbMode[] = ['walk', 'optimize', 'line'];
const BACKPROPS: readonly Backprop[] = ['full', 'one-step'];

function num(v: unknown, name: string, lo: number, hi: number, { openLo = false } = {}): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || (openLo ? v <= lo : v < lo) || v > hi) {
    throw invalidArgument(`${name} must be a number in ${openLo ? '(' : '['}${lo}, ${hi}], got ${JSON.stringify(v)}`);
  }
  return v;
}

function oneOf<T extends string>(v: unknown, name: string, allowed: readonly T[]): T {
  if (!allowed.includes(v as T)) throw invalidArgument(`${name} must be one of ${allowed.join(', ')}; got ${JSON.stringify(v)}`);
  return v as T;
}

function pair(v: unknown, name: string, lo: number, hi: number, strictOrder: boolean): [number, number] {
  if (!Array.isArray(v) || v.length !== 2) throw invalidArgument(`${name} must be a pair [lo, hi], got ${JSON.stringify(v)}`);
  const a = num(v[0], `${name}[0]`, lo, hi);
  const b = num(v[1], `${name}[1]`, lo, hi);
  if (strictOrder ? !(a < b) : !(a <= b)) throw invalidArgument(`${name} must have lo ${strictOrder ? '<' : '<='} hi, got ${JSON.stringify(v)}`);
  return [a, b];
}

const KNOWN = new Set<string>([...Object.keys(ERASE_DEFAULTS), 'signal', 'onProgress']);

/** Defaults filled in and every option checked (BIA_INVALID_ARGUMENT naming the option). */
export function resolveEraseOptions(opts: EraseOptions | undefined, extraKeys: readonly string[] = []): ResolvedEraseOptions {
  if (opts !== undefined && (opts === null || typeof opts !== 'object')) throw invalidArgument('options must be an object');
  const o = { ...ERASE_DEFAULTS } as ResolvedEraseOptions;
  for (const [k, v] of Object.entries(opts ?? {})) {
    if (!KNOWN.has(k) && !extraKeys.includes(k)) throw invalidArgument(`unknown option '${k}'`);
    if (v !== undefined && k in ERASE_DEFAULTS) (o as unknown as Record<string, unknown>)[k] = v;
  }
  o.t0 = checkInt(o.t0, 't0', 1, 999);
  o.steps = checkInt(o.steps, 'steps', 2, o.t0 + 1);
  o.inject = oneOf(o.inject, 'inject', INJECT_MODES);
  o.eta = num(o.eta, 'eta', 0, 1);
  o.tEdit = checkInt(o.tEdit, 'tEdit', 0, 999);
  o.tBoost = checkInt(o.tBoost, 'tBoost', 0, 1000);
  o.etaBoost = num(o.etaBoost, 'etaBoost', 0, 1);
  o.batchSize = checkInt(o.batchSize, 'batchSize', 1, 4096);
  o.protocol = oneOf(o.protocol, 'protocol', INPUT_PROTOCOLS);
  o.neighbours = checkInt(o.neighbours, 'neighbours', 2, 65536);
  o.neighbourMode = oneOf(o.neighbourMode, 'neighbourMode', NEIGHBOUR_MODES);
  o.manifoldPool = checkInt(o.manifoldPool, 'manifoldPool', 1, 4096);
  o.alphaMax = num(o.alphaMax, 'alphaMax', 0, 1e6, { openLo: true });
  o.calibrationRounds = checkInt(o.calibrationRounds, 'calibrationRounds', 1, 64);
  o.shareRange = pair(o.shareRange, 'shareRange', 0, 1, true);
  o.threshold = num(o.threshold, 'threshold', -1, 1);
  o.C = num(o.C, 'C', 0, 1e9, { openLo: true });
  o.holdout = num(o.holdout, 'holdout', 0, 0.9);
  o.wrapSize = checkInt(o.wrapSize, 'wrapSize', 1, 65536);
  o.absorb = oneOf(o.absorb, 'absorb', ABSORB_MODES);
  o.lineSteps = checkInt(o.lineSteps, 'lineSteps', 1, 256);
  o.eraseTarget = num(o.eraseTarget, 'eraseTarget', -1, 1);
  o.walkStep = pair(o.walkStep, 'walkStep', 0, 1e9, false);
  if (!(o.walkStep[1] > 0)) throw invalidArgument('walkStep must not be [0, 0]');
  o.walkStepUnit = oneOf(o.walkStepUnit, 'walkStepUnit', ['absolute', 'relative'] as const);
  o.walkTrials = checkInt(o.walkTrials, 'walkTrials', 1, 64);
  o.fidelityThreshold = num(o.fidelityThreshold, 'fidelityThreshold', 0, 1e9, { openLo: true });
  o.iterations = checkInt(o.iterations, 'iterations', 1, 100000);
  o.lr = num(o.lr, 'lr', 0, 1e3, { openLo: true });
  o.margin = num(o.margin, 'margin', 0, 1e3);
  o.backprop = oneOf(o.backprop, 'backprop', BACKPROPS);
  o.tauM = num(o.tauM, 'tauM', -1, 1);
  o.mu = num(o.mu, 'mu', 0, 1e6);
  o.lambdaId = num(o.lambdaId, 'lambdaId', 0, 1e6);
  o.lambdaSem = num(o.lambdaSem, 'lambdaSem', 0, 1e6);
  o.lambdaPerc = num(o.lambdaPerc, 'lambdaPerc', 0, 1e6);
  if (typeof o.baseline !== 'boolean') throw invalidArgument(`baseline must be a boolean, got ${JSON.stringify(o.baseline)}`);
  if (typeof o.degenerateBaselines !== 'boolean') throw invalidArgument(`degenerateBaselines must be a boolean, got ${JSON.stringify(o.degenerateBaselines)}`);
  o.seed = checkInt(o.seed, 'seed', 0, 2 ** 52 - 16);
  return o;
}

/**
 * The erase job's options, specified once. Each entry of ERASE_OPTIONS gives the default (the released
 * code's settings, see docs/method.md), the kind and limits, the `bia erase` flag and its help. From it
 * come: ERASE_DEFAULTS, the library's validation (resolveEraseOptions), the CLI's flags, parsing and
 * help (ts/cli/erase.ts) and the options table of docs/cli.md (eraseOptionsMarkdown; a test compares).
 * The native code then checks only what it must (shapes, devices, finiteness).
 */
import { INJECT_MODES } from '../diffusion';
import { invalidArgument } from '../errors';
import { INPUT_PROTOCOLS } from '../identity';
import { LABEL_FROMS } from '../blackhole/neighbours';
import type { AbsorbMode, Backprop, EraseOptions, NeighbourMode } from './types';

/** Every option the erase job takes (signal and onProgress are not settings). */
export type EraseOptionKey = Exclude<keyof EraseOptions, 'signal' | 'onProgress'>;
export type ResolvedEraseOptions = Required<Omit<EraseOptions, 'signal' | 'onProgress'>>;

/** How a value is checked. Limits are inclusive unless marked exclusive; `max: Infinity` means unbounded. */
export type OptionKind =
  | { kind: 'int'; min: number; max: number }
  | { kind: 'number'; min: number; max: number; minExclusive?: boolean; maxExclusive?: boolean }
  | { kind: 'pair'; min: number; max: number; strict: boolean }
  | { kind: 'enum'; values: readonly string[] }
  | { kind: 'bool' };

export type OptionSpec<V = unknown> = OptionKind & {
  default: V;
  /** The `bia erase` flag without dashes; for a bool, the flag that turns it off (no-…). */
  flag: string;
  help: string;
  /** Where the option acts, for the docs table. */
  group: 'decoding' | 'neighbours' | 'boundary' | 'absorption' | 'losses' | 'run';
};

const NEIGHBOUR_MODES: readonly NeighbourMode[] = ['isotropic', 'manifold', 'others'];
const ABSORB_MODES: readonly AbsorbMode[] = ['walk', 'optimize', 'line'];
const BACKPROPS: readonly Backprop[] = ['full', 'one-step'];
const UNBOUNDED = Infinity;

/** The one source of truth: a missing or extra key is a compile error. */
export const ERASE_OPTIONS: { readonly [K in EraseOptionKey]-?: OptionSpec<ResolvedEraseOptions[K]> } = {
  t0: { kind: 'int', min: 1, max: 999, default: 500, flag: 't0', group: 'decoding', help: 'inversion depth: the timestep DDIM inversion stops at' },
  steps: { kind: 'int', min: 2, max: 1000, default: 40, flag: 'steps', group: 'decoding', help: 'timesteps of inversion and decoding (at most t0 + 1)' },
  inject: { kind: 'enum', values: INJECT_MODES, default: 'asyrp', flag: 'inject', group: 'decoding', help: 'how the edited h reaches the decoder' },
  eta: { kind: 'number', min: 0, max: 1, default: 0, flag: 'eta', group: 'decoding', help: 'DDIM η of decoding' },
  tEdit: { kind: 'int', min: 0, max: 999, default: 0, flag: 't-edit', group: 'decoding', help: 'every-step/asyrp: edit h only while t ≥ this' },
  tBoost: { kind: 'int', min: 0, max: 1000, default: 0, flag: 't-boost', group: 'decoding', help: 'quality boosting: steps with t < this run with η = etaBoost (0: off)' },
  etaBoost: { kind: 'number', min: 0, max: 1, default: 1, flag: 'eta-boost', group: 'decoding', help: 'η of the boosted steps' },
  batchSize: { kind: 'int', min: 1, max: 4096, default: 16, flag: 'batch-size', group: 'decoding', help: 'images per decoding batch' },
  protocol: { kind: 'enum', values: INPUT_PROTOCOLS, default: 'bia', flag: 'protocol', group: 'decoding', help: 'how images reach the identity encoder' },
  neighbours: { kind: 'int', min: 2, max: 65536, default: 128, flag: 'neighbours', group: 'neighbours', help: 'neighbours of h_r sampled to fit the boundary' },
  neighbourMode: { kind: 'enum', values: NEIGHBOUR_MODES, default: 'isotropic', flag: 'neighbour-mode', group: 'neighbours', help: "where neighbours come from ('others' needs photos of other people)" },
  manifoldPool: { kind: 'int', min: 1, max: 4096, default: 16, flag: 'manifold-pool', group: 'neighbours', help: 'manifold: random samples giving the directions (at most the neighbour count)' },
  alphaMax: { kind: 'number', min: 0, max: 1e6, minExclusive: true, default: 1, flag: 'alpha-max', group: 'neighbours', help: 'starting α_max, relative to ‖h_r‖' },
  calibrationRounds: { kind: 'int', min: 1, max: 64, default: 6, flag: 'calibration-rounds', group: 'neighbours', help: 'rounds calibrating α_max to the share range' },
  shareRange: { kind: 'pair', min: 0, max: 1, strict: true, default: [0.2, 0.8], flag: 'share-range', group: 'neighbours', help: 'accepted share of label-1 neighbours' },
  labelSteps: { kind: 'int', min: 0, max: 1000, default: 0, flag: 'label-steps', group: 'neighbours', help: 'label neighbours after this many decoding steps (0: the full decoding)' },
  labelFrom: { kind: 'enum', values: LABEL_FROMS, default: 'x0', flag: 'label-from', group: 'neighbours', help: "labelSteps > 0: the predicted x̂0 part-way ('x0') or a coarser schedule ('coarse')" },
  labelRefine: { kind: 'number', min: 0, max: 100, default: 0, flag: 'label-refine', group: 'neighbours', help: 'labelSteps > 0: decode in full the neighbours whose cheap label lies within this many residual deviations of the threshold (0: keep every cheap label)' },
  threshold: { kind: 'number', min: -1, max: 1, default: 0.35, flag: 'threshold', group: 'boundary', help: 'identity threshold: label 1 when similarity > this' },
  C: { kind: 'number', min: 0, max: 1e9, minExclusive: true, default: 1, flag: 'C', group: 'boundary', help: 'SVM cost' },
  holdout: { kind: 'number', min: 0, max: 0.9, default: 0.25, flag: 'holdout', group: 'boundary', help: 'share of neighbours held out to measure the SVM' },
  wrapSize: { kind: 'int', min: 1, max: 65536, default: 8, flag: 'wrap-size', group: 'boundary', help: 'wrap-set size K' },
  absorb: { kind: 'enum', values: ABSORB_MODES, default: 'walk', flag: 'absorb', group: 'absorption', help: 'how h_r is moved out of the black hole' },
  lineSteps: { kind: 'int', min: 1, max: 256, default: 12, flag: 'line-steps', group: 'absorption', help: "line: distances tried up to walkStep's upper end" },
  eraseTarget: { kind: 'number', min: -1, max: 1, default: 0.35, flag: 'erase-target', group: 'absorption', help: 'line: similarity a move must reach to count as erased' },
  lineBatch: { kind: 'int', min: 0, max: 256, default: 4, flag: 'line-batch', group: 'absorption', help: 'line: distances per batch, stopping at the first batch with a qualifying move (0: all at once)' },
  walkStep: { kind: 'pair', min: 0, max: 1e9, strict: false, default: [100, 120], flag: 'walk-step', group: 'absorption', help: 'walk: step length Δ ~ U[lo, hi] (not [0, 0])' },
  walkStepUnit: { kind: 'enum', values: ['absolute', 'relative'], default: 'absolute', flag: 'walk-step-unit', group: 'absorption', help: 'walk: Δ absolute or relative to ‖h_r‖' },
  walkTrials: { kind: 'int', min: 1, max: 64, default: 5, flag: 'walk-trials', group: 'absorption', help: 'walk: trials, halving Δ each time' },
  fidelityThreshold: { kind: 'number', min: 0, max: 1e9, minExclusive: true, default: 0.35, flag: 'fidelity-threshold', group: 'absorption', help: 'walk/line: accept a move when L_fid < this' },
  iterations: { kind: 'int', min: 1, max: 100000, default: 50, flag: 'iterations', group: 'absorption', help: 'optimize: Adam iterations' },
  lr: { kind: 'number', min: 0, max: 1e3, minExclusive: true, default: 0.01, flag: 'lr', group: 'absorption', help: 'optimize: learning rate, relative to ‖h_r‖' },
  startMargin: { kind: 'number', min: 0, max: 1e3, default: 0.05, flag: 'start-margin', group: 'absorption', help: 'optimize: start this far beyond the boundary, relative to ‖h_r‖' },
  backprop: { kind: 'enum', values: BACKPROPS, default: 'full', flag: 'backprop', group: 'absorption', help: 'optimize: gradient through every decoding step or the last one' },
  tauM: { kind: 'number', min: -1, max: 1, default: 0.25, flag: 'tau-m', group: 'losses', help: 'τ_m of L_wrapper' },
  mu: { kind: 'number', min: 0, max: 1e6, default: 1, flag: 'mu', group: 'losses', help: 'μ of the wrapper pull' },
  lambdaId: { kind: 'number', min: 0, max: 1e6, default: 1, flag: 'lambda-id', group: 'losses', help: 'λ_id' },
  lambdaSem: { kind: 'number', min: 0, max: 1e6, default: 1, flag: 'lambda-sem', group: 'losses', help: 'λ_sem' },
  lambdaPerc: { kind: 'number', min: 0, max: 1e6, default: 0.5, flag: 'lambda-perc', group: 'losses', help: 'λ_perc inside L_sem and L_fid' },
  baseline: { kind: 'bool', default: true, flag: 'no-baseline', group: 'run', help: 'run the random-direction baseline' },
  degenerateBaselines: { kind: 'bool', default: true, flag: 'no-degenerate-baselines', group: 'run', help: 'run the fade/blur baselines at equal identity similarity' },
  seed: { kind: 'int', min: 0, max: 2 ** 52 - 16, default: 909090, flag: 'seed', group: 'run', help: 'seed of everything random' },
};

export const ERASE_OPTION_KEYS = Object.keys(ERASE_OPTIONS) as EraseOptionKey[];

export const ERASE_DEFAULTS: Readonly<ResolvedEraseOptions> = Object.freeze(
  Object.fromEntries(ERASE_OPTION_KEYS.map((k) => [k, ERASE_OPTIONS[k].default])) as unknown as ResolvedEraseOptions,
);

/** '[lo, hi]', '(lo, hi]', '≥ lo', '> lo' … of a numeric spec. */
export function describeRange(spec: OptionKind): string {
  if (spec.kind !== 'int' && spec.kind !== 'number' && spec.kind !== 'pair') return '';
  const minEx = spec.kind === 'number' && spec.minExclusive === true;
  const maxEx = spec.kind === 'number' && spec.maxExclusive === true;
  if (spec.max === UNBOUNDED) return `${minEx ? '>' : '≥'} ${spec.min}`;
  return `${minEx ? '(' : '['}${spec.min}, ${spec.max}${maxEx ? ')' : ']'}`;
}

function numberOk(v: unknown, spec: Extract<OptionKind, { kind: 'int' | 'number' | 'pair' }>): boolean {
  if (typeof v !== 'number' || !Number.isFinite(v)) return false;
  if (spec.kind === 'int' && !Number.isSafeInteger(v)) return false;
  const minEx = spec.kind === 'number' && spec.minExclusive === true;
  const maxEx = spec.kind === 'number' && spec.maxExclusive === true;
  return (minEx ? v > spec.min : v >= spec.min) && (maxEx ? v < spec.max : v <= spec.max);
}

/**
 * Checks one value against its spec; returns the reason it is wrong (completing "<name> must …"),
 * or undefined when it is right. The library and the CLI word their errors from it.
 */
export function optionProblem(spec: OptionKind, v: unknown): string | undefined {
  switch (spec.kind) {
    case 'int':
      return numberOk(v, spec) ? undefined : `be an integer in ${describeRange(spec)}`;
    case 'number':
      return numberOk(v, spec) ? undefined : `be a number ${spec.max === UNBOUNDED ? describeRange(spec) : `in ${describeRange(spec)}`}`;
    case 'pair': {
      if (!Array.isArray(v) || v.length !== 2) return 'be a pair [lo, hi]';
      if (!numberOk(v[0], spec) || !numberOk(v[1], spec)) return `be a pair of numbers in ${describeRange(spec)}`;
      return (spec.strict ? v[0] < v[1] : v[0] <= v[1]) ? undefined : `have lo ${spec.strict ? '<' : '<='} hi`;
    }
    case 'enum':
      return spec.values.includes(v as string) ? undefined : `be one of ${spec.values.join(', ')}`;
    case 'bool':
      return typeof v === 'boolean' ? undefined : 'be a boolean';
  }
}

/** Checks between options that no single spec can state. */
function crossProblems(o: ResolvedEraseOptions): string | undefined {
  if (o.steps > o.t0 + 1) return `steps must be at most t0 + 1 = ${o.t0 + 1}, got ${o.steps}`;
  if (!(o.walkStep[1] > 0)) return 'walkStep must not be [0, 0]';
  return undefined;
}

const KNOWN = new Set<string>([...ERASE_OPTION_KEYS, 'signal', 'onProgress']);

/** Defaults filled in and every option checked (BIA_INVALID_ARGUMENT naming the option). */
export function resolveEraseOptions(opts: EraseOptions | undefined, extraKeys: readonly string[] = []): ResolvedEraseOptions {
  if (opts !== undefined && (opts === null || typeof opts !== 'object')) throw invalidArgument('options must be an object');
  const o = { ...ERASE_DEFAULTS } as ResolvedEraseOptions;
  const set = o as unknown as Record<string, unknown>;
  for (const [k, v] of Object.entries(opts ?? {})) {
    if (!KNOWN.has(k) && !extraKeys.includes(k)) throw invalidArgument(`unknown option '${k}'`);
    if (v !== undefined && k in ERASE_OPTIONS) set[k] = Array.isArray(v) ? [...v] : v;
  }
  for (const k of ERASE_OPTION_KEYS) {
    const problem = optionProblem(ERASE_OPTIONS[k], set[k]);
    if (problem !== undefined) throw invalidArgument(`${k} must ${problem}, got ${JSON.stringify(set[k])}`);
  }
  const cross = crossProblems(o);
  if (cross !== undefined) throw invalidArgument(cross);
  return o;
}

function formatDefault(v: unknown): string {
  return Array.isArray(v) ? v.join(',') : String(v);
}

/** The options table of docs/cli.md, generated (test/options-spec.test.ts keeps the file in step). */
export function eraseOptionsMarkdown(): string {
  const rows = ERASE_OPTION_KEYS.map((k) => {
    const s = ERASE_OPTIONS[k];
    const flag = s.kind === 'bool' ? `--${s.flag}` : `--${s.flag} ${s.kind === 'pair' ? 'LO,HI' : s.kind === 'enum' ? 'MODE' : 'N'}`;
    const allowed = s.kind === 'enum' ? s.values.join(' \\| ') : s.kind === 'bool' ? 'true \\| false' : describeRange(s);
    return `| \`${k}\` | \`${flag}\` | ${s.group} | ${formatDefault(s.default)} | ${allowed} | ${s.help.replace(/\|/g, '\\|')} |`;
  });
  return ['| option | flag | stage | default | allowed | meaning |', '| --- | --- | --- | --- | --- | --- |', ...rows].join('\n');
}

export const OPTIONS_BEGIN = '<!-- options:begin -->';
export const OPTIONS_END = '<!-- options:end -->';

/** `text` (a markdown file) with the block between the markers replaced by the generated table. */
export function withOptionsTable(text: string): string {
  const a = text.indexOf(OPTIONS_BEGIN);
  const b = text.indexOf(OPTIONS_END);
  if (a < 0 || b < a) throw invalidArgument(`the file has no ${OPTIONS_BEGIN} … ${OPTIONS_END} block`);
  return `${text.slice(0, a + OPTIONS_BEGIN.length)}\n${eraseOptionsMarkdown()}\n${text.slice(b)}`;
}

/** `node dist/ts/erase/options.js [file]` (npm run docs:options): rewrites the table in docs/cli.md. */
if (require.main === module) {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const fs = require('node:fs') as typeof import('node:fs');
  const file = process.argv[2] ?? require('node:path').join(__dirname, '..', '..', '..', 'docs', 'cli.md');
  fs.writeFileSync(file, withOptionsTable(fs.readFileSync(file, 'utf8')));
}

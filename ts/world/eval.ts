/**
 * `bia eval` (and `npm run eval`): the erase job on a fixed set of held-out portraits of the synthetic world
 * (identities 2000 + i, one picture each, fixed seeds) with every measure that tells a new face from a
 * damaged one, each beside the same measure on the reconstruction, the random direction and the two
 * blunt erasers (fade, blur) set to BIA's identity similarity:
 * - identity: similarity to the input under the loss encoder and under the second recognizer (never in a
 *   loss), and the share below each one's calibrated threshold (FAR 1e-2 on held-out identities);
 * - realism: Fréchet distance to held-out real portraits in the quality net's feature space (PCA 32);
 * - validity: the quality net's per-image score (1 clean, 0 damaged);
 * - attributes: the attribute estimator's error against the ground truth, per group.
 *
 *   bia eval [--images 100] [--out out/eval] [--set key=value ...] [--json] [--quiet]
 *   bia eval realism [--images 100]                      the realism measure's own check (real < recon < degradations)
 *   bia eval samples [--images 64] [--model FILE ...]     FD of unconditional DDPM samples (a curve over checkpoints)
 */
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { takeRows } from '../blackhole/codes';
import { loadDiffusion, type DiffusionModel } from '../diffusion';
import { BiaError, invalidArgument } from '../errors';
import { eraseIdentity } from '../erase/pipeline';
import type { EraseOptions } from '../erase/types';
import { comparisonGrid, writeFileAtomic } from '../images';
import { randn, tensor, type Tensor } from '../tensor';
import { createRng, hashSeed } from './attributes';
import { DEFAULT_FILES, heldOut, otherPeople, ROOT } from './defaults';
import { calibratedThreshold, DEMO_SETTINGS, loadDefaultModels } from './demo';
import { cellLabel, featuresOf, GROUP_NAMES, loadMeters, loadRealism, scoreSet, type Meters, type SetScores } from './meters';
import { degrade, DEGRADATIONS, oneStepDenoise, validityScores } from './quality';

const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN);
function quantile(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.floor(q * (s.length - 1))))];
}

export const SET_NAMES = ['input', 'reconstruction', 'bia', 'random', 'fade', 'blur'] as const;
export type SetName = (typeof SET_NAMES)[number];

export interface SetSummary {
  meanSimilarity: number;
  meanSimilarity2: number;
  erased: number;
  erased2: number;
  fd: number;
  meanValidity: number;
  attributeError: Record<string, number>;
}

export interface Target {
  name: string;
  measured: number;
  bound: string;
  met: boolean;
}

export interface EvalResult {
  images: number;
  settings: EraseOptions;
  /** The UNet's mixed precision (`--autocast`), null for float32. */
  autocast: 'bfloat16' | null;
  thresholds: { encoder: number; recognizer: number };
  sets: Record<SetName, SetSummary>;
  perImage: Array<{ name: string; found: boolean; distance: number; seconds: number } & Record<SetName, { similarity: number; similarity2: number; validity: number }>>;
  targets: Target[];
  seconds: number;
}

function summarise(s: SetScores, fd: number, thr: Meters['thresholds']): SetSummary {
  return {
    meanSimilarity: mean(s.similarity),
    meanSimilarity2: mean(s.similarity2),
    erased: s.similarity.filter((v) => v < thr.encoder).length / s.similarity.length,
    erased2: Number.isFinite(thr.recognizer) ? s.similarity2.filter((v) => v < thr.recognizer).length / s.similarity2.length : NaN,
    fd,
    meanValidity: mean(s.validity),
    attributeError: Object.fromEntries(GROUP_NAMES.map((g) => [g, mean(s.attributeErrors.map((e) => e[g]))])),
  };
}

/** The issue's targets, measured. */
export function evaluateTargets(sets: Record<SetName, SetSummary>, scores: Record<SetName, SetScores>): Target[] {
  const b = sets.bia;
  const r = sets.reconstruction;
  const p10 = quantile(scores.reconstruction.validity, 0.1);
  const validShare = scores.bia.validity.filter((v) => v >= p10).length / scores.bia.validity.length;
  const gap = mean(scores.random.similarity.map((v, i) => v - scores.bia.similarity[i]));
  const t: Target[] = [
    { name: 'erased under the loss encoder', measured: b.erased, bound: '≥ 0.90', met: b.erased >= 0.9 },
    { name: 'erased under the second recognizer', measured: b.erased2, bound: '≥ 0.80', met: b.erased2 >= 0.8 },
    { name: 'FD(BIA) / FD(reconstruction)', measured: b.fd / r.fd, bound: '≤ 1.5', met: b.fd <= 1.5 * r.fd },
    { name: 'FD(BIA) / FD(fade at equal similarity)', measured: b.fd / sets.fade.fd, bound: '≤ 0.5', met: b.fd <= 0.5 * sets.fade.fd },
    { name: "validity ≥ the reconstructions' 10th percentile", measured: validShare, bound: '≥ 0.90', met: validShare >= 0.9 },
    { name: 'similarity gap random − BIA', measured: gap, bound: '≥ 0.30', met: gap >= 0.3 },
  ];
  for (const g of GROUP_NAMES) {
    const d = b.attributeError[g] - r.attributeError[g];
    const bound = ['pose', 'background', 'clothing', 'hair'].includes(g) ? 0.03 : 0.05;
    t.push({ name: `attribute error ${g}, BIA − reconstruction`, measured: d, bound: `≤ +${bound}`, met: d <= bound });
  }
  return t;
}

/** Run the evaluation on `count` held-out portraits (identities 2000 …) with the demo's settings plus `overrides`. */
export async function runEval(opts: { count?: number; overrides?: EraseOptions; out?: string; log?: (s: string) => void; grids?: boolean; autocast?: 'bfloat16' } = {}): Promise<EvalResult> {
  const count = opts.count ?? 100;
  const log = opts.log ?? (() => undefined);
  const out = opts.out ?? path.join(ROOT, 'out', 'eval');
  mkdirSync(out, { recursive: true });
  const t0 = performance.now();
  const models = await loadDefaultModels({ autocast: opts.autocast });
  const threshold = calibratedThreshold();
  const settings: EraseOptions = { ...DEMO_SETTINGS, ...(threshold === null ? {} : { threshold }), ...opts.overrides, degenerateBaselines: true, baseline: true };
  // The meters load after the erasures (a measuring model may still be training meanwhile).
  let meters: Meters | null = null;
  const portraits = await heldOut(count, 1, 21);
  const others = settings.neighbourMode === 'others' ? await otherPeople() : undefined;
  const kept: Record<SetName, Tensor[]> = { input: [], reconstruction: [], bia: [], random: [], fade: [], blur: [] };
  const info: Array<{ name: string; found: boolean; distance: number; seconds: number }> = [];
  try {
    for (let i = 0; i < count; i++) {
      const t = performance.now();
      const name = `portrait-${portraits.identities[i]}`;
      const x = await takeRows([portraits.images], [[0, i]]);
      const r = await eraseIdentity(x, { diffusion: models.diffusion, encoder: models.encoder, others, ...settings, inputName: name });
      const rep = r.report;
      kept.input.push(x);
      kept.reconstruction.push(await takeRows([r.reconstruction], [[0, 0]]));
      kept.bia.push(await takeRows([r.image], [[0, 0]]));
      kept.random.push(await takeRows([r.randomBaseline!], [[0, 0]]));
      kept.fade.push(await takeRows([r.degenerate!.fade], [[0, 0]]));
      kept.blur.push(await takeRows([r.degenerate!.blur], [[0, 0]]));
      const chosen = rep.absorption.candidates[rep.absorption.chosen];
      info.push({ name, found: rep.blackHole.found, distance: chosen.distance, seconds: (performance.now() - t) / 1000 });
      r.dispose();
      log(`${name}: similarity ${rep.sid.after.toFixed(3)} (BIA) vs ${rep.sid.randomBaseline?.toFixed(3)} (random) at ${chosen.distance.toFixed(2)}‖h_r‖; ${info[i].seconds.toFixed(0)} s`);
    }
    meters = await loadMeters(models.encoder);
    const thr = meters.thresholds;
    const batches = {} as Record<SetName, Tensor>;
    for (const s of SET_NAMES) batches[s] = await takeRows(kept[s], kept[s].map((_, i) => [i, 0] as [number, number]));
    const scores = {} as Record<SetName, SetScores>;
    const sets = {} as Record<SetName, SetSummary>;
    for (const s of SET_NAMES) {
      scores[s] = await scoreSet(meters, batches[s], batches.input, portraits.attributes);
      sets[s] = summarise(scores[s], meters.realism.fd(await featuresOf(meters.quality, batches[s])), thr);
    }
    const perImage = info.map((m, i) => ({ ...m, ...(Object.fromEntries(SET_NAMES.map((s) => [s, { similarity: scores[s].similarity[i], similarity2: scores[s].similarity2[i], validity: scores[s].validity[i] }])) as Record<SetName, { similarity: number; similarity2: number; validity: number }>) }));
    if (opts.grids ?? true) {
      for (let i = 0; i < count; i++) {
        const dir = path.join(out, info[i].name);
        mkdirSync(dir, { recursive: true });
        await comparisonGrid([SET_NAMES.map((s) => ({ tensor: kept[s][i], label: cellLabel(s === 'reconstruction' ? 'recon' : s === 'bia' ? 'BIA' : s, perImage[i][s]) }))], path.join(dir, 'grid.png'), { cellSize: 128 });
      }
    }
    for (const s of SET_NAMES) batches[s].dispose();
    const result: EvalResult = { images: count, settings, autocast: opts.autocast ?? null, thresholds: thr, sets, perImage, targets: evaluateTargets(sets, scores), seconds: (performance.now() - t0) / 1000 };
    await writeFileAtomic(path.join(out, 'eval.json'), `${JSON.stringify(result, null, 2)}\n`);
    await writeFileAtomic(path.join(out, 'eval.md'), `${formatEval(result)}\n`);
    return result;
  } finally {
    for (const s of SET_NAMES) for (const t of kept[s]) t.dispose();
    portraits.images.dispose();
    others?.dispose();
    meters?.dispose();
    models.dispose();
  }
}

const f3 = (v: number) => (Number.isFinite(v) ? v.toFixed(3) : '-');

export function formatEval(r: EvalResult): string {
  const head = `| set | sim (encoder) | erased | sim (2nd recognizer) | erased (2nd) | FD | validity | ${GROUP_NAMES.join(' | ')} |`;
  const sep = `|${'---|'.repeat(7 + GROUP_NAMES.length)}`;
  const rows = SET_NAMES.map((s) => {
    const x = r.sets[s];
    return `| ${s} | ${f3(x.meanSimilarity)} | ${(100 * x.erased).toFixed(0)}% | ${f3(x.meanSimilarity2)} | ${Number.isFinite(x.erased2) ? `${(100 * x.erased2).toFixed(0)}%` : '-'} | ${x.fd.toFixed(2)} | ${f3(x.meanValidity)} | ${GROUP_NAMES.map((g) => f3(x.attributeError[g])).join(' | ')} |`;
  });
  const targets = r.targets.map((t) => `| ${t.name} | ${f3(t.measured)} | ${t.bound} | ${t.met ? 'met' : '**not met**'} |`);
  return [
    `${r.images} held-out portraits, thresholds: encoder ${f3(r.thresholds.encoder)}, second recognizer ${f3(r.thresholds.recognizer)} (FAR 1e-2)${r.autocast ? `; UNet in ${r.autocast} autocast` : ""}; ${r.seconds.toFixed(0)} s`,
    '',
    head,
    sep,
    ...rows,
    '',
    '| target | measured | bound | |',
    '|---|---|---|---|',
    ...targets,
  ].join('\n');
}

/**
 * The realism measure's own check: FD to the reference of a second real set, its DDIM reconstructions,
 * and each degradation at a fixed severity over the face region (and fade over the whole picture).
 */
export async function validateRealism(opts: { count?: number; severity?: number } = {}): Promise<Record<string, { fd: number; validity: number }>> {
  const count = opts.count ?? 100;
  const severity = opts.severity ?? 0.5;
  const m = await loadRealism();
  const diffusion = await loadDiffusion(DEFAULT_FILES.diffusion);
  const b = await heldOut(count, 1, 21);
  const out: Record<string, { fd: number; validity: number }> = {};
  const measure = async (name: string, images: Tensor) => {
    const v = await validityScores(m.quality, images);
    out[name] = { fd: m.realism.fd(await featuresOf(m.quality, images)), validity: mean(v) };
  };
  try {
    await measure('real', b.images);
    const inv = await diffusion.invert(b.images, { t0: 500, steps: 40 });
    const rec = await diffusion.decode(inv.xLat, null, { t0: 500, steps: 40, eta: 0 });
    await measure('reconstruction', rec);
    for (const t of [inv.xLat, inv.hR, rec]) t.dispose();
    const px = (await b.images.data()) as Float32Array;
    const s = b.images.shape[3];
    const per = 3 * s * s;
    const half = await oneStepDenoise(diffusion, b.images, Array.from({ length: count }, () => Math.round(250 + 500 * severity)), 99);
    for (const kind of DEGRADATIONS) {
      for (const local of [true, false]) {
        const img = Float32Array.from(px);
        const rng = createRng(hashSeed(31, DEGRADATIONS.indexOf(kind), Number(local)));
        for (let i = 0; i < count; i++) degrade(img.subarray(i * per, (i + 1) * per), s, kind, severity, rng, local, half.subarray(i * per, (i + 1) * per));
        const t = await tensor(img, b.images.shape);
        await measure(`${kind} (${local ? 'face' : 'whole'})`, t);
        t.dispose();
      }
    }
  } finally {
    b.images.dispose();
    diffusion.dispose();
    m.dispose();
  }
  return out;
}

/** FD and validity of unconditional samples (DDIM, 40 steps from x_T ~ N(0, I), fixed seed) of each model file. */
export async function sampleRealism(files: string[], opts: { count?: number } = {}): Promise<Array<{ file: string; steps: number | null; fd: number; validity: number }>> {
  const count = opts.count ?? 64;
  const m = await loadRealism();
  const rows: Array<{ file: string; steps: number | null; fd: number; validity: number }> = [];
  try {
    for (const file of files) {
      const d: DiffusionModel = await loadDiffusion(file);
      const xT = await randn([count, 3, 64, 64], { seed: 123 });
      const samples = await d.decode(xT, null, { t0: 999, steps: 40, eta: 0, batchSize: 64 });
      const steps = /step-(\d+)/.exec(path.basename(file))?.[1];
      rows.push({ file: path.relative(ROOT, file), steps: steps ? Number(steps) : null, fd: m.realism.fd(await featuresOf(m.quality, samples)), validity: mean(await validityScores(m.quality, samples)) });
      for (const t of [xT, samples]) t.dispose();
      d.dispose();
    }
  } finally {
    m.dispose();
  }
  return rows;
}

function parseSet(items: string[]): EraseOptions {
  const o: Record<string, unknown> = {};
  for (const it of items) {
    const k = it.indexOf('=');
    if (k <= 0) throw invalidArgument(`--set expects key=value, got ${JSON.stringify(it)}`);
    const raw = it.slice(k + 1);
    let v: unknown;
    try {
      v = JSON.parse(raw);
    } catch {
      v = raw;
    }
    o[it.slice(0, k)] = v;
  }
  return o as EraseOptions;
}

export async function runEvalCli(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { images: { type: 'string' }, out: { type: 'string' }, set: { type: 'string', multiple: true }, json: { type: 'boolean', default: false }, quiet: { type: 'boolean', default: false }, model: { type: 'string', multiple: true }, autocast: { type: 'string' } },
  });
  if (values.autocast !== undefined && values.autocast !== 'bfloat16') throw invalidArgument(`--autocast takes bfloat16 (the CPU's), got '${values.autocast}'`);
  const log = values.quiet || values.json ? undefined : (s: string) => process.stderr.write(`${s}\n`);
  const images = values.images === undefined ? undefined : Number(values.images);
  if (images !== undefined && !(Number.isInteger(images) && images >= 2 && images <= 200)) throw invalidArgument('--images must be an integer in [2, 200]');
  const what = positionals[0];
  if (what === 'realism') {
    const r = await validateRealism({ count: images });
    if (values.json) console.log(JSON.stringify(r, null, 2));
    else console.log(['| set | FD to held-out real portraits | mean validity |', '|---|---|---|', ...Object.entries(r).map(([k, v]) => `| ${k} | ${v.fd.toFixed(2)} | ${v.validity.toFixed(3)} |`)].join('\n'));
    return 0;
  }
  if (what === 'samples') {
    const dir = path.join(ROOT, '.cache', 'train', 'diffusion-snapshots');
    const files = values.model ?? [DEFAULT_FILES.diffusion, ...(existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith('.safetensors')).sort((a, b) => Number(/\d+/.exec(a)?.[0]) - Number(/\d+/.exec(b)?.[0])).map((f) => path.join(dir, f)) : [])];
    const r = await sampleRealism(files, { count: images });
    if (values.json) console.log(JSON.stringify(r, null, 2));
    else console.log(['| model | steps | sample FD | mean validity |', '|---|---|---|---|', ...r.map((x) => `| ${x.file} | ${x.steps ?? '-'} | ${x.fd.toFixed(2)} | ${x.validity.toFixed(3)} |`)].join('\n'));
    return 0;
  }
  if (what !== undefined) throw invalidArgument(`unknown eval command '${what}' (eval, eval realism, eval samples)`);
  const r = await runEval({ count: images, overrides: parseSet(values.set ?? []), out: values.out, log, autocast: values.autocast as 'bfloat16' | undefined });
  console.log(values.json ? JSON.stringify(r, null, 2) : formatEval(r));
  return 0;
}

if (require.main === module) {
  runEvalCli(process.argv.slice(2)).then(
    (c) => process.exit(c),
    (e) => {
      console.error(e instanceof BiaError ? `${e.code}: ${e.message}` : e);
      process.exit(e instanceof BiaError && e.code === 'BIA_INVALID_ARGUMENT' ? 2 : 1);
    },
  );
}

/**
 * bench/unlearn: unlearning people of the synthetic world from the default DDPM, measured with GUIDE's
 * protocol (docs/unlearning.md reports it). For each of `--people` held-out identities (2000, 2001, …) in
 * turn, the model unlearned so far is fine-tuned from `--given` photos of that person; then
 *
 * - forgetting: `--unseen` other photos of every person unlearned so far (other attribute draws) are
 *   inverted and reconstructed by the current model; their similarity to the person's enrolled embedding
 *   (the mean of the given photos') against the calibrated threshold, with the loss encoder and the second,
 *   independent recognizer; the reconstructions' validity (the quality net: ≈ 1 for a clean portrait);
 *   With --together, one round unlearns every person at once (all their photos in one call) from the
 *   original model; with --anchor, each round in turn keeps the other people as the original model decodes
 *   them (`anchor`), not as the previous round's model does.
 * - preservation: `--held-out` other held-out people (identities 2100 + i, never unlearned, never a retain
 *   photo): similarity of their reconstruction to their photo before and after, pixel change, validity and
 *   the attribute estimator's error per group;
 * - global: `--samples` unconditional samples (the same seeds, from pure noise at t = 999) before and after,
 *   their FD to the realism reference (the quality net's features) and validity.
 *
 *   node dist/bench/unlearn.js [--people 1] [--given 3] [--unseen 20] [--held-out 50] [--samples 500]
 *     [--sample-steps 20] [--iterations 300] [--params decoder|all|adapters] [--rank 8] [--lr 5e-5]
 *     [--others 32] [--states 10] [--retain-share 0.5] [--mirror] [--variants 0] [--composites 0] [--face-region cx,cy,rx,ry]
 *     [--identity-weight 0] [--identity-margin τm] [--identity-keep-weight W] [--refresh-every N] [--plain-states] [--out out/unlearn-bench] [--json FILE]
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { takeRows } from '../ts/blackhole/codes';
import { loadDiffusion, type DiffusionModel } from '../ts/diffusion';
import { setThreads } from '../ts/engine';
import { loadIdentityEncoder, type IdentityEncoder } from '../ts/identity';
import { comparisonGrid } from '../ts/images';
import { randn, tensor, type Tensor } from '../ts/tensor';
import { unlearnIdentity, type UnlearnParams } from '../ts/unlearn/unlearn';
import { DEFAULT_FILES, otherPeople } from '../ts/world/defaults';
import { DEMO_SETTINGS } from '../ts/world/demo';
import { featuresOf, GROUP_NAMES, loadMeters, scoreSet, similarityTo } from '../ts/world/meters';
import { portraitBatch, type PortraitBatch } from '../ts/world/portraits';
import { validityScores } from '../ts/world/quality';

const mean = (a: number[]) => a.reduce((x, y) => x + y, 0) / Math.max(1, a.length);
const round = (v: number) => Math.round(v * 10000) / 10000;

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      people: { type: 'string', default: '1' },
      given: { type: 'string', default: '3' },
      unseen: { type: 'string', default: '20' },
      'held-out': { type: 'string', default: '50' },
      samples: { type: 'string', default: '500' },
      'sample-steps': { type: 'string', default: '20' },
      iterations: { type: 'string', default: '300' },
      params: { type: 'string', default: 'decoder' },
      rank: { type: 'string', default: '8' },
      lr: { type: 'string', default: '5e-5' },
      others: { type: 'string', default: '32' },
      states: { type: 'string', default: '10' },
      'retain-share': { type: 'string', default: '0.5' },
      mirror: { type: 'boolean', default: false },
      variants: { type: 'string', default: '0' },
      composites: { type: 'string', default: '0' },
      'face-region': { type: 'string' },
      'identity-weight': { type: 'string', default: '0' },
      'identity-margin': { type: 'string' },
      'identity-keep-weight': { type: 'string' },
      'plain-states': { type: 'boolean', default: false },
      'refresh-every': { type: 'string', default: '0' },
      together: { type: 'boolean', default: false },
      anchor: { type: 'boolean', default: false },
      out: { type: 'string', default: 'out/unlearn-bench' },
      json: { type: 'string' },
    },
  });
  const n = (k: string) => Number(values[k as keyof typeof values]);
  setThreads(Number(process.env.BIA_NUM_THREADS ?? 1));
  const out = values.out as string;
  mkdirSync(out, { recursive: true });
  const log = (s: string) => console.log(`[${new Date().toISOString().slice(11, 19)}] ${s}`);
  const original = await loadDiffusion(DEFAULT_FILES.diffusion);
  const encoder = await loadIdentityEncoder(DEFAULT_FILES.encoder);
  const meters = await loadMeters(encoder);
  const threshold = meters.thresholds.encoder;
  const o = { t0: DEMO_SETTINGS.t0 as number, steps: DEMO_SETTINGS.steps as number };
  const shots = (identity: number, first: number, count: number) => portraitBatch(Array.from({ length: count }, (_, i) => ({ identity, seed: first + i })));
  const recon = async (m: DiffusionModel, x: Tensor) => {
    const inv = await original.invert(x, o);
    const rec = await m.decode(inv.xLat, null, { ...o, eta: 0, batchSize: 64 });
    inv.xLat.dispose();
    inv.hR.dispose();
    return rec;
  };
  const embedMean = async (enc: IdentityEncoder, x: Tensor) => {
    const e = await enc.embed(x, { protocol: 'resize' });
    const v = await e.data();
    const d = v.length / x.shape[0];
    const m = new Float32Array(d);
    for (let i = 0; i < x.shape[0]; i++) for (let k = 0; k < d; k++) m[k] += v[i * d + k] / x.shape[0];
    e.dispose();
    return tensor(m, [1, d]);
  };

  const pixelChange = async (a: Tensor, b: Tensor) => {
    const [x, y] = [await a.data(), await b.data()];
    let s = 0;
    for (let i = 0; i < x.length; i++) s += Math.abs(x[i] - y[i]);
    return s / x.length / 2; // mean |Δ| on the [0, 1] scale
  };
  const grid = async (cols: Tensor[], file: string, rows = 8) => {
    const cells = [];
    for (let i = 0; i < Math.min(rows, cols[0].shape[0]); i++) cells.push(await Promise.all(cols.map(async (c) => ({ tensor: await takeRows([c], [[0, i]]) }))));
    await comparisonGrid(cells, path.join(out, file), { cellSize: 96 });
  };
  const attributeSummary = (s: { attributeErrors: Record<string, number>[] }) => Object.fromEntries(GROUP_NAMES.map((g) => [g, round(mean(s.attributeErrors.map((e) => e[g])))]));

  // Fixed sets: the people to forget, the held-out people to keep, the sample seeds.
  const people = Array.from({ length: n('people') }, (_, i) => 2000 + i);
  const given: PortraitBatch[] = [];
  const unseen: PortraitBatch[] = [];
  for (const p of people) {
    given.push(await shots(p, 100, n('given')));
    unseen.push(await shots(p, 200, n('unseen')));
  }
  const keep = await portraitBatch(Array.from({ length: n('held-out') }, (_, i) => ({ identity: 2100 + i, seed: 300 + i })));
  const others = await otherPeople(n('others'));
  const noise = await randn([n('samples'), 3, 64, 64], { seed: 4242 });
  const sample = (m: DiffusionModel) => m.decode(noise, null, { t0: 999, steps: n('sample-steps'), eta: 0, batchSize: 100 });
  const enrolled = await Promise.all(given.map((g) => embedMean(encoder, g.images)));
  const enrolled2 = meters.recognizer ? await Promise.all(given.map((g) => embedMean(meters.recognizer as IdentityEncoder, g.images))) : [];

  /** Forgetting of person k, preservation and samples under model m. */
  const measure = async (m: DiffusionModel, k: number) => {
    const rec = await recon(m, unseen[k].images);
    const sims = await similarityTo(encoder, rec, enrolled[k]);
    const sims2 = meters.recognizer ? await similarityTo(meters.recognizer, rec, enrolled2[k]) : [];
    const sc = await scoreSet(meters, rec, unseen[k].images, unseen[k].attributes);
    rec.dispose();
    return {
      identity: people[k],
      similarity: sims.map(round),
      belowThreshold: sims.filter((s) => s < threshold).length / sims.length,
      similarity2: sims2.map(round),
      belowThreshold2: sims2.length ? sims2.filter((s) => s < meters.thresholds.recognizer).length / sims2.length : null,
      validity: round(mean(sc.validity)),
    };
  };
  const preservation = async (m: DiffusionModel, base: Tensor | null) => {
    const rec = await recon(m, keep.images);
    const sc = await scoreSet(meters, rec, keep.images, keep.attributes);
    const change = base ? await pixelChange(rec, base) : 0;
    return { rec, similarity: round(mean(sc.similarity)), similarity2: round(mean(sc.similarity2)), validity: round(mean(sc.validity)), attributes: attributeSummary(sc), pixelChange: round(change) };
  };
  const samples = async (m: DiffusionModel) => {
    const x = await sample(m);
    const f = await featuresOf(meters.quality, x);
    return { x, fd: round(meters.realism.fd(f)), validity: round(mean(await validityScores(meters.quality, x))) };
  };

  log('measuring the original model');
  const before = { forget: await Promise.all(people.map((_, k) => measure(original, k))), keep: await preservation(original, null), samples: await samples(original) };
  log(`original: unseen below threshold ${before.forget.map((f) => f.belowThreshold).join(' ')}, keep similarity ${before.keep.similarity}, sample FD ${before.samples.fd}`);
  let current = original;
  const rounds = [];
  const start = Date.now();
  // In turn: one round per person, each from the previous round's model. --together: one round with every
  // person's photos (each photo's black hole is its own), from the original model.
  const groups = values.together ? [people.map((_, k) => k)] : people.map((_, k) => [k]);
  for (const group of groups) {
    const k = group[group.length - 1];
    const name = group.map((j) => people[j]).join('+');
    const t0 = Date.now();
    const photos = group.length === 1 ? given[k].images : await takeRows(group.map((j) => given[j].images), group.flatMap((j, part) => Array.from({ length: given[j].images.shape[0] }, (_, i): [number, number] => [part, i])));
    const r = await unlearnIdentity(photos, { diffusion: current, encoder, others }, {
      erase: { ...DEMO_SETTINGS, threshold, baseline: false, degenerateBaselines: false },
      iterations: n('iterations'),
      params: values.params as UnlearnParams,
      adapterRank: n('rank'),
      lr: n('lr'),
      batchSize: 8,
      statesPerCode: n('states'),
      retainShare: n('retain-share'),
      mirror: values.mirror as boolean,
      variants: n('variants'),
      composites: n('composites'),
      anchor: values.anchor ? original : undefined,
      identityWeight: n('identity-weight'),
      identityMargin: values['identity-margin'] !== undefined ? n('identity-margin') : undefined,
      identityKeepWeight: values['identity-keep-weight'] !== undefined ? n('identity-keep-weight') : undefined,
      plainStates: values['plain-states'] as boolean,
      refreshEvery: n('refresh-every'),
      faceRegion: values['face-region'] ? (([cx, cy, rx, ry]) => ({ cx, cy, rx, ry }))((values['face-region'] as string).split(',').map(Number)) : undefined,
      onStep: (s) => {
        if (s.step % 50 === 0) log(`person ${name} step ${s.step} loss ${s.loss.toFixed(5)}`);
      },
    });
    const seconds = (Date.now() - t0) / 1000;
    if (r.saveAdapter) await r.saveAdapter(path.join(out, `adapter-${name}.safetensors`));
    const { model } = r;
    const forget = [];
    for (let j = 0; j <= k; j++) forget.push(await measure(model, j));
    const kept = await preservation(model, before.keep.rec);
    const round_ = { person: group.length === 1 ? people[k] : group.map((j) => people[j]), seconds: round(seconds), report: { ...r.report, losses: undefined }, forget, keep: { ...kept, rec: undefined } };
    rounds.push(round_);
    writeFileSync(path.join(out, 'partial.json'), JSON.stringify({ before: { forget: before.forget, keep: { ...before.keep, rec: undefined } }, rounds }, null, 1));
    log(`after ${name} (${seconds.toFixed(0)} s): unseen below threshold ${forget.map((f) => `${f.identity}:${f.belowThreshold}`).join(' ')}; keep similarity ${kept.similarity} (was ${before.keep.similarity}), pixel change ${kept.pixelChange}`);
    for (const j of group) {
      const ub = await recon(original, unseen[j].images);
      const ua = await recon(model, unseen[j].images);
      await grid([unseen[j].images, ub, ua], `unseen-${people[j]}.png`);
      [ub, ua].forEach((t) => t.dispose());
    }
    await grid([keep.images, before.keep.rec, kept.rec], `keep-after-${name}.png`);
    await grid([photos, r.images.before, r.images.absorbed, r.images.after], `given-${name}.png`, 15);
    kept.rec.dispose();
    if (photos !== given[k].images) photos.dispose();
    // the next person is unlearned from this model: the result's images go, the model stays
    Object.values(r.images).forEach((t) => t.dispose());
    if (current !== original) current.dispose();
    current = model;
  }
  const after = await samples(current);
  await grid([before.samples.x, after.x], 'samples.png', 12);
  const result = {
    command: `node dist/bench/unlearn.js ${process.argv.slice(2).join(' ')}`,
    threshold,
    thresholdRecognizer: meters.thresholds.recognizer,
    before: { forget: before.forget, keep: { ...before.keep, rec: undefined }, samples: { fd: before.samples.fd, validity: before.samples.validity } },
    rounds,
    samplesAfter: { fd: after.fd, validity: after.validity, fdChange: round(after.fd / before.samples.fd - 1) },
    seconds: round((Date.now() - start) / 1000),
  };
  log(`samples: FD ${before.samples.fd} → ${after.fd} (${(100 * result.samplesAfter.fdChange).toFixed(1)} %), validity ${before.samples.validity} → ${after.validity}`);
  const json = JSON.stringify(result, null, 1);
  writeFileSync(path.join(out, 'result.json'), json);
  if (values.json) writeFileSync(values.json, json);
  log(`done in ${result.seconds} s; grids and result.json in ${out}`);
  meters.dispose();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});

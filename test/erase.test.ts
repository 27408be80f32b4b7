// The erase job end to end on tiny random models (CPU): formation, walk absorption, the random
// baseline, the report, determinism, abort, bad input, and black-hole save/load.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import {
  absorbIdentity,
  createIdentityEncoder,
  createPerceptual,
  eraseIdentity,
  formBlackHole,
  liveTensors,
  loadBlackHole,
  matchSimilarity,
  randn,
  saveBlackHole,
  signedDistance,
  tensor,
  type DiffusionModel,
  type EraseProgress,
  type IdentityEncoder,
  type Tensor,
  unetStats,
} from '../ts/index';
import { gc, tinyWorld } from './helpers';

const BASE = { t0: 100, steps: 6, protocol: 'resize' as const, inject: 'every-step' as const, neighbours: 16, wrapSize: 4, walkStepUnit: 'relative' as const, walkStep: [0.5, 0.6] as [number, number], fidelityThreshold: 10 };

let diffusion: DiffusionModel;
let encoder: IdentityEncoder;
let image: Tensor;
let threshold: number;

t.before(async () => {
  ({ diffusion, encoder, image, threshold } = await tinyWorld(BASE));
});

t.test('eraseIdentity (walk): report, candidates, choice, baseline, progress', async (t) => {
  gc();
  const live = liveTensors();
  const events: EraseProgress[] = [];
  const r = await eraseIdentity(image, { diffusion, encoder, ...BASE, threshold, onStage: (p) => events.push(p) });
  const rep = r.report;
  t.equal(rep.blackHole.found, true, 'a boundary at the median threshold');
  t.ok(rep.blackHole.labelShare! >= 0.2 && rep.blackHole.labelShare! <= 0.8);
  t.equal(rep.blackHole.similarities.length, BASE.neighbours);
  t.equal(rep.blackHole.wrap.length, 4);
  t.ok(rep.blackHole.svm!.trainAccuracy >= 0.5);
  const c = rep.absorption.candidates;
  t.equal(c.length, 5, 'h_r and the K wrap points');
  t.equal(c[0].from, 'source');
  // h_r's walk starts |s(h_r)| + Δ beyond: it leaves the black hole (negative side after orientation).
  const sR = rep.blackHole.sourceDistance!;
  const src = c[0];
  const step = src.distance * rep.blackHole.hNorm;
  t.ok(Math.abs(Math.abs(src.signedDistance! - sR) - step) < 1e-3 * (1 + step), `moved along the unit normal: |Δs| ${Math.abs(src.signedDistance! - sR).toFixed(4)} = step ${step.toFixed(4)}`);
  t.ok(Math.sign(src.signedDistance!) !== Math.sign(sR) || src.trials! > 1, 'the first trial crosses the boundary');
  // The output is the accepted candidate of lowest identity similarity.
  const accepted = c.filter((x) => x.accepted);
  t.ok(accepted.length > 0);
  const best = Math.min(...accepted.map((x) => x.similarity));
  t.equal(c[rep.absorption.chosen].similarity, best);
  t.equal(rep.sid.after, best);
  t.ok(rep.sid.reconstruction > 0.9, `reconstruction SID ${rep.sid.reconstruction.toFixed(4)}`);
  // Baseline: same length, random direction.
  t.equal(rep.randomBaseline!.distance, c[rep.absorption.chosen].distance);
  t.equal(rep.sid.randomBaseline, rep.randomBaseline!.similarity);
  t.same(r.image.shape, [1, 3, 16, 16]);
  t.same(r.candidates.shape, [5, 3, 16, 16]);
  t.same(r.randomBaseline!.shape, [1, 3, 16, 16]);
  // Degenerate baselines: fade and blur of the input's face at the output's similarity.
  const fR = await encoder.embed(image, { protocol: 'resize' });
  for (const kind of ['fade', 'blur'] as const) {
    const d = rep.degenerateBaselines![kind];
    t.ok(d.strength >= 0 && d.strength <= 1, `${kind}: strength ${d.strength}`);
    t.ok(d.reached ? d.similarity <= rep.sid.after : d.strength === 1, `${kind}: sim ${d.similarity.toFixed(4)} vs after ${rep.sid.after.toFixed(4)}, reached ${d.reached}`);
    t.ok(d.preservation.mse >= 0 && d.preservation.ssim <= 1);
    t.same(r.degenerate![kind].shape, [1, 3, 16, 16]);
    const again = await matchSimilarity(kind, image, { encoder, fR, target: rep.sid.after, protocol: 'resize' });
    t.equal(again.strength, d.strength, `${kind}: the report's strength is matchSimilarity's`);
    t.same(Array.from(await r.degenerate![kind].data()), Array.from(await again.image.data()), `${kind}: and so is the image`);
    again.image.dispose();
  }
  fR.dispose();
  t.same(Array.from(await r.image.data()), Array.from((await r.candidates.data()).slice(rep.absorption.chosen * 768, (rep.absorption.chosen + 1) * 768)), 'the output is the chosen candidate');
  t.ok(rep.preservation.ssim <= 1 && rep.preservation.mse >= 0);
  t.equal(rep.models.perceptual.includes('substitute'), true);
  t.equal(rep.options.seed, 909090);
  t.equal(rep.seeds.walk, 909091);
  for (const k of ['invert', 'neighbours', 'boundary', 'absorb', 'baseline', 'evaluate', 'total'] as const) t.ok(rep.timings[k] > 0, `timing ${k}`);
  t.same(JSON.parse(JSON.stringify(rep)).sid, rep.sid, 'JSON-serialisable');
  // Progress: stages in order, fraction monotone, ends at 1.
  const order = ['load', 'invert', 'neighbours', 'boundary', 'absorb', 'baseline', 'evaluate'];
  let last = -1;
  let lastStage = 0;
  for (const e of events) {
    t.ok(e.fraction >= last, 'fraction never goes back');
    last = e.fraction;
    const si = order.indexOf(e.stage);
    if (si < lastStage) t.fail(`stage ${e.stage} after ${order[lastStage]}`);
    lastStage = si;
  }
  t.equal(events.at(-1)!.fraction, 1);
  r.dispose();
  gc();
  t.equal(liveTensors(), live, 'no tensor left behind');
});

t.test('line absorption in batches (lineBatch): the same output, decoding stops at the first batch with an erased move', async (t) => {
  gc();
  const live = liveTensors();
  const o = { diffusion, encoder, ...BASE, threshold, absorb: 'line' as const, lineSteps: 6, baseline: false, degenerateBaselines: false };
  const all = await eraseIdentity(image, { ...o, eraseTarget: 1 });
  const sims = all.report.absorption.candidates.map((c) => c.similarity);
  // A target first reached at distance j ≥ 2: below it only sims[j], none of the shorter moves. The target
  // sits halfway between sims[j] and the shorter moves' lowest, not on one of them: decoded in other batches,
  // a similarity moves in its last digits, and a target equal to one would make that move erased or not by
  // chance (it did, on a fresh build).
  const j = sims.findIndex((v, i) => i >= 2 && v < Math.min(...sims.slice(0, i)) - 1e-4);
  const eraseTarget = j >= 0 ? (Math.min(...sims.slice(0, j)) + sims[j]) / 2 : 1;
  const want = j >= 0 ? j : 0;
  const a = await eraseIdentity(image, { ...o, eraseTarget });
  unetStats({ reset: true });
  const b = await eraseIdentity(image, { ...o, eraseTarget, lineBatch: 2 });
  const decoded = unetStats({ reset: true }).encodeImages;
  t.equal(a.report.absorption.chosen, want, `the first erased move (${want}) is chosen`);
  t.equal(b.report.absorption.chosen, want, 'in batches too');
  // The same up to float rounding: the batched decode runs other kernel shapes (bit-equal on one build, 1e-7 apart on another).
  const [ib, ia] = [await b.image.data(), await a.image.data()];
  t.ok(ib.length === ia.length && ib.every((v, k) => Math.abs(v - ia[k]) < 1e-4), 'the same output image (within 1e-4)');
  const n = 2 * Math.ceil((want + 1) / 2);
  t.equal(b.report.absorption.candidates.length, n, `decoding stopped after ${n} of 6 distances`);
  const close = (x: unknown, y: unknown): boolean =>
    typeof x === 'number' && typeof y === 'number' ? Math.abs(x - y) <= 1e-4 * Math.max(1, Math.abs(y)) : x && typeof x === 'object' && y && typeof y === 'object' ? Object.keys(y).every((k) => close((x as Record<string, unknown>)[k], (y as Record<string, unknown>)[k])) : x === y;
  t.ok(close(b.report.absorption.candidates, a.report.absorption.candidates.slice(0, n)), 'the candidates decoded are the same (within 1e-4: decoded in other batches)');
  t.equal(b.candidates.shape[0], n);
  // The UNet passes: inversion + reconstruction + labels + the decoded distances only.
  // Each decoding of many codes from x_lat shares its first encoder pass; the distances are decoded 2 at a time.
  const many = (count: number) => 1 + count * (BASE.steps - 1);
  t.equal(decoded, BASE.steps - 1 + BASE.steps + b.report.blackHole.rounds.length * many(BASE.neighbours) + (n / 2) * many(2), 'encoder passes: inversion, reconstruction, labels and the decoded distances only');
  for (const r of [all, a, b]) r.dispose();
  gc();
  t.equal(liveTensors(), live, 'no tensors leaked');
});

t.test("'others' neighbours: the other people's photos are inverted once for every image erased with them", async (t) => {
  gc();
  const live = liveTensors();
  const run = async () => {
    const others = await randn([3, 3, 16, 16], { seed: 77 });
    const o = { diffusion, encoder, ...BASE, threshold, neighbourMode: 'others' as const, others, absorb: 'line' as const, lineSteps: 3, baseline: false, degenerateBaselines: false };
    const passes = async (extra: object = {}) => {
      unetStats({ reset: true });
      const r = await eraseIdentity(image, { ...o, ...extra });
      return { r, n: unetStats({ reset: true }).encodeImages };
    };
    const a = await passes();
    const b = await passes();
    t.equal(a.n - b.n, 3 * (BASE.steps - 1), 'the second erase skips the 3 inversions');
    t.same(b.r.report.blackHole.similarities, a.r.report.blackHole.similarities, 'with the same neighbours');
    t.same(Array.from(await b.r.image.data()), Array.from(await a.r.image.data()), 'and the same output');
    const c = await passes({ steps: BASE.steps - 1 });
    const d = await passes({ steps: BASE.steps - 1 });
    t.equal(c.n - d.n, 3 * (BASE.steps - 2), 'another schedule: inverted once more, then cached');
    for (const x of [a, b, c, d]) x.r.dispose();
    gc();
    t.equal(liveTensors(), live + 3, 'while the photos live: them and one h per schedule');
    others.dispose();
  };
  await run();
  // Once the photos are unreachable, their cached h go with them.
  for (let i = 0; i < 50 && liveTensors() !== live; i++) {
    gc();
    await new Promise((r) => setTimeout(r, 20));
  }
  t.equal(liveTensors(), live, 'released with the photos');
});

t.test('line absorption: the shortest erased move along the normal, distances increasing', async (t) => {
  gc();
  const live = liveTensors();
  const eraseTarget = threshold; // reachable on random nets: the median neighbour similarity
  const r = await eraseIdentity(image, { diffusion, encoder, ...BASE, threshold, absorb: 'line', lineSteps: 5, lineBatch: 0, eraseTarget, baseline: false, degenerateBaselines: false });
  const a = r.report.absorption;
  t.equal(a.mode, 'line');
  t.equal(a.candidates.length, 5, 'one candidate per distance');
  t.equal(r.candidates.shape[0], 5);
  for (let i = 1; i < 5; i++) t.ok(a.candidates[i].distance > a.candidates[i - 1].distance, `distance ${i} grows`);
  for (const c of a.candidates) t.equal(c.from, 'source');
  const erased = a.candidates.findIndex((c) => c.accepted && c.similarity < eraseTarget);
  if (erased >= 0) t.equal(a.chosen, erased, 'the first erased, accepted move is chosen');
  else t.ok(a.candidates.every((c) => !(c.accepted && c.similarity < eraseTarget)), 'none erased: the fallback rule chose');
  t.equal(r.report.sid.after, a.candidates[a.chosen].similarity);
  await t.rejects(eraseIdentity(image, { diffusion, encoder, ...BASE, absorb: 'line', lineSteps: 0 }), { code: 'BIA_INVALID_ARGUMENT' });
  await t.rejects(eraseIdentity(image, { diffusion, encoder, ...BASE, absorb: 'line', eraseTarget: 2 }), { code: 'BIA_INVALID_ARGUMENT' });
  r.dispose();
  gc();
  t.equal(liveTensors(), live, 'no tensors leaked');
});

t.test('same seed, same result; another seed, another', async (t) => {
  const a = await eraseIdentity(image, { diffusion, encoder, ...BASE, threshold, baseline: false });
  const b = await eraseIdentity(image, { diffusion, encoder, ...BASE, threshold, baseline: false });
  const c = await eraseIdentity(image, { diffusion, encoder, ...BASE, threshold, baseline: false, seed: 7, degenerateBaselines: false });
  t.same(a.report.absorption, b.report.absorption);
  t.same(Array.from(await a.image.data()), Array.from(await b.image.data()));
  t.not(JSON.stringify(a.report.blackHole.similarities), JSON.stringify(c.report.blackHole.similarities));
  t.equal(a.report.randomBaseline, null);
  t.equal(a.randomBaseline, null);
  t.same(a.report.degenerateBaselines, b.report.degenerateBaselines, 'the degenerate baselines are deterministic too');
  t.equal(c.report.degenerateBaselines, null, 'degenerateBaselines: false');
  t.equal(c.degenerate, null);
  t.equal(c.report.options.degenerateBaselines, false);
  for (const r of [a, b, c]) r.dispose();
});

t.test('a black hole is formed once, saved, loaded and absorbed again identically', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'bia-bh-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const call = { diffusion, encoder, ...BASE, threshold };
  const bh = await formBlackHole(image, call);
  const a = await absorbIdentity(bh, call);
  await saveBlackHole(bh, dir);
  const back = await loadBlackHole(dir);
  t.equal(back.found, bh.found);
  t.equal(back.boundary!.b, bh.boundary!.b);
  t.same(Array.from(back.labels), Array.from(bh.labels));
  t.same(Array.from(await back.boundary!.dq.data()), Array.from(await bh.boundary!.dq.data()));
  const sBack = await signedDistance(back.hR, back.boundary!.w, back.boundary!.b);
  t.equal(sBack[0], bh.boundary!.sR, 's(h_r) from the loaded w, b');
  const b = await absorbIdentity(back, call);
  t.same(b.candidates, a.candidates, 'the same absorption from the loaded black hole');
  for (const x of [a, b, bh, back]) x.dispose();
  await t.rejects(loadBlackHole(join(dir, 'nope')), { code: 'BIA_IO_ERROR' });
});

t.test('no boundary: reported, and absorbed by optimize (with VGG16 and a second recognizer)', async (t) => {
  const perceptual = await createPerceptual({ seed: 3 });
  const second = await createIdentityEncoder('ir_se50', { width: 0.125, embeddingSize: 16, seed: 4 });
  // threshold −1: every neighbour keeps the identity, at any α_max.
  const r = await eraseIdentity(image, { diffusion, encoder, secondEncoder: second, perceptual, ...BASE, threshold: -1, calibrationRounds: 2, iterations: 3, backprop: 'one-step' });
  const rep = r.report;
  t.equal(rep.blackHole.found, false);
  t.match(rep.blackHole.message, /no boundary: .*2 rounds.*100% label 1/);
  t.equal(rep.blackHole.rounds.length, 2);
  t.equal(rep.blackHole.rounds[1].alphaMax, 2, 'α_max doubled when everything kept the identity');
  t.equal(rep.blackHole.svm, null);
  t.equal(rep.absorption.mode, 'optimize');
  t.equal(rep.absorption.backprop, 'one-step');
  t.equal(rep.absorption.losses!.loss.length, 3);
  t.equal(rep.absorption.candidates.length, 1);
  t.equal(rep.absorption.candidates[0].signedDistance, null, 'no boundary, no signed distance');
  t.equal(rep.models.perceptual, perceptual.name);
  t.equal(rep.models.secondEncoder!.arch, 'ir_se50');
  t.ok(rep.sid.second && Number.isFinite(rep.sid.second.after) && Number.isFinite(rep.sid.second.randomBaseline!));
  t.same(r.image.shape, [1, 3, 16, 16]);
  r.dispose();
  perceptual.dispose();
  second.dispose();
});

t.test('optimize with a boundary starts beyond it and keeps the best iterate', async (t) => {
  const r = await eraseIdentity(image, { diffusion, encoder, ...BASE, threshold, absorb: 'optimize', iterations: 3, backprop: 'full', startMargin: 0.1 });
  const rep = r.report;
  t.equal(rep.blackHole.found, true);
  t.equal(rep.absorption.mode, 'optimize');
  const l = rep.absorption.losses!.loss;
  t.equal(l.length, 3);
  t.equal(rep.absorption.candidates[0].fidelity, Math.min(...l), 'the output is the iterate of lowest loss');
  t.ok(rep.absorption.candidates[0].distance > 0.05, `ĥ moved ${rep.absorption.candidates[0].distance.toFixed(3)}·‖h_r‖ from h_r`);
  r.dispose();
});

t.test('abort stops the job and leaks nothing', async (t) => {
  gc();
  const live = liveTensors();
  const ctl = new AbortController();
  let n = 0;
  const p = eraseIdentity(image, {
    diffusion,
    encoder,
    ...BASE,
    threshold,
    signal: ctl.signal,
    onStage: (e) => {
      if (e.stage === 'neighbours' && ++n === 3) ctl.abort();
    },
  });
  await t.rejects(p, { code: 'BIA_ABORTED' });
  gc();
  t.equal(liveTensors(), live);
});

t.test('bad input: clear errors, nothing run', async (t) => {
  const ok = { diffusion, encoder, ...BASE, threshold };
  const wrong = await randn([1, 3, 32, 32], { seed: 1 });
  await t.rejects(eraseIdentity(wrong, ok), { code: 'BIA_INVALID_ARGUMENT', message: /\[1,3,16,16\]/ });
  await t.rejects(eraseIdentity(image, { ...ok, threshold: 2 }), { code: 'BIA_INVALID_ARGUMENT', message: /threshold/ });
  await t.rejects(eraseIdentity(image, { ...ok, neighbours: 0 }), { code: 'BIA_INVALID_ARGUMENT', message: /neighbours/ });
  await t.rejects(eraseIdentity(image, { ...ok, absorb: 'teleport' as 'walk' }), { code: 'BIA_INVALID_ARGUMENT', message: /absorb/ });
  await t.rejects(eraseIdentity(image, { ...ok, walkStep: [5, 1] }), { code: 'BIA_INVALID_ARGUMENT', message: /walkStep/ });
  await t.rejects(eraseIdentity(image, { ...ok, degenerateBaselines: 'yes' as unknown as boolean }), { code: 'BIA_INVALID_ARGUMENT', message: /degenerateBaselines/ });
  await t.rejects(eraseIdentity(image, { ...ok, bogus: 1 } as typeof ok), { code: 'BIA_INVALID_ARGUMENT', message: /unknown option 'bogus'/ });
  await t.rejects(eraseIdentity(image, { ...ok, encoder: undefined as unknown as IdentityEncoder }), { code: 'BIA_INVALID_ARGUMENT', message: /encoder/ });
  const nan = new Float32Array(768);
  nan[5] = NaN;
  await t.rejects(eraseIdentity(await tensor(nan, [1, 3, 16, 16]), ok), { code: 'BIA_INVALID_ARGUMENT', message: /NaN|finite/ });
  wrong.dispose();
});

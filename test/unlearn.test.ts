// Unlearning of the diffusion model (ts/unlearn): the native distillation step, the trainable subset,
// and a tiny end-to-end run in which the student learns to decode the photo as the teacher decodes
// its absorbed code, while another person's reconstruction stays close.
import t from 'tap';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createDiffusion, randn, takeRows, tensor, type DiffusionModel, type IdentityEncoder, type Tensor } from '../ts/index';
import { createTrainer } from '../ts/train/trainer';
import { mergeAdapter } from '../ts/train/trainer';
import { renderUnlearnReport } from '../ts/unlearn/report';
import { blendFaces, DECODER_PREFIXES, mirrored, sampledSteps, unlearnIdentity } from '../ts/unlearn/unlearn';
import { tinyWorld } from './helpers';

const BASE = { t0: 100, steps: 6, protocol: 'resize' as const, inject: 'every-step' as const, neighbours: 16, wrapSize: 4, walkStepUnit: 'relative' as const, walkStep: [0.5, 0.6] as [number, number], fidelityThreshold: 10, baseline: false, degenerateBaselines: false };

let diffusion: DiffusionModel;
let encoder: IdentityEncoder;
let photo: Tensor;
let others: Tensor;
let threshold: number;

async function values(x: Tensor): Promise<Float32Array> {
  return Float32Array.from(await x.data());
}

function mse(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += (a[i] - b[i]) ** 2;
  return s / a.length;
}

t.before(async () => {
  ({ diffusion, encoder, image: photo, threshold } = await tinyWorld(BASE));
  others = await randn([2, 3, 16, 16], { seed: 6 });
});

t.test('the distillation step regresses ε(x_t, t) on the given targets', async (t) => {
  const x = await randn([2, 3, 16, 16], { seed: 11 });
  const target = await randn([2, 3, 16, 16], { seed: 12 });
  const ts = [40, 90];
  const trainer = await createTrainer('diffusion', diffusion, { seed: 3 });
  t.teardown(() => trainer.dispose());
  // the loss is MSE(ε_θ(x_t, t), target), ε computed here by the model itself
  const eps = await diffusion.forward(x, ts);
  const expected = mse(await values(eps.eps), await values(target));
  const r = await trainer.evaluate({ images: x, labels: Int32Array.from(ts), targets: target });
  t.ok(Math.abs(r.loss - expected) < 1e-5 * (1 + expected), `evaluate ${r.loss} = MSE from forward() ${expected}`);
  // a step on it lowers that loss
  const before = r.loss;
  for (let i = 0; i < 5; i++) await trainer.step({ images: x, labels: Int32Array.from(ts), targets: target }, { lr: 1e-3 });
  t.ok((await trainer.evaluate({ images: x, labels: Int32Array.from(ts), targets: target })).loss < before, 'five steps lower it');
  // bad batches
  await t.rejects(trainer.step({ images: x, labels: Int32Array.from(ts) }), { code: 'BIA_INVALID_ARGUMENT', message: /both labels \(timesteps \[B\]\) and targets/ });
  await t.rejects(trainer.step({ images: x, labels: Int32Array.from([0, 1000]), targets: target }), { code: 'BIA_INVALID_ARGUMENT', message: /timesteps\) must be in \[0, 1000\)/ });
  const small = await randn([2, 3, 8, 8], { seed: 1 });
  await t.rejects(trainer.step({ images: x, labels: Int32Array.from(ts), targets: small }), { code: 'BIA_INVALID_ARGUMENT', message: /images' shape/ });
  for (const v of [x, target, eps.eps, eps.h, small]) v.dispose();
});

t.test('trainable: only the named parameters learn', async (t) => {
  const trainer = await createTrainer('diffusion', diffusion, { seed: 3, trainable: DECODER_PREFIXES });
  t.teardown(() => trainer.dispose());
  const before = await trainer.snapshot();
  const x = await randn([2, 3, 16, 16], { seed: 13 });
  await trainer.step({ images: x }, { lr: 1e-2 });
  const after = await trainer.snapshot();
  let changedDecoder = 0;
  let changedOther = 0;
  for (const [k, v] of before) {
    if (!after.has(k) || k.startsWith('optim.') || k.startsWith('ema.')) continue;
    const same = mse(await values(v), await values(after.get(k)!)) === 0;
    if (DECODER_PREFIXES.some((p) => k.startsWith(p))) changedDecoder += same ? 0 : 1;
    else changedOther += same ? 0 : 1;
  }
  t.ok(changedDecoder > 0, `${changedDecoder} decoder tensors changed`);
  t.equal(changedOther, 0, 'nothing outside the decoder changed');
  t.notOk([...after.keys()].some((k) => k.startsWith('optim.exp_avg.down.')), 'no optimiser state for frozen parameters');
  await t.rejects(createTrainer('diffusion', diffusion, { trainable: ['nothing.'] }), { code: 'BIA_INVALID_ARGUMENT', message: /selects none/ });
  await t.rejects(createTrainer('diffusion', diffusion, { trainable: [''] }), { code: 'BIA_INVALID_ARGUMENT' });
  for (const m of [before, after]) for (const v of m.values()) v.dispose();
  x.dispose();
});

t.test('sampledSteps spreads the states over the trajectory', async (t) => {
  t.same(sampledSteps(6, 3), [0, 3, 5]);
  t.same(sampledSteps(6, 10), [0, 1, 2, 3, 4, 5]);
  t.same(sampledSteps(40, 1), [0]);
});

t.test('a tiny unlearning run: the photo now decodes like its absorbed code, the other person stays', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'bia-unlearn-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const r = await unlearnIdentity(photo, { diffusion, encoder, others }, { erase: { ...BASE, threshold }, iterations: 60, lr: 1e-3, batchSize: 6, statesPerCode: 6, params: 'all', seed: 4 });
  t.teardown(() => r.dispose());
  const [before, after, absorbed, ob, oa] = await Promise.all([r.images.before, r.images.after, r.images.absorbed, r.images.othersBefore, r.images.othersAfter].map(values));
  const gapBefore = mse(before, absorbed);
  const gapAfter = mse(after, absorbed);
  t.comment(`photo: MSE to the absorbed output ${gapBefore.toFixed(4)} → ${gapAfter.toFixed(4)}; other people: change ${mse(ob, oa).toFixed(5)}`);
  t.ok(gapAfter < 0.5 * gapBefore, 'the unlearned model decodes the photo at least twice as close to its absorbed output');
  t.ok(mse(ob, oa) < 0.25 * gapBefore, 'other people move far less than the photo did');
  t.equal(r.report.forget.after.length, 1);
  t.equal(r.report.retain.after.length, 2);
  t.equal(r.report.losses.length, 60);
  t.ok(r.report.losses.slice(-10).reduce((a, b) => a + b) < r.report.losses.slice(0, 10).reduce((a, b) => a + b), 'the loss falls');
  // the original model is untouched
  const again = await diffusion.decode((await diffusion.invert(photo, { t0: BASE.t0, steps: BASE.steps })).xLat, null, { t0: BASE.t0, steps: BASE.steps, eta: 0 });
  t.ok(mse(await values(again), before) < 1e-10, 'the teacher still reconstructs as before');
  again.dispose();
  await t.rejects(unlearnIdentity(photo, { diffusion, encoder, others }, { erase: { ...BASE, inject: 'asyrp' } }), { code: 'BIA_INVALID_ARGUMENT', message: /every-step/ });
  await t.rejects(unlearnIdentity(photo, { diffusion, encoder, others }, { params: 'middle' as never }), { code: 'BIA_INVALID_ARGUMENT', message: /params/ });
});

t.test("identity terms: the student's pictures of the photo move away from the person, the report carries both terms", async (t) => {
  const common = { erase: { ...BASE, threshold }, iterations: 40, lr: 1e-3, batchSize: 6, statesPerCode: 6, params: 'all' as const, seed: 4 };
  const plain = await unlearnIdentity(photo, { diffusion, encoder, others }, common);
  t.teardown(() => plain.dispose());
  const withId = await unlearnIdentity(photo, { diffusion, encoder, others }, { ...common, identityWeight: 1, identityMargin: -1, identityKeepWeight: 1, plainStates: true });
  t.teardown(() => withId.dispose());
  t.notOk(plain.report.identity, 'no identity terms by default');
  const id = withId.report.identity!;
  t.equal(id.weight, 1);
  t.equal(id.margin, -1);
  const forgetSteps = id.hinge.length;
  t.ok(forgetSteps > 0 && forgetSteps <= 40 && id.keep.length > 0, `the away term ran on ${forgetSteps} steps, the keep term on ${id.keep.length}`);
  const mean = (a: number[]) => a.reduce((x, y) => x + y, 0) / a.length;
  t.ok(mean(id.similarity.slice(-10)) < mean(id.similarity.slice(0, 10)), `the forget states' x̂0 moves away from the person (cosine ${mean(id.similarity.slice(0, 10)).toFixed(3)} → ${mean(id.similarity.slice(-10)).toFixed(3)})`);
  // the plain states are the photo's own reconstruction trajectory: more forget states than without them
  t.ok(withId.report.forgetStates > plain.report.forgetStates, `plainStates adds forget states (${plain.report.forgetStates} → ${withId.report.forgetStates})`);
  t.comment(`plain reconstruction's similarity to the photo: without the terms ${plain.report.forget.after[0].toFixed(3)}, with them ${withId.report.forget.after[0].toFixed(3)}`);
  t.ok(withId.report.forget.after[0] < plain.report.forget.after[0], 'the unlearned model reconstructs the photo less like the person');
  // refreshEvery: the student's own trajectories join the pools (and replace each other at every refresh)
  const refreshed = await unlearnIdentity(photo, { diffusion, encoder, others }, { ...common, plainStates: true, refreshEvery: 15 });
  t.teardown(() => refreshed.dispose());
  const newStates = (picks: number) => picks - 1; // the first state, x_lat, is the same on every trajectory
  t.equal(refreshed.report.retainStates, plain.report.retainStates + others.shape[0] * newStates(6), `one set of the student's retain states (${refreshed.report.retainStates})`);
  t.equal(refreshed.report.forgetStates, withId.report.forgetStates + newStates(6), 'and of its plain states of the photo');
  t.ok(refreshed.report.losses.every(Number.isFinite), 'every loss finite');
  await t.rejects(unlearnIdentity(photo, { diffusion, encoder, others }, { ...common, identityWeight: -1 }), { code: 'BIA_INVALID_ARGUMENT', message: /identityWeight/ });
  await t.rejects(unlearnIdentity(photo, { diffusion, encoder, others }, { ...common, identityMargin: 1 }), { code: 'BIA_INVALID_ARGUMENT', message: /identityMargin/ });
  await t.rejects(unlearnIdentity(photo, { diffusion, encoder, others }, { ...common, refreshEvery: 1.5 }), { code: 'BIA_INVALID_ARGUMENT', message: /refreshEvery/ });
});

t.test('anchor: other people are kept as the anchor decodes them', async (t) => {
  // an anchor with the same config and other weights: with it, the student learns the anchor's trajectories of the
  // other people, so it decodes them far closer to the anchor than a run kept to its own model does
  const anchor = await createDiffusion('tiny', { seed: 77 });
  t.teardown(() => anchor.dispose());
  const common = { erase: { ...BASE, threshold }, iterations: 60, lr: 1e-3, batchSize: 6, statesPerCode: 6, params: 'all' as const, seed: 4, retainShare: 0.8 };
  const own = await unlearnIdentity(photo, { diffusion, encoder, others }, common);
  t.teardown(() => own.dispose());
  const anchored = await unlearnIdentity(photo, { diffusion, encoder, others }, { ...common, anchor });
  t.teardown(() => anchored.dispose());
  const o = { t0: BASE.t0, steps: BASE.steps };
  const inv = await anchor.invert(others, o);
  const dec = async (m: DiffusionModel) => values(await m.decode(inv.xLat, null, { ...o, eta: 0 }));
  const [target, withOwn, withAnchor] = [await dec(anchor), await dec(own.model), await dec(anchored.model)];
  t.comment(`other people, MSE to the anchor's decoding: kept to its own model ${mse(withOwn, target).toFixed(4)}, anchored ${mse(withAnchor, target).toExponential(2)}; the model it started from ${mse(await dec(diffusion), target).toFixed(4)}`);
  t.ok(mse(withAnchor, target) < 0.5 * mse(withOwn, target), 'the anchored student decodes the other people closer to the anchor');
  const wider = await createDiffusion({ preset: 'tiny', ch: 64 }, { seed: 1 });
  t.teardown(() => wider.dispose());
  t.notSame(wider.config, diffusion.config);
  await t.rejects(unlearnIdentity(photo, { diffusion, encoder, others }, { ...common, iterations: 1, anchor: wider }), { code: 'BIA_INVALID_ARGUMENT', message: /anchor/ });
});

t.test('an interrupted run resumes where it stopped and ends as an uninterrupted one', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'bia-unlearn-resume-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const ckpt = join(dir, 'trainer.safetensors');
  const common = { erase: { ...BASE, threshold }, lr: 1e-3, batchSize: 4, statesPerCode: 3, params: 'decoder' as const, seed: 9 };
  const whole = await unlearnIdentity(photo, { diffusion, encoder, others }, { ...common, iterations: 12 });
  t.teardown(() => whole.dispose());
  // the first run stops after step 6 (its checkpoint), as Ctrl-C after a checkpoint would leave it
  const controller = new AbortController();
  await t.rejects(
    unlearnIdentity(photo, { diffusion, encoder, others }, {
      ...common,
      iterations: 12,
      checkpointEvery: 6,
      signal: controller.signal,
      onCheckpoint: async (trainer, step) => {
        await trainer.save(ckpt);
        if (step === 6) controller.abort();
      },
    }),
    { code: 'BIA_ABORTED' },
  );
  const resumed = await unlearnIdentity(photo, { diffusion, encoder, others }, { ...common, iterations: 12, resumeFrom: ckpt });
  t.teardown(() => resumed.dispose());
  t.same(resumed.report.losses, whole.report.losses.slice(6), 'steps 7–12 repeat exactly');
  t.same(await values(resumed.images.after), await values(whole.images.after), 'and the unlearned model is the same');
});

t.test('bia unlearn: usage errors exit 2', async (t) => {
  const { runUnlearnCli } = await import('../ts/unlearn/cli');
  t.equal(await runUnlearnCli(['a.png']), 2, 'no --out');
  t.equal(await runUnlearnCli(['--out', '/tmp/x']), 2, 'no photos');
  t.equal(await runUnlearnCli(['a.png', '--out', '/tmp/x', '--diffusion', 'd.pt']), 2, '--diffusion without --encoder');
  t.equal(await runUnlearnCli(['a.png', '--out', '/tmp/x', '--params', 'middle']), 2, 'bad --params');
  t.equal(await runUnlearnCli(['a.png', '--out', '/tmp/x', '--identity-weight', 'lots']), 2, 'bad --identity-weight');
  t.equal(await runUnlearnCli(['a.png', '--out', '/tmp/x', '--diffusion', 'd.pt', '--encoder', 'e.pt']), 2, 'own models need --others');
});

t.test('mirrored reverses the width axis', async (t) => {
  const x = await randn([2, 3, 4, 5], { seed: 3 });
  const [a, b] = [await values(x), await values(await mirrored(x))];
  t.equal(b[6], a[8], 'row 1 of channel 0: column 1 ↔ column 3');
  t.same(await values(await mirrored(await mirrored(x))), a, 'twice is the identity');
  x.dispose();
});

t.test('adapters: a tiny run lowers the gap to the absorbed output; the patch merges into the same model', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'bia-unlearn-adapters-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const r = await unlearnIdentity(photo, { diffusion, encoder, others }, { erase: { ...BASE, threshold }, iterations: 40, lr: 3e-3, batchSize: 6, statesPerCode: 6, params: 'adapters', adapterRank: 4, mirror: true, variants: 2, composites: 2, seed: 4 });
  t.teardown(() => r.dispose());
  const [before, after, absorbed] = await Promise.all([r.images.before, r.images.after, r.images.absorbed].map(values));
  t.comment(`adapters: MSE to the absorbed output ${mse(before, absorbed).toFixed(4)} → ${mse(after, absorbed).toFixed(4)}`);
  t.ok(mse(after, absorbed) < 0.7 * mse(before, absorbed), 'the photo decodes closer to its absorbed output');
  t.equal(r.report.params, 'adapters');
  t.equal(r.report.forget.mirroredAbsorbed?.length, 1, 'the mirrored shift is measured');
  const v = r.report.variants;
  t.comment(`variants: ${JSON.stringify(v)}`);
  t.equal(v?.made, 2, 'two variants from inside the black hole');
  t.equal(v!.kept, v!.absorbed.filter((a, k) => a < threshold && v!.similarity[k] >= threshold).length, 'kept: those still of the person whose shifted decoding is below the threshold');
  const c = r.report.composites;
  t.comment(`composites: ${JSON.stringify(c)}`);
  t.equal(c?.made, 2, "two composites: the photo's face in two other people's pictures");
  t.equal(c!.kept, c!.absorbed.filter((a, k) => a < threshold && c!.similarity[k] >= threshold).length, 'kept by the same rule');
  t.equal(r.report.forgetStates, (2 + v!.kept + c!.kept) * 6, 'photo, mirrored photo, kept variants and composites: 6 states each');
  const patch = join(dir, 'adapter.safetensors');
  t.ok((await r.saveAdapter!(patch)) > 0, 'the patch is written');
  const merged = await mergeAdapter(diffusion, patch);
  const inv = await diffusion.invert(photo, { t0: BASE.t0, steps: BASE.steps });
  const viaPatch = await merged.decode(inv.xLat, null, { t0: BASE.t0, steps: BASE.steps, eta: 0 });
  t.ok(mse(await values(viaPatch), after) < 1e-8, 'base + patch decodes as the unlearned model');
  for (const x of [inv.xLat, inv.hR, viaPatch]) x.dispose();
  merged.dispose();
  // the HTML report carries the figures and both grids
  const png = readFileSync(join(__dirname, '..', '..', 'docs', 'images', 'demo-grid.png'));
  const html = renderUnlearnReport({ report: r.report, threshold, grids: { photos: png, others: png }, models: { diffusion: 'd.safetensors', encoder: 'e.safetensors' } });
  t.match(html, r.report.forget.after[0].toFixed(3), 'the unlearned similarity is in the report');
  t.equal(html.split('data:image/png;base64,').length - 1, 2, 'both grids are inlined');
  t.match(html, /<svg class="chart losses"/, 'with the loss curve');
  t.match(html, new RegExp(`composites \\(the person's face in other people's pictures\\) kept as forget codes</th><td class="n">${c!.kept} of 2<`), 'and how many composites were kept');
});

t.test("blendFaces: the face's ellipse from one picture, the rest from the other", async (t) => {
  const face = await randn([2, 3, 20, 10], { seed: 5 });
  const scene = await randn([3, 3, 20, 10], { seed: 6 });
  const region = { cx: 0.5, cy: 0.5, rx: 0.3, ry: 0.3 };
  const x = await blendFaces(face, [1, 0], scene, [2, 2], region);
  t.same(x.shape, [2, 3, 20, 10]);
  const [f, g, v] = [await values(face), await values(scene), await values(x)];
  const at = (b: number, c: number, y: number, xx: number) => ((b * 3 + c) * 20 + y) * 10 + xx;
  t.equal(v[at(0, 1, 10, 5)], f[at(1, 1, 10, 5)], "the centre is face row 1's");
  t.equal(v[at(1, 2, 10, 5)], f[at(0, 2, 10, 5)], "row 1: face row 0's centre");
  t.equal(v[at(0, 0, 0, 0)], g[at(2, 0, 0, 0)], "the corner is scene row 2's");
  t.equal(v[at(1, 0, 19, 9)], g[at(2, 0, 19, 9)]);
  t.equal(v[at(0, 0, 10, 7)], f[at(1, 0, 10, 7)], 'r ≈ 0.84 of the radius: within 85%, all face');
  t.equal(v[at(0, 0, 10, 8)], g[at(2, 0, 10, 8)], 'r ≈ 1.17: beyond the ellipse, all scene');
  const mid = v[at(0, 0, 12, 7)]; // r ≈ 0.93: on the soft edge, between the two
  const [fm, gm] = [f[at(1, 0, 12, 7)], g[at(2, 0, 12, 7)]];
  t.ok(Math.min(fm, gm) < mid && mid < Math.max(fm, gm), `the soft edge blends: ${fm.toFixed(3)} / ${mid.toFixed(3)} / ${gm.toFixed(3)}`);
  await t.rejects(blendFaces(face, [0], scene, [0, 1], region), { code: 'BIA_INVALID_ARGUMENT' });
  await t.rejects(blendFaces(face, [2], scene, [0], region), { code: 'BIA_INVALID_ARGUMENT', message: /outside its batch/ });
  const small = await randn([1, 3, 10, 10], { seed: 7 });
  await t.rejects(blendFaces(face, [0], small, [0], region), { code: 'BIA_INVALID_ARGUMENT', message: /one picture size/ });
  small.dispose();
  await t.rejects(unlearnIdentity(photo, { diffusion, encoder, others }, { faceRegion: { cx: 0.5, cy: 0.5, rx: 0, ry: 0.2 } }), { code: 'BIA_INVALID_ARGUMENT', message: /faceRegion/ });
  for (const y of [face, scene, x]) y.dispose();
});

t.test('bad inputs: wrong sizes are refused; the CLI exits 3 on an unreadable photo and writes its outputs otherwise', async (t) => {
  const small = await randn([1, 3, 8, 8], { seed: 1 });
  await t.rejects(unlearnIdentity(small, { diffusion, encoder, others }), { code: 'BIA_INVALID_ARGUMENT', message: /photos must be \[N, 3, 16, 16\]/ });
  await t.rejects(unlearnIdentity(photo, { diffusion, encoder, others: small }), { code: 'BIA_INVALID_ARGUMENT', message: /others .* must be \[N, 3, 16, 16\]/ });
  await t.rejects(unlearnIdentity(photo, { diffusion, encoder, others }, { mirror: 'yes' as never }), { code: 'BIA_INVALID_ARGUMENT', message: /mirror/ });
  const blank = await tensor(new Float32Array(3 * 16 * 16).fill(0.2), [1, 3, 16, 16]);
  await t.rejects(unlearnIdentity(blank, { diffusion, encoder, others }), { code: 'BIA_INVALID_ARGUMENT', message: /photos: picture 0 is blank/ });
  const nan = await tensor(new Float32Array(3 * 16 * 16).fill(NaN), [1, 3, 16, 16]);
  await t.rejects(unlearnIdentity(photo, { diffusion, encoder, others: nan }), { code: 'BIA_INVALID_ARGUMENT', message: /others .*picture 0 holds NaN/ });
  // the person among the people to keep: one class on both sides
  const withHer = await takeRows([others, photo], [[0, 0], [1, 0]]);
  const r = await unlearnIdentity(photo, { diffusion, encoder, others: withHer }, { erase: { ...BASE, threshold }, iterations: 2, statesPerCode: 2 });
  t.same(r.report.othersLeftOut, [1], 'a retain picture of the person is left out');
  t.equal(r.report.others, 1);
  t.equal(r.images.others.shape[0], r.images.othersAfter.shape[0], 'the grid rows match the kept retain pictures');
  r.dispose();
  await t.rejects(unlearnIdentity(photo, { diffusion, encoder, others: photo }, { erase: { ...BASE, threshold } }), { code: 'BIA_INVALID_ARGUMENT', message: /every picture looks like the person/ });
  for (const x of [blank, nan, withHer]) x.dispose();
  small.dispose();
  const dir = mkdtempSync(join(tmpdir(), 'bia-unlearn-cli-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const { runUnlearnCli } = await import('../ts/unlearn/cli');
  const { writeImage } = await import('../ts/images');
  const [d, e] = [join(dir, 'unet.safetensors'), join(dir, 'encoder.safetensors')];
  await diffusion.save(d);
  await encoder.save(e);
  await writeImage(photo, join(dir, 'her.png'));
  const otherPng = join(dir, 'other.png');
  const one = await randn([1, 3, 16, 16], { seed: 8 });
  await writeImage(one, otherPng);
  one.dispose();
  writeFileSync(join(dir, 'broken.png'), 'not a png');
  const flags = ['--diffusion', d, '--encoder', e, '--others', otherPng, '--iterations', '4', '--states', '2', '--json', '--t0', String(BASE.t0), '--steps', String(BASE.steps), '--neighbours', String(BASE.neighbours), '--threshold', String(threshold)];
  t.equal(await runUnlearnCli([join(dir, 'her.png'), '--out', join(dir, 'o0'), ...flags, '--steps', '1']), 2, 'a bad erase setting: usage error');
  t.equal(await runUnlearnCli([join(dir, 'broken.png'), '--out', join(dir, 'o1'), ...flags]), 3, 'an unreadable photo: input error');
  t.equal(await runUnlearnCli([join(dir, 'her.png'), '--out', join(dir, 'o2'), ...flags, '--params', 'adapters', '--rank', '2']), 0, 'a run with adapters');
  for (const f of ['unlearned.safetensors', 'adapter.safetensors', 'report.json', 'report.html', 'grid.png', 'others.png']) t.ok(existsSync(join(dir, 'o2', f)), `${f} written`);
  t.notOk(existsSync(join(dir, 'o2', 'trainer.safetensors')), 'no resume state left after a finished run');
  // the second round of a sequence: the unlearned model, other people kept as the original decodes them
  t.equal(await runUnlearnCli([join(dir, 'her.png'), '--out', join(dir, 'o3'), ...flags, '--diffusion', join(dir, 'o2', 'unlearned.safetensors'), '--anchor', d]), 0, 'a run anchored to the original');
  t.equal(JSON.parse(readFileSync(join(dir, 'o3', 'report.json'), 'utf8')).anchor, d, 'the report names the anchor');
  t.equal(await runUnlearnCli([join(dir, 'her.png'), '--out', join(dir, 'o4'), ...flags, '--anchor', join(dir, 'missing.safetensors')]), 3, 'a missing anchor: input error');
});

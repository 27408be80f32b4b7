// The training machinery: DDPM / ArcFace encoder / attribute trainers, AdamW, EMA, checkpoints and
// bit-identical resume, the loop's abort and non-finite handling, schedules.
import { prng } from '../ts/blackhole/svm';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { DiffusionModel, IdentityEncoder, loadDiffusion, readCheckpoint, tensor, type Tensor } from '../ts/index';
import { arcfaceLogits, createAttributeEstimator, createTrainer, cosineSchedule, linearRamp, loadAttributeEstimator, piecewise, train, type Batch } from '../ts/train/index';

const dir = mkdtempSync(path.join(os.tmpdir(), 'bia-train-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

const TINY = { ch: 32, chMult: [1, 2], numResBlocks: 1, attnResolutions: [8], resolution: 16, dropout: 0 };


/** n smooth 3-channel images (sums of two random ramps and a blob), in [-1, 1]. */
async function smoothImages(n: number, side: number, seed: number): Promise<Tensor> {
  const r = prng(seed);
  const d = new Float32Array(n * 3 * side * side);
  for (let i = 0; i < n; i++) {
    for (let c = 0; c < 3; c++) {
      const [ax, ay, cx, cy, b] = [r() * 2 - 1, r() * 2 - 1, r() * side, r() * side, r() * 2 - 1];
      for (let y = 0; y < side; y++) {
        for (let x = 0; x < side; x++) {
          const blob = Math.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (side * side * 0.05));
          d[((i * 3 + c) * side + y) * side + x] = Math.max(-1, Math.min(1, 0.5 * (ax * (x / side - 0.5) + ay * (y / side - 0.5)) + b * blob));
        }
      }
    }
  }
  return tensor(d, [n, 3, side, side]);
}

/** Coloured squares: class k ∈ {red, green, blue, yellow} at a random place on a noisy grey background. */
async function squares(n: number, side: number, seed: number): Promise<{ images: Tensor; labels: Int32Array }> {
  const colours = [[1, -1, -1], [-1, 1, -1], [-1, -1, 1], [1, 1, -1]];
  const r = prng(seed);
  const d = new Float32Array(n * 3 * side * side);
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const k = i % 4;
    labels[i] = k;
    const s = Math.floor(side / 3 + r() * (side / 4));
    const x0 = Math.floor(r() * (side - s));
    const y0 = Math.floor(r() * (side - s));
    for (let c = 0; c < 3; c++) {
      for (let y = 0; y < side; y++) {
        for (let x = 0; x < side; x++) {
          const inside = x >= x0 && x < x0 + s && y >= y0 && y < y0 + s;
          d[((i * 3 + c) * side + y) * side + x] = inside ? colours[k][c] * 0.8 : (r() - 0.5) * 0.6;
        }
      }
    }
  }
  return { images: await tensor(d, [n, 3, side, side]), labels };
}

async function values(m: Map<string, Tensor>, key: string): Promise<Float32Array> {
  const v = m.get(key);
  if (!v) throw new Error(`no tensor ${key}`);
  return (await v.data()) as Float32Array;
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return a.length === b.length ? m : Infinity;
}

t.test('schedules', async (t) => {
  const c = cosineSchedule(1, 10, 110, 0.1);
  t.equal(c(0), 0.1, 'warmup starts at base/warmup');
  t.equal(c(9), 1);
  t.ok(Math.abs(c(60) - (0.1 + 0.45)) < 1e-12, 'cosine midpoint');
  t.equal(c(110), 0.1);
  const r = linearRamp(0, 0.3, 100, 200);
  t.equal(r(50), 0);
  t.ok(Math.abs(r(150) - 0.15) < 1e-12);
  t.equal(r(300), 0.3);
  const p = piecewise([0, 0], [100, linearRamp(0, 0.3, 100, 200)]);
  t.equal(p(99), 0);
  t.ok(Math.abs(p(150) - 0.15) < 1e-12);
  t.throws(() => piecewise([5, 1]), { code: 'BIA_INVALID_ARGUMENT' });
  t.throws(() => cosineSchedule(1, 10, 5), { code: 'BIA_INVALID_ARGUMENT' });
});

t.test('ArcFace logits match a hand computation (2 classes)', async (t) => {
  const e = await tensor(new Float32Array([1.6, 1.2, 0.56, 1.92]), [2, 2]);  // unit directions (0.8, 0.6), (0.28, 0.96)
  const w = await tensor(new Float32Array([3, 0, 0, 0.5]), [2, 2]);         // normalised: (1, 0), (0, 1)
  const labels = new Int32Array([0, 1]);
  const s = 32;
  const m = 0.5;
  const got = await (await arcfaceLogits(e, w, labels, { arcfaceMargin: m, scale: s })).data();
  const want = [s * Math.cos(Math.acos(0.8) + m), s * 0.6, s * 0.28, s * Math.cos(Math.acos(0.96) + m)];
  t.ok(maxAbsDiff(got, want) < 1e-4, `margin on the target only: ${[...got]} vs ${want}`);
  const plain = await (await arcfaceLogits(e, w, labels, { arcfaceMargin: 0, scale: s })).data();
  t.ok(maxAbsDiff(plain, [s * 0.8, s * 0.6, s * 0.28, s * 0.96]) < 1e-4, 'm = 0: normalised softmax logits s·cos θ');
  await t.rejects(arcfaceLogits(e, w, new Int32Array([0, 2])), { code: 'BIA_INVALID_ARGUMENT' });
});

t.test('DDPM: the ε-prediction loss decreases on a fixed tiny dataset', async (t) => {
  const images = await smoothImages(8, 16, 1);
  const trainer = await createTrainer('diffusion', TINY, { lr: 3e-3, seed: 3, channelsLast: false });
  t.equal(trainer.target, 'diffusion');
  t.ok(trainer.info.parameterCount > 100_000);
  const before = await trainer.evaluate({ images }, { seed: 7 });
  const losses: number[] = [];
  for (let i = 0; i < 30; i++) losses.push((await trainer.step({ images })).loss);
  const after = await trainer.evaluate({ images }, { seed: 7 });
  t.equal(trainer.stepCount, 30);
  t.ok(after.loss < 0.6 * before.loss, `evaluation loss (same t, ε) ${before.loss.toFixed(4)} → ${after.loss.toFixed(4)}`);
  const first = losses.slice(0, 5).reduce((a, b) => a + b) / 5;
  const last = losses.slice(-5).reduce((a, b) => a + b) / 5;
  t.ok(last < first, `training loss ${first.toFixed(4)} → ${last.toFixed(4)}`);
  t.ok(before.parts.mse === before.loss && !('gradNorm' in before.parts), 'evaluate: mse, no gradient');
  const model = await trainer.model();
  t.ok(model instanceof DiffusionModel);
  t.same(model.config.chMult, [1, 2]);
  const { eps } = await model.forward(images, 500);
  t.same(eps.shape, [8, 3, 16, 16], 'the trained model works as a DiffusionModel');
  trainer.dispose();
  t.throws(() => trainer.stepCount, { code: 'BIA_DISPOSED' });
});

t.test('encoder: ArcFace training separates 4 coloured-square classes', async (t) => {
  const trainer = await createTrainer('encoder', { arch: 'iresnet18', width: 0.125, embeddingSize: 32 }, {
    classes: 4, auxDim: 2, auxWeight: 0.5, lr: 2e-3, seed: 5, blur: 1, noise: 0.05, flip: true,
  });
  const margin = piecewise([0, 0], [20, linearRamp(0, 0.3, 20, 40)]);
  let last = { loss: NaN, parts: {} as Record<string, number> };
  for (let i = 0; i < 40; i++) {
    const { images, labels } = await squares(16, 32, 100 + i);
    const targets = new Float32Array(32);
    labels.forEach((l, j) => { targets[2 * j] = l % 2; targets[2 * j + 1] = l >> 1; });
    last = await trainer.step({ images, labels, targets }, { arcfaceMargin: margin(i) });
    images.dispose();
  }
  t.ok('arcface' in last.parts && 'aux' in last.parts && 'accuracy' in last.parts, 'loss parts');
  const test = await squares(64, 32, 999);
  const targets = new Float32Array(128);
  test.labels.forEach((l, j) => { targets[2 * j] = l % 2; targets[2 * j + 1] = l >> 1; });
  const ev = await trainer.evaluate({ images: test.images, labels: test.labels, targets });
  t.ok(ev.parts.accuracy > 0.9, `held-out accuracy ${ev.parts.accuracy}`);
  const enc = await trainer.model();
  t.ok(enc instanceof IdentityEncoder);
  t.equal(enc.embeddingSize, 32);
  const emb = await enc.embed(test.images, { protocol: 'resize' });
  t.same(emb.shape, [64, 32], 'the trained encoder embeds with the resize protocol');
  await t.rejects(trainer.step({ images: test.images, labels: new Int32Array(64).fill(4), targets }), { code: 'BIA_INVALID_ARGUMENT', message: /labels must be in \[0, 4\)/ });
  await t.rejects(trainer.step({ images: test.images, targets }), { code: 'BIA_INVALID_ARGUMENT', message: /labels/ });
  await t.rejects(trainer.step({ images: test.images, labels: test.labels }), { code: 'BIA_INVALID_ARGUMENT', message: /targets/ });
});

t.test('AdamW: the first step is the closed form, with decoupled weight decay on matrices only', async (t) => {
  const [lr, wd, b1, b2, eps] = [0.01, 0.1, 0.9, 0.999, 1e-8];
  const trainer = await createTrainer('attributes', { outputs: 3, width: 8, stages: 2 }, { lr, weightDecay: wd, betas: [b1, b2], eps, seed: 1 });
  const images = await smoothImages(4, 16, 2);
  const targets = new Float32Array([0.1, 0.2, 0.3, -0.5, 0.5, 0, 1, 1, 1, 0, 0, 0]);
  const s0 = await trainer.snapshot();
  await trainer.step({ images, targets });
  const s1 = await trainer.snapshot();
  t.same([...(await values(s1, 'optim.step'))], [1]);
  for (const [name, decays] of [['head.weight', true], ['head.bias', false], ['stages.0.conv1.weight', true]] as const) {
    const p0 = await values(s0, name);
    const p1 = await values(s1, name);
    const m = await values(s1, `optim.exp_avg.${name}`);
    const v = await values(s1, `optim.exp_avg_sq.${name}`);
    let worst = 0;
    let worstV = 0;
    for (let i = 0; i < p0.length; i++) {
      const g = m[i] / (1 - b1);
      worstV = Math.max(worstV, Math.abs(v[i] / (1 - b2) - g * g) / (g * g + 1e-20));
      const want = p0[i] * (decays ? 1 - lr * wd : 1) - (lr * g) / (Math.abs(g) + eps);
      worst = Math.max(worst, Math.abs(p1[i] - want));
    }
    t.ok(worstV < 1e-4, `${name}: v = (1−β2)·g² with g = m/(1−β1) (rel. err ${worstV})`);
    t.ok(worst < 2e-6, `${name}: p1 = p0·(1 − lr·wd·[matrix]) − lr·ĝ/(|ĝ| + eps) (max err ${worst})`);
  }
});

t.test('EMA: after k steps, ema = decay-weighted average of the weights', async (t) => {
  const d = 0.8;
  const trainer = await createTrainer('attributes', { outputs: 2, width: 8, stages: 2 }, { lr: 0.01, emaDecay: d, seed: 2 });
  const images = await smoothImages(4, 16, 3);
  const targets = new Float32Array([1, 0, 0, 1, 1, 1, 0, 0]);
  const ps: Float32Array[] = [await values(await trainer.snapshot(), 'head.weight')];
  for (let k = 0; k < 3; k++) {
    await trainer.step({ images, targets });
    ps.push(await values(await trainer.snapshot(), 'head.weight'));
  }
  const ema = await values(await trainer.snapshot(), 'ema.head.weight');
  const want = ps[0].map((p0, i) => d ** 3 * p0 + (1 - d) * (d * d * ps[1][i] + d * ps[2][i] + ps[3][i]));
  t.ok(maxAbsDiff(ema, want) < 1e-6, `ema = d³p0 + (1−d)(d²p1 + d·p2 + p3) (max err ${maxAbsDiff(ema, want)})`);
  t.ok(maxAbsDiff(ema, ps[3]) > 1e-4, 'and differs from the raw weights');
  const model = await trainer.model();
  const raw = await trainer.model({ ema: false });
  t.ok(maxAbsDiff(await model.stateDict().get('head.weight')!.data(), ema) === 0, 'model() has the EMA weights');
  t.ok(maxAbsDiff(await raw.stateDict().get('head.weight')!.data(), ps[3]) === 0, 'model({ema: false}) the raw ones');
  const p = path.join(dir, 'attributes.safetensors');
  await model.save(p);
  const back = await loadAttributeEstimator(p);
  t.same(back.config, { inChannels: 3, outputs: 2, width: 8, stages: 2 });
  t.ok(maxAbsDiff(await (await back.predict(images)).data(), await (await model.predict(images)).data()) === 0, 'save → load → same predictions');
});

t.test('save → load → continue is bit-identical to uninterrupted training (dropout, flips, EMA)', async (t) => {
  const config = { ...TINY, dropout: 0.1 };
  const options = { lr: 2e-3, emaDecay: 0.9, flip: true, seed: 11, weightDecay: 0.01, gradClip: 1 };
  const batches = new Map<number, Batch>();
  const source = async (step: number): Promise<Batch> => {
    if (!batches.has(step)) batches.set(step, { images: await smoothImages(4, 16, 1000 + step) });
    return batches.get(step)!;
  };
  const a = await createTrainer('diffusion', config, options);
  const ra = await train({ trainer: a, data: source, steps: 4, log: false });
  t.equal(ra.endStep, 4);
  t.equal(ra.history.length, 4);

  const ckpt = path.join(dir, 'resume.safetensors');
  const b1 = await createTrainer('diffusion', config, options);
  const r1 = await train({ trainer: b1, data: source, steps: 2, checkpoint: { path: ckpt }, log: false });
  t.same(r1.checkpoints, [2]);
  b1.dispose();
  const b2 = await createTrainer('diffusion', config, options);
  const r2 = await train({ trainer: b2, data: source, steps: 4, checkpoint: { path: ckpt }, log: false });
  t.equal(r2.startStep, 2, 'resumed from the checkpoint');
  t.same(r2.history.map((h) => h.step), [3, 4]);
  t.same(r2.history.map((h) => h.loss), ra.history.slice(2).map((h) => h.loss), 'same losses after the resume');
  const sa = await a.snapshot();
  const sb = await b2.snapshot();
  t.same([...sa.keys()], [...sb.keys()]);
  let worst = 0;
  for (const [k, v] of sa) worst = Math.max(worst, maxAbsDiff(await v.data(), await sb.get(k)!.data()));
  t.equal(worst, 0, `every tensor (weights, EMA, AdamW state) bit-identical over ${sa.size} tensors`);
  t.ok([...sa.keys()].some((k) => k.startsWith('ema.')) && sa.has('optim.step') && sa.has('optim.exp_avg_sq.conv_in.weight'));

  const ck = await readCheckpoint(ckpt);
  t.equal(JSON.parse(ck.metadata['bia.trainer']).step, 4);
  const asModel = await loadDiffusion(ckpt, { strict: false });
  t.same(asModel.config.chMult, [1, 2], 'a trainer checkpoint loads as a DiffusionModel (strict: false)');
  const other = await createTrainer('diffusion', { ...TINY, ch: 64 }, options);
  await t.rejects(other.load(ckpt), { code: 'BIA_CHECKPOINT_MISMATCH', message: /another model/ });
  const noEma = await createTrainer('diffusion', config, { ...options, emaDecay: 0 });
  await t.rejects(noEma.load(ckpt), { code: 'BIA_CHECKPOINT_MISMATCH', message: /unexpected: ema\./ });
});

t.test('abort mid-training writes a checkpoint and rejects BIA_ABORTED', async (t) => {
  const trainer = await createTrainer('diffusion', TINY, { lr: 1e-3, seed: 1 });
  const images = await smoothImages(4, 16, 5);
  const ac = new AbortController();
  const ckpt = path.join(dir, 'abort.safetensors');
  const seen: number[] = [];
  await t.rejects(
    train({
      trainer, data: () => ({ images }), steps: 100, signal: ac.signal, checkpoint: { path: ckpt, every: 50 }, log: false,
      onProgress: (p) => { seen.push(p.step); if (p.step === 3) ac.abort(); },
    }),
    { code: 'BIA_ABORTED' },
  );
  const step = trainer.stepCount;
  t.ok(step >= 3 && step < 10, `stopped after step ${step}`);
  const ck = await readCheckpoint(ckpt);
  t.equal(JSON.parse(ck.metadata['bia.trainer']).step, step, 'the checkpoint holds the last finished step');
  const again = await createTrainer('diffusion', TINY, { lr: 1e-3, seed: 1 });
  t.same(await again.load(ckpt).then((r) => r.step), step);
});

t.test('a non-finite loss stops with a clear error and leaves the last checkpoint intact', async (t) => {
  const trainer = await createTrainer('attributes', { outputs: 2, width: 8, stages: 2 }, { lr: 0.01, seed: 3 });
  const good = await smoothImages(4, 16, 6);
  const bad = new Float32Array(4 * 3 * 16 * 16).fill(0.1);
  bad[17] = NaN;
  const badImages = await tensor(bad, [4, 3, 16, 16]);
  const targets = new Float32Array(8).fill(0.5);
  const ckpt = path.join(dir, 'nan.safetensors');
  await t.rejects(
    train({ trainer, data: (s) => ({ images: s === 2 ? badImages : good, targets }), steps: 5, checkpoint: { path: ckpt, every: 2 }, log: false }),
    { code: 'BIA_TORCH_ERROR', message: /non-finite training loss at step 2.*NaN or Inf values.*not applied/ },
  );
  t.equal(trainer.stepCount, 2, 'the bad step was not applied');
  const ck = await readCheckpoint(ckpt);
  t.equal(JSON.parse(ck.metadata['bia.trainer']).step, 2, 'the checkpoint of step 2 is intact');
  const live = await trainer.snapshot();
  let worst = 0;
  for (const [k, v] of ck.tensors) worst = Math.max(worst, maxAbsDiff(await v.data(), await live.get(k)!.data()));
  t.equal(worst, 0, 'and equals the trainer state');
});

t.test('bad options and batches → BIA_INVALID_ARGUMENT', async (t) => {
  const bad = async (p: Promise<unknown>, message: RegExp) => t.rejects(p, { code: 'BIA_INVALID_ARGUMENT', message });
  await bad(createTrainer('gan' as 'diffusion', TINY), /target must be/);
  await bad(createTrainer('diffusion', TINY, { lr: -1 }), /lr/);
  await bad(createTrainer('diffusion', TINY, { classes: 10 }), /classes and auxDim/);
  await bad(createTrainer('diffusion', TINY, { blur: 1 }), /blur and noise/);
  await bad(createTrainer('diffusion', TINY, { emaDecay: 1 }), /emaDecay/);
  await bad(createTrainer('diffusion', TINY, { betas: [0.9] as never }), /betas/);
  await bad(createTrainer('diffusion', TINY, { bogus: 1 } as never), /unknown trainer option 'bogus'/);
  await bad(createTrainer('encoder', { arch: 'iresnet18', width: 0.125 }, {}), /classes/);
  await bad(createTrainer('encoder', { arch: 'resnet' as never }, { classes: 3 }), /arch/);
  await bad(createTrainer('encoder', { arch: 'iresnet18', width: 0.125 }, { classes: 3, channelsLast: true }), /channelsLast/);
  await bad(createTrainer('attributes', { outputs: 0 }), /outputs/);
  const trainer = await createTrainer('diffusion', TINY);
  await bad(trainer.step({ images: await smoothImages(2, 15, 1) }), /multiples of 2/);
  await bad(trainer.step({ images: await tensor(new Float32Array(2 * 16 * 16), [2, 1, 16, 16]) }), /channels/);
  await bad(trainer.step({ images: await smoothImages(2, 16, 1) }, { lr: Infinity }), /lr/);
  await bad(trainer.step({} as Batch), /images/);
  await bad(train({ trainer, data: () => ({ images: null as never }), steps: 0 }), /steps/);
  await bad(train({ trainer, data: 5 as never, steps: 1 }), /data/);
  const enc = await createTrainer('encoder', { arch: 'iresnet18', width: 0.125, embeddingSize: 8 }, { classes: 3 });
  await bad(enc.step({ images: await smoothImages(1, 16, 1), labels: new Int32Array([0]) }), /at least 2/);
});

t.test('DDPM step time at batch 32, 64², the default config: channels_last on vs off (printed)', { skip: process.env.BIA_TRAIN_TIMING ? false : 'set BIA_TRAIN_TIMING=1 to time' }, async (t) => {
  const config = { ch: 32, chMult: [1, 2, 2, 2], numResBlocks: 1, attnResolutions: [16], resolution: 64, dropout: 0.1 };
  const images = await smoothImages(32, 64, 9);
  for (const channelsLast of [false, true, false, true]) {
    const trainer = await createTrainer('diffusion', config, { channelsLast, seed: 1 });
    await trainer.step({ images });
    const times: number[] = [];
    for (let i = 0; i < 3; i++) times.push((await trainer.step({ images })).seconds);
    t.comment(`channelsLast ${channelsLast}: ${times.map((s) => s.toFixed(3)).join(' ')} s/step (params ${trainer.info.parameterCount})`);
    trainer.dispose();
  }
  t.pass();
});

t.test('attribute estimator: create, predict shape, bad input', async (t) => {
  const m = await createAttributeEstimator({ outputs: 5, width: 8 }, { seed: 1 });
  t.same(m.config, { inChannels: 3, outputs: 5, width: 8, stages: 4 });
  const y = await m.predict(await smoothImages(2, 32, 1));
  t.same(y.shape, [2, 5]);
  await t.rejects(m.predict(await smoothImages(2, 8, 1)), { code: 'BIA_INVALID_ARGUMENT', message: /at least 16/ });
});

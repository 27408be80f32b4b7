// Low-rank adapters (Trainer adapterRank, saveAdapter, mergeAdapter) and the trainer's gradients checked
// against finite differences of its own loss, for the weights and for the adapters.
import t, { type Test } from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createDiffusion, createIdentityEncoder, randn, readCheckpoint, saveSafetensors, tensor, type DiffusionModel, type Tensor } from '../ts/index';
import { createTrainer, mergeAdapter, type Batch, type Trainer } from '../ts/train/trainer';
import { DECODER_PREFIXES } from '../ts/unlearn/unlearn';

const TINY = { ch: 32, chMult: [1, 2], numResBlocks: 1, attnResolutions: [8], resolution: 16, dropout: 0 };

let dir: string;
let base: DiffusionModel;
let batch: Batch;

t.before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'bia-adapters-'));
  base = await createDiffusion(TINY, { seed: 5 });
  batch = { images: await randn([3, 3, 16, 16], { seed: 1 }), labels: Int32Array.from([30, 400, 880]), targets: await randn([3, 3, 16, 16], { seed: 2 }) };
});
t.teardown(() => {
  base.dispose();
  rmSync(dir, { recursive: true, force: true });
});

async function values(x: Tensor): Promise<Float64Array> {
  return Float64Array.from(await x.data());
}

/** The trainer's loss with every learning tensor moved by ±step·d (d: name → direction), through a checkpoint. */
async function lossAlong(trainer: Trainer<'diffusion'>, fresh: () => Promise<Trainer<'diffusion'>>, d: Map<string, Float64Array>, step: number, on: Batch = batch): Promise<number> {
  const file = join(dir, `ck-${Math.random().toString(36).slice(2)}.safetensors`);
  await trainer.save(file);
  const ck = await readCheckpoint(file);
  for (const [name, dir_] of d) {
    const w = ck.tensors.get(name);
    if (!w) throw new Error(`no ${name} in the checkpoint`);
    const v = await w.data();
    const moved = new Float32Array(v.length);
    for (let i = 0; i < v.length; i++) moved[i] = v[i] + step * dir_[i];
    ck.tensors.set(name, await tensor(moved, w.shape));
    w.dispose();
  }
  const moved = join(dir, `moved-${Math.random().toString(36).slice(2)}.safetensors`);
  await saveSafetensors(moved, ck.tensors, { metadata: ck.metadata });
  ck.tensors.forEach((v) => v.dispose());
  const other = await fresh();
  try {
    await other.load(moved);
    return (await other.evaluate(on)).loss;
  } finally {
    other.dispose();
  }
}

/** Central differences of the loss along d against the gradient's dot product with d. */
async function checkDirection(t: Test, trainer: Trainer<'diffusion'>, fresh: () => Promise<Trainer<'diffusion'>>, g: Map<string, Tensor>, d: Map<string, Float64Array>, what: string, on: Batch = batch): Promise<void> {
  let dot = 0;
  for (const [name, v] of d) {
    const gv = await g.get(name)!.data();
    for (let i = 0; i < v.length; i++) dot += gv[i] * v[i];
  }
  const eps = 1e-2;
  const fd = ((await lossAlong(trainer, fresh, d, eps, on)) - (await lossAlong(trainer, fresh, d, -eps, on))) / (2 * eps);
  // float32 losses: about 1e-6 of noise each, so 2e-5 absolute on the quotient besides 2 % relative
  t.ok(Math.abs(fd - dot) <= 0.02 * Math.abs(dot) + 2e-5, `${what}: finite difference ${fd.toExponential(4)} ≈ gradient·d ${dot.toExponential(4)}`);
}

/** The unit direction of the gradient over all tensors, and a random direction in one tensor. */
async function directions(g: Map<string, Tensor>, one: string, seed: number): Promise<{ along: Map<string, Float64Array>; random: Map<string, Float64Array> }> {
  const along = new Map<string, Float64Array>();
  let norm = 0;
  for (const [name, v] of g) {
    const a = await values(v);
    along.set(name, a);
    for (const x of a) norm += x * x;
  }
  norm = Math.sqrt(norm);
  for (const a of along.values()) for (let i = 0; i < a.length; i++) a[i] /= norm;
  const r = await randn(g.get(one)!.shape, { seed });
  const rv = await values(r);
  r.dispose();
  const rn = Math.sqrt(rv.reduce((s, x) => s + x * x, 0));
  return { along, random: new Map([[one, rv.map((x) => x / rn)]]) };
}

t.test('gradients of the distillation loss match finite differences (decoder weights)', async (t) => {
  const make = () => createTrainer('diffusion', base, { seed: 3, trainable: DECODER_PREFIXES });
  const trainer = await make();
  t.teardown(() => trainer.dispose());
  const g = await trainer.gradients(batch);
  t.ok([...g.keys()].every((k) => DECODER_PREFIXES.some((p) => k.startsWith(p))), 'gradients only for the decoder');
  const { along, random } = await directions(g, 'conv_out.weight', 7);
  await checkDirection(t, trainer, make, g, along, 'along the gradient');
  await checkDirection(t, trainer, make, g, random, 'a random direction in conv_out.weight');
  g.forEach((v) => v.dispose());
});

t.test('the identity terms on x̂0: their values from forward() and the encoder, their gradients, the frozen encoder, bad batches', async (t) => {
  const encoder = await createIdentityEncoder('iresnet18', { width: 0.125, embeddingSize: 32, seed: 2 });
  t.teardown(() => encoder.dispose());
  // rows 0 and 2 carry an embedding to move away from, row 1 none
  const r = await values(await randn([3, 32], { seed: 9 }));
  r.fill(0, 32, 64);
  const embeddings = await tensor(Float32Array.from(r), [3, 32]);
  const make = () => createTrainer('diffusion', base, { seed: 3, trainable: DECODER_PREFIXES });
  const trainer = await make();
  t.teardown(() => trainer.dispose());

  // the value: x̂0 = (x − √(1−ᾱ_t)·ε)/√ᾱ_t from the model's own ε and the linear schedule (β 1e-4 … 0.02, 1000 steps)
  const abar: number[] = [];
  let prod = 1;
  for (let i = 0; i < 1000; i++) abar.push((prod *= 1 - (1e-4 + ((0.02 - 1e-4) * i) / 999)));
  const labels = batch.labels as Int32Array;
  const f = await base.forward(batch.images, Array.from(labels));
  const [x, eps] = [await values(batch.images), await values(f.eps)];
  const per = x.length / 3;
  const target = await values(batch.targets as Tensor);
  // x̂0 of rows 0 and 2 from the model's ε, then row 1 from the model's ε and from the target ε
  const x0 = new Float32Array(4 * per);
  [[0, eps], [2, eps], [1, eps], [1, target]].forEach(([row, e], k) => {
    const a = abar[labels[row as number]];
    for (let i = 0; i < per; i++) x0[k * per + i] = (x[(row as number) * per + i] - Math.sqrt(1 - a) * (e as Float64Array)[(row as number) * per + i]) / Math.sqrt(a);
  });
  const e = await values(await encoder.embed(await tensor(x0, [4, 3, 16, 16]), { protocol: 'resize' }));
  const cosine = (k: number, v: ArrayLike<number>) => {
    let [dot, nr, ne] = [0, 0, 0];
    for (let i = 0; i < 32; i++) [dot, nr, ne] = [dot + e[k * 32 + i] * v[i], nr + v[i] ** 2, ne + e[k * 32 + i] ** 2];
    return dot / Math.sqrt(nr * ne);
  };
  const cos = [0, 2].map((row, k) => cosine(k, r.subarray(row * 32, row * 32 + 32)));
  const hinge = cos.reduce((s, c) => s + Math.max(0, c + 0.5), 0) / 2;
  // row 1 keeps a person: the direction E(x̂0 of the target) − E(x̂0), so that the target's is the more alike
  const keepRows = new Float32Array(3 * 32);
  for (let i = 0; i < 32; i++) keepRows[32 + i] = e[3 * 32 + i] - e[2 * 32 + i];
  const keep = await tensor(keepRows, [3, 32]);
  const keepValue = cosine(3, keepRows.subarray(32, 64)) - cosine(2, keepRows.subarray(32, 64));
  const on: Batch = { ...batch, identity: { encoder, embeddings, keep, weight: 2, keepWeight: 3, margin: -0.5, protocol: 'resize' } };
  const plain = await trainer.evaluate(batch);
  const withId = await trainer.evaluate(on);
  t.ok(hinge > 0, `the hinge is active (cosines ${cos.map((c) => c.toFixed(3))})`);
  t.ok(Math.abs(withId.parts.identity - hinge) < 1e-4, `parts.identity ${withId.parts.identity} = the hinge from forward() and embed() ${hinge}`);
  t.ok(Math.abs(withId.parts.identitySimilarity - (cos[0] + cos[1]) / 2) < 1e-4, 'parts.identitySimilarity: the mean cosine');
  t.ok(keepValue > 0 && Math.abs(withId.parts.identityKeep - keepValue) < 1e-4, `parts.identityKeep ${withId.parts.identityKeep} = cos(target's x̂0) − cos(x̂0) ${keepValue}`);
  t.ok(Math.abs(withId.loss - (plain.loss + 2 * hinge + 3 * keepValue)) < 1e-4, `loss = mse + weight · hinge + keepWeight · keep (${withId.loss} vs ${plain.loss} + 2·${hinge} + 3·${keepValue})`);
  // a margin above every cosine: no cost of moving away; a keep row the model already matches better than the target: none either
  const off = await trainer.evaluate({ ...batch, identity: { encoder, embeddings, weight: 2, margin: Math.max(...cos) + 0.01 } });
  t.ok(Math.abs(off.loss - plain.loss) < 1e-6, 'a margin above the cosines adds nothing');
  const negated = await tensor(keepRows.map((v) => -v), [3, 32]);
  const better = await trainer.evaluate({ ...batch, identity: { encoder, keep: negated } });
  t.ok(Math.abs(better.loss - plain.loss) < 1e-6, 'a person the model is already more like than the target adds nothing');

  // the gradient of mse + hinge matches finite differences
  const g = await trainer.gradients(on);
  const { along, random } = await directions(g, 'conv_out.weight', 8);
  await checkDirection(t, trainer, make, g, along, 'identity term, along the gradient', on);
  await checkDirection(t, trainer, make, g, random, 'identity term, a random direction in conv_out.weight', on);
  g.forEach((v) => v.dispose());

  // steps on it: the encoder is left as it was, and the hinge falls
  const probe = await randn([1, 3, 16, 16], { seed: 4 });
  const before = await values(await encoder.embed(probe, { protocol: 'resize' }));
  for (let i = 0; i < 5; i++) await trainer.step(on, { lr: 1e-3 });
  const after = await values(await encoder.embed(probe, { protocol: 'resize' }));
  t.same(Array.from(after), Array.from(before), 'the encoder is unchanged');
  t.ok((await trainer.evaluate(on)).parts.identity < withId.parts.identity, 'five steps lower the hinge');

  // bad batches
  const wrong = await randn([3, 16], { seed: 1 });
  await t.rejects(trainer.step({ ...batch, identity: { encoder, embeddings: wrong } }), { code: 'BIA_INVALID_ARGUMENT', message: /\[3, 32\] tensor/ });
  await t.rejects(trainer.step({ images: batch.images, identity: { encoder, embeddings } }), { code: 'BIA_INVALID_ARGUMENT', message: /needs a distillation batch/ });
  await t.rejects(trainer.step({ ...batch, identity: { encoder, embeddings, margin: 1 } }), { code: 'BIA_INVALID_ARGUMENT', message: /margin/ });
  await t.rejects(trainer.step({ ...batch, identity: { encoder: {} as never, embeddings } }), { code: 'BIA_INVALID_ARGUMENT', message: /batch.identity must be/ });
  await t.rejects(trainer.step({ ...batch, identity: { encoder } }), { code: 'BIA_INVALID_ARGUMENT', message: /at least one/ });
  const nan = await tensor(new Float32Array(96).fill(NaN), [3, 32]);
  await t.rejects(trainer.step({ ...batch, identity: { encoder, embeddings: nan } }), { code: 'BIA_INVALID_ARGUMENT', message: /identity.embeddings holds NaN/ });
  nan.dispose();
  await t.rejects(trainer.step({ ...batch, identity: { encoder, keep: wrong } }), { code: 'BIA_INVALID_ARGUMENT', message: /identity.keep must be/ });
  for (const v of [embeddings, keep, negated, f.eps, f.h, probe, wrong]) v.dispose();
});

t.test('adapters: the base stays, only the adapters learn; gradients match finite differences', async (t) => {
  const make = () => createTrainer('diffusion', base, { seed: 3, trainable: DECODER_PREFIXES, adapterRank: 4, lr: 1e-2 });
  const trainer = await make();
  t.teardown(() => trainer.dispose());
  const info = trainer.info as unknown as { adapterParameterCount: number };
  t.ok(info.adapterParameterCount > 0, `${info.adapterParameterCount} adapter parameters`);
  // a new adapter changes nothing: up starts at zero
  const m0 = await trainer.model();
  const f0 = await m0.forward(batch.images, 400);
  const fb = await base.forward(batch.images, 400);
  const fbv = await values(fb.eps);
  const gap = (await values(f0.eps)).reduce((m, v, i, a) => Math.max(m, Math.abs(v - fbv[i])), 0);
  t.ok(gap < 1e-5, `a new adapter leaves the network as it was (max |Δε| ${gap.toExponential(2)})`);
  for (let i = 0; i < 3; i++) await trainer.step(batch);
  const snap = await trainer.snapshot();
  const baseState = new Map(base.native.stateDict().map(([k]) => [k, true]));
  let sameBase = true;
  const baseTensors = await (async () => {
    const file = join(dir, 'base.safetensors');
    await base.save(file);
    return (await readCheckpoint(file)).tensors;
  })();
  for (const [k, v] of baseTensors) {
    if (!baseState.has(k)) continue;
    const a = await snap.get(k)!.data();
    const b = await v.data();
    if (a.length !== b.length || a.some((x, i) => x !== b[i])) sameBase = false;
  }
  t.ok(sameBase, 'the network weights in the trainer are the base weights');
  t.ok([...snap.keys()].some((k) => k.startsWith('lora.') && k.endsWith('.lora_up.weight')), 'the checkpoint holds the adapters');
  // the adapters' gradients (up is no longer zero after three steps, so down has a gradient too)
  const g = await trainer.gradients(batch);
  t.ok([...g.keys()].every((k) => k.startsWith('lora.')), 'gradients only for the adapters');
  const down = [...g.keys()].find((k) => k.startsWith('lora.up.') && k.endsWith('.lora_down.weight'))!;
  const { along, random } = await directions(g, down, 8);
  await checkDirection(t, trainer, make, g, along, 'adapters, along the gradient');
  await checkDirection(t, trainer, make, g, random, `a random direction in ${down}`);
  [f0.eps, f0.h, fb.eps, fb.h].forEach((v) => v.dispose());
  m0.dispose();
  g.forEach((v) => v.dispose());
  snap.forEach((v) => v.dispose());
  baseTensors.forEach((v) => v.dispose());
});

t.test('saveAdapter → mergeAdapter gives the trained model; bad patches are refused', async (t) => {
  const trainer = await createTrainer('diffusion', base, { seed: 4, trainable: DECODER_PREFIXES, adapterRank: 2, lr: 1e-2 });
  t.teardown(() => trainer.dispose());
  for (let i = 0; i < 4; i++) await trainer.step(batch);
  const patch = join(dir, 'patch.safetensors');
  const layers = await trainer.saveAdapter(patch, { metadata: { note: 'test' } });
  const ck = await readCheckpoint(patch);
  t.equal(ck.tensors.size, 2 * layers, 'down and up per adapted layer');
  t.match(JSON.parse(ck.metadata['bia.lora']), { rank: 2, alpha: 2 });
  t.equal(ck.metadata.note, 'test');
  const trained = await trainer.model();
  const merged = await mergeAdapter(base, patch);
  const [a, b, c] = [await trained.forward(batch.images, 300), await merged.forward(batch.images, 300), await base.forward(batch.images, 300)];
  const [va, vb, vc] = [await values(a.eps), await values(b.eps), await values(c.eps)];
  const maxDiff = (x: Float64Array, y: Float64Array) => x.reduce((m, v, i) => Math.max(m, Math.abs(v - y[i])), 0);
  t.ok(maxDiff(va, vb) < 1e-5, `merged patch = the trainer's merged model (max |Δε| ${maxDiff(va, vb).toExponential(2)})`);
  t.ok(maxDiff(va, vc) > 1e-3, `and differs from the base (max |Δε| ${maxDiff(va, vc).toExponential(2)})`);
  // a patch whose layer the model lacks, one that does not fit, and a file that is no patch
  const renamed = new Map([...ck.tensors].map(([k, v]) => [k.replace(/^up\./, 'upx.'), v]));
  await saveSafetensors(join(dir, 'renamed.safetensors'), renamed, { metadata: ck.metadata });
  await t.rejects(mergeAdapter(base, join(dir, 'renamed.safetensors')), { code: 'BIA_CHECKPOINT_MISMATCH', message: /has no weight 'upx\./ });
  const other = await createDiffusion({ ...TINY, ch: 64 }, { seed: 1 });
  await t.rejects(mergeAdapter(other, patch), { code: 'BIA_CHECKPOINT_MISMATCH', message: /does not fit its weight/ });
  other.dispose();
  const model = join(dir, 'model.safetensors');
  await base.save(model);
  await t.rejects(mergeAdapter(base, model), { code: 'BIA_CHECKPOINT_ERROR', message: /not an adapter patch/ });
  await t.rejects(createTrainer('diffusion', base, { adapterRank: 2, emaDecay: 0.9 }), { code: 'BIA_INVALID_ARGUMENT', message: /emaDecay is not available with adapters/ });
  await t.rejects(createTrainer('diffusion', base, { adapterRank: 2, trainable: ['nothing.'] }), { code: 'BIA_INVALID_ARGUMENT', message: /no convolution or linear weight matches/ });
  const plain = await createTrainer('diffusion', base, { seed: 1 });
  await t.rejects(plain.saveAdapter(join(dir, 'x.safetensors')), { code: 'BIA_INVALID_ARGUMENT', message: /no adapters/ });
  plain.dispose();
  for (const v of [a, b, c]) [v.eps, v.h].forEach((x) => x.dispose());
  trained.dispose();
  merged.dispose();
  ck.tensors.forEach((v) => v.dispose());
});

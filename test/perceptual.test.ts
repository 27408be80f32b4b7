// The VGG16 perceptual distance: torchvision's checkpoint layouts, parity with the independent Python
// reference (test/fixtures/perceptual/make_perceptual.py), its properties, its gradient, imageLosses
// with a perceptual model, and the errors.
import path from 'node:path';
import t from 'tap';
import {
  createPerceptual,
  imageLosses,
  linearCombination,
  loadPerceptual,
  PERCEPTUAL_SUBSTITUTE,
  PerceptualModel,
  randn,
  readCheckpoint,
  saveSafetensors,
  tensor,
  VGG16_PERCEPTUAL,
  zeros,
  type Tensor,
} from '../ts/index';
import { relErr, ROOT } from './helpers';

const DIR = path.join(ROOT, 'test', 'fixtures', 'perceptual');
const USED = [0, 2, 5, 7, 10, 12, 14];

let expected: Map<string, Tensor>;
let a: Tensor;
let b: Tensor;
let model: PerceptualModel;

t.before(async () => {
  expected = (await readCheckpoint(path.join(DIR, 'expected.safetensors'))).tensors;
  a = expected.get('a')!;
  b = expected.get('b')!;
  model = await loadPerceptual(path.join(DIR, 'vgg16-views.pth'));
});

function maxRel(x: ArrayLike<number>, y: ArrayLike<number>): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < y.length; i++) {
    num = Math.max(num, Math.abs(x[i] - y[i]));
    den = Math.max(den, Math.abs(y[i]));
  }
  return num / den;
}

t.test('a whole torchvision vgg16 file (torch zip) loads: names, sizes, frozen features up to relu3_3', async (t) => {
  t.equal(model.name, VGG16_PERCEPTUAL);
  t.equal(model.name, 'vgg16 relu1_2/relu2_2/relu3_3 mean L1');
  t.equal(model.parameterCount, 1_735_488, 'vgg16 features.0–14: 1,735,488 parameters');
  t.equal(model.dtype, 'float32');
  t.equal(model.device, 'cpu');
  const sd = model.stateDict();
  t.same([...sd.keys()], USED.flatMap((i) => [`features.${i}.weight`, `features.${i}.bias`]));
  t.same(sd.get('features.14.weight')!.shape, [256, 256, 3, 3]);
  t.same(sd.get('features.5.weight')!.shape, [128, 64, 3, 3]);
  // The file stores features.7.weight as a strided view: base[11·o + 7·i + 3·kh + kw].
  const file = (await readCheckpoint(path.join(DIR, 'vgg16-views.pth'))).tensors;
  t.equal(file.size, 32, 'the file has all 26 features.* and 6 classifier.* tensors');
  t.same(file.get('classifier.0.weight')!.shape, [4096, 25088]);
  const w = await sd.get('features.7.weight')!.data();
  t.equal(w[1 * 128 * 9 + 2 * 9 + 1 * 3 + 2], w[0 * 128 * 9 + 4 * 9 + 0 * 3 + 2], 'w[1,2,1,2] = base[11+14+3+2] = base[28+2] = w[0,4,0,2]');
  t.not(w[1 * 128 * 9 + 2 * 9 + 1 * 3 + 2], w[1 * 128 * 9 + 2 * 9 + 1 * 3 + 1]);
});

t.test('parity with the Python reference: distances, features (float32, rel. error < 1e-5)', async (t) => {
  const d = await model.distance(a, b);
  const want = (await expected.get('distance')!.data()) as Float64Array;
  t.equal(d.length, 3);
  for (let i = 0; i < 2; i++) {
    const r = Math.abs(d[i] - want[i]) / want[i];
    t.ok(r < 1e-5, `distance[${i}] ${d[i]} vs ${want[i]} (rel ${r.toExponential(2)})`);
  }
  t.ok(want[0] > 0.1 && want[1] > want[0], 'the reference distances are not degenerate');
  t.equal(d[2], 0, 'identical images: distance 0');
  const f = await model.features(expected.get('x16')!);
  const names = ['relu1_2', 'relu2_2', 'relu3_3'];
  const shapes = [[1, 64, 16, 16], [1, 128, 8, 8], [1, 256, 4, 4]];
  for (let l = 0; l < 3; l++) {
    t.same(f[l].shape, shapes[l], `${names[l]} shape`);
    const r = await relErr(f[l], expected.get(names[l])!);
    t.ok(r < 1e-5, `${names[l]}: rel. error ${r.toExponential(2)}`);
  }
  const zerosShare = Array.from(await f[2].data()).filter((v) => v === 0).length / f[2].numel;
  t.ok(zerosShare > 0.05 && zerosShare < 0.95, `relu3_3 is a ReLU output with both zeros and positives (${zerosShare.toFixed(2)} zeros)`);
});

t.test('the gradient matches the reference autograd and a finite difference', async (t) => {
  const { distance, gradient } = await model.gradient(a, b);
  t.same(gradient.shape, a.shape);
  t.equal(gradient.dtype, 'float32');
  t.same(Array.from(distance), Array.from(await model.distance(a, b)), 'same distances as distance()');
  const g = await gradient.data();
  const want = await expected.get('gradA')!.data();
  const r = maxRel(g, want);
  t.ok(r < 1e-5, `∂Σd/∂a vs the Python autograd: rel. error ${r.toExponential(2)}`);
  let zeroRow = 0;
  for (let i = 2 * 3072; i < 3 * 3072; i++) zeroRow = Math.max(zeroRow, Math.abs(g[i]));
  t.ok(zeroRow < 1e-6, `at a = b the L1 subgradient is 0 (max ${zeroRow})`);
  // Central finite differences on single pixels. The distance is only piecewise smooth (ReLU, max
  // pooling, |·|) and computed in float32, so h is small but not tiny, and the bound is 1%.
  const data = (await a.data()) as Float32Array;
  let top = 0;
  for (let i = 0; i < 3072; i++) if (Math.abs(g[i]) > Math.abs(g[top])) top = i;
  const h = 3e-3;
  for (const k of [top, 100, 2000, 3072 + 777]) {
    const [up, down] = [data.slice(), data.slice()];
    up[k] += h;
    down[k] -= h;
    const [du, dd] = [await model.distance(await tensor(up, a.shape), b), await model.distance(await tensor(down, a.shape), b)];
    const fd = (du[0] + du[1] + du[2] - dd[0] - dd[1] - dd[2]) / (2 * h);
    t.ok(Math.abs(fd - g[k]) < 0.01 * Math.abs(g[k]) && Math.abs(g[k]) > 1e-3, `pixel ${k}: finite difference ${fd.toExponential(4)} vs gradient ${g[k].toExponential(4)}`);
  }
  // Inference tensors from earlier jobs (here: a float64 linear combination) get gradients too.
  const codes = await tensor((await a.data()) as Float32Array, [1, ...a.shape]);
  const a64 = await linearCombination(codes, new Float64Array([1]));
  t.equal(a64.dtype, 'float64');
  const g64 = await model.gradient(a64, b);
  t.equal(g64.gradient.dtype, 'float64', 'the gradient has the input dtype');
  t.ok(maxRel(await g64.gradient.data(), want) < 1e-5);
});

t.test('the other layouts load to the same weights: legacy features-only, safetensors, loadStateDict', async (t) => {
  const want = await model.distance(a, b);
  const legacy = await loadPerceptual(path.join(DIR, 'vgg16-features-legacy.pth'));
  t.same(Array.from(await legacy.distance(a, b)), Array.from(want), 'legacy torch.save of vgg16().features.state_dict() ("0.weight", …)');
  const dir = t.testdir({});
  const saved = path.join(dir, 'vgg.safetensors');
  await model.save(saved);
  const meta = await readCheckpoint(saved);
  t.equal(meta.format, 'safetensors');
  t.equal(meta.metadata.arch, 'vgg16-features-relu3_3');
  t.same(Array.from(await (await loadPerceptual(saved)).distance(a, b)), Array.from(want), 'save() → loadPerceptual()');
  const bare = new Map([...model.stateDict()].map(([k, v]) => [k.replace(/^features\./, ''), v]));
  const bareFile = path.join(dir, 'bare.safetensors');
  await saveSafetensors(bareFile, bare);
  t.same(Array.from(await (await loadPerceptual(bareFile)).distance(a, b)), Array.from(want), 'features-only keys in safetensors');
  const fresh = await createPerceptual({ seed: 3 });
  t.notSame(Array.from(await fresh.distance(a, b)), Array.from(want));
  await fresh.loadStateDict((await readCheckpoint(path.join(DIR, 'vgg16-views.pth'))).tensors);
  t.same(Array.from(await fresh.distance(a, b)), Array.from(want), 'loadStateDict takes a whole torchvision state dict too');
  const half = await loadPerceptual(path.join(DIR, 'vgg16-views.pth'), { dtype: 'bfloat16' });
  t.equal(half.dtype, 'bfloat16');
  const dh = await half.distance(a, b);
  t.ok(Math.abs(dh[0] - want[0]) < 0.05 * want[0], `bfloat16 weights: ${dh[0]} vs ${want[0]}`);
});

t.test('properties on random weights: zero on equal images, symmetry, broadcast, seeds', async (t) => {
  const net = await createPerceptual({ seed: 7 });
  const x = await randn([2, 3, 24, 20], { seed: 1 });
  const y = await randn([2, 3, 24, 20], { seed: 2 });
  t.same(Array.from(await net.distance(x, x)), [0, 0], 'd(x, x) = 0');
  const dxy = await net.distance(x, y);
  const dyx = await net.distance(y, x);
  t.ok(dxy[0] > 0 && dxy[1] > 0);
  t.ok(maxRel(dxy, dyx) < 1e-6, `symmetric: ${Array.from(dxy)} vs ${Array.from(dyx)}`);
  const y0 = await tensor(((await y.data()) as Float32Array).slice(0, 3 * 24 * 20), [1, 3, 24, 20]);
  const y00 = await tensor(new Float32Array([...((await y0.data()) as Float32Array), ...((await y0.data()) as Float32Array)]), [2, 3, 24, 20]);
  t.ok(maxRel(await net.distance(x, y0), await net.distance(x, y00)) < 1e-6, 'b with batch 1 is broadcast');
  t.ok(maxRel(await net.distance(y0, x), await net.distance(y00, x)) < 1e-6, 'a with batch 1 is broadcast');
  const same = await createPerceptual({ seed: 7 });
  t.same(Array.from(await same.distance(x, y)), Array.from(dxy), 'same seed, same weights');
  const w = await net.stateDict().get('features.0.bias')!.data();
  t.same(Array.from(w), new Array(64).fill(0), "torchvision's init: zero biases");
  t.equal(net.parameterCount, 1_735_488);
});

t.test('imageLosses with a perceptual model', async (t) => {
  const plain = await imageLosses(a, b);
  t.equal(plain.perceptualName, PERCEPTUAL_SUBSTITUTE);
  const withVgg = await imageLosses(a, b, { perceptual: model });
  t.equal(withVgg.perceptualName, VGG16_PERCEPTUAL);
  t.same(Array.from(withVgg.perceptual), Array.from(await model.distance(a, b)), 'perceptual is the VGG distance');
  t.notSame(Array.from(withVgg.perceptual), Array.from(plain.perceptual));
  for (const k of ['mse', 'ssim', 'gradL1'] as const) t.same(Array.from(withVgg[k]), Array.from(plain[k]), `${k} unchanged`);
  await t.rejects(imageLosses(await zeros([1, 1, 16, 16]), await zeros([1, 1, 16, 16]), { perceptual: model }), { code: 'BIA_INVALID_ARGUMENT', message: /RGB/ });
  await t.rejects(imageLosses(a, b, { perceptual: {} as PerceptualModel }), { code: 'BIA_INVALID_ARGUMENT', message: /PerceptualModel/ });
});

t.test('files that are not plain VGG16 weights', async (t) => {
  await t.rejects(loadPerceptual(path.join(DIR, 'vgg16_bn-views.pth')), { code: 'BIA_CHECKPOINT_MISMATCH', message: /batch normalisation.*vgg16_bn/ });
  const dir = t.testdir({});
  const sd = model.stateDict();
  const write = async (name: string, entries: Map<string, Tensor>) => {
    const file = path.join(dir, name);
    await saveSafetensors(file, entries);
    return file;
  };
  const missing = new Map(sd);
  missing.delete('features.12.bias');
  await t.rejects(loadPerceptual(await write('missing.safetensors', missing)), { code: 'BIA_CHECKPOINT_MISMATCH', message: /missing: features\.12\.bias/ });
  const wrong = new Map(sd);
  wrong.set('features.5.weight', await zeros([128, 32, 3, 3]));
  await t.rejects(loadPerceptual(await write('wrong.safetensors', wrong)), { code: 'BIA_CHECKPOINT_MISMATCH', message: /wrong shape: features\.5\.weight/ });
  const vgg19 = new Map(sd);
  vgg19.set('features.16.weight', await zeros([256, 256, 3, 3]));
  await t.rejects(loadPerceptual(await write('vgg19.safetensors', vgg19)), { code: 'BIA_CHECKPOINT_MISMATCH', message: /features\.16\.weight where vgg16 has no convolution/ });
  await t.rejects(loadPerceptual(await write('other.safetensors', new Map([['conv_in.weight', await zeros([4, 3, 3, 3])]]))), {
    code: 'BIA_CHECKPOINT_MISMATCH',
    message: /not a VGG16 checkpoint.*conv_in\.weight/,
  });
  await t.rejects(model.loadStateDict(missing), { code: 'BIA_CHECKPOINT_MISMATCH', message: /features\.12\.bias/ });
  const partial = await createPerceptual({ seed: 1 });
  await partial.loadStateDict(missing, { strict: false });
  t.same(Array.from(await partial.stateDict().get('features.12.weight')!.data()).slice(0, 5), Array.from(await sd.get('features.12.weight')!.data()).slice(0, 5), 'strict: false loads what is there');
  await t.rejects(loadPerceptual(path.join(dir, 'absent.pth')), { code: 'BIA_IO_ERROR' });
});

t.test('bad arguments', async (t) => {
  const x = await zeros([2, 3, 16, 16]);
  await t.rejects(model.distance(x, await zeros([2, 1, 16, 16])), { code: 'BIA_INVALID_ARGUMENT', message: /RGB/ });
  await t.rejects(model.distance(x, await zeros([2, 3, 16, 8])), { code: 'BIA_INVALID_ARGUMENT', message: /same size/ });
  await t.rejects(model.distance(x, await zeros([3, 3, 16, 16])), { code: 'BIA_INVALID_ARGUMENT', message: /equal batches/ });
  await t.rejects(model.distance(await zeros([1, 3, 3, 3]), await zeros([1, 3, 3, 3])), { code: 'BIA_INVALID_ARGUMENT', message: /4x4/ });
  await t.rejects(model.distance(await zeros([1, 3, 8, 8], { dtype: 'int32' }), await zeros([1, 3, 8, 8], { dtype: 'int32' })), { code: 'BIA_INVALID_ARGUMENT', message: /floating-point/ });
  await t.rejects(model.distance(x, 'b' as never), { code: 'BIA_INVALID_ARGUMENT' });
  await t.rejects(createPerceptual({ dtype: 'float64' as never }), { code: 'BIA_INVALID_ARGUMENT' });
  await t.rejects(createPerceptual({ device: 'gpu' as never }), { code: 'BIA_INVALID_ARGUMENT' });
  await t.rejects(createPerceptual({ seed: -1 }), { code: 'BIA_INVALID_ARGUMENT' });
  await t.rejects(loadPerceptual(''), { code: 'BIA_INVALID_ARGUMENT' });
  const ac = new AbortController();
  ac.abort();
  await t.rejects(model.distance(x, x, { signal: ac.signal }), { code: 'BIA_ABORTED' });
  const gone = await createPerceptual();
  gone.dispose();
  gone.dispose();
  t.equal(gone.disposed, true);
  await t.rejects(async () => gone.distance(x, x), { code: 'BIA_DISPOSED' });
  t.throws(() => gone.name, { code: 'BIA_DISPOSED' });
});

// Identity encoders: official architectures and names, parity with the independent Python
// reference (bench/reference/arcface.py) on tiny-width random weights, input protocols,
// similarity, checkpoint inference and errors.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import {
  createDiffusion,
  createIdentityEncoder,
  loadIdentityEncoder,
  randn,
  readCheckpoint,
  similarity,
  tensor,
  zeros,
  type IdentityArch,
  type Tensor,
} from '../ts/index';
import { relErr, ROOT } from './helpers';

const DIR = path.join(ROOT, 'test', 'fixtures', 'identity');
const facts = JSON.parse(readFileSync(path.join(DIR, 'expected.json'), 'utf8'));


t.test('official architectures: entry counts, names, sizes', async (t) => {
  const want: Record<string, [number, number]> = {
    ir_se50: [397, 43_824_118],
    iresnet18: [187, 24_040_351],
    iresnet100: [925, 65_225_946],
  };
  for (const [arch, [entries, values]] of Object.entries(want)) {
    const e = await createIdentityEncoder(arch as IdentityArch);
    const sd = e.stateDict();
    t.equal(sd.size, entries, `${arch}: ${entries} state-dict entries`);
    let n = 0;
    for (const v of sd.values()) n += v.numel;
    t.equal(n, values, `${arch}: ${values} values`);
    if (arch === 'ir_se50') {
      t.same([...sd.keys()].filter((k) => k.endsWith('shortcut_layer.0.weight')), ['body.3.shortcut_layer.0.weight', 'body.7.shortcut_layer.0.weight', 'body.21.shortcut_layer.0.weight']);
      t.same(sd.get('output_layer.3.weight')?.shape, [512, 25088]);
      t.same(sd.get('body.0.res_layer.5.fc1.weight')?.shape, [4, 64, 1, 1]);
    }
    if (arch === 'iresnet100') t.same(sd.get('layer3.29.conv2.weight')?.shape, [256, 256, 3, 3]);
    e.dispose();
  }
});

t.test('parity with the Python reference (tiny width, float32, rel. error < 1e-5)', async (t) => {
  const E = (await readCheckpoint(path.join(DIR, 'expected.safetensors'))).tensors;
  const x112 = await E.get('x112')!.to({ dtype: 'float32' });
  const x256 = await E.get('x256')!.to({ dtype: 'float32' });
  for (const arch of Object.keys(facts.nets) as IdentityArch[]) {
    const e = await loadIdentityEncoder(path.join(DIR, `${arch}-tiny.safetensors`));
    t.equal(e.arch, arch, 'architecture read from the keys');
    t.equal(e.width, facts.width, 'width read from the shapes');
    t.equal(e.embeddingSize, facts.embeddingSize);
    const raw = await e.embed(x112, { protocol: 'insightface', normalize: false });
    const r1 = await relErr(raw, E.get(`${arch}.raw112`)!);
    t.ok(r1 < 1e-5, `${arch} raw embedding: ${r1.toExponential(2)}`);
    const bia = await e.embed(x256); // default protocol 'bia', normalised
    const r2 = await relErr(bia, E.get(`${arch}.bia256`)!);
    t.ok(r2 < 1e-5, `${arch} BIA protocol, normalised: ${r2.toExponential(2)}`);
    const norms = await bia.data();
    let s = 0;
    for (let i = 0; i < facts.embeddingSize; i++) s += norms[i] ** 2;
    t.ok(Math.abs(s - 1) < 1e-5, 'unit length');
    e.dispose();
  }
});

t.test('BN uses running statistics: a batch of one equals the same image in a batch', async (t) => {
  const e = await loadIdentityEncoder(path.join(DIR, 'iresnet18-tiny.safetensors'));
  const x = await randn([4, 3, 112, 112], { seed: 3 });
  const all = await (await e.embed(x, { protocol: 'insightface' })).data();
  const one = await (await e.embed(await tensor((await x.data()).slice(0, 3 * 112 * 112) as Float32Array, [1, 3, 112, 112]), { protocol: 'insightface' })).data();
  let d = 0;
  for (let i = 0; i < one.length; i++) d = Math.max(d, Math.abs(one[i] - all[i]));
  t.ok(d < 1e-5, `max diff ${d}`);
});

t.test('protocols', async (t) => {
  const e = await createIdentityEncoder('iresnet18', { width: 0.125, embeddingSize: 16 });
  const big = await randn([1, 3, 256, 256], { seed: 1 });
  t.same((await e.embed(big)).shape, [1, 16]);
  t.same((await e.embed(big, { protocol: 'resize' })).shape, [1, 16]);
  t.same((await e.embed(await randn([2, 3, 64, 64], { seed: 2 }), { protocol: 'resize' })).shape, [2, 16], 'resize also upsamples');
  await t.rejects(e.embed(await randn([1, 3, 128, 128], { seed: 1 })), { code: 'BIA_INVALID_ARGUMENT', message: /'bia' protocol takes 256x256/ });
  await t.rejects(e.embed(big, { protocol: 'insightface' }), { code: 'BIA_INVALID_ARGUMENT', message: /112x112/ });
  await t.rejects(e.embed(await zeros([1, 1, 112, 112]), { protocol: 'insightface' }), { code: 'BIA_INVALID_ARGUMENT', message: /\[B, 3, H, W\]/ });
  await t.rejects(e.embed(big, { protocol: 'arcface' as never }), { code: 'BIA_INVALID_ARGUMENT' });
  const nan = new Float32Array(3 * 112 * 112);
  nan[5] = NaN;
  await t.rejects(e.embed(await tensor(nan, [1, 3, 112, 112]), { protocol: 'insightface' }), { code: 'BIA_INVALID_ARGUMENT', message: /NaN/ });
});

t.test('similarity: pairwise, broadcast and matrix', async (t) => {
  const a = await tensor(new Float32Array([1, 0, 0, 0, 2, 0]), [2, 3]);
  const b = await tensor(new Float32Array([3, 0, 0, 0, 0, 5]), [2, 3]);
  t.same(Array.from(await (await similarity(a, b)).data()), [1, 0]);
  t.same(Array.from(await (await similarity(a, b, { matrix: true })).data()), [1, 0, 0, 0]);
  const one = await tensor(new Float32Array([1, 1, 0]), [1, 3]);
  const s = await (await similarity(a, one)).data();
  t.ok(Math.abs(s[0] - Math.SQRT1_2) < 1e-6 && Math.abs(s[1] - Math.SQRT1_2) < 1e-6);
  await t.rejects(similarity(a, await zeros([2, 4])), { code: 'BIA_INVALID_ARGUMENT', message: /same D/ });
  await t.rejects(similarity(a, await zeros([3, 3])), { code: 'BIA_INVALID_ARGUMENT', message: /matrix: true/ });
});

t.test('save → load keeps the arch and the numbers', async (t) => {
  const dir = t.testdir({});
  const e = await createIdentityEncoder('ir_se50', { width: 0.125, embeddingSize: 8, seed: 5 });
  const file = path.join(dir, 'enc.safetensors');
  await e.save(file);
  const back = await loadIdentityEncoder(file, { arch: 'ir_se50' });
  const x = await randn([1, 3, 112, 112], { seed: 9 });
  t.equal(await relErr(await back.embed(x, { protocol: 'insightface' }), await e.embed(x, { protocol: 'insightface' })), 0);
});

t.test('wrong files and options', async (t) => {
  const dir = t.testdir({});
  const unet = await createDiffusion('tiny');
  const unetFile = path.join(dir, 'unet.safetensors');
  await unet.save(unetFile);
  await t.rejects(loadIdentityEncoder(unetFile), { code: 'BIA_CHECKPOINT_MISMATCH', message: /not an identity encoder checkpoint/ });
  await t.rejects(loadIdentityEncoder(path.join(DIR, 'iresnet18-tiny.safetensors'), { arch: 'ir_se50' }), { code: 'BIA_CHECKPOINT_MISMATCH', message: /holds a iresnet18 checkpoint/ });
  await t.rejects(loadIdentityEncoder(path.join(dir, 'nope.pth')), { code: 'BIA_IO_ERROR' });
  await t.rejects(loadIdentityEncoder(path.join(DIR, 'expected.json')), { code: 'BIA_CHECKPOINT_ERROR' });
  await t.rejects(createIdentityEncoder('resnet9000' as never), { code: 'BIA_INVALID_ARGUMENT' });
  await t.rejects(createIdentityEncoder('ir_se50', { width: 0 }), { code: 'BIA_INVALID_ARGUMENT' });
  const e = await createIdentityEncoder('iresnet18', { width: 0.125 });
  e.dispose();
  await t.rejects(e.embed(await zeros([1, 3, 112, 112])), { code: 'BIA_DISPOSED' });
});

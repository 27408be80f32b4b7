// MobileFaceNet (TreB1eN) against the independent functional Python reference
// (test/fixtures/identity/make_mobilefacenet.py, Debian's python3-torch): official state_dict names,
// a strict load of the reference's weights, and the raw embeddings to 1e-5 relative error in float32.
import path from 'node:path';
import t from 'tap';
import { createIdentityEncoder, readCheckpoint, tensor, type IdentityEncoder, type Tensor } from '../ts/index';

const mfn = (width = 1, embeddingSize = 512) => createIdentityEncoder('mobilefacenet', { width, embeddingSize });
/** The raw embedding (the network's output, not normalised). */
const fwd = (m: IdentityEncoder, x: Tensor) => m.embed(x, { protocol: 'insightface', normalize: false });
import { relErr, ROOT } from './helpers';

const DIR = path.join(ROOT, 'test', 'fixtures', 'identity');


t.test('the official state_dict names and shapes', async (t) => {
  const m = await mfn();
  const sd = m.stateDict();
  t.equal(sd.size, 333, '333 entries (parameters and batch-norm buffers)');
  const shape = (k: string) => sd.get(k)?.shape;
  t.same(shape('conv1.conv.weight'), [64, 3, 3, 3]);
  t.same(shape('conv1.bn.running_mean'), [64]);
  t.same(shape('conv1.prelu.weight'), [64]);
  t.same(shape('conv2_dw.conv.weight'), [64, 1, 3, 3]);
  t.same(shape('conv_23.conv.conv.weight'), [128, 64, 1, 1]);
  t.same(shape('conv_23.conv_dw.conv.weight'), [128, 1, 3, 3]);
  t.same(shape('conv_23.project.conv.weight'), [64, 128, 1, 1]);
  t.same(shape('conv_3.model.0.conv.conv.weight'), [128, 64, 1, 1]);
  t.same(shape('conv_3.model.3.project.bn.running_var'), [64]);
  t.same(shape('conv_34.project.conv.weight'), [128, 256, 1, 1]);
  t.same(shape('conv_4.model.5.conv_dw.prelu.weight'), [256]);
  t.same(shape('conv_45.conv_dw.conv.weight'), [512, 1, 3, 3]);
  t.same(shape('conv_5.model.1.project.conv.weight'), [128, 256, 1, 1]);
  t.same(shape('conv_6_sep.conv.weight'), [512, 128, 1, 1]);
  t.same(shape('conv_6_dw.conv.weight'), [512, 1, 7, 7]);
  t.same(shape('linear.weight'), [512, 512]);
  t.same(shape('bn.num_batches_tracked'), []);
  t.equal(sd.get('bn.num_batches_tracked')?.dtype, 'int64');
  t.notOk(sd.has('conv_4.model.4.conv.conv.bias'), 'the convolutions have no bias');
  t.notOk(sd.has('conv_6_dw.prelu.weight'), 'Linear_blocks have no PReLU');
  t.notOk(sd.has('conv_23.project.prelu.weight'), 'projections have no PReLU');
  t.notOk(sd.has('linear.bias'), 'the linear layer has no bias');
  let params = 0;
  for (const [k, v] of sd) if (!/running_|num_batches/.test(k)) params += v.numel;
  t.equal(params, 1_200_512, 'parameters');
  t.equal((await mfn(0.125, 32)).stateDict().get('conv_45.conv.conv.weight')?.shape.join(','), '64,16,1,1', 'width scales channels');
  t.equal((await mfn(0.1, 8)).stateDict().get('conv_6_dw.conv.weight')?.shape.join(','), '51,1,7,7', 'rounded channel counts, groups = channels');
});

t.test('embeddings equal the Python reference (float32, 1e-5 relative)', async (t) => {
  const weights = await readCheckpoint(path.join(DIR, 'mfn-tiny-weights.safetensors'));
  const E = (await readCheckpoint(path.join(DIR, 'mfn-tiny-expected.safetensors')));
  const width = Number(E.metadata.width);
  const emb = Number(E.metadata.embeddingSize);
  t.equal(weights.tensors.size, Number(E.metadata.entries));
  const m = await mfn(width, emb);
  await m.loadStateDict(weights.tensors);  // strict: every name and shape must match both ways
  const x = E.tensors.get('x')!;
  const want = E.tensors.get('embedding')!;
  const y = await fwd(m, x);
  t.same(y.shape, [2, emb]);
  const err = await relErr(y, want);
  t.comment(`max relative error against the Python reference: ${err.toExponential(2)}`);
  t.ok(err < 1e-5, `relative error ${err.toExponential(2)} < 1e-5`);
  // one image alone gives the same row (eval-mode batch norm does not mix the batch)
  const all = (await x.data()) as Float32Array;
  const one = await tensor(all.slice(0, 3 * 112 * 112), [1, 3, 112, 112]);
  const y0 = (await (await fwd(m, one)).data()) as Float32Array;
  const w0 = ((await want.data()) as Float32Array).slice(0, emb);
  t.ok(Math.max(...y0.map((v, i) => Math.abs(v - w0[i]))) < 1e-5 * Math.max(...w0.map(Math.abs)), 'batch of one');
  // float64 inputs are converted
  const y64 = await fwd(m, await x.to({ dtype: 'float64' }));
  t.ok((await relErr(y64, want)) < 1e-5, 'float64 input');
});

t.test('errors', async (t) => {
  const m = await mfn(0.125, 32);
  const sd = m.stateDict();
  const partial = new Map(sd);
  partial.delete('conv_5.model.1.conv_dw.bn.running_var');
  await t.rejects(m.loadStateDict(partial), { code: 'BIA_CHECKPOINT_MISMATCH', message: /missing: conv_5\.model\.1\.conv_dw\.bn\.running_var/ });
  await t.resolves(m.loadStateDict(partial, { strict: false }), 'non-strict load skips missing names');
  const wrong = (await mfn(0.25, 32)).stateDict();
  await t.rejects(m.loadStateDict(wrong), { code: 'BIA_CHECKPOINT_MISMATCH', message: /wrong shape: conv1\.bn\.bias/ });
  await t.rejects(fwd(m, await tensor(new Float32Array(3 * 64 * 64), [1, 3, 64, 64])), { code: 'BIA_INVALID_ARGUMENT', message: /112x112/ });
  await t.rejects(fwd(m, await tensor(new Int32Array(3 * 112 * 112), [1, 3, 112, 112])), { code: 'BIA_INVALID_ARGUMENT' });
  await t.rejects(mfn(0, 512), { code: 'BIA_INVALID_ARGUMENT' });
  await t.rejects(mfn(Number.NaN, 512), { code: 'BIA_INVALID_ARGUMENT' });
  await t.rejects(mfn(1, 0), { code: 'BIA_INVALID_ARGUMENT' });
  await t.rejects(mfn(1, 1.5), { code: 'BIA_INVALID_ARGUMENT' });
});

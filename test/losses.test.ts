// Image losses against the independent Python reference (bench/reference/losses.py).
import path from 'node:path';
import t from 'tap';
import { imageLosses, readCheckpoint, tensor, zeros } from '../ts/index';
import { ROOT } from './helpers';

t.test('MSE, SSIM, gradient L1 and the perceptual substitute match the reference', async (t) => {
  const E = (await readCheckpoint(path.join(ROOT, 'test', 'fixtures', 'losses', 'losses.safetensors'))).tensors;
  const L = await imageLosses(E.get('a')!, E.get('b')!);
  for (const k of ['mse', 'ssim', 'gradL1', 'perceptual'] as const) {
    const want = await E.get(k)!.data();
    for (let i = 0; i < 3; i++) t.ok(Math.abs(L[k][i] - want[i]) < 1e-10, `${k}[${i}]: ${L[k][i]} vs ${want[i]}`);
  }
  t.equal(L.mse[0], 0, 'identical images: MSE 0');
  t.ok(Math.abs(L.ssim[0] - 1) < 1e-12, 'identical images: SSIM 1');
  t.ok(L.perceptual[1] > 0 && L.ssim[1] < 1);
  const f32 = await imageLosses(await E.get('a')!.to({ dtype: 'float32' }), await E.get('b')!.to({ dtype: 'float32' }));
  t.ok(Math.abs(f32.ssim[1] - L.ssim[1]) < 1e-6, 'float32 inputs are computed in float64 too');
});

t.test('one reference image is compared with each image of the batch', async (t) => {
  const E = (await readCheckpoint(path.join(ROOT, 'test', 'fixtures', 'losses', 'losses.safetensors'))).tensors;
  const a = E.get('a')!;
  const b = E.get('b')!;
  const [n, c, h, w] = b.shape;
  const b0 = await tensor(Float64Array.from((await b.data()).slice(0, c * h * w)), [1, c, h, w]);
  const one = await imageLosses(a, b0);
  t.equal(one.mse.length, n);
  for (let i = 0; i < n; i++) {
    const ai = await tensor(Float64Array.from((await a.data()).slice(i * c * h * w, (i + 1) * c * h * w)), [1, c, h, w]);
    const pair = await imageLosses(ai, b0);
    for (const k of ['mse', 'ssim', 'gradL1', 'perceptual'] as const) t.equal(one[k][i], pair[k][0], `${k}[${i}]`);
  }
  await t.rejects(imageLosses(b0, a), { code: 'BIA_INVALID_ARGUMENT', message: /same shape/ });
});

t.test('bad input', async (t) => {
  await t.rejects(imageLosses(await zeros([1, 3, 8, 8]), await zeros([1, 3, 8, 8])), { code: 'BIA_INVALID_ARGUMENT', message: /11x11/ });
  await t.rejects(imageLosses(await zeros([1, 3, 16, 16]), await zeros([1, 3, 16, 17])), { code: 'BIA_INVALID_ARGUMENT', message: /same shape/ });
  await t.rejects(imageLosses(await zeros([3, 16, 16]), await zeros([3, 16, 16])), { code: 'BIA_INVALID_ARGUMENT' });
  await t.rejects(imageLosses(await tensor(new Uint8Array(3 * 256), [1, 3, 16, 16]), await tensor(new Uint8Array(3 * 256), [1, 3, 16, 16])), { code: 'BIA_INVALID_ARGUMENT', message: /floating-point/ });
});

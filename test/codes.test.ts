// Code offsets, row gathering and manifold neighbours: the small native batch ops of the pipeline.
import t from 'tap';
import { createDiffusion, manifoldTargets, offsetCodes, randomDirection, randn, sampleNeighbours, takeRows, tensor } from '../ts/index';

t.test('offsetCodes: base[rows] + steps·direction, in float64', async (t) => {
  const base = await tensor(Float32Array.from([1, 2, 3, 4, 5, 6]), [3, 2]);
  const dir = await tensor(Float64Array.from([0.5, -1]), [2]);
  const out = await offsetCodes(base, { rows: [2, 0, 2], direction: dir, steps: [2, 0, -1] });
  t.same(out.shape, [3, 2]);
  t.same(Array.from(await out.data()), [5 + 1, 6 - 2, 1, 2, 5 - 0.5, 6 + 1]);
  t.equal(out.dtype, 'float32', "base's dtype");
  const copy = await offsetCodes(base, { rows: [1] });
  t.same(Array.from(await copy.data()), [3, 4]);
  // One code (the direction's shape) is a batch of one.
  const one = await offsetCodes(await tensor(Float32Array.from([1, 1]), [2]), { direction: dir, steps: [4] });
  t.same(one.shape, [1, 2]);
  t.same(Array.from(await one.data()), [3, -3]);
  await t.rejects(offsetCodes(base, { rows: [3] }), { code: 'BIA_INVALID_ARGUMENT', message: /row index/ });
  await t.rejects(offsetCodes(base, { direction: dir, steps: [1] }), { code: 'BIA_INVALID_ARGUMENT', message: /one entry per row/ });
  await t.rejects(offsetCodes(base, { direction: await tensor(Float32Array.from([1, 2, 3]), [3]), steps: [1, 1, 1] }), { code: 'BIA_INVALID_ARGUMENT', message: /direction has shape/ });
  await t.rejects(offsetCodes(base, { direction: dir, steps: [1, NaN, 1] }), { code: 'BIA_INVALID_ARGUMENT', message: /not finite/ });
});

t.test('takeRows gathers rows of several batches', async (t) => {
  const a = await tensor(Float32Array.from([1, 2, 3, 4]), [2, 2]);
  const b = await tensor(Float32Array.from([9, 8]), [1, 2]);
  const out = await takeRows([a, b], [[1, 0], [0, 1], [0, 0]]);
  t.same(Array.from(await out.data()), [9, 8, 3, 4, 1, 2]);
  await t.rejects(takeRows([a, b], [[2, 0]]), { code: 'BIA_INVALID_ARGUMENT' });
  await t.rejects(takeRows([a, await tensor(Float32Array.from([1, 2, 3]), [1, 3])], [[0, 0]]), { code: 'BIA_INVALID_ARGUMENT', message: /row shape/ });
});

t.test('randomDirection: seeded unit vectors of the requested length', async (t) => {
  const u = await randomDirection([4, 2, 2], 3, 'cpu', 2.5);
  const v = Array.from(await u.data());
  t.ok(Math.abs(Math.hypot(...v) - 2.5) < 1e-9);
  t.same(Array.from(await (await randomDirection([4, 2, 2], 3, 'cpu', 2.5)).data()), v, 'same seed');
  t.not(Array.from(await (await randomDirection([4, 2, 2], 4, 'cpu', 2.5)).data())[0], v[0]);
});

t.test('manifold neighbours point at the targets', async (t) => {
  const hR = await randn([1, 8, 2, 2], { seed: 1 });
  const targets = await randn([3, 8, 2, 2], { seed: 2 });
  const nb = await sampleNeighbours(hR, { n: 7, alphaMax: 2, seed: 3, targets });
  const h = await hR.data();
  const tg = await targets.data();
  const c = await nb.codes.data();
  const d = 32;
  for (let j = 0; j < 7; j++) {
    const p = j % 3;
    let dot = 0;
    let nu = 0;
    let nv = 0;
    for (let i = 0; i < d; i++) {
      const u = c[j * d + i] - h[i];
      const v = tg[p * d + i] - h[i];
      dot += u * v;
      nu += u * u;
      nv += v * v;
    }
    t.ok(dot / Math.sqrt(nu * nv) > 0.99999, `neighbour ${j} lies on the ray to target ${p}`);
    t.ok(Math.abs(Math.sqrt(nu) - nb.alphas[j]) < 1e-4 * (1 + nb.alphas[j]));
  }
  await t.rejects(sampleNeighbours(hR, { targets: await randn([2, 8, 2, 1], { seed: 1 }) }), { code: 'BIA_INVALID_ARGUMENT', message: /targets/ });
  await t.rejects(sampleNeighbours(hR, { targets: hR }), { code: 'BIA_INVALID_ARGUMENT', message: /equals h_r/ });
});

t.test('manifoldTargets: h of random generated samples, seeded', async (t) => {
  const diffusion = await createDiffusion('tiny', { seed: 1 });
  const a = await manifoldTargets(diffusion, { pool: 3, t0: 50, steps: 4, seed: 5 });
  t.same(a.shape, [3, ...diffusion.hShape]);
  const b = await manifoldTargets(diffusion, { pool: 3, t0: 50, steps: 4, seed: 5 });
  t.same(Array.from(await a.data()), Array.from(await b.data()));
  const c = await manifoldTargets(diffusion, { pool: 3, t0: 50, steps: 4, seed: 6 });
  t.not((await c.data())[0], (await a.data())[0]);
  await t.rejects(manifoldTargets(diffusion, { pool: 0 }), { code: 'BIA_INVALID_ARGUMENT' });
});

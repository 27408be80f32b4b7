// The fused CPU GroupNorm (+ SiLU) the UNet runs at inference (native/group_norm.cc), against a
// double-precision reference written here and against LibTorch's own ops; and the CPU bfloat16
// autocast built on it.
import t from 'tap';
import { createDiffusion, groupNorm, randn, tensor, type Tensor } from '../ts/index';
import { relErr } from './helpers';

/** GroupNorm (+ SiLU) of NCHW values in double precision. */
function reference(x: Float32Array, [n, c, h, w]: number[], weight: Float32Array, bias: Float32Array, groups: number, eps: number, silu: boolean): Float64Array {
  const out = new Float64Array(x.length);
  const hw = h * w;
  const cpg = c / groups;
  for (let b = 0; b < n; b++) {
    for (let g = 0; g < groups; g++) {
      const start = (b * c + g * cpg) * hw;
      const len = cpg * hw;
      let mean = 0;
      for (let i = 0; i < len; i++) mean += x[start + i];
      mean /= len;
      let v = 0;
      for (let i = 0; i < len; i++) v += (x[start + i] - mean) ** 2;
      const rstd = 1 / Math.sqrt(v / len + eps);
      for (let i = 0; i < len; i++) {
        const ch = g * cpg + Math.floor(i / hw);
        const y = (x[start + i] - mean) * rstd * weight[ch] + bias[ch];
        out[start + i] = silu ? y / (1 + Math.exp(-y)) : y;
      }
    }
  }
  return out;
}

/** Largest |a − b| relative to the largest |b| (helpers.relErr over plain arrays). */
function relMax(a: ArrayLike<number>, b: ArrayLike<number>): Promise<number> {
  return relErr({ data: async () => a }, { data: async () => b });
}

async function values(shape: number[], seed: number, scale = 1, offset = 0): Promise<Float32Array> {
  const r = await randn(shape, { seed });
  const v = Float32Array.from(await r.data(), (x) => x * scale + offset);
  r.dispose();
  return v;
}

/** bfloat16 rounding of float32 values (round to nearest even), as float32. */
function roundBf16(v: Float32Array): Float32Array {
  const u = new Uint32Array(Float32Array.from(v).buffer);
  for (let i = 0; i < u.length; i++) u[i] = ((u[i] + 0x7fff + ((u[i] >>> 16) & 1)) >>> 16) << 16;
  return new Float32Array(u.buffer);
}

t.test('float32: NCHW and channels-last, with and without SiLU, equal a double-precision GroupNorm', async (t) => {
  // Odd sizes (no vector-width multiple), two images, 64 channels in 8 groups; six small images (whole
  // images per task); a map with enough
  // pixels that channels-last splits it into chunks of several tiles; the tiny UNet's top level at 96²
  // (chunks ending in a part tile); and one whose chunks hold more
  // than 64 tiles (the float block sums are folded into double part-way).
  for (const [shape, groups] of [[[2, 64, 9, 7], 8], [[6, 32, 20, 20], 32], [[1, 128, 48, 40], 32], [[3, 32, 96, 96], 32], [[1, 1024, 96, 96], 32]] as [number[], number][]) {
    const x = await values(shape, 1, 2, 0.5);
    const w = await values([shape[1]], 2, 0.5, 1);
    const b = await values([shape[1]], 3, 0.3);
    const [xt, wt, bt] = [await tensor(x, shape), await tensor(w, [shape[1]]), await tensor(b, [shape[1]])];
    for (const silu of [false, true]) {
      const want = reference(x, shape, w, b, groups, 1e-6, silu);
      for (const channelsLast of [false, true]) {
        const y = await groupNorm(xt, wt, bt, { groups, silu, channelsLast });
        t.same(y.shape, shape);
        t.equal(y.dtype, 'float32');
        const err = await relMax(await y.data(), want);
        t.ok(err < 2e-6, `${JSON.stringify(shape)} silu ${silu} channelsLast ${channelsLast}: max error ${err.toExponential(2)} < 2e-6`);
        const ref = await groupNorm(xt, wt, bt, { groups, silu, channelsLast, reference: true });
        t.ok(await relMax(await y.data(), await ref.data()) < 2e-6, 'and LibTorch agrees');
        y.dispose();
        ref.dispose();
      }
    }
    for (const v of [xt, wt, bt]) v.dispose();
  }
});

t.test('a map far from zero against its spread keeps its variance (shifted sums)', async (t) => {
  const shape = [1, 32, 40, 40];
  const x = await values(shape, 4, 1, 1000);
  const w = new Float32Array(32).fill(1);
  const b = new Float32Array(32);
  const want = reference(x, shape, w, b, 32, 1e-6, false);
  const [xt, wt, bt] = [await tensor(x, shape), await tensor(w, [32]), await tensor(b, [32])];
  for (const channelsLast of [false, true]) {
    const y = await groupNorm(xt, wt, bt, { channelsLast });
    const err = await relMax(await y.data(), want);
    // |x| ≈ 1000 holds about 6e-5 of absolute precision in float32: the normalised values err by about that.
    t.ok(err < 3e-4, `channelsLast ${channelsLast}: max error ${err.toExponential(2)} < 3e-4`);
    y.dispose();
  }
  for (const v of [xt, wt, bt]) v.dispose();
});

t.test('bfloat16 in, bfloat16 out: within bfloat16 rounding of the double-precision result', async (t) => {
  const shape = [2, 64, 16, 12];
  const x = roundBf16(await values(shape, 5, 1.5, -0.2));
  const w = await values([64], 6, 0.5, 1);
  const b = await values([64], 7, 0.3);
  const xt = await tensor(x, shape, { dtype: 'bfloat16' });
  const [wt, bt] = [await tensor(w, [64]), await tensor(b, [64])];
  for (const silu of [false, true]) {
    const want = reference(x, shape, w, b, 32, 1e-6, silu);
    for (const channelsLast of [false, true]) {
      const y = await groupNorm(xt, wt, bt, { silu, channelsLast });
      t.equal(y.dtype, 'bfloat16');
      const err = await relMax(await y.data(), want);
      // bfloat16 keeps 8 bits of mantissa: a value is within 2^-9 of itself, relative.
      t.ok(err < 4e-3, `silu ${silu} channelsLast ${channelsLast}: max error ${err.toExponential(2)} < 4e-3`);
      y.dispose();
    }
  }
  for (const v of [xt, wt, bt]) v.dispose();
});

t.test('bad arguments are refused with codes', async (t) => {
  const x = await randn([1, 8, 4, 4], { seed: 1 });
  const w = await randn([8], { seed: 2 });
  const b = await randn([8], { seed: 3 });
  const w6 = await randn([6], { seed: 4 });
  const flat = await randn([8, 16], { seed: 5 });
  const code = { code: 'BIA_INVALID_ARGUMENT' };
  await t.rejects(groupNorm(x, w, b, { groups: 3 }), code, 'channels not divisible by groups');
  await t.rejects(groupNorm(x, w6, b, { groups: 2 }), code, 'weight of the wrong size');
  await t.rejects(groupNorm(flat, w, b, { groups: 2 }), code, 'not [N, C, H, W]');
  await t.rejects(groupNorm(x, w, b, { groups: 2, eps: -1 }), code, 'negative eps');
  await t.rejects(groupNorm(x, w, b, { groups: 0 }), code, 'zero groups');
  await t.rejects(groupNorm(x, w, b, { groups: 2, silu: 'yes' as unknown as boolean }), code, 'silu not a boolean');
  await t.rejects(groupNorm(x, 'w' as unknown as Tensor, b), code, 'weight not a tensor');
  for (const v of [x, w, b, w6, flat]) v.dispose();
});

t.test('CPU bfloat16 autocast: the UNet runs in bfloat16 within bfloat16 precision of float32', async (t) => {
  const f32 = await createDiffusion('tiny', { seed: 7 });
  const bf = await createDiffusion('tiny', { seed: 7, autocast: 'bfloat16' });
  const x = await randn([2, 3, 32, 32], { seed: 8 });
  const a = await f32.forward(x, 400);
  const b = await bf.forward(x, 400);
  t.equal(b.eps.dtype, 'float32', 'ε comes back in float32');
  t.equal(b.h.dtype, 'float32', 'h comes back in float32');
  const [ea, eb] = [await a.eps.data(), await b.eps.data()];
  const err = await relMax(eb, ea);
  t.ok(err < 3e-2, `ε: max error ${err.toExponential(2)} < 3e-2`);
  t.ok(err > 1e-5, `and it did run in bfloat16 (error ${err.toExponential(2)} is not float32's)`);
  const errH = await relMax(await b.h.data(), await a.h.data());
  t.ok(errH < 3e-2, `h: max error ${errH.toExponential(2)} < 3e-2`);
  // An edited h goes through the bfloat16 decoder too.
  const inv = await bf.invert(x, { t0: 300, steps: 4 });
  t.same(inv.xLat.shape, [2, 3, 32, 32]);
  t.ok((await inv.xLat.data()).every(Number.isFinite), 'the inversion stays finite');
  // New weights reach the bfloat16 copy: loadStateDict makes it again.
  const other = await createDiffusion('tiny', { seed: 9, autocast: 'bfloat16' });
  const sd = other.stateDict();
  await bf.loadStateDict(sd);
  const [c, d] = [await bf.forward(x, 400), await other.forward(x, 400)];
  t.equal(await relMax(await c.eps.data(), await d.eps.data()), 0, 'after loadStateDict the bfloat16 model computes with the new weights');
  t.ok(await relMax(await c.eps.data(), eb) > 1e-3, 'and not with the old ones');
  for (const v of [c.eps, c.h, d.eps, d.h, ...sd.values()]) v.dispose();
  other.dispose();
  await t.rejects(createDiffusion('tiny', { autocast: 'float16' }), { code: 'BIA_INVALID_ARGUMENT' }, 'float16 autocast is CUDA only');
  await t.rejects(createDiffusion('tiny', { autocast: 'bfloat16', dtype: 'bfloat16' }), { code: 'BIA_INVALID_ARGUMENT' }, 'bfloat16 autocast takes float32 weights');
  for (const v of [x, a.eps, a.h, b.eps, b.h, inv.xLat, inv.hR]) v.dispose();
  f32.dispose();
  bf.dispose();
});

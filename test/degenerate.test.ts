// The degenerate baselines (fade and blur of the face region) with known answers: the mask, strength 0,
// pixels outside the ellipse, fade to the mean colour, blur of constants and ramps, and the bisection to
// an identity similarity with a real (tiny, random) encoder; bad arguments.
import t from 'tap';
import {
  blurFace,
  createIdentityEncoder,
  fadeFace,
  faceMask,
  FACE_ELLIPSE,
  liveTensors,
  matchSimilarity,
  setThreads,
  similarity,
  tensor,
  type IdentityEncoder,
  type Tensor,
} from '../ts/index';
import { gc } from './helpers';

/** A deterministic test image [B, 3, S, S] in [-1, 1]: smooth stripes plus a little noise. */
function pattern(B: number, S: number, seed = 1): Float32Array {
  const d = new Float32Array(B * 3 * S * S);
  let s = seed;
  for (let b = 0; b < B; b++)
    for (let c = 0; c < 3; c++)
      for (let i = 0; i < S; i++)
        for (let j = 0; j < S; j++) {
          s = (s * 1103515245 + 12345) >>> 0;
          const noise = ((s >>> 16) & 255) / 255 - 0.5;
          const v = 0.6 * Math.sin((i * (1 + c + b)) / 3) * Math.cos((j * (2 + c)) / 5) + 0.3 * noise;
          d[((b * 3 + c) * S + i) * S + j] = Math.max(-1, Math.min(1, v));
        }
  return d;
}

/** The values of a tensor about to be made, which is then disposed. */
async function values(p: Promise<Tensor>): Promise<Float32Array> {
  const y = await p;
  try {
    return (await y.data()) as Float32Array;
  } finally {
    y.dispose();
  }
}

/** Inside the ellipse by the test of outsideFaceChange (ts/world/demo.ts). */
function insideEllipse(i: number, j: number, S: number): boolean {
  const { cx, cy, rx, ry } = FACE_ELLIPSE;
  const dy = ((i + 0.5) / S - cy) / ry;
  const dx = ((j + 0.5) / S - cx) / rx;
  return dx * dx + dy * dy <= 1;
}

let encoder: IdentityEncoder;

t.before(async () => {
  setThreads(1);
  encoder = await createIdentityEncoder('iresnet18', { width: 0.125, embeddingSize: 32, seed: 2 });
});
t.teardown(() => encoder?.dispose());

t.test('faceMask: 0 at the corners and outside the ellipse, 1 at the centre, a soft edge inside', async (t) => {
  t.same(FACE_ELLIPSE, { cx: 0.5, cy: 0.47, rx: 0.3, ry: 0.4 });
  for (const S of [16, 64, 256]) {
    const m = faceMask(S);
    t.equal(m.length, S * S);
    for (const [i, j] of [[0, 0], [0, S - 1], [S - 1, 0], [S - 1, S - 1]]) t.equal(m[i * S + j], 0, `${S}: corner ${i},${j}`);
    t.equal(m[Math.floor(0.47 * S) * S + S / 2], 1, `${S}: centre`);
    let soft = 0;
    let outsideNonZero = 0;
    for (let i = 0; i < S; i++)
      for (let j = 0; j < S; j++) {
        const v = m[i * S + j];
        if (!(v >= 0 && v <= 1)) t.fail(`mask ${v} at ${i},${j}`);
        if (!insideEllipse(i, j, S) && v !== 0) outsideNonZero++;
        if (v > 0 && v < 1) soft++;
      }
    t.equal(outsideNonZero, 0, `${S}: exactly 0 outside the ellipse`);
    t.ok(soft > 0, `${S}: ${soft} pixels on the soft edge`);
  }
  // The edge is about `feather` pixels wide: along the middle row, from the ellipse's left end inward.
  const S = 256;
  const row = Math.floor(0.47 * S);
  const m = faceMask(S, 4);
  const ramp = Array.from({ length: 8 }, (_, k) => m[row * S + Math.ceil((0.5 - 0.3) * S - 0.5) + k]);
  t.ok(ramp[0] < 0.3 && ramp[4] === 1 && ramp.every((v, k) => k === 0 || v >= ramp[k - 1]), `rises to 1 within ~4 px: ${ramp.map((v) => v.toFixed(2))}`);
  const hard = faceMask(32, 0);
  t.ok(hard.every((v, k) => v === (insideEllipse(Math.floor(k / 32), k % 32, 32) ? 1 : 0)), 'feather 0: the ellipse itself');
  t.throws(() => faceMask(0), { code: 'BIA_INVALID_ARGUMENT' });
  t.throws(() => faceMask(1.5), { code: 'BIA_INVALID_ARGUMENT' });
  t.throws(() => faceMask(16, -1), { code: 'BIA_INVALID_ARGUMENT', message: /feather/ });
  t.throws(() => faceMask(16, NaN), { code: 'BIA_INVALID_ARGUMENT', message: /feather/ });
});

t.test('strength 0 returns the input exactly; pixels outside the mask never change', async (t) => {
  gc();
  const live = liveTensors();
  const S = 32;
  const data = pattern(2, S);
  const x = await tensor(data, [2, 3, S, S]);
  const mask = faceMask(S);
  for (const [name, f] of [['fade', fadeFace], ['blur', blurFace]] as const) {
    const y0 = await f(x, 0);
    t.same(y0.shape, [2, 3, S, S]);
    t.same(y0.dtype, 'float32');
    t.same(Array.from(await y0.data()), Array.from(data), `${name}(x, 0) = x`);
    y0.dispose();
    for (const a of [0.3, 1]) {
      const y = await f(x, a);
      const d = await y.data();
      let outsideChanged = 0;
      let insideChanged = 0;
      for (let k = 0; k < d.length; k++) {
        if (mask[k % (S * S)] === 0 && d[k] !== data[k]) outsideChanged++;
        if (mask[k % (S * S)] === 1 && Math.abs(d[k] - data[k]) > 1e-3) insideChanged++;
      }
      t.equal(outsideChanged, 0, `${name} ${a}: no pixel outside the mask changed`);
      t.ok(insideChanged > 100, `${name} ${a}: ${insideChanged} values inside changed`);
      y.dispose();
    }
  }
  x.dispose();
  gc();
  t.equal(liveTensors(), live, 'no tensor left behind');
});

t.test('fade at strength 1: the inside is each image’s mean colour in the mask; in between, linear', async (t) => {
  const S = 32;
  const data = pattern(2, S, 7);
  const x = await tensor(data, [2, 3, S, S]);
  const mask = faceMask(S);
  const y1 = await values(fadeFace(x, 1));
  const yh = await values(fadeFace(x, 0.5));
  const wsum = mask.reduce((a, b) => a + b, 0);
  let checked = 0;
  for (let bc = 0; bc < 6; bc++) {
    let s = 0;
    for (let k = 0; k < S * S; k++) s += mask[k] * data[bc * S * S + k];
    const mean = s / wsum;
    for (let k = 0; k < S * S; k++) {
      const i = bc * S * S + k;
      if (mask[k] === 1) {
        if (Math.abs(y1[i] - mean) > 1e-6) t.fail(`image/channel ${bc}, pixel ${k}: ${y1[i]} ≠ mean ${mean}`);
        checked++;
      }
      const want = data[i] + mask[k] * 0.5 * (mean - data[i]);
      if (Math.abs(yh[i] - want) > 1e-6) t.fail(`strength 0.5 at ${i}: ${yh[i]} ≠ ${want}`);
    }
  }
  t.ok(checked > 6 * 200, `${checked} values at the mean colour`);
  x.dispose();
});

t.test('blur: a constant stays constant, a ramp stays a ramp away from the border, σ = strength·side/8', async (t) => {
  const S = 32;
  const c = await tensor(new Float32Array(3 * S * S).fill(0.3), [1, 3, S, S]);
  for (const a of [0.1, 0.5, 1]) {
    const y = await values(blurFace(c, a));
    t.ok(y.every((v) => Math.abs(v - 0.3) < 1e-6), `strength ${a}: constant`);
  }
  c.dispose();
  // A horizontal ramp: a symmetric kernel leaves a linear function unchanged where no reflection reaches.
  const ramp = new Float32Array(3 * S * S);
  for (let k = 0; k < ramp.length; k++) ramp[k] = ((k % S) - S / 2) / S;
  const r = await tensor(ramp, [1, 3, S, S]);
  const y = await values(blurFace(r, 0.25)); // σ = 1 px, radius 3
  const mask = faceMask(S);
  let n = 0;
  for (let i = 3; i < S - 3; i++)
    for (let j = 3; j < S - 3; j++) {
      if (mask[i * S + j] !== 1) continue;
      n++;
      if (Math.abs(y[i * S + j] - ramp[i * S + j]) > 1e-6) t.fail(`ramp at ${i},${j}: ${y[i * S + j]} ≠ ${ramp[i * S + j]}`);
    }
  t.ok(n > 200, `${n} interior pixels checked`);
  // A vertical step edge inside the face (between columns 15 and 16): σ = 1 px at strength 0.25 keeps
  // it sharp 2.5 px away (2Φ(2.5) − 1 ≈ 0.99), σ = 4 px at strength 1 does not (2Φ(0.625) − 1 ≈ 0.47).
  const step = new Float32Array(S * S * 3);
  for (let k = 0; k < step.length; k++) step[k] = k % S < S / 2 ? -1 : 1;
  const st = await tensor(step, [1, 3, S, S]);
  const row = Math.floor(0.47 * S) * S;
  const soft = await values(blurFace(st, 0.25));
  const wide = await values(blurFace(st, 1));
  const at = row + S / 2 - 3;
  t.ok(soft[at] < -0.95 && wide[at] > -0.6 && wide[at] < -0.3, `2.5 px from the edge: ${soft[at].toFixed(3)} at σ 1 px, ${wide[at].toFixed(3)} at σ 4 px`);
  r.dispose();
  st.dispose();
});

t.test('matchSimilarity with a real encoder: reaches the target, smaller strength for an easier target', async (t) => {
  gc();
  const live = liveTensors();
  const S = 32;
  const x = await tensor(pattern(1, S, 3), [1, 3, S, S]);
  const protocol = 'resize' as const;
  const fR = await encoder.embed(x, { protocol });
  const simOf = async (y: Tensor) => {
    const e = await encoder.embed(y, { protocol });
    const s = await similarity(e, fR);
    const v = (await s.data())[0];
    e.dispose();
    s.dispose();
    return v;
  };
  for (const [kind, f] of [['fade', fadeFace], ['blur', blurFace]] as const) {
    const full = await f(x, 1);
    const s1 = await simOf(full);
    full.dispose();
    t.ok(s1 < 0.999, `${kind}: strength 1 lowers the similarity (${s1.toFixed(4)})`);
    const hard = s1 + 0.25 * (1 - s1);
    const easy = s1 + 0.75 * (1 - s1);
    const h = await matchSimilarity(kind, x, { encoder, fR, target: hard, protocol });
    const e = await matchSimilarity(kind, x, { encoder, fR, target: easy, protocol });
    for (const [r, target] of [[h, hard], [e, easy]] as const) {
      t.equal(r.reached, true);
      t.ok(r.similarity <= target, `${kind}: sim ${r.similarity.toFixed(4)} ≤ target ${target.toFixed(4)} at strength ${r.strength}`);
      t.ok(r.strength > 0 && r.strength <= 1);
      t.same(r.image.shape, [1, 3, S, S]);
      const again = await f(x, r.strength);
      t.same(Array.from(await r.image.data()), Array.from(await again.data()), `${kind}: the image is the eraser at that strength`);
      again.dispose();
      t.ok(Math.abs((await simOf(r.image)) - r.similarity) < 1e-5, 'and its similarity');
      // Bisection to 2^-10: just below, the similarity is still above the target.
      const below = await f(x, r.strength - 2 ** -10);
      t.ok((await simOf(below)) > target, `${kind}: strength ${r.strength} − 2^−10 stays above the target`);
      below.dispose();
    }
    t.ok(e.strength < h.strength, `${kind}: easier target ${easy.toFixed(4)} → strength ${e.strength} < ${h.strength} for ${hard.toFixed(4)}`);
    const coarse = await matchSimilarity(kind, x, { encoder, fR, target: hard, protocol, iterations: 3 });
    t.equal(coarse.strength * 8, Math.round(coarse.strength * 8), `${kind}: 3 iterations give a multiple of 1/8 (${coarse.strength})`);
    t.ok(coarse.similarity <= hard);
    // Out of reach: strength 1, reached false; already there: strength 0, the input itself.
    const never = await matchSimilarity(kind, x, { encoder, fR, target: s1 - 0.05, protocol });
    t.same([never.strength, never.reached], [1, false]);
    t.ok(Math.abs(never.similarity - s1) < 1e-5);
    const already = await matchSimilarity(kind, x, { encoder, fR, target: 1.5, protocol });
    t.same([already.strength, already.reached], [0, true]);
    t.same(Array.from(await already.image.data()), Array.from(await x.data()));
    for (const r of [h, e, coarse, never, already]) r.image.dispose();
  }
  fR.dispose();
  x.dispose();
  gc();
  t.equal(liveTensors(), live, 'no tensor left behind');
});

t.test('bad arguments: BIA_INVALID_ARGUMENT', async (t) => {
  const x = await tensor(pattern(1, 16), [1, 3, 16, 16]);
  const two = await tensor(pattern(2, 16), [2, 3, 16, 16]);
  const wide = await tensor(new Float32Array(3 * 16 * 32), [1, 3, 16, 32]);
  const flat = await tensor(new Float32Array(3 * 16 * 16), [3, 16, 16]);
  const ints = await tensor(new Int32Array(3 * 16 * 16), [1, 3, 16, 16]);
  const fR = await encoder.embed(x, { protocol: 'resize' });
  for (const f of [fadeFace, blurFace]) {
    for (const a of [-0.1, 1.5, NaN, Infinity, '0.5' as unknown as number]) await t.rejects(f(x, a), { code: 'BIA_INVALID_ARGUMENT', message: /strength/ }, `strength ${a}`);
    await t.rejects(f(wide, 0.5), { code: 'BIA_INVALID_ARGUMENT', message: /square/ });
    await t.rejects(f(flat, 0.5), { code: 'BIA_INVALID_ARGUMENT', message: /4-D/ });
    await t.rejects(f(ints, 0.5), { code: 'BIA_INVALID_ARGUMENT', message: /floating/ });
    await t.rejects(f(null as unknown as Tensor, 0.5), { code: 'BIA_INVALID_ARGUMENT' });
  }
  const ok = { encoder, fR, target: 0.5, protocol: 'resize' as const };
  for (const target of [NaN, Infinity, -Infinity, '0.5' as unknown as number, undefined as unknown as number]) {
    await t.rejects(matchSimilarity('fade', x, { ...ok, target }), { code: 'BIA_INVALID_ARGUMENT', message: /target/ }, `target ${target}`);
  }
  await t.rejects(matchSimilarity('smudge' as 'fade', x, ok), { code: 'BIA_INVALID_ARGUMENT', message: /kind/ });
  await t.rejects(matchSimilarity('blur', two, ok), { code: 'BIA_INVALID_ARGUMENT', message: /one image/ });
  await t.rejects(matchSimilarity('blur', wide, ok), { code: 'BIA_INVALID_ARGUMENT', message: /square/ });
  await t.rejects(matchSimilarity('blur', flat, ok), { code: 'BIA_INVALID_ARGUMENT', message: /4-D/ });
  await t.rejects(matchSimilarity('blur', x, { ...ok, fR: x }), { code: 'BIA_INVALID_ARGUMENT', message: /fR/ });
  await t.rejects(matchSimilarity('blur', x, { ...ok, encoder: {} as IdentityEncoder }), { code: 'BIA_INVALID_ARGUMENT', message: /encoder/ });
  await t.rejects(matchSimilarity('blur', x, { ...ok, iterations: 1.5 }), { code: 'BIA_INVALID_ARGUMENT', message: /iterations/ });
  for (const y of [x, two, wide, flat, ints, fR]) y.dispose();
});

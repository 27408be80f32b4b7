// The black-hole boundary (ts/blackhole/svm.ts, native/blackhole.cc): the native Gram / linear
// combination / signed distance, fitBoundary against known answers and against libsvm's own
// predictions, the exact b, orientation, the wrap set, memory (free()), bad input, and the
// time of a fit on 128 codes of 512×8×8.
import { prng } from '../ts/blackhole/svm';
import t from 'tap';
import {
  fitBoundary,
  gram,
  linearCombination,
  liveTensors,
  orient,
  randn,
  signedDistance,
  tensor,
  wrapSet,
  type Boundary,
  type Tensor,
} from '../ts/index';
import { loadLibsvm, parseLibsvmModel, precomputedRows, type LibsvmClass } from '../ts/blackhole/svm';
import { gc } from './helpers';

const SHAPE = [2, 4, 4]; // a 32-d "code"
const D = 32;


function gaussian(rand: () => number): () => number {
  return () => Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
}

const dot = (a: ArrayLike<number>, b: ArrayLike<number>, ao = 0, bo = 0, d = D) => {
  let s = 0;
  for (let k = 0; k < d; k++) s += a[ao + k] * b[bo + k];
  return s;
};

/** A fixed unit direction of the 32-d code space. */
function direction(): Float64Array {
  const u = new Float64Array(D).map((_, k) => Math.sin(1.7 * k + 0.3) + (k % 3 === 0 ? 0.5 : 0));
  const norm = Math.sqrt(dot(u, u));
  return u.map((v) => v / norm);
}

/**
 * Two Gaussian clouds in the 2×4×4 code space around m ± (sep/2)·u, with m = 2 in every coordinate and σ
 * per coordinate; codes alternate label firstLabel (default 1), then the other. With `mirror`, each label-0
 * code is the reflection of the label-1 code before it through the hyperplane u·(h − m) = 0, so by symmetry
 * the SVM's normal is u and its boundary passes through m: s(h) = u·(h − m) exactly.
 */
function clouds(opts: { nPerClass: number; sep: number; sigma: number; seed: number; firstLabel?: 0 | 1; mirror?: boolean }) {
  const u = direction();
  const g = gaussian(prng(opts.seed));
  const n = 2 * opts.nPerClass;
  const data = new Float32Array(n * D);
  const labels: (0 | 1)[] = [];
  const first = opts.firstLabel ?? 1;
  for (let i = 0; i < n; i++) {
    const y = (i % 2 === 0 ? first : 1 - first) as 0 | 1;
    labels.push(y);
    const side = y ? 1 : -1;
    if (opts.mirror && i % 2 === 1) {
      // reflect the previous code: its component along u changes sign around m
      let along = 0;
      for (let k = 0; k < D; k++) along += (data[(i - 1) * D + k] - 2) * u[k];
      for (let k = 0; k < D; k++) data[i * D + k] = data[(i - 1) * D + k] - 2 * along * u[k];
      continue;
    }
    for (let k = 0; k < D; k++) data[i * D + k] = 2 + side * 0.5 * opts.sep * u[k] + opts.sigma * g();
  }
  return { data, labels, u, n };
}

/** u·(h − m) for code i of data (m = 2 everywhere). */
function alongU(data: ArrayLike<number>, i: number, u: Float64Array): number {
  let s = 0;
  for (let k = 0; k < D; k++) s += (data[i * D + k] - 2) * u[k];
  return s;
}

const codesOf = (data: Float32Array | Float64Array, n: number) => tensor(data, [n, ...SHAPE]);

async function readW(b: Boundary): Promise<Float64Array> {
  const w = await b.w.data();
  if (!(w instanceof Float64Array)) throw new Error('w is not float64');
  return w;
}

/** Train libsvm ourselves on a boundary's training split and predict every code with it (libsvm's own predict). */
async function libsvmPredictions(SVM: LibsvmClass, codes: Tensor, labels: readonly number[], b: Boundary, C: number) {
  const n = codes.shape[0];
  const kT = await gram(codes);
  const K = (await kT.data()) as Float64Array;
  kT.dispose();
  const train = b.trainIndices;
  const svm = new SVM({ type: SVM.SVM_TYPES.C_SVC, kernel: SVM.KERNEL_TYPES.PRECOMPUTED, cost: C, quiet: true });
  try {
    svm.train(precomputedRows(K, n, train, train), train.map((i) => labels[i]));
    const model = parseLibsvmModel(svm.serializeModel());
    // Training rows as trained (with their serials); held-out rows [0, K(x, x_train…)].
    const trainPred = svm.predict(precomputedRows(K, n, train, train));
    const heldPred = svm.predict(precomputedRows(K, n, b.heldOutIndices, train, false));
    return { model, trainPred, heldPred, svIndices: svm.getSVIndices().map((r) => train[r]) };
  } finally {
    svm.free();
  }
}

t.test('native: Gram matrix, linear combination and signed distance on hand-computed numbers', async (t) => {
  // codes [[1, 2], [3, 4], [0, -1]] as [3, 1, 2]
  const x = await tensor(new Float32Array([1, 2, 3, 4, 0, -1]), [3, 1, 2]);
  const K = await gram(x);
  t.same(K.shape, [3, 3]);
  t.equal(K.dtype, 'float64');
  t.equal(K.device, 'cpu');
  t.same(Array.from(await K.data()), [5, 11, -2, 11, 25, -4, -2, -4, 1]);
  const w = await linearCombination(x, new Float64Array([2, -1, 0.5]));
  t.same(w.shape, [1, 2], 'w has the shape of one code');
  t.equal(w.dtype, 'float64');
  t.same(Array.from(await w.data()), [-1, -0.5]);
  // w = (3, 4) as [1, 2]; b = -5: s(h) = (3h0 + 4h1 - 5)/5
  const wn = await tensor(new Float64Array([3, 4]), [1, 2]);
  const s = await signedDistance(x, wn, -5);
  t.ok(s instanceof Float64Array);
  t.same(Array.from(s), [(3 + 8 - 5) / 5, (9 + 16 - 5) / 5, (-4 - 5) / 5]);
  const one = await tensor(new Float32Array([5, 0]), [1, 2]);
  t.same(Array.from(await signedDistance(one, wn, -5)), [2], 'a single code of w\'s shape');
  // float32 codes are used as they are stored: K is exact in float64
  const big = await tensor(new Float32Array([16777217, 1, 0.1, 3]), [2, 2]);
  const Kb = (await (await gram(big)).data()) as Float64Array;
  const f = new Float32Array([16777217, 1, 0.1, 3]);
  t.equal(Kb[1], f[0] * f[2] + f[1] * f[3]);
  for (const z of [x, K, w, wn, one, big]) z.dispose();
});

t.test('native: bad shapes, NaN and dtypes are BIA_INVALID_ARGUMENT', async (t) => {
  const x = await tensor(new Float32Array([1, 2, 3, 4]), [2, 2]);
  const flat = await tensor(new Float32Array([1, 2]), [2]);
  await t.rejects(gram(flat), { code: 'BIA_INVALID_ARGUMENT', message: /codes \[n, \.\.\.\].*\[2\]/ });
  const ints = await tensor(new Int32Array([1, 2, 3, 4]), [2, 2]);
  await t.rejects(gram(ints), { code: 'BIA_INVALID_ARGUMENT', message: /floating-point.*int32/ });
  const nan = await tensor(new Float32Array([1, 2, NaN, 4, 5, 6]), [3, 2]);
  await t.rejects(gram(nan), { code: 'BIA_INVALID_ARGUMENT', message: /NaN or Inf \(first in code 1 of 3\)/ });
  await t.rejects(linearCombination(nan, new Float64Array(3)), { code: 'BIA_INVALID_ARGUMENT', message: /NaN/ });
  await t.rejects(linearCombination(x, new Float64Array(3)), { code: 'BIA_INVALID_ARGUMENT', message: /3 values but there are 2 codes/ });
  await t.rejects(linearCombination(x, new Float64Array([1, NaN])), { code: 'BIA_INVALID_ARGUMENT', message: /coef\[1\] is NaN/ });
  await t.rejects(linearCombination(x, [1, 2] as unknown as Float64Array), { code: 'BIA_INVALID_ARGUMENT', message: /Float64Array/ });
  const w3 = await tensor(new Float64Array([1, 2, 3]), [3]);
  await t.rejects(signedDistance(x, w3, 0), { code: 'BIA_INVALID_ARGUMENT', message: /code shape is w's \[3\], got codes \[2,2\]/ });
  const w0 = await tensor(new Float64Array([0, 0]), [2]);
  await t.rejects(signedDistance(x, w0, 0), { code: 'BIA_INVALID_ARGUMENT', message: /w is zero/ });
  const w2 = await tensor(new Float64Array([1, 1]), [2]);
  await t.rejects(signedDistance(x, w2, NaN), { code: 'BIA_INVALID_ARGUMENT', message: /b must be a finite number/ });
  await t.rejects(signedDistance(nan, w2, 0), { code: 'BIA_INVALID_ARGUMENT', message: /NaN/ });
  // the native layer checks too, for callers of the addon itself
  const { loadAddon } = await import('../ts/native');
  await t.rejects(loadAddon().linearCombination(x.handle, new Float64Array(5)), { code: 'BIA_INVALID_ARGUMENT' });
  await t.rejects(loadAddon().signedDistance(x.handle, w3.handle, 0), { code: 'BIA_INVALID_ARGUMENT' });
  await t.rejects(loadAddon().gram(flat.handle), { code: 'BIA_INVALID_ARGUMENT' });
  for (const z of [x, flat, ints, nan, w3, w0, w2]) z.dispose();
  await t.rejects(gram(x), { code: 'BIA_DISPOSED' });
});

t.test('known answer: points on a line, w = e1 and b = -c exactly, s(h) = h1 - c', async (t) => {
  // Labels 1 at x1 = 1, 3, 5 and 0 at x1 = -1, -2, -4, all shifted by c along e1 and by 10 along another
  // coordinate. The C = 1 SVM has support vectors x1 = ±1 (α = 0.5, free): w = e1, b = -c, margin 1.
  const c = 0.75;
  for (const firstLabel of [1, 0] as const) {
    const pos = [1, 3, 5];
    const neg = [-1, -2, -4];
    const xs = firstLabel === 1 ? [...pos, ...neg] : [...neg, ...pos];
    const labels = xs.map((v) => (v > 0 ? 1 : 0)) as (0 | 1)[];
    const data = new Float32Array(xs.length * D);
    xs.forEach((v, i) => {
      data[i * D] = v + c;
      data[i * D + 5] = 10;
    });
    const codes = await codesOf(data, xs.length);
    const b = await fitBoundary(codes, labels, { holdout: 0 });
    const w = await readW(b);
    t.same(b.w.shape, SHAPE);
    t.ok(Math.abs(w[0] - 1) < 1e-9 && w.slice(1).every((v) => Math.abs(v) < 1e-9), `w = e1 (w0 = ${w[0]}), label order starting with ${firstLabel}`);
    t.ok(Math.abs(b.b + c) < 1e-9, `b = ${b.b}`);
    t.equal(b.bFromRho, -c, 'libsvm printed rho = c');
    t.ok(Math.abs(b.norm - 1) < 1e-9 && Math.abs(b.geometricMargin - 1) < 1e-9);
    t.equal(b.supportVectors, 2);
    t.equal(b.freeSupportVectors, 2);
    t.equal(b.trainAccuracy, 1);
    t.equal(b.heldOutAccuracy, null);
    t.equal(b.heldOutSize, 0);
    t.equal(b.labels, 0.5);
    t.equal(b.majorityRate, 0.5);
    // hand-computed signed distances: s(h) = h1 - c, whatever the other coordinates
    const pts = new Float32Array(3 * D);
    pts[0] = 3;
    pts[D] = -2;
    pts[D + 7] = 100;
    pts[2 * D] = c;
    pts[2 * D + 31] = -8;
    const p = await codesOf(pts, 3);
    const s = await signedDistance(p, b.w, b.b);
    t.ok(Math.abs(s[0] - 2.25) < 1e-9 && Math.abs(s[1] + 2.75) < 1e-9 && Math.abs(s[2]) < 1e-9, `s = ${Array.from(s)}`);
    // orientation: h_r = the code at x1 = 5 + c is on the positive (identity) side; dq = -e1
    const r = xs.indexOf(5);
    const hR = await tensor(data.slice(r * D, (r + 1) * D), SHAPE);
    const o = await orient(b, hR);
    t.ok(Math.abs(o.sR - 5) < 1e-9, `sR = ${o.sR}`);
    t.equal(o.identitySide, 'positive');
    const dq = (await o.dq.data()) as Float64Array;
    t.ok(Math.abs(dq[0] + 1) < 1e-9 && dq.slice(1).every((v) => Math.abs(v) < 1e-9), 'dq = -e1');
    for (const z of [codes, p, hR, o.dq]) z.dispose();
    b.dispose();
    t.ok(b.w.disposed, 'dispose() frees w');
  }
});

t.test('two Gaussian clouds: w along the separating direction, distances, orientation', async (t) => {
  // Mirror-image clouds: the normal is u and the boundary passes through m, whatever the noise.
  const { data, labels, u, n } = clouds({ nPerClass: 60, sep: 4, sigma: 0.3, seed: 11, mirror: true });
  const codes = await codesOf(data, n);
  const b = await fitBoundary(codes, labels, { holdout: 0 });
  const w = await readW(b);
  const wn = Math.sqrt(dot(w, w));
  t.ok(Math.abs(wn - b.norm) < 1e-9 * wn, `norm ${b.norm} = ‖w‖ ${wn}`);
  const angle = (Math.acos(Math.min(1, dot(w, u) / wn)) * 180) / Math.PI;
  t.ok(angle < 0.5, `angle(w, u) = ${angle.toFixed(4)}° (< 0.5°; a random direction is at ~90°)`);
  t.equal(b.trainAccuracy, 1);
  t.equal(b.heldOutAccuracy, null);
  const gap = Math.min(...labels.map((_, i) => Math.abs(alongU(data, i, u))));
  t.ok(Math.abs(b.geometricMargin - gap) < 1e-3 * gap, `margin 1/‖w‖ = ${b.geometricMargin.toFixed(5)}: the nearest code's distance to the mirror plane, ${gap.toFixed(5)}`);

  // signed distances of chosen codes: by hand in JS, (w·h + b)/‖w‖, and the known answer u·(h − m)
  const s = await signedDistance(codes, b.w, b.b);
  for (const i of [0, 1, 7, 64, 119]) {
    const hand = (dot(w, data, 0, i * D) + b.b) / wn;
    t.ok(Math.abs(s[i] - hand) < 1e-12 * (1 + Math.abs(hand)), `s(h_${i}) = ${s[i].toFixed(6)}, by hand ${hand.toFixed(6)}`);
    t.ok(Math.abs(s[i] - alongU(data, i, u)) < 1e-4, `s(h_${i}) = u·(h_${i} − m) = ${alongU(data, i, u).toFixed(6)}`);
  }
  const centre1 = new Float32Array(D).map((_, k) => 2 + 2 * u[k]);
  const centre0 = new Float32Array(D).map((_, k) => 2 - 2 * u[k]);
  const c1 = await tensor(centre1, SHAPE);
  const c0 = await tensor(centre0, SHAPE);
  const m = await tensor(new Float32Array(D).fill(2), SHAPE);
  const [s1] = await signedDistance(c1, b.w, b.b);
  const [s0] = await signedDistance(c0, b.w, b.b);
  const [sm] = await signedDistance(m, b.w, b.b);
  t.ok(Math.abs(s1 - 2) < 1e-4 && Math.abs(s0 + 2) < 1e-4 && Math.abs(sm) < 1e-4, `cloud centres at ±sep/2 = ${s1.toFixed(6)}, ${s0.toFixed(6)}; m on the boundary (${sm.toExponential(1)})`);

  // orientation on the identity side: dq = −w/‖w‖, and walking t along dq lowers s by exactly t
  const o1 = await orient(b, c1);
  t.equal(o1.identitySide, 'positive');
  t.equal(o1.sR, s1);
  const dq = (await o1.dq.data()) as Float64Array;
  t.same(o1.dq.shape, SHAPE);
  t.equal(o1.dq.dtype, 'float64');
  t.ok(Math.abs(Math.sqrt(dot(dq, dq)) - 1) < 1e-12, 'unit');
  t.ok(dq.every((v, k) => Math.abs(v + w[k] / wn) < 1e-12), 'dq = −w/‖w‖');
  t.ok(dot(dq, u) < -0.9999, 'dq points from the label-1 cloud towards label 0, along −u');
  const step = o1.sR + 1;
  const moved = await tensor(new Float64Array(D).map((_, k) => centre1[k] + step * dq[k]), SHAPE);
  const [sMoved] = await signedDistance(moved, b.w, b.b);
  t.ok(Math.abs(sMoved + 1) < 1e-9, `h_r + (s(h_r) + 1)·dq lands at s = ${sMoved} (−1, just outside)`);
  // from the other side: dq = +w/‖w‖, identity side negative
  const o0 = await orient(b, c0);
  t.equal(o0.identitySide, 'negative');
  t.ok(o0.sR < 0);
  const dq0 = (await o0.dq.data()) as Float64Array;
  t.ok(dq0.every((v, k) => Math.abs(v - w[k] / wn) < 1e-12), 'dq = +w/‖w‖');
  // a batch of one works as hR too
  const c1b = await tensor(centre1, [1, ...SHAPE]);
  const o1b = await orient(b, c1b);
  t.equal(o1b.sR, s1);
  await t.rejects(orient(b, codes), { code: 'BIA_INVALID_ARGUMENT', message: /one code of shape \[2,4,4\]/ });
  for (const z of [codes, c1, c0, m, moved, c1b, o1.dq, o0.dq, o1b.dq]) z.dispose();
  b.dispose();

  // independent clouds (no symmetry): the max-margin normal leans on its few support vectors, but stays near u
  const ind = clouds({ nPerClass: 60, sep: 4, sigma: 0.3, seed: 11 });
  const ic = await codesOf(ind.data, ind.n);
  const bi = await fitBoundary(ic, ind.labels);
  const wi = await readW(bi);
  const angleI = (Math.acos(dot(wi, u) / bi.norm) * 180) / Math.PI;
  t.ok(angleI < 25, `independent clouds: angle(w, u) = ${angleI.toFixed(1)}° (< 25°)`);
  t.equal(bi.trainAccuracy, 1);
  t.equal(bi.heldOutAccuracy, 1);
  t.equal(bi.heldOutSize, 30, '25% of each class held out');
  t.equal(bi.trainSize, 90);
  t.same([...bi.trainIndices, ...bi.heldOutIndices].sort((a, c) => a - c), Array.from({ length: ind.n }, (_, i) => i));
  t.equal(bi.heldOutIndices.filter((i) => ind.labels[i] === 1).length, 15, 'stratified');
  const again = await fitBoundary(ic, ind.labels);
  t.same(again.heldOutIndices, bi.heldOutIndices, 'the split is seeded (default seed 909090)');
  const other = await fitBoundary(ic, ind.labels, { seed: 1 });
  t.not(other.heldOutIndices.join(), bi.heldOutIndices.join(), 'another seed, another split');
  for (const z of [ic, bi, again, other]) z.dispose();
});

t.test('the wrap set: nearest the boundary, label 0 first, filled with label 1 when short', async (t) => {
  const { data, labels, n } = clouds({ nPerClass: 30, sep: 3, sigma: 0.5, seed: 5 });
  const codes = await codesOf(data, n);
  const b = await fitBoundary(codes, labels);
  const s = await signedDistance(codes, b.w, b.b);
  const byDistance = (idx: number[]) => [...idx].sort((a, c) => Math.abs(s[a]) - Math.abs(s[c]) || a - c);
  const all = Array.from({ length: n }, (_, i) => i);

  const ws = await wrapSet(codes, labels, b);
  t.equal(ws.indices.length, 8, 'k = 8 by default');
  t.same(ws.indices, byDistance(all.filter((i) => labels[i] === 0)).slice(0, 8), 'the 8 label-0 codes with the smallest |s|');
  t.same(ws.distances, ws.indices.map((i) => s[i]));
  t.same(ws.labels, new Array(8).fill(0));
  t.equal(ws.preferred, 8);
  for (let i = 1; i < 8; i++) t.ok(Math.abs(ws.distances[i]) >= Math.abs(ws.distances[i - 1]), 'nearest first');

  const w1 = await wrapSet(codes, labels, b, { k: 5, prefer: 1 });
  t.same(w1.indices, byDistance(all.filter((i) => labels[i] === 1)).slice(0, 5));
  const wAny = await wrapSet(codes, labels, b, { k: 6, prefer: null });
  t.same(wAny.indices, byDistance(all).slice(0, 6), 'no preference: nearest of either label');

  // only 3 codes of label 0: they come first, then the 5 label-1 codes nearest the boundary
  const few = labels.map((y, i) => (y === 0 && ![0, 1, 3].includes(i) && i > 5 ? 1 : y)) as (0 | 1)[];
  const zeros = all.filter((i) => few[i] === 0);
  t.equal(zeros.length, 3);
  const wf = await wrapSet(codes, few, b);
  t.same(wf.indices, [...byDistance(zeros), ...byDistance(all.filter((i) => few[i] === 1)).slice(0, 5)]);
  t.equal(wf.preferred, 3);
  t.same(wf.labels, [0, 0, 0, 1, 1, 1, 1, 1]);

  const wAll = await wrapSet(codes, labels, b, { k: 1000 });
  t.equal(wAll.indices.length, n, 'k above n gives every code');
  await t.rejects(wrapSet(codes, labels, b, { k: 0 }), { code: 'BIA_INVALID_ARGUMENT', message: /k must be an integer/ });
  await t.rejects(wrapSet(codes, labels.slice(1), b), { code: 'BIA_INVALID_ARGUMENT', message: /one entry per code \(60\), got 59/ });
  await t.rejects(wrapSet(codes, labels, b, { prefer: 2 as 0 }), { code: 'BIA_INVALID_ARGUMENT', message: /prefer must be 0, 1 or null/ });
  codes.dispose();
  b.dispose();
});

t.test('libsvm agreement: (w, b) reproduces libsvm\'s own predictions on training and held-out points', async (t) => {
  const SVM = await loadLibsvm();
  // overlapping clouds (training errors, support vectors at the bound C) and separable ones; both label orders
  const cases = [
    { nPerClass: 80, sep: 1.2, sigma: 0.6, seed: 1, firstLabel: 1 as const, C: 1 },
    { nPerClass: 80, sep: 1.2, sigma: 0.6, seed: 2, firstLabel: 0 as const, C: 1 },
    { nPerClass: 50, sep: 3, sigma: 0.4, seed: 3, firstLabel: 0 as const, C: 0.05 },
    { nPerClass: 50, sep: 1, sigma: 1, seed: 4, firstLabel: 1 as const, C: 10 },
  ];
  for (const cs of cases) {
    const { data, labels, n } = clouds(cs);
    const codes = await codesOf(data, n);
    const b = await fitBoundary(codes, labels, { C: cs.C });
    const ours = await signedDistance(codes, b.w, b.b);
    const lib = await libsvmPredictions(SVM, codes, labels, b, cs.C);
    t.equal(lib.model.labels[0], cs.firstLabel, `libsvm's label order starts with ${cs.firstLabel}`);
    t.equal(lib.model.sv.length, b.supportVectors);
    t.same([...lib.svIndices].sort((a, c) => a - c), b.trainIndices.filter((_, r) => lib.model.sv.some((v) => v.serial === r + 1)));
    const predict = (i: number) => (ours[i] > 0 ? 1 : 0);
    const trainOurs = b.trainIndices.map(predict);
    const heldOurs = b.heldOutIndices.map(predict);
    t.same(trainOurs, lib.trainPred, `training split: ${b.trainSize} predictions agree (C ${cs.C}, accuracy ${b.trainAccuracy.toFixed(3)})`);
    t.same(heldOurs, lib.heldPred, `held-out split: ${b.heldOutSize} predictions agree (accuracy ${b.heldOutAccuracy?.toFixed(3)})`);
    const minAbs = Math.min(...Array.from(ours, Math.abs));
    t.ok(minAbs * b.norm > 1e-6, `no point is within rounding of the boundary (min |w·x + b| = ${(minAbs * b.norm).toExponential(2)})`);
    const acc = (idx: number[]) => idx.filter((i) => predict(i) === labels[i]).length / idx.length;
    t.equal(b.trainAccuracy, acc(b.trainIndices));
    t.equal(b.heldOutAccuracy, acc(b.heldOutIndices));
    if (cs.sigma > 0.5) t.ok(b.trainAccuracy < 1 && b.freeSupportVectors < b.supportVectors, `overlapping: ${b.supportVectors - b.freeSupportVectors} SVs at the bound`);
    codes.dispose();
    b.dispose();
  }
});

t.test('exact b: the mean over free SVs of y − w·x, agreeing with libsvm\'s 6-digit rho', async (t) => {
  const { data, labels, n } = clouds({ nPerClass: 80, sep: 1.2, sigma: 0.6, seed: 1 });
  const codes = await codesOf(data, n);
  const b = await fitBoundary(codes, labels);
  const w = await readW(b);
  t.ok(b.freeSupportVectors > 0 && b.freeSupportVectors < b.supportVectors, `${b.freeSupportVectors} free of ${b.supportVectors} SVs`);
  t.ok(Math.abs(b.b - b.bFromRho) <= 5e-6 * Math.abs(b.bFromRho) + 1e-9, `b ${b.b} agrees with −rho ${b.bFromRho} to 6 digits`);
  // recompute by hand: free SVs are the training codes with y·(w·x + b) = 1 (libsvm's tolerance 1e-3)
  const margins = b.trainIndices.map((i) => ((labels[i] ? 1 : -1) * (dot(w, data, 0, i * D) + b.b)));
  const onMargin = b.trainIndices.filter((_, r) => Math.abs(margins[r] - 1) < 2e-3);
  t.ok(onMargin.length >= b.freeSupportVectors, `${onMargin.length} training codes on the margin`);
  const SVM = await loadLibsvm();
  const lib = await libsvmPredictions(SVM, codes, labels, b, 1);
  const sign = lib.model.labels[0] === 1 ? 1 : -1;
  const free = lib.model.sv.filter((v) => Math.abs(v.coef) < 1 - 1e-12).map((v) => b.trainIndices[v.serial - 1]);
  t.equal(free.length, b.freeSupportVectors);
  const mean = free.reduce((s, i) => s + (labels[i] ? 1 : -1) - dot(w, data, 0, i * D), 0) / free.length;
  t.ok(Math.abs(mean - b.b) < 1e-9, `mean over free SVs ${mean} = b ${b.b}`);
  t.equal(-sign * lib.model.rho, b.bFromRho);
  // every free SV sits on its margin with the exact b (to libsvm's stopping tolerance)
  for (const i of free) t.ok(Math.abs((labels[i] ? 1 : -1) * (dot(w, data, 0, i * D) + b.b) - 1) < 2e-3);
  codes.dispose();
  b.dispose();

  // no free SV (a tiny C puts every α at the bound): b falls back to −rho
  const bal = clouds({ nPerClass: 20, sep: 0.5, sigma: 1, seed: 8 });
  const bc = await codesOf(bal.data, bal.n);
  const tiny = await fitBoundary(bc, bal.labels, { C: 1e-4, holdout: 0 });
  t.equal(tiny.freeSupportVectors, 0, 'every α at the bound C');
  t.equal(tiny.b, tiny.bFromRho, 'b = −rho when no SV is free');
  bc.dispose();
  tiny.dispose();
});

t.test('memory: 200 fits free() every libsvm model and problem, and leave the process healthy', async (t) => {
  const SVM = await loadLibsvm();
  type Internals = { model: unknown; problem: unknown };
  const proto = SVM.prototype as unknown as { free(): void; train(...a: unknown[]): void };
  const realFree = proto.free;
  const realTrain = proto.train;
  let modelsFreed = 0;
  let frees = 0;
  const trained: Internals[] = [];
  proto.free = function (this: Internals) {
    frees++;
    if (this.model !== null) modelsFreed++;
    return realFree.call(this);
  };
  proto.train = function (this: Internals, ...a: unknown[]) {
    trained.push(this);
    return realTrain.apply(this, a);
  };
  try {
    const { data, labels, n } = clouds({ nPerClass: 40, sep: 1.5, sigma: 0.6, seed: 21 });
    const codes = await codesOf(data, n);
    const first = await fitBoundary(codes, labels);
    const w0 = await readW(first);
    first.dispose();
    const live0 = liveTensors();
    gc();
    const rss0 = process.memoryUsage().rss;
    modelsFreed = 0;
    trained.length = 0;
    let last: Boundary | undefined;
    for (let i = 0; i < 200; i++) {
      last?.dispose();
      last = await fitBoundary(codes, labels);
    }
    t.equal(trained.length, 200);
    t.equal(modelsFreed, 200, 'one model freed per fit');
    t.ok(trained.every((s) => s.model === null && s.problem === null), 'no SVM keeps a model or a problem in the wasm heap');
    t.equal(last!.b, first.b, 'the 200th fit equals the first');
    t.same(Array.from(await readW(last!)), Array.from(w0));
    last!.dispose();
    gc();
    const grew = (process.memoryUsage().rss - rss0) / 2 ** 20;
    t.equal(liveTensors(), live0, 'no tensor left behind');
    t.ok(grew < 64, `RSS grew ${grew.toFixed(1)} MiB over 200 fits (bound 64 MiB)`);

    // free() also runs when libsvm throws
    proto.train = () => {
      throw new Error('simulated wasm abort');
    };
    frees = 0;
    await t.rejects(fitBoundary(codes, labels), { code: 'BIA_NATIVE_ERROR', message: /libsvm failed: simulated wasm abort/ });
    t.equal(frees, 1, 'free() after a failed training');
    t.equal(liveTensors(), live0);
    codes.dispose();
  } finally {
    proto.free = realFree;
    proto.train = realTrain;
  }
  t.equal(process.listeners('unhandledRejection').filter((l) => /process\["exit"\]/.test(String(l))).length, 0,
    'libsvm-js\'s process-exiting unhandledRejection handler was removed');
});

t.test('bad input: clear BIA_INVALID_ARGUMENT errors quoting what was seen', async (t) => {
  const { data, labels, n } = clouds({ nPerClass: 5, sep: 3, sigma: 0.3, seed: 2 });
  const codes = await codesOf(data, n);
  await t.rejects(fitBoundary(codes, new Array(n).fill(1)), { code: 'BIA_INVALID_ARGUMENT', message: /labels are all 1 \(10 codes\): a boundary needs both classes/ });
  await t.rejects(fitBoundary(codes, new Uint8Array(n) as unknown as (0 | 1)[]), { code: 'BIA_INVALID_ARGUMENT', message: /labels are all 0/ });
  const three = await codesOf(data.slice(0, 3 * D), 3);
  await t.rejects(fitBoundary(three, [1, 0, 1]), { code: 'BIA_INVALID_ARGUMENT', message: /at least 4 codes, got 3 \(shape \[3,2,4,4\]\)/ });
  await t.rejects(fitBoundary(codes, labels.slice(0, 7)), { code: 'BIA_INVALID_ARGUMENT', message: /labels has 7 entries but there are 10 codes/ });
  await t.rejects(fitBoundary(codes, [...labels.slice(0, 9), 2] as (0 | 1)[]), { code: 'BIA_INVALID_ARGUMENT', message: /labels\[9\] must be 0 or 1, got 2/ });
  await t.rejects(fitBoundary(codes, [...labels.slice(0, 9), true] as unknown as (0 | 1)[]), { code: 'BIA_INVALID_ARGUMENT', message: /got true/ });
  for (const C of [0, -1, NaN, Infinity]) {
    await t.rejects(fitBoundary(codes, labels, { C }), { code: 'BIA_INVALID_ARGUMENT', message: new RegExp(`C must be a positive finite number, got ${C}`) });
  }
  await t.rejects(fitBoundary(codes, labels, { holdout: 1 }), { code: 'BIA_INVALID_ARGUMENT', message: /holdout must be a share in \[0, 1\), got 1/ });
  await t.rejects(fitBoundary(codes, labels, { seed: -3 }), { code: 'BIA_INVALID_ARGUMENT', message: /seed/ });
  const withNaN = data.slice();
  withNaN[4 * D + 9] = NaN;
  const nanCodes = await codesOf(withNaN, n);
  await t.rejects(fitBoundary(nanCodes, labels), { code: 'BIA_INVALID_ARGUMENT', message: /codes hold NaN or Inf \(first in code 4 of 10\)/ });
  await t.rejects(fitBoundary({} as Tensor, labels), { code: 'BIA_INVALID_ARGUMENT', message: /codes must be a Tensor/ });
  const flat = await tensor(data, [n * D]);
  await t.rejects(fitBoundary(flat, labels), { code: 'BIA_INVALID_ARGUMENT', message: /\[n, \.\.\.\]/ });
  const same = await codesOf(new Float32Array(n * D).fill(1), n);
  await t.rejects(fitBoundary(same, labels), { code: 'BIA_INVALID_ARGUMENT', message: /no boundary \(w = 0/ });
  const ac = new AbortController();
  ac.abort();
  await t.rejects(fitBoundary(codes, labels, { signal: ac.signal }), { code: 'BIA_ABORTED' });
  await t.rejects(orient({} as Boundary, codes), { code: 'BIA_INVALID_ARGUMENT', message: /what fitBoundary returned/ });
  for (const z of [codes, three, nanCodes, flat, same]) z.dispose();
});

t.test('speed: a fit on 128 random 512×8×8 codes (32,768-d) takes well under a second', async (t) => {
  const codes = await randn([128, 512, 8, 8], { seed: 909090 });
  const x = (await codes.data()) as Float32Array;
  // labels from a hidden direction (the first 1,000 coordinates): 0/1 in about equal shares
  const labels = Array.from({ length: 128 }, (_, i) => {
    let s = 0;
    for (let k = 0; k < 1000; k++) s += x[i * 32768 + k];
    return s > 0 ? 1 : 0;
  }) as (0 | 1)[];
  let t0 = performance.now();
  const cold = await fitBoundary(codes, labels);
  const coldMs = performance.now() - t0;
  cold.dispose();
  const times: number[] = [];
  let b: Boundary | undefined;
  for (let i = 0; i < 5; i++) {
    b?.dispose();
    t0 = performance.now();
    b = await fitBoundary(codes, labels);
    times.push(performance.now() - t0);
  }
  const median = [...times].sort((a, c) => a - c)[2];
  t.comment(`fitBoundary n = 128, d = 32,768: first call ${coldMs.toFixed(0)} ms (libsvm-js load included), then median ${median.toFixed(1)} ms of ${times.map((v) => v.toFixed(0)).join(', ')} ms`);
  t.ok(median < 500, `median fit ${median.toFixed(1)} ms (< 500 ms)`);
  t.ok(coldMs < 1000, `first fit ${coldMs.toFixed(0)} ms (< 1 s)`);
  t.same(b!.w.shape, [512, 8, 8]);
  t.equal(b!.trainSize + b!.heldOutSize, 128);
  t.equal(b!.trainAccuracy, 1, 'n < d: the training split is separable');
  t.comment(`train ${b!.trainAccuracy}, held-out ${b!.heldOutAccuracy?.toFixed(3)} (majority rate ${b!.majorityRate.toFixed(3)}), ${b!.supportVectors} SVs, b ${b!.b} vs −rho ${b!.bFromRho}`);
  // libsvm agreement holds in the 32,768-d space too
  const SVM = await loadLibsvm();
  const lib = await libsvmPredictions(SVM, codes, labels, b!, 1);
  const s = await signedDistance(codes, b!.w, b!.b);
  t.same(b!.trainIndices.map((i) => (s[i] > 0 ? 1 : 0)), lib.trainPred, 'training predictions agree with libsvm');
  t.same(b!.heldOutIndices.map((i) => (s[i] > 0 ? 1 : 0)), lib.heldPred, 'held-out predictions agree with libsvm');
  t.ok(Math.abs(b!.b - b!.bFromRho) <= 5e-6 * Math.abs(b!.bFromRho) + 1e-6, 'b agrees with rho to 6 digits');
  codes.dispose();
  b!.dispose();
});

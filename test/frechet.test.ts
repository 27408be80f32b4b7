import t from 'tap';
import { fitProjection, frechetDistance, frechetFromStats, meanCov, project, sqrtPsd, symmetricEigen, type FeatureSet } from '../ts/metrics/frechet';
import { createRng } from '../ts/world/attributes';

function gaussianSet(n: number, d: number, seed: number, mean: number[] = [], scale: number[] = []): FeatureSet {
  const rng = createRng(seed);
  const data = new Float64Array(n * d);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < d; j++) {
      const z = Math.sqrt(-2 * Math.log(Math.max(rng(), 1e-12))) * Math.cos(2 * Math.PI * rng());
      data[i * d + j] = (mean[j] ?? 0) + (scale[j] ?? 1) * z;
    }
  }
  return { data, n, d };
}

t.test('identical sets are at distance 0', async (t) => {
  const a = gaussianSet(300, 8, 1);
  t.ok(Math.abs(frechetDistance(a, a)) < 1e-8, `FD(a, a) = ${frechetDistance(a, a)}`);
});

t.test('closed forms: a mean shift adds ‖Δμ‖², a scale change adds d·(σ₁ − σ₂)²', async (t) => {
  const d = 4;
  const I = new Float64Array(d * d);
  for (let i = 0; i < d; i++) I[i * d + i] = 1;
  const m0 = new Float64Array(d);
  const m1 = Float64Array.from([1, 2, 0, 0]);
  t.ok(Math.abs(frechetFromStats(m0, I, m1, I) - 5) < 1e-9, 'mean shift');
  const I4 = I.map((v) => 4 * v);
  // Σ₁ = I, Σ₂ = 4I: tr(I) + tr(4I) − 2·tr(2I) = d·(1 + 4 − 4) = d.
  t.ok(Math.abs(frechetFromStats(m0, I, m0, I4) - d) < 1e-9, 'scale');
  // Non-commuting covariances against a brute-force value: Σ₁ = [[2,1],[1,2]], Σ₂ = [[1,0],[0,3]].
  const c1 = Float64Array.from([2, 1, 1, 2]);
  const c2 = Float64Array.from([1, 0, 0, 3]);
  const s1 = sqrtPsd(c1, 2);
  // (s1)² = c1
  const sq = [s1[0] * s1[0] + s1[1] * s1[2], s1[0] * s1[1] + s1[1] * s1[3], s1[2] * s1[0] + s1[3] * s1[2], s1[2] * s1[1] + s1[3] * s1[3]];
  sq.forEach((v, i) => t.ok(Math.abs(v - c1[i]) < 1e-10, `sqrt² = Σ at ${i}`));
  // tr sqrt(Σ₁^½ Σ₂ Σ₁^½) = tr sqrt of a 2×2 PSD M = sqrt(tr M + 2·sqrt(det M)); det M = det Σ₁·det Σ₂ = 9, tr M = tr(Σ₁Σ₂) = 2 + 6 = 8.
  const expected = 4 + 4 - 2 * Math.sqrt(8 + 2 * 3);
  t.ok(Math.abs(frechetFromStats(new Float64Array(2), c1, new Float64Array(2), c2) - expected) < 1e-9, 'non-commuting covariances');
});

t.test('sample estimates: a shifted set is farther than a second draw of the same distribution', async (t) => {
  const ref = gaussianSet(400, 6, 3);
  const same = gaussianSet(400, 6, 4);
  const shifted = gaussianSet(400, 6, 5, [0.8, 0, 0, 0, 0, 0]);
  const wider = gaussianSet(400, 6, 6, [], [2, 2, 2, 2, 2, 2]);
  const [f0, f1, f2] = [frechetDistance(same, ref), frechetDistance(shifted, ref), frechetDistance(wider, ref)];
  t.ok(f0 < 0.2, `same distribution ${f0}`);
  t.ok(f1 > f0 + 0.4, `shifted ${f1}`);
  t.ok(f2 > f0 + 3, `wider ${f2}`);
});

t.test('eigen-decomposition reconstructs the matrix; PCA keeps the dominant directions', async (t) => {
  const s = gaussianSet(500, 5, 7, [], [5, 1, 1, 0.5, 0.1]);
  const { cov } = meanCov(s);
  const { values, vectors } = symmetricEigen(cov, 5);
  for (let k = 1; k < 5; k++) t.ok(values[k] <= values[k - 1], 'descending');
  let err = 0;
  for (let i = 0; i < 5; i++) {
    for (let j = 0; j < 5; j++) {
      let v = 0;
      for (let k = 0; k < 5; k++) v += vectors[i * 5 + k] * values[k] * vectors[j * 5 + k];
      err = Math.max(err, Math.abs(v - cov[i * 5 + j]));
    }
  }
  t.ok(err < 1e-9, `V·diag(w)·Vᵀ = Σ (max error ${err})`);
  const p = fitProjection(s, 1);
  t.ok(p.explained > 0.8, `one component explains ${p.explained}`);
  t.ok(Math.abs(p.components[0]) > 0.99, 'the first component is the widest axis');
  const q = project(p, s);
  t.equal(q.d, 1);
  t.equal(q.n, 500);
});

t.test('bad input is refused with a code', async (t) => {
  t.throws(() => frechetDistance({ data: new Float64Array(4), n: 2, d: 2 }, { data: new Float64Array(6), n: 2, d: 3 }), { code: 'BIA_INVALID_ARGUMENT' });
  t.throws(() => meanCov({ data: Float64Array.from([0, NaN, 1, 2]), n: 2, d: 2 }), { code: 'BIA_INVALID_ARGUMENT' });
  t.throws(() => meanCov({ data: new Float64Array(3), n: 2, d: 2 }), { code: 'BIA_INVALID_ARGUMENT' });
  t.throws(() => fitProjection(gaussianSet(10, 3, 1), 4), { code: 'BIA_INVALID_ARGUMENT' });
});

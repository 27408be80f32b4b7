/**
 * Fréchet distance between two sets of feature vectors (the FID formula, for any feature network):
 *   FD = ‖μ₁ − μ₂‖² + tr Σ₁ + tr Σ₂ − 2·tr (Σ₁^½ Σ₂ Σ₁^½)^½
 * in float64, with a symmetric eigen-decomposition (cyclic Jacobi) for the matrix square roots, and a PCA
 * projection fitted on a reference set so that a few hundred images give a stable estimate in a low
 * dimension (a 256-d covariance from 100 images is rank-deficient).
 */
import { invalidArgument } from '../errors';

/** Rows of a [n, d] matrix, row-major. */
export interface FeatureSet {
  data: Float64Array | Float32Array;
  n: number;
  d: number;
}

function checkSet(s: FeatureSet, what: string): void {
  if (!s || !Number.isInteger(s.n) || !Number.isInteger(s.d) || s.n < 2 || s.d < 1 || s.data?.length !== s.n * s.d) {
    throw invalidArgument(`${what} must be {data, n ≥ 2, d ≥ 1} with data.length = n·d`);
  }
  for (let i = 0; i < s.data.length; i++) if (!Number.isFinite(s.data[i])) throw invalidArgument(`${what} contains NaN or Inf (row ${Math.floor(i / s.d)})`);
}

/** Mean [d] and unbiased covariance [d, d] (row-major). */
export function meanCov(s: FeatureSet): { mean: Float64Array; cov: Float64Array } {
  checkSet(s, 'features');
  const { n, d, data } = s;
  const mean = new Float64Array(d);
  for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) mean[j] += data[i * d + j];
  for (let j = 0; j < d; j++) mean[j] /= n;
  const cov = new Float64Array(d * d);
  const c = new Float64Array(d);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < d; j++) c[j] = data[i * d + j] - mean[j];
    for (let a = 0; a < d; a++) {
      const ca = c[a];
      if (ca === 0) continue;
      for (let b = a; b < d; b++) cov[a * d + b] += ca * c[b];
    }
  }
  for (let a = 0; a < d; a++) {
    for (let b = a; b < d; b++) {
      const v = cov[a * d + b] / (n - 1);
      cov[a * d + b] = v;
      cov[b * d + a] = v;
    }
  }
  return { mean, cov };
}

/**
 * Eigen-decomposition of a symmetric [d, d] matrix by cyclic Jacobi rotations: A = V·diag(w)·Vᵀ.
 * Eigenvalues in descending order; V's columns are the eigenvectors (row-major V[i·d + k] = v_k[i]).
 */
export function symmetricEigen(a: Float64Array, d: number): { values: Float64Array; vectors: Float64Array } {
  if (a.length !== d * d) throw invalidArgument(`matrix must have ${d}×${d} entries, got ${a.length}`);
  const A = Float64Array.from(a);
  const V = new Float64Array(d * d);
  for (let i = 0; i < d; i++) V[i * d + i] = 1;
  let scale = 0;
  for (let i = 0; i < d * d; i++) scale += A[i] * A[i];
  const tol = 1e-22 * Math.max(scale, 1e-300);
  for (let sweep = 0; sweep < 100; sweep++) {
    let off = 0;
    for (let p = 0; p < d; p++) for (let q = p + 1; q < d; q++) off += A[p * d + q] * A[p * d + q];
    if (off <= tol) break;
    for (let p = 0; p < d; p++) {
      for (let q = p + 1; q < d; q++) {
        const apq = A[p * d + q];
        if (Math.abs(apq) < 1e-300) continue;
        const app = A[p * d + p];
        const aqq = A[q * d + q];
        const theta = (aqq - app) / (2 * apq);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const s = t * c;
        for (let k = 0; k < d; k++) {
          const akp = A[k * d + p];
          const akq = A[k * d + q];
          A[k * d + p] = c * akp - s * akq;
          A[k * d + q] = s * akp + c * akq;
        }
        for (let k = 0; k < d; k++) {
          const apk = A[p * d + k];
          const aqk = A[q * d + k];
          A[p * d + k] = c * apk - s * aqk;
          A[q * d + k] = s * apk + c * aqk;
        }
        for (let k = 0; k < d; k++) {
          const vkp = V[k * d + p];
          const vkq = V[k * d + q];
          V[k * d + p] = c * vkp - s * vkq;
          V[k * d + q] = s * vkp + c * vkq;
        }
      }
    }
  }
  const order = Array.from({ length: d }, (_, i) => i).sort((i, j) => A[j * d + j] - A[i * d + i]);
  const values = Float64Array.from(order, (i) => A[i * d + i]);
  const vectors = new Float64Array(d * d);
  order.forEach((src, k) => {
    for (let i = 0; i < d; i++) vectors[i * d + k] = V[i * d + src];
  });
  return { values, vectors };
}

/** The PSD square root of a symmetric matrix (negative eigenvalues from round-off are clipped to 0). */
export function sqrtPsd(a: Float64Array, d: number): Float64Array {
  const { values, vectors } = symmetricEigen(a, d);
  const out = new Float64Array(d * d);
  for (let k = 0; k < d; k++) {
    const r = Math.sqrt(Math.max(values[k], 0));
    if (r === 0) continue;
    for (let i = 0; i < d; i++) {
      const vi = vectors[i * d + k] * r;
      if (vi === 0) continue;
      for (let j = 0; j < d; j++) out[i * d + j] += vi * vectors[j * d + k];
    }
  }
  return out;
}

function matmul(a: Float64Array, b: Float64Array, d: number): Float64Array {
  const out = new Float64Array(d * d);
  for (let i = 0; i < d; i++) {
    for (let k = 0; k < d; k++) {
      const aik = a[i * d + k];
      if (aik === 0) continue;
      for (let j = 0; j < d; j++) out[i * d + j] += aik * b[k * d + j];
    }
  }
  return out;
}

/** FD between two Gaussians given by their means and covariances. */
export function frechetFromStats(m1: Float64Array, c1: Float64Array, m2: Float64Array, c2: Float64Array): number {
  const d = m1.length;
  if (m2.length !== d || c1.length !== d * d || c2.length !== d * d) throw invalidArgument('the two sets must have the same feature dimension');
  let diff = 0;
  for (let j = 0; j < d; j++) diff += (m1[j] - m2[j]) ** 2;
  let tr = 0;
  for (let j = 0; j < d; j++) tr += c1[j * d + j] + c2[j * d + j];
  const s1 = sqrtPsd(c1, d);
  const inner = matmul(matmul(s1, c2, d), s1, d);
  // Symmetrise against round-off before the eigen-decomposition.
  for (let i = 0; i < d; i++) for (let j = i + 1; j < d; j++) inner[i * d + j] = inner[j * d + i] = (inner[i * d + j] + inner[j * d + i]) / 2;
  const { values } = symmetricEigen(inner, d);
  let trSqrt = 0;
  for (const v of values) trSqrt += Math.sqrt(Math.max(v, 0));
  return Math.max(0, diff + tr - 2 * trSqrt);
}

/** FD between two feature sets of the same dimension. */
export function frechetDistance(a: FeatureSet, b: FeatureSet): number {
  if (a.d !== b.d) throw invalidArgument(`feature dimensions differ: ${a.d} vs ${b.d}`);
  const sa = meanCov(a);
  const sb = meanCov(b);
  return frechetFromStats(sa.mean, sa.cov, sb.mean, sb.cov);
}

/** A PCA projection fitted on a reference set: x ↦ Vₖᵀ(x − μ), k components. */
export interface Projection {
  mean: Float64Array;
  /** [d, k] row-major. */
  components: Float64Array;
  d: number;
  k: number;
  /** Share of the reference variance the k components keep. */
  explained: number;
}

export function fitProjection(ref: FeatureSet, k: number): Projection {
  const { mean, cov } = meanCov(ref);
  const d = ref.d;
  if (!Number.isInteger(k) || k < 1 || k > d) throw invalidArgument(`k must be an integer in [1, ${d}], got ${k}`);
  const { values, vectors } = symmetricEigen(cov, d);
  const components = new Float64Array(d * k);
  for (let i = 0; i < d; i++) for (let j = 0; j < k; j++) components[i * k + j] = vectors[i * d + j];
  let total = 0;
  let kept = 0;
  values.forEach((v, i) => {
    total += Math.max(v, 0);
    if (i < k) kept += Math.max(v, 0);
  });
  return { mean, components, d, k, explained: total > 0 ? kept / total : 1 };
}

export function project(p: Projection, s: FeatureSet): FeatureSet {
  checkSet(s, 'features');
  if (s.d !== p.d) throw invalidArgument(`features have dimension ${s.d}, the projection ${p.d}`);
  const out = new Float64Array(s.n * p.k);
  for (let i = 0; i < s.n; i++) {
    for (let a = 0; a < p.d; a++) {
      const x = s.data[i * p.d + a] - p.mean[a];
      if (x === 0) continue;
      for (let j = 0; j < p.k; j++) out[i * p.k + j] += x * p.components[a * p.k + j];
    }
  }
  return { data: out, n: s.n, d: p.k };
}

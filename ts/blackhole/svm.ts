/**
 * The black-hole boundary (docs/method.md steps 6–7): a linear SVM on h-space codes.
 *
 * The codes h_j ([n, C, H, W], 32,768 numbers each for the 256² model) stay in C++. LibTorch computes
 * the float64 Gram matrix K = X·Xᵀ, libsvm-js (libsvm 3.22 in wasm) fits a C-SVC on it as a
 * PRECOMPUTED kernel, and only the SVM's coefficients come back: the normal w = Σ c_i·x_i is built in
 * C++ (float64, the shape of one code). libsvm prints rho with 6 significant digits, so b is recomputed
 * exactly as the mean over free support vectors of (y_i − w·x_i) (docs/method.md, step 6).
 *
 * Orientation: y = +1 is label 1 ("same identity"), so s(h) = (w·h + b)/‖w‖ > 0 on the identity side.
 *
 * Measured fit time (fitBoundary, n = 128 random codes of [512, 8, 8] = 32,768-d, holdout 0.25 so libsvm
 * trains on 96, CPU LibTorch 1.13 + OpenBLAS, 2-core AMD EPYC, 2 threads; test/svm.test.ts prints it):
 * 32–52 ms warm (median of 5; the Gram matrix ≈ 24 ms, libsvm 1–2 ms, w ≈ 8 ms, the rest reading K),
 * 0.22–0.27 s for the first call of a process (loading libsvm-js's wasm and first-touch allocations).
 */
import { aborted, BiaError, invalidArgument } from '../errors';
import { runJob, type JobOptions } from '../jobs';
import { loadAddon } from '../native';
import { checkInt, checkSignal } from '../options';
import { Tensor } from '../tensor';

// ---------------------------------------------------------------------------------------------
// Native linear algebra on codes (native/blackhole.cc)
// ---------------------------------------------------------------------------------------------

const FLOAT_DTYPES = ['float32', 'float64', 'float16', 'bfloat16'];

function checkCodes(codes: unknown, what = 'codes'): Tensor {
  if (!(codes instanceof Tensor)) throw invalidArgument(`${what} must be a Tensor of codes [n, ...]`);
  const shape = codes.shape;
  if (shape.length < 2 || shape[0] < 1 || codes.numel === 0) {
    throw invalidArgument(`${what} must be a batch of codes [n, ...] with n >= 1 and non-empty codes, got shape ${JSON.stringify(shape)}`);
  }
  if (!FLOAT_DTYPES.includes(codes.dtype)) throw invalidArgument(`${what} must be a floating-point tensor, got ${codes.dtype}`);
  return codes;
}

function checkNormal(w: unknown, what = 'w'): Tensor {
  if (!(w instanceof Tensor)) throw invalidArgument(`${what} must be a Tensor`);
  if (w.numel === 0) throw invalidArgument(`${what} is empty`);
  if (!FLOAT_DTYPES.includes(w.dtype)) throw invalidArgument(`${what} must be a floating-point tensor, got ${w.dtype}`);
  return w;
}

function checkFinite(value: unknown, what: string): number {
  if (typeof value !== 'number' || !Number.isFinite(value)) throw invalidArgument(`${what} must be a finite number, got ${String(value)}`);
  return value;
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

/** K = X·Xᵀ in float64 for X = codes.reshape(n, -1): an [n, n] tensor on the CPU. NaN/Inf codes are refused. */
export async function gram(codes: Tensor, opts?: JobOptions): Promise<Tensor> {
  const h = checkCodes(codes).handle;
  return new Tensor(await runJob(opts, (n) => loadAddon().gram(h, n)));
}

/** w = Σ coef_i·codes_i in float64, shaped like one code, on the codes' device. */
export async function linearCombination(codes: Tensor, coef: Float64Array, opts?: JobOptions): Promise<Tensor> {
  const h = checkCodes(codes).handle;
  if (!(coef instanceof Float64Array)) throw invalidArgument('coef must be a Float64Array');
  if (coef.length !== codes.shape[0]) throw invalidArgument(`coef has ${coef.length} values but there are ${codes.shape[0]} codes`);
  const bad = coef.findIndex((v) => !Number.isFinite(v));
  if (bad >= 0) throw invalidArgument(`coef[${bad}] is ${coef[bad]}, not a finite number`);
  return new Tensor(await runJob(opts, (n) => loadAddon().linearCombination(h, coef, n)));
}

/**
 * Signed distances s(x_i) = (w·vec(x_i) + b)/‖w‖ in float64, one per code. `codes` is [n, ...w.shape],
 * or a single code of w's shape.
 */
export async function signedDistance(codes: Tensor, w: Tensor, b: number, opts?: JobOptions): Promise<Float64Array> {
  checkNormal(w);
  if (!(codes instanceof Tensor)) throw invalidArgument('codes must be a Tensor');
  checkFinite(b, 'b');
  const cs = codes.shape;
  const ws = w.shape;
  if (!sameShape(cs, ws) && !(cs.length === ws.length + 1 && sameShape(cs.slice(1), ws))) {
    throw invalidArgument(`signedDistance needs codes [n, ...] whose code shape is w's ${JSON.stringify(ws)}, got codes ${JSON.stringify(cs)}`);
  }
  const hc = codes.handle;
  const hw = w.handle;
  return runJob(opts, (n) => loadAddon().signedDistance(hc, hw, b, n));
}

// ---------------------------------------------------------------------------------------------
// libsvm-js
// ---------------------------------------------------------------------------------------------

/** The part of libsvm-js's SVM class this library uses (the package has no typings). */
export interface LibsvmSVM {
  train(samples: ArrayLike<number>[], labels: number[]): void;
  predictOne(sample: ArrayLike<number>): number;
  predict(samples: ArrayLike<number>[]): number[];
  serializeModel(): string;
  getLabels(): number[];
  getSVIndices(): number[];
  free(): void;
}

export interface LibsvmOptions {
  type: string;
  kernel: string;
  cost: number;
  quiet: boolean;
  tolerance?: number;
  shrinking?: boolean;
}

export interface LibsvmClass {
  new (options: LibsvmOptions): LibsvmSVM;
  readonly SVM_TYPES: { readonly C_SVC: string };
  readonly KERNEL_TYPES: { readonly PRECOMPUTED: string };
}

let libsvm: Promise<LibsvmClass> | undefined;

/**
 * libsvm-js's SVM class, loaded once. Two side effects of its emscripten glue are undone here: it would
 * print "wasm streaming compile failed" to stderr (Node ≥ 18 has `fetch`, which cannot read a file path;
 * `fetch` is hidden for the synchronous require, so it reads the wasm file directly), and it installs a
 * process-wide `unhandledRejection` handler that calls process.exit(1) (removed again).
 */
export function loadLibsvm(): Promise<LibsvmClass> {
  if (libsvm) return libsvm;
  const before = new Set(process.listeners('unhandledRejection'));
  const fetchDescriptor = Object.getOwnPropertyDescriptor(globalThis, 'fetch');
  let loaded: Promise<LibsvmClass>;
  try {
    Object.defineProperty(globalThis, 'fetch', { value: undefined, configurable: true, writable: true });
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    loaded = require('libsvm-js') as Promise<LibsvmClass>;
  } catch (e) {
    throw new BiaError('BIA_NATIVE_ERROR', `libsvm-js cannot be loaded: ${(e as Error).message}`, { cause: e });
  } finally {
    if (fetchDescriptor) Object.defineProperty(globalThis, 'fetch', fetchDescriptor);
    else delete (globalThis as { fetch?: unknown }).fetch;
    for (const l of process.listeners('unhandledRejection')) {
      if (!before.has(l)) process.removeListener('unhandledRejection', l);
    }
  }
  libsvm = Promise.resolve(loaded).catch((e: unknown) => {
    libsvm = undefined;
    throw new BiaError('BIA_NATIVE_ERROR', `libsvm-js cannot be loaded: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  });
  return libsvm;
}

/** What a serialized two-class PRECOMPUTED libsvm model says. */
export interface LibsvmModelText {
  /** The class order: sv_coef and the decision value are relative to labels[0]. */
  labels: [number, number];
  /** libsvm's rho, as printed (6 significant digits). */
  rho: number;
  /** Per support vector: sv_coef = α_i·y_i (y = +1 for labels[0]) and the 1-based serial of its training row. */
  sv: { coef: number; serial: number }[];
}

function badModel(why: string): BiaError {
  return new BiaError('BIA_NATIVE_ERROR', `libsvm-js returned a model this library cannot read: ${why}`);
}

/** Parse libsvm's serialized model (header lines, then `SV`, then `<sv_coef> 0:<serial>` per support vector). */
export function parseLibsvmModel(text: string): LibsvmModelText {
  const lines = text.split('\n').map((l) => l.trim());
  const svAt = lines.indexOf('SV');
  if (svAt < 0) throw badModel('no SV section');
  const header = new Map<string, string[]>();
  for (const line of lines.slice(0, svAt)) {
    if (!line) continue;
    const [key, ...values] = line.split(/\s+/);
    header.set(key, values);
  }
  const one = (key: string): string => {
    const v = header.get(key);
    if (!v || v.length !== 1) throw badModel(`header '${key}' is ${v ? v.join(' ') : 'missing'}`);
    return v[0];
  };
  if (one('svm_type') !== 'c_svc') throw badModel(`svm_type is ${one('svm_type')}, not c_svc`);
  if (one('kernel_type') !== 'precomputed') throw badModel(`kernel_type is ${one('kernel_type')}, not precomputed`);
  if (one('nr_class') !== '2') throw badModel(`nr_class is ${one('nr_class')}, not 2`);
  const rho = Number(one('rho'));
  const totalSv = Number(one('total_sv'));
  const labels = (header.get('label') ?? []).map(Number);
  if (!Number.isFinite(rho)) throw badModel(`rho is ${one('rho')}`);
  if (labels.length !== 2 || !labels.every((l) => l === 0 || l === 1) || labels[0] === labels[1]) {
    throw badModel(`label is '${(header.get('label') ?? []).join(' ')}'`);
  }
  const sv: { coef: number; serial: number }[] = [];
  for (const line of lines.slice(svAt + 1)) {
    if (!line) continue;
    const m = /^(\S+)\s+0:(\d+)$/.exec(line);
    const coef = m ? Number(m[1]) : NaN;
    if (!m || !Number.isFinite(coef)) throw badModel(`support-vector line '${line}'`);
    sv.push({ coef, serial: Number(m[2]) });
  }
  if (sv.length !== totalSv) throw badModel(`total_sv is ${totalSv} but ${sv.length} support vectors are listed`);
  return { labels: labels as [number, number], rho, sv };
}

/** Rows of a precomputed-kernel problem: row r is [serial r+1, K(rows[r], cols[0..])] (serial 0 for prediction). */
export function precomputedRows(K: Float64Array, n: number, rows: readonly number[], cols: readonly number[], serials = true): Float64Array[] {
  return rows.map((i, r) => {
    const row = new Float64Array(cols.length + 1);
    row[0] = serials ? r + 1 : 0;
    for (let c = 0; c < cols.length; c++) row[c + 1] = K[i * n + cols[c]];
    return row;
  });
}

// ---------------------------------------------------------------------------------------------
// fitBoundary
// ---------------------------------------------------------------------------------------------

export interface FitBoundaryOptions {
  /** The SVM's cost C (> 0). Default 1 (the released code). */
  C?: number;
  /** Share of the codes held out (stratified by label) to measure accuracy; in [0, 1). Default 0.25. */
  holdout?: number;
  /** Seed of the held-out split. Default 909090 (the released code's seed). */
  seed?: number;
  signal?: AbortSignal;
}

/** The black-hole boundary: the hyperplane w·h + b = 0, positive on the label-1 (identity) side. */
export interface Boundary extends Disposable {
  /** The normal, float64, the shape of one code, on the codes' device. Owned by the boundary: dispose() frees it. */
  w: Tensor;
  /** The exact intercept: mean over free support vectors of (y_i − w·x_i), y ∈ {−1, +1}. */
  b: number;
  /** −rho from libsvm's model (6 significant digits), oriented like b: the fallback, and a check. */
  bFromRho: number;
  /** ‖w‖. */
  norm: number;
  /** The geometric margin 1/‖w‖. */
  geometricMargin: number;
  /** Accuracy of sign(w·x + b) on the training split. */
  trainAccuracy: number;
  /** Accuracy on the held-out split; null when nothing was held out. Compare it with majorityRate. */
  heldOutAccuracy: number | null;
  heldOutSize: number;
  trainSize: number;
  /** Indices (into the codes) of the training and held-out splits, ascending. */
  trainIndices: number[];
  heldOutIndices: number[];
  /** Number of support vectors, and of free ones (0 < α < C) that b was computed from. */
  supportVectors: number;
  freeSupportVectors: number;
  /** Share of label 1 among all codes. */
  labels: number;
  /** max(labels, 1 − labels): the accuracy of always guessing the majority class. */
  majorityRate: number;
  C: number;
  dispose(): void;
}

/** A small seeded PRNG (mulberry32): uniform numbers in [0, 1). */
export function prng(seed: number): () => number {
  let a = (seed % 0x100000000 ^ Math.floor(seed / 0x100000000)) >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Stratified split: round(holdout·count) of each class held out, at least one of each class kept for training. */
function split(labels: Uint8Array, holdout: number, seed: number): { train: number[]; heldOut: number[] } {
  const rand = prng(seed);
  const train: number[] = [];
  const heldOut: number[] = [];
  for (const cls of [0, 1]) {
    const members: number[] = [];
    labels.forEach((y, i) => {
      if (y === cls) members.push(i);
    });
    for (let i = members.length - 1; i > 0; i--) {
      const j = Math.floor(rand() * (i + 1));
      [members[i], members[j]] = [members[j], members[i]];
    }
    const h = Math.min(Math.round(holdout * members.length), members.length - 1);
    heldOut.push(...members.slice(0, h));
    train.push(...members.slice(h));
  }
  train.sort((a, b) => a - b);
  heldOut.sort((a, b) => a - b);
  return { train, heldOut };
}

function checkLabels(labels: unknown, n: number): Uint8Array {
  if (labels === null || typeof labels !== 'object' || typeof (labels as ArrayLike<unknown>).length !== 'number') {
    throw invalidArgument('labels must be an array (or typed array) of 0 and 1');
  }
  const l = labels as ArrayLike<unknown>;
  if (l.length !== n) throw invalidArgument(`labels has ${l.length} entries but there are ${n} codes`);
  const y = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    if (l[i] !== 0 && l[i] !== 1) throw invalidArgument(`labels[${i}] must be 0 or 1, got ${JSON.stringify(l[i])}`);
    y[i] = l[i] as number;
  }
  const ones = y.reduce((s, v) => s + v, 0);
  if (ones === 0 || ones === n) {
    throw invalidArgument(
      `labels are all ${ones === 0 ? 0 : 1} (${n} codes): a boundary needs both classes ` +
        '(1 = the same identity, 0 = another); see the α calibration of docs/method.md step 3',
    );
  }
  return y;
}

function throwIfAborted(signal?: AbortSignal): void {
  if (signal?.aborted) throw aborted(signal);
}

/**
 * Fit the black-hole boundary on labelled codes (docs/method.md step 6): a linear C-SVC through libsvm-js on
 * the float64 Gram matrix, w recovered in C++, b recomputed exactly. Labels: 1 = the same identity.
 */
export async function fitBoundary(codes: Tensor, labels: ArrayLike<0 | 1>, opts: FitBoundaryOptions = {}): Promise<Boundary> {
  if (opts === null || typeof opts !== 'object') throw invalidArgument('options must be an object');
  checkCodes(codes);
  const n = codes.shape[0];
  if (n < 4) throw invalidArgument(`fitBoundary needs at least 4 codes, got ${n} (shape ${JSON.stringify(codes.shape)})`);
  const y = checkLabels(labels, n);
  const C = opts.C ?? 1;
  if (typeof C !== 'number' || !Number.isFinite(C) || C <= 0) throw invalidArgument(`C must be a positive finite number, got ${String(C)}`);
  const holdout = opts.holdout ?? 0.25;
  if (typeof holdout !== 'number' || !(holdout >= 0 && holdout < 1)) throw invalidArgument(`holdout must be a share in [0, 1), got ${String(holdout)}`);
  const seed = checkInt(opts.seed ?? 909090, 'seed', 0, Number.MAX_SAFE_INTEGER);
  checkSignal(opts.signal);
  const job = { signal: opts.signal };

  const SVM = await loadLibsvm();
  throwIfAborted(opts.signal);
  const kT = await gram(codes, job);
  let K: Float64Array;
  try {
    K = (await kT.data(job)) as Float64Array;
  } finally {
    kT.dispose();
  }
  throwIfAborted(opts.signal);

  // libsvm on the training split. Its decision value is Σ sv_coef·K − rho, positive for labels[0].
  const { train, heldOut } = split(y, holdout, seed);
  const svm = new SVM({ type: SVM.SVM_TYPES.C_SVC, kernel: SVM.KERNEL_TYPES.PRECOMPUTED, cost: C, quiet: true });
  let model: LibsvmModelText;
  try {
    svm.train(precomputedRows(K, n, train, train), train.map((i) => y[i]));
    model = parseLibsvmModel(svm.serializeModel());
  } catch (e) {
    if (e instanceof BiaError) throw e;
    throw new BiaError('BIA_NATIVE_ERROR', `libsvm failed: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  } finally {
    svm.free();
  }

  // Our orientation: y = +1 for label 1. sv_coef is relative to labels[0].
  const sign = model.labels[0] === 1 ? 1 : -1;
  const coef = new Float64Array(n);
  const svIndex: number[] = [];
  for (const { coef: c, serial } of model.sv) {
    if (serial < 1 || serial > train.length) throw badModel(`support-vector serial ${serial} is outside 1..${train.length}`);
    const i = train[serial - 1];
    coef[i] = sign * c;
    svIndex.push(i);
  }
  const bFromRho = -sign * model.rho;

  // w·x_j for every code, from the Gram matrix (the same numbers as w·x_j with w built below, in float64).
  const dot = new Float64Array(n);
  for (const i of svIndex) {
    const c = coef[i];
    for (let j = 0; j < n; j++) dot[j] += c * K[i * n + j];
  }
  let normSq = 0;
  for (const i of svIndex) normSq += coef[i] * dot[i];
  const norm = Math.sqrt(Math.max(normSq, 0));
  if (!(norm > 0)) {
    throw new BiaError('BIA_INVALID_ARGUMENT', `the SVM found no boundary (w = 0, ${model.sv.length} support vectors): are the codes all equal?`);
  }

  // Exact b: mean over free support vectors (0 < α < C, α = |coef|; at-bound α print as C) of y_i − w·x_i.
  let sum = 0;
  let free = 0;
  for (const i of svIndex) {
    if (Math.abs(coef[i]) < C * (1 - 1e-12)) {
      sum += (y[i] === 1 ? 1 : -1) - dot[i];
      free++;
    }
  }
  const b = free > 0 ? sum / free : bFromRho;

  const accuracy = (idx: number[]): number => idx.filter((j) => (dot[j] + b > 0 ? 1 : 0) === y[j]).length / idx.length;
  const ones = y.reduce((s, v) => s + v, 0) / n;

  throwIfAborted(opts.signal);
  const w = await linearCombination(codes, coef, job);
  return {
    w,
    b,
    bFromRho,
    norm,
    geometricMargin: 1 / norm,
    trainAccuracy: accuracy(train),
    heldOutAccuracy: heldOut.length > 0 ? accuracy(heldOut) : null,
    heldOutSize: heldOut.length,
    trainSize: train.length,
    trainIndices: train,
    heldOutIndices: heldOut,
    supportVectors: model.sv.length,
    freeSupportVectors: free,
    labels: ones,
    majorityRate: Math.max(ones, 1 - ones),
    C,
    dispose() {
      w.dispose();
    },
    [Symbol.dispose]() {
      w.dispose();
    },
  };
}

// ---------------------------------------------------------------------------------------------
// orient, wrapSet
// ---------------------------------------------------------------------------------------------

function checkBoundary(boundary: unknown): Boundary {
  const bd = boundary as Boundary;
  if (bd === null || typeof bd !== 'object' || !(bd.w instanceof Tensor) || typeof bd.b !== 'number') {
    throw invalidArgument('boundary must be what fitBoundary returned');
  }
  checkFinite(bd.b, 'boundary.b');
  return bd;
}

export interface Orientation {
  /** s(h_r) = (w·h_r + b)/‖w‖. */
  sR: number;
  /** Unit direction (float64, code shape) out of the identity side: −w/‖w‖ if s(h_r) > 0, else +w/‖w‖. */
  dq: Tensor;
  /** The side of the boundary h_r is on: the black hole 𝔅_h is that side. */
  identitySide: 'positive' | 'negative';
}

/**
 * Orient the boundary on h_r (docs/method.md step 6): s(h_r) with the correct signed distance (w·h + b)/‖w‖
 * (the released code mixes a normalised w with the raw b), and the erasure direction dq pointing out of
 * h_r's side. hR is one code ([C, H, W]) or a batch of one ([1, C, H, W]).
 */
export async function orient(boundary: Boundary, hR: Tensor, opts?: JobOptions): Promise<Orientation> {
  const bd = checkBoundary(boundary);
  if (!(hR instanceof Tensor)) throw invalidArgument('hR must be a Tensor');
  const ws = bd.w.shape;
  if (!sameShape(hR.shape, ws) && !sameShape(hR.shape, [1, ...ws])) {
    throw invalidArgument(`hR must be one code of shape ${JSON.stringify(ws)} (or [1, ...]), got ${JSON.stringify(hR.shape)}`);
  }
  const [sR] = await signedDistance(hR, bd.w, bd.b, opts);
  const hw = bd.w.handle;
  const scale = sR > 0 ? -1 : 1;
  const dq = new Tensor(await runJob(opts, (n) => loadAddon().unitDirection(hw, scale, n)));
  return { sR, dq, identitySide: sR > 0 ? 'positive' : 'negative' };
}

export interface WrapSetOptions extends JobOptions {
  /** How many points. Default 8 (the released code); fewer when there are fewer codes. */
  k?: number;
  /** Take points of this label first (docs/method.md: label 0, other identities), then fill with the other; null: no preference. */
  prefer?: 0 | 1 | null;
}

export interface WrapSet {
  /** Indices into the codes, nearest the boundary first (preferred label first). */
  indices: number[];
  /** Their signed distances s(h) = (w·h + b)/‖w‖. */
  distances: number[];
  /** Their labels. */
  labels: (0 | 1)[];
  /** How many of them carry the preferred label (all of them when prefer is null). */
  preferred: number;
}

/**
 * The wrap set (docs/method.md step 7): the k validated neighbours nearest the boundary (smallest |s|),
 * taking label-`prefer` points (default 0, "points of other identities that wrap the black hole") first.
 */
export async function wrapSet(codes: Tensor, labels: ArrayLike<0 | 1>, boundary: Boundary, opts: WrapSetOptions = {}): Promise<WrapSet> {
  if (opts === null || typeof opts !== 'object') throw invalidArgument('options must be an object');
  const bd = checkBoundary(boundary);
  checkCodes(codes);
  const n = codes.shape[0];
  if (labels === null || typeof labels !== 'object' || (labels as ArrayLike<unknown>).length !== n) {
    throw invalidArgument(`labels must have one entry per code (${n}), got ${labels === null || typeof labels !== 'object' ? String(labels) : (labels as ArrayLike<unknown>).length}`);
  }
  for (let i = 0; i < n; i++) {
    if (labels[i] !== 0 && labels[i] !== 1) throw invalidArgument(`labels[${i}] must be 0 or 1, got ${JSON.stringify(labels[i])}`);
  }
  const k = Math.min(checkInt(opts.k ?? 8, 'k', 1, Number.MAX_SAFE_INTEGER), n);
  const prefer = opts.prefer === undefined ? 0 : opts.prefer;
  if (prefer !== 0 && prefer !== 1 && prefer !== null) throw invalidArgument(`prefer must be 0, 1 or null, got ${JSON.stringify(prefer)}`);
  const s = await signedDistance(codes, bd.w, bd.b, opts);
  const rank = (i: number) => (prefer === null || labels[i] === prefer ? 0 : 1);
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => rank(a) - rank(b) || Math.abs(s[a]) - Math.abs(s[b]) || a - b);
  const indices = order.slice(0, k);
  return {
    indices,
    distances: indices.map((i) => s[i]),
    labels: indices.map((i) => labels[i]),
    preferred: prefer === null ? indices.length : indices.filter((i) => labels[i] === prefer).length,
  };
}

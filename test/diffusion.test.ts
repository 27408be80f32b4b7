// The diffusion core on random weights: architecture and names, h-space injection, DDIM
// inversion/decoding semantics of every injection mode, state dicts, bad input.
import t from 'tap';
import { createDiffusion, diffusionPreset, randn, tensor, tensorSync, unetStats, zeros, type DiffusionModel, type Tensor } from '../ts/index';

async function maxAbsDiff(a: Tensor, b: Tensor): Promise<number> {
  const [x, y] = [await a.data(), await b.data()];
  if (x.length !== y.length) throw new Error('length mismatch');
  let m = 0;
  for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i] - y[i]));
  return m;
}

async function scaled(x: Tensor, s: number): Promise<Tensor> {
  const d = Float32Array.from(await x.data(), (v) => v * s);
  return tensor(d, x.shape);
}

t.test('celeba-hq-256: the official architecture, names and shapes', async (t) => {
  const m = await createDiffusion('celeba-hq-256');
  t.equal(m.parameterCount, 113_673_219);
  const sd = m.stateDict();
  t.equal(sd.size, 450);
  const expect: Record<string, number[]> = {
    'temb.dense.0.weight': [512, 128],
    'conv_in.weight': [128, 3, 3, 3],
    'down.2.block.0.nin_shortcut.weight': [256, 128, 1, 1],
    'down.4.block.0.nin_shortcut.weight': [512, 256, 1, 1],
    'down.4.attn.0.q.weight': [512, 512, 1, 1],
    'mid.attn_1.proj_out.weight': [512, 512, 1, 1],
    'up.5.upsample.conv.weight': [512, 512, 3, 3],
    'up.4.attn.2.k.bias': [512],
    'conv_out.weight': [3, 128, 3, 3],
  };
  for (const [k, shape] of Object.entries(expect)) t.same(sd.get(k)?.shape, shape, k);
  t.notOk(sd.has('down.5.downsample.conv.weight'), 'no downsample on the last level');
  t.notOk(sd.has('up.0.upsample.conv.weight'), 'no upsample on level 0');
  t.notOk([...sd.keys()].some((k) => k.startsWith('down.3.attn')), 'attention only at 16x16');
  t.same(m.hShape, [512, 8, 8]);
  for (const v of sd.values()) v.dispose();
  m.dispose();
  t.throws(() => m.config, { code: 'BIA_DISPOSED' });
});

t.test('presets and configs', async (t) => {
  t.same(diffusionPreset('tiny').hShape, [64, 8, 8]);
  t.same(diffusionPreset('small-64').hShape, [64, 8, 8]);
  const custom = await createDiffusion({ ch: 32, chMult: [1, 1, 2], numResBlocks: 1, attnResolutions: [], resolution: 32 });
  t.same(custom.hShape, [64, 8, 8]);
  t.notOk([...custom.stateDict().keys()].some((k) => k.includes('.attn.')), 'no attention levels when attnResolutions is empty');
  t.ok(custom.stateDict().has('mid.attn_1.q.weight'), 'the middle block always has attention');
  custom.dispose();
  await t.rejects(createDiffusion({ ch: 48 }), { code: 'BIA_INVALID_ARGUMENT', message: /multiple of 32/ });
  await t.rejects(createDiffusion({ ch: 32, chMult: [1, 2, 2], resolution: 30 }), { code: 'BIA_INVALID_ARGUMENT', message: /divisible/ });
  await t.rejects(createDiffusion('huge' as never), { code: 'BIA_INVALID_ARGUMENT', message: /unknown UNet preset/ });
  await t.rejects(createDiffusion('tiny', { dtype: 'float64' as never }), { code: 'BIA_INVALID_ARGUMENT' });
});

t.test('tiny model: forward, h-space replacement and delta', async (t) => {
  const m = await createDiffusion('tiny', { seed: 3 });
  const x = await randn([2, 3, 16, 16], { seed: 5 });
  const { eps, h } = await m.forward(x, [10, 600]);
  t.same(eps.shape, [2, 3, 16, 16]);
  t.same(h.shape, [2, 64, 8, 8]);
  const same = await m.forward(x, [10, 600], { h });
  t.equal(await maxAbsDiff(same.eps, eps), 0, 'injecting the natural h changes nothing');
  const zero = await zeros([2, 64, 8, 8]);
  t.equal(await maxAbsDiff((await m.forward(x, [10, 600], { hDelta: zero })).eps, eps), 0, 'a zero Δh changes nothing');
  const other = await randn([2, 64, 8, 8], { seed: 9 });
  const replaced = await m.forward(x, [10, 600], { h: other });
  t.ok((await maxAbsDiff(replaced.eps, eps)) > 1e-3, 'another h changes ε');
  t.equal(await maxAbsDiff(replaced.h, h), 0, 'the returned h is the unedited one');
  const again = await createDiffusion('tiny', { seed: 3 });
  t.equal(await maxAbsDiff((await again.forward(x, [10, 600])).eps, eps), 0, 'same seed, same weights, same ε');
  const t1 = await m.forward(x, 10);
  const t2 = await m.forward(x, 600);
  t.ok((await maxAbsDiff(t1.eps, t2.eps)) > 1e-4, 'ε depends on t');
  m.dispose();
  again.dispose();
});

t.test('channels_last and NCHW agree', async (t) => {
  const a = await createDiffusion('tiny', { seed: 4, channelsLast: false });
  const b = await createDiffusion('tiny', { seed: 4, channelsLast: true });
  const x = await randn([1, 3, 16, 16], { seed: 1 });
  const d = await maxAbsDiff((await a.forward(x, 300)).eps, (await b.forward(x, 300)).eps);
  t.ok(d < 1e-4, `max diff ${d}`);
});

t.test('DDIM: the timestep sequence is the released code\'s truncated float linspace', async (t) => {
  const m = await createDiffusion('tiny', { seed: 1 });
  const x = await randn([1, 3, 16, 16], { seed: 5 });
  // int(np.linspace(0, 1, 50)[35] * 700) is 499 (35/49 rounds down), where floor(35 * 700 / 49) is 500.
  const inv = await m.invert(x, { t0: 700, steps: 50, keepAll: true });
  t.same(inv.ts.slice(34, 37), [485, 499, 514]);
  t.equal(inv.ts[0], 0);
  const dflt = await m.invert(x, { t0: 500, steps: 40, keepAll: true });
  t.same(dflt.ts.slice(0, 5), [0, 12, 25, 38, 51], 'the default 500 / 40 is unchanged');
  t.equal(dflt.ts[38], 487);
  for (const r of [inv, dflt]) for (const h of [r.xLat, r.hR, ...r.hs]) h.dispose();
  x.dispose();
  m.dispose();
});

t.test('DDIM: quality boosting re-noises only the steps below tBoost', async (t) => {
  const m = await createDiffusion('tiny', { seed: 1 });
  const x = await randn([2, 3, 16, 16], { seed: 6 });
  const inv = await m.invert(x, { t0: 100, steps: 6 }); // 0, 20, 40, 60, 80, 100
  const plain = (o: object) => m.decode(inv.xLat, null, { t0: 100, steps: 6, eta: 0, ...o });
  const a = await plain({});
  const off = await plain({ tBoost: 0, etaBoost: 1 });
  t.equal(await maxAbsDiff(a, off), 0, 'tBoost 0 is plain DDIM');
  // Steps at t = 100, 80, 60 are deterministic; the boosted ones (t = 40, 20, 0) add noise.
  const headA = await plain({ stopAfter: 3 });
  const headB = await plain({ stopAfter: 3, tBoost: 50 });
  t.equal(await maxAbsDiff(headA, headB), 0, 'identical above tBoost');
  const b = await plain({ tBoost: 50 });
  const b2 = await plain({ tBoost: 50 });
  t.ok((await maxAbsDiff(a, b)) > 1e-3, 'the boosted steps change the image');
  t.equal(await maxAbsDiff(b, b2), 0, 'seeded: the same result twice');
  const c = await plain({ tBoost: 50, etaBoost: 0 });
  t.equal(await maxAbsDiff(a, c), 0, 'etaBoost 0 is plain DDIM');
  await t.rejects(plain({ etaBoost: 2 }), { code: 'BIA_INVALID_ARGUMENT' });
  await t.rejects(plain({ tBoost: -1 }), { code: 'BIA_INVALID_ARGUMENT' });
  for (const y of [x, inv.xLat, inv.hR, a, off, headA, headB, b, b2, c]) y.dispose();
  m.dispose();
});

t.test('DDIM: predictX0 returns the x̂0 of the last step run; at the last step it is the decoded image', async (t) => {
  const m = await createDiffusion('tiny', { seed: 1 });
  const x = await randn([2, 3, 16, 16], { seed: 6 });
  const inv = await m.invert(x, { t0: 100, steps: 6 }); // 0, 20, 40, 60, 80, 100
  const h = await randn([2, ...m.hShape], { seed: 8 });
  const o = { t0: 100, steps: 6, eta: 0, mode: 'every-step' as const, hRef: inv.hR };
  const full = await m.decode(inv.xLat, h, o);
  const last = await m.decode(inv.xLat, h, { ...o, stopAfter: 6, predictX0: true });
  t.equal(await maxAbsDiff(full, last), 0, 'the x̂0 of the step to t = −1 is the image');
  // Part-way: x̂0 = (x_t − √(1 − ᾱ_t)·ε)/√ᾱ_t at t = 80, from the state after one step and ε of a forward pass.
  const s1 = await m.decode(inv.xLat, null, { t0: 100, steps: 6, eta: 0, stopAfter: 1 });
  const { eps } = await m.forward(s1, 80);
  let ab = 1;
  for (let i = 0; i <= 80; i++) ab *= 1 - (1e-4 + ((2e-2 - 1e-4) * i) / 999);
  const [xs, es] = [await s1.data(), await eps.data()];
  const want = Float32Array.from(xs, (v, i) => (v - Math.sqrt(1 - ab) * es[i]) / Math.sqrt(ab));
  const got = await m.decode(inv.xLat, null, { t0: 100, steps: 6, eta: 0, stopAfter: 2, predictX0: true });
  const g = await got.data();
  const err = Math.max(...Array.from(g, (v, i) => Math.abs(v - want[i])));
  t.ok(err < 1e-4, `x̂0 after 2 steps matches the formula (max |Δ| ${err.toExponential(2)})`);
  const next = await m.decode(inv.xLat, null, { t0: 100, steps: 6, eta: 0, stopAfter: 2 });
  t.ok((await maxAbsDiff(next, got)) > 1e-3, 'and differs from the state after the step');
  await t.rejects(m.decode(inv.xLat, null, { t0: 100, steps: 6, predictX0: true }), { code: 'BIA_INVALID_ARGUMENT', message: /stopAfter/ });
  await t.rejects(m.decode(inv.xLat, null, { t0: 100, steps: 6, stopAfter: 2, predictX0: 1 as never }), { code: 'BIA_INVALID_ARGUMENT' });
  for (const y of [x, inv.xLat, inv.hR, h, full, last, s1, eps, got, next]) y.dispose();
  m.dispose();
});

t.test('DDIM: many codes from one x_lat share the first encoder pass, and decode as each alone', async (t) => {
  const m = await createDiffusion('tiny', { seed: 1 });
  const x = await randn([1, 3, 16, 16], { seed: 6 });
  const inv = await m.invert(x, { t0: 100, steps: 6 });
  const h = await randn([3, ...m.hShape], { seed: 9 });
  for (const mode of ['every-step', 'asyrp', 'first-step', 'lagged'] as const) {
    const o = { t0: 100, steps: 6, eta: 0, mode, hRef: inv.hR };
    unetStats({ reset: true });
    const all = await m.decode(inv.xLat, h, o);
    const u = unetStats({ reset: true });
    t.equal(u.encodeImages, 1 + 3 * 5, `${mode}: one shared first encoder pass, then one per image and step`);
    t.equal(u.decodeImages, mode === 'asyrp' ? 1 + 3 + 3 * 5 * 2 : 3 * 6, `${mode}: decoder passes`);
    const a = await all.data();
    let worst = 0;
    for (let i = 0; i < 3; i++) {
      const per = m.hShape.reduce((p, v) => p * v, 1);
      const hi = await tensor((await h.data()).slice(i * per, (i + 1) * per), [1, ...m.hShape]);
      const one = await m.decode(inv.xLat, hi, o);
      const d = await one.data();
      for (let j = 0; j < d.length; j++) worst = Math.max(worst, Math.abs(d[j] - a[i * d.length + j]));
      for (const y of [hi, one]) y.dispose();
    }
    t.ok(worst < 1e-5, `${mode}: each image as decoded alone (max |Δ| ${worst.toExponential(2)})`);
    all.dispose();
  }
  for (const y of [x, inv.xLat, inv.hR, h]) y.dispose();
  m.dispose();
});

t.test('DDIM: inversion then decoding with the unmodified h reconstructs the input', async (t) => {
  const m = await createDiffusion('tiny', { seed: 1 });
  const x = await randn([2, 3, 16, 16], { seed: 5 });
  const events: number[] = [];
  const inv = await m.invert(x, { t0: 100, steps: 40, keepAll: true, onProgress: (e) => events.push(e.step / e.total) });
  t.equal(inv.hs.length, 39, '39 UNet calls for 40 timesteps');
  t.equal(inv.ts[0], 0);
  t.equal(inv.ts[38], 97);
  t.same(events.at(-1), 1, 'progress ends at 100%');
  t.equal(await maxAbsDiff(inv.hs[38], inv.hR), 0, 'h_r is the last call’s h');
  const rec = await m.decode(inv.xLat, null, { t0: 100, steps: 40 });
  const err = await maxAbsDiff(rec, x);
  // Measured: 0.0175 with random weights (a trained model is closer); a random latent is ~1 away.
  t.ok(err < 0.03, `reconstruction max error ${err.toFixed(4)}`);
  const noise = await randn([2, 3, 16, 16], { seed: 77 });
  t.ok((await maxAbsDiff(await m.decode(noise, null, { t0: 100, steps: 40 }), x)) > 0.5, 'decoding another latent does not');
  const inv500 = await m.invert(x);
  t.same(inv500.ts, [487], 'default t0 500 / 40 steps: h_r from t = 487');
});

t.test('injection modes change exactly what they should', async (t) => {
  const m = await createDiffusion('tiny', { seed: 1 });
  const x = await randn([1, 3, 16, 16], { seed: 5 });
  const o = { t0: 100, steps: 40 };
  const { xLat, hR } = await m.invert(x, o);
  const plain = await m.decode(xLat, null, o);
  const dec = (mode: 'lagged' | 'first-step' | 'every-step' | 'asyrp', h: Tensor, extra = {}) =>
    m.decode(xLat, h, { ...o, mode, eta: 0, hRef: hR, ...extra });

  // ĥ = h_r: Δh = 0, so the additive modes reproduce the plain decode exactly.
  t.equal(await maxAbsDiff(await dec('every-step', hR), plain), 0);
  t.equal(await maxAbsDiff(await dec('asyrp', hR), plain), 0);
  // Replacement modes swap in h_r (computed at t = 97) at t = 100: a small, non-zero change.
  const fs0 = await maxAbsDiff(await dec('first-step', hR), plain);
  t.ok(fs0 > 0 && fs0 < 0.01, `first-step with h_r: ${fs0}`);

  // A real edit: ĥ = h_r + a direction of 3‖h_r‖-ish size.
  const dir = await randn(hR.shape, { seed: 11 });
  const dirData = await dir.data();
  const hr = await hR.data();
  const edited = await tensor(Float32Array.from(hr, (v, i) => v + 3 * dirData[i]), hR.shape);
  const every = await dec('every-step', edited);
  const first = await dec('first-step', edited);
  const lagged = await dec('lagged', edited);
  const asyrp = await dec('asyrp', edited);
  const dEvery = await maxAbsDiff(every, plain);
  const dFirst = await maxAbsDiff(first, plain);
  t.ok(dEvery > 0.01, `every-step moves the image (${dEvery.toFixed(3)})`);
  t.ok(dFirst > 0 && dFirst < dEvery, `first-step moves it less (${dFirst.toFixed(4)})`);
  t.ok((await maxAbsDiff(lagged, first)) > 0, 'lagged differs from first-step after the first step');
  t.ok((await maxAbsDiff(asyrp, every)) > 1e-4, 'asyrp (unedited direction) differs from every-step');
  // tEdit beyond every timestep of the sequence: the additive modes never edit.
  t.equal(await maxAbsDiff(await dec('every-step', edited, { tEdit: 101 }), plain), 0);
  t.equal(await maxAbsDiff(await dec('asyrp', edited, { tEdit: 101 }), plain), 0);
  // tEdit in the middle: an edit between the two.
  const mid = await maxAbsDiff(await dec('every-step', edited, { tEdit: 50 }), plain);
  t.ok(mid > 0 && mid < dEvery * 1.5, `every-step with tEdit 50: ${mid.toFixed(3)}`);
});

t.test('batched decoding, η noise and seeds', async (t) => {
  const m = await createDiffusion('tiny', { seed: 1 });
  const x = await randn([1, 3, 16, 16], { seed: 5 });
  const o = { t0: 100, steps: 20 };
  const { xLat, hR } = await m.invert(x, o);
  const hs = await randn([5, 64, 8, 8], { seed: 3 });
  const b16 = await m.decode(xLat, hs, { ...o, mode: 'every-step', hRef: hR, eta: 0.5, seed: 42 });
  t.same(b16.shape, [5, 3, 16, 16]);
  const b2 = await m.decode(xLat, hs, { ...o, mode: 'every-step', hRef: hR, eta: 0.5, seed: 42, batchSize: 2 });
  // (not bit-identical: oneDNN's convolution blocking depends on the batch size; ~2e-6 here)
  t.ok((await maxAbsDiff(b16, b2)) < 1e-5, 'the batch split does not change results (per-image noise streams)');
  const other = await m.decode(xLat, hs, { ...o, mode: 'every-step', hRef: hR, eta: 0.5, seed: 43 });
  t.ok((await maxAbsDiff(other, b16)) > 1e-3, 'another seed, other noise');
  const det = await m.decode(xLat, hs, { ...o, mode: 'every-step', hRef: hR, eta: 0 });
  t.ok((await maxAbsDiff(det, b16)) > 1e-3, 'η > 0 adds noise');
  // image i of the batch equals decoding that h alone when η = 0
  const single = await m.decode(xLat, tensorSync((await hs.data()).slice(3 * 4096, 4 * 4096) as Float32Array, [1, 64, 8, 8]), { ...o, mode: 'every-step', hRef: hR, eta: 0 });
  const all = await det.data();
  const one = await single.data();
  let d = 0;
  for (let i = 0; i < one.length; i++) d = Math.max(d, Math.abs(one[i] - all[3 * one.length + i]));
  t.ok(d < 1e-5, `batched image 3 = single decode (${d})`);
});

t.test('state dicts: copy weights between models; strict checks', async (t) => {
  const a = await createDiffusion('tiny', { seed: 1 });
  const b = await createDiffusion('tiny', { seed: 2 });
  const x = await randn([1, 3, 16, 16], { seed: 5 });
  t.ok((await maxAbsDiff((await a.forward(x, 5)).eps, (await b.forward(x, 5)).eps)) > 0);
  await b.loadStateDict(a.stateDict());
  t.equal(await maxAbsDiff((await a.forward(x, 5)).eps, (await b.forward(x, 5)).eps), 0, 'identical after loading');
  const sd = a.stateDict();
  sd.delete('conv_out.bias');
  await t.rejects(b.loadStateDict(sd), { code: 'BIA_CHECKPOINT_MISMATCH', message: /missing: conv_out\.bias/ });
  await b.loadStateDict(sd, { strict: false });
  const extra = a.stateDict();
  extra.set('something.else', await zeros([1]));
  await t.rejects(b.loadStateDict(extra), { code: 'BIA_CHECKPOINT_MISMATCH', message: /unexpected: something\.else/ });
  const wrong = a.stateDict();
  wrong.set('conv_in.weight', await zeros([32, 3, 1, 1]));
  await t.rejects(b.loadStateDict(wrong, { strict: false }), { code: 'BIA_CHECKPOINT_MISMATCH', message: /wrong shape: conv_in\.weight/ });
  const foreign = new Map([['input_layer.0.weight', await zeros([64, 3, 3, 3])]]);
  await t.rejects(b.loadStateDict(foreign), { code: 'BIA_CHECKPOINT_MISMATCH', message: /another architecture/ });
});

t.test('bad input: clear errors', async (t) => {
  const m: DiffusionModel = await createDiffusion('tiny');
  const good = await randn([1, 3, 16, 16], { seed: 1 });
  await t.rejects(m.forward(await zeros([1, 3, 15, 16]), 5), { code: 'BIA_INVALID_ARGUMENT', message: /multiples of 2\^\(levels-1\) = 2/ });
  await t.rejects(m.forward(await zeros([1, 4, 16, 16]), 5), { code: 'BIA_INVALID_ARGUMENT', message: /4 channels; the model takes 3/ });
  await t.rejects(m.forward(await zeros([3, 16, 16]), 5), { code: 'BIA_INVALID_ARGUMENT', message: /\[B, C, H, W\]/ });
  const nan = new Float32Array(768);
  nan[17] = NaN;
  await t.rejects(m.invert(await tensor(nan, [1, 3, 16, 16])), { code: 'BIA_INVALID_ARGUMENT', message: /NaN or Inf/ });
  const inf = new Float32Array(768);
  inf[3] = Infinity;
  await t.rejects(m.forward(await tensor(inf, [1, 3, 16, 16]), 5), { code: 'BIA_INVALID_ARGUMENT', message: /NaN or Inf/ });
  await t.rejects(m.forward(good, 1000), { code: 'BIA_INVALID_ARGUMENT', message: /t\[0\]/ });
  await t.rejects(m.forward(good, -1), { code: 'BIA_INVALID_ARGUMENT' });
  await t.rejects(m.forward(good, 5, { h: await zeros([1, 64, 4, 4]) }), { code: 'BIA_INVALID_ARGUMENT', message: /h-space/ });
  await t.rejects(m.invert(good, { t0: 1000 }), { code: 'BIA_INVALID_ARGUMENT' });
  await t.rejects(m.invert(good, { t0: 10, steps: 12 }), { code: 'BIA_INVALID_ARGUMENT' });
  const h = await zeros([1, 64, 8, 8]);
  await t.rejects(m.decode(good, h, { mode: 'sideways' as never }), { code: 'BIA_INVALID_ARGUMENT', message: /lagged, first-step, every-step, asyrp/ });
  await t.rejects(m.decode(good, h, { mode: 'asyrp' }), { code: 'BIA_INVALID_ARGUMENT', message: /needs hRef/ });
  await t.rejects(m.decode(good, h, { mode: 'first-step', eta: 2 }), { code: 'BIA_INVALID_ARGUMENT', message: /eta/ });
  await t.rejects(m.decode(good, h, { mode: 'lagged', seed: -3 }), { code: 'BIA_INVALID_ARGUMENT' });
  await t.rejects(m.decode(await zeros([2, 3, 16, 16]), await zeros([3, 64, 8, 8]), { mode: 'lagged' }), { code: 'BIA_INVALID_ARGUMENT', message: /batch/ });
  await t.rejects(m.forward('x' as never, 5), { code: 'BIA_INVALID_ARGUMENT', message: /x must be a Tensor/ });
});

t.test('abort and progress of a long decode', async (t) => {
  const m = await createDiffusion('tiny');
  const x = await randn([1, 3, 16, 16], { seed: 1 });
  const ac = new AbortController();
  const steps: number[] = [];
  await t.rejects(
    m.decode(x, null, { steps: 200, t0: 999, signal: ac.signal, onProgress: (e) => { steps.push(e.step); if (e.step === 5) ac.abort(); } }),
    { code: 'BIA_ABORTED' },
  );
  t.ok(steps.length >= 5 && steps.length < 200, `stopped after ${steps.length} of 200 steps`);
  t.same(steps, steps.map((_, i) => i + 1), 'in order');
  m.dispose();
  await t.rejects(m.invert(x), { code: 'BIA_DISPOSED' });
});

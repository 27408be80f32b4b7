import { existsSync } from 'node:fs';
import t from 'tap';
import { takeRows } from '../ts/blackhole/codes';
import { tensor } from '../ts/tensor';
import { loadAttributeEstimator } from '../ts/train/attributes';
import { attributeNames, createRng } from '../ts/world/attributes';
import { DEFAULT_FILES, heldOut } from '../ts/world/defaults';
import { GROUP_NAMES, groupErrors } from '../ts/world/meters';
import { alphaBar, degrade, ellipseMask, qualityFeatures, RealismMeter, validityScores } from '../ts/world/quality';

t.test('the DDPM schedule: ᾱ_0 = 1 − β_0, decreasing to nearly 0', async (t) => {
  t.ok(Math.abs(alphaBar(0) - (1 - 1e-4)) < 1e-15);
  t.ok(alphaBar(500) < alphaBar(499));
  t.ok(alphaBar(999) < 1e-4 && alphaBar(999) > 0);
});

t.test('face mask, blur and degradations', async (t) => {
  const s = 32;
  const m = ellipseMask(s);
  t.equal(m[0], 0, 'corner outside');
  t.equal(m[Math.floor(0.47 * s) * s + s / 2], 1, 'centre inside');
  const flat = new Float32Array(3 * s * s).fill(0.3);
  degrade(flat, s, 'blur', 1, createRng(9), false);
  t.ok(flat.every((v) => Math.abs(v - 0.3) < 1e-6), 'a constant image stays constant under blur');
  const rng = createRng(1);
  const img = Float32Array.from({ length: 3 * s * s }, () => rng() * 2 - 1);
  for (const kind of ['fade', 'blur', 'noise', 'colour'] as const) {
    const x = Float32Array.from(img);
    degrade(x, s, kind, 0.8, createRng(2), true);
    let inside = 0;
    let outside = 0;
    for (let c = 0; c < 3; c++) {
      for (let p = 0; p < s * s; p++) {
        const d = Math.abs(x[c * s * s + p] - img[c * s * s + p]);
        if (p === 0) outside += d; // a corner is never inside the jittered ellipse
        if (p === Math.floor(0.47 * s) * s + s / 2) inside += d;
      }
    }
    t.equal(outside, 0, `${kind}: a local degradation leaves the corner alone`);
    t.ok(inside > 0, `${kind}: the face centre changes`);
  }
  const whole = Float32Array.from(img);
  degrade(whole, s, 'fade', 1, createRng(3), false);
  const mean = (c: number) => img.subarray(c * s * s, (c + 1) * s * s).reduce((a, v) => a + v, 0) / (s * s);
  t.ok(Math.abs(whole[5] - mean(0)) < 1e-5, 'a full fade of the whole picture is its mean colour');
});

t.test('attribute errors per group', async (t) => {
  const names = attributeNames();
  const truth = Float32Array.from(names, (_, j) => (j % 7) / 7);
  const same = groupErrors(truth, truth, names);
  t.same(Object.keys(same), GROUP_NAMES);
  for (const g of GROUP_NAMES) t.equal(same[g], 0, `${g}: zero error for a perfect prediction`);
  const pred = Float32Array.from(truth);
  pred[names.indexOf('rotation')] += 0.4;
  const e = groupErrors(pred, truth, names);
  t.ok(Math.abs(e.pose - 0.1) < 1e-6, `pose error is 0.4 / 4 members (${e.pose})`);
  for (const g of GROUP_NAMES.filter((x) => x !== 'pose')) t.equal(e[g], 0, `${g} unaffected`);
  t.throws(() => groupErrors([1, 2], [1, 2], names), { code: 'BIA_INVALID_ARGUMENT' });
});

t.test('the trained quality net ranks real portraits above damaged ones (FD and validity)', async (t) => {
  if (!existsSync(DEFAULT_FILES.quality)) {
    t.comment('skipped: models/portrait-quality.safetensors is missing');
    return;
  }
  const q = await loadAttributeEstimator(DEFAULT_FILES.quality);
  const ref = await heldOut(96, 1, 101);
  const real = await heldOut(32, 1, 202);
  const px = (await real.images.data()) as Float32Array;
  const per = 3 * 64 * 64;
  const blurred = Float32Array.from(px);
  const rng = createRng(4);
  for (let i = 0; i < 32; i++) degrade(blurred.subarray(i * per, (i + 1) * per), 64, 'blur', 0.6, rng, true);
  const bt = await tensor(blurred, real.images.shape);
  const meter = new RealismMeter(await qualityFeatures(q, ref.images), 8);
  const [fdReal, fdBlur] = [meter.fd(await qualityFeatures(q, real.images)), meter.fd(await qualityFeatures(q, bt))];
  t.ok(fdBlur > 2 * fdReal, `FD: real ${fdReal.toFixed(2)} < blurred face ${fdBlur.toFixed(2)}`);
  const [vReal, vBlur] = [await validityScores(q, real.images), await validityScores(q, bt)];
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  t.ok(mean(vReal) > 0.8, `validity of clean portraits ${mean(vReal).toFixed(3)}`);
  t.ok(mean(vBlur) < mean(vReal) - 0.4, `validity of blurred faces ${mean(vBlur).toFixed(3)}`);
  const one = await takeRows([real.images], [[0, 0]]);
  t.equal((await validityScores(q, one)).length, 1);
  for (const x of [ref.images, real.images, bt, one]) x.dispose();
  q.dispose();
});

// Black-hole formation, first half: seeded isotropic neighbours of h_r, decoded and labelled by
// identity similarity, with α_max calibration (tiny random models, CPU).
import t from 'tap';
import { refineLabels } from '../ts/blackhole/neighbours';
import { createDiffusion, createIdentityEncoder, formNeighbourhood, labelNeighbours, randn, sampleNeighbours, similarity, tensor, unetStats, type Tensor } from '../ts/index';

async function norms(codes: Tensor, hR: Tensor): Promise<number[]> {
  const c = await codes.data();
  const h = await hR.data();
  const d = h.length;
  return Array.from({ length: codes.shape[0] }, (_, j) => {
    let s = 0;
    for (let i = 0; i < d; i++) s += (c[j * d + i] - h[i]) ** 2;
    return Math.sqrt(s);
  });
}

t.test('isotropic neighbours: seeded, at the drawn distances, within α_max·‖h_r‖', async (t) => {
  const hR = await randn([1, 64, 8, 8], { seed: 1 });
  const h = await hR.data();
  const hNorm = Math.sqrt(Array.from(h).reduce((s, v) => s + v * v, 0));
  const a = await sampleNeighbours(hR, { n: 32, alphaMax: 2, seed: 5 });
  t.same(a.codes.shape, [32, 64, 8, 8]);
  t.equal(a.alphas.length, 32);
  const dist = await norms(a.codes, hR);
  for (let j = 0; j < 32; j++) {
    t.ok(Math.abs(dist[j] - a.alphas[j]) < 1e-4 * (1 + a.alphas[j]), `‖h_j − h_r‖ = α_j (${dist[j].toFixed(4)} vs ${a.alphas[j].toFixed(4)})`);
    t.ok(a.alphas[j] >= 0 && a.alphas[j] <= 2 * hNorm);
  }
  const mean = Array.from(a.alphas).reduce((s, v) => s + v, 0) / 32;
  t.ok(mean > 0.5 * hNorm && mean < 1.5 * hNorm, `α ~ U[0, 2‖h_r‖]: mean ${(mean / hNorm).toFixed(2)}·‖h_r‖`);
  const b = await sampleNeighbours(hR, { n: 32, alphaMax: 2, seed: 5 });
  t.same(Array.from(await b.codes.data()), Array.from(await a.codes.data()), 'same seed, same neighbours');
  const c = await sampleNeighbours(hR, { n: 32, alphaMax: 2, seed: 6 });
  t.not((await c.codes.data())[0], (await a.codes.data())[0]);
  // tens of ‖h_r‖ are reachable
  const far = await sampleNeighbours(hR, { n: 8, alphaMax: 40, seed: 1 });
  t.ok(Math.max(...far.alphas) > 10 * hNorm);
  await t.rejects(sampleNeighbours(await tensor(new Float32Array(8), [1, 2, 2, 2])), { code: 'BIA_INVALID_ARGUMENT', message: /zero/ });
  const nan = new Float32Array(8);
  nan[2] = NaN;
  await t.rejects(sampleNeighbours(await tensor(nan, [1, 2, 2, 2])), { code: 'BIA_INVALID_ARGUMENT', message: /NaN/ });
  await t.rejects(sampleNeighbours(hR, { n: 0 }), { code: 'BIA_INVALID_ARGUMENT' });
  await t.rejects(sampleNeighbours(hR, { alphaMax: -1 }), { code: 'BIA_INVALID_ARGUMENT' });
});

t.test('labels and α_max calibration on tiny random models', async (t) => {
  const diffusion = await createDiffusion('tiny', { seed: 1 });
  const encoder = await createIdentityEncoder('iresnet18', { width: 0.125, embeddingSize: 32, seed: 2 });
  const x = await randn([1, 3, 16, 16], { seed: 5 });
  const o = { t0: 100, steps: 10 };
  const { xLat, hR } = await diffusion.invert(x, o);
  const fR = await encoder.embed(x, { protocol: 'resize' });
  const latent = { xLat, hR, fR };
  const common = { ...o, protocol: 'resize' as const, mode: 'every-step' as const, n: 24 };

  // Tiny steps keep the image: every neighbour is the same identity.
  const near = await sampleNeighbours(hR, { n: 8, alphaMax: 1e-4 });
  const lNear = await labelNeighbours(diffusion, encoder, latent, near.codes, { ...common, threshold: 0.99 });
  t.ok(lNear.similarities.every((s) => s > 0.99), `near h_r: similarities ${Math.min(...lNear.similarities).toFixed(4)}+`);
  t.same(Array.from(lNear.labels), new Array(8).fill(1));
  // Far steps change it: similarities spread out.
  const far = await sampleNeighbours(hR, { n: 24, alphaMax: 8 });
  const lFar = await labelNeighbours(diffusion, encoder, latent, far.codes, { ...common, threshold: 0.35 });
  const sorted = [...lFar.similarities].sort((a, b) => a - b);
  t.ok(sorted[0] < sorted[23], 'far neighbours spread in similarity');
  t.same(Array.from(lFar.labels), Array.from(lFar.similarities, (s) => (s > 0.35 ? 1 : 0)), 'label = sim > threshold');

  // A threshold at the median of the far similarities gives about half: found in the first round.
  const median = sorted[12];
  const hood = await formNeighbourhood(diffusion, encoder, latent, { ...common, alphaMax: 8, threshold: median, seed: 909090 });
  t.equal(hood.rounds.length, 1);
  t.ok(hood.rounds[0].share >= 0.2 && hood.rounds[0].share <= 0.8, `share ${hood.rounds[0].share}`);
  t.equal(hood.codes.shape[0], 24);
  // Starting far too small: α_max doubles until both classes appear.
  const grown = await formNeighbourhood(diffusion, encoder, latent, { ...common, alphaMax: 8 / 16, threshold: median, maxRounds: 8 });
  t.ok(grown.rounds.length > 1, `calibrated in ${grown.rounds.length} rounds: ${grown.rounds.map((r) => `${r.alphaMax}→${r.share.toFixed(2)}`).join(', ')}`);
  t.ok(grown.alphaMax > 8 / 16, 'α_max grew');
  // No threshold can be crossed: a clear error quoting every share it saw.
  await t.rejects(formNeighbourhood(diffusion, encoder, latent, { ...common, threshold: 1, maxRounds: 3 }), {
    code: 'BIA_NO_BOUNDARY',
    message: /after 3 rounds .*0% label 1.*0% label 1.*0% label 1/,
  });
  await t.rejects(formNeighbourhood(diffusion, encoder, latent, { ...common, threshold: 2 }), { code: 'BIA_INVALID_ARGUMENT' });
  await t.rejects(formNeighbourhood(diffusion, encoder, latent, { ...common, shareRange: [0.9, 0.1] }), { code: 'BIA_INVALID_ARGUMENT' });
});

/** Tiny random models, one inverted 16² image and the label options the cheap-label tests share. */
async function tinyLatent() {
  const diffusion = await createDiffusion('tiny', { seed: 1 });
  const encoder = await createIdentityEncoder('iresnet18', { width: 0.125, embeddingSize: 32, seed: 2 });
  const x = await randn([1, 3, 16, 16], { seed: 5 });
  const o = { t0: 100, steps: 10 };
  const { xLat, hR } = await diffusion.invert(x, o);
  const fR = await encoder.embed(x, { protocol: 'resize' });
  const latent = { xLat, hR, fR };
  const common = { ...o, protocol: 'resize' as const, mode: 'every-step' as const, threshold: 0.5 };
  return { diffusion, encoder, o, xLat, hR, fR, latent, common };
}

t.test('cheap labels: the x̂0 after k steps or a k-step schedule, exactly what decode gives; k ≥ steps is the full decoding', async (t) => {
  const { diffusion, encoder, o, xLat, hR, fR, latent, common } = await tinyLatent();
  const nb = await sampleNeighbours(hR, { n: 6, alphaMax: 4 });
  const simsOf = async (images: Tensor) => {
    const e = await encoder.embed(images, { protocol: 'resize' });
    const s = Array.from(await (await similarity(e, fR)).data());
    return s;
  };
  const decodeAs = (extra: object) => diffusion.decode(xLat, nb.codes, { mode: 'every-step', eta: 0, ...o, hRef: hR, ...extra });
  const full = await labelNeighbours(diffusion, encoder, latent, nb.codes, common);
  for (const k of [0, 10, 11]) {
    const l = await labelNeighbours(diffusion, encoder, latent, nb.codes, { ...common, labelSteps: k });
    t.same(Array.from(l.similarities), Array.from(full.similarities), `labelSteps ${k}: the full decoding`);
  }
  const x0 = await labelNeighbours(diffusion, encoder, latent, nb.codes, { ...common, labelSteps: 3 });
  t.same(Array.from(x0.similarities), await simsOf(await decodeAs({ stopAfter: 3, predictX0: true })), 'x0: the x̂0 of the third step');
  t.notSame(Array.from(x0.similarities), Array.from(full.similarities), 'x̂0 part-way is not the final image');
  const coarse = await labelNeighbours(diffusion, encoder, latent, nb.codes, { ...common, labelSteps: 4, labelFrom: 'coarse' });
  t.same(Array.from(coarse.similarities), await simsOf(await decodeAs({ steps: 4 })), 'coarse: a 4-timestep decoding');
  t.same(Array.from(coarse.labels), Array.from(coarse.similarities, (s) => (s > 0.5 ? 1 : 0)));
  unetStats({ reset: true });
  await labelNeighbours(diffusion, encoder, latent, nb.codes, { ...common, labelSteps: 3 });
  const counted = unetStats({ reset: true });
  t.equal(counted.encodeImages, 1 + 6 * 2, 'x0 after 3 steps: 3 encoder passes per neighbour, the first one shared');
  await labelNeighbours(diffusion, encoder, latent, nb.codes, common);
  t.equal(unetStats({ reset: true }).encodeImages, 1 + 6 * 9, 'the full decoding: 10 per neighbour, the first one shared');
  await t.rejects(labelNeighbours(diffusion, encoder, latent, nb.codes, { ...common, labelSteps: 1, labelFrom: 'coarse' }), { code: 'BIA_INVALID_ARGUMENT', message: /coarse/ });
  await t.rejects(labelNeighbours(diffusion, encoder, latent, nb.codes, { ...common, labelFrom: 'final' as never, labelSteps: 2 }), { code: 'BIA_INVALID_ARGUMENT' });
  await t.rejects(labelNeighbours(diffusion, encoder, latent, nb.codes, { ...common, labelSteps: -1 }), { code: 'BIA_INVALID_ARGUMENT' });
});

t.test('refined cheap labels: the uncertain neighbours are decoded in full, the rest read through the fitted line', async (t) => {
  // 40 neighbours whose cheap similarity is the full one lowered by 0.1 and squeezed, with a little noise
  const full = Array.from({ length: 40 }, (_, i) => -0.2 + (1.1 * ((i * 17) % 40)) / 40);
  const noise = (i: number) => 0.01 * Math.sin(7 * i);
  const cheap = Float64Array.from(full, (f, i) => 0.8 * f - 0.1 + noise(i));
  const threshold = 0.5;
  const calls: number[][] = [];
  const known = new Map<number, number>();
  const decode = async (rows: number[]) => {
    calls.push(rows);
    for (const r of rows) known.set(r, full[r]);
  };
  const { similarities: out, decided } = await refineLabels(cheap, threshold, 2.5, decode, known);
  t.equal(decided, false);
  t.same(Array.from(out, (v) => v > threshold), full.map((v) => v > threshold), 'every label is the full decoding’s');
  t.equal(calls[0].length, 8, 'first: 8 neighbours spread over the cheap ranks');
  const ranks = [...cheap.keys()].sort((a, b) => cheap[a] - cheap[b]);
  t.same([...calls[0]].sort((a, b) => a - b), [0, 6, 11, 17, 22, 28, 33, 39].map((r) => ranks[r]).sort((a, b) => a - b));
  t.ok(calls.length >= 2, 'then the uncertain ones');
  t.ok(calls.slice(1).every((c) => c.every((i) => !calls[0].includes(i))), 'each neighbour decoded in full once');
  t.ok(known.size < 40, `not every neighbour is decoded in full (${known.size} of 40)`);
  for (const [i, f] of known) t.equal(out[i], f, 'a neighbour decoded in full keeps its full similarity');
  for (let i = 0; i < 40; i++) if (!known.has(i)) t.ok(Math.abs(out[i] - full[i]) < 0.05, 'the rest: the line maps cheap onto full');
  for (let i = 0; i < 40; i++) if (!known.has(i)) t.ok(Math.abs(out[i] - threshold) >= 2.5 * 0.02, 'no unrefined neighbour is left inside the band');

  // a cheap similarity that says nothing (falling against the full one): everything is decoded in full
  const known2 = new Map<number, number>();
  const backwards = Float64Array.from(full, (f) => -f);
  const { similarities: out2 } = await refineLabels(backwards, threshold, 2.5, async (rows) => rows.forEach((r) => known2.set(r, full[r])), known2);
  t.equal(known2.size, 40);
  t.same(Array.from(out2), full);
  // at most 16 neighbours: all in full, in one call
  const few: number[][] = [];
  const known3 = new Map<number, number>();
  await refineLabels(cheap.slice(0, 16), threshold, 2.5, async (rows) => (few.push(rows), rows.forEach((r) => known3.set(r, full[r]))), known3);
  t.same(few, [Array.from({ length: 16 }, (_, i) => i)]);

  // a calibration round whose share is out of range whatever the uncertain ones are: decided before refining them
  const high = full.map((f) => f + 0.6);
  const cheapHigh = Float64Array.from(high, (f, i) => 0.8 * f - 0.1 + noise(i));
  const truthShare = high.filter((v) => v > threshold).length / 40;
  t.ok(truthShare > 0.8, `the full labels give share ${truthShare}`);
  const k4 = new Map<number, number>();
  const r4 = await refineLabels(cheapHigh, threshold, 2.5, async (rows) => rows.forEach((r) => k4.set(r, high[r])), k4, [0.2, 0.8]);
  t.equal(r4.decided, true);
  t.equal(k4.size, 8, 'only the first 8 decoded in full');
  t.ok(Array.from(r4.similarities).filter((v) => v > threshold).length / 40 > 0.8, 'the mapped share lies beyond the range too');
  const k5 = new Map<number, number>();
  const r5 = await refineLabels(cheapHigh, threshold, 2.5, async (rows) => rows.forEach((r) => k5.set(r, high[r])), k5);
  t.equal(r5.decided, false);
  t.ok(k5.size > 8, `without a range the uncertain ones are refined (${k5.size})`);
  // a share inside the range is never decided early
  const k6 = new Map<number, number>();
  const r6 = await refineLabels(cheap, threshold, 2.5, async (rows) => rows.forEach((r) => k6.set(r, full[r])), k6, [0.2, 0.8]);
  t.equal(r6.decided, false);
  t.same(Array.from(r6.similarities, (v) => v > threshold), full.map((v) => v > threshold));
});

t.test('labelRefine on tiny models: a huge band decodes everything in full (the full labels), 0 keeps the cheap ones', async (t) => {
  const { diffusion, encoder, latent, common, hR } = await tinyLatent();
  const nb = await sampleNeighbours(hR, { n: 20, alphaMax: 4 });
  const full = await labelNeighbours(diffusion, encoder, latent, nb.codes, common);
  const cheap = await labelNeighbours(diffusion, encoder, latent, nb.codes, { ...common, labelSteps: 4, labelFrom: 'coarse' });
  t.equal(cheap.refined, undefined);
  unetStats({ reset: true });
  const all = await labelNeighbours(diffusion, encoder, latent, nb.codes, { ...common, labelSteps: 4, labelFrom: 'coarse', labelRefine: 100 });
  const calls = unetStats({ reset: true });
  t.equal(all.refined, 20, 'a band of 100 deviations: all 20 decoded in full');
  t.same(Array.from(all.labels), Array.from(full.labels), 'and so the full labels');
  t.ok(Array.from(all.similarities).every((s, i) => Math.abs(s - full.similarities[i]) < 1e-5), 'and the full similarities (another batch split)');
  t.ok(calls.encodeImages > 20 * 9, `the cheap pass and the full one (${calls.encodeImages} encoder passes)`);
  const narrow = await labelNeighbours(diffusion, encoder, latent, nb.codes, { ...common, labelSteps: 4, labelFrom: 'coarse', labelRefine: 1e-9 });
  t.ok(narrow.refined! >= 8 && narrow.refined! < 20, `a band of nothing: at least the first 8 (${narrow.refined})`);
  await t.rejects(labelNeighbours(diffusion, encoder, latent, nb.codes, { ...common, labelSteps: 4, labelRefine: -1 }), { code: 'BIA_INVALID_ARGUMENT', message: /labelRefine/ });
  await t.rejects(labelNeighbours(diffusion, encoder, latent, nb.codes, { ...common, labelSteps: 4, labelRefine: Number.NaN }), { code: 'BIA_INVALID_ARGUMENT' });
});

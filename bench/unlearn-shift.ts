/**
 * bench/unlearn-shift: does one photo's absorption shift Δh = ĥ_r − h_r (the per-DDIM-step target that
 * `bia unlearn` distils) also erase *other* photos of the same person, and what does it do to other
 * people? docs/unlearning.md ("Does the shift carry over?") reports it.
 *
 * For identity --person: the black hole of each of --given photos is formed and absorbed with the demo's
 * settings at the calibrated threshold; then --unseen other photos of the person and --held-out other
 * people are inverted and decoded every-step with h + Δh (Δh of the first photo, and the mean of all),
 * against their plain reconstruction: the person's photos by similarity to her enrolled embedding (the
 * mean of the given photos'), other people by similarity to their own photo.
 *
 *   node dist/bench/unlearn-shift.js [--person 2000] [--given 3] [--unseen 12] [--held-out 12] [--json FILE]
 */
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { takeRows } from '../ts/blackhole/codes';
import { loadDiffusion } from '../ts/diffusion';
import { setThreads } from '../ts/engine';
import { absorbIdentity } from '../ts/erase/absorb';
import { formBlackHole } from '../ts/erase/form';
import { identitySimilarity } from '../ts/erase/measure';
import { resolveEraseOptions } from '../ts/erase/options';
import { loadIdentityEncoder } from '../ts/identity';
import { tensor, type Tensor } from '../ts/tensor';
import { DEFAULT_FILES, otherPeople } from '../ts/world/defaults';
import { DEMO_SETTINGS } from '../ts/world/demo';
import { loadMeters, similarityTo } from '../ts/world/meters';
import { portraitBatch } from '../ts/world/portraits';

const round = (v: number) => Math.round(v * 1000) / 1000;
const mean = (a: number[]) => a.reduce((x, y) => x + y, 0) / a.length;

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { person: { type: 'string', default: '2000' }, given: { type: 'string', default: '3' }, unseen: { type: 'string', default: '12' }, 'held-out': { type: 'string', default: '12' }, json: { type: 'string' } } });
  setThreads(Number(process.env.BIA_NUM_THREADS ?? 2));
  const diffusion = await loadDiffusion(DEFAULT_FILES.diffusion);
  const encoder = await loadIdentityEncoder(DEFAULT_FILES.encoder);
  const meters = await loadMeters(encoder);
  const threshold = meters.thresholds.encoder;
  const others = await otherPeople(32);
  const o = resolveEraseOptions({ ...DEMO_SETTINGS, threshold, baseline: false, degenerateBaselines: false });
  const person = Number(values.person);
  const shots = (identity: number, first: number, count: number) => portraitBatch(Array.from({ length: count }, (_, i) => ({ identity, seed: first + i })));
  const given = await shots(person, 100, Number(values.given));
  const unseen = await shots(person, 200, Number(values.unseen));
  const keep = await portraitBatch(Array.from({ length: Number(values['held-out']) }, (_, i) => ({ identity: 2100 + i, seed: 300 + i })));
  const emb = await encoder.embed(given.images, { protocol: 'resize' });
  const ev = await emb.data();
  const d = ev.length / given.images.shape[0];
  const enrolled = await tensor(Float32Array.from({ length: d }, (_, k) => mean(Array.from({ length: given.images.shape[0] }, (_, i) => ev[i * d + k]))), [1, d]);

  const shifts: Float32Array[] = [];
  const photos = [];
  for (let i = 0; i < given.images.shape[0]; i++) {
    const photo = await takeRows([given.images], [[0, i]]);
    const bh = await formBlackHole(photo, { ...o, diffusion, encoder, others });
    const ab = await absorbIdentity(bh, { ...o, diffusion, encoder, others });
    const hHat = await takeRows([ab.codes], [[0, ab.chosen]]);
    const [a, b] = [await hHat.data(), await bh.hR.data()];
    shifts.push(Float32Array.from(a, (v, k) => v - b[k]));
    photos.push({ found: bh.found, hNorm: round(bh.hNorm), shiftNorm: round(Math.hypot(...shifts[i])) });
    for (const t of [photo, hHat]) t.dispose();
    ab.dispose();
    bh.dispose();
  }
  const cos = (a: Float32Array, b: Float32Array) => {
    let s = 0, x = 0, y = 0;
    for (let k = 0; k < a.length; k++) (s += a[k] * b[k]), (x += a[k] * a[k]), (y += b[k] * b[k]);
    return round(s / Math.sqrt(x * y));
  };
  const cosines = shifts.flatMap((a, i) => shifts.slice(i + 1).map((b) => cos(a, b)));
  const meanShift = Float32Array.from(shifts[0], (_, k) => mean(shifts.map((s) => s[k])));

  const o2 = { t0: o.t0, steps: o.steps, tEdit: o.tEdit, eta: 0, batchSize: 64 };
  const shifted = async (x: Tensor, dh: Float32Array) => {
    const inv = await diffusion.invert(x, { t0: o.t0, steps: o.steps });
    const hv = await inv.hR.data();
    const hHat = await tensor(Float32Array.from(hv, (v, k) => v + dh[k % dh.length]), inv.hR.shape);
    const rec = await diffusion.decode(inv.xLat, null, o2);
    const sh = await diffusion.decode(inv.xLat, hHat, { ...o2, mode: 'every-step', hRef: inv.hR });
    for (const t of [inv.xLat, inv.hR, hHat]) t.dispose();
    return { rec, sh };
  };
  const keepEmb = await encoder.embed(keep.images, { protocol: 'resize' });
  const sets: Record<string, unknown> = {};
  for (const [name, dh] of [['first photo', shifts[0]], ['mean', meanShift]] as const) {
    const u = await shifted(unseen.images, dh);
    const k = await shifted(keep.images, dh);
    const her = { plain: (await similarityTo(encoder, u.rec, enrolled)).map(round), shifted: (await similarityTo(encoder, u.sh, enrolled)).map(round) };
    const own = { plain: Array.from(await identitySimilarity(encoder, k.rec, keepEmb, o, {})).map(round), shifted: Array.from(await identitySimilarity(encoder, k.sh, keepEmb, o, {})).map(round) };
    sets[name] = {
      unseen: { ...her, below: her.shifted.filter((v) => v < threshold).length, meanPlain: round(mean(her.plain)), meanShifted: round(mean(her.shifted)) },
      heldOut: { ...own, below: own.shifted.filter((v) => v < threshold).length, meanPlain: round(mean(own.plain)), meanShifted: round(mean(own.shifted)) },
    };
    console.log(`Δh of ${name}: unseen photos of ${person} ${round(mean(her.plain))} → ${round(mean(her.shifted))} (${her.shifted.filter((v) => v < threshold).length}/${her.shifted.length} below ${round(threshold)}); held-out people ${round(mean(own.plain))} → ${round(mean(own.shifted))} (${own.shifted.filter((v) => v < threshold).length}/${own.shifted.length} below)`);
    for (const t of [u.rec, u.sh, k.rec, k.sh]) t.dispose();
  }
  const result = { command: `node dist/bench/unlearn-shift.js ${process.argv.slice(2).join(' ')}`, person, threshold: round(threshold), photos, shiftCosines: cosines, sets };
  console.log(JSON.stringify({ photos, shiftCosines: cosines }));
  if (values.json) writeFileSync(values.json, JSON.stringify(result, null, 1));
  meters.dispose();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});

// The synthetic portrait world: seeded identities and attributes, what is drawn matches what is
// recorded, determinism, shapes and ranges, the training stream (order, prefetch, clean stop),
// the contact sheet, bad options, and the rendering throughput (printed, not asserted).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import t from 'tap';
import { liveTensors } from '../ts/index';
import {
  ATTRIBUTE_SPEC,
  attributeNames,
  attributeVector,
  createRng,
  HELDOUT_IDENTITIES,
  IDENTITY_SPEC,
  identityParams,
  identityVector,
  portraitBatch,
  portraitStream,
  portraitSvg,
  renderPortraits,
  sampleAttributes,
  savePortraitSheet,
  TRAIN_IDENTITIES,
  type Attributes,
} from '../ts/world/index';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bia-portraits-'));
t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));

const S = 64;
const PLANE = S * S;
/** The float an 8-bit level becomes. */
const lv = (v: number) => Math.fround((2 * v) / 255 - 1);
/** Channel c of pixel (x, y) of image i. */
const at = (px: Float32Array, i: number, c: number, y: number, x: number, size = S) => px[((i * 3 + c) * size + y) * size + x];
const image = (px: Float32Array, i: number, size = S) => px.subarray(i * 3 * size * size, (i + 1) * 3 * size * size);
const sameBytes = (a: Float32Array, b: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));

/** A clean picture: plain background of a known colour, no noise, no lighting, upright and centred. */
function clean(seed: number, extra: Partial<Attributes> = {}): Attributes {
  return {
    ...sampleAttributes(seed),
    background: 'plain',
    backgroundR: 0.2,
    backgroundG: 0.6,
    backgroundB: 0.9,
    background2R: 0.2,
    background2G: 0.6,
    background2B: 0.9,
    noise: 0,
    lightIntensity: 0,
    rotation: 0,
    shiftX: 0,
    shiftY: 0,
    scale: 1,
    glasses: 'none',
    hairStyle: 'short',
    ...extra,
  };
}

/** Is pixel (x, y) of image i the clean background colour? */
const isBackground = (px: Float32Array, i: number, y: number, x: number) => at(px, i, 0, y, x) === lv(51) && at(px, i, 1, y, x) === lv(153) && at(px, i, 2, y, x) === lv(230);

t.test('identity parameters: seeded by (worldSeed, identity), in range, distinct between people', async (t) => {
  t.same(identityParams(5), identityParams(5), 'same identity, same parameters');
  t.same(identityParams(5), identityParams(5, 0), 'worldSeed defaults to 0');
  t.not(identityParams(5).faceWidth, identityParams(6).faceWidth, 'another identity, other parameters');
  t.not(identityParams(5, 1).skinTone, identityParams(5, 0).skinTone, 'another world, other parameters');
  const vs: Float32Array[] = [];
  for (let id = 0; id < 200; id++) {
    const p = identityParams(id);
    for (const s of IDENTITY_SPEC) {
      if (!(p[s.name] >= s.min && p[s.name] <= s.max)) t.fail(`identity ${id}: ${s.name} = ${p[s.name]} outside [${s.min}, ${s.max}]`);
    }
    if (!Number.isInteger(p.moleCount)) t.fail(`identity ${id}: mole count ${p.moleCount}`);
    const v = identityVector(p);
    if (!v.every((x) => x >= -1 && x <= 1)) t.fail(`identity ${id}: vector outside [-1, 1]`);
    vs.push(v);
  }
  let minDist = Infinity;
  for (let i = 0; i < vs.length; i++) {
    for (let j = i + 1; j < vs.length; j++) {
      let d = 0;
      for (let k = 0; k < vs[i].length; k++) d += (vs[i][k] - vs[j][k]) ** 2;
      minDist = Math.min(minDist, Math.sqrt(d));
    }
  }
  t.equal(vs[0].length, IDENTITY_SPEC.length);
  t.ok(minDist > 1, `the closest two of 200 people differ by ${minDist.toFixed(2)} in normalised parameters`);
  t.same(TRAIN_IDENTITIES, [0, 2000]);
  t.same(HELDOUT_IDENTITIES, [2000, 2200]);
  t.throws(() => identityParams(-1), { code: 'BIA_INVALID_ARGUMENT' });
  t.throws(() => identityParams(1.5), { code: 'BIA_INVALID_ARGUMENT' });
  t.throws(() => identityParams(1, -2), { code: 'BIA_INVALID_ARGUMENT' });
});

t.test('attributes: seeded, within the spec, every class drawn; flat vectors', async (t) => {
  t.same(sampleAttributes(7), sampleAttributes(7), 'same seed, same attributes');
  t.not(sampleAttributes(7).smile, sampleAttributes(8).smile);
  t.same(sampleAttributes(createRng(3)), sampleAttributes(createRng(3)), 'a seeded generator works too');
  const seen = new Map<string, Set<string>>();
  for (let seed = 0; seed < 600; seed++) {
    const a = sampleAttributes(seed);
    for (const s of ATTRIBUTE_SPEC) {
      const v = a[s.name];
      if (s.kind === 'continuous') {
        if (!(typeof v === 'number' && v >= s.min && v <= s.max)) t.fail(`seed ${seed}: ${s.name} = ${v} outside [${s.min}, ${s.max}]`);
      } else {
        if (!s.classes.includes(v as string)) t.fail(`seed ${seed}: ${s.name} = ${v}`);
        if (!seen.has(s.name)) seen.set(s.name, new Set());
        seen.get(s.name)!.add(v as string);
      }
    }
    if (a.background === 'plain' && (a.background2R !== a.backgroundR || a.background2G !== a.backgroundG || a.background2B !== a.backgroundB)) {
      t.fail(`seed ${seed}: a plain background has one colour`);
    }
    if (!(Math.abs(a.lightX ** 2 + a.lightY ** 2 - 1) < 1e-9)) t.fail(`seed ${seed}: the light direction is not a unit vector`);
  }
  for (const s of ATTRIBUTE_SPEC) if (s.kind === 'categorical') t.equal(seen.get(s.name)!.size, s.classes.length, `every ${s.name} occurs`);

  const a = { ...sampleAttributes(1), smile: 1, rotation: -10, hairStyle: 'bob', glasses: 'square' } as Attributes;
  const names = attributeNames();
  const v = attributeVector(a);
  t.equal(v.length, names.length);
  t.equal(v[names.indexOf('smile')], 1, 'continuous values normalised: max → 1');
  t.equal(v[names.indexOf('rotation')], -1, 'min → -1');
  t.equal(v[names.indexOf('hairStyle=bob')], 1);
  t.equal(v[names.indexOf('hairStyle=bald')], 0);
  t.equal(v[names.indexOf('glasses=square')], 1);
  t.equal(names.filter((n) => n.startsWith('hairStyle=')).reduce((s, n) => s + v[names.indexOf(n)], 0), 1, 'one-hot');
  const idx = attributeVector(a, { categorical: 'index' });
  const idxNames = attributeNames({ categorical: 'index' });
  t.equal(idx.length, ATTRIBUTE_SPEC.length);
  t.equal(idx[idxNames.indexOf('hairStyle')], 3);
  t.equal(idx[idxNames.indexOf('glasses')], 2);
  t.throws(() => attributeNames({ categorical: 'bits' as 'index' }), { code: 'BIA_INVALID_ARGUMENT' });
});

t.test('same items → byte-identical pixels; other seeds or worlds → other pixels; range and shapes', async (t) => {
  const items = Array.from({ length: 20 }, (_, i) => ({ identity: i % 5, seed: 100 + i }));
  const a = await renderPortraits(items);
  const b = await renderPortraits(items);
  t.equal(a.pixels.length, 20 * 3 * PLANE);
  t.equal(a.size, 64);
  t.ok(sameBytes(a.pixels, b.pixels), 'byte-identical');
  t.same(a.attributes, b.attributes);
  t.same(Array.from(a.identities), items.map((it) => it.identity));
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of a.pixels) {
    lo = Math.min(lo, v);
    hi = Math.max(hi, v);
  }
  t.ok(lo >= -1 && hi <= 1, `pixels in [-1, 1]: [${lo}, ${hi}]`);
  t.ok(hi - lo > 1.5, 'and they use the range');
  // a portrait is the same alone or in a batch (strips are rasterised independently of their position)
  const alone = await renderPortraits([items[17]]);
  t.ok(sameBytes(alone.pixels, image(a.pixels, 17)), 'item 17 alone = item 17 in the batch');

  const other = await renderPortraits(items.map((it) => ({ ...it, seed: it.seed + 1 })));
  t.notOk(sameBytes(other.pixels, a.pixels), 'other seeds, other pixels');
  const world = await renderPortraits(items, { worldSeed: 9 });
  t.notOk(sameBytes(world.pixels, a.pixels), 'another world, other pixels');
  t.same(world.attributes, a.attributes, 'the world changes people, not pictures');

  // identity parameters stay with the person whatever the picture
  const P = IDENTITY_SPEC.length;
  t.equal(a.identityParams.length, 20 * P);
  t.same(Array.from(a.identityParams.subarray(0, P)), Array.from(a.identityParams.subarray(5 * P, 6 * P)), 'identity 0 in two pictures');
  t.same(Array.from(a.identityParams.subarray(0, P)), Array.from(identityVector(identityParams(0))));
  t.notSame(Array.from(a.identityParams.subarray(0, P)), Array.from(a.identityParams.subarray(P, 2 * P)), 'identities 0 and 1 differ');

  // the default seed is the item's index
  const d = await renderPortraits([{ identity: 3 }, { identity: 3 }]);
  t.same(d.attributes[1], sampleAttributes(1));
  t.notOk(sameBytes(image(d.pixels, 0), image(d.pixels, 1)), 'two pictures of one person differ');

  const small = await renderPortraits([{ identity: 1, seed: 2 }], { size: 24 });
  t.equal(small.pixels.length, 3 * 24 * 24);
  t.equal(small.size, 24);
});

t.test('what is recorded is what is drawn', async (t) => {
  // plain background of a known colour: the corner pixel is exactly it
  const bg = await renderPortraits([0, 1, 2, 3].map((seed) => ({ identity: seed, attributes: clean(seed) })));
  for (let i = 0; i < 4; i++) {
    t.ok(isBackground(bg.pixels, i, 0, 0) && isBackground(bg.pixels, i, 0, S - 1), `image ${i}: top corners are the background colour (${[0, 1, 2].map((c) => at(bg.pixels, i, c, 0, 0).toFixed(3))})`);
  }

  // glasses: only the eye band changes, and plenty of it
  const g = await renderPortraits([
    { identity: 7, attributes: clean(11, { glasses: 'none' }) },
    { identity: 7, attributes: clean(11, { glasses: 'round' }) },
    { identity: 7, attributes: clean(11, { glasses: 'square' }) },
  ]);
  for (const k of [1, 2]) {
    let changed = 0;
    let outside = 0;
    for (let y = 0; y < S; y++) {
      for (let x = 0; x < S; x++) {
        const diff = [0, 1, 2].some((c) => at(g.pixels, 0, c, y, x) !== at(g.pixels, k, c, y, x));
        if (!diff) continue;
        changed++;
        if (y < 16 || y > 40) outside++;
      }
    }
    t.ok(changed > 60, `glasses ${g.attributes[k].glasses}: ${changed} pixels changed`);
    t.equal(outside, 0, 'all of them in the eye band');
  }
  t.notOk(sameBytes(image(g.pixels, 1), image(g.pixels, 2)), 'round and square glasses differ');

  // pose shift: the head's centroid moves by the shift
  const centroidX = (px: Float32Array, i: number) => {
    let sx = 0;
    let n = 0;
    for (let y = 0; y < 45; y++) {
      for (let x = 0; x < S; x++) {
        if (!isBackground(px, i, y, x)) {
          sx += x;
          n++;
        }
      }
    }
    return sx / n;
  };
  const shift = await renderPortraits([
    { identity: 4, attributes: clean(5, { shiftX: -3 }) },
    { identity: 4, attributes: clean(5, { shiftX: 3 }) },
    { identity: 4, attributes: clean(5, { shiftX: 0 }) },
  ]);
  const [c0, c1, c2] = [0, 1, 2].map((i) => centroidX(shift.pixels, i));
  t.ok(Math.abs(c1 - c0 - 6) < 0.3, `shift −3 → +3 moves the head by ${(c1 - c0).toFixed(2)} px (6 expected)`);
  t.ok(Math.abs(c2 - c0 - 3) < 0.3, `shift −3 → 0: ${(c2 - c0).toFixed(2)} px`);

  // noise: the difference to the clean picture has the recorded standard deviation
  const noisy = await renderPortraits([
    { identity: 2, attributes: clean(6, { background: 'plain', backgroundR: 0.5, backgroundG: 0.5, backgroundB: 0.5, noise: 0 }) },
    { identity: 2, attributes: clean(6, { background: 'plain', backgroundR: 0.5, backgroundG: 0.5, backgroundB: 0.5, noise: 0.04 }) },
  ]);
  let ss = 0;
  for (let i = 0; i < 3 * PLANE; i++) ss += ((noisy.pixels[3 * PLANE + i] - noisy.pixels[i]) * 127.5) ** 2;
  const sd = Math.sqrt(ss / (3 * PLANE)) / 255;
  t.ok(sd > 0.034 && sd < 0.044, `noise 0.04 → measured sd ${sd.toFixed(4)} of the 0–255 range`);

  // lighting from the right: right half brighter, left half darker than unlit
  const lit = await renderPortraits([
    { identity: 2, attributes: clean(6) },
    { identity: 2, attributes: clean(6, { lightX: 1, lightY: 0, lightIntensity: 0.3 }) },
  ]);
  let left = 0;
  let right = 0;
  for (let c = 0; c < 3; c++) {
    for (let y = 0; y < S; y++) {
      for (let x = 0; x < 16; x++) left += at(lit.pixels, 1, c, y, x) - at(lit.pixels, 0, c, y, x);
      for (let x = S - 16; x < S; x++) right += at(lit.pixels, 1, c, y, x) - at(lit.pixels, 0, c, y, x);
    }
  }
  t.ok(right > 0 && left < 0, `light from the right: right side ${right > 0 ? '+' : ''}${(right / (3 * 16 * S)).toFixed(3)}, left side ${(left / (3 * 16 * S)).toFixed(3)}`);

  // the SVG is the portrait: rasterised on its own it gives the same pixels (no noise)
  const a = clean(12, { hairStyle: 'curly', glasses: 'round', background: 'stripes', lightIntensity: 0.2 });
  const svg = portraitSvg(identityParams(9), a);
  t.match(svg, /^<svg [^>]*width="64" height="64"/);
  const raw = await sharp(Buffer.from(svg)).removeAlpha().raw().toBuffer();
  const drawn = await renderPortraits([{ identity: 9, attributes: a }]);
  let mismatch = 0;
  for (let i = 0; i < PLANE; i++) for (let c = 0; c < 3; c++) if (lv(raw[i * 3 + c]) !== drawn.pixels[c * PLANE + i]) mismatch++;
  t.equal(mismatch, 0, 'portraitSvg rasterised = renderPortraits');
});

t.test('portraitBatch: a tensor [N,3,S,S] with its labels', async (t) => {
  const items = [0, 1, 2, 3, 4, 5].map((i) => ({ identity: 10 + i, seed: i }));
  const b = await portraitBatch(items, { size: 32 });
  t.same(b.images.shape, [6, 3, 32, 32]);
  t.equal(b.images.dtype, 'float32');
  const r = await renderPortraits(items, { size: 32 });
  t.ok(sameBytes((await b.images.data()) as Float32Array, r.pixels), 'the tensor holds the rendered pixels');
  const A = attributeNames().length;
  t.equal(b.attributes.length, 6 * A);
  t.same(Array.from(b.attributes.subarray(A, 2 * A)), attributeVector(b.records[1]).map(Math.fround));
  t.same(Array.from(b.identities), [10, 11, 12, 13, 14, 15]);
  t.equal(b.identityParams.length, 6 * IDENTITY_SPEC.length);
  b.images.dispose();
  const ix = await portraitBatch(items.slice(0, 2), { categorical: 'index' });
  t.equal(ix.attributes.length, 2 * ATTRIBUTE_SPEC.length);
  ix.images.dispose();
});

async function until(cond: () => boolean, ms = 20_000): Promise<boolean> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, 5));
  }
  return true;
}

t.test('portraitStream: in order, deterministic, one batch ahead, stops cleanly', async (t) => {
  const base = liveTensors();
  const opts = { identities: [100, 140] as [number, number], batchSize: 8, seed: 3, size: 32 };
  const seen: number[] = [];
  const kept: Float32Array[] = [];
  const ids: number[][] = [];
  for await (const b of portraitStream(opts)) {
    seen.push(b.index);
    t.same(b.images.shape, [8, 3, 32, 32]);
    t.equal(b.attributes.length, 8 * attributeNames().length);
    t.equal(b.identityParams.length, 8 * IDENTITY_SPEC.length);
    t.ok(Array.from(b.identities).every((id) => id >= 100 && id < 140), 'identities from [lo, hi)');
    // while we hold this batch the next one is being rendered: two tensors alive
    t.ok(await until(() => liveTensors() === base + 2), `batch ${b.index}: the next batch is rendered ahead (${liveTensors() - base} alive)`);
    kept.push((await b.images.data()) as Float32Array);
    ids.push(Array.from(b.identities));
    b.images.dispose();
    if (seen.length === 3) break;
  }
  t.same(seen, [0, 1, 2], 'batches in order');
  t.equal(liveTensors(), base, 'breaking out disposed the batch rendered ahead');

  // batch k is always the same, whatever came before it
  const again = portraitStream({ ...opts, startBatch: 1, batches: 1 });
  const first = await again.next();
  t.equal(first.done, false);
  const b1 = first.value!;
  t.equal(b1.index, 1);
  t.ok(sameBytes((await b1.images.data()) as Float32Array, kept[1]), 'batch 1 again, byte-identical');
  t.same(Array.from(b1.identities), ids[1]);
  b1.images.dispose();
  t.equal((await again.next()).done, true, 'batches: 1 ends after one batch');
  t.notOk(sameBytes(kept[0], kept[1]), 'batches differ');
  const otherSeed = await portraitStream({ ...opts, seed: 4, batches: 1 }).next();
  t.notOk(sameBytes((await otherSeed.value!.images.data()) as Float32Array, kept[0]), 'another seed, another stream');
  otherSeed.value!.images.dispose();

  // pictures of one person next to each other
  let n = 0;
  for await (const b of portraitStream({ ...opts, batchSize: 8, samplesPerIdentity: 4, batches: 2 })) {
    const id = Array.from(b.identities);
    t.same(id.slice(0, 4), new Array(4).fill(id[0]));
    t.same(id.slice(4), new Array(4).fill(id[4]));
    t.not(b.records[0].smile, b.records[1].smile, 'different pictures of the person');
    b.images.dispose();
    n++;
  }
  t.equal(n, 2, 'a bounded stream ends by itself');
  t.equal(liveTensors(), base, 'nothing left alive');

  // abort: the stream rejects with BIA_ABORTED and leaves nothing behind
  const ac = new AbortController();
  let got = 0;
  await t.rejects(
    (async () => {
      for await (const b of portraitStream({ ...opts, signal: ac.signal })) {
        b.images.dispose();
        got++;
        ac.abort();
      }
    })(),
    { code: 'BIA_ABORTED' },
  );
  t.ok(got >= 1 && got <= 2, `aborted after ${got} batch(es)`);
  t.equal(liveTensors(), base, 'nothing left alive after the abort');
});

t.test('bad options → BIA_INVALID_ARGUMENT', async (t) => {
  const bad = { code: 'BIA_INVALID_ARGUMENT' };
  await t.rejects(renderPortraits([{ identity: 1 }], { size: 0 }), bad);
  await t.rejects(renderPortraits([{ identity: 1 }], { size: 4.5 }), bad);
  await t.rejects(renderPortraits([]), bad);
  await t.rejects(renderPortraits([{ identity: -1 }]), bad);
  await t.rejects(renderPortraits([{ identity: 1, seed: -3 }]), bad);
  await t.rejects(renderPortraits([{ identity: 1, attributes: { rotation: 45 } }]), { code: 'BIA_INVALID_ARGUMENT', message: /rotation/ });
  await t.rejects(renderPortraits([{ identity: 1, attributes: { glasses: 'monocle' as 'none' } }]), { code: 'BIA_INVALID_ARGUMENT', message: /glasses/ });
  await t.rejects(renderPortraits([{ identity: 1, attributes: { hat: 1 } as Partial<Attributes> }]), { code: 'BIA_INVALID_ARGUMENT', message: /hat/ });
  await t.rejects(portraitBatch([{ identity: 1 }], { device: 'tpu' as 'cpu' }), bad);
  t.throws(() => portraitStream({ identities: [0, 10], batchSize: 0 }), bad);
  t.throws(() => portraitStream({ identities: [10, 10], batchSize: 4 }), { code: 'BIA_INVALID_ARGUMENT', message: /empty/ });
  t.throws(() => portraitStream({ identities: [10, 5], batchSize: 4 }), bad);
  t.throws(() => portraitStream({ identities: [0, 10], batchSize: 4, size: 0 }), bad);
  t.throws(() => portraitStream({ identities: [0, 10], batchSize: 6, samplesPerIdentity: 4 }), { code: 'BIA_INVALID_ARGUMENT', message: /divide/ });
  t.throws(() => portraitStream(undefined as unknown as { identities: [number, number]; batchSize: number }), bad);
  t.throws(() => portraitSvg(identityParams(1), sampleAttributes(1), 0), bad);
  t.throws(() => portraitSvg({ faceWidth: 1 } as ReturnType<typeof identityParams>, sampleAttributes(1)), bad);
  await t.rejects(savePortraitSheet(path.join(dir, 'sheet.jpg')), bad);
  await t.rejects(savePortraitSheet(path.join(dir, 'sheet.png'), { samples: 0 }), bad);
});

t.test('contact sheet', async (t) => {
  const file = path.join(dir, 'sheet.png');
  const sheet = await savePortraitSheet(file, { identities: [0, 1, 2], samples: 4, zoom: 2, gap: 2 });
  const meta = await sharp(file).metadata();
  t.same([meta.width, meta.height], [sheet.width, sheet.height]);
  t.same([sheet.rows, sheet.columns], [3, 4]);
  t.equal(sheet.width, 2 * (2 + 4 * (64 + 2)));
  t.equal(sheet.height, 2 * (2 + 3 * (64 + 2)));
  // the cell (row 1, column 2) is the portrait of identity 1 in column 2's picture
  const raw = await sharp(file).removeAlpha().raw().toBuffer();
  const cell = await savePortraitSheet(path.join(dir, 'one.png'), { identities: [1], samples: 4, zoom: 1, gap: 0 });
  t.equal(cell.width, 4 * 64);
  const one = await sharp(path.join(dir, 'one.png')).removeAlpha().raw().toBuffer();
  let mismatch = 0;
  for (let y = 0; y < 64; y++) {
    for (let x = 0; x < 64; x++) {
      for (let c = 0; c < 3; c++) {
        const a = raw[((2 * (2 + 66 + y)) * sheet.width + 2 * (2 + 2 * 66 + x)) * 3 + c];
        const b = one[(y * 256 + 128 + x) * 3 + c];
        if (a !== b) mismatch++;
      }
    }
  }
  t.equal(mismatch, 0, 'rows are identities, columns pictures');
});

t.test('throughput (printed, not asserted)', async (t) => {
  const items = Array.from({ length: 512 }, (_, i) => ({ identity: i % 100, seed: i }));
  await renderPortraits(items.slice(0, 32));
  const t0 = process.hrtime.bigint();
  const r = await renderPortraits(items);
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  t.equal(r.identities.length, 512);
  t.comment(`renderPortraits: 512 portraits 64×64 in ${s.toFixed(2)} s = ${(512 / s).toFixed(0)} images/s`);
  const t1 = process.hrtime.bigint();
  let n = 0;
  for await (const b of portraitStream({ identities: [0, 2000], batchSize: 64, batches: 8 })) {
    await new Promise((r) => setTimeout(r, 5));
    n += b.images.shape[0];
    b.images.dispose();
  }
  const s2 = Number(process.hrtime.bigint() - t1) / 1e9;
  t.comment(`portraitStream: ${n} portraits in batches of 64 in ${s2.toFixed(2)} s = ${(n / s2).toFixed(0)} images/s`);
});

// Images in and out (sharp): formats, channel layouts, 16 bits, EXIF orientation, resizing, round trips,
// atomic writes, the comparison grid, face checks, bad input, readImages, the real-photo fixtures, .npy.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import sharp, { type Sharp } from 'sharp';
import t from 'tap';
import {
  BiaError,
  centerSquareCrop,
  checkFaceImage,
  comparisonGrid,
  describeImage,
  imageToBuffer,
  parseNpy,
  readImage,
  readImages,
  readNpy,
  runtimeInfo,
  tensor,
  Tensor,
  writeImage,
} from '../ts/index';
import { ROOT } from './helpers';

const FACES = path.join(ROOT, 'test', 'fixtures', 'faces');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bia-images-'));
t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
const out = (name: string) => path.join(dir, name);

/** The value readImage gives an 8-bit level v (and a 16-bit level with max 65535). */
const lv = (v: number, max = 255) => Math.fround((2 * v) / max - 1);
type Px = (x: number, y: number) => number[];

/** An image from a pixel function, as a sharp pipeline (channels 1–4, 8 or 16 bits). */
function synth(width: number, height: number, channels: 1 | 2 | 3 | 4, px: Px, deep = false): Sharp {
  const data = deep ? new Uint16Array(width * height * channels) : new Uint8Array(width * height * channels);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) data.set(px(x, y), (y * width + x) * channels);
  const s = sharp(data, { raw: { width, height, channels } });
  if (deep) return s.toColourspace(channels <= 2 ? 'grey16' : 'rgb16');
  return channels <= 2 ? s.toColourspace('b-w') : s;
}

/** Read back a tensor: shape and an accessor (batch b, channel c, row y, column x). */
async function pixels(x: Tensor) {
  const data = (await x.data()) as Float32Array;
  const [, , H, W] = x.shape;
  return { data, at: (c: number, y: number, xx: number, b = 0) => data[((b * 3 + c) * H + y) * W + xx] };
}

function near(t: { ok: (v: boolean, msg: string) => unknown }, got: number[], want: number[], tol: number, msg: string) {
  const ok = got.length === want.length && got.every((g, i) => Math.abs(g - want[i]) <= tol);
  t.ok(ok, `${msg}: got [${got.map((v) => v.toFixed(4))}], want [${want.map((v) => v.toFixed(4))}] ±${tol}`);
}

const rgbAt = (p: { at: (c: number, y: number, x: number, b?: number) => number }, y: number, x: number, b = 0) => [0, 1, 2].map((c) => p.at(c, y, x, b));

// Two colour blocks, left and right: a pattern every format must keep.
const LEFT = [200, 100, 50];
const RIGHT = [10, 20, 250];
const blocks: Px = (x) => (x < 4 ? LEFT : RIGHT);

t.test('every format reads to an RGB float32 [1,3,H,W] in [-1,1] with the known colours', async (t) => {
  const base = () => synth(8, 6, 3, blocks);
  const cases: Array<[string, () => Promise<Buffer>, number]> = [
    ['png', () => base().png().toBuffer(), 1e-6],
    ['webp lossless', () => base().webp({ lossless: true }).toBuffer(), 1e-6],
    ['tiff', () => base().tiff({ compression: 'lzw' }).toBuffer(), 1e-6], // sharp's default TIFF compression is JPEG
    ['gif', () => base().gif().toBuffer(), 2.5 / 127.5],
    ['jpeg', () => base().jpeg({ quality: 100 }).toBuffer(), 12 / 127.5],
    ['webp lossy', () => base().webp({ quality: 90 }).toBuffer(), 16 / 127.5],
  ];
  if (sharp.format.heif?.output?.buffer) cases.push(['avif lossless', () => base().avif({ lossless: true }).toBuffer(), 2.5 / 127.5]);
  for (const [name, make, tol] of cases) {
    const bytes = await make();
    const file = out(`blocks-${name.replace(' ', '-')}.img`); // the content decides the format, not the name
    fs.writeFileSync(file, bytes);
    const x = await readImage(file);
    t.same(x.shape, [1, 3, 6, 8], `${name}: shape`);
    t.equal(x.dtype, 'float32');
    t.equal(x.device, 'cpu');
    const p = await pixels(x);
    t.ok(p.data.every((v) => v >= -1 && v <= 1), `${name}: values in [-1,1]`);
    near(t, rgbAt(p, 3, 1), LEFT.map((v) => lv(v)), tol, `${name}: left block`);
    near(t, rgbAt(p, 3, 6), RIGHT.map((v) => lv(v)), tol, `${name}: right block`);
    const fromBuffer = await readImage(bytes);
    t.same(Array.from((await fromBuffer.data()) as Float32Array), Array.from(p.data), `${name}: a Buffer reads like the file`);
    x.dispose();
    fromBuffer.dispose();
  }
});

t.test('a GIF reads its first frame', async (t) => {
  const opaque = (v: number) => Buffer.from(Array.from({ length: 16 }, () => [v, v, v, 255]).flat());
  const frames = Buffer.concat([opaque(0), opaque(255)]); // black, then white
  const gif = await sharp(frames, { raw: { width: 4, height: 8, channels: 4, pageHeight: 4 } }).gif().toBuffer();
  t.equal((await describeImage(gif)).pages, 2);
  const x = await readImage(gif);
  t.same(x.shape, [1, 3, 4, 4]);
  t.ok(((await x.data()) as Float32Array).every((v) => v === -1), 'the first frame: black');
  x.dispose();
});

t.test('grey, grey+alpha, RGBA, CMYK: sRGB out, alpha flattened onto white (or black)', async (t) => {
  // Grey: one channel becomes three equal ones.
  const grey = await synth(3, 2, 1, () => [77]).png().toBuffer();
  const gi = await describeImage(grey);
  t.equal(gi.channels, 1, 'the file is one-channel grey');
  const g = await pixels(await readImage(grey));
  near(t, rgbAt(g, 1, 2), [lv(77), lv(77), lv(77)], 1e-6, 'grey');

  // Grey + alpha: opaque, half and fully transparent pixels.
  const ga = await synth(3, 1, 2, (x) => [60, [255, 128, 0][x]]).png().toBuffer();
  t.equal((await describeImage(ga)).channels, 2);
  t.equal((await describeImage(ga)).hasAlpha, true);
  for (const background of ['white', 'black'] as const) {
    const bg = background === 'white' ? 1 : 0;
    const p = await pixels(await readImage(ga, { background }));
    const want = [255, 128, 0].map((a) => Math.fround(2 * ((60 / 255) * (a / 255) + bg * (1 - a / 255)) - 1));
    near(t, [p.at(0, 0, 0), p.at(1, 0, 1), p.at(2, 0, 2)], want, 1e-6, `grey+alpha onto ${background}`);
  }
  const dflt = await pixels(await readImage(ga));
  t.equal(dflt.at(0, 0, 2), 1, 'the default background is white: a transparent pixel is exactly 1');

  // RGBA.
  const rgba = await synth(2, 1, 4, (x) => [200, 40, 90, [255, 51][x]]).png().toBuffer();
  const r = await pixels(await readImage(rgba));
  near(t, rgbAt(r, 0, 0), [lv(200), lv(40), lv(90)], 1e-6, 'opaque RGBA pixel');
  near(t, rgbAt(r, 0, 1), [200, 40, 90].map((v) => Math.fround(2 * ((v / 255) * 0.2 + 0.8) - 1)), 1e-6, '20% alpha onto white');

  // CMYK (a JPEG): converted to sRGB through sharp's CMYK profile, so the numbers shift a little.
  const cmyk = await synth(4, 4, 3, () => [220, 30, 30]).toColourspace('cmyk').jpeg({ quality: 100 }).toBuffer();
  const ci = await describeImage(cmyk);
  t.equal(ci.space, 'cmyk');
  t.equal(ci.channels, 4);
  const c = await pixels(await readImage(cmyk));
  const [cr, cg, cb] = rgbAt(c, 2, 2);
  t.ok(cr > lv(180) && cg < lv(70) && cb < lv(70), `CMYK red stays red in sRGB: ${[cr, cg, cb].map((v) => Math.round((v + 1) * 127.5))}`);
});

t.test('16-bit files keep 16-bit precision', async (t) => {
  const levels = [1150, 30000, 65535];
  const png16 = await synth(3, 1, 3, (x) => [levels[x], levels[(x + 1) % 3], levels[(x + 2) % 3]], true).png().toBuffer();
  const d = await describeImage(png16);
  t.equal(d.bitDepth, 16);
  t.equal(d.space, 'rgb16');
  const p = await pixels(await readImage(png16));
  near(t, rgbAt(p, 0, 0), [lv(1150, 65535), lv(30000, 65535), lv(65535, 65535)], 1e-6, '16-bit levels');
  const nearest8 = lv(Math.round((1150 / 65535) * 255));
  t.ok(Math.abs(p.at(0, 0, 0) - nearest8) > 1e-3, 'finer than any 8-bit level');

  // 16-bit grey + alpha, flattened exactly (a transparent pixel is exactly white, not 65280/65535).
  const ga16 = await synth(2, 1, 2, (x) => [1000, [65535, 0][x]], true).png().toBuffer();
  const g = await pixels(await readImage(ga16));
  near(t, rgbAt(g, 0, 0), [1, 1, 1].map(() => lv(1000, 65535)), 1e-6, 'opaque 16-bit grey');
  t.same(rgbAt(g, 0, 1), [1, 1, 1], 'transparent 16-bit pixel onto white');
});

t.test('EXIF orientation 6: the pixels come out rotated 90° clockwise', async (t) => {
  // A 3×2 image with a distinct colour in every pixel.
  const colour = (x: number, y: number) => [40 * x + 10, 100 * y + 20, 7 * (x + 3 * y)];
  const png = await synth(3, 2, 3, colour).withMetadata({ orientation: 6 }).png().toBuffer();
  const info = await describeImage(png);
  t.equal(info.orientation, 6);
  t.same([info.width, info.height], [2, 3], 'describeImage gives the displayed size');
  const x = await readImage(png);
  t.same(x.shape, [1, 3, 3, 2], 'displayed as 2 wide, 3 tall');
  const p = await pixels(x);
  for (let y = 0; y < 3; y++) {
    for (let xx = 0; xx < 2; xx++) {
      // Rotating W×H = 3×2 clockwise: displayed (x', y') shows stored (x = y', y = H−1−x').
      near(t, rgbAt(p, y, xx), colour(y, 1 - xx).map((v) => lv(v)), 1e-6, `displayed pixel (${xx}, ${y})`);
    }
  }
  const jpeg = await synth(64, 32, 3, colour).withMetadata({ orientation: 6 }).jpeg().toBuffer();
  t.same((await readImage(jpeg)).shape, [1, 3, 64, 32], 'JPEG with orientation 6');
  t.same((await readImage(jpeg, { size: [16, 8] })).shape, [1, 3, 16, 8], 'rotated before resizing');
});

t.test('resizing: cover crops the centre, contain pads, fill stretches; dtypes and devices', async (t) => {
  // 8×4: a red quarter, a green half, a blue quarter.
  const band: Px = (x) => (x < 2 ? [255, 0, 0] : x < 6 ? [0, 255, 0] : [0, 0, 255]);
  const png = await synth(8, 4, 3, band).png().toBuffer();
  const cover = await pixels(await readImage(png, { size: 4 }));
  t.ok(Array.from({ length: 16 }, (_, i) => rgbAt(cover, i >> 2, i & 3)).every((v) => v[0] === -1 && v[1] === 1 && v[2] === -1), 'cover (default): the centre square, all green');
  const sq = await pixels(await centerSquareCrop(png, 4));
  t.same(Array.from(sq.data), Array.from(cover.data), 'centerSquareCrop = readImage with fit cover');

  for (const background of ['white', 'black'] as const) {
    const x = await readImage(png, { size: 4, fit: 'contain', background });
    t.same(x.shape, [1, 3, 4, 4]);
    const p = await pixels(x);
    const bg = background === 'white' ? 1 : -1;
    t.same([rgbAt(p, 0, 0), rgbAt(p, 3, 3)], [[bg, bg, bg], [bg, bg, bg]], `contain: padding rows are ${background}`);
    t.ok(rgbAt(p, 1, 2)[1] > 0.5, 'contain: the image sits in the middle rows');
  }
  const fill = await pixels(await readImage(png, { size: 4, fit: 'fill' }));
  t.ok(fill.at(0, 2, 0) > 0.5 && fill.at(2, 2, 3) > 0.5, 'fill: stretched, red on the left and blue on the right remain');

  t.same((await readImage(png, { size: [2, 6] })).shape, [1, 3, 2, 6], 'size [height, width]');

  // A 1×1 image: readable, resizable, and checkFaceImage warns.
  const one = await synth(1, 1, 3, () => [30, 60, 90]).png().toBuffer();
  t.same((await readImage(one)).shape, [1, 3, 1, 1]);
  const big = await pixels(await readImage(one, { size: 64 }));
  t.equal(big.data.length, 3 * 64 * 64);
  near(t, rgbAt(big, 63, 0), [lv(30), lv(60), lv(90)], 1.5 / 127.5, '1×1 upscaled to 64² keeps its colour');
  const w = checkFaceImage(await describeImage(one));
  t.equal(w.length, 1);
  t.match(w[0], /tiny/);

  for (const dtype of ['float16', 'bfloat16', 'float64'] as const) {
    const x = await readImage(png, { size: 4, dtype });
    t.equal(x.dtype, dtype);
    x.dispose();
  }
  if (runtimeInfo().cuda.available) {
    const x = await readImage(png, { device: 'cuda' });
    t.equal(x.device, 'cuda:0');
  } else {
    await t.rejects(readImage(png, { device: 'cuda' }), { code: 'BIA_DEVICE_UNAVAILABLE' });
  }
});

t.test('round trips: PNG exactly, JPEG and WebP approximately; clamping; formats', async (t) => {
  // Values on the 8-bit grid (what an 8-bit file can hold), plus out-of-range values that clamp.
  const H = 16;
  const W = 24;
  const v = new Float32Array(3 * H * W);
  for (let i = 0; i < v.length; i++) v[i] = lv((i * 37 + 11) % 256);
  const x = await tensor(v, [1, 3, H, W]);
  const png = out('round.png');
  const info = await writeImage(x, png);
  t.same(info, { path: png, format: 'png', width: W, height: H, bytes: fs.statSync(png).size });
  const back = await readImage(png);
  t.same(Array.from((await back.data()) as Float32Array), Array.from(v), 'PNG: every value back exactly');

  const clampIn = await tensor(new Float32Array([2, -3, 0.5, 1, -1, 0]), [3, 1, 2]); // [3,H,W] is accepted
  await writeImage(clampIn, out('clamp.png'));
  const c = await pixels(await readImage(out('clamp.png')));
  t.same(Array.from(c.data), [1, -1, lv(191), 1, -1, lv(128)], 'clamped to [-1,1]; 0.5 → 191, 0 → 128');

  // A smooth image for the lossy formats.
  const s = new Float32Array(3 * 32 * 32);
  for (let c2 = 0; c2 < 3; c2++) for (let y = 0; y < 32; y++) for (let xx = 0; xx < 32; xx++) s[(c2 * 32 + y) * 32 + xx] = Math.sin(xx / 9 + c2) * 0.6 + (y / 32 - 0.5) * 0.5;
  const smooth = await tensor(s, [1, 3, 32, 32]);
  for (const [file, tol] of [['smooth.jpg', 0.02], ['smooth.jpeg', 0.02], ['smooth.webp', 0.03]] as const) {
    const w = await writeImage(smooth, out(file));
    t.equal(w.format, file.endsWith('webp') ? 'webp' : 'jpeg', `${file}: the format comes from the extension`);
    t.equal((await describeImage(out(file))).format, w.format);
    const d = (await readImage(out(file)).then((r) => r.data())) as Float32Array;
    const mae = d.reduce((a, b, i) => a + Math.abs(b - s[i]), 0) / d.length;
    t.ok(mae < tol, `${file}: mean abs error ${mae.toFixed(4)} < ${tol}`);
  }
  const low = await writeImage(smooth, out('low.jpg'), { quality: 10 });
  const high = await writeImage(smooth, out('high.jpg'), { quality: 100 });
  t.ok(low.bytes < high.bytes, `quality: ${low.bytes} bytes at 10, ${high.bytes} at 100`);
  const forced = await writeImage(smooth, out('forced.img'), { format: 'png' });
  t.equal(forced.format, 'png');
  t.equal((await describeImage(out('forced.img'))).format, 'png', 'format wins over the extension');

  const pngBuf = await imageToBuffer(x, 'png');
  t.same([...pngBuf.subarray(0, 4)], [0x89, 0x50, 0x4e, 0x47], 'imageToBuffer png');
  t.same(Array.from((await (await readImage(pngBuf)).data()) as Float32Array), Array.from(v), 'imageToBuffer png round trip');
  const jpgBuf = await imageToBuffer(x, 'jpeg', { quality: 80 });
  t.same([...jpgBuf.subarray(0, 2)], [0xff, 0xd8], 'imageToBuffer jpeg');
  t.equal((await describeImage(await imageToBuffer(x, 'webp'))).format, 'webp');

  const half = await tensor(v, [1, 3, H, W], { dtype: 'float16' });
  await writeImage(half, out('half.png'));
  t.same((await readImage(out('half.png'))).shape, [1, 3, H, W], 'float16 tensors write too');

  t.same(fs.readdirSync(dir).filter((f) => f.endsWith('.tmp')), [], 'no temporary files left behind');
});

t.test('writes are atomic: a failed write leaves the old file, a killed writer never leaves half an image', async (t) => {
  const target = out('atomic.png');
  await writeImage(await tensor(new Float32Array(3 * 4 * 4).fill(0.5), [1, 3, 4, 4]), target);
  const before = fs.readFileSync(target);
  const nan = new Float32Array(3 * 4 * 4);
  nan[17] = NaN;
  await t.rejects(writeImage(await tensor(nan, [1, 3, 4, 4]), target), { code: 'BIA_INVALID_ARGUMENT', message: /NaN at channel 1, row 0, column 1/ });
  t.same(fs.readFileSync(target), before, 'the old file is untouched');

  const folder = out('a-folder.png');
  fs.mkdirSync(folder);
  await t.rejects(writeImage(await tensor(new Float32Array(3), [3, 1, 1]), folder), { code: 'BIA_IO_ERROR', message: /a-folder\.png/ });
  await t.rejects(writeImage(await tensor(new Float32Array(3), [3, 1, 1]), out('no/such/folder/x.png')), { code: 'BIA_IO_ERROR', message: /no such file or folder/ });
  t.same(fs.readdirSync(dir).filter((f) => f.endsWith('.tmp')), [], 'failed writes remove their temporary file');

  // A child process rewrites a 3 MB PNG over and over; it is killed at an arbitrary moment.
  const killed = out('killed.png');
  const code = `
    const { tensor, writeImage } = require(${JSON.stringify(path.join(ROOT, 'dist', 'ts', 'index.js'))});
    (async () => {
      const v = new Float32Array(3 * 1024 * 1024);
      let s = 1;
      for (let i = 0; i < v.length; i++) { s = (s * 1103515245 + 12345) >>> 0; v[i] = s / 2 ** 31 - 1; }
      const x = await tensor(v, [1, 3, 1024, 1024]);
      for (let k = 0; ; k++) { await writeImage(x, ${JSON.stringify(killed)}); if (k === 0) console.log('written'); }
    })();`;
  const child = spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve) => child.stdout.once('data', () => resolve()));
  await new Promise((r) => setTimeout(r, 150 + Math.random() * 200));
  child.kill('SIGKILL');
  await new Promise((r) => child.once('exit', r));
  const decoded = await sharp(killed, { failOn: 'truncated' }).raw().toBuffer({ resolveWithObject: true });
  t.same([decoded.info.width, decoded.info.height], [1024, 1024], 'the image at the path is always whole');
  for (const f of fs.readdirSync(dir).filter((f) => f.startsWith('.killed.png.'))) fs.rmSync(path.join(dir, f)); // a killed writer's temp file
});

t.test('comparisonGrid: size, cell pixels, labels, blanks', async (t) => {
  const solid = (rgb: number[], h = 8, w = 8) => {
    const v = new Float32Array(3 * h * w);
    for (let c = 0; c < 3; c++) v.fill(lv(rgb[c]), c * h * w, (c + 1) * h * w);
    return tensor(v, [1, 3, h, w]);
  };
  const colours = [[[255, 0, 0], [0, 255, 0], [0, 0, 255]], [[255, 255, 0], [0, 255, 255]]];
  const cells = await Promise.all(colours.map((row, r) => Promise.all(row.map(async (rgb, c) => ({ tensor: await solid(rgb), label: r === 0 ? `r${r}c${c}` : undefined })))));
  const grid = out('grid.png');
  const layout = await comparisonGrid(cells, grid, { labelHeight: 14, gap: 2 });
  const { cellSize, labelHeight, gap } = layout;
  t.same([layout.rows, layout.columns, cellSize, labelHeight, gap], [2, 3, 8, 14, 2]);
  t.same([layout.width, layout.height], [gap + 3 * (cellSize + gap), gap + 2 * (cellSize + labelHeight + gap)]);
  const { data, info } = await sharp(grid).raw().toBuffer({ resolveWithObject: true });
  t.same([info.width, info.height, info.channels], [layout.width, layout.height, 3], 'the PNG has the layout size');
  const px = (x: number, y: number) => [...data.subarray((y * info.width + x) * 3, (y * info.width + x) * 3 + 3)];
  const cellLeft = (c: number) => gap + c * (cellSize + gap);
  const cellTop = (r: number) => gap + r * (cellSize + labelHeight + gap);
  for (const [r, row] of colours.entries()) {
    for (const [c, rgb] of row.entries()) {
      t.same(px(cellLeft(c), cellTop(r)), rgb, `cell (${r}, ${c}): top-left pixel`);
      t.same(px(cellLeft(c) + cellSize - 1, cellTop(r) + cellSize - 1), rgb, `cell (${r}, ${c}): bottom-right pixel`);
    }
  }
  t.same(px(cellLeft(2) + 3, cellTop(1) + 3), [255, 255, 255], 'the missing cell of the short row is background');
  t.same(px(0, 0), [255, 255, 255], 'gap is background');
  const ink = (r: number, c: number) => {
    let n = 0;
    for (let y = cellTop(r) + cellSize; y < cellTop(r) + cellSize + labelHeight; y++) for (let x = cellLeft(c); x < cellLeft(c) + cellSize; x++) if (px(x, y)[0] < 128) n++;
    return n;
  };
  t.ok(ink(0, 1) > 5, `a label is drawn (${ink(0, 1)} dark pixels)`);
  t.equal(ink(1, 0), 0, 'no label, no ink');

  // Cells fitted to cellSize ('contain'), a null cell, a dark background with light text.
  const wide = await solid([0, 0, 255], 4, 8);
  const dark = await comparisonGrid([[{ tensor: wide, label: 'wide & <tall>' }, null]], out('grid-dark.png'), { cellSize: 16, background: '#202020', gap: 0 });
  t.same([dark.width, dark.height], [32, 16 + dark.labelHeight]);
  const d = await sharp(out('grid-dark.png')).raw().toBuffer();
  const dpx = (x: number, y: number) => [...d.subarray((y * 32 + x) * 3, (y * 32 + x) * 3 + 3)];
  t.same(dpx(8, 8), [0, 0, 255], 'the 4×8 image scaled to 8×16, centred');
  t.same(dpx(8, 1), [32, 32, 32], 'contain padding is the background');
  t.same(dpx(24, 8), [32, 32, 32], 'the null cell is background');
  let light = 0;
  for (let y = 16; y < dark.height; y++) for (let x = 0; x < 16; x++) if (dpx(x, y)[0] > 128) light++;
  t.ok(light > 0, 'light text on a dark background');

  await t.rejects(comparisonGrid(cells, out('grid.jpg')), { code: 'BIA_INVALID_ARGUMENT', message: /\.png/ });
  await t.rejects(comparisonGrid([], out('g.png')), { code: 'BIA_INVALID_ARGUMENT' });
  await t.rejects(comparisonGrid([[null]], out('g.png')), { code: 'BIA_INVALID_ARGUMENT', message: /no image/ });
  await t.rejects(comparisonGrid([[{ tensor: 3 as never }]], out('g.png')), { code: 'BIA_INVALID_ARGUMENT', message: /cells\[0\]\[0\]/ });
  await t.rejects(comparisonGrid(cells, out('g.png'), { background: 'not-a-colour' }), { code: 'BIA_INVALID_ARGUMENT', message: /not a colour/ });
  await t.rejects(comparisonGrid(cells, out('g.png'), { cellSize: 0 }), { code: 'BIA_INVALID_ARGUMENT' });
  const bad = new Float32Array(3 * 8 * 8);
  bad[5] = Infinity;
  await t.rejects(comparisonGrid([[cells[0][0], { tensor: await tensor(bad, [1, 3, 8, 8]) }]], out('g.png')), { code: 'BIA_INVALID_ARGUMENT', message: /cells\[0\]\[1\]\.tensor holds Infinity/ });
  t.notOk(fs.existsSync(out('g.png')), 'nothing written on bad input');
});

t.test('the face-input contract: checkFaceImage and describeImage warnings', async (t) => {
  t.same(checkFaceImage({ width: 256, height: 256 }), []);
  t.same(checkFaceImage({ width: 125, height: 100 }), [], 'aspect exactly 1.25 is fine');
  t.match(checkFaceImage({ width: 126, height: 100 }), [/far from square \(aspect ratio 1\.26 > 1\.25\)/]);
  t.match(checkFaceImage({ width: 640, height: 360 }), [/far from square/]);
  t.match(checkFaceImage({ width: 63, height: 63 }), [/tiny/]);
  t.equal(checkFaceImage({ width: 10, height: 40 }).length, 2, 'tiny and far from square');
  t.throws(() => checkFaceImage({ width: 0, height: 5 }), { code: 'BIA_INVALID_ARGUMENT' });
  t.throws(() => checkFaceImage(null as never), { code: 'BIA_INVALID_ARGUMENT' });
  const wide = await synth(160, 90, 3, () => [128, 128, 128]).jpeg().toBuffer();
  const info = await describeImage(wide);
  t.match(info, { format: 'jpeg', width: 160, height: 90, channels: 3, bitDepth: 8, hasAlpha: false, orientation: 1, pages: 1, bytes: wide.length });
  t.match(info.warnings, [/far from square/]);
  const crop = await centerSquareCrop(wide, 64);
  t.same(crop.shape, [1, 3, 64, 64], 'centerSquareCrop makes it square');
  await t.rejects(centerSquareCrop(wide, 0), { code: 'BIA_INVALID_ARGUMENT' });
});

/** A PNG whose header claims width × height, with one tiny IDAT: decoding it would need the claimed memory. */
function claimingPng(width: number, height: number): Buffer {
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc = (b: Buffer) => {
    let c = 0xffffffff;
    for (const x of b) c = crcTable[(c ^ x) & 0xff] ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type: string, body: Buffer) => {
    const head = Buffer.alloc(4);
    head.writeUInt32BE(body.length);
    const td = Buffer.concat([Buffer.from(type, 'latin1'), body]);
    const tail = Buffer.alloc(4);
    tail.writeUInt32BE(crc(td));
    return Buffer.concat([head, td, tail]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // RGB
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr), chunk('IDAT', zlib.deflateSync(Buffer.alloc(301))), chunk('IEND', Buffer.alloc(0))]);
}

t.test('bad input: each a BiaError with a clear message', async (t) => {
  const good = await synth(64, 64, 3, (x, y) => [x * 4, y * 4, 128]).png().toBuffer();
  const noisy = await sharp({ create: { width: 64, height: 64, channels: 3, background: 'black', noise: { type: 'gaussian', mean: 128, sigma: 40 } } }).jpeg().toBuffer();
  const write = (name: string, bytes: Buffer | string) => {
    fs.writeFileSync(out(name), bytes);
    return out(name);
  };
  await t.rejects(readImage(write('truncated.png', good.subarray(0, 60))), { code: 'BIA_IMAGE_ERROR', message: /truncated\.png cannot be decoded/ });
  await t.rejects(readImage(write('truncated.jpg', noisy.subarray(0, noisy.length >> 1))), { code: 'BIA_IMAGE_ERROR', message: /truncated\.jpg cannot be decoded \(corrupt or truncated\?\): .*premature end/i });
  const scrambled = Buffer.from(good);
  for (let i = 60; i < scrambled.length - 12; i += 7) scrambled[i] ^= 0x5a;
  await t.rejects(readImage(write('scrambled.png', scrambled)), { code: 'BIA_IMAGE_ERROR' });
  await t.rejects(readImage(write('notes.txt', 'these are not pixels\n')), { code: 'BIA_IMAGE_ERROR', message: /notes\.txt is not an image sharp can read/ });
  await t.rejects(readImage(write('empty.png', '')), { code: 'BIA_IMAGE_ERROR', message: /empty\.png is empty \(0 bytes\)/ });
  await t.rejects(readImage(Buffer.alloc(0)), { code: 'BIA_IMAGE_ERROR', message: /empty/ });
  await t.rejects(readImage(out('missing.png')), { code: 'BIA_IO_ERROR', message: /missing\.png: no such file or folder/ });
  await t.rejects(readImage(dir), { code: 'BIA_IO_ERROR', message: /it is a folder/ });
  await t.rejects(describeImage(out('notes.txt')), { code: 'BIA_IMAGE_ERROR' });

  // A header claiming 100000×100000 (10 gigapixels, 30 GB of RGB) is refused from the header alone.
  const huge = write('huge.png', claimingPng(100000, 100000));
  const rss = process.memoryUsage().rss;
  const t0 = performance.now();
  await t.rejects(readImage(huge), { code: 'BIA_IMAGE_TOO_LARGE', message: /100000×100000 \(10000 MP\), more than the limit of 100 MP; raise limitInputPixels/ });
  const ms = performance.now() - t0;
  t.ok(ms < 200, `refused in ${ms.toFixed(1)} ms`);
  t.ok(process.memoryUsage().rss - rss < 64 * 2 ** 20, 'without allocating the pixels');
  const hi = await describeImage(huge);
  t.same([hi.width, hi.height], [100000, 100000], 'describeImage still reads the header');
  t.match(hi.warnings, [/over the limit of 100 MP/]);
  await t.rejects(readImage(huge, { limitInputPixels: 2e10 }), { code: 'BIA_IMAGE_ERROR' }, 'with the limit raised it is just a corrupt file');
  await t.rejects(readImage(good, { limitInputPixels: 4095 }), { code: 'BIA_IMAGE_TOO_LARGE', message: /64×64 \(0\.004096 MP\)/ });
  t.same((await readImage(good, { limitInputPixels: 4096 })).shape, [1, 3, 64, 64], 'at the limit it reads');

  // The resize target has its limit too: a 64² image asked for at 16384² would be 3.2 GB of floats.
  const rss2 = process.memoryUsage().rss;
  const t1 = performance.now();
  await t.rejects(readImage(good, { size: 16384 }), { code: 'BIA_IMAGE_TOO_LARGE', message: /16384×16384 \(268\.4 MP\) is more than the limit of 16\.78 MP; raise limitOutputPixels/ });
  t.ok(performance.now() - t1 < 200 && process.memoryUsage().rss - rss2 < 64 * 2 ** 20, 'refused at once, without allocating');
  await t.rejects(readImage(good, { size: [64, 65], limitOutputPixels: 64 * 64 }), { code: 'BIA_IMAGE_TOO_LARGE' });
  t.same((await readImage(good, { size: 64, limitOutputPixels: 64 * 64 })).shape, [1, 3, 64, 64], 'at the output limit it reads');

  // Options.
  for (const [opts, msg] of [
    [{ size: 0 }, /size must be an integer in \[1, 16384\]/],
    [{ size: [4] }, /size must be a positive integer or \[height, width\]/],
    [{ size: [4, 1.5] }, /size\[1\] \(width\)/],
    [{ size: '256' }, /size must be/],
    [{ fit: 'stretch' }, /fit must be one of cover, contain, fill/],
    [{ dtype: 'int32' }, /dtype must be one of float32, float16, bfloat16, float64/],
    [{ device: 'gpu' }, /device must be/],
    [{ background: 'red' }, /background must be 'white' or 'black'/],
    [{ limitInputPixels: 0 }, /limitInputPixels/],
    [{ limitOutputPixels: 1.5 }, /limitOutputPixels/],
  ] as const) {
    await t.rejects(readImage(good, opts as never), { code: 'BIA_INVALID_ARGUMENT', message: msg }, JSON.stringify(opts));
  }
  await t.rejects(readImage(42 as never), { code: 'BIA_INVALID_ARGUMENT', message: /file path or a Buffer/ });
  await t.rejects(readImage(''), { code: 'BIA_INVALID_ARGUMENT' });
  await t.rejects(readImage(good, 'big' as never), { code: 'BIA_INVALID_ARGUMENT', message: /options must be an object/ });

  // Tensors that are not one finite RGB image.
  const z = (shape: number[]) => tensor(new Float32Array(shape.reduce((a, b) => a * b, 1)), shape);
  await t.rejects(writeImage(await z([2, 3, 4, 4]), out('w.png')), { code: 'BIA_INVALID_ARGUMENT', message: /one RGB image.*\[2,3,4,4\].*one at a time/ });
  await t.rejects(writeImage(await z([1, 4, 4, 4]), out('w.png')), { code: 'BIA_INVALID_ARGUMENT', message: /\[1,3,H,W\] or \[3,H,W\]/ });
  await t.rejects(writeImage(await z([4, 4]), out('w.png')), { code: 'BIA_INVALID_ARGUMENT' });
  await t.rejects(writeImage(await z([1, 3, 0, 4]), out('w.png')), { code: 'BIA_INVALID_ARGUMENT', message: /empty/ });
  await t.rejects(writeImage(await tensor(new Uint8Array(12), [3, 2, 2]), out('w.png')), { code: 'BIA_INVALID_ARGUMENT', message: /floating tensor/ });
  const inf = new Float32Array(12);
  inf[11] = -Infinity;
  await t.rejects(writeImage(await tensor(inf, [3, 2, 2]), out('w.png')), { code: 'BIA_INVALID_ARGUMENT', message: /-Infinity at channel 2, row 1, column 1/ });
  await t.rejects(writeImage({} as never, out('w.png')), { code: 'BIA_INVALID_ARGUMENT', message: /must be a Tensor/ });
  const gone = await z([3, 2, 2]);
  gone.dispose();
  await t.rejects(writeImage(gone, out('w.png')), { code: 'BIA_DISPOSED' });
  const ok = await z([3, 2, 2]);
  await t.rejects(writeImage(ok, out('w.gif')), { code: 'BIA_INVALID_ARGUMENT', message: /cannot tell the image format from "\.gif"/ });
  await t.rejects(writeImage(ok, out('w')), { code: 'BIA_INVALID_ARGUMENT' });
  await t.rejects(writeImage(ok, out('w.png'), { format: 'bmp' as never }), { code: 'BIA_INVALID_ARGUMENT', message: /format must be one of png, jpeg, webp/ });
  await t.rejects(writeImage(ok, out('w.png'), { quality: 90 }), { code: 'BIA_INVALID_ARGUMENT', message: /jpeg and webp only/ });
  await t.rejects(writeImage(ok, out('w.jpg'), { quality: 0 }), { code: 'BIA_INVALID_ARGUMENT', message: /quality must be an integer in \[1, 100\]/ });
  await t.rejects(imageToBuffer(ok, 'tiff' as never), { code: 'BIA_INVALID_ARGUMENT' });
  t.notOk(fs.existsSync(out('w.png')), 'nothing was written');
  t.ok(new BiaError('BIA_IMAGE_TOO_LARGE', 'x') instanceof Error);
});

t.test('readImages: a batch, with one broken file among good ones', async (t) => {
  const files: string[] = [];
  for (let i = 0; i < 4; i++) {
    files.push(out(`batch-${i}.png`));
    await synth(6, 6, 3, (x, y) => [i * 60, x * 40, y * 40]).png().toFile(files[i]);
  }
  fs.writeFileSync(out('batch-broken.png'), 'not a png');
  const paths = [files[0], out('batch-broken.png'), files[1], out('batch-missing.png'), files[2], files[3]];
  const events: number[] = [];
  const r = await readImages(paths, { onError: 'skip', concurrency: 2, onProgress: (ev) => events.push(ev.step) });
  t.same(r.tensor.shape, [4, 3, 6, 6]);
  t.same(r.ok, files, 'the good files, in order');
  t.same(r.failed.map((f) => [path.basename(f.path), f.error.code]), [['batch-broken.png', 'BIA_IMAGE_ERROR'], ['batch-missing.png', 'BIA_IO_ERROR']]);
  t.ok(r.failed.every((f) => f.error instanceof BiaError && f.error.message.includes(f.path)), 'each error names its file');
  t.same(events, [1, 2, 3, 4, 5, 6], 'one progress event per file');
  const batch = await pixels(r.tensor);
  for (let b = 0; b < 4; b++) {
    const single = (await (await readImage(files[b])).data()) as Float32Array;
    t.same(Array.from(batch.data.subarray(b * 108, (b + 1) * 108)), Array.from(single), `batch[${b}] = readImage(${path.basename(files[b])})`);
  }

  await t.rejects(readImages(paths), { code: 'BIA_IMAGE_ERROR', message: /batch-broken\.png is not an image/ }, "onError 'throw' (default)");
  await t.rejects(readImages([files[0], out('batch-missing.png')], { concurrency: 1 }), { code: 'BIA_IO_ERROR' });

  // Sizes: without `size` they must agree; with it they are resized.
  const other = out('batch-other.png');
  await synth(8, 5, 3, () => [1, 2, 3]).png().toFile(other);
  await t.rejects(readImages([files[0], other]), { code: 'BIA_INVALID_ARGUMENT', message: /batch-other\.png is 8×5 but the batch is 6×6 .*pass size/ });
  const mixed = await readImages([files[0], other], { onError: 'skip' });
  t.same([mixed.tensor.shape, mixed.failed.length], [[1, 3, 6, 6], 1]);
  const sized = await readImages([files[0], other], { size: [4, 3], dtype: 'bfloat16' });
  t.same([sized.tensor.shape, sized.tensor.dtype], [[2, 3, 4, 3], 'bfloat16']);

  const none = await readImages([out('batch-broken.png')], { onError: 'skip', size: 8 });
  t.same([none.tensor.shape, none.ok, none.failed.length], [[0, 3, 8, 8], [], 1], 'every file failed: an empty batch');
  await t.rejects(readImages([]), { code: 'BIA_INVALID_ARGUMENT', message: /non-empty array/ });
  await t.rejects(readImages([files[0], 3 as never]), { code: 'BIA_INVALID_ARGUMENT', message: /paths\[1\]/ });
  await t.rejects(readImages(files, { onError: 'ignore' as never }), { code: 'BIA_INVALID_ARGUMENT' });
  await t.rejects(readImages(files, { concurrency: 0 }), { code: 'BIA_INVALID_ARGUMENT' });
  const ac = new AbortController();
  ac.abort();
  await t.rejects(readImages(files, { signal: ac.signal }), { code: 'BIA_ABORTED' });
  const ac2 = new AbortController();
  const seen: number[] = [];
  await t.rejects(readImages(files, { signal: ac2.signal, concurrency: 1, onProgress: (ev) => (seen.push(ev.step), ac2.abort()) }), { code: 'BIA_ABORTED' }, 'aborted between files');
  t.same(seen, [1], 'no file is started after the abort');
  const boom = new Error('progress callback failed');
  let calls = 0;
  await t.rejects(readImages(files, { concurrency: 2, onProgress: () => { calls++; throw boom; } }), boom, 'a throwing onProgress rejects the call with its error');
  await new Promise((r) => setTimeout(r, 50));
  t.equal(calls, 1, 'and stops the work: no callback after that');
});

t.test('real photo: the astronaut (skimage, NASA, public domain)', async (t) => {
  const file = path.join(FACES, 'astronaut.png');
  const info = await describeImage(file);
  t.match(info, { format: 'png', width: 512, height: 512, channels: 3, warnings: [] });
  const full = await readImage(file);
  t.same(full.shape, [1, 3, 512, 512]);
  const raw = await sharp(file).raw().toBuffer();
  const f = await pixels(full);
  t.same(rgbAt(f, 100, 200), [...raw.subarray((100 * 512 + 200) * 3, (100 * 512 + 200) * 3 + 3)].map((v) => lv(v)), 'a pixel matches the PNG');
  const t0 = performance.now();
  const small = await readImage(file, { size: 256 });
  const ms = performance.now() - t0;
  t.same(small.shape, [1, 3, 256, 256]);
  t.comment(`512² PNG → [1,3,256,256] float32 in ${ms.toFixed(1)} ms`);
  const s = await pixels(small);
  const mean = (d: Float32Array, c: number, n: number) => d.subarray(c * n, (c + 1) * n).reduce((a, b) => a + b, 0) / n;
  for (let c = 0; c < 3; c++) {
    const a = mean(f.data, c, 512 * 512);
    const b = mean(s.data, c, 256 * 256);
    t.ok(Math.abs(a - b) < 0.01, `channel ${c}: mean ${a.toFixed(4)} at 512², ${b.toFixed(4)} at 256²`);
  }
  const min = s.data.reduce((a, b) => Math.min(a, b), 1);
  const max = s.data.reduce((a, b) => Math.max(a, b), -1);
  t.ok(min >= -1 && min < -0.9 && max <= 1 && max > 0.9, `full range used: [${min.toFixed(3)}, ${max.toFixed(3)}]`);
  const back = out('astronaut-256.png');
  await writeImage(small, back);
  t.same(Array.from((await (await readImage(back)).data()) as Float32Array), Array.from(s.data), 'written and read back exactly');
});

t.test('readNpy: the LFW crops (skimage) and the .npy format', async (t) => {
  const lfw = await readNpy(path.join(FACES, 'lfw_subset.npy'));
  // skimage.data.lfw_subset(): 200 crops, the first 100 faces and then 100 non-faces.
  t.same([lfw.dtype, lfw.shape], ['float64', [200, 25, 25]]);
  t.ok(lfw.data instanceof Float64Array);
  t.ok(lfw.data.every((v) => v >= 0 && v <= 1), 'grey values in [0, 1]');
  t.equal(lfw.data[0], 0.288888871669772, 'the first value, exactly');
  const faces = await tensor((lfw.data as Float64Array).subarray(0, 100 * 625).map((v) => 2 * v - 1), [100, 1, 25, 25], { dtype: 'float32' });
  t.same([faces.shape, faces.dtype], [[100, 1, 25, 25], 'float32'], 'the 100 faces as a tensor');
  t.match(checkFaceImage({ width: 25, height: 25 }), [/tiny/], 'LFW crops are tiny for the face contract');

  const npy = (descr: string, shape: string, data: Buffer, major = 1, fortran = 'False') => {
    let header = `{'descr': '${descr}', 'fortran_order': ${fortran}, 'shape': ${shape}, }`;
    const pre = major === 1 ? 10 : 12;
    header += ' '.repeat(63 - ((pre + header.length) % 64)) + '\n';
    const len = Buffer.alloc(major === 1 ? 2 : 4);
    if (major === 1) len.writeUInt16LE(header.length);
    else len.writeUInt32LE(header.length);
    return Buffer.concat([Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, major, 0]), len, Buffer.from(header, 'latin1'), data]);
  };
  const f4 = parseNpy(npy('<f4', '(2, 3)', Buffer.from(new Float32Array([1, 2, 3, 4, 5, 6.5]).buffer)));
  t.same([f4.dtype, f4.shape, Array.from(f4.data)], ['float32', [2, 3], [1, 2, 3, 4, 5, 6.5]]);
  const u1 = parseNpy(npy('|u1', '(4,)', Buffer.from([0, 7, 128, 255])));
  t.same([u1.dtype, u1.shape, Array.from(u1.data)], ['uint8', [4], [0, 7, 128, 255]]);
  const i4 = parseNpy(npy('<i4', '()', Buffer.from(new Int32Array([-5]).buffer)));
  t.same([i4.dtype, i4.shape, Array.from(i4.data)], ['int32', [], [-5]], 'a 0-d array');
  const v2 = parseNpy(npy('<f8', '(1, 2)', Buffer.from(new Float64Array([Math.PI, -0]).buffer), 2));
  t.same([v2.shape, Array.from(v2.data)], [[1, 2], [Math.PI, -0]], 'format version 2.0');
  const unaligned = Buffer.concat([Buffer.alloc(3), npy('<f8', '(2,)', Buffer.from(new Float64Array([1.5, 2.5]).buffer))]).subarray(3);
  t.same(Array.from(parseNpy(unaligned).data), [1.5, 2.5], 'an unaligned buffer');
  const fpath = out('x.npy');
  fs.writeFileSync(fpath, npy('<f4', '(2, 3)', Buffer.from(new Float32Array(6).buffer)));
  t.same((await readNpy(fpath)).shape, [2, 3]);

  const bad = [
    [Buffer.from('PK\x03\x04 not npy at all'), /\\x93NUMPY magic/],
    [npy('>f8', '(1,)', Buffer.alloc(8)), /big-endian/],
    [npy('<c16', '(1,)', Buffer.alloc(16)), /dtype '<c16' is not supported/],
    [npy('<f8', '(2, 2)', Buffer.alloc(32), 1, 'True'), /Fortran-order/],
    [npy('<f8', '(2, 2)', Buffer.alloc(31)), /needs 32 bytes of data, the file has 31/],
    [npy('<f8', '(2, 2)', Buffer.alloc(40)), /needs 32 bytes of data, the file has 40/],
    [npy('<f8', "('a',)", Buffer.alloc(8)), /not a tuple of integers/],
    [npy('<f8', `(${Array(17).fill('1').join(', ')})`, Buffer.alloc(8)), /17 dimensions \(at most 16\)/],
    [npy('<f8', '(1,)', Buffer.alloc(8)).subarray(0, 30), /header claims/],
  ] as const;
  for (const [bytes, msg] of bad) t.throws(() => parseNpy(bytes), { code: 'BIA_CHECKPOINT_ERROR', message: msg });
  await t.rejects(readNpy(out('nope.npy')), { code: 'BIA_IO_ERROR', message: /nope\.npy: no such file/ });
  await t.rejects(readNpy(3 as never), { code: 'BIA_INVALID_ARGUMENT' });
});

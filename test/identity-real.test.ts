// The real, pretrained MobileFaceNet (converted from the ONNX file in faceplugin-face-recognition-js,
// `npm run fetch:models`) on real photos: the astronaut (skimage, public domain) against shifted,
// flipped and rescaled crops of herself, and against 100 LFW faces. Skips when the model is absent.
import { existsSync } from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import t from 'tap';
import { loadIdentityEncoder, readNpy, similarity, tensor, type Tensor } from '../ts/index';
import { ROOT } from './helpers';

const MODEL = path.join(ROOT, '.cache', 'faceplugin', 'mobilefacenet.safetensors');
const ASTRONAUT = path.join(ROOT, 'test', 'fixtures', 'faces', 'astronaut.png');
const LFW = path.join(ROOT, 'test', 'fixtures', 'faces', 'lfw_subset.npy');

// An ArcFace-style crop of her face: eyes near (200, 103) and (245, 103) in the 512² photo, placed
// where the 112² template puts them (38 and 73 px across, 52 px down), so the side is ~143 px.
const FACE = { left: 151, top: 37, width: 143, height: 143 };

/** 8-bit RGB [112·112·3] → a [1,3,112,112] tensor in [-1, 1] ((x/255 − 0.5)/0.5). */
async function toTensor(rgb: Buffer): Promise<Tensor> {
  const n = 112 * 112;
  const out = new Float32Array(3 * n);
  for (let i = 0; i < n; i++) for (let c = 0; c < 3; c++) out[c * n + i] = rgb[i * 3 + c] / 127.5 - 1;
  return tensor(out, [1, 3, 112, 112]);
}

async function crop(box: { left: number; top: number; width: number; height: number }, flip = false): Promise<Tensor> {
  let img = sharp(ASTRONAUT).extract(box).resize(112, 112, { fit: 'fill' });
  if (flip) img = img.flop();
  return toTensor(await img.removeAlpha().raw().toBuffer());
}

t.test('the astronaut is closer to herself than to any LFW face', { skip: existsSync(MODEL) ? false : `no ${MODEL} (run npm run fetch:models)` }, async (t) => {
  const enc = await loadIdentityEncoder(MODEL, { arch: 'mobilefacenet' });
  const embed = (x: Tensor) => enc.embed(x, { protocol: 'insightface' });
  const ref = await embed(await crop(FACE));
  const variants: [string, Tensor][] = [
    ['shifted 6 px right, 4 px down', await crop({ ...FACE, left: FACE.left + 6, top: FACE.top + 4 })],
    ['mirrored', await crop(FACE, true)],
    ['rescaled +12%', await crop({ left: FACE.left - 9, top: FACE.top - 9, width: 161, height: 161 })],
  ];
  const self: number[] = [];
  for (const [name, v] of variants) {
    const s = (await (await similarity(await embed(v), ref)).data())[0];
    self.push(s);
    t.comment(`sim(astronaut, ${name}) = ${s.toFixed(3)}`);
  }
  // LFW: 100 grey 25×25 face crops (the file's first 100 of 200), to RGB, up to 112².
  const lfw = await readNpy(LFW);
  const faces: Tensor[] = [];
  for (let i = 0; i < 100; i++) {
    const grey = Buffer.alloc(25 * 25);
    for (let j = 0; j < 625; j++) grey[j] = Math.round(Math.min(1, Math.max(0, Number(lfw.data[i * 625 + j]))) * 255);
    const rgb = await sharp(grey, { raw: { width: 25, height: 25, channels: 1 } }).resize(112, 112).toColourspace('srgb').removeAlpha().raw().toBuffer();
    faces.push(await toTensor(rgb.length === 112 * 112 * 3 ? rgb : Buffer.from(Array.from({ length: 112 * 112 * 3 }, (_, k) => rgb[Math.floor(k / 3)]))));
  }
  let worst = -1;
  for (const f of faces) worst = Math.max(worst, (await (await similarity(await embed(f), ref)).data())[0]);
  t.comment(`max sim(astronaut, LFW face) over 100 faces = ${worst.toFixed(3)}`);
  for (const [i, s] of self.entries()) t.ok(s > worst, `${variants[i][0]}: ${s.toFixed(3)} > ${worst.toFixed(3)}`);
});

// eraseFolder from the package root, without the command line: a folder of images in, one folder per
// image and the batch report out, events as it goes, a re-run that skips, and a batch that cannot
// run at all rejecting with EraseFolderError.
import * as fs from 'node:fs';
import os from 'node:os';
import nodePath from 'node:path';
import sharp from 'sharp';
import t from 'tap';
import { createDiffusion, createIdentityEncoder, eraseFolder, EraseFolderError, setThreads, type EraseFolderEvent, type EraseOptions } from '../ts/index';

// Tiny random models: no boundary, so a short `optimize` absorption.
const FAST: EraseOptions = { t0: 100, steps: 8, neighbours: 8, protocol: 'resize', calibrationRounds: 2, iterations: 2, backprop: 'one-step', degenerateBaselines: false };

t.test('a folder through eraseFolder', async (t) => {
  setThreads(1);
  const root = fs.mkdtempSync(nodePath.join(os.tmpdir(), 'bia-erase-folder-'));
  t.teardown(() => fs.rmSync(root, { recursive: true, force: true }));
  const diffusion = nodePath.join(root, 'unet.safetensors');
  const encoder = nodePath.join(root, 'enc.safetensors');
  const d = await createDiffusion('tiny', { seed: 1 });
  const e = await createIdentityEncoder('iresnet18', { width: 0.125, embeddingSize: 32, seed: 2 });
  await d.save(diffusion);
  await e.save(encoder);
  d.dispose();
  e.dispose();
  const inDir = nodePath.join(root, 'in');
  fs.mkdirSync(inDir);
  const px = Buffer.alloc(20 * 20 * 3, 0);
  for (let i = 0; i < px.length; i++) px[i] = (i * 37) % 256;
  await sharp(px, { raw: { width: 20, height: 20, channels: 3 } }).png().toFile(nodePath.join(inDir, 'face.png'));
  const out = nodePath.join(root, 'out');

  const events: EraseFolderEvent[] = [];
  const r = await eraseFolder({ inputs: [inDir], out, diffusion, encoder, options: FAST, onEvent: (ev) => events.push(ev) });
  t.same([r.total, r.counts, r.interrupted], [1, { done: 1, skipped: 0, failed: 0 }, false]);
  t.same(fs.readdirSync(nodePath.join(out, 'face')).sort(), ['baseline.png', 'grid.png', 'input.png', 'output.png', 'reconstruction.png', 'report.json']);
  t.same(r.files, { report: nodePath.join(out, 'report.json'), html: nodePath.join(out, 'report.html'), errors: null });
  t.equal(r.summary.images, 1);
  const types = events.map((ev) => ev.type);
  t.equal(types[0], 'start');
  t.ok(types.includes('progress'), 'stage progress');
  t.equal(types[types.length - 1], 'done');
  const done = events.find((ev) => ev.type === 'done');
  t.ok(done && done.type === 'done' && done.report.sid.randomBaseline !== null && done.seconds > 0);

  const again = await eraseFolder({ inputs: [inDir], out, diffusion, encoder, options: FAST });
  t.same(again.counts, { done: 0, skipped: 1, failed: 0 }, 'a re-run skips the finished image');

  const noModel = await eraseFolder({ inputs: [inDir], out, diffusion: nodePath.join(root, 'missing.safetensors'), encoder, options: FAST, force: true }).catch((err: unknown) => err);
  t.ok(noModel instanceof EraseFolderError && noModel.step === 'models', 'a missing checkpoint: the batch cannot run');
  t.match((noModel as Error).message, /^cannot load the models: /);
  fs.mkdirSync(nodePath.join(root, 'empty'));
  const noImage = await eraseFolder({ inputs: [nodePath.join(root, 'empty')], out, diffusion, encoder }).catch((err: unknown) => err);
  t.ok(noImage instanceof EraseFolderError && noImage.step === 'inputs' && noImage.code === 'BIA_INVALID_ARGUMENT', 'a folder without images: nothing to do');
});

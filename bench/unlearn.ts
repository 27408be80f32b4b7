/**
 * bench/unlearn: unlearning one identity of the synthetic world from the default DDPM, measured the way
 * docs/unlearning.md reports it. Identity 2000: three given photos, six unseen photos of her (other attribute
 * draws), eight retain photos (training identities), six other held-out people for preservation; the demo's
 * erase settings with the encoder's calibrated threshold. Prints the report and the similarities before and
 * after, and writes grids to the output folder.
 *
 *   node dist/bench/unlearn.js [--iterations 200] [--params decoder|all] [--lr 2e-5] [--others 8] [--states 6]
 *                              [--retain-share 0.5] [--no-mirror] [--out out/unlearn-bench]
 */
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { takeRows } from '../ts/blackhole/codes';
import { loadDiffusion, type DiffusionModel } from '../ts/diffusion';
import { setThreads } from '../ts/engine';
import { loadIdentityEncoder, similarity } from '../ts/identity';
import { comparisonGrid } from '../ts/images';
import { tensor, type Tensor } from '../ts/tensor';
import { unlearnIdentity, type UnlearnParams } from '../ts/unlearn/unlearn';
import { DEFAULT_FILES, otherPeople } from '../ts/world/defaults';
import { calibratedThreshold, DEMO_SETTINGS } from '../ts/world/demo';
import { portraitBatch } from '../ts/world/portraits';

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      iterations: { type: 'string', default: '200' },
      params: { type: 'string', default: 'decoder' },
      lr: { type: 'string', default: '2e-5' },
      others: { type: 'string', default: '8' },
      states: { type: 'string', default: '6' },
      'retain-share': { type: 'string', default: '0.5' },
      'no-mirror': { type: 'boolean', default: false },
      out: { type: 'string', default: 'out/unlearn-bench' },
    },
  });
  setThreads(Number(process.env.BIA_NUM_THREADS ?? 1));
  const out = values.out as string;
  mkdirSync(out, { recursive: true });
  const diffusion = await loadDiffusion(DEFAULT_FILES.diffusion);
  const encoder = await loadIdentityEncoder(DEFAULT_FILES.encoder);
  const threshold = calibratedThreshold() ?? 0.35;
  const shots = async (identity: number | ((i: number) => number), seeds: number[]) => (await portraitBatch(seeds.map((s, i) => ({ identity: typeof identity === 'number' ? identity : identity(i), seed: s })))).images;
  const given = await shots(2000, [101, 102, 103]);
  const unseen = await shots(2000, [201, 202, 203, 204, 205, 206]);
  const people = await shots((i) => 2001 + i, [301, 302, 303, 304, 305, 306]);
  const others = await otherPeople(Number(values.others));
  const start = Date.now();
  const r = await unlearnIdentity(given, { diffusion, encoder, others }, {
    erase: { ...DEMO_SETTINGS, threshold, baseline: false, degenerateBaselines: false },
    iterations: Number(values.iterations),
    params: values.params as UnlearnParams,
    lr: Number(values.lr),
    batchSize: 8,
    statesPerCode: Number(values.states),
    retainShare: Number(values['retain-share']),
    mirror: !values['no-mirror'],
    onStep: (s) => {
      if (s.step % 25 === 0) console.log(`step ${s.step} loss ${s.loss.toFixed(5)} (${((Date.now() - start) / 1000).toFixed(0)} s)`);
    },
  });
  console.log(JSON.stringify({ ...r.report, losses: undefined }));
  const o = { t0: DEMO_SETTINGS.t0 as number, steps: DEMO_SETTINGS.steps as number };
  const recon = async (m: DiffusionModel, x: Tensor) => {
    const inv = await diffusion.invert(x, o);
    const rec = await m.decode(inv.xLat, null, { ...o, eta: 0 });
    inv.xLat.dispose();
    inv.hR.dispose();
    return rec;
  };
  // each image's similarity to its own reference (refs [N, D]) or to one reference ([1, D])
  const rowSims = async (images: Tensor, refs: Tensor): Promise<number[]> => {
    const e = await encoder.embed(images, { protocol: DEMO_SETTINGS.protocol });
    return Array.from(await (await similarity(e, refs)).data());
  };
  const g = await (await encoder.embed(given, { protocol: DEMO_SETTINGS.protocol })).data();
  const d = g.length / given.shape[0];
  const mean = new Float32Array(d);
  for (let i = 0; i < given.shape[0]; i++) for (let k = 0; k < d; k++) mean[k] += g[i * d + k] / given.shape[0];
  const enrolled = await tensor(mean, [1, d]);
  const [ub, ua] = [await recon(diffusion, unseen), await recon(r.model, unseen)];
  const [pb, pa] = [await recon(diffusion, people), await recon(r.model, people)];
  const peopleEmb = await encoder.embed(people, { protocol: DEMO_SETTINGS.protocol });
  const fmt = (a: number[]) => a.map((v) => v.toFixed(3)).join(' ');
  const below = (a: number[]) => a.filter((v) => v < threshold).length;
  const [sb, sa] = [await rowSims(ub, enrolled), await rowSims(ua, enrolled)];
  const [qb, qa] = [await rowSims(pb, peopleEmb), await rowSims(pa, peopleEmb)];
  const avg = (a: number[]) => a.reduce((x, y) => x + y, 0) / a.length;
  console.log(`threshold ${threshold}`);
  console.log(`unseen photos vs enrolled: original ${fmt(sb)} (${below(sb)}/6 below) | unlearned ${fmt(sa)} (${below(sa)}/6 below)`);
  console.log(`other people, own similarity: original ${fmt(qb)} | unlearned ${fmt(qa)} | mean drop ${(avg(qb) - avg(qa)).toFixed(3)}`);
  const grid = async (cols: Tensor[], file: string) => {
    const cells = [];
    for (let i = 0; i < cols[0].shape[0]; i++) cells.push(await Promise.all(cols.map(async (c) => ({ tensor: await takeRows([c], [[0, i]]) }))));
    await comparisonGrid(cells, path.join(out, file), { cellSize: 96 });
  };
  await grid([given, r.images.before, r.images.absorbed, r.images.after], 'given.png');
  await grid([unseen, ub, ua], 'unseen.png');
  await grid([people, pb, pa], 'people.png');
  console.log(`total ${((Date.now() - start) / 1000).toFixed(0)} s; grids in ${out}`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});

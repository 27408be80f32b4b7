/**
 * Cheap neighbour labels against the full decoding (issue 17, docs/throughput.md): on held-out portraits of the
 * synthetic world with the default models, the black hole's neighbours are formed as the erase job forms them
 * (full decoding, α_max calibrated); then the **same codes** are labelled again from fewer UNet steps — the
 * predicted x̂0 after k steps (`x0`) or a k-step schedule (`coarse`) — and compared with the full labels:
 *   - label agreement (share of equal labels), and the similarities' mean absolute difference;
 *   - the cosine between the SVM normal fitted on the cheap labels and the one fitted on the full labels
 *     (same codes, same C, hold-out and seed); a variant giving one class has no normal (cosine 0);
 *   - the UNet image-calls (encoder + decoder passes, one per image) the labels cost.
 * A variant `from:k:z` refines the cheap labels (`labelRefine` z): neighbours whose mapped similarity lies near
 * the threshold are decoded in full as well.
 *
 *   node dist/bench/throughput-labels.js [--images 12] [--inject every-step] [--steps 20] [--variants x0:2,x0:4,coarse:4,coarse:6:2.5]
 *                                        [--json bench/results/throughput-labels.json]
 *
 * The settings are the demo's (DEMO_SETTINGS with the encoder's calibrated threshold); --inject and --steps
 * change the injection mode and the schedule (asyrp / 40 is the released default's decoding).
 */
import { writeFileSync } from 'node:fs';
import os from 'node:os';
import { parseArgs } from 'node:util';
import { takeRows } from '../ts/blackhole/codes';
import { labelNeighbours, tryFormNeighbourhood, type LabelFrom } from '../ts/blackhole/neighbours';
import { fitBoundary, gram } from '../ts/blackhole/svm';
import type { InjectMode } from '../ts/diffusion';
import { getThreads, unetStats } from '../ts/engine';
import { heldOut, otherPeople } from '../ts/world/defaults';
import { calibratedThreshold, DEMO_SETTINGS, loadDefaultModels } from '../ts/world/demo';
import type { Tensor } from '../ts/tensor';

interface Variant {
  name: string;
  labelFrom: LabelFrom;
  labelSteps: number;
  labelRefine: number;
}

export interface LabelComparison {
  variant: string;
  /** Per image: every neighbour's similarity under these labels (for offline analysis). */
  similarities: number[][];
  agreement: number[];
  cosine: number[];
  meanAbsSimilarityDiff: number[];
  unetImageCalls: number[];
  seconds: number[];
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);

async function cosine(a: Tensor, b: Tensor): Promise<number> {
  const both = await takeRows([a, b], [[0, 0], [1, 0]]);
  try {
    const g = await gram(both);
    const d = await g.data();
    g.dispose();
    return d[1] / Math.sqrt(d[0] * d[3]);
  } finally {
    both.dispose();
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      images: { type: 'string', default: '12' },
      inject: { type: 'string' },
      steps: { type: 'string' },
      variants: { type: 'string', default: 'coarse:6,coarse:10,x0:10,x0:14' },
      json: { type: 'string' },
    },
  });
  const count = Number(values.images);
  const threshold = calibratedThreshold() ?? 0.35;
  const o = { ...DEMO_SETTINGS, threshold, ...(values.inject ? { inject: values.inject as InjectMode } : {}), ...(values.steps ? { steps: Number(values.steps) } : {}) };
  const variants: Variant[] = values.variants!.split(',').map((v) => {
    const [from, k, z] = v.split(':');
    return { name: `${from}@${k}${z ? ` refined z=${z}` : ''}`, labelFrom: from as LabelFrom, labelSteps: Number(k), labelRefine: Number(z ?? 0) };
  });
  const models = await loadDefaultModels();
  const portraits = await heldOut(count, 1, 21);
  const others = await otherPeople();
  const { diffusion, encoder } = models;
  const inv0 = await diffusion.invert(others, { t0: o.t0, steps: o.steps });
  inv0.xLat.dispose();
  const targets = inv0.hR;
  const results: LabelComparison[] = [...variants.map((v) => ({ variant: v.name, similarities: [], agreement: [], cosine: [], meanAbsSimilarityDiff: [], unetImageCalls: [], seconds: [] }))];
  const full0: LabelComparison = { variant: 'full (reference)', similarities: [], agreement: [], cosine: [], meanAbsSimilarityDiff: [], unetImageCalls: [], seconds: [] };
  const perImage: Array<{ name: string; share: number; rounds: number; alphaMax: number }> = [];
  const labelOpts = { mode: o.inject, eta: 0, t0: o.t0, steps: o.steps, tEdit: 0, threshold, protocol: o.protocol, batchSize: o.batchSize };
  try {
    for (let i = 0; i < count; i++) {
      const x = await takeRows([portraits.images], [[0, i]]);
      const { xLat, hR } = await diffusion.invert(x, { t0: o.t0, steps: o.steps });
      const fR = await encoder.embed(x, { protocol: o.protocol });
      const latent = { xLat, hR, fR };
      unetStats({ reset: true });
      const t = performance.now();
      const nb = await tryFormNeighbourhood(diffusion, encoder, latent, { ...labelOpts, n: o.neighbours, alphaMax: o.alphaMax, seed: 909090, targets, maxRounds: 6 });
      const u0 = unetStats({ reset: true });
      // The full labels' cost: the kept round's share of the calibration (every round costs the same).
      full0.seconds.push((performance.now() - t) / 1000 / nb.rounds.length);
      full0.similarities.push(Array.from(nb.similarities));
      full0.unetImageCalls.push((u0.encodeImages + u0.decodeImages) / nb.rounds.length);
      perImage.push({ name: `portrait-${portraits.identities[i]}`, share: nb.rounds[nb.rounds.length - 1].share, rounds: nb.rounds.length, alphaMax: nb.alphaMax });
      const full = nb.found ? await fitBoundary(nb.codes, nb.labels as ArrayLike<0 | 1>, { C: 1, holdout: 0.25, seed: 909090 }) : null;
      try {
        for (const [vi, v] of variants.entries()) {
          unetStats({ reset: true });
          const t = performance.now();
          const lab = await labelNeighbours(diffusion, encoder, latent, nb.codes, { ...labelOpts, labelSteps: v.labelSteps, labelFrom: v.labelFrom, labelRefine: v.labelRefine });
          const seconds = (performance.now() - t) / 1000;
          const u = unetStats({ reset: true });
          const r = results[vi];
          r.seconds.push(seconds);
          r.similarities.push(Array.from(lab.similarities));
          r.unetImageCalls.push(u.encodeImages + u.decodeImages);
          r.agreement.push(lab.labels.reduce((a, l, j) => a + (l === nb.labels[j] ? 1 : 0), 0) / lab.labels.length);
          r.meanAbsSimilarityDiff.push(mean(Array.from(lab.similarities, (s, j) => Math.abs(s - nb.similarities[j]))));
          const ones = lab.labels.reduce((a, b) => a + b, 0);
          if (full && ones > 0 && ones < lab.labels.length) {
            const b = await fitBoundary(nb.codes, lab.labels as ArrayLike<0 | 1>, { C: 1, holdout: 0.25, seed: 909090 });
            r.cosine.push(await cosine(full.w, b.w));
            b.dispose();
          } else r.cosine.push(full ? 0 : NaN);
        }
      } finally {
        full?.dispose();
        for (const t of [x, xLat, hR, fR, nb.codes]) t.dispose();
      }
      const line = results.map((r) => `${r.variant} ${(100 * r.agreement[i]).toFixed(0)}%/${r.cosine[i].toFixed(3)}`).join('  ');
      console.log(`${perImage[i].name} (share ${perImage[i].share.toFixed(2)}, ${perImage[i].rounds} round(s)): ${line}`);
    }
  } finally {
    targets.dispose();
    others.dispose();
    portraits.images.dispose();
    models.dispose();
  }
  console.log('\n| labels | UNet image-calls (48 neighbours) | agreement mean | agreement min | normal cosine mean | normal cosine min | mean abs Δ similarity | seconds |');
  console.log('|---|---|---|---|---|---|---|---|');
  for (const r of [full0, ...results]) {
    const ref = r.agreement.length === 0;
    const pct = (v: number) => (ref ? '100% (itself)' : `${(100 * v).toFixed(1)}%`);
    const num = (v: number, d: number) => (ref ? '-' : v.toFixed(d));
    console.log(`| ${r.variant} | ${mean(r.unetImageCalls).toFixed(0)} | ${pct(mean(r.agreement))} | ${pct(Math.min(...r.agreement))} | ${num(mean(r.cosine), 3)} | ${num(Math.min(...r.cosine), 3)} | ${num(mean(r.meanAbsSimilarityDiff), 4)} | ${mean(r.seconds).toFixed(2)} |`);
  }
  if (values.json) {
    writeFileSync(values.json, `${JSON.stringify({ command: process.argv.slice(1).join(' '), settings: o, threads: getThreads(), load: os.loadavg(), cpu: os.cpus()[0]?.model, perImage, full: full0, results }, null, 2)}\n`);
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});

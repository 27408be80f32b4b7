/**
 * The demo erasure per portrait, old path against new, in one process (issue 17, docs/throughput.md): the same
 * held-out portraits erased with each setting, interleaved portrait by portrait (A, B, A, B …) so that both see
 * the same machine load; per portrait the wall time, the UNet image-calls (`unetStats`: encoder + decoder
 * passes, one per image), the output's identity similarity, and the largest pixel difference between the
 * settings' outputs (0 when a saving changes nothing).
 *
 *   node dist/bench/throughput.js [--images 4] [--first 0] [--a '{"lineBatch":0}' --a-fresh-others | --a-cached-others] [--b '{}']
 *                                 [--b-autocast bfloat16] [--json bench/results/throughput-demo.json]
 *
 * Settings are DEMO_SETTINGS with the encoder's calibrated threshold, plus each side's JSON overrides.
 * `--a-fresh-others` gives side A a fresh copy of the other people's photos for every portrait, so that their
 * inversion is not cached: what every erasure cost before the cache (the default; `--a-cached-others` turns it off,
 * for two sides that differ only in their options). `--b-autocast bfloat16` gives side B its own copy of the
 * default UNet loaded with that autocast (the encoder stays shared). The first portrait of each side is a
 * warm-up (not in the medians).
 */
import { writeFileSync } from 'node:fs';
import os from 'node:os';
import { parseArgs } from 'node:util';
import { takeRows } from '../ts/blackhole/codes';
import { getThreads, unetStats } from '../ts/engine';
import { eraseIdentity } from '../ts/erase/pipeline';
import type { EraseOptions } from '../ts/erase/types';
import type { Tensor } from '../ts/tensor';
import { loadDiffusion } from '../ts/diffusion';
import { DEFAULT_FILES, heldOut, otherPeople } from '../ts/world/defaults';
import { calibratedThreshold, DEMO_SETTINGS, loadDefaultModels } from '../ts/world/demo';

export interface SideRun {
  name: string;
  seconds: number;
  /** Seconds inside UNet passes (unetStats). */
  unetSeconds: number;
  /** CPU seconds of the process (user + system) during the erasure: less sensitive than wall time to other jobs on a shared machine. */
  cpuSeconds: number;
  unetImageCalls: number;
  similarity: number;
  randomSimilarity: number | null;
  rounds: number;
  candidates: number;
  stages: Record<string, number>;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

async function maxAbsDiff(a: Tensor, b: Tensor): Promise<number> {
  const [x, y] = [await a.data(), await b.data()];
  let m = 0;
  for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i] - y[i]));
  return m;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      images: { type: 'string', default: '4' },
      first: { type: 'string', default: '0' },
      a: { type: 'string', default: '{"lineBatch":0,"labelSteps":0}' },
      b: { type: 'string', default: '{}' },
      'a-fresh-others': { type: 'boolean', default: true },
      'a-cached-others': { type: 'boolean', default: false },
      'b-autocast': { type: 'string' },
      json: { type: 'string' },
    },
  });
  const count = Number(values.images);
  const first = Number(values.first);
  const threshold = calibratedThreshold() ?? 0.35;
  const sides: { name: string; options: EraseOptions; fresh: boolean; autocast?: string | null }[] = [
    { name: 'A', options: { ...DEMO_SETTINGS, threshold, ...(JSON.parse(values.a!) as EraseOptions) }, fresh: values['a-fresh-others']! && !values['a-cached-others'] },
    { name: 'B', options: { ...DEMO_SETTINGS, threshold, ...(JSON.parse(values.b!) as EraseOptions) }, fresh: false, autocast: values['b-autocast'] ?? null },
  ];
  const models = await loadDefaultModels();
  const bAutocast = values['b-autocast'] as 'bfloat16' | 'float16' | undefined;
  const diffusionB = bAutocast ? await loadDiffusion(DEFAULT_FILES.diffusion, { autocast: bAutocast }) : models.diffusion;
  const diffusionOf = (side: string) => (side === 'B' ? diffusionB : models.diffusion);
  const portraits = await heldOut(first + count, 1, 21);
  const others = await otherPeople();
  const runs: Record<string, SideRun[]> = { A: [], B: [] };
  const diffs: number[] = [];
  const load: number[] = [];
  try {
    for (let i = 0; i < count; i++) {
      const x = await takeRows([portraits.images], [[0, first + i]]);
      const outputs: Tensor[] = [];
      // Alternate which side goes first, so that neither always runs right after the other.
      const order = i % 2 === 0 ? sides : [...sides].reverse();
      for (const side of order) {
        const o = side.fresh ? await takeRows([others], Array.from({ length: others.shape[0] }, (_, r) => [0, r] as [number, number])) : others;
        unetStats({ reset: true });
        const t = performance.now();
        const cpu = process.cpuUsage();
        const r = await eraseIdentity(x, { diffusion: diffusionOf(side.name), encoder: models.encoder, others: o, ...side.options, inputName: `portrait-${portraits.identities[first + i]}` });
        const seconds = (performance.now() - t) / 1000;
        const c = process.cpuUsage(cpu);
        const u = unetStats({ reset: true });
        const rep = r.report;
        runs[side.name].push({
          name: `portrait-${portraits.identities[first + i]}`,
          seconds,
          unetSeconds: u.seconds,
          cpuSeconds: (c.user + c.system) / 1e6,
          unetImageCalls: u.encodeImages + u.decodeImages,
          similarity: rep.sid.after,
          randomSimilarity: rep.sid.randomBaseline ?? null,
          rounds: rep.blackHole.rounds.length,
          candidates: rep.absorption.candidates.length,
          stages: rep.timings as unknown as Record<string, number>,
        });
        outputs[sides.indexOf(side)] = await takeRows([r.image], [[0, 0]]);
        r.dispose();
        if (o !== others) o.dispose();
      }
      diffs.push(await maxAbsDiff(outputs[0], outputs[1]));
      load.push(os.loadavg()[0]);
      for (const t of [x, ...outputs]) t.dispose();
      const [a, b] = [runs.A[i], runs.B[i]];
      console.log(`${a.name}: A ${a.seconds.toFixed(1)} s (cpu ${a.cpuSeconds.toFixed(1)} s) ${a.unetImageCalls} calls sim ${a.similarity.toFixed(3)} | B ${b.seconds.toFixed(1)} s (cpu ${b.cpuSeconds.toFixed(1)} s) ${b.unetImageCalls} calls sim ${b.similarity.toFixed(3)} | rounds ${a.rounds}/${b.rounds} | max |A − B| ${diffs[i].toExponential(2)} | load ${load[i].toFixed(1)}`);
    }
  } finally {
    others.dispose();
    portraits.images.dispose();
    models.dispose();
    if (diffusionB !== models.diffusion) diffusionB.dispose();
  }
  const timed = (s: string) => runs[s].slice(count > 1 ? 1 : 0);
  const summary = Object.fromEntries(
    ['A', 'B'].map((s) => [s, { secondsMedian: median(timed(s).map((r) => r.seconds)), cpuSecondsMedian: median(timed(s).map((r) => r.cpuSeconds)), unetImageCallsMedian: median(timed(s).map((r) => r.unetImageCalls)), imagesPerHour: 3600 / median(timed(s).map((r) => r.seconds)) }]),
  );
  const ratios = timed('A').map((a, i) => a.seconds / timed('B')[i].seconds);
  const cpuRatios = timed('A').map((a, i) => a.cpuSeconds / timed('B')[i].cpuSeconds);
  console.log(`\nA: ${JSON.stringify(sides[0].options)}${sides[0].fresh ? ' (others inverted every time)' : ''}\nB: ${JSON.stringify(sides[1].options)}`);
  console.log(`median per portrait (after the first): A ${summary.A.secondsMedian.toFixed(2)} s, ${summary.A.unetImageCallsMedian} UNet image-calls; B ${summary.B.secondsMedian.toFixed(2)} s, ${summary.B.unetImageCallsMedian} calls; A/B time ratio per portrait: median ${median(ratios).toFixed(2)} (${ratios.map((r) => r.toFixed(2)).join(', ')}); CPU-time ratio: median ${median(cpuRatios).toFixed(2)} (${cpuRatios.map((r) => r.toFixed(2)).join(', ')})`);
  if (values.json) {
    const out = { command: `node ${process.argv.slice(1).join(' ')}`, threads: getThreads(), cpu: os.cpus()[0]?.model, cores: os.cpus().length, loadAverage1m: load, sides, runs, maxAbsOutputDiff: diffs, summary, timeRatioAB: ratios, cpuTimeRatioAB: cpuRatios };
    writeFileSync(values.json, `${JSON.stringify(out, null, 2)}\n`);
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});

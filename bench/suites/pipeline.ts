/**
 * Suite pipeline: the whole erase job per image (`eraseIdentity`, walk mode unless the config's erase settings say otherwise (demo: line), the config's
 * neighbours and steps): time per image and per stage, UNet image-calls/s, the share of wall time
 * outside UNet calls (the orchestration's cost), and whether memory stays flat across repeated runs.
 * Random weights (tiny, celeba-hq-256) have no identities, so the identity threshold is set to the
 * median neighbour similarity of a probe: every stage, SVM and walk included, then runs.
 */
import {
  cudaMemory,
  eraseIdentity,
  takeRows,
  labelNeighbours,
  randn,
  sampleNeighbours,
  unetStats,
  type EraseReport,
  type Tensor,
} from '../../ts/index';
import { calibratedThreshold } from '../../ts/world/demo';
import { rssBytes, stats } from '../harness/run';
import type { Suite } from '../harness/types';

const STAGES = ['invert', 'neighbours', 'boundary', 'absorb', 'baseline', 'evaluate'] as const;

/** Least-squares slope of ys over 0..n-1. */
export function slope(ys: number[]): number {
  const n = ys.length;
  if (n < 2) return 0;
  const mx = (n - 1) / 2;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let num = 0;
  let den = 0;
  ys.forEach((y, i) => {
    num += (i - mx) * (y - my);
    den += (i - mx) ** 2;
  });
  return num / den;
}

export const suite: Suite = {
  name: 'pipeline',
  description: 'whole erase per image (walk, or the config\'s absorption): stages, UNet share, memory flat across runs',
  async run(ctx) {
    const { device, dtype, autocast, smoke } = ctx.options;
    const cfg = ctx.config;
    const models = await cfg.models(device, { dtype, autocast });
    const { diffusion, encoder } = models;
    const res = diffusion.config.resolution;
    const common = { t0: cfg.t0, steps: ctx.steps, protocol: cfg.protocol, batchSize: ctx.batchSize };
    const images = ctx.options.images ?? (smoke ? 3 : 4);
    const owned: Tensor[] = [];
    try {
      // The threshold: the trained default encoder's calibrated one, else the probe's median similarity.
      let threshold = cfg.name === 'demo' ? calibratedThreshold() : null;
      if (threshold === null) {
        const probe = await randn([1, 3, res, res], { seed: 100, device });
        owned.push(probe);
        const { xLat, hR } = await diffusion.invert(probe, { t0: cfg.t0, steps: ctx.steps });
        const fR = await encoder.embed(probe, { protocol: cfg.protocol });
        const nb = await sampleNeighbours(hR, { n: Math.max(4, Math.min(ctx.neighbours, 16)), alphaMax: 1 });
        const lab = await labelNeighbours(diffusion, encoder, { xLat, hR, fR }, nb.codes, { ...common, mode: cfg.erase?.inject });
        threshold = stats(Array.from(lab.similarities)).median;
        for (const t of [xLat, hR, fR, nb.codes]) t.dispose();
      }
      ctx.note('threshold', threshold);
      const runs: { total: number; unet: number; calls: number; report: EraseReport; rss: number; cudaAllocated: number | null }[] = [];
      const inputs = cfg.inputs ? await cfg.inputs(images, device) : null;
      if (inputs) owned.push(inputs);
      const others = cfg.erase?.neighbourMode === 'others' && cfg.others ? await cfg.others(device) : undefined;
      if (others) owned.push(others);
      // BIA_BENCH_ERASE='{"lineBatch":0}': erase options on top of the config's (old-vs-new runs, bench/throughput-gpu.sh).
      const extra = process.env.BIA_BENCH_ERASE ? (JSON.parse(process.env.BIA_BENCH_ERASE) as Record<string, unknown>) : {};
      if (Object.keys(extra).length > 0) ctx.note('eraseOverrides', extra);
      const trial = async (i: number) => {
        const x = inputs ? await takeRows([inputs], [[0, i]]) : await randn([1, 3, res, res], { seed: 100 + i, device });
        unetStats({ reset: true });
        const t = performance.now();
        const r = await eraseIdentity(x, {
          diffusion,
          encoder,
          others,
          absorb: 'walk',
          // random weights: steps relative to ‖h_r‖ and a loose fidelity gate, so the walk accepts a candidate
          ...(cfg.erase ?? { walkStepUnit: 'relative', walkStep: [0.5, 0.6], fidelityThreshold: 10 }),
          ...common,
          neighbours: ctx.neighbours,
          threshold: threshold!,
          seed: 909090 + i,
          ...extra,
        });
        const total = (performance.now() - t) / 1000;
        const u = unetStats({ reset: true });
        const report = r.report;
        r.dispose();
        x.dispose();
        global.gc?.();
        const calls = u.encodeImages + u.decodeImages;
        runs.push({ total, unet: u.seconds, calls, report, rss: rssBytes(), cudaAllocated: device === 'cpu' ? null : (cudaMemory()?.allocatedBytes ?? null) });
        ctx.log(`image ${i}: ${total.toFixed(2)} s, ${(100 * (1 - u.seconds / total)).toFixed(2)}% outside UNet, ${(calls / u.seconds).toFixed(1)} UNet image-calls/s`);
      };
      // The first image is the warm-up (allocator caches, cuDNN plans); the others are timed.
      for (let i = 0; i < images; i++) await trial(i);
      const timed = runs.slice(1);
      const samples = timed.map((r) => r.total);
      const med = (xs: number[]) => stats(xs).median;
      await ctx.record('erase', { params: { neighbours: ctx.neighbours, steps: ctx.steps, t0: cfg.t0, absorb: cfg.erase?.absorb ?? 'walk', batchSize: ctx.batchSize, settings: cfg.erase ? cfg.name : 'default' }, items: 1 }, samples, 1);
      ctx.note('stages', Object.fromEntries(STAGES.map((s) => [s, med(timed.map((r) => r.report.timings[s]))])));
      ctx.note('outsideUNetShare', med(timed.map((r) => 1 - r.unet / r.total)));
      ctx.note('unetImageCallsPerSecond', med(timed.map((r) => r.calls / r.unet)));
      ctx.note('unetImageCallsPerImage', med(timed.map((r) => r.calls)));
      ctx.note('imagesPerHour', 3600 / med(samples));
      ctx.note('found', timed.map((r) => r.report.blackHole.found));
      // Memory across repeated runs (after the warm-up run): RSS (and CUDA allocated) after each.
      const rss = timed.map((r) => r.rss);
      const growth = slope(rss);
      const flat = { rssAfterRunBytes: rss, rssGrowthPerRunBytes: growth, flat: growth < 8 * 2 ** 20 } as Record<string, unknown>;
      if (timed.some((r) => r.cudaAllocated !== null)) {
        const c = timed.map((r) => r.cudaAllocated ?? 0);
        flat.cudaAllocatedAfterRunBytes = c;
        flat.cudaGrowthPerRunBytes = slope(c);
        flat.flat = (flat.flat as boolean) && slope(c) < 2 ** 20;
      }
      ctx.note('memoryAcrossRuns', flat);
      ctx.log(`memory across ${rss.length} runs: RSS ${(growth / 2 ** 20).toFixed(2)} MiB/run${flat.cudaGrowthPerRunBytes !== undefined ? `, CUDA ${((flat.cudaGrowthPerRunBytes as number) / 2 ** 20).toFixed(2)} MiB/run` : ''} → ${flat.flat ? 'flat' : 'GROWING'}`);
    } finally {
      for (const t of owned) t.dispose();
      models.dispose();
    }
  },
};

/**
 * bench/pipeline: the whole erase job per image — time per stage, UNet calls per second, and the
 * share of wall time spent outside UNet calls (the orchestration's cost: target < 5%).
 * Random weights; the identity threshold is set to the median neighbour similarity of a probe
 * (random networks have no identities), so that every stage — SVM and walk included — runs.
 *
 *   node dist/bench/pipeline.js [--config tiny|small-64|celeba-hq-256] [--neighbours 32] [--steps 40]
 *        [--t0 500] [--images 2] [--absorb walk|optimize] [--backprop full|one-step] [--iterations 5]
 *        [--device cpu] [--json f]
 */
import { parseArgs } from 'node:util';
import {
  createDiffusion,
  createIdentityEncoder,
  eraseIdentity,
  getThreads,
  info,
  labelNeighbours,
  randn,
  sampleNeighbours,
  unetStats,
  type Device,
  type EraseReport,
  type IdentityArch,
  type InputProtocol,
  type UNetPreset,
} from '../ts/index';
import { median, table, writeResult } from './common';

const { values } = parseArgs({
  options: {
    config: { type: 'string', default: 'tiny' },
    neighbours: { type: 'string' },
    steps: { type: 'string' },
    t0: { type: 'string', default: '500' },
    images: { type: 'string', default: '2' },
    absorb: { type: 'string', default: 'walk' },
    backprop: { type: 'string', default: 'one-step' },
    iterations: { type: 'string', default: '5' },
    'batch-size': { type: 'string', default: '16' },
    device: { type: 'string', default: 'cpu' },
    json: { type: 'string' },
  },
});

const CONFIGS: Record<string, { preset: UNetPreset; arch: IdentityArch; width: number; protocol: InputProtocol; neighbours: number; steps: number }> = {
  tiny: { preset: 'tiny', arch: 'iresnet18', width: 0.125, protocol: 'resize', neighbours: 32, steps: 40 },
  'small-64': { preset: 'small-64', arch: 'iresnet18', width: 0.25, protocol: 'resize', neighbours: 32, steps: 40 },
  'celeba-hq-256': { preset: 'celeba-hq-256', arch: 'ir_se50', width: 1, protocol: 'bia', neighbours: 4, steps: 10 },
};

async function main() {
  const cfg = CONFIGS[values.config!];
  if (!cfg) throw new Error(`--config must be one of ${Object.keys(CONFIGS).join(', ')}`);
  const device = values.device as Device;
  const neighbours = Number(values.neighbours ?? cfg.neighbours);
  const steps = Number(values.steps ?? cfg.steps);
  const t0 = Number(values.t0);
  const images = Number(values.images);
  const diffusion = await createDiffusion(cfg.preset, { seed: 1, device });
  const encoder = await createIdentityEncoder(cfg.arch, { width: cfg.width, seed: 2, device });
  const res = diffusion.config.resolution;
  const common = { t0, steps, protocol: cfg.protocol, inject: 'asyrp' as const, batchSize: Number(values['batch-size']) };

  // Probe (untimed): the median similarity of neighbours of the first image becomes the threshold.
  const probeImage = await randn([1, 3, res, res], { seed: 100, device });
  const { xLat, hR } = await diffusion.invert(probeImage, { t0, steps });
  const fR = await encoder.embed(probeImage, { protocol: cfg.protocol });
  const nb = await sampleNeighbours(hR, { n: Math.max(4, Math.min(neighbours, 16)), alphaMax: 1 });
  const lab = await labelNeighbours(diffusion, encoder, { xLat, hR, fR }, nb.codes, { t0, steps, protocol: cfg.protocol, batchSize: common.batchSize });
  const sorted = Array.from(lab.similarities).sort((a, b) => a - b);
  const threshold = sorted[Math.floor(sorted.length / 2) - 1] / 2 + sorted[Math.floor(sorted.length / 2)] / 2;
  for (const t of [xLat, hR, fR, nb.codes]) t.dispose();

  const rows: { image: number; total: number; unet: number; outside: number; calls: number; images: number; report: EraseReport }[] = [];
  for (let i = 0; i < images; i++) {
    const x = i === 0 ? probeImage : await randn([1, 3, res, res], { seed: 100 + i, device });
    unetStats({ reset: true });
    const t = performance.now();
    const r = await eraseIdentity(x, {
      diffusion,
      encoder,
      ...common,
      neighbours,
      threshold,
      absorb: values.absorb as 'walk' | 'optimize',
      backprop: values.backprop as 'full' | 'one-step',
      iterations: Number(values.iterations),
      walkStepUnit: 'relative',
      walkStep: [0.5, 0.6],
      fidelityThreshold: 10,
      seed: 909090 + i,
    });
    const total = (performance.now() - t) / 1000;
    const u = unetStats({ reset: true });
    rows.push({ image: i, total, unet: u.seconds, outside: 1 - u.seconds / total, calls: u.encodeCalls + u.decodeCalls, images: u.encodeImages + u.decodeImages, report: r.report });
    r.dispose();
    x.dispose();
  }
  const stages = ['invert', 'neighbours', 'boundary', 'absorb', 'baseline', 'evaluate', 'total'] as const;
  console.log(`bench/pipeline — ${values.config} (${device}, ${getThreads()} threads): ${neighbours} neighbours, t0 ${t0}, ${steps} steps, absorb ${values.absorb}; ${images} image(s)`);
  console.log(
    table(
      ['image', ...stages.map((s) => `${s} s`), 'UNet s', 'outside UNet', 'UNet img-calls/s', 'found'],
      rows.map((r) => [
        String(r.image),
        ...stages.map((s) => r.report.timings[s].toFixed(3)),
        r.unet.toFixed(3),
        `${(100 * r.outside).toFixed(2)}%`,
        (r.images / r.unet).toFixed(1),
        String(r.report.blackHole.found),
      ]),
    ),
  );
  const summary = {
    date: new Date().toISOString(),
    config: values.config,
    device,
    threads: getThreads(),
    neighbours,
    t0,
    steps,
    absorb: values.absorb,
    threshold,
    perImageSeconds: median(rows.map((r) => r.total)),
    outsideUNetShare: median(rows.map((r) => r.outside)),
    unetImageCallsPerSecond: median(rows.map((r) => r.images / r.unet)),
    stages: Object.fromEntries(stages.map((s) => [s, median(rows.map((r) => r.report.timings[s]))])),
    runs: rows.map(({ report, ...r }) => ({ ...r, found: report.blackHole.found, sidAfter: report.sid.after, sidBaseline: report.sid.baseline })),
    environment: await info({ measure: false }),
  };
  console.log(`median: ${summary.perImageSeconds.toFixed(3)} s/image, ${(100 * summary.outsideUNetShare).toFixed(2)}% outside UNet calls, ${summary.unetImageCallsPerSecond.toFixed(1)} UNet image-calls/s`);
  console.log(`written ${writeResult('pipeline', summary, values.json)}`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});

/**
 * The bench configurations: `tiny` (seconds; CI's smoke run), `demo` (the trained default models
 * of models/, 64² portraits) and `celeba-hq-256` (the paper's 113.7 M-parameter UNet and IR-SE50,
 * random weights: the timings do not depend on the values).
 */
import { createDiffusion, createIdentityEncoder, type ComputeDtype, type Device } from '../../ts/index';
import { invalidArgument } from '../../ts/errors';
import { DEMO_SETTINGS, loadDefaultModels } from '../../ts/world/demo';
import { heldOut, otherPeople } from '../../ts/world/defaults';
import type { BenchConfig } from './types';

type ModelOpts = { dtype: ComputeDtype; autocast: 'bfloat16' | 'float16' | null; channelsLast?: boolean };

function randomModels(preset: 'tiny' | 'celeba-hq-256', arch: 'iresnet18' | 'ir_se50', width: number) {
  return async (device: Device, o: ModelOpts) => {
    const diffusion = await createDiffusion(preset, { seed: 1, device, dtype: o.dtype, autocast: o.autocast ?? undefined, channelsLast: o.channelsLast });
    const encoder = await createIdentityEncoder(arch, { width, seed: 2, device, dtype: o.autocast ?? o.dtype });
    return { diffusion, encoder, dispose: () => (diffusion.dispose(), encoder.dispose()) };
  };
}

export const BENCH_CONFIGS: Record<string, BenchConfig> = {
  tiny: {
    name: 'tiny',
    description: "the 'tiny' UNet preset (16², random weights) and an iresnet18 at width 0.125",
    resolution: 16,
    models: randomModels('tiny', 'iresnet18', 0.125),
    encoderArch: 'iresnet18',
    encoderWidth: 0.125,
    protocol: 'resize',
    batches: [1, 4, 16],
    t0: 500,
    steps: 20,
    neighbours: 32,
    batchSize: 16,
    smoke: { batches: [1, 4], steps: 4, neighbours: 8 },
  },
  demo: {
    name: 'demo',
    description: 'the trained default models of models/ (64² portrait UNet, iresnet18 w0.25 encoder)',
    resolution: 64,
    async models(device, o) {
      const m = await loadDefaultModels({ device, dtype: o.dtype, autocast: o.autocast ?? undefined });
      return { diffusion: m.diffusion, encoder: m.encoder, dispose: () => m.dispose() };
    },
    encoderArch: 'iresnet18',
    encoderWidth: 0.25,
    protocol: 'resize',
    batches: [1, 4, 16],
    t0: 500,
    steps: 20,
    neighbours: 48,
    batchSize: 48,
    smoke: { batches: [1, 4], steps: 4, neighbours: 8 },
    // What `npm run demo` runs (line absorption, neighbours towards other people, every-step injection; ts/world/demo.ts).
    erase: DEMO_SETTINGS,
    async others(device) {
      const p = await otherPeople();
      if (device === 'cpu') return p;
      const moved = await p.to({ device });
      p.dispose();
      return moved;
    },
    // held-out portraits of the synthetic world (the demo's own seed)
    async inputs(count, device) {
      const p = await heldOut(count, 1, 21);
      if (device === 'cpu') return p.images;
      const moved = await p.images.to({ device });
      p.images.dispose();
      return moved;
    },
  },
  'celeba-hq-256': {
    name: 'celeba-hq-256',
    description: "the paper's DDPM UNet (celeba_hq.ckpt architecture, 256²) and IR-SE50, random weights",
    resolution: 256,
    models: randomModels('celeba-hq-256', 'ir_se50', 1),
    encoderArch: 'ir_se50',
    encoderWidth: 1,
    protocol: 'bia',
    batches: [1, 4, 16],
    t0: 500,
    steps: 40,
    neighbours: 128,
    batchSize: 16,
    smoke: { batches: [1], steps: 2, neighbours: 4 },
  },
};

export function benchConfig(name: string): BenchConfig {
  const c = BENCH_CONFIGS[name];
  if (!c) throw invalidArgument(`--config must be one of ${Object.keys(BENCH_CONFIGS).join(', ')}, got '${name}'`);
  return c;
}

/**
 * The bench configurations: `tiny` (seconds; CI's smoke run), `demo` (the trained default models
 * of models/, 64² portraits) and `celeba-hq-256` (the paper's 113.7 M-parameter UNet and IR-SE50,
 * random weights: the timings do not depend on the values).
 */
import { createDiffusion, createIdentityEncoder, type ComputeDtype, type Device, type Tensor } from '../../ts/index';
import { invalidArgument } from '../../ts/errors';
import { DEMO_SETTINGS, loadDefaultModels } from '../../ts/world/demo';
import { heldOut, otherPeople } from '../../ts/world/defaults';
import type { BenchConfig } from './types';

type ModelOpts = { dtype: ComputeDtype; autocast: 'bfloat16' | 'float16' | null; channelsLast?: boolean };

function randomModels(preset: 'tiny' | 'celeba-hq-256', arch: 'iresnet18' | 'ir_se50', width: number) {
  return async (device: Device, o: ModelOpts) => {
    const diffusion = await createDiffusion(preset, { seed: 1, device, dtype: o.dtype, autocast: o.autocast ?? undefined, channelsLast: o.channelsLast });
    const encoder = await createIdentityEncoder(arch, { width, seed: 2, device, dtype: device === 'cpu' ? o.dtype : (o.autocast ?? o.dtype) });
    return { diffusion, encoder, dispose: () => (diffusion.dispose(), encoder.dispose()) };
  };
}

/** The sizes the small configs (tiny, demo) share: 20 steps from t0 500, UNet batches 1, 4 and 16; smoke runs 4 steps at 1 and 4. */
const SMALL_SWEEP: Pick<BenchConfig, 'protocol' | 'batches' | 't0' | 'steps' | 'smoke'> = {
  protocol: 'resize',
  batches: [1, 4, 16],
  t0: 500,
  steps: 20,
  smoke: { batches: [1, 4], steps: 4, neighbours: 8 },
};

/** A CPU tensor on `device` (moved there, and the CPU one released; as it is on the CPU). */
async function onDevice(t: Tensor, device: Device): Promise<Tensor> {
  if (device === 'cpu') return t;
  const moved = await t.to({ device });
  t.dispose();
  return moved;
}

export const BENCH_CONFIGS: Record<string, BenchConfig> = {
  tiny: {
    name: 'tiny',
    description: "the 'tiny' UNet preset (16², random weights) and an iresnet18 at width 0.125",
    resolution: 16,
    models: randomModels('tiny', 'iresnet18', 0.125),
    encoderArch: 'iresnet18',
    encoderWidth: 0.125,
    ...SMALL_SWEEP,
    // 16 neighbours (32 before 2026-12-08): the whole config in under a minute on 2 cores
    neighbours: 16,
    batchSize: 16,
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
    ...SMALL_SWEEP,
    neighbours: 48,
    batchSize: 48,
    // What `npm run demo` runs (line absorption, neighbours towards other people, every-step injection; ts/world/demo.ts).
    erase: DEMO_SETTINGS,
    others: async (device) => onDevice(await otherPeople(), device),
    // held-out portraits of the synthetic world (the demo's own seed)
    inputs: async (count, device) => onDevice((await heldOut(count, 1, 21)).images, device),
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

/**
 * Suite unet: the DDPM UNet's forward pass over a batch sweep, and a training step (forward +
 * backward + AdamW) — through the addon and through Python eager (bench/reference/ddpm.py) in the
 * same run — with effective GFLOP/s against the measured matmul peak, and (where the addon has the
 * op profiler) where the forward pass's time goes, op by op.
 */
import { profileOps, randn, type UNetConfig } from '../../ts/index';
import { createTrainer } from '../../ts/train/index';
import type { BenchContext, Suite } from '../harness/types';

export interface UNetPassFlops {
  /** conv_in, the down path and the middle block (up to h). */
  encoder: number;
  /** The up path (with its skip concatenations), norm_out and conv_out, from h. */
  decoder: number;
}

/**
 * Convolution and attention FLOPs (2·MACs) of one UNet pass per image at `resolution`, split at h.
 * Attention blocks sit where the *config's* resolution puts them (the model is built for
 * config.resolution and is fully convolutional), while the spatial sizes follow `resolution`; so the
 * tiny preset (config 16²) run on 32² images has its attention at 16² feature maps, 4× the pixels.
 * Time embedding and normalisation are not counted (< 0.1 %).
 */
export function unetPassFlops(c: UNetConfig, resolution = c.resolution): UNetPassFlops {
  let f = 0;
  const conv = (cin: number, cout: number, k: number, side: number) => (f += 2 * cin * cout * k * k * side * side);
  const attn = (ch: number, side: number) => {
    for (let i = 0; i < 4; i++) conv(ch, ch, 1, side); // q, k, v, proj_out
    f += 2 * 2 * ch * (side * side) ** 2; // q·k and w·v
  };
  const res = (cin: number, cout: number, side: number) => {
    conv(cin, cout, 3, side);
    conv(cout, cout, 3, side);
    if (cin !== cout) conv(cin, cout, 1, side);
  };
  const mult = [1, ...c.chMult];
  const levels = c.chMult.length;
  let side = resolution;
  let cfgSide = c.resolution;
  let blockIn = c.ch;
  conv(c.inChannels, c.ch, 3, side);
  const skips: number[] = [c.ch];
  for (let L = 0; L < levels; L++) {
    blockIn = c.ch * mult[L];
    for (let i = 0; i < c.numResBlocks; i++) {
      res(blockIn, c.ch * c.chMult[L], side);
      blockIn = c.ch * c.chMult[L];
      if (c.attnResolutions.includes(cfgSide)) attn(blockIn, side);
      skips.push(blockIn);
    }
    if (L !== levels - 1) {
      conv(blockIn, blockIn, 3, side / 2); // stride-2 downsample: output side / 2
      side /= 2;
      cfgSide /= 2;
      skips.push(blockIn);
    }
  }
  res(blockIn, blockIn, side);
  attn(blockIn, side);
  res(blockIn, blockIn, side);
  const encoder = f;
  f = 0;
  for (let L = levels - 1; L >= 0; L--) {
    for (let i = 0; i <= c.numResBlocks; i++) {
      const skip = skips.pop()!;
      res(blockIn + skip, c.ch * c.chMult[L], side);
      blockIn = c.ch * c.chMult[L];
      if (c.attnResolutions.includes(cfgSide)) attn(blockIn, side);
    }
    if (L !== 0) {
      side *= 2;
      cfgSide *= 2;
      conv(blockIn, blockIn, 3, side);
    }
  }
  conv(blockIn, c.outChannels, 3, side);
  return { encoder, decoder: f };
}

/** FLOPs of one whole UNet forward per image (encoder + decoder). */
export function unetFlops(c: UNetConfig, resolution = c.resolution): number {
  const p = unetPassFlops(c, resolution);
  return p.encoder + p.decoder;
}



/** The UNet config as the Python reference takes it. */
export function referenceConfig(c: UNetConfig): Record<string, unknown> {
  return { ...c, hShape: undefined };
}

export const suite: Suite = {
  name: 'unet',
  description: 'UNet forward over the batch sweep, a training step (forward+backward+AdamW), op breakdown; Python eager side by side',
  async run(ctx) {
    const { device, dtype, autocast } = ctx.options;
    await ctx.withModels(async ({ diffusion }) => {
      const ref = await ctx.python('unet_ref.py');
      const config = diffusion.config;
      const channelsLast = device === 'cpu';
      const perImage = unetFlops(config);
      ctx.note('gflopPerImage', perImage / 1e9);
      const largest = Math.max(...ctx.batches);
      for (const batch of ctx.batches) {
        const x = await randn([batch, config.inChannels, config.resolution, config.resolution], { seed: 1, device, dtype });
        const forward = async () => {
          const r = await diffusion.forward(x, 500);
          r.eps.dispose();
          r.h.dispose();
        };
        try {
          const { trials, warmup } = ctx.options;
          await ctx.measure('forward', {
            params: { batch, layout: channelsLast ? 'channels_last' : 'NCHW' },
            items: batch,
            flops: perImage * batch,
            reference: ref ? async () => (await ref.request<{ seconds: number[] }>({ config: referenceConfig(config), batch, channelsLast, warmup, iterations: trials, device, dtype, autocast })).seconds : undefined,
          }, forward);
          if (batch === largest) {
            // Where the forward's time goes: each top-level op timed (and synchronised on a GPU).
            const p = await profileOps(forward, { sync: true });
            ctx.note('forwardOps', { batch, wallSeconds: p.wallSeconds, totalSeconds: p.totalSeconds, ops: p.ops.slice(0, 20) });
            ctx.log(`where the forward's time goes (batch ${batch}): ${p.ops.slice(0, 6).map((o) => `${o.name} ${(100 * o.share).toFixed(1)}%`).join(', ')}`);
          }
        } finally {
          x.dispose();
        }
      }
      await trainStep(ctx, config);
    });
  },
};

/** A training step: forward + backward + AdamW at a small batch (float32 weights; ≈ 3× the forward's FLOPs). */
async function trainStep(ctx: BenchContext, c: UNetConfig): Promise<void> {
  const { device } = ctx.options;
  const ref = await ctx.python('unet_ref.py');
  const batch = Math.min(4, Math.max(...ctx.batches));
  const trainer = await createTrainer('diffusion', referenceConfig(c) as Partial<UNetConfig>, { device, seed: 3 });
  try {
    ctx.note('parameters', trainer.info.parameterCount);
    const images = await randn([batch, c.inChannels, c.resolution, c.resolution], { seed: 4, device });
    try {
      await ctx.measure('train-step', {
        params: { batch, precision: 'float32' },
        items: batch,
        flops: 3 * unetFlops(c) * batch,
        peakDtype: 'float32',
        reference: ref
          ? async () => (await ref.request<{ seconds: number[] }>({ mode: 'train', config: referenceConfig(c), batch, channelsLast: false, warmup: ctx.options.warmup, iterations: ctx.options.trials, device, dtype: 'float32' })).seconds
          : undefined,
      }, async () => {
        await trainer.step({ images });
      });
    } finally {
      images.dispose();
    }
  } finally {
    trainer.dispose();
  }
}

/**
 * Suite `invert`: images/s of DDIM inversion (x0 → x_t0, η = 0; t0 and steps of the config) at each
 * batch of the sweep, with GFLOP/s, next to the same inversion in Python eager (bench/ddim_ref.py:
 * the same UNet calls at the same batch, the same DDIM update, the same device / dtype / autocast /
 * memory format as the addon's model).
 *
 * The inversion runs one UNet forward (encoder + decoder) per step of seq(t0, steps) except the
 * last: steps − 1 calls (native/ddim.cc ddimInvert).
 */
import { BiaError, randn, type UNetConfig } from '../../ts/index';
import type { BenchContext, Suite } from '../harness/types';
import { referenceConfig } from './unet';

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

/** What the Python side needs to run the same model as the addon's. */
export function referenceModel(ctx: BenchContext, c: UNetConfig) {
  const o = ctx.options;
  // The config's models() leave channelsLast at the library default: channels_last on the CPU only.
  return { config: referenceConfig(c), resolution: ctx.config.resolution, device: o.device, dtype: o.dtype, autocast: o.autocast, channelsLast: o.device === 'cpu' };
}

export const suite: Suite = {
  name: 'invert',
  description: 'DDIM inversion (x0 → x_t0, η = 0) images/s over the batch sweep, vs Python eager (bench/ddim_ref.py)',
  async run(ctx: BenchContext) {
    const { device, dtype, autocast } = ctx.options;
    const { t0, resolution } = ctx.config;
    const steps = ctx.steps;
    const models = await ctx.config.models(device, { dtype, autocast });
    try {
      const { diffusion } = models;
      const config = diffusion.config;
      const pass = unetPassFlops(config, resolution);
      const calls = steps - 1;
      ctx.note('unetCallsPerImage', calls);
      ctx.note('gflopPerUNetCall', (pass.encoder + pass.decoder) / 1e9);
      const ref = await ctx.python('ddim_ref.py');
      for (const batch of ctx.batches) {
        const x = await randn([batch, config.inChannels, resolution, resolution], { seed: 1000 + batch, device, dtype });
        try {
          await ctx.measure(
            'invert',
            {
              params: { batch, t0, steps },
              items: batch,
              flops: calls * (pass.encoder + pass.decoder) * batch,
              peakDtype: autocast ?? dtype,
              reference: ref
                ? async () => {
                    const r = await ref.request<{ seconds: number[]; unetEncoderCalls: number }>({
                      op: 'invert', ...referenceModel(ctx, config), batch, t0, steps, warmup: ctx.options.warmup, iterations: ctx.options.trials,
                    });
                    if (r.unetEncoderCalls !== calls) throw new BiaError('BIA_NATIVE_ERROR', `ddim_ref.py made ${r.unetEncoderCalls} UNet calls per inversion, the addon ${calls}`);
                    return r.seconds;
                  }
                : undefined,
            },
            async () => {
              const r = await diffusion.invert(x, { t0, steps });
              r.xLat.dispose();
              r.hR.dispose();
              for (const h of r.hs) h.dispose();
            },
          );
        } finally {
          x.dispose();
        }
      }
    } finally {
      models.dispose();
    }
  },
};

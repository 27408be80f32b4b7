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
import { referenceConfig, unetPassFlops } from './unet';


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

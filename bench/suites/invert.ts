/**
 * Suite `invert`: images/s of DDIM inversion (x0 → x_t0, η = 0; t0 and steps of the config) at each
 * batch of the sweep, with GFLOP/s, next to the same inversion in Python eager (bench/ddim_ref.py:
 * the same UNet calls at the same batch, the same DDIM update, the same device / dtype / autocast /
 * memory format as the addon's model).
 *
 * The inversion runs one UNet forward (encoder + decoder) per step of seq(t0, steps) except the
 * last: steps − 1 calls (native/ddim.cc ddimInvert).
 */
import { BiaError, randn, type DiffusionModel, type Tensor, type UNetConfig } from '../../ts/index';
import type { BenchContext, Suite } from '../harness/types';
import { referenceConfig, unetPassFlops } from './unet';

/** What the Python side needs to run the same model as the addon's. */
function referenceModel(ctx: BenchContext, c: UNetConfig) {
  const o = ctx.options;
  // The config's models() leave channelsLast at the library default: channels_last on the CPU only.
  return { config: referenceConfig(c), resolution: ctx.config.resolution, device: o.device, dtype: o.dtype, autocast: o.autocast, channelsLast: o.device === 'cpu' };
}

/** What the DDIM suites (invert, decode) work with. */
export interface Ddim {
  diffusion: DiffusionModel;
  /** t0 and steps of the run. */
  t0: number;
  steps: number;
  /** FLOPs of one UNet encoder and one decoder pass on one image. */
  pass: { encoder: number; decoder: number };
  /** `batch` seeded noise images at the config's resolution, on the run's device and in its dtype. */
  images(batch: number, seed: number): Promise<Tensor>;
  /**
   * The same work in Python eager (bench/ddim_ref.py, on the same model, t0, steps, warm-up and trials):
   * `body` names the op and its batch; null when there is no Python reference.
   */
  reference: (<T>(body: Record<string, unknown>) => Promise<T>) | null;
}

/** Run a DDIM suite's `fn` with the config's diffusion model (released when it ends). */
export function withDdim(ctx: BenchContext, fn: (d: Ddim) => Promise<void>): Promise<void> {
  const { t0, resolution } = ctx.config;
  const steps = ctx.steps;
  return ctx.withModels(async ({ diffusion }) => {
    const config = diffusion.config;
    const ref = await ctx.python('ddim_ref.py');
    const reference = ref
      ? <T>(body: Record<string, unknown>) => ref.request<T>({ ...body, ...referenceModel(ctx, config), t0, steps, warmup: ctx.options.warmup, iterations: ctx.options.trials })
      : null;
    const { device, dtype } = ctx.options;
    const images = (batch: number, seed: number) => randn([batch, config.inChannels, resolution, resolution], { seed, device, dtype });
    await fn({ diffusion, t0, steps, pass: unetPassFlops(config, resolution), images, reference });
  });
}

export const suite: Suite = {
  name: 'invert',
  description: 'DDIM inversion (x0 → x_t0, η = 0) images/s over the batch sweep, vs Python eager (bench/ddim_ref.py)',
  run: (ctx) =>
    withDdim(ctx, async ({ diffusion, t0, steps, pass, images, reference }) => {
      const calls = steps - 1;
      ctx.note('unetCallsPerImage', calls);
      ctx.note('gflopPerUNetCall', (pass.encoder + pass.decoder) / 1e9);
      for (const batch of ctx.batches) {
        const x = await images(batch, 1000 + batch);
        try {
          await ctx.measure(
            'invert',
            {
              params: { batch, t0, steps },
              items: batch,
              flops: calls * (pass.encoder + pass.decoder) * batch,
              reference: reference
                ? async () => {
                    const r = await reference<{ seconds: number[]; unetEncoderCalls: number }>({ op: 'invert', batch });
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
    }),
};

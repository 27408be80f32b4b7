/**
 * Suite `decode`: images/s of DDIM decoding from (x_lat, ĥ) with ĥ injected in the default mode
 * 'asyrp' at each batch of the sweep, and in 'every-step' at the largest batch, with GFLOP/s, next to
 * the same decoding in Python eager (bench/ddim_ref.py).
 *
 * As in the pipeline, x_lat and h_r come from inverting one image (batch 1) and the B injected codes
 * are neighbours of h_r; one call decodes all B (batchSize = B). The decoding runs every timestep of
 * seq(t0, steps) down to t = 0 (steps steps), η = 0, and injects at every step (tEdit = 0). A step
 * costs (native/ddim.cc injectedEps) one encoder pass and
 *   asyrp:      two decoder passes (x̂0 from f.h + Δh, the direction from f.h);
 *   every-step: one decoder pass (f.h + Δh).
 */
import { BiaError, sampleNeighbours, type InjectMode, type Tensor } from '../../ts/index';
import type { Suite } from '../harness/types';
import { withDdim } from './invert';

/** Decoder passes per DDIM step when ĥ is injected (tEdit = 0). */
const DECODER_PASSES: Partial<Record<InjectMode, number>> = { asyrp: 2, 'every-step': 1 };

export const suite: Suite = {
  name: 'decode',
  description: "DDIM decoding with ĥ injected ('asyrp'; 'every-step' at the largest batch) images/s over the batch sweep, vs Python eager",
  run: (ctx) =>
    withDdim(ctx, async ({ diffusion, t0, steps, pass, images, reference }) => {
      const owned: Tensor[] = [];
      try {
        const x0 = await images(1, 7);
        owned.push(x0);
        const inv = await diffusion.invert(x0, { t0, steps });
        owned.push(inv.xLat, inv.hR, ...inv.hs);
        const { xLat, hR } = inv;
        ctx.note('unetStepsPerImage', steps);
        ctx.note('unetPassesPerStep', { encoder: 1, decoder: DECODER_PASSES });
        ctx.note('gflopPerPass', { encoder: pass.encoder / 1e9, decoder: pass.decoder / 1e9 });

        const largest = Math.max(...ctx.batches);
        const cases: { mode: InjectMode; batch: number }[] = [
          ...ctx.batches.map((batch) => ({ mode: 'asyrp' as const, batch })),
          { mode: 'every-step', batch: largest },
        ];
        for (const { mode, batch } of cases) {
          const decoderPasses = DECODER_PASSES[mode]!;
          const h = (await sampleNeighbours(hR, { n: batch, alphaMax: 1, seed: 100 + batch })).codes;
          try {
            await ctx.measure(
              'decode',
              {
                params: { mode, batch, t0, steps },
                items: batch,
                flops: steps * (pass.encoder + decoderPasses * pass.decoder) * batch,
                reference: reference
                  ? async () => {
                      const r = await reference<{ seconds: number[]; unetEncoderCalls: number; unetDecoderCalls: number }>({ op: 'decode', mode, batch });
                      if (r.unetEncoderCalls !== steps || r.unetDecoderCalls !== decoderPasses * steps) {
                        throw new BiaError('BIA_NATIVE_ERROR', `ddim_ref.py made ${r.unetEncoderCalls} encoder / ${r.unetDecoderCalls} decoder passes per ${mode} decoding, ` +
                          `the addon ${steps} / ${decoderPasses * steps}`);
                      }
                      return r.seconds;
                    }
                  : undefined,
              },
              async () => {
                const out = await diffusion.decode(xLat, h, { mode, t0, steps, hRef: hR, batchSize: batch });
                out.dispose();
              },
            );
          } finally {
            h.dispose();
          }
        }
      } finally {
        for (const t of owned) t.dispose();
      }
    }),
};

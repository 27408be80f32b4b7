/**
 * Suite `absorb`: time per iteration of the `optimize` absorption (optimizeAbsorption: L and ∂L/∂ĥ
 * through the decoder and the identity encoder, then an Adam step) in both backprop modes, 'full'
 * (through every decoding step, checkpointed) and 'one-step' (through Asyrp's x̂0 at t0), at the
 * config's t0 and the run's steps, mode 'asyrp', the weight-free L_perc substitute.
 *
 * The setup is a small real black-hole-like one: x_lat and h_r from inverting a random image, f_r its
 * identity embedding, a wrap set of K neighbours of h_r. Two cases per backprop mode:
 *   optimize {iterations: N}: one optimizeAbsorption call of N iterations (items = N: iterations/s);
 *   optimize {iterations: 1}: the same with one iteration.
 * A call also decodes Dec(h_r) once before the loop and Dec(best ĥ) once after it; the notes give the
 * marginal seconds per iteration, (t_N − t_1)/(N − 1), and that fixed part, t_1 − marginal.
 */
import { optimizeAbsorption, randn, sampleNeighbours, type Backprop, type Tensor } from '../../ts/index';
import type { BenchContext, Suite } from '../harness/types';

const BACKPROPS: Backprop[] = ['full', 'one-step'];
/** Wrap-set size (the released code's wrapSet k is 8; a few suffice for timing, the pull term is cheap). */
const WRAP = 4;

export const suite: Suite = {
  name: 'absorb',
  description: "optimize absorption seconds per iteration (Adam on L through decoder + encoder), backprop 'full' and 'one-step'",
  async run(ctx: BenchContext) {
    const { device, dtype, autocast } = ctx.options;
    const { t0, resolution, protocol } = ctx.config;
    const steps = ctx.steps;
    const N = ctx.options.smoke ? 3 : 10;
    const models = await ctx.config.models(device, { dtype, autocast });
    const owned: Tensor[] = [];
    try {
      const { diffusion, encoder } = models;
      const c = diffusion.config;
      const x = await randn([1, c.inChannels, resolution, resolution], { seed: 11, device, dtype });
      owned.push(x);
      const inv = await diffusion.invert(x, { t0, steps });
      owned.push(inv.xLat, inv.hR, ...inv.hs);
      const fR = await encoder.embed(x, { protocol });
      owned.push(fR);
      const wrap = (await sampleNeighbours(inv.hR, { n: WRAP, alphaMax: 1, seed: 13 })).codes;
      owned.push(wrap);
      const latents = { xLat: inv.xLat, hR: inv.hR, fR, wrap };
      const perIteration: Record<string, unknown> = {};
      for (const backprop of BACKPROPS) {
        const medians: Record<number, number> = {};
        for (const iterations of [N, 1]) {
          let perceptual = '';
          const m = await ctx.measure('optimize', { params: { backprop, iterations, mode: 'asyrp', t0, steps, wrap: WRAP }, items: iterations }, async () => {
            const r = await optimizeAbsorption(diffusion, encoder, latents, { mode: 'asyrp', t0, steps, backprop, protocol, iterations });
            perceptual = r.perceptual;
            r.dispose();
          });
          medians[iterations] = m.median;
          ctx.note('perceptual', perceptual);
        }
        const marginal = (medians[N] - medians[1]) / (N - 1);
        perIteration[backprop] = { marginalSeconds: marginal, fixedSeconds: medians[1] - marginal, iterations: N };
      }
      // Marginal seconds per iteration from the two call lengths, and the once-per-call part (Dec(h_r), Dec(best)).
      ctx.note('perIteration', perIteration);
    } finally {
      for (const t of owned) t.dispose();
      models.dispose();
    }
  },
};

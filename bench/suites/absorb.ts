/**
 * Suite `absorb`: time per iteration of the `optimize` absorption (absorbOptimize: L and ∂L/∂ĥ
 * through the decoder and the identity encoder, then an Adam step) in both backprop modes, 'full'
 * (through every decoding step, checkpointed) and 'one-step' (through Asyrp's x̂0 at t0), at the
 * config's t0 and the run's steps, mode 'asyrp', the weight-free L_perc substitute.
 *
 * The setup is a small real black-hole-like one: x_lat and h_r from inverting a random image, f_r its
 * identity embedding, a wrap set of K neighbours of h_r. Two cases per backprop mode:
 *   optimize:  one absorbOptimize call of N iterations, end to end (items = N: iterations/s,
 *              including the once-per-call Dec(h_r) before the loop and Dec(best ĥ) after it);
 *   iteration: one iteration alone, timed between consecutive per-iteration progress events of the
 *              timed `optimize` calls (N − 1 samples per call; an event fires once an iteration's
 *              loss is on the host, so device work is finished).
 * N is 10 for 'one-step' and 2 for 'full' (whose iteration backpropagates through every step; it takes
 * half the --trials, at least 3, so 3 timed calls and 3 iteration samples by default); 3 for both in
 * smoke runs. 10 for both, and all --trials, before 2026-12-08.
 */
import { absorbOptimize, randn, sampleNeighbours, type Backprop, type Tensor } from '../../ts/index';
import type { BenchContext, Suite } from '../harness/types';

const BACKPROPS: Backprop[] = ['full', 'one-step'];
/** Wrap-set size (the released code's wrapSet k is 8; a few suffice for timing, the pull term is cheap). */
const WRAP = 4;

export const suite: Suite = {
  name: 'absorb',
  description: "optimize absorption: seconds per iteration (Adam on L through decoder + encoder), backprop 'full' and 'one-step'",
  async run(ctx: BenchContext) {
    const { device, dtype } = ctx.options;
    const { t0, resolution, protocol } = ctx.config;
    const steps = ctx.steps;
    const iterationsOf = (b: Backprop) => (ctx.options.smoke ? 3 : b === 'full' ? 2 : 10);
    await ctx.withModels(async ({ diffusion, encoder }) => {
      const owned: Tensor[] = [];
      try {
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
        const firstIteration: Record<string, number[]> = {};
        let perceptual = '';
        for (const backprop of BACKPROPS) {
          const iterations = iterationsOf(backprop);
          const params = { backprop, mode: 'asyrp', t0, steps, wrap: WRAP };
          // Per call: the times of its progress events (one per iteration) from the call's start.
          const calls: number[][] = [];
          // 'one-step': two untimed calls — after the first alone, the first timed call of a 0.4 s absorption still
          // took 1.3× the others (480 ms against 353–367 ms).
          const warmup = backprop === 'one-step' ? Math.max(2, ctx.options.warmup) : undefined;
          // 'full': seconds a call; half the --trials (at least the 3 a verdict needs).
          const trials = backprop === 'full' ? Math.max(3, Math.ceil(ctx.options.trials / 2)) : undefined;
          const m = await ctx.measure('optimize', { params: { ...params, iterations }, items: iterations, warmup, trials }, async () => {
            const start = performance.now();
            const events: number[] = [];
            const r = await absorbOptimize(diffusion, encoder, latents, {
              mode: 'asyrp', t0, steps, backprop, protocol, iterations,
              onProgress: (ev) => {
                if (ev.stage === 'absorb') events.push((performance.now() - start) / 1e3);
              },
            });
            perceptual = r.perceptual;
            r.dispose();
            calls.push(events);
          });
          // The harness ran warm-up calls first, then the timed ones: keep the timed calls' iterations.
          const timed = calls.slice(calls.length - m.samples.length);
          if (timed.some((e) => e.length !== iterations)) {
            ctx.note(`progressEvents:${backprop}`, timed.map((e) => e.length));
          }
          const perIteration = timed.flatMap((e) => e.slice(1).map((t, i) => t - e[i]));
          firstIteration[backprop] = timed.map((e) => e[0]);
          if (perIteration.length) await ctx.record('iteration', { params, items: 1 }, perIteration, m.warmup);
        }
        ctx.note('perceptual', perceptual);
        // Seconds from the call's start to the first iteration's end: model preparation + Dec(h_r) + one iteration.
        ctx.note('firstIterationSeconds', firstIteration);
      } finally {
        for (const t of owned) t.dispose();
      }
    });
  },
};

/**
 * Suite `svm`: fit time of the black-hole boundary (fitBoundary: the float64 Gram matrix in LibTorch,
 * the C-SVC in libsvm-js on the precomputed kernel, w rebuilt in C++) against the number of codes n
 * and their size d: d = the h-space of the config's diffusion model at the config's resolution
 * (codes shaped like h) and d = 512 (flat codes).
 *
 * Codes are N(0, I) on the run's device (float32, as the library's h come out); labels are the side
 * of a random hyperplane through the origin, so both classes exist and, for n ≤ d, the training
 * split is linearly separable: a train accuracy below 1 would mean a broken fit (noted per case).
 */
import { BiaError, fitBoundary, randn, signedDistance, type Device, type Tensor } from '../../ts/index';
import type { BenchContext, Suite } from '../harness/types';

const SIZES = [32, 64, 128, 256];
const SMOKE_SIZES = [16, 32];

/** The shape of one h at `resolution`: [ch·chMult.last, R/2^(levels−1), R/2^(levels−1)]. */
function hCodeShape(c: { ch: number; chMult: number[] }, resolution: number): number[] {
  const side = resolution / 2 ** (c.chMult.length - 1);
  return [c.ch * c.chMult[c.chMult.length - 1], side, side];
}

/** Labels 1 / 0 from the side of a random hyperplane w·x = 0 (seeded); retries seeds until both classes occur. */
async function hyperplaneLabels(codes: Tensor, codeShape: number[], device: Device, seed: number): Promise<(0 | 1)[]> {
  for (let s = seed; s < seed + 16; s++) {
    const w = await randn(codeShape, { seed: s, device, dtype: 'float32' });
    let dist: Float64Array;
    try {
      dist = await signedDistance(codes, w, 0);
    } finally {
      w.dispose();
    }
    const labels = Array.from(dist, (v): 0 | 1 => (v > 0 ? 1 : 0));
    const ones = labels.reduce<number>((a, b) => a + b, 0);
    if (ones > 0 && ones < labels.length) return labels;
  }
  throw new BiaError('BIA_NO_BOUNDARY', `16 random hyperplanes put all ${codes.shape[0]} codes on one side`);
}

export const suite: Suite = {
  name: 'svm',
  description: 'fitBoundary (float64 Gram + libsvm-js C-SVC) fit time vs n codes and code size d (h-space of the config, 512)',
  async run(ctx: BenchContext) {
    const { device } = ctx.options;
    const hShape = await ctx.withModels(async ({ diffusion }) => hCodeShape(diffusion.config, ctx.config.resolution));
    const shapes = [hShape, [512]];
    const sizes = ctx.options.smoke ? SMOKE_SIZES : SIZES;
    const accuracy: Record<string, unknown>[] = [];
    for (const codeShape of shapes) {
      const d = codeShape.reduce((a, b) => a * b, 1);
      for (const n of sizes) {
        const codes = await randn([n, ...codeShape], { seed: 31 * n + d, device, dtype: 'float32' });
        try {
          const labels = await hyperplaneLabels(codes, codeShape, device, 1000 + n);
          let last: { trainAccuracy: number; heldOutAccuracy: number | null; supportVectors: number; trainSize: number } | null = null;
          await ctx.measure('fit', { params: { n, d }, items: n }, async () => {
            const b = await fitBoundary(codes, labels);
            last = { trainAccuracy: b.trainAccuracy, heldOutAccuracy: b.heldOutAccuracy, supportVectors: b.supportVectors, trainSize: b.trainSize };
            b.dispose();
          });
          accuracy.push({ n, d, codeShape, ...last! });
        } finally {
          codes.dispose();
        }
      }
    }
    ctx.note('hCodeShape', hShape);
    // Labels from a hyperplane through random codes: separable for n ≤ d, so train accuracy should be 1.
    ctx.note('fit', accuracy);
  },
};

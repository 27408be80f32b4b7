/**
 * Suite identity: embeddings per second of the config's identity encoder (and, on the
 * celeba-hq-256 config, iresnet100 — the paper's second recognizer) at 112², next to Python eager
 * (bench/reference/arcface.py), with effective GFLOP/s.
 */
import { createIdentityEncoder, randn, type IdentityArch } from '../../ts/index';
import type { Suite } from '../harness/types';

/** Multiply-add FLOPs (×2) of one 112² image through the official network (width scales channels). */
export function encoderFlops(arch: string, width = 1): number {
  let f = 0;
  const w = (c: number) => Math.max(1, Math.round(c * width));
  const conv = (cin: number, cout: number, k: number, side: number) => (f += 2 * cin * cout * k * k * side * side);
  let side = 112;
  conv(3, w(64), 3, side);
  if (arch === 'ir_se50') {
    for (const [cin, depth, n] of [[64, 64, 3], [64, 128, 4], [128, 256, 14], [256, 512, 3]].map((r) => [w(r[0]), w(r[1]), r[2]])) {
      for (let u = 0; u < n; u++) {
        const inC = u === 0 ? cin : depth;
        conv(inC, depth, 3, side); // conv1 at the input resolution
        if (u === 0) side /= 2;
        conv(depth, depth, 3, side); // conv2 (stride on the first unit)
        if (inC !== depth) conv(inC, depth, 1, side);
        f += 2 * 2 * depth * Math.max(1, depth / 16); // SE
      }
    }
  } else {
    const layers = { iresnet18: [2, 2, 2, 2], iresnet34: [3, 4, 6, 3], iresnet50: [3, 4, 14, 3], iresnet100: [3, 13, 30, 3] }[arch];
    if (!layers) return NaN;
    let inplanes = w(64);
    [64, 128, 256, 512].map(w).forEach((p, L) => {
      for (let b = 0; b < layers[L]; b++) {
        const cin = b === 0 ? inplanes : p;
        conv(cin, p, 3, side);
        if (b === 0) side /= 2;
        conv(p, p, 3, side);
        if (b === 0) conv(cin, p, 1, side);
      }
      inplanes = p;
    });
  }
  f += 2 * w(512) * 49 * 512; // the fully connected layer
  return f;
}

export const suite: Suite = {
  name: 'identity',
  description: 'identity-encoder embeddings/s at 112² (addon vs Python eager)',
  async run(ctx) {
    const { device, smoke } = ctx.options;
    const batch = smoke ? 2 : device === 'cpu' ? 16 : 64;
    const encoders: { arch: IdentityArch; width: number }[] = [{ arch: ctx.config.encoderArch, width: ctx.config.encoderWidth }];
    if (ctx.config.name === 'celeba-hq-256' && !smoke) encoders.push({ arch: 'iresnet100', width: 1 });
    const ref = await ctx.python('identity_ref.py');
    for (const { arch, width } of encoders) {
      const enc = await createIdentityEncoder(arch, { width, device, dtype: ctx.computeDtype, seed: 2 });
      const x = await randn([batch, 3, 112, 112], { seed: 1, device });
      try {
        await ctx.measure('embed', {
          params: { arch, width, batch },
          items: batch,
          flops: encoderFlops(arch, width) * batch,
          reference: ref
            ? async () => (await ref.request<{ seconds: number[] }>({ arch, width, batch, device, dtype: ctx.computeDtype, warmup: ctx.options.warmup, iterations: ctx.options.trials })).seconds
            : undefined,
        }, async () => {
          (await enc.embed(x, { protocol: 'insightface' })).dispose();
        });
      } finally {
        x.dispose();
        enc.dispose();
      }
    }
  },
};

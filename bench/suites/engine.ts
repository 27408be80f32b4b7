/**
 * Suite engine: sgemm and conv2d through the addon's native timing loop (calibrated by the harness:
 * each sample is one native loop of enough calls to last --min-time), next to the same
 * operations in Python eager torch (bench/engine_ref.py): the floor every model inherits.
 */
import { benchmark, type BenchmarkSpec } from '../../ts/index';
import type { Suite } from '../harness/types';

export function engineFlops(s: BenchmarkSpec): number {
  return s.op === 'sgemm'
    ? 2 * s.m! * (s.n ?? s.m!) * (s.k ?? s.m!)
    : 2 * s.batch! * s.inChannels! * (s.outChannels ?? s.inChannels!) * s.height! * (s.width ?? s.height!) * (s.kernel ?? 3) ** 2;
}

export const suite: Suite = {
  name: 'engine',
  description: 'sgemm and conv2d GFLOP/s (addon vs Python eager), the rate the models inherit',
  async run(ctx) {
    const { device, smoke } = ctx.options;
    const gpu = device !== 'cpu';
    const n = (cpu: number, cuda: number) => Math.max(2, Math.round((gpu ? cuda : cpu) * (smoke ? 0.25 : 1)));
    const cases: { name: string; spec: BenchmarkSpec }[] = smoke
      ? [
          { name: 'sgemm', spec: { op: 'sgemm', m: 256 } },
          { name: 'conv2d', spec: { op: 'conv2d', batch: 1, inChannels: 32, height: 32 } },
        ]
      : [
          { name: 'sgemm', spec: { op: 'sgemm', m: 1024 } },
          { name: 'sgemm', spec: { op: 'sgemm', m: gpu ? 8192 : 2048 } },
          { name: 'conv2d', spec: { op: 'conv2d', batch: 1, inChannels: 128, height: 64 } },
          { name: 'conv2d', spec: { op: 'conv2d', batch: 1, inChannels: 128, height: 64, channelsLast: true } },
          { name: 'conv2d', spec: { op: 'conv2d', batch: 4, inChannels: 256, height: 32 } },
          { name: 'conv2d', spec: { op: 'conv2d', batch: gpu ? 16 : 4, inChannels: 512, height: 16 } },
        ];
    const ref = await ctx.python('engine_ref.py');
    for (const c of cases) {
      const spec: BenchmarkSpec = { ...c.spec, device, dtype: ctx.computeDtype };
      const { op: _op, device: _d, dtype: _t, ...shape } = spec;
      // The native timing loop times each call (no per-call JS overhead); the harness sets the calls per sample.
      await ctx.measureLoops(c.name, {
        params: { ...shape, channelsLast: spec.channelsLast ?? false, dtype: ctx.computeDtype } as Record<string, number | string | boolean>,
        flops: engineFlops(spec),
        reference: ref ? async () => (await ref.request<{ seconds: number[] }>({ ...spec, warmup: 2, iterations: n(c.spec.op === 'sgemm' && c.spec.m! > 1024 ? 6 : 10, 100) })).seconds : undefined,
      }, async (loops) => {
        const r = await benchmark({ ...spec, warmup: 0, iterations: loops });
        return r.seconds.reduce((a, b) => a + b, 0) / loops;
      });
    }
  },
};

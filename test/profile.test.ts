// Where the time and memory go: the op-level profiler, CUDA memory statistics and cuDNN's
// benchmark mode.
import t from 'tap';
import {
  createDiffusion,
  cudaMemory,
  getCudnnBenchmark,
  loadAddon,
  profileOps,
  randn,
  runtimeInfo,
  setCudnnBenchmark,
  setThreads,
  type DiffusionModel,
  type OpTime,
  type Tensor,
} from '../ts/index';
import { ROOT, runNode } from './helpers';

setThreads(1);

async function forward(m: DiffusionModel, x: Tensor, times: number[]): Promise<void> {
  const { eps, h } = await m.forward(x, times);
  eps.dispose();
  h.dispose();
}

function callsOf(ops: OpTime[], name: string): number {
  return ops.find((o) => o.name === name)?.calls ?? 0;
}

t.test('profileOps: top-level ATen ops of a UNet forward, and only those', async (t) => {
  const m = await createDiffusion('tiny', { seed: 1 });
  const x2 = await randn([2, 3, 16, 16], { seed: 2 });
  await forward(m, x2, [10, 600]); // warm up (first-call allocations, oneDNN primitive caches)

  const p = await profileOps(async () => {
    for (let i = 0; i < 3; i++) await forward(m, x2, [10, 600]);
    return 'done';
  });
  t.equal(p.result, 'done', 'the result of fn comes back');
  const names = p.ops.map((o) => o.name);
  t.ok(names.some((n) => /conv/.test(n)), `a convolution op is among ${names.join(', ')}`);
  // GroupNorm (+ SiLU) is the fused CPU kernel in inference jobs, recorded as one op of its own.
  t.ok(names.includes('bia::group_norm_silu') && names.includes('bia::group_norm'), 'the fused GroupNorm ops are counted');
  t.notOk(names.includes('aten::group_norm'), 'and LibTorch\'s GroupNorm does not run');
  // Only outermost ops: what conv2d / group_norm call inside must not show (it would double count).
  for (const inner of ['aten::_convolution', 'aten::native_group_norm', 'aten::mkldnn_convolution']) {
    t.notOk(names.includes(inner), `${inner} runs inside a top-level op and is not counted separately`);
  }
  t.ok(p.ops.every((o) => Number.isInteger(o.calls) && o.calls > 0 && o.seconds >= 0), 'every op has calls > 0 and seconds ≥ 0');
  t.equal((callsOf(p.ops, 'bia::group_norm_silu') + callsOf(p.ops, 'bia::group_norm')) % 3, 0, 'three identical forwards: a multiple of 3 group_norm calls');
  t.ok(p.ops.every((o, i) => i === 0 || p.ops[i - 1].seconds >= o.seconds), 'sorted by seconds, descending');
  const sum = p.ops.reduce((s, o) => s + o.seconds, 0);
  t.ok(Math.abs(sum - p.totalSeconds) <= 1e-9 * Math.max(1, sum), 'totalSeconds is the sum of the ops');
  t.ok(Math.abs(p.ops.reduce((s, o) => s + o.share, 0) - 1) < 1e-9, 'shares sum to 1');
  t.ok(p.totalSeconds <= p.wallSeconds * 1.05, `ops ${(p.totalSeconds * 1e3).toFixed(1)} ms ≤ wall ${(p.wallSeconds * 1e3).toFixed(1)} ms`);
  t.ok(p.totalSeconds >= p.wallSeconds * 0.5, `ops ${(p.totalSeconds * 1e3).toFixed(1)} ms cover at least half of wall ${(p.wallSeconds * 1e3).toFixed(1)} ms`);
  t.comment(p.ops.slice(0, 6).map((o) => `${o.name} ${o.calls}× ${(o.seconds * 1e3).toFixed(2)} ms (${(o.share * 100).toFixed(0)}%)`).join('; '));

  // Counts follow the work profiled and nothing else: work after a stop is not counted, and
  // a batch-1 forward runs the same ops as a batch-2 one.
  const x1 = await randn([1, 3, 16, 16], { seed: 3 });
  const once = await profileOps(() => forward(m, x1, [10]));
  await forward(m, x1, [10]); // after stop: must not reach the next profile
  await forward(m, x2, [10, 600]);
  const twice = await profileOps(async () => {
    await forward(m, x1, [10]);
    await forward(m, x1, [10]);
  });
  const conv = names.find((n) => /conv/.test(n))!;
  t.ok(callsOf(once.ops, conv) > 0, `${conv} counted in a batch-1 forward`);
  t.equal(callsOf(once.ops, conv) * 3, callsOf(p.ops, conv), `${conv}: one forward at batch 1 makes as many calls as one at batch 2`);
  t.equal(callsOf(twice.ops, conv), 2 * callsOf(once.ops, conv), `${conv}: two forwards, twice the calls`);
  t.ok(callsOf(once.ops, 'bia::group_norm_silu') > 0, 'the fused GroupNorm + SiLU ran');
  t.equal(callsOf(twice.ops, 'bia::group_norm_silu'), 2 * callsOf(once.ops, 'bia::group_norm_silu'), 'group_norm: twice the calls');
  x1.dispose();
  x2.dispose();
  m.dispose();
});

t.test('profileOps: one profile at a time, coded errors, stopped on throw', async (t) => {
  const addon = loadAddon();
  t.throws(() => addon.opProfileStop(), { code: 'BIA_INVALID_ARGUMENT', message: /no op profile is running/ }, 'stop without start');
  const outer = await profileOps(async () => {
    await t.rejects(profileOps(async () => 1), { code: 'BIA_INVALID_ARGUMENT', message: /already running/ }, 'start twice');
    const x = await randn([4, 4], { seed: 1 });
    x.dispose();
    return 7;
  });
  t.equal(outer.result, 7, 'the outer profile survives the refused inner one');
  t.ok(outer.ops.some((o) => o.name === 'aten::randn'), 'and counted its work');
  await t.rejects(profileOps(async () => { throw new Error('boom'); }), { message: 'boom' }, "fn's error comes through");
  const after = await profileOps(async () => 1);
  t.equal(after.result, 1, 'a throwing fn stopped its profile, so a new one starts');
  await t.rejects(profileOps(1 as never), { code: 'BIA_INVALID_ARGUMENT' });
  await t.rejects(profileOps(async () => 1, { sync: 'yes' as never }), { code: 'BIA_INVALID_ARGUMENT' });
  t.throws(() => addon.opProfileStop(), { code: 'BIA_INVALID_ARGUMENT' }, 'nothing left running');
});

t.test('cudaMemory: allocator statistics on CUDA, null without', async (t) => {
  t.throws(() => cudaMemory({ device: -1 }), { code: 'BIA_INVALID_ARGUMENT' });
  t.throws(() => cudaMemory({ device: 0.5 }), { code: 'BIA_INVALID_ARGUMENT' });
  if (!runtimeInfo().cuda.available) {
    t.equal(cudaMemory(), null, 'no GPU: null');
    t.equal(cudaMemory({ device: 3, reset: true }), null);
    return;
  }
  const before = cudaMemory({ reset: true })!;
  const x = await randn([64, 1024, 1024], { device: 'cuda', seed: 1 }); // 256 MiB
  const during = cudaMemory()!;
  t.ok(during.allocatedBytes - before.allocatedBytes >= 256 * 2 ** 20, 'the tensor is allocated');
  t.ok(during.peakAllocatedBytes >= during.allocatedBytes);
  t.ok(during.reservedBytes >= during.allocatedBytes && during.peakReservedBytes >= during.reservedBytes);
  x.dispose();
  const after = cudaMemory({ reset: true })!;
  t.ok(after.allocatedBytes < during.allocatedBytes, 'freed');
  t.ok(after.peakAllocatedBytes >= during.allocatedBytes, 'the peak remembers it');
  t.ok(cudaMemory()!.peakAllocatedBytes < during.allocatedBytes, 'reset starts a new peak');
});

t.test('cuDNN benchmark mode: off by default, round trip, BIA_CUDNN_BENCHMARK', async (t) => {
  const initial = getCudnnBenchmark();
  t.equal(initial, process.env.BIA_CUDNN_BENCHMARK === '1', "LibTorch's default unless the environment says otherwise");
  t.equal(setCudnnBenchmark(!initial), initial, 'returns the previous value');
  t.equal(getCudnnBenchmark(), !initial);
  t.equal(setCudnnBenchmark(initial), !initial);
  t.equal(getCudnnBenchmark(), initial);
  t.throws(() => setCudnnBenchmark('on' as never), { code: 'BIA_INVALID_ARGUMENT' });
  const code = `const b = require(${JSON.stringify(`${ROOT}/dist/ts/index.js`)}); console.log(b.getCudnnBenchmark())`;
  t.equal(runNode(code, { BIA_CUDNN_BENCHMARK: '1' }).stdout.trim(), 'true', 'BIA_CUDNN_BENCHMARK=1 turns it on at load');
  t.equal(runNode(code, { BIA_CUDNN_BENCHMARK: '' }).stdout.trim(), 'false', 'off by default');
});

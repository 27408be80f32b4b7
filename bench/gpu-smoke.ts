/**
 * bench/gpu-smoke: the CUDA checks of the foundation, as one script for a GPU machine (no tap
 * needed there). Exits non-zero on the first failed check; prints measured rates.
 *
 *   node dist/bench/gpu-smoke.js
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { relErr } from '../test/helpers';
import {
  benchmark,
  BiaError,
  createIdentityEncoder,
  externalMemory,
  fitBoundary,
  info,
  loadDiffusion,
  loadIdentityEncoder,
  matmul,
  randn,
  readCheckpoint,
  tensor,
  zeros,
  type Tensor,
} from '../ts/index';


/** The CPU parity fixtures of the diffusion core, run on the GPU (float32 and bf16 autocast). */
async function diffusionOnGpu(check: (ok: boolean, what: string) => void) {
  const dir = path.join(__dirname, '..', '..', 'test', 'fixtures', 'diffusion');
  const facts = JSON.parse(readFileSync(path.join(dir, 'tiny-expected.json'), 'utf8'));
  const E = (await readCheckpoint(path.join(dir, 'tiny-expected.safetensors'))).tensors;
  for (const autocast of [undefined, 'bfloat16'] as const) {
    const m = await loadDiffusion(path.join(dir, 'tiny-weights.pt'), { config: facts.config, device: 'cuda', autocast });
    const x = await E.get('x')!.to({ device: 'cuda' });
    const f = await m.forward(x, facts.t);
    const e1 = await relErr(f.eps, E.get('forward.eps')!);
    const r = await m.decode(await E.get('decode.xLat')!.to({ device: 'cuda' }), await E.get('decode.h')!.to({ device: 'cuda' }), {
      t0: 500, steps: 40, stopAfter: 1, mode: 'asyrp', hRef: await E.get('decode.hRef')!.to({ device: 'cuda' }),
    });
    const e2 = await relErr(r, E.get('decode.step1.asyrp')!);
    const bound = autocast ? 5e-2 : 5e-3; // cuDNN may use TF32 for float32 convolutions
    check(e1 < bound && e2 < bound, `diffusion parity on cuda (${autocast ?? 'float32'}): ε rel err ${e1.toExponential(2)}, asyrp step ${e2.toExponential(2)}`);
    m.dispose();
  }
}

/** The identity parity fixtures and the SVM boundary on the GPU. */
async function identityOnGpu(check: (ok: boolean, what: string) => void) {
  const dir = path.join(__dirname, '..', '..', 'test', 'fixtures', 'identity');
  const E = (await readCheckpoint(path.join(dir, 'expected.safetensors'))).tensors;
  for (const arch of ['ir_se50', 'iresnet50'] as const) {
    for (const dtype of ['float32', 'bfloat16'] as const) {
      const e = await loadIdentityEncoder(path.join(dir, `${arch}-tiny.safetensors`), { device: 'cuda', dtype });
      const x = await E.get('x256')!.to({ device: 'cuda', dtype: 'float32' });
      const r = await relErr(await e.embed(x), E.get(`${arch}.bia256`)!);
      check(r < (dtype === 'float32' ? 5e-3 : 1e-1), `${arch} on cuda (${dtype}): BIA-protocol embedding rel err ${r.toExponential(2)}`);
      e.dispose();
    }
  }
  const big = await createIdentityEncoder('iresnet100', { device: 'cuda', dtype: 'bfloat16' });
  const x = await randn([64, 3, 112, 112], { seed: 1, device: 'cuda' });
  await big.embed(x, { protocol: 'insightface' });
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < 5; i++) await big.embed(x, { protocol: 'insightface' });
  const s = Number(process.hrtime.bigint() - t0) / 1e9 / 5;
  console.log(`iresnet100 bf16 on cuda: ${(64 / s).toFixed(0)} images/s at batch 64`);
  // The black-hole boundary with codes on the GPU.
  const codes = await randn([64, 512, 8, 8], { seed: 3, device: 'cuda' });
  const labels = Array.from({ length: 64 }, (_, i) => (i % 2) as 0 | 1);
  const b = await fitBoundary(codes, labels, { holdout: 0 });
  check(b.trainAccuracy === 1 && Number.isFinite(b.b) && b.w.device.startsWith('cuda'), `SVM boundary on cuda codes: train accuracy ${b.trainAccuracy}, w on ${b.w.device}`);
}

async function rejectsWith(p: Promise<unknown>, code: string): Promise<BiaError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof BiaError, `expected a BiaError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    return e;
  }
  throw new Error(`expected a rejection with ${code}`);
}

const failures: string[] = [];
function check(ok: boolean, what: string) {
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${what}`);
  if (!ok) failures.push(what);
}

async function main() {
  const i = await info();
  console.log(JSON.stringify({ torch: i.torchVersion, cuda: i.cuda, blas: i.blas.name, threads: i.threads, sgemmCpu: i.sgemmGflops }));
  assert.ok(i.cuda.built && i.cuda.available, 'CUDA available');
  assert.ok(i.cuda.devices.length >= 1 && i.cuda.devices[0].name.length > 0);

  // Round trips and dtypes on the GPU.
  const host = new Float32Array([1, -2.5, 3.25, 65504, 0.1]);
  const g = await tensor(host, [5], { device: 'cuda' });
  assert.equal(g.device, 'cuda:0');
  assert.deepEqual(Array.from(await g.data()), Array.from(host));
  for (const dtype of ['float16', 'bfloat16'] as const) {
    const h = await g.to({ dtype });
    assert.equal(h.dtype, dtype);
    const back = await h.data();
    assert.equal(back[0], 1);
    assert.equal(back[1], -2.5);
    h.dispose();
  }
  const c1 = await tensor(host, [5], { device: 'cuda:0', dtype: 'bfloat16' });
  assert.equal(c1.device, 'cuda:0');
  c1.dispose();

  // Seeded randn: identical on CPU and GPU.
  const rc = await (await randn([64], { seed: 7 })).data();
  const rg = await (await randn([64], { seed: 7, device: 'cuda' })).data();
  assert.deepEqual(Array.from(rg), Array.from(rc));

  // matmul on the GPU agrees with the CPU.
  const a = await randn([256, 128], { seed: 1 });
  const b = await randn([128, 64], { seed: 2 });
  const cpu = await (await matmul(a, b)).data();
  const ga = await a.to({ device: 'cuda' });
  const gb = await b.to({ device: 'cuda' });
  const gpu = await (await matmul(ga, gb)).data();
  let maxErr = 0;
  for (let k = 0; k < cpu.length; k++) maxErr = Math.max(maxErr, Math.abs(cpu[k] - gpu[k]));
  console.log(`matmul cuda vs cpu: max abs diff ${maxErr.toExponential(2)}`);
  assert.ok(maxErr < 1e-3, `matmul differs by ${maxErr}`);
  await rejectsWith(matmul(a, gb), 'BIA_INVALID_ARGUMENT'); // different devices

  // External memory covers GPU tensors too.
  const e0 = externalMemory();
  const big = await zeros([64, 1024, 1024], { device: 'cuda' });
  const e1 = externalMemory();
  check(e1 - e0 >= 255 * 2 ** 20, `external memory +${((e1 - e0) / 2 ** 20).toFixed(1)} MiB for a 256 MiB CUDA tensor (before ${e0}, nbytes ${big.nbytes})`);
  big.dispose();
  check(e1 - externalMemory() >= 255 * 2 ** 20, 'external memory released on dispose');

  // Errors.
  await rejectsWith(zeros([2], { device: 'cuda:99' }), 'BIA_DEVICE_UNAVAILABLE');
  const oom = await rejectsWith(zeros([1e12], { device: 'cuda' }), 'BIA_OUT_OF_MEMORY');
  console.log(`cuda OOM message: ${oom.message.split('\n')[0].slice(0, 160)}`);
  const ac = new AbortController();
  const p = benchmark({ op: 'sgemm', m: 4096, device: 'cuda', warmup: 0, iterations: 1_000_000 }, {
    signal: ac.signal,
    onProgress: (ev) => {
      if (ev.step === 5) ac.abort();
    },
  });
  await rejectsWith(p, 'BIA_ABORTED');

  await diffusionOnGpu(check);
  await identityOnGpu(check);

  // Rates.
  const peak: Record<string, number> = {};
  for (const dtype of ['float32', 'bfloat16', 'float16'] as const) {
    const r = await benchmark({ op: 'sgemm', m: 8192, device: 'cuda', dtype, warmup: 3, iterations: 20 });
    peak[dtype] = r.gflops / 1000;
    console.log(`matmul 8192³ ${dtype}: ${(r.gflops / 1000).toFixed(1)} TFLOP/s (spread ${(r.spread * 100).toFixed(1)}%)`);
  }
  const conv = await benchmark({ op: 'conv2d', batch: 16, inChannels: 256, height: 64, device: 'cuda', dtype: 'bfloat16', channelsLast: true, warmup: 3, iterations: 20 });
  console.log(`conv2d 256ch 64² b16 bf16 NHWC: ${(conv.gflops / 1000).toFixed(1)} TFLOP/s`);
  check(peak.bfloat16 > 100, 'bf16 matmul runs on tensor cores');
  if (failures.length) throw new Error(`gpu-smoke: ${failures.length} check(s) failed: ${failures.join('; ')}`);
  console.log('gpu-smoke: all checks passed');
}

main().catch((e) => {
  console.error(e instanceof Error ? e.stack : e);
  process.exitCode = 1;
});

/**
 * bench/unet: forward time of the celeba-hq-256 DDPM UNet (random weights) at batch 1 and 4,
 * NCHW and channels_last, through the addon and through Python eager (bench/reference/ddpm.py,
 * inference mode) in the same run, with effective GFLOP/s and the fraction of the measured
 * sgemm peak.
 *
 *   node dist/bench/unet.js [--batches 1,4] [--iterations 3] [--device cpu] [--dtype float32]
 *                           [--config celeba-hq-256|small-64|tiny] [--no-python] [--json out.json]
 */
import { parseArgs } from 'node:util';
import { benchmark, createDiffusion, getThreads, info, randn, type ComputeDtype, type Device, type UNetPreset } from '../ts/index';
import { findPython, median, PythonServer, settle, table, writeResult } from './common';

const { values } = parseArgs({
  options: {
    batches: { type: 'string', default: '1,4' },
    iterations: { type: 'string', default: '3' },
    warmup: { type: 'string', default: '1' },
    device: { type: 'string', default: 'cpu' },
    dtype: { type: 'string', default: 'float32' },
    config: { type: 'string', default: 'celeba-hq-256' },
    autocast: { type: 'string' },
    'no-python': { type: 'boolean', default: false },
    python: { type: 'string' },
    json: { type: 'string' },
  },
});

/** Convolution FLOPs of one forward pass per image (2·MACs), by walking the official architecture. */
function unetFlops(c: { ch: number; chMult: number[]; numResBlocks: number; attnResolutions: number[]; resolution: number; inChannels: number; outChannels: number }): number {
  let f = 0;
  const conv = (cin: number, cout: number, k: number, side: number) => (f += 2 * cin * cout * k * k * side * side);
  const attn = (ch: number, side: number) => {
    for (let i = 0; i < 4; i++) conv(ch, ch, 1, side);
    f += 2 * 2 * ch * (side * side) ** 2; // q·k and w·v
  };
  const res = (cin: number, cout: number, side: number) => {
    conv(cin, cout, 3, side);
    conv(cout, cout, 3, side);
    if (cin !== cout) conv(cin, cout, 1, side);
  };
  const mult = [1, ...c.chMult];
  let side = c.resolution;
  let blockIn = c.ch;
  conv(c.inChannels, c.ch, 3, side);
  const skips: number[] = [c.ch];
  for (let L = 0; L < c.chMult.length; L++) {
    blockIn = c.ch * mult[L];
    for (let i = 0; i < c.numResBlocks; i++) {
      res(blockIn, c.ch * c.chMult[L], side);
      blockIn = c.ch * c.chMult[L];
      if (c.attnResolutions.includes(side)) attn(blockIn, side);
      skips.push(blockIn);
    }
    if (L !== c.chMult.length - 1) {
      conv(blockIn, blockIn, 3, side / 2);
      side /= 2;
      skips.push(blockIn);
    }
  }
  res(blockIn, blockIn, side);
  attn(blockIn, side);
  res(blockIn, blockIn, side);
  for (let L = c.chMult.length - 1; L >= 0; L--) {
    for (let i = 0; i <= c.numResBlocks; i++) {
      const skip = skips.pop()!;
      res(blockIn + skip, c.ch * c.chMult[L], side);
      blockIn = c.ch * c.chMult[L];
      if (c.attnResolutions.includes(side)) attn(blockIn, side);
    }
    if (L !== 0) {
      side *= 2;
      conv(blockIn, blockIn, 3, side);
    }
  }
  conv(blockIn, c.outChannels, 3, side);
  return f;
}

export { unetFlops };

async function main() {
  const device = values.device as Device;
  const dtype = values.dtype as ComputeDtype;
  const batches = values.batches.split(',').map(Number);
  const iterations = Number(values.iterations);
  const warmup = Number(values.warmup);
  const env = await info({ measure: false });
  const threads = getThreads();
  // The matmul rate of the dtype the convolutions run in (autocast's, else the weights').
  const computeDtype = (values.autocast as ComputeDtype | undefined) ?? dtype;
  const peak = await benchmark({ op: 'sgemm', m: device === 'cpu' ? 2048 : 8192, device, dtype: computeDtype, warmup: 2, iterations: device === 'cpu' ? 5 : 20 });
  const python = values['no-python'] ? null : findPython(values.python);
  const ref = python ? new PythonServer(python, 'unet_ref.py', threads) : null;
  const hello = ref ? await ref.start() : null;
  process.stderr.write(`unet bench: ${values.config} on ${device} (${dtype}), ${threads} threads, ${computeDtype} matmul peak ${peak.gflops.toFixed(0)} GFLOP/s` +
    `${hello ? `, Python reference torch ${hello.torch}` : ', no Python reference'}\n`);

  const rows = [];
  let gflopPerImage = 0;
  for (const channelsLast of [false, true]) {
    const autocast = values.autocast as 'float16' | 'bfloat16' | undefined;
    const model = await createDiffusion(values.config as UNetPreset, { device, dtype, channelsLast, seed: 0, autocast });
    const config = model.config;
    const flopsPerImage = unetFlops(config);
    gflopPerImage = flopsPerImage / 1e9;
    for (const batch of batches) {
      const x = await randn([batch, config.inChannels, config.resolution, config.resolution], { seed: 1, device, dtype });
      const times: number[] = [];
      await settle(device);
      for (let i = 0; i < warmup + iterations; i++) {
        const t0 = process.hrtime.bigint();
        const r = await model.forward(x, 500); // resolves after the result is on the host side of the job (synchronised)
        const dt = Number(process.hrtime.bigint() - t0) / 1e9;
        r.eps.dispose();
        r.h.dispose();
        if (i >= warmup) times.push(dt);
      }
      x.dispose();
      await settle(device);
      const py = ref ? await ref.seconds({ config: { ...config, hShape: undefined }, batch, channelsLast, warmup, iterations, device, dtype, autocast }) : [];
      const a = median(times);
      const p = py.length ? median(py) : NaN;
      const gflops = (flopsPerImage * batch) / a / 1e9;
      rows.push({
        layout: channelsLast ? 'channels_last' : 'NCHW',
        batch,
        addon: { medianSeconds: a, seconds: times, gflops, fractionOfMatmulPeak: gflops / peak.gflops },
        python: py.length ? { medianSeconds: p, seconds: py, gflops: (flopsPerImage * batch) / p / 1e9 } : null,
        speedup: py.length ? p / a : null,
      });
      process.stderr.write(`  ${channelsLast ? 'NHWC' : 'NCHW'} b${batch}: addon ${a.toFixed(2)} s${py.length ? `, python ${p.toFixed(2)} s` : ''}\n`);
    }
    model.dispose();
  }
  ref?.close();
  const bestPython = Math.min(...rows.filter((r) => r.python).map((r) => r.python!.medianSeconds / r.batch));
  const bestAddon = Math.min(...rows.map((r) => r.addon.medianSeconds / r.batch));
  process.stdout.write(`${table(
    ['layout', 'batch', 'addon s/img', 'addon GFLOP/s', 'of matmul peak', 'python s/img', 'addon speedup'],
    rows.map((r) => [r.layout, String(r.batch), (r.addon.medianSeconds / r.batch).toFixed(3), r.addon.gflops.toFixed(1),
      `${(r.addon.fractionOfMatmulPeak * 100).toFixed(0)}%`, r.python ? (r.python.medianSeconds / r.batch).toFixed(3) : '—', r.speedup ? `${r.speedup.toFixed(2)}×` : '—']),
  )}\n`);
  if (Number.isFinite(bestPython)) process.stdout.write(`best addon ${bestAddon.toFixed(3)} s/img vs best Python ${bestPython.toFixed(3)} s/img: ${(bestPython / bestAddon).toFixed(2)}×\n`);
  const result = {
    bench: 'unet',
    date: new Date().toISOString(),
    environment: { ...env, threads, python, pythonTorch: hello?.torch ?? null },
    config: values.config,
    device,
    dtype,
    autocast: values.autocast ?? null,
    gflopPerImage,
    matmulPeakGflops: peak.gflops,
    matmulPeakDtype: computeDtype,
    rows,
  };
  process.stderr.write(`wrote ${writeResult('unet', result, values.json)}\n`);
}

if (require.main === module) main().catch((e) => {
  process.stderr.write(`${e instanceof Error ? e.stack : e}\n`);
  process.exitCode = 1;
});

/**
 * bench/identity: IR-SE50 and iresnet100 embeddings per second at batch 16 (random weights,
 * 112² input), through the addon and through Python eager (bench/reference/arcface.py) in the
 * same run, with effective GFLOP/s.
 *
 *   node dist/bench/identity.js [--archs ir_se50,iresnet100] [--batch 16] [--iterations 5] [--device cpu] [--json f]
 */
import { parseArgs } from 'node:util';
import { benchmark, createIdentityEncoder, getThreads, info, randn, type Device, type IdentityArch } from '../ts/index';
import { findPython, median, PythonServer, settle, table, writeResult } from './common';

const { values } = parseArgs({
  options: {
    archs: { type: 'string', default: 'ir_se50,iresnet100' },
    batch: { type: 'string', default: '16' },
    iterations: { type: 'string', default: '5' },
    warmup: { type: 'string', default: '1' },
    device: { type: 'string', default: 'cpu' },
    'no-python': { type: 'boolean', default: false },
    python: { type: 'string' },
    json: { type: 'string' },
  },
});

/** Multiply-add FLOPs (×2) of one 112² image through the official network. */
export function encoderFlops(arch: string): number {
  let f = 0;
  const conv = (cin: number, cout: number, k: number, side: number) => (f += 2 * cin * cout * k * k * side * side);
  let side = 112;
  conv(3, 64, 3, side);
  if (arch === 'ir_se50') {
    for (const [cin, depth, n] of [[64, 64, 3], [64, 128, 4], [128, 256, 14], [256, 512, 3]]) {
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
    const layers = { iresnet18: [2, 2, 2, 2], iresnet34: [3, 4, 6, 3], iresnet50: [3, 4, 14, 3], iresnet100: [3, 13, 30, 3] }[arch]!;
    let inplanes = 64;
    [64, 128, 256, 512].forEach((p, L) => {
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
  f += 2 * 512 * 49 * 512; // the fully connected layer
  return f;
}

async function main() {
  const device = values.device as Device;
  const batch = Number(values.batch);
  const iterations = Number(values.iterations);
  const warmup = Number(values.warmup);
  const env = await info({ measure: false });
  const threads = getThreads();
  const peak = await benchmark({ op: 'sgemm', m: device === 'cpu' ? 2048 : 8192, device, warmup: 1, iterations: device === 'cpu' ? 5 : 20 });
  const python = values['no-python'] || device !== 'cpu' ? null : findPython(values.python);
  const ref = python ? new PythonServer(python, 'identity_ref.py', threads) : null;
  const hello = ref ? await ref.start() : null;
  process.stderr.write(`identity bench: batch ${batch} on ${device}, ${threads} threads, sgemm ${peak.gflops.toFixed(0)} GFLOP/s${hello ? `, Python torch ${hello.torch}` : ''}\n`);
  const rows = [];
  for (const arch of values.archs.split(',') as IdentityArch[]) {
    const enc = await createIdentityEncoder(arch, { device });
    const x = await randn([batch, 3, 112, 112], { seed: 1, device });
    const times: number[] = [];
    await settle(device);
    for (let i = 0; i < warmup + iterations; i++) {
      const t0 = process.hrtime.bigint();
      (await enc.embed(x, { protocol: 'insightface' })).dispose();
      if (i >= warmup) times.push(Number(process.hrtime.bigint() - t0) / 1e9);
    }
    enc.dispose();
    await settle(device);
    const py = ref ? await ref.seconds({ arch, batch, warmup, iterations }) : [];
    const a = median(times);
    const p = py.length ? median(py) : NaN;
    const flops = encoderFlops(arch) * batch;
    rows.push({
      arch,
      batch,
      addon: { medianSeconds: a, seconds: times, imagesPerSecond: batch / a, gflops: flops / a / 1e9 },
      python: py.length ? { medianSeconds: p, seconds: py, imagesPerSecond: batch / p, gflops: flops / p / 1e9 } : null,
      speedup: py.length ? p / a : null,
      gflopPerImage: encoderFlops(arch) / 1e9,
    });
    process.stderr.write(`  ${arch}: addon ${(batch / a).toFixed(1)} img/s${py.length ? `, python ${(batch / p).toFixed(1)} img/s` : ''}\n`);
  }
  ref?.close();
  process.stdout.write(`${table(['arch', 'GFLOP/img', 'addon img/s', 'addon GFLOP/s', 'of sgemm peak', 'python img/s', 'speedup'],
    rows.map((r) => [r.arch, r.gflopPerImage.toFixed(2), r.addon.imagesPerSecond.toFixed(1), r.addon.gflops.toFixed(0),
      `${((r.addon.gflops / peak.gflops) * 100).toFixed(0)}%`, r.python ? r.python.imagesPerSecond.toFixed(1) : '—', r.speedup ? `${r.speedup.toFixed(2)}×` : '—']))}\n`);
  const result = { bench: 'identity', date: new Date().toISOString(), environment: { ...env, threads, python, pythonTorch: hello?.torch ?? null }, device, sgemmPeakGflops: peak.gflops, rows };
  process.stderr.write(`wrote ${writeResult('identity', result, values.json)}\n`);
}

if (require.main === module) {
  main().catch((e) => {
    process.stderr.write(`${e instanceof Error ? e.stack : e}\n`);
    process.exitCode = 1;
  });
}

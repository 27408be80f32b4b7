/**
 * bench/engine: sgemm and conv2d GFLOP/s through the addon, next to the same operations in
 * Python eager torch (when a Python with torch is installed), interleaved in the same run.
 *
 *   node dist/bench/engine.js [--rounds 3] [--device cpu] [--quick] [--json out.json] [--python exe]
 */
import { parseArgs } from 'node:util';
import { benchmark, getThreads, info, type BenchmarkSpec, type Device } from '../ts/index';
import { findPython, median, PythonServer, settle, table, writeResult } from './common';

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    device: { type: 'string', default: 'cpu' },
    dtype: { type: 'string', default: 'float32' },
    quick: { type: 'boolean', default: false },
    json: { type: 'string' },
    python: { type: 'string' },
  },
});

const device = values.device as Device;
const dtype = values.dtype as BenchmarkSpec['dtype'];
const gpu = device !== 'cpu';
const scale = values.quick ? 0.25 : 1;
const it = (n: number) => Math.max(2, Math.round(n * scale));

const baseCases: { name: string; spec: BenchmarkSpec }[] = [
  { name: 'sgemm 1024²', spec: { op: 'sgemm', m: 1024, warmup: 2, iterations: it(gpu ? 200 : 20) } },
  { name: 'sgemm 2048²', spec: { op: 'sgemm', m: 2048, warmup: 1, iterations: it(gpu ? 100 : 6) } },
  { name: 'conv 128ch 64² b1 (NCHW)', spec: { op: 'conv2d', batch: 1, inChannels: 128, height: 64, warmup: 2, iterations: it(gpu ? 200 : 12) } },
  { name: 'conv 128ch 64² b1 (NHWC)', spec: { op: 'conv2d', batch: 1, inChannels: 128, height: 64, channelsLast: true, warmup: 2, iterations: it(gpu ? 200 : 12) } },
  { name: 'conv 256ch 32² b4 (NCHW)', spec: { op: 'conv2d', batch: 4, inChannels: 256, height: 32, warmup: 2, iterations: it(gpu ? 200 : 8) } },
  { name: 'conv 512ch 16² b4 (NCHW)', spec: { op: 'conv2d', batch: 4, inChannels: 512, height: 16, warmup: 2, iterations: it(gpu ? 200 : 8) } },
];
const cases = baseCases.map((c) => ({ ...c, spec: { ...c.spec, device, dtype } }));

async function main() {
  const env = await info({ measure: false });
  const threads = getThreads();
  const python = findPython(values.python);
  const rounds = Number(values.rounds);
  const addonTimes = cases.map(() => [] as number[]);
  const pyTimes = cases.map(() => [] as number[]);
  const ref = python ? new PythonServer(python, 'engine_ref.py', threads) : null;
  const hello = ref ? await ref.start() : null;
  process.stderr.write(`engine bench: ${cases.length} cases × ${rounds} rounds on ${device}, ${threads} threads` +
    `${python ? `, Python reference ${python} (torch ${hello!.torch}, ${hello!.threads} threads)` : ', no Python torch found (reference skipped)'}\n`);
  // Interleave per case, alternating who goes first, with a pause so that BLAS/OpenMP threads
  // left spinning by one side do not steal cores from the other.
  for (let r = 0; r < rounds; r++) {
    for (const [i, c] of cases.entries()) {
      const addonFirst = (r + i) % 2 === 0;
      for (const side of addonFirst ? ['addon', 'python'] : ['python', 'addon']) {
        if (side === 'addon') addonTimes[i].push(...(await benchmark(c.spec)).seconds);
        else if (ref) pyTimes[i].push(...(await ref.seconds(c.spec)));
        await settle(device);
      }
    }
    process.stderr.write(`  round ${r + 1}/${rounds} done\n`);
  }
  ref?.close();
  const pyTorch = hello?.torch ?? '';
  const flopsOf = (s: BenchmarkSpec) =>
    s.op === 'sgemm' ? 2 * s.m! ** 3 : 2 * s.batch! * s.inChannels! ** 2 * s.height! ** 2 * (s.kernel ?? 3) ** 2;
  const rows = cases.map((c, i) => {
    const flops = flopsOf(c.spec);
    const a = median(addonTimes[i]);
    const p = pyTimes[i].length ? median(pyTimes[i]) : NaN;
    return {
      name: c.name,
      spec: c.spec,
      flops,
      addon: { medianSeconds: a, gflops: flops / a / 1e9, samples: addonTimes[i].length },
      python: pyTimes[i].length ? { medianSeconds: p, gflops: flops / p / 1e9, samples: pyTimes[i].length } : null,
      ratio: pyTimes[i].length ? p / a : null, // > 1: the addon is faster
    };
  });
  process.stdout.write(`${table(['case', 'addon GFLOP/s', 'python GFLOP/s', 'addon/python'],
    rows.map((r) => [r.name, r.addon.gflops.toFixed(1), r.python ? r.python.gflops.toFixed(1) : '—', r.ratio ? r.ratio.toFixed(3) : '—']))}\n`);
  const result = {
    bench: 'engine',
    date: new Date().toISOString(),
    environment: { ...env, threads, python, pythonTorch: pyTorch },
    rounds,
    rows,
  };
  process.stderr.write(`wrote ${writeResult('engine', result, values.json)}\n`);
}

main().catch((e) => {
  process.stderr.write(`${e instanceof Error ? e.stack : e}\n`);
  process.exitCode = 1;
});

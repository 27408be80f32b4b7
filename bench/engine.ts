/**
 * bench/engine: sgemm and conv2d GFLOP/s through the addon, next to the same operations in
 * Python eager torch (when a Python with torch is installed), interleaved in the same run.
 *
 *   node dist/bench/engine.js [--rounds 3] [--device cpu] [--quick] [--json out.json] [--python exe]
 */
import { spawn, spawnSync } from 'node:child_process';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { benchmark, getThreads, info, type BenchmarkSpec, type Device } from '../ts/index';

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

function findPython(): string | null {
  const candidates = [values.python, process.env.BIA_PYTHON, 'python3', '/usr/bin/python3'].filter(Boolean) as string[];
  for (const exe of candidates) {
    const r = spawnSync(exe, ['-c', 'import torch'], { stdio: 'ignore', timeout: 60_000 });
    if (r.status === 0) return exe;
  }
  return null;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** The Python reference as a long-lived process answering one spec per line. */
class PythonReference {
  private lines: AsyncIterableIterator<string>;
  private child;
  constructor(exe: string, threads: number) {
    this.child = spawn(exe, [path.join(__dirname, '..', '..', 'bench', 'engine_ref.py'), String(threads)], {
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    this.lines = createInterface({ input: this.child.stdout! })[Symbol.asyncIterator]();
  }
  async next(): Promise<unknown> {
    const r = await this.lines.next();
    if (r.done) throw new Error('the Python reference exited early');
    return JSON.parse(r.value);
  }
  async run(spec: BenchmarkSpec): Promise<number[]> {
    this.child.stdin!.write(`${JSON.stringify(spec)}\n`);
    return ((await this.next()) as { seconds: number[] }).seconds;
  }
  close() {
    this.child.stdin!.end();
  }
}

async function main() {
  const env = await info({ measure: false });
  const threads = getThreads();
  const python = findPython();
  const rounds = Number(values.rounds);
  const addonTimes = cases.map(() => [] as number[]);
  const pyTimes = cases.map(() => [] as number[]);
  const ref = python ? new PythonReference(python, threads) : null;
  const hello = ref ? ((await ref.next()) as { torch: string; threads: number }) : null;
  process.stderr.write(`engine bench: ${cases.length} cases × ${rounds} rounds on ${device}, ${threads} threads` +
    `${python ? `, Python reference ${python} (torch ${hello!.torch}, ${hello!.threads} threads)` : ', no Python torch found (reference skipped)'}\n`);
  // Interleave per case, alternating who goes first, with a pause so that BLAS/OpenMP threads
  // left spinning by one side do not steal cores from the other.
  for (let r = 0; r < rounds; r++) {
    for (const [i, c] of cases.entries()) {
      const addonFirst = (r + i) % 2 === 0;
      for (const side of addonFirst ? ['addon', 'python'] : ['python', 'addon']) {
        if (side === 'addon') addonTimes[i].push(...(await benchmark(c.spec)).seconds);
        else if (ref) pyTimes[i].push(...(await ref.run(c.spec)));
        await sleep(gpu ? 0 : 150);
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
  const pad = (s: string, n: number) => s.padEnd(n);
  const lines = [
    `${pad('case', 28)} ${pad('addon GFLOP/s', 14)} ${pad('python GFLOP/s', 15)} addon/python`,
    ...rows.map((r) => `${pad(r.name, 28)} ${pad(r.addon.gflops.toFixed(1), 14)} ${pad(r.python ? r.python.gflops.toFixed(1) : '—', 15)} ${r.ratio ? r.ratio.toFixed(3) : '—'}`),
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
  const result = {
    bench: 'engine',
    date: new Date().toISOString(),
    environment: { ...env, threads, python, pythonTorch: pyTorch },
    rounds,
    rows,
  };
  const file = values.json ?? path.join(__dirname, '..', '..', 'bench', 'out', `engine-${result.date.replace(/[:.]/g, '-')}.json`);
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);
  process.stderr.write(`wrote ${file}\n`);
}

main().catch((e) => {
  process.stderr.write(`${e instanceof Error ? e.stack : e}\n`);
  process.exitCode = 1;
});

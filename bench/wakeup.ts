/**
 * Does OpenMP worker wake-up explain the multi-millisecond outliers of small ops? (docs/benchmarks.md,
 * "Thread wake-up")
 *
 *   node dist/bench/wakeup.js [--rounds 3] [--threads 2] [--variants spin300000,spin1000,passive]
 *                             [--out bench/results/wakeup.json]
 *
 * Each variant is a fresh process with the OpenMP runtime's settings in its environment (they are
 * read once, when libgomp loads); the variants run in turn, round after round, so a change of the
 * machine's load falls on all of them. A process times, per call:
 *  - small jobs: the tiny UNet's forward at batch 1 (convolutions on OpenMP/oneDNN and matmuls on
 *    OpenBLAS, interleaved, as in the pipeline), sgemm 256² and conv2d 32 ch 32², alternating;
 *  - large jobs: the tiny UNet at batch 16, sgemm 1024², conv2d 256 ch 32² batch 4;
 *  - the identity embedding (iresnet18 at width 0.125, batch 16 at 112²);
 * and the UNet's minor page faults per call. Variant glibcMalloc: glibc malloc's own thresholds
 * (BIA_MALLOC_TUNE=0) against the addon's pinned ones (spin1000, the default).
 * and reports per job the median, the 90th percentile and the share of calls slower than 2× the
 * fastest decile + 1 ms (a "late" call), with the 1-minute load average before and after.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { invalidArgument } from '../ts/errors';
import { ROOT } from './harness/run';
import { quantileSorted } from './harness/stats';

/** The OpenMP settings compared. 'spin300000' is libgomp's own default (the addon sets 1000 unless told otherwise). */
export const WAKEUP_VARIANTS: Record<string, Record<string, string>> = {
  spin300000: { GOMP_SPINCOUNT: '300000' },
  spin1000: { GOMP_SPINCOUNT: '1000' },
  spin10000: { GOMP_SPINCOUNT: '10000' },
  passive: { OMP_WAIT_POLICY: 'PASSIVE' },
  active: { OMP_WAIT_POLICY: 'ACTIVE' },
  // The addon's default OpenMP setting with glibc malloc's own thresholds (the addon pins them otherwise;
  // docs/benchmarks.md, "Malloc and small models").
  glibcMalloc: { GOMP_SPINCOUNT: '1000', BIA_MALLOC_TUNE: '0' },
};

interface JobStats { median: number; p90: number; late: number; calls: number; pageFaultsPerCall?: number }

function summarise(ms: number[]): JobStats {
  const s = [...ms].sort((a, b) => a - b);
  const p10 = quantileSorted(s, 0.1);
  return { median: quantileSorted(s, 0.5), p90: quantileSorted(s, 0.9), late: s.filter((x) => x > 2 * p10 + 1).length / s.length, calls: s.length };
}

/** The child: time the jobs in this process (its environment holds the variant's settings). */
async function child(threads: number): Promise<void> {
  // Loaded here, after the environment is final: libgomp reads its settings when the addon loads it.
  const b = await import('../ts/index');
  b.setThreads(threads);
  const out: Record<string, JobStats> = {};
  const d = await b.createDiffusion('tiny', { seed: 1 });
  const time = async (fn: () => Promise<unknown>) => {
    const t = process.hrtime.bigint();
    await fn();
    return Number(process.hrtime.bigint() - t) / 1e6;
  };
  for (const [batch, calls] of [[1, 150], [16, 30]] as const) {
    const x = await b.randn([batch, 3, 16, 16], { seed: 1 });
    const ms: number[] = [];
    let faults = 0;
    for (let i = 0; i < calls + 3; i++) {
      const f0 = process.resourceUsage().minorPageFault;
      ms.push(await time(async () => {
        const r = await d.forward(x, 500);
        r.eps.dispose();
        r.h.dispose();
      }));
      if (i >= 3) faults += process.resourceUsage().minorPageFault - f0;
    }
    out[`unet batch ${batch}`] = { ...summarise(ms.slice(3)), pageFaultsPerCall: faults / calls };
    x.dispose();
  }
  {
    const enc = await b.createIdentityEncoder('iresnet18', { width: 0.125, seed: 2 });
    const x = await b.randn([16, 3, 112, 112], { seed: 2 });
    const ms: number[] = [];
    for (let i = 0; i < 43; i++) ms.push(await time(async () => (await enc.embed(x, { protocol: 'insightface' })).dispose()));
    out['identity iresnet18 w0.125 batch 16'] = summarise(ms.slice(3));
    x.dispose();
    enc.dispose();
  }
  const sg: number[] = [];
  const cv: number[] = [];
  for (let i = 0; i < 60; i++) {
    sg.push(...(await b.benchmark({ op: 'sgemm', m: 256, warmup: 0, iterations: 3 })).seconds.map((s) => s * 1e3));
    cv.push(...(await b.benchmark({ op: 'conv2d', batch: 1, inChannels: 32, height: 32, warmup: 0, iterations: 3 })).seconds.map((s) => s * 1e3));
  }
  out['sgemm 256 (alternating)'] = summarise(sg);
  out['conv2d 32ch 32² (alternating)'] = summarise(cv);
  out['sgemm 1024'] = summarise((await b.benchmark({ op: 'sgemm', m: 1024, warmup: 1, iterations: 10 })).seconds.map((s) => s * 1e3));
  out['conv2d 256ch 32² batch 4'] = summarise((await b.benchmark({ op: 'conv2d', batch: 4, inChannels: 256, height: 32, warmup: 1, iterations: 6 })).seconds.map((s) => s * 1e3));
  d.dispose();
  process.stdout.write(`${JSON.stringify(out)}\n`);
}

async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      rounds: { type: 'string', default: '3' },
      threads: { type: 'string', default: String(Math.min(2, os.availableParallelism())) },
      variants: { type: 'string', default: 'spin300000,spin1000,passive' },
      out: { type: 'string', default: path.join(ROOT, 'bench', 'results', 'wakeup.json') },
      child: { type: 'boolean', default: false },
    },
  });
  const threads = Number(values.threads);
  if (!Number.isInteger(threads) || threads < 1) throw invalidArgument(`--threads must be an integer ≥ 1, got '${values.threads}'`);
  if (values.child) return child(threads);
  const rounds = Number(values.rounds);
  if (!Number.isInteger(rounds) || rounds < 1) throw invalidArgument(`--rounds must be an integer ≥ 1, got '${values.rounds}'`);
  const variants = values.variants.split(',').filter(Boolean);
  for (const v of variants) if (!WAKEUP_VARIANTS[v]) throw invalidArgument(`unknown variant '${v}' (variants: ${Object.keys(WAKEUP_VARIANTS).join(', ')})`);
  const runs: { round: number; variant: string; env: Record<string, string>; loadBefore: number; loadAfter: number; jobs: Record<string, JobStats> | null; error?: string }[] = [];
  const clean = { ...process.env };
  delete clean.GOMP_SPINCOUNT;
  delete clean.OMP_WAIT_POLICY;
  delete clean.BIA_MALLOC_TUNE;
  for (let r = 1; r <= rounds; r++) {
    for (const v of variants) {
      const loadBefore = os.loadavg()[0];
      const p = spawnSync(process.execPath, [__filename, '--child', '--threads', String(threads)], { env: { ...clean, ...WAKEUP_VARIANTS[v], BIA_WAKEUP_VARIANT: v }, encoding: 'utf8' });
      const loadAfter = os.loadavg()[0];
      let jobs: Record<string, JobStats> | null = null;
      try {
        jobs = JSON.parse(p.stdout.trim().split('\n').pop()!);
      } catch {
        /* reported below */
      }
      runs.push({ round: r, variant: v, env: WAKEUP_VARIANTS[v], loadBefore, loadAfter, jobs, ...(jobs ? {} : { error: p.stderr.slice(-1000) }) });
      process.stderr.write(`round ${r} ${v} (load ${loadBefore.toFixed(2)} → ${loadAfter.toFixed(2)}): ${jobs ? Object.entries(jobs).map(([k, s]) => `${k} ${s.median.toFixed(2)} ms (p90 ${s.p90.toFixed(2)}, ${(100 * s.late).toFixed(0)}% late)`).join('; ') : p.stderr.slice(-300)}\n`);
    }
  }
  const result = { what: 'OpenMP wait settings against small and large jobs (bench/wakeup.ts)', command: `node dist/bench/wakeup.js ${argv.join(' ')}`.trim(), date: new Date().toISOString(), cpu: os.cpus()[0]?.model, cores: os.availableParallelism(), threads, runs };
  mkdirSync(path.dirname(path.resolve(values.out)), { recursive: true });
  writeFileSync(values.out, `${JSON.stringify(result, null, 2)}\n`);
  process.stderr.write(`wrote ${values.out}\n`);
}

if (require.main === module) {
  main(process.argv.slice(2)).catch((e: unknown) => {
    process.stderr.write(`wakeup: ${(e as Error).message}\n`);
    process.exitCode = 1;
  });
}

/**
 * A seeded mutation fuzzer for every file format the library reads: torch.save (zip and legacy),
 * safetensors, npy, ONNX and PNG. Each case takes a valid file, applies one to three mutations (bit
 * flips, truncation, length fields set to extreme values, duplicated and reordered chunks or zip
 * records) and hands it to a worker process, which must answer with a result or a BIA_* error within
 * the time limit and without growing its memory past the limit. Anything else — a crash, a hang, a
 * limit exceeded, an error without a BIA_ code — is a failure; the input is kept with its seed and
 * case number so that it can be replayed.
 *
 *   node dist/test/fuzz/fuzz.js [--cases N] [--seed S] [--workers W] [--timeout-ms T] [--memory-mib M] [--keep DIR]
 *   npm run fuzz -- --cases 10000
 */
import { fork, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import nodePath from 'node:path';
import { parseArgs } from 'node:util';
import sharp from 'sharp';
import type { FuzzFormat, FuzzReply, FuzzRequest } from './worker';

const ROOT = nodePath.resolve(__dirname, '..', '..', '..');
const FIXTURES = nodePath.join(ROOT, 'test', 'fixtures');

export interface Seed {
  format: FuzzFormat;
  name: string;
  bytes: Buffer;
}

/** A small valid .npy file (float32, shape [3, 4]). */
function npyBytes(): Buffer {
  let header = "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }";
  const total = 10 + header.length + 1;
  header += ' '.repeat((64 - (total % 64)) % 64) + '\n';
  const h = Buffer.alloc(10);
  Buffer.from('\x93NUMPY', 'latin1').copy(h);
  h[6] = 1;
  h[7] = 0;
  h.writeUInt16LE(header.length, 8);
  const data = Buffer.from(new Float32Array(12).map((_, i) => i / 3).buffer);
  return Buffer.concat([h, Buffer.from(header, 'latin1'), data]);
}

/** The valid files every mutation starts from. */
export async function seedCorpus(): Promise<Seed[]> {
  const file = (format: FuzzFormat, rel: string): Seed => ({ format, name: rel, bytes: readFileSync(nodePath.join(FIXTURES, rel)) });
  const noise = Buffer.from(Array.from({ length: 24 * 24 * 3 }, (_, i) => (i * 37) % 256));
  const png = await sharp(noise, { raw: { width: 24, height: 24, channels: 3 } }).png().toBuffer();
  return [
    file('torch', 'checkpoints/module.zip.pt'),
    file('torch', 'checkpoints/module.legacy.pt'),
    file('torch', 'checkpoints/dtypes.zip.pt'),
    file('torch', 'checkpoints/dtypes.legacy.pt'),
    file('torch', 'checkpoints/wrapped.zip.pt'),
    file('torch', 'checkpoints-torch2/t2.zip.pt'),
    file('torch', 'checkpoints-torch2/t2.legacy.pt'),
    file('safetensors', 'checkpoints/python.safetensors'),
    file('onnx', 'identity/mfn-tiny-folded.onnx'),
    { format: 'npy', name: 'generated.npy', bytes: npyBytes() },
    { format: 'png', name: 'generated.png', bytes: png },
  ];
}

/** splitmix32-style generator: the same (seed, case) always gives the same mutations. */
export function rng(seed: number, k: number): () => number {
  let s = (Math.imul(seed >>> 0, 0x9e3779b1) ^ Math.imul(k + 1, 0x85ebca6b)) >>> 0;
  return () => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return ((z ^ (z >>> 16)) >>> 0) / 2 ** 32;
  };
}

const EXTREMES_32 = [0xffffffff, 0x7fffffff, 0x80000000, 0, 1, 0xffff, 0x10000, 0xfffffffe];
const EXTREMES_64 = [2n ** 64n - 1n, 2n ** 63n - 1n, 2n ** 63n, 2n ** 32n, 2n ** 40n];
/** Zip local-file and central-directory record signatures. */
const ZIP_SIGNATURES = [Buffer.from('PK\x03\x04', 'latin1'), Buffer.from('PK\x01\x02', 'latin1'), Buffer.from('PK\x05\x06', 'latin1')];

function recordStarts(b: Buffer): number[] {
  const at: number[] = [];
  for (const sig of ZIP_SIGNATURES) for (let i = b.indexOf(sig); i >= 0; i = b.indexOf(sig, i + 1)) at.push(i);
  return at.sort((x, y) => x - y);
}

export type MutationName = 'bitflip' | 'truncate' | 'overflow' | 'duplicate' | 'reorder' | 'records';
export const MUTATIONS: readonly MutationName[] = ['bitflip', 'truncate', 'overflow', 'duplicate', 'reorder', 'records'];

/** One mutation of `b` (a new buffer). */
export function mutate(b: Buffer, m: MutationName, r: () => number): Buffer {
  const n = b.length;
  const int = (k: number) => Math.floor(r() * Math.max(1, k));
  // offsets lean towards the start, where the headers and length fields live
  const offset = () => (r() < 0.4 ? int(Math.min(n, 96)) : int(n));
  switch (m) {
    case 'bitflip': {
      const out = Buffer.from(b);
      for (let i = 1 + int(16); i > 0 && n > 0; i--) out[offset()] ^= 1 << int(8);
      return out;
    }
    case 'truncate':
      return b.subarray(0, int(n));
    case 'overflow': {
      const out = Buffer.from(b);
      const wide = r() < 0.3;
      const at = offset();
      if (wide && at + 8 <= n) out.writeBigUInt64LE(EXTREMES_64[int(EXTREMES_64.length)], at);
      else if (at + 4 <= n) out.writeUInt32LE(EXTREMES_32[int(EXTREMES_32.length)], at);
      return out;
    }
    case 'duplicate': {
      const a = offset();
      const len = 1 + int(Math.min(n - a, 256));
      const at = int(n + 1);
      return Buffer.concat([b.subarray(0, at), b.subarray(a, a + len), b.subarray(at)]);
    }
    case 'reorder': {
      if (n < 4) return Buffer.from(b);
      const cuts = [int(n), int(n), int(n), int(n)].sort((x, y) => x - y);
      const [p, q, s, u] = cuts;
      return Buffer.concat([b.subarray(0, p), b.subarray(s, u), b.subarray(q, s), b.subarray(p, q), b.subarray(u)]);
    }
    case 'records': {
      // whole zip records duplicated or swapped (falls back to a chunk duplicate for other formats)
      const starts = recordStarts(b);
      if (starts.length < 2) return mutate(b, 'duplicate', r);
      const i = int(starts.length - 1);
      const j = int(starts.length - 1);
      const [a0, a1] = [starts[i], starts[i + 1]];
      const [b0, b1] = [starts[j], starts[j + 1]];
      if (r() < 0.5 || i === j) return Buffer.concat([b.subarray(0, a1), b.subarray(a0, a1), b.subarray(a1)]);
      const [x0, x1, y0, y1] = a0 < b0 ? [a0, a1, b0, b1] : [b0, b1, a0, a1];
      return Buffer.concat([b.subarray(0, x0), b.subarray(y0, y1), b.subarray(x1, y0), b.subarray(x0, x1), b.subarray(y1)]);
    }
  }
}

export interface FuzzCase {
  k: number;
  seed: Seed;
  mutations: MutationName[];
  bytes: Buffer;
}

/** Case k of a run: its seed file and its mutations, a pure function of (seed, k). */
export function makeCase(corpus: Seed[], seed: number, k: number): FuzzCase {
  const r = rng(seed, k);
  const s = corpus[k % corpus.length];
  if (s.format === 'probe') return { k, seed: s, mutations: [], bytes: s.bytes };
  const mutations = Array.from({ length: 1 + Math.floor(r() * 3) }, () => MUTATIONS[Math.floor(r() * MUTATIONS.length)]);
  let bytes = s.bytes;
  for (const m of mutations) bytes = mutate(bytes, m, r);
  return { k, seed: s, mutations, bytes };
}

export interface FuzzFailure {
  k: number;
  format: FuzzFormat;
  from: string;
  mutations: MutationName[];
  kind: 'crash' | 'hang' | 'memory' | 'not-bia';
  detail: string;
  /** Where the input was kept. */
  file?: string;
}

export interface FuzzReport {
  seed: number;
  cases: number;
  ok: number;
  /** BIA_* codes and how often each answered. */
  codes: Record<string, number>;
  /** Per format: cases loaded, refused with a BIA_* code, failed. */
  formats: Record<string, { ok: number; refused: number; failed: number }>;
  failures: FuzzFailure[];
  /** The slowest case (ms) and the largest memory growth (MiB) among the answered ones. */
  maxMs: number;
  maxPeakMiB: number;
  seconds: number;
}

export interface FuzzOptions {
  cases: number;
  seed: number;
  workers?: number;
  timeoutMs?: number;
  memoryMiB?: number;
  /** Where failing inputs are kept (default: a folder under the OS temp dir). */
  keep?: string;
  onCase?: (done: number) => void;
}

interface Worker {
  proc: ChildProcess;
  ready: Promise<void>;
}

function startWorker(): Worker {
  const proc = fork(nodePath.join(__dirname, 'worker.js'), [], {
    env: { ...process.env, BIA_NUM_THREADS: '1' },
    execArgv: ['--max-old-space-size=512'],
    stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
  });
  proc.stderr?.resume();
  const ready = new Promise<void>((resolve, reject) => {
    proc.once('message', () => resolve());
    proc.once('exit', (code, sig) => reject(new Error(`the fuzz worker exited at start (${code ?? sig})`)));
  });
  return { proc, ready };
}

function rssMiB(pid: number): number {
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : 0;
  } catch {
    return 0;
  }
}

export type Outcome = { reply: FuzzReply } | { kind: 'crash' | 'hang' | 'memory'; detail: string };

/** Runs one case on a worker; the worker is killed (and must be replaced) on a crash, hang or memory overrun. */
function runOne(w: Worker, req: FuzzRequest, timeoutMs: number, memoryMiB: number, baseMiB: number): Promise<Outcome> {
  return new Promise((resolve) => {
    let settled = false;
    const finish = (o: Outcome) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      clearInterval(poll);
      w.proc.off('message', onMessage);
      w.proc.off('exit', onExit);
      resolve(o);
    };
    const onMessage = (m: FuzzReply) => {
      if (m.id === req.id) finish({ reply: m });
    };
    const onExit = (code: number | null, sig: string | null) => finish({ kind: 'crash', detail: `worker exited (${sig ?? `code ${code}`})` });
    const timer = setTimeout(() => {
      w.proc.kill('SIGKILL');
      finish({ kind: 'hang', detail: `no answer within ${timeoutMs} ms` });
    }, timeoutMs);
    const poll = setInterval(() => {
      const rss = rssMiB(w.proc.pid ?? 0);
      if (rss - baseMiB > memoryMiB) {
        w.proc.kill('SIGKILL');
        finish({ kind: 'memory', detail: `resident memory grew by ${(rss - baseMiB).toFixed(0)} MiB (limit ${memoryMiB})` });
      }
    }, 20);
    w.proc.on('message', onMessage);
    w.proc.once('exit', onExit);
    w.proc.send(req);
  });
}

/** One file through a fresh worker: how it was answered (or the crash/hang/memory failure), its time and memory. */
export async function answer(format: FuzzFormat, bytes: Buffer, limits: { timeoutMs: number; memoryMiB: number }): Promise<Outcome> {
  const dir = mkdtempSync(nodePath.join(os.tmpdir(), 'bia-answer-'));
  const w = startWorker();
  try {
    await w.ready;
    const path = nodePath.join(dir, `file.${format}`);
    writeFileSync(path, bytes);
    return await runOne(w, { id: 0, format, path }, limits.timeoutMs, limits.memoryMiB, rssMiB(w.proc.pid ?? 0));
  } finally {
    w.proc.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function fuzz(opts: FuzzOptions & { corpus?: Seed[] }): Promise<FuzzReport> {
  const start = performance.now();
  const corpus = opts.corpus ?? (await seedCorpus());
  const timeoutMs = opts.timeoutMs ?? 5000;
  const memoryMiB = opts.memoryMiB ?? 512;
  const scratch = mkdtempSync(nodePath.join(os.tmpdir(), 'bia-fuzz-'));
  const keep = opts.keep ?? nodePath.join(os.tmpdir(), `bia-fuzz-failures-${opts.seed}`);
  const report: FuzzReport = { seed: opts.seed, cases: opts.cases, ok: 0, codes: {}, formats: {}, failures: [], maxMs: 0, maxPeakMiB: 0, seconds: 0 };
  let next = 0;
  let done = 0;
  const lane = async (lane: number) => {
    let w = startWorker();
    await w.ready;
    let base = rssMiB(w.proc.pid ?? 0);
    try {
      while (next < opts.cases) {
        const c = makeCase(corpus, opts.seed, next++);
        const path = nodePath.join(scratch, `case-${lane}.${c.seed.format}`);
        writeFileSync(path, c.bytes);
        const o = await runOne(w, { id: c.k, format: c.seed.format, path }, timeoutMs, memoryMiB, base);
        let failure: Omit<FuzzFailure, 'k' | 'format' | 'from' | 'mutations'> | undefined;
        if ('reply' in o) {
          const r = o.reply;
          report.maxMs = Math.max(report.maxMs, r.ms);
          report.maxPeakMiB = Math.max(report.maxPeakMiB, r.peakMiB);
          if (r.outcome === 'ok') report.ok++;
          else if (r.outcome === 'bia') report.codes[r.detail] = (report.codes[r.detail] ?? 0) + 1;
          else failure = { kind: 'not-bia', detail: r.detail };
          if (r.peakMiB > memoryMiB) failure = { kind: 'memory', detail: `peak memory grew by ${r.peakMiB.toFixed(0)} MiB` };
        } else {
          failure = o;
          w.proc.kill('SIGKILL');
          w = startWorker();
          await w.ready;
          base = rssMiB(w.proc.pid ?? 0);
        }
        const tally = (report.formats[c.seed.format] ??= { ok: 0, refused: 0, failed: 0 });
        if (failure) tally.failed++;
        else if ('reply' in o && o.reply.outcome === 'ok') tally.ok++;
        else tally.refused++;
        if (failure) {
          mkdirSync(keep, { recursive: true });
          const file = nodePath.join(keep, `${c.seed.format}-seed${opts.seed}-case${c.k}.bin`);
          writeFileSync(file, c.bytes);
          report.failures.push({ k: c.k, format: c.seed.format, from: c.seed.name, mutations: c.mutations, ...failure, file });
        }
        opts.onCase?.(++done);
      }
    } finally {
      w.proc.kill('SIGKILL');
    }
  };
  try {
    await Promise.all(Array.from({ length: opts.workers ?? 2 }, (_, i) => lane(i)));
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
  report.seconds = (performance.now() - start) / 1000;
  return report;
}

export function formatFuzzReport(r: FuzzReport): string {
  const codes = Object.entries(r.codes)
    .sort((a, b) => b[1] - a[1])
    .map(([c, n]) => `${c} ${n}`)
    .join(', ');
  const lines = [
    `fuzz: ${r.cases} cases (seed ${r.seed}) in ${r.seconds.toFixed(1)} s: ${r.ok} loaded, ${r.cases - r.ok - r.failures.length} refused with a BIA_* code, ${r.failures.length} failures`,
    `  codes: ${codes || 'none'}`,
    `  formats: ${Object.entries(r.formats)
      .map(([f, n]) => `${f} ${n.ok} loaded / ${n.refused} refused / ${n.failed} failed`)
      .join('; ')}`,
    `  slowest answer ${r.maxMs.toFixed(0)} ms, largest memory growth ${r.maxPeakMiB.toFixed(0)} MiB`,
    ...r.failures.map((f) => `  FAIL case ${f.k} (${f.format}, from ${f.from}, ${f.mutations.join('+')}): ${f.kind}: ${f.detail} — kept in ${f.file}`),
  ];
  return lines.join('\n');
}

if (require.main === module) {
  const { values } = parseArgs({
    options: {
      cases: { type: 'string', default: '10000' },
      seed: { type: 'string', default: '1' },
      workers: { type: 'string', default: '2' },
      'timeout-ms': { type: 'string', default: '5000' },
      'memory-mib': { type: 'string', default: '512' },
      keep: { type: 'string' },
      json: { type: 'string' },
    },
  });
  fuzz({
    cases: Number(values.cases),
    seed: Number(values.seed),
    workers: Number(values.workers),
    timeoutMs: Number(values['timeout-ms']),
    memoryMiB: Number(values['memory-mib']),
    keep: values.keep,
    onCase: (n) => {
      if (n % 1000 === 0) process.stderr.write(`  ${n} cases\n`);
    },
  }).then((r) => {
    console.log(formatFuzzReport(r));
    if (values.json) writeFileSync(values.json, JSON.stringify(r, null, 2));
    process.exitCode = r.failures.length > 0 ? 1 : 0;
  });
}

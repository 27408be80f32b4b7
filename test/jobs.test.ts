// The long-work pattern: Promise, progress through a thread-safe function, AbortSignal into the
// C++ loop, and an event loop that stays free while LibTorch computes.
import t from 'tap';
import path from 'node:path';
import { benchmark, matmul, tensor, type ProgressEvent } from '../ts/index';
import { ROOT, runNode } from './helpers';

const INDEX = path.join(ROOT, 'dist', 'ts', 'index.js');

const conv = { op: 'conv2d' as const, batch: 2, inChannels: 64, outChannels: 64, height: 64, width: 64, kernel: 3 };

t.test('progress events arrive in order, all before the promise resolves', async (t) => {
  const events: ProgressEvent[] = [];
  let resolved = false;
  const r = await benchmark({ ...conv, warmup: 2, iterations: 6 }, {
    onProgress: (ev) => {
      t.equal(resolved, false);
      events.push(ev);
    },
  });
  resolved = true;
  t.equal(events.length, 8);
  t.same(events.map((e) => e.step), [1, 2, 3, 4, 5, 6, 7, 8]);
  t.ok(events.every((e) => e.total === 8));
  t.same(events.map((e) => e.stage), ['warmup', 'warmup', 'measure', 'measure', 'measure', 'measure', 'measure', 'measure']);
  t.ok(events.every((e) => typeof e.value === 'number' && e.value! > 0));
  t.equal(r.seconds.length, 6);
  t.equal(r.flops, 2 * 2 * 64 * 64 * 64 * 64 * 9);
  t.ok(r.gflops > 0);
});

t.test('a JS timer keeps firing while a long conv loop runs in C++', async (t) => {
  let ticks = 0;
  const timer = setInterval(() => ticks++, 5);
  const started = Date.now();
  let progress = 0;
  const iterations = 40;
  const r = await benchmark({ ...conv, batch: 8, inChannels: 128, outChannels: 128, warmup: 0, iterations }, { onProgress: () => progress++ });
  const elapsed = Date.now() - started;
  clearInterval(timer);
  t.equal(progress, iterations);
  t.ok(elapsed > 100, `the job took ${elapsed} ms`);
  // A blocked event loop would give ~0 ticks; a free one ~elapsed/5 (allow for a loaded machine).
  t.ok(ticks >= Math.floor(elapsed / 5 / 4), `${ticks} timer ticks in ${elapsed} ms`);
  t.equal(r.seconds.length, iterations);
});

t.test('AbortSignal stops the C++ loop between steps', async (t) => {
  const ac = new AbortController();
  const steps: number[] = [];
  const p = benchmark({ op: 'sgemm', m: 512, warmup: 0, iterations: 100000 }, {
    signal: ac.signal,
    onProgress: (ev) => {
      steps.push(ev.step);
      if (ev.step === 3) ac.abort();
    },
  });
  await t.rejects(p, { code: 'BIA_ABORTED', name: 'AbortError' });
  t.ok(steps.length >= 3 && steps.length < 100000, `stopped after ${steps.length} of 100000 steps`);

  const timed = AbortSignal.timeout(50);
  const t0 = Date.now();
  await t.rejects(benchmark({ op: 'sgemm', m: 512, warmup: 0, iterations: 100000 }, { signal: timed }), { code: 'BIA_ABORTED' });
  t.ok(Date.now() - t0 < 5000, 'aborted promptly');
});

t.test('an already-aborted signal rejects without starting', async (t) => {
  const ac = new AbortController();
  ac.abort(new Error('user cancelled'));
  let called = false;
  await t.rejects(benchmark({ op: 'sgemm', m: 64 }, { signal: ac.signal, onProgress: () => (called = true) }), {
    code: 'BIA_ABORTED',
    message: /user cancelled/,
  });
  t.equal(called, false);
});

t.test('a throwing progress callback aborts the job and becomes its rejection', async (t) => {
  let calls = 0;
  await t.rejects(
    benchmark({ op: 'sgemm', m: 256, warmup: 0, iterations: 100000 }, {
      onProgress: () => {
        calls++;
        throw new RangeError('callback failed');
      },
    }),
    { message: 'callback failed' },
  );
  t.ok(calls >= 1 && calls < 100000, `${calls} callback(s) before the stop`);
});

t.test('matmul computes the right numbers off the main thread', async (t) => {
  const n = 33;
  const m = 17;
  const k = 9;
  const A = Float64Array.from({ length: n * k }, (_, i) => Math.sin(i));
  const B = Float64Array.from({ length: k * m }, (_, i) => Math.cos(i * 0.7));
  const a = await tensor(A, [n, k]);
  const b = await tensor(B, [k, m]);
  const c = await matmul(a, b);
  t.same(c.shape, [n, m]);
  const C = await c.data();
  let maxErr = 0;
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < m; j++) {
      let s = 0;
      for (let q = 0; q < k; q++) s += A[i * k + q] * B[q * m + j];
      maxErr = Math.max(maxErr, Math.abs(s - (C[i * m + j] as number)));
    }
  }
  t.ok(maxErr < 1e-12, `max error ${maxErr}`);
  await t.rejects(matmul(a, a), { code: 'BIA_INVALID_ARGUMENT', message: /\[33,9\] @ \[33,9\]/ });
  for (const x of [a, b, c]) x.dispose();
});

t.test('benchmark options are validated', async (t) => {
  await t.rejects(benchmark({ op: 'fft' as never }), { code: 'BIA_INVALID_ARGUMENT' });
  await t.rejects(benchmark({ op: 'sgemm', iterations: 0 }), { code: 'BIA_INVALID_ARGUMENT' });
  await t.rejects(benchmark({ op: 'sgemm', dtype: 'uint8' as never }), { code: 'BIA_INVALID_ARGUMENT' });
  await t.rejects(benchmark({ op: 'sgemm' }, { signal: 'x' as never }), { code: 'BIA_INVALID_ARGUMENT' });
  await t.rejects(benchmark({ op: 'sgemm' }, { onProgress: 3 as never }), { code: 'BIA_INVALID_ARGUMENT' });
});

t.test('process.exit() during a job exits cleanly', async (t) => {
  const code = `const b = require(${JSON.stringify(INDEX)});
    b.benchmark({ op: 'sgemm', m: 512, warmup: 0, iterations: 1000000 }).catch(() => {});
    setTimeout(() => process.exit(7), 300);`;
  const r = runNode(code);
  t.equal(r.status, 7, r.stderr);
  t.equal(r.stderr, '');
});

t.test('a worker thread terminated during a job leaves the process healthy', async (t) => {
  const code = `const { Worker } = require('node:worker_threads');
    const w = new Worker(\`const b = require(${JSON.stringify(INDEX).replace(/"/g, "'")});
      b.benchmark({ op: 'sgemm', m: 512, warmup: 0, iterations: 1000000 }).catch(() => {});
      require('node:worker_threads').parentPort.postMessage('started');\`, { eval: true });
    w.on('message', () => setTimeout(async () => {
      await w.terminate();
      const b = require(${JSON.stringify(INDEX)});
      const r = await b.benchmark({ op: 'sgemm', m: 64, iterations: 2 });
      console.log('after', r.seconds.length);
    }, 300));`;
  const r = runNode(code);
  t.equal(r.status, 0, r.stderr);
  t.match(r.stdout, /after 2/);
});

// info(), threads, BLAS and the `bia` CLI.
import os from 'node:os';
import t from 'tap';
import { emptyCache, getThreads, info, runtimeInfo, setThreads, zeros } from '../ts/index';
import { runCli, runNode, ROOT } from './helpers';

const expectedThreads = process.env.BIA_NUM_THREADS ? Number(process.env.BIA_NUM_THREADS) : os.availableParallelism();

t.test('info reports LibTorch, an optimised BLAS, all cores and a measured sgemm rate', async (t) => {
  const i = await info();
  t.match(i.torchVersion, /^\d+\.\d+/);
  t.ok(['OpenBLAS', 'MKL', 'BLIS'].includes(i.blas.name), `BLAS is ${i.blas.name} (${i.blas.library})`);
  t.equal(i.threads, expectedThreads);
  t.ok(i.sgemmGflops! > 20, `sgemm ${i.sgemmGflops!.toFixed(1)} GFLOP/s (the reference BLAS gives ~5)`);
  t.equal(typeof i.cuda.available, 'boolean');
  t.equal(i.cuda.devices.length > 0, i.cuda.available);
  const quick = await info({ measure: false });
  t.equal(quick.sgemmGflops, undefined);
});

t.test('threads can be set and are used by worker-thread jobs', async (t) => {
  t.equal(setThreads(1), 1);
  t.equal(getThreads(), 1);
  const one = await info();
  t.equal(one.threads, 1, 'the job thread runs with the configured count');
  t.equal(setThreads(expectedThreads), expectedThreads);
  t.throws(() => setThreads(0), { code: 'BIA_INVALID_ARGUMENT' });
  t.throws(() => setThreads(2.5), { code: 'BIA_INVALID_ARGUMENT' });
  t.equal(runtimeInfo().threads, expectedThreads);
});

t.test('bia info (text and --json)', async (t) => {
  const r = runCli(['info']);
  t.equal(r.status, 0, r.stderr);
  t.match(r.stdout, /LibTorch\s+\d/);
  t.match(r.stdout, /BLAS\s+(OpenBLAS|MKL|BLIS)/);
  t.match(r.stdout, new RegExp(`threads\\s+${expectedThreads} intra-op`));
  t.match(r.stdout, /CUDA\s+/);
  t.match(r.stdout, /sgemm\s+[\d.]+ GFLOP\/s/);
  const j = runCli(['info', '--json', '--no-measure']);
  t.equal(j.status, 0);
  const parsed = JSON.parse(j.stdout);
  t.equal(parsed.threads, expectedThreads);
  t.equal(parsed.sgemmGflops, undefined);
  const threads1 = runCli(['info', '--json', '--no-measure'], { BIA_NUM_THREADS: '1' });
  t.equal(JSON.parse(threads1.stdout).threads, 1, 'BIA_NUM_THREADS is honoured');
});

t.test('CLI exit codes', async (t) => {
  t.equal(runCli(['--version']).status, 0);
  t.equal(runCli(['help']).status, 0);
  const bad = runCli(['frobnicate']);
  t.equal(bad.status, 2);
  t.match(bad.stderr, /unknown command/);
  t.equal(runCli(['info', '--bogus']).status, 2);
  const env = runCli(['info'], { BIA_NUM_THREADS: 'zero' });
  t.equal(env.status, 3);
  t.match(env.stderr, /BIA_NUM_THREADS.*\[BIA_INVALID_ARGUMENT\]/);
});

t.test('the caching CPU allocator reuses large blocks and can be emptied', async (t) => {
  const before = runtimeInfo().cpuCache;
  t.equal(before.enabled, true);
  t.ok(before.limitBytes > 0);
  for (let i = 0; i < 20; i++) (await zeros([4, 1024, 1024])).dispose(); // 16 MiB each
  const after = runtimeInfo().cpuCache;
  t.ok(after.hits - before.hits >= 18, `${after.hits - before.hits} of 20 allocations served from the cache`);
  t.ok(after.cachedBytes >= 16 * 2 ** 20, 'the released block is cached');
  emptyCache();
  t.equal(runtimeInfo().cpuCache.cachedBytes, 0);
  const off = runNode(`const b = require(${JSON.stringify(`${ROOT}/dist/ts/index.js`)}); console.log(JSON.stringify(b.runtimeInfo().cpuCache))`, { BIA_CPU_CACHE_MB: '0' });
  t.equal(JSON.parse(off.stdout).enabled, false, 'BIA_CPU_CACHE_MB=0 turns it off');
});

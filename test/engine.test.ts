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
  t.equal(JSON.parse(off.stdout).mallocTuned, false, "and leaves malloc's thresholds to malloc");
});

t.test('blocks under 1 MiB come from the heap: glibc malloc thresholds pinned at load', { skip: process.platform !== 'linux' && 'glibc only' }, async (t) => {
  // What a small model's forward does: 16 activations of 256 KiB alive at once, then all released;
  // 30 rounds. glibc's defaults give the freed top of the heap back to the system each round, and the
  // next round faults its 4 MiB of pages in again; pinned, the heap keeps them.
  const code = `const b = require(${JSON.stringify(`${ROOT}/dist/ts/index.js`)});
(async () => {
  const round = async () => { const xs = []; for (let i = 0; i < 16; i++) xs.push(await b.zeros([64, 1024])); for (const x of xs) x.dispose(); };
  for (let r = 0; r < 3; r++) await round();
  const f0 = process.resourceUsage().minorPageFault;
  for (let r = 0; r < 30; r++) await round();
  console.log(JSON.stringify({ tuned: b.runtimeInfo().cpuCache.mallocTuned, faults: process.resourceUsage().minorPageFault - f0 }));
})();`;
  const run = (env: NodeJS.ProcessEnv) => {
    const r = runNode(code, env);
    t.equal(r.status, 0, r.stderr);
    return JSON.parse(r.stdout) as { tuned: boolean; faults: number };
  };
  const tuned = run({});
  const plain = run({ BIA_MALLOC_TUNE: '0' });
  const own = run({ MALLOC_TRIM_THRESHOLD_: String(4 << 20) });
  t.equal(tuned.tuned, true, 'pinned by default');
  t.equal(plain.tuned, false, 'BIA_MALLOC_TUNE=0 leaves malloc alone');
  t.equal(own.tuned, false, "a process that sets malloc's thresholds itself keeps them");
  t.ok(plain.faults > 30 * 512, `untuned: ${plain.faults} page faults in 30 rounds (the 4 MiB faulted in again each round)`);
  t.ok(tuned.faults < plain.faults / 10, `tuned: ${tuned.faults} page faults against ${plain.faults}`);
});

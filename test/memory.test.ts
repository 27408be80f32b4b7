// Leak check: thousands of create/dispose cycles keep RSS flat and leave no live handles.
import t from 'tap';
import { liveTensors, tensor, tensorSync, zeros } from '../ts/index';
import { gc } from './helpers';

const MiB = 2 ** 20;
// Stated bound: after a warm-up of 1,000 cycles (which fills the malloc arenas of the worker
// threads and V8's array-buffer pool: ~40 MiB here), two windows of 1,500 more cycles follow. A leak
// grows RSS in both windows; a one-off arena growth (measured once at 37.5 MiB over 3,000 cycles in
// a full test run, 4.6–14.8 MiB otherwise) in one only. So the smaller window's growth may be at most
// 16 MiB. Leaking the 1 MiB tensor would grow each window by ~1.5 GiB.
const BOUND = 16 * MiB;

t.test('create/dispose cycles: RSS flat, no live tensors left', async (t) => {
  const data = new Float32Array(MiB / 4).fill(1.25);
  const live0 = liveTensors();
  const cycle = async (n: number) => {
    for (let i = 0; i < n; i++) {
      const x = await tensor(data, [data.length]);
      if (i % 100 === 0) t.equal((await x.data())[7], 1.25);
      x.dispose();
      const y = tensorSync(data.subarray(0, 1024), [32, 32]);
      y.dispose();
      const z = await zeros([64, 64]);
      z.dispose();
    }
  };
  await cycle(1000); // warm-up: allocator arenas, JIT, thread pool
  gc();
  const rss = [process.memoryUsage().rss];
  for (let w = 0; w < 2; w++) {
    await cycle(1500);
    gc();
    rss.push(process.memoryUsage().rss);
  }
  t.equal(liveTensors(), live0, 'every handle released');
  const growth = [rss[1] - rss[0], rss[2] - rss[1]];
  const shown = growth.map((g) => (g / MiB).toFixed(1)).join(' and ');
  t.ok(Math.min(...growth) < BOUND, `RSS grew ${shown} MiB over two windows of 1,500 cycles (4,500 tensors each) (bound on the smaller: ${BOUND / MiB} MiB)`);
});

t.test('forgotten tensors are reclaimed by the GC (external memory drives collection)', async (t) => {
  gc();
  const rss0 = process.memoryUsage().rss;
  // 2,000 × 4 MiB = 8 GiB if nothing were collected.
  for (let i = 0; i < 2000; i++) await zeros([1024, 1024]);
  gc();
  await new Promise((r) => setImmediate(r));
  gc();
  const rss1 = process.memoryUsage().rss;
  t.ok(rss1 - rss0 < 1024 * MiB, `RSS grew ${((rss1 - rss0) / MiB).toFixed(0)} MiB for 8 GiB of undisposed tensors`);
});

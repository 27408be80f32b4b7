// The Tensor handle: create, read back, convert, dispose, finalizer, external memory, bad input.
import t from 'tap';
import { BiaError, externalMemory, liveTensors, loadAddon, randn, runtimeInfo, Tensor, tensor, tensorSync, zeros } from '../ts/index';
import { gc } from './helpers';

t.test('round trip for every input array type', async (t) => {
  const f32 = new Float32Array([1.5, -2, 3.25, 4, 5, 6]);
  const a = await tensor(f32, [2, 3]);
  t.same(a.shape, [2, 3]);
  t.equal(a.dtype, 'float32');
  t.equal(a.device, 'cpu');
  t.equal(a.nbytes, 24);
  t.equal(a.numel, 6);
  const back = await a.data();
  t.ok(back instanceof Float32Array);
  t.same(Array.from(back), Array.from(f32));
  f32[0] = 99; // the tensor owns a copy
  t.equal((await a.data())[0], 1.5);

  const f64 = await tensor(new Float64Array([Math.PI, 1e-300]), [2]);
  t.equal(f64.dtype, 'float64');
  t.same(Array.from(await f64.data()), [Math.PI, 1e-300]);

  const u8 = tensorSync(new Uint8Array([0, 128, 255]), [3]);
  t.equal(u8.dtype, 'uint8');
  const u8back = await u8.data();
  t.ok(u8back instanceof Uint8Array);
  t.same(Array.from(u8back), [0, 128, 255]);

  const i32 = tensorSync(new Int32Array([-7, 1 << 30]), [1, 2]);
  t.same(Array.from(await i32.data()), [-7, 1 << 30]);

  const scalar = tensorSync(new Float32Array([7]), []);
  t.same(scalar.shape, []);
  t.same(Array.from(await scalar.data()), [7]);
  const empty = await tensor(new Float32Array(0), [0, 4]);
  t.same(empty.shape, [0, 4]);
  t.equal((await empty.data()).length, 0);
  for (const x of [a, f64, u8, i32, scalar, empty]) x.dispose();
});

t.test('dtype conversion: float16 and bfloat16 round as expected, read back as Float32Array', async (t) => {
  const x = new Float32Array([1, 1 + 2 ** -8, 1 + 2 ** -11, 65504, 1e-8, -3.140625]);
  const h = await tensor(x, [6], { dtype: 'float16' });
  t.equal(h.dtype, 'float16');
  t.equal(h.nbytes, 12);
  const hb = await h.data();
  t.ok(hb instanceof Float32Array);
  t.same(Array.from(hb), [1, 1 + 2 ** -8, 1, 65504, 0, -3.140625]); // 2^-11 rounds to even, 1e-8 underflows
  const b = await tensor(x, [6], { dtype: 'bfloat16' });
  const bb = await b.data();
  t.equal(bb[1], 1, 'bfloat16 has 8 significant bits: 1 + 2^-8 rounds (to even) to 1');
  t.equal(bb[0], 1);
  t.equal(bb[5], -3.140625);
  const back = await b.to({ dtype: 'float64' });
  t.equal(back.dtype, 'float64');
  t.ok((await back.data()) instanceof Float64Array);
  const u = await (await tensor(new Float32Array([1.9, 255.2, 3]), [3])).to({ dtype: 'uint8' });
  t.same(Array.from(await u.data()), [1, 255, 3]);
  for (const z of [h, b, back, u]) z.dispose();
});

t.test('zeros and seeded randn', async (t) => {
  const z = await zeros([3, 4]);
  t.same(Array.from(await z.data()), new Array(12).fill(0));
  const r1 = await randn([1000], { seed: 42 });
  const r2 = await randn([1000], { seed: 42 });
  const r3 = await randn([1000], { seed: 43 });
  const a1 = await r1.data();
  const a2 = await r2.data();
  const a3 = await r3.data();
  t.same(Array.from(a1), Array.from(a2), 'same seed, same values');
  t.not(a1[0], a3[0], 'other seed, other values');
  const mean = Array.from(a1).reduce((s, v) => s + v, 0) / 1000;
  const variance = Array.from(a1).reduce((s, v) => s + (v - mean) ** 2, 0) / 1000;
  t.ok(Math.abs(mean) < 0.15 && Math.abs(variance - 1) < 0.15, `N(0,1): mean ${mean}, var ${variance}`);
  const rb = await randn([8], { seed: 42, dtype: 'bfloat16' });
  t.equal(rb.dtype, 'bfloat16');
  await t.rejects(randn([2], { seed: -1 }), { code: 'BIA_INVALID_ARGUMENT' });
  await t.rejects(randn([2], { seed: 1.5 }), { code: 'BIA_INVALID_ARGUMENT' });
  for (const x of [z, r1, r2, r3, rb]) x.dispose();
});

t.test('dispose, Symbol.dispose and use-after-dispose', async (t) => {
  const x = await zeros([2, 2]);
  t.equal(x.disposed, false);
  x.dispose();
  x.dispose(); // idempotent
  t.equal(x.disposed, true);
  t.equal(String(x), 'Tensor(disposed)');
  t.throws(() => x.shape, { code: 'BIA_DISPOSED' });
  t.throws(() => x.dtype, { code: 'BIA_DISPOSED' });
  await t.rejects(x.data(), { code: 'BIA_DISPOSED' });
  await t.rejects(x.to({ dtype: 'float64' }), { code: 'BIA_DISPOSED' });

  const before = liveTensors();
  {
    using y = await zeros([4]);
    t.equal(liveTensors(), before + 1);
    t.equal(y.disposed, false);
  }
  t.equal(liveTensors(), before, 'using released it at the end of the block');

  // The native handle checks too: a disposed handle passed straight to the addon.
  const raw = loadAddon().tensorFromArray(new Float32Array([1]), [1]);
  raw.dispose();
  t.throws(() => raw.shape, { code: 'BIA_DISPOSED' });
  await t.rejects(raw.read(), { code: 'BIA_DISPOSED' });
  await t.rejects(loadAddon().matmul(raw, raw), { code: 'BIA_DISPOSED' });
});

t.test('the finalizer releases forgotten tensors', async (t) => {
  gc();
  const before = liveTensors();
  for (let i = 0; i < 200; i++) await zeros([256]);
  t.ok(liveTensors() >= before, 'alive until collected');
  for (let i = 0; i < 5 && liveTensors() > before; i++) {
    gc();
    await new Promise((r) => setImmediate(r));
  }
  t.equal(liveTensors(), before, 'all 200 collected by the GC without dispose()');
});

t.test('tensor memory is reported to V8 as external memory', async (t) => {
  gc();
  const base = externalMemory();
  const big = await zeros([16, 1024, 1024]); // 64 MiB
  const during = externalMemory();
  t.ok(during - base >= 63 * 2 ** 20, `external grew by ${((during - base) / 2 ** 20).toFixed(1)} MiB`);
  big.dispose();
  const after = externalMemory();
  t.ok(during - after >= 63 * 2 ** 20, 'and shrank on dispose');
});

t.test('bad input: clear errors with codes', async (t) => {
  await t.rejects(tensor(new Float32Array(3), [2, 2]), { code: 'BIA_INVALID_ARGUMENT', message: /3 elements but shape \[2,2\] needs 4/ });
  await t.rejects(tensor([1, 2] as unknown as Float32Array, [2]), { code: 'BIA_INVALID_ARGUMENT', message: /Float32Array/ });
  await t.rejects(tensor(new Float32Array(2), [2, -1]), { code: 'BIA_INVALID_ARGUMENT' });
  await t.rejects(tensor(new Float32Array(2), [2], { dtype: 'float8' as never }), { code: 'BIA_INVALID_ARGUMENT' });
  await t.rejects(tensor(new Float32Array(2), [2], { device: 'gpu' as never }), { code: 'BIA_INVALID_ARGUMENT' });
  t.throws(() => tensorSync(new Float32Array(2), [3]), { code: 'BIA_INVALID_ARGUMENT' });
  t.throws(() => new Tensor({} as never), BiaError);
  const x = await zeros([1]);
  t.throws(() => new Tensor(x.handle), { code: 'BIA_INVALID_ARGUMENT' }, 'a handle cannot get two owners');
  x.dispose();
});

t.test('cuda on a CPU-only build is a clear error', { skip: runtimeInfo().cuda.available ? 'CUDA is available here' : false }, async (t) => {
  for (const device of ['cuda', 'cuda:0', 'cuda:3'] as const) {
    await t.rejects(tensor(new Float32Array(2), [2], { device }), { code: 'BIA_DEVICE_UNAVAILABLE', message: /CPU-only LibTorch|no CUDA GPU/ });
    await t.rejects(zeros([2], { device }), { code: 'BIA_DEVICE_UNAVAILABLE' });
  }
  const x = await zeros([2]);
  await t.rejects(x.to({ device: 'cuda' }), { code: 'BIA_DEVICE_UNAVAILABLE' });
  t.throws(() => tensorSync(new Float32Array(1), [1], { device: 'cuda' }), { code: 'BIA_DEVICE_UNAVAILABLE' });
  x.dispose();
});

t.test('cuda round trip', { skip: runtimeInfo().cuda.available ? false : 'no CUDA device' }, async (t) => {
  const x = await tensor(new Float32Array([1, 2, 3]), [3], { device: 'cuda' });
  t.equal(x.device, 'cuda:0');
  for (const dtype of ['float16', 'bfloat16'] as const) {
    const y = await x.to({ dtype });
    t.same(Array.from(await y.data()), [1, 2, 3]);
    y.dispose();
  }
  const c = await x.to({ device: 'cpu' });
  t.same(Array.from(await c.data()), [1, 2, 3]);
  await t.rejects(tensor(new Float32Array(1), [1], { device: 'cuda:999' }), { code: 'BIA_DEVICE_UNAVAILABLE' });
  x.dispose();
  c.dispose();
});

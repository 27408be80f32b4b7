// One C++ -> JS error mapping: every failure is a JS error with a code; nothing crashes the
// process, even when the addon is called directly with nonsense (bypassing TS validation).
import t from 'tap';
import { BiaError, loadAddon, matmul, tensor, zeros } from '../ts/index';

const addon = loadAddon();

t.test('out of memory', async (t) => {
  const e = await zeros([1e12]).then(() => null, (err: unknown) => err as BiaError);
  t.ok(e instanceof BiaError);
  t.equal(e!.code, 'BIA_OUT_OF_MEMORY');
  t.match(e!.message, /allocate/);
  t.notMatch(e!.message, /Exception raised from|frame #/);
  // the process is fine afterwards
  const x = await zeros([2]);
  t.same(Array.from(await x.data()), [0, 0]);
  x.dispose();
});

t.test('LibTorch errors arrive without the C++ backtrace', async (t) => {
  const a = await tensor(new Float32Array(4), [2, 2]);
  const b = await tensor(new Float64Array(4), [2, 2]);
  const e = await matmul(a, b).then(() => null, (err: unknown) => err as BiaError);
  t.ok(e instanceof BiaError);
  t.equal(e!.code, 'BIA_TORCH_ERROR');
  t.equal(e!.origin, 'c10::Error');
  t.match(e!.message, /dtype|scalar type|Float|Double/);
  t.notMatch(e!.message, /Exception raised from|frame #\d|\.cpp:\d+ \(most recent call first\)/);
  a.dispose();
  b.dispose();
});

t.test('invalid arguments straight to the addon never crash', async (t) => {
  const junk: unknown[] = [undefined, null, 0, -1, NaN, Infinity, 'x', {}, [], [-1], [1.5], [1e300], new Float32Array(1), () => 0, Symbol('s')];
  let calls = 0;
  const expectCoded = async (f: () => unknown) => {
    calls++;
    try {
      await f();
    } catch (e) {
      const code = (e as { code?: string }).code;
      if (!code?.startsWith('BIA_') && !(e instanceof TypeError)) t.fail(`uncoded error: ${String(e)}`);
    }
  };
  for (const j of junk) {
    await expectCoded(() => addon.tensorFromArray(j as never, j as never));
    await expectCoded(() => addon.tensorFromArray(new Float32Array(2), [2], j as never, j as never));
    await expectCoded(() => addon.tensorFromArrayAsync(new Float32Array(2), j as never, undefined, undefined, j as never));
    await expectCoded(() => addon.zeros(j as never, undefined, undefined));
    await expectCoded(() => addon.randn([2], undefined, undefined, j as never));
    await expectCoded(() => addon.matmul(j as never, j as never));
    await expectCoded(() => addon.benchmark(j as never));
    await expectCoded(() => addon.benchmark({ op: 'sgemm', m: j } as never));
    await expectCoded(() => addon.benchmark({ op: 'sgemm', m: 8 }, { onProgress: j, cancel: j } as never));
    await expectCoded(() => addon.setNumThreads(j as never));
    await expectCoded(() => new (addon.Tensor as unknown as new (x: unknown) => unknown)(j));
  }
  t.ok(calls > 100, `${calls} bad calls, process alive`);
  t.throws(() => addon.tensorFromArray(new Float32Array(2), [2], 'float32', 'cuda:x'), { code: 'BIA_INVALID_ARGUMENT' });
  t.throws(() => addon.setNumThreads(0), { code: 'BIA_INVALID_ARGUMENT' });
  await t.rejects(addon.benchmark({ op: 'conv2d', kernel: 4 }), { code: 'BIA_INVALID_ARGUMENT', message: /odd/ });
  await t.rejects(addon.zeros([2], 'float32', 'cpu', { cancel: {} } as never), { code: 'BIA_INVALID_ARGUMENT', message: /CancelToken/ });
  const small = addon.tensorFromArray(new Float32Array(5000), [5000]);
  t.throws(() => small.itemsSync(), { code: 'BIA_INVALID_ARGUMENT', message: /read\(\)/ });
  small.dispose();
});

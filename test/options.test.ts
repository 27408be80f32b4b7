// Pure TS: option validation and error mapping (no addon needed).
import t from 'tap';
import { BiaError, ERROR_CODES } from '../ts/errors';
import { fromNative } from '../ts/errors';
import { checkDevice, checkDtype, checkInt, checkShape, COMPUTE_DTYPES } from '../ts/options';

t.test('devices', async (t) => {
  for (const d of ['cpu', 'cuda', 'cuda:0', 'cuda:12']) t.equal(checkDevice(d), d);
  for (const d of ['gpu', 'CUDA', 'cuda:', 'cuda:-1', 'cuda:a', '', 3, null, undefined]) {
    t.throws(() => checkDevice(d), { code: 'BIA_INVALID_ARGUMENT' }, `rejects ${JSON.stringify(d)}`);
  }
});

t.test('dtypes', async (t) => {
  for (const d of COMPUTE_DTYPES) t.equal(checkDtype(d, 'dtype', COMPUTE_DTYPES), d);
  t.throws(() => checkDtype('float8'), { code: 'BIA_INVALID_ARGUMENT', message: /float32, float16, bfloat16/ });
  t.throws(() => checkDtype('float64', 'dtype', COMPUTE_DTYPES), { code: 'BIA_INVALID_ARGUMENT' });
});

t.test('shapes and integers', async (t) => {
  t.same(checkShape([1, 3, 0]), [1, 3, 0]);
  t.throws(() => checkShape([1, -1]), { message: /shape\[1\]/ });
  t.throws(() => checkShape([1.5]), { code: 'BIA_INVALID_ARGUMENT' });
  t.throws(() => checkShape('1,2'), { code: 'BIA_INVALID_ARGUMENT' });
  t.throws(() => checkShape(new Array(17).fill(1)), { code: 'BIA_INVALID_ARGUMENT' });
  t.throws(() => checkShape([NaN]), { code: 'BIA_INVALID_ARGUMENT' });
  t.equal(checkInt(3, 'n', 1, 5), 3);
  t.throws(() => checkInt(6, 'n', 1, 5), { message: /n must be an integer in \[1, 5\]/ });
});

t.test('errors from the native layer keep their code', async (t) => {
  const e = Object.assign(new Error('boom'), { code: 'BIA_OUT_OF_MEMORY', origin: 'c10::Error' });
  const b = fromNative(e);
  t.ok(b instanceof BiaError);
  t.equal(b.code, 'BIA_OUT_OF_MEMORY');
  t.equal(b.origin, 'c10::Error');
  t.equal(fromNative(new Error('x')).code, 'BIA_NATIVE_ERROR');
  t.equal(fromNative('str').code, 'BIA_NATIVE_ERROR');
  t.equal(new BiaError('BIA_ABORTED', 'a').name, 'AbortError');
  t.ok(ERROR_CODES.includes('BIA_DISPOSED'));
});

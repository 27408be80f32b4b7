// The fuzzer in the suite: a few thousand seeded mutations of valid torch/safetensors/npy/ONNX/PNG files,
// each answered by a worker process with a result or a BIA_* error, within the time and memory limits.
// A longer run for nightly use: npm run fuzz -- --cases 10000
import t from 'tap';
import { fuzz, formatFuzzReport, makeCase, seedCorpus, type Seed } from './fuzz/fuzz';

t.test('the cases are a pure function of (seed, case) and really mutate', async (t) => {
  const corpus = await seedCorpus();
  t.same(new Set(corpus.map((s) => s.format)), new Set(['torch', 'safetensors', 'npy', 'onnx', 'png']));
  let changed = 0;
  for (let k = 0; k < 200; k++) {
    const a = makeCase(corpus, 7, k);
    t.ok(a.bytes.equals(makeCase(corpus, 7, k).bytes), `case ${k} replays`);
    if (!a.bytes.equals(a.seed.bytes)) changed++;
  }
  t.ok(changed >= 190, `${changed} of 200 cases differ from their seed file`);
  t.notOk(makeCase(corpus, 7, 3).bytes.equals(makeCase(corpus, 8, 3).bytes), 'another seed, other bytes');
});

t.test('the harness catches crashes, hangs, memory overruns and foreign errors, and keeps the input', async (t) => {
  const probe = (how: string): Seed => ({ format: 'probe', name: how, bytes: Buffer.from(how) });
  const r = await fuzz({ cases: 5, seed: 1, workers: 1, timeoutMs: 1500, memoryMiB: 256, corpus: ['ok', 'crash', 'hang', 'grow', 'throw'].map(probe) });
  t.equal(r.ok, 1);
  t.same(
    r.failures.map((f) => [f.from, f.kind]),
    [
      ['crash', 'crash'],
      ['hang', 'hang'],
      ['grow', 'memory'],
      ['throw', 'not-bia'],
    ],
  );
  t.ok(r.failures.every((f) => f.file !== undefined));
});

t.test('3,000 mutated files: no crash, no hang, no limit exceeded, only BIA_* errors', async (t) => {
  const r = await fuzz({ cases: 3000, seed: 20261207, workers: 2, timeoutMs: 5000, memoryMiB: 512 });
  t.comment(formatFuzzReport(r));
  t.same(r.failures, [], 'no failures');
  t.ok(r.cases - r.ok > 0 && r.ok > 0, 'some cases load, most are refused');
  for (const f of ['torch', 'safetensors', 'npy', 'onnx', 'png']) t.ok(r.formats[f].ok + r.formats[f].refused > 0, `${f} cases ran`);
});

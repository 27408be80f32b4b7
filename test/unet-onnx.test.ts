// The UNet exported to ONNX by our own code (bench/reference/unet-onnx.ts) computes what the addon's
// forward computes: the same parameter names and shapes, and eps and h through onnxruntime-node within
// 1e-4 (max |Δ| / max |addon|) of the addon's on the tiny preset, on a config with attention at two
// levels and two res blocks per level, and on one without resampling convs; bad weights and options are
// refused; the `unet` bench suite times ONNX Runtime beside the addon.
import t from 'tap';
import { createDiffusion, randn, type UNetConfig } from '../ts/index';
import { markdownRun } from '../bench/harness/cli';
import { mergeProcessRuns, runBench } from '../bench/harness/run';
import type { Measurement, SuiteResult } from '../bench/harness/types';
import {
  createUNetSession,
  loadOnnxRuntime,
  maxRelativeError,
  runUNetSession,
  unetParameterShapes,
  unetToOnnx,
  unetWeights,
  type OrtModule,
  type UNetWeight,
} from '../bench/reference/unet-onnx';

const TOLERANCE = 1e-4;
const loaded = loadOnnxRuntime();
const ort: OrtModule | null = loaded.ort;
const NO_ORT: string | false = loaded.ort ? false : `onnxruntime-node does not load: ${(loaded as { error: string }).error}`;


type Cfg = 'tiny' | (Partial<UNetConfig> & { preset?: 'tiny' });
const CASES: { name: string; config: Cfg; resolution?: number }[] = [
  { name: 'tiny preset (attention at 8², 1 res block)', config: 'tiny' },
  // attention at two levels (16² and 4²), two res blocks per level, three levels
  { name: 'attention at 16² and 4², 2 res blocks, 3 levels', config: { preset: 'tiny', chMult: [1, 2, 2], numResBlocks: 2, attnResolutions: [16, 4] } },
  // no resampling convs (average pool down, bare nearest up), 1 → 2 channels, run at 32² (attention stays at the config's 8² level, now 16²)
  { name: 'no resamp convs, 1 → 2 channels, at 32²', config: { preset: 'tiny', inChannels: 1, outChannels: 2, resampWithConv: false }, resolution: 32 },
];

t.test('the exporter expects exactly the model\'s parameter names and shapes', async (t) => {
  for (const c of CASES) {
    const m = await createDiffusion(c.config, { seed: 1 });
    try {
      const sd = m.stateDict();
      const want = unetParameterShapes(m.config);
      t.same([...want.keys()].sort(), [...sd.keys()].sort(), `${c.name}: the same ${sd.size} names`);
      t.ok([...want].every(([k, s]) => sd.get(k)!.shape.join() === s.join()), `${c.name}: the same shapes`);
      for (const v of sd.values()) v.dispose();
    } finally {
      m.dispose();
    }
  }
});

t.test('onnxruntime on the exported graph agrees with the addon\'s forward', { skip: NO_ORT }, async (t) => {
  let worst = 0;
  for (const c of CASES) {
    const m = await createDiffusion(c.config, { seed: 7 });
    try {
      const R = c.resolution ?? m.config.resolution;
      const model = unetToOnnx(m.config, await unetWeights(m), { resolution: R });
      const session = await createUNetSession(ort!, model, 1);
      try {
        // batch 3 with three timesteps, then batch 1 in the same session (the batch is symbolic)
        for (const ts of [[0, 500, 999], [250]]) {
          const dims = [ts.length, m.config.inChannels, R, R];
          const x = await randn(dims, { seed: 11 + ts.length });
          const ours = await m.forward(x, ts);
          const got = await runUNetSession(ort!, session, (await x.data()) as Float32Array, dims, ts);
          t.same(got.eps.dims, ours.eps.shape, `${c.name}: eps shape`);
          t.same(got.h.dims, ours.h.shape, `${c.name}: h shape`);
          const eEps = maxRelativeError(got.eps.data as Float32Array, await ours.eps.data());
          const eH = maxRelativeError(got.h.data as Float32Array, await ours.h.data());
          t.comment(`${c.name}, t = [${ts.join(', ')}]: max relative error eps ${eEps.toExponential(2)}, h ${eH.toExponential(2)}`);
          t.ok(eEps < TOLERANCE, `${c.name}, t = [${ts.join(', ')}]: eps within ${TOLERANCE} (${eEps.toExponential(2)})`);
          t.ok(eH < TOLERANCE, `${c.name}, t = [${ts.join(', ')}]: h within ${TOLERANCE} (${eH.toExponential(2)})`);
          worst = Math.max(worst, eEps, eH);
          if (ts.length === 3) {
            // the check can fail: one timestep off gives an error far above the tolerance
            const off = await runUNetSession(ort!, session, (await x.data()) as Float32Array, dims, ts.map((v) => (v === 999 ? 998 : v + 1)));
            const eOff = maxRelativeError(off.eps.data as Float32Array, await ours.eps.data());
            t.ok(eOff > 10 * TOLERANCE, `${c.name}: timesteps off by one are caught (${eOff.toExponential(2)})`);
          }
          ours.eps.dispose();
          ours.h.dispose();
          x.dispose();
        }
      } finally {
        await session.release();
      }
    } finally {
      m.dispose();
    }
  }
  t.comment(`worst max relative error over the configs: ${worst.toExponential(2)}`);
});

t.test('bad weights, configs and options are refused with clear errors', async (t) => {
  const m = await createDiffusion('tiny', { seed: 1 });
  const w = await unetWeights(m);
  const c = m.config;
  m.dispose();
  const code = (code: string, message: RegExp) => ({ name: 'BiaError', code, message });
  const without = new Map(w);
  without.delete('mid.attn_1.q.weight');
  t.throws(() => unetToOnnx(c, without), code('BIA_CHECKPOINT_MISMATCH', /missing mid\.attn_1\.q\.weight/));
  const extra = new Map(w).set('down.9.block.0.conv1.weight', { dims: [1], data: new Float32Array(1) });
  t.throws(() => unetToOnnx(c, extra), code('BIA_CHECKPOINT_MISMATCH', /unexpected down\.9\.block\.0\.conv1\.weight/));
  const misshaped = new Map(w).set('conv_in.weight', { dims: [32, 3, 1, 9], data: w.get('conv_in.weight')!.data });
  t.throws(() => unetToOnnx(c, misshaped), code('BIA_CHECKPOINT_MISMATCH', /'conv_in\.weight' has shape \[32, 3, 1, 9\], the config needs \[32, 3, 3, 3\]/));
  const short = new Map(w).set('conv_in.bias', { dims: [32], data: new Float32Array(31) });
  t.throws(() => unetToOnnx(c, short), code('BIA_INVALID_ARGUMENT', /'conv_in\.bias' has 31 values/));
  const f64 = new Map(w).set('conv_in.bias', { dims: [32], data: new Float64Array(32) as unknown as Float32Array });
  t.throws(() => unetToOnnx(c, f64), code('BIA_INVALID_ARGUMENT', /must hold a Float32Array/));
  t.throws(() => unetToOnnx({ ...c, numResBlocks: 2 }, w), code('BIA_CHECKPOINT_MISMATCH', /missing down\.0\.block\.1/), 'weights of another config');
  t.throws(() => unetToOnnx({ ...c, ch: 48 }, w), code('BIA_INVALID_ARGUMENT', /multiple of 32/));
  t.throws(() => unetToOnnx({ ...c, resolution: 17 }, w), code('BIA_INVALID_ARGUMENT', /not divisible/));
  t.throws(() => unetToOnnx(c, w, { opset: 12 }), code('BIA_INVALID_ARGUMENT', /opset must be an integer in \[13, 21\]/));
  t.throws(() => unetToOnnx(c, w, { resolution: 31 }), code('BIA_INVALID_ARGUMENT', /resolution must be a positive multiple of 2/));
  t.throws(() => unetToOnnx(c, w, { batch: 0 }), code('BIA_INVALID_ARGUMENT', /batch must be a positive integer or null/));
  t.throws(() => unetToOnnx(c, null as unknown as Map<string, UNetWeight>), code('BIA_INVALID_ARGUMENT', /weights must be a Map/));
  t.ok(unetToOnnx(c, Object.fromEntries(w), { opset: 21, batch: 2 }).length > 4 * 100_000, 'a record of weights, opset 21, a fixed batch');
  if (ort) {
    const session = await createUNetSession(ort, unetToOnnx(c, w, { batch: 2 }), 1);
    await t.rejects(runUNetSession(ort, session, new Float32Array(2 * 3 * 16 * 16), [2, 3, 16, 16], [1, 2, 3]), code('BIA_INVALID_ARGUMENT', /t has 3 entries for a batch of 2/));
    await t.rejects(runUNetSession(ort, session, new Float32Array(5), [2, 3, 16, 16], 1), code('BIA_INVALID_ARGUMENT', /x has 5 values/));
    await session.release();
  }
});

t.test('the unet suite times ONNX Runtime beside the addon (tiny, smoke)', { skip: NO_ORT }, async (t) => {
  const logs: string[] = [];
  const run = await runBench({ suites: ['unet'], config: 'tiny', device: 'cpu', dtype: 'float32', autocast: null, warmup: 1, trials: 2, isolate: false, python: false, smoke: true, threads: 1 }, (m) => logs.push(m));
  const s = run.suites[0];
  t.ok(s.ok, s.error?.message ?? 'the suite ran');
  const fwd = s.measurements.filter((m) => m.case === 'forward');
  t.same(fwd.map((m) => m.params.batch), [1, 4]);
  for (const m of fwd) {
    const r = m.references?.[0];
    t.equal(r?.name, 'onnxruntime', `batch ${m.params.batch}: onnxruntime measured`);
    t.ok(r && r.samples.length >= 2 && r.median > 0, 'its samples');
    t.ok(r && Math.abs(r.ratio - m.median / r.median) < 1e-12 && Math.abs(r.speedup * r.ratio - 1) < 1e-9, 'ratio = addon / onnxruntime, speedup its inverse');
    t.comment(`tiny, batch ${m.params.batch}, 1 thread: addon ${(m.median * 1e3).toFixed(2)} ms, onnxruntime ${(r!.median * 1e3).toFixed(2)} ms, addon/onnxruntime ${r!.ratio.toFixed(2)} (smoke sampling; the machine may be busy)`);
  }
  t.notOk(s.measurements.find((m) => m.case === 'train-step')?.references, 'no ONNX Runtime reference for the training step');
  const agreement = s.notes.onnxruntimeAgreement as { maxRelativeError: number };
  t.ok(agreement.maxRelativeError < TOLERANCE, `the suite checked the agreement first (${agreement.maxRelativeError.toExponential(2)})`);
  t.match(s.notes.onnxruntime, { opset: 17, session: { intraOpNumThreads: 1, interOpNumThreads: 1, graphOptimizationLevel: 'all' } });
  t.match(markdownRun(run), /addon\/onnxruntime \d+\.\d\d/);
  t.match(logs.join('\n'), /onnxruntime .* \(addon\/onnxruntime \d/);
});

t.test('--processes: a further reference\'s samples are merged and its ratio taken against the merged median', async (t) => {
  const st = (samples: number[]) => ({ samples, median: [...samples].sort((a, b) => a - b)[samples.length >> 1], min: Math.min(...samples), max: Math.max(...samples), spread: 0 });
  const part = (addon: number[], ort: number[]): SuiteResult => {
    const m: Measurement = { suite: 'unet', case: 'forward', params: { batch: 1 }, unit: 's', warmup: 1, ...st(addon) };
    const r = st(ort);
    m.references = [{ name: 'onnxruntime', ...r, speedup: r.median / m.median, ratio: m.median / r.median }];
    return { suite: 'unet', ok: true, seconds: 1, measurements: [m], memory: { peakRssBytes: 1, rssScope: 'reset' }, notes: {} };
  };
  const merged = mergeProcessRuns([part([1, 1, 1], [2, 2, 2]), part([3, 3, 3], [4, 4, 4])]).measurements[0];
  const r = merged.references![0];
  t.same(r.samples, [2, 2, 2, 4, 4, 4]);
  t.equal(merged.median, 2);
  t.equal(r.median, 3);
  t.equal(r.ratio, 2 / 3);
  t.equal(r.speedup, 3 / 2);
});

/**
 * Suite unet: the DDPM UNet's forward pass over a batch sweep, and a training step (forward +
 * backward + AdamW) — through the addon and through Python eager (bench/reference/ddpm.py) in the
 * same run — with effective GFLOP/s against the measured matmul peak, and (where the addon has the
 * op profiler) where the forward pass's time goes, op by op. On the CPU with float32 weights the
 * forward is also run by ONNX Runtime (onnxruntime-node, where it loads; float32) on the same model
 * exported by bench/reference/unet-onnx.ts, as a second reference of each forward case — also when
 * the addon runs under bfloat16 autocast (the agreement bound is then bfloat16's).
 */
import { profileOps, randn, type DiffusionModel, type UNetConfig } from '../../ts/index';
import { createTrainer } from '../../ts/train/index';
import { sampling } from '../harness/run';
import { calibrate, steady } from '../harness/stats';
import type { BenchContext, PythonRef, Suite } from '../harness/types';
import { createUNetSession, loadOnnxRuntime, maxRelativeError, unetToOnnx, unetWeights, UNET_ONNX_DEFAULT_OPSET, type OrtModule, type OrtSession, type OrtTensor } from '../reference/unet-onnx';

export interface UNetPassFlops {
  /** conv_in, the down path and the middle block (up to h). */
  encoder: number;
  /** The up path (with its skip concatenations), norm_out and conv_out, from h. */
  decoder: number;
}

/**
 * Convolution and attention FLOPs (2·MACs) of one UNet pass per image at `resolution`, split at h.
 * Attention blocks sit where the *config's* resolution puts them (the model is built for
 * config.resolution and is fully convolutional), while the spatial sizes follow `resolution`; so the
 * tiny preset (config 16²) run on 32² images has its attention at 16² feature maps, 4× the pixels.
 * Time embedding and normalisation are not counted (< 0.1 %).
 */
export function unetPassFlops(c: UNetConfig, resolution = c.resolution): UNetPassFlops {
  let f = 0;
  const conv = (cin: number, cout: number, k: number, side: number) => (f += 2 * cin * cout * k * k * side * side);
  const attn = (ch: number, side: number) => {
    for (let i = 0; i < 4; i++) conv(ch, ch, 1, side); // q, k, v, proj_out
    f += 2 * 2 * ch * (side * side) ** 2; // q·k and w·v
  };
  const res = (cin: number, cout: number, side: number) => {
    conv(cin, cout, 3, side);
    conv(cout, cout, 3, side);
    if (cin !== cout) conv(cin, cout, 1, side);
  };
  const mult = [1, ...c.chMult];
  const levels = c.chMult.length;
  let side = resolution;
  let cfgSide = c.resolution;
  let blockIn = c.ch;
  conv(c.inChannels, c.ch, 3, side);
  const skips: number[] = [c.ch];
  for (let L = 0; L < levels; L++) {
    blockIn = c.ch * mult[L];
    for (let i = 0; i < c.numResBlocks; i++) {
      res(blockIn, c.ch * c.chMult[L], side);
      blockIn = c.ch * c.chMult[L];
      if (c.attnResolutions.includes(cfgSide)) attn(blockIn, side);
      skips.push(blockIn);
    }
    if (L !== levels - 1) {
      conv(blockIn, blockIn, 3, side / 2); // stride-2 downsample: output side / 2
      side /= 2;
      cfgSide /= 2;
      skips.push(blockIn);
    }
  }
  res(blockIn, blockIn, side);
  attn(blockIn, side);
  res(blockIn, blockIn, side);
  const encoder = f;
  f = 0;
  for (let L = levels - 1; L >= 0; L--) {
    for (let i = 0; i <= c.numResBlocks; i++) {
      const skip = skips.pop()!;
      res(blockIn + skip, c.ch * c.chMult[L], side);
      blockIn = c.ch * c.chMult[L];
      if (c.attnResolutions.includes(cfgSide)) attn(blockIn, side);
    }
    if (L !== 0) {
      side *= 2;
      cfgSide *= 2;
      conv(blockIn, blockIn, 3, side);
    }
  }
  conv(blockIn, c.outChannels, 3, side);
  return { encoder, decoder: f };
}

/** FLOPs of one whole UNet forward per image (encoder + decoder). */
export function unetFlops(c: UNetConfig, resolution = c.resolution): number {
  const p = unetPassFlops(c, resolution);
  return p.encoder + p.decoder;
}



/** The UNet config as the Python reference takes it. */
export function referenceConfig(c: UNetConfig): Record<string, unknown> {
  return { ...c, hShape: undefined };
}

/** Most warm-up calls of the ONNX Runtime reference after the first (as the harness's own cases). */
const ORT_MAX_WARMUP_CALLS = 50;
/** The ONNX Runtime forward must agree with the addon's this closely (max |Δ| / max |addon|) to be timed. */
const ORT_AGREEMENT = 1e-3;
/** The same under CPU bfloat16 autocast (the addon in bfloat16 against ONNX Runtime in float32; measured 0.8–1.2e-2). */
const ORT_AGREEMENT_BF16 = 3e-2;

/** ONNX Runtime's session over the exported UNet, for the forward cases of one suite run. */
interface OnnxReference {
  /** Seconds per call, one per sample: the first call apart, warm-up until steady, calibrated samples, as the harness times the addon. */
  time(x: Float32Array, dims: number[], t: number): Promise<number[]>;
  /** eps of one run (for the agreement check). */
  eps(x: Float32Array, dims: number[], t: number): Promise<Float32Array>;
  close(): Promise<void>;
}

function feeds(ort: OrtModule, x: Float32Array, dims: number[], t: number): Record<string, OrtTensor> {
  return { x: new ort.Tensor('float32', x, dims), t: new ort.Tensor('float32', new Float32Array(dims[0]).fill(t), [dims[0]]) };
}

/**
 * The UNet exported to ONNX and opened in ONNX Runtime with the bench's threads (CPU, float32 only;
 * null, with the reason logged and noted, elsewhere or when onnxruntime-node does not load).
 */
async function onnxReference(ctx: BenchContext, diffusion: DiffusionModel): Promise<OnnxReference | null> {
  const { device, dtype, autocast, threads } = ctx.options;
  const skip = (why: string) => {
    ctx.log(`no ONNX Runtime reference: ${why}`);
    ctx.note('onnxruntime', { skipped: why });
    return null;
  };
  if (device !== 'cpu' || dtype !== 'float32' || (autocast && autocast !== 'bfloat16')) return skip('it runs on the CPU with float32 weights only');
  const loaded = loadOnnxRuntime();
  if (!loaded.ort) return skip(`onnxruntime-node does not load (${loaded.error})`);
  const ort = loaded.ort;
  let t0 = performance.now();
  const model = unetToOnnx(diffusion.config, await unetWeights(diffusion), { opset: UNET_ONNX_DEFAULT_OPSET });
  const exportSeconds = (performance.now() - t0) / 1000;
  t0 = performance.now();
  const session: OrtSession = await createUNetSession(ort, model, threads);
  const sessionSeconds = (performance.now() - t0) / 1000;
  ctx.note('onnxruntime', {
    version: loaded.version, opset: UNET_ONNX_DEFAULT_OPSET, modelBytes: model.length, exportSeconds, sessionSeconds,
    session: { executionProviders: ['cpu'], intraOpNumThreads: threads, interOpNumThreads: 1, executionMode: 'sequential', graphOptimizationLevel: 'all' },
  });
  ctx.log(`ONNX Runtime ${loaded.version} reference: the UNet exported (opset ${UNET_ONNX_DEFAULT_OPSET}, ${(model.length / 2 ** 20).toFixed(1)} MiB) in ${exportSeconds.toFixed(2)} s, session in ${sessionSeconds.toFixed(2)} s`);
  const d = sampling(ctx.options);
  let closed = false;
  return {
    async eps(x, dims, t) {
      const r = await session.run(feeds(ort, x, dims, t));
      return r.eps.data as Float32Array;
    },
    async time(x, dims, t) {
      const f = feeds(ort, x, dims, t);
      const sample = async (loops: number) => {
        const start = process.hrtime.bigint();
        for (let i = 0; i < loops; i++) await session.run(f);
        return Number(process.hrtime.bigint() - start) / 1e9 / loops;
      };
      const first = await sample(1);
      const warm: number[] = [];
      let spent = first;
      const warmupTime = Math.max(2 * d.minTime, d.caseTime / 2);
      while (warm.length + 1 < d.warmup || (!steady(warm) && spent < warmupTime && warm.length < ORT_MAX_WARMUP_CALLS)) {
        const s = await sample(1);
        warm.push(s);
        spent += s;
      }
      const estimate = warm.length ? Math.min(...warm.slice(-2)) : first;
      const plan = calibrate(estimate, { minTime: d.minTime, caseTime: d.caseTime, minSamples: d.trials, maxSamples: Math.max(d.trials, d.maxTrials) });
      const samples: number[] = [];
      for (let i = 0; i < plan.samples; i++) samples.push(await sample(plan.loops));
      return samples;
    },
    async close() {
      if (closed) return;
      closed = true;
      await session.release();
    },
  };
}


export const suite: Suite = {
  name: 'unet',
  description: 'UNet forward over the batch sweep, a training step (forward+backward+AdamW), op breakdown; Python eager and ONNX Runtime side by side',
  async run(ctx) {
    await ctx.withModels(async ({ diffusion }) => {
      const ref = await ctx.python('unet_ref.py');
      let onnx: OnnxReference | null = null;
      try {
        onnx = await onnxReference(ctx, diffusion);
      } catch (e) {
        ctx.log(`no ONNX Runtime reference: ${(e as Error).message}`);
        ctx.note('onnxruntime', { skipped: (e as Error).message });
      }
      try {
        await forwardSweep(ctx, diffusion, ref, onnx);
      } finally {
        await onnx?.close();
      }
      await trainStep(ctx, diffusion.config);
    });
  },
};

/** The forward over the batch sweep, with its references; the op breakdown at the largest batch. */
async function forwardSweep(ctx: BenchContext, diffusion: DiffusionModel, ref: PythonRef | null, onnxIn: OnnxReference | null): Promise<void> {
  const { device, dtype, autocast, trials, warmup } = ctx.options;
  let onnx = onnxIn;
  const config = diffusion.config;
  const channelsLast = device === 'cpu';
  const perImage = unetFlops(config);
  ctx.note('gflopPerImage', perImage / 1e9);
  const largest = Math.max(...ctx.batches);
  for (const batch of ctx.batches) {
    const dims = [batch, config.inChannels, config.resolution, config.resolution];
    const x = await randn(dims, { seed: 1, device, dtype });
    const forward = async () => {
      const r = await diffusion.forward(x, 500);
      r.eps.dispose();
      r.h.dispose();
    };
    try {
      const xs = onnx ? ((await x.data()) as Float32Array) : null;
      if (onnx && xs && batch === ctx.batches[0]) {
        // The reference is timed only where it computes what the addon computes.
        const r = await diffusion.forward(x, 500);
        const want = (await r.eps.data()) as Float32Array;
        r.eps.dispose();
        r.h.dispose();
        const err = maxRelativeError(await onnx.eps(xs, dims, 500), want);
        ctx.note('onnxruntimeAgreement', { batch, t: 500, maxRelativeError: err });
        ctx.log(`ONNX Runtime's eps vs the addon's (batch ${batch}, t 500): max relative error ${err.toExponential(2)}`);
        const bound = autocast ? ORT_AGREEMENT_BF16 : ORT_AGREEMENT;
        if (!(err <= bound)) {
          ctx.log(`ONNX Runtime reference dropped: its eps differs from the addon's by ${err.toExponential(2)} (> ${bound})`);
          await onnx.close();
          onnx = null;
        }
      }
      const ortRef = onnx;
      await ctx.measure('forward', {
        params: { batch, layout: channelsLast ? 'channels_last' : 'NCHW' },
        items: batch,
        flops: perImage * batch,
        reference: ref ? async () => (await ref.request<{ seconds: number[] }>({ config: referenceConfig(config), batch, channelsLast, warmup, iterations: trials, device, dtype, autocast })).seconds : undefined,
        references: ortRef && xs ? [{ name: 'onnxruntime', run: () => ortRef.time(xs, dims, 500) }] : undefined,
      }, forward);
      if (batch === largest) {
        // Where the forward's time goes: each top-level op timed (and synchronised on a GPU).
        const p = await profileOps(forward, { sync: true });
        ctx.note('forwardOps', { batch, wallSeconds: p.wallSeconds, totalSeconds: p.totalSeconds, ops: p.ops.slice(0, 20) });
        ctx.log(`where the forward's time goes (batch ${batch}): ${p.ops.slice(0, 6).map((o) => `${o.name} ${(100 * o.share).toFixed(1)}%`).join(', ')}`);
      }
    } finally {
      x.dispose();
    }
  }
}

/** A training step: forward + backward + AdamW at a small batch (float32 weights; ≈ 3× the forward's FLOPs). */
async function trainStep(ctx: BenchContext, c: UNetConfig): Promise<void> {
  const { device } = ctx.options;
  const ref = await ctx.python('unet_ref.py');
  const batch = Math.min(4, Math.max(...ctx.batches));
  const trainer = await createTrainer('diffusion', referenceConfig(c) as Partial<UNetConfig>, { device, seed: 3 });
  try {
    ctx.note('parameters', trainer.info.parameterCount);
    const images = await randn([batch, c.inChannels, c.resolution, c.resolution], { seed: 4, device });
    try {
      await ctx.measure('train-step', {
        params: { batch, precision: 'float32' },
        items: batch,
        flops: 3 * unetFlops(c) * batch,
        peakDtype: 'float32',
        reference: ref
          ? async () => (await ref.request<{ seconds: number[] }>({ mode: 'train', config: referenceConfig(c), batch, channelsLast: false, warmup: ctx.options.warmup, iterations: ctx.options.trials, device, dtype: 'float32' })).seconds
          : undefined,
      }, async () => {
        await trainer.step({ images });
      });
    } finally {
      images.dispose();
    }
  } finally {
    trainer.dispose();
  }
}

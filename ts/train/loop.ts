/**
 * The training loop: steps a Trainer on batches from a data source with learning-rate and ArcFace-margin
 * schedules, writes checkpoints periodically, at the end and when aborted, resumes from a
 * checkpoint, and shows a progress bar (smoothed loss, img/s, ETA) on a TTY.
 */
import { existsSync } from 'node:fs';
import { aborted, fromNative, invalidArgument } from '../errors';
import { checkFunction, checkInt, checkSignal } from '../options';
import { type Schedule } from './schedules';
import { type Batch, type StepResult, Trainer } from './trainer';

/**
 * Where batches come from. A function gets the step index (0-based), so a resumed run continues
 * with the batches it has not seen; an iterable is advanced past the steps already done.
 */
export type DataSource = ((step: number) => Batch | Promise<Batch>) | AsyncIterable<Batch> | Iterable<Batch>;

export interface TrainProgress {
  /** Steps done. */
  step: number;
  total: number;
  loss: number;
  /** Exponential moving average of the loss (bias-corrected, α 0.05). */
  smoothedLoss: number;
  parts: Record<string, number>;
  lr: number;
  arcfaceMargin: number;
  imagesPerSecond: number;
  /** Seconds to go at the recent pace. */
  etaSeconds: number;
}

export interface TrainHistoryEntry {
  /** Steps done after this one. */
  step: number;
  loss: number;
  parts: Record<string, number>;
  lr: number;
  arcfaceMargin: number;
  /** Wall time of the step including waiting for its batch. */
  seconds: number;
}

export interface TrainLoopOptions {
  trainer: Trainer;
  data: DataSource;
  /** Total optimiser steps to reach (a resumed run does the rest). */
  steps: number;
  schedule?: { lr?: Schedule; arcfaceMargin?: Schedule };
  /** Checkpoints: every `every` steps (default: only at the end and on abort), at the end, and on abort. */
  checkpoint?: { path: string; every?: number; metadata?: Record<string, string> };
  /** Continue from checkpoint.path when it exists (default true when a checkpoint is given). */
  resume?: boolean;
  /** Dispose each batch's tensors after its step (default false: the source owns them). */
  disposeBatches?: boolean;
  onProgress?: (p: TrainProgress) => void;
  signal?: AbortSignal;
  /**
   * true: a progress bar on stderr (the default on a TTY); false: quiet; a function: called with one
   * line every logEvery steps (default 50) instead.
   */
  log?: boolean | ((line: string) => void);
  logEvery?: number;
}

export interface TrainResult {
  history: TrainHistoryEntry[];
  /** Step the run started from (non-zero after a resume). */
  startStep: number;
  endStep: number;
  /** Steps at which checkpoints were written. */
  checkpoints: number[];
  seconds: number;
  imagesPerSecond: number;
  smoothedLoss: number;
}

function formatSeconds(s: number): string {
  if (!Number.isFinite(s)) return '?';
  const t = Math.round(s);
  const h = Math.floor(t / 3600);
  const m = Math.floor((t % 3600) / 60);
  const sec = t % 60;
  return h > 0 ? `${h}h${String(m).padStart(2, '0')}m` : m > 0 ? `${m}m${String(sec).padStart(2, '0')}s` : `${sec}s`;
}

/** One status line: bar, step, smoothed loss, the parts, lr, throughput, ETA. */
export function progressLine(p: TrainProgress, width = 24): string {
  const done = Math.min(width, Math.round((width * p.step) / Math.max(1, p.total)));
  const bar = '#'.repeat(done) + '.'.repeat(width - done);
  const parts = Object.entries(p.parts)
    .filter(([k]) => k !== 'gradNorm')
    .map(([k, v]) => `${k} ${v.toPrecision(3)}`)
    .join(' ');
  return `[${bar}] ${p.step}/${p.total} loss ${p.smoothedLoss.toPrecision(4)}${parts ? ` (${parts})` : ''} lr ${p.lr.toExponential(2)}` +
    `${p.arcfaceMargin ? ` m ${p.arcfaceMargin.toFixed(3)}` : ''} ${p.imagesPerSecond.toFixed(1)} img/s ETA ${formatSeconds(p.etaSeconds)}`;
}

function makeSource(data: DataSource, start: number): () => Promise<Batch> {
  if (typeof data === 'function') {
    let step = start;
    return async () => data(step++);
  }
  const asyncIt = (data as AsyncIterable<Batch>)[Symbol.asyncIterator];
  const syncIt = (data as Iterable<Batch>)[Symbol.iterator];
  if (typeof asyncIt !== 'function' && typeof syncIt !== 'function') throw invalidArgument('data must be a function (step) => batch, or an (async) iterable of batches');
  const it: AsyncIterator<Batch> | Iterator<Batch> = typeof asyncIt === 'function' ? asyncIt.call(data) : syncIt.call(data);
  let skipped = false;
  const next = async (): Promise<Batch> => {
    const r = await it.next();
    if (r.done) throw invalidArgument('the data source ran out of batches before the last step');
    return r.value;
  };
  return async () => {
    if (!skipped) {
      skipped = true;
      for (let i = 0; i < start; i++) await next();  // batches of the steps already done
    }
    return next();
  };
}

function disposeBatch(b: Batch): void {
  b.images.dispose();
  if (b.labels && !(b.labels instanceof Int32Array)) b.labels.dispose();
  if (b.targets && !(b.targets instanceof Float32Array)) b.targets.dispose();
}

/** Run the loop; resolves to the history of this call's steps. */
export async function train(opts: TrainLoopOptions): Promise<TrainResult> {
  if (typeof opts !== 'object' || opts === null) throw invalidArgument('train() takes an options object');
  const { trainer, data, signal } = opts;
  if (!(trainer instanceof Trainer)) throw invalidArgument('trainer must be a Trainer (createTrainer())');
  const steps = checkInt(opts.steps, 'steps', 1, 2 ** 40);
  checkSignal(signal);
  checkFunction(opts.onProgress, 'onProgress');
  checkFunction(opts.schedule?.lr, 'schedule.lr');
  checkFunction(opts.schedule?.arcfaceMargin, 'schedule.arcfaceMargin');
  const ck = opts.checkpoint;
  if (ck !== undefined) {
    if (typeof ck !== 'object' || typeof ck.path !== 'string' || ck.path.length === 0) throw invalidArgument('checkpoint.path must be a non-empty string');
    if (ck.every !== undefined) checkInt(ck.every, 'checkpoint.every', 1, 2 ** 40);
  }
  if (opts.resume && !ck) throw invalidArgument('resume needs checkpoint.path');
  if (opts.log !== undefined && typeof opts.log !== 'boolean' && typeof opts.log !== 'function') throw invalidArgument('log must be a boolean or a function');
  const logEvery = opts.logEvery === undefined ? 50 : checkInt(opts.logEvery, 'logEvery', 1, 2 ** 40);
  if (signal?.aborted) throw aborted(signal);

  if (ck && (opts.resume ?? true) && existsSync(ck.path)) await trainer.load(ck.path);
  const startStep = trainer.stepCount;
  const baseLr = trainer.info.options.lr as number;
  const lrOf = (s: number) => (opts.schedule?.lr ? opts.schedule.lr(s) : baseLr);
  const marginOf = (s: number) => (opts.schedule?.arcfaceMargin ? opts.schedule.arcfaceMargin(s) : 0);
  const bar = opts.log === true || (opts.log === undefined && process.stderr.isTTY === true);
  const logFn = typeof opts.log === 'function' ? opts.log : null;

  const history: TrainHistoryEntry[] = [];
  const checkpoints: number[] = [];
  const started = Date.now();
  let smoothed = 0;
  let weight = 0;
  let images = 0;
  let lastDraw = 0;
  const recent: number[] = [];  // wall seconds of the last steps
  const save = async () => {
    if (!ck) return;
    const step = await trainer.save(ck.path, { metadata: ck.metadata });
    checkpoints.push(step);
  };

  if (startStep >= steps) {
    return { history, startStep, endStep: startStep, checkpoints, seconds: 0, imagesPerSecond: 0, smoothedLoss: NaN };
  }
  const source = makeSource(data, startStep);
  const fetch = (): Promise<Batch> => {
    const p = source();
    p.catch(() => undefined);  // observed when awaited; no unhandled rejection meanwhile
    return p;
  };
  let pending = fetch();
  try {
    for (let s = startStep; s < steps; s++) {
      if (signal?.aborted) throw aborted(signal);
      const t0 = Date.now();
      const batch = await pending;
      const lr = lrOf(s);
      const arcfaceMargin = marginOf(s);
      if (!Number.isFinite(lr) || lr < 0) throw invalidArgument(`the lr schedule gave ${lr} at step ${s}`);
      if (!Number.isFinite(arcfaceMargin) || arcfaceMargin < 0) throw invalidArgument(`the arcfaceMargin schedule gave ${arcfaceMargin} at step ${s}`);
      const stepPromise = trainer.step(batch, { lr, arcfaceMargin, signal });
      pending = s + 1 < steps ? fetch() : Promise.resolve(batch);  // prefetch while the step runs
      let r: StepResult;
      try {
        r = await stepPromise;
      } finally {
        if (opts.disposeBatches) disposeBatch(batch);
      }
      const seconds = (Date.now() - t0) / 1000;
      images += r.images;
      weight = 0.95 * weight + 0.05;
      smoothed = 0.95 * smoothed + 0.05 * r.loss;
      recent.push(seconds);
      if (recent.length > 50) recent.shift();
      history.push({ step: r.step, loss: r.loss, parts: r.parts, lr, arcfaceMargin, seconds });
      const pace = recent.reduce((a, b) => a + b, 0) / recent.length;
      const progress: TrainProgress = {
        step: r.step, total: steps, loss: r.loss, smoothedLoss: smoothed / weight, parts: r.parts, lr, arcfaceMargin,
        imagesPerSecond: r.images / Math.max(pace, 1e-9), etaSeconds: pace * (steps - r.step),
      };
      opts.onProgress?.(progress);
      if (bar && (Date.now() - lastDraw > 100 || r.step === steps)) {
        lastDraw = Date.now();
        process.stderr.write(`\r${progressLine(progress)}\x1b[K`);
      }
      if (logFn && (r.step % logEvery === 0 || r.step === steps)) logFn(progressLine(progress));
      if (ck?.every && r.step % ck.every === 0 && r.step < steps) await save();
    }
  } catch (e) {
    const err = fromNative(e);
    if (bar) process.stderr.write('\n');
    if (err.code === 'BIA_ABORTED') {
      // The interrupted step was either done or not applied: the state is consistent; keep it.
      await save();
      throw signal?.aborted ? aborted(signal) : err;
    }
    throw err;  // e.g. a non-finite loss: the last checkpoint stays as it was
  }
  await save();
  if (bar) process.stderr.write('\n');
  const seconds = (Date.now() - started) / 1000;
  return { history, startStep, endStep: trainer.stepCount, checkpoints, seconds, imagesPerSecond: images / Math.max(seconds, 1e-9), smoothedLoss: weight ? smoothed / weight : NaN };
}


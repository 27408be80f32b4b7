/**
 * startEraseWorker: the consumer's side of the job queue (BullMQ on Redis). It loads the models once,
 * then runs eraseIdentity per job (ts/queue/job.ts: the same folder layout as `bia erase`, written
 * atomically, finished folders skipped), with BullMQ progress fed from the job's stages, retries with
 * backoff (the job's attempts), a per-job timeout, failures kept as "BIA_CODE: message", and a graceful
 * shutdown: on close() or SIGTERM/SIGINT it takes no new job, lets the running ones finish for a grace
 * period and then hands them back to the queue (a second signal hands them back at once). A worker that
 * dies without shutting down (SIGKILL, power) loses its job's lock; BullMQ's stall check gives the job
 * to another worker. See docs/scale-out.md.
 */
import os from 'node:os';
import type { Job, Worker } from 'bullmq';
import { errorInfo, loadEraseModels, type Eraser } from '../erase/batch';
import type { UNetConfig, UNetPreset } from '../diffusion';
import { eraseIdentity } from '../erase/pipeline';
import type { EraseOptions, EraseProgress } from '../erase/types';
import { invalidArgument } from '../errors';
import { checkDevice, type Device } from '../options';
import { checkQueueName, connectionOptions, DEFAULT_QUEUE_NAME, reachRedis, type QueueConnection } from './connection';
import { checkJobData, failureReason, runEraseJob, type EraseJobData, type EraseJobResult, type EraseWorkerModels } from './job';

/** Checkpoint files of the models, loaded with loadEraseModels. */
export interface WorkerModelFiles {
  diffusion: string;
  encoder: string;
  secondEncoder?: string;
  /** VGG16 weights for L_perc. */
  perceptual?: string;
  /** The UNet config: a preset or a config object (default: the checkpoint's own). */
  config?: UNetPreset | Partial<UNetConfig>;
}

/** The models: checkpoint files, or a loader (which may add photos of other people and the worker's settings). */
export type WorkerModelSource = WorkerModelFiles | ((o: { device: Device; signal: AbortSignal }) => Promise<EraseWorkerModels>);

export interface EraseWorkerOptions {
  /** Redis: a URL (redis://host:port[/db]) or ioredis options. */
  connection: QueueConnection;
  /** The queue's name (default 'bia-erase'). */
  name?: string;
  models: WorkerModelSource;
  /** Jobs at once in this process, sharing the models (default 1: one worker process per device). */
  concurrency?: number;
  /** Default 'cpu'. */
  device?: Device;
  /** Erase settings of this worker, over the models' own and under each job's options. */
  options?: EraseOptions;
  /** Abort a job after this long (ms) when the job names no timeout of its own (default 0: none). */
  timeoutMs?: number;
  /** How long a job's lock lasts without renewal (ms, default BullMQ's 30 000): a dead worker's job waits this long. */
  lockDurationMs?: number;
  /** How often stalled jobs (whose worker died) are looked for (ms, default BullMQ's 30 000). */
  stalledIntervalMs?: number;
  /** Stalls a job survives before it fails (default BullMQ's 1). */
  maxStalledCount?: number;
  /** On close / SIGTERM, how long running jobs may go on before they are handed back (ms, default 25 000). */
  shutdownGraceMs?: number;
  /** Close on SIGTERM and SIGINT (a second one hands the running jobs back at once). Default true. */
  handleSignals?: boolean;
  /** Close once the queue holds no waiting, delayed or active job (a batch worker, e.g. under Slurm). */
  untilDrained?: boolean;
  /** Least time between two progress updates of one job (ms, default 1 000; a new stage always goes). */
  progressIntervalMs?: number;
  /** How long to wait for Redis at start (ms, default 10 000). */
  connectTimeoutMs?: number;
  /** What happens, as it happens. */
  onEvent?: (ev: EraseWorkerEvent) => void;
  /** The erase job (default eraseIdentity; tests and benches pass their own). */
  eraser?: Eraser;
}

/** A job as events name it. */
export interface WorkerJob {
  id: string;
  input: string;
  dir: string;
  /** 1 for the first try. */
  attempt: number;
}

export type EraseWorkerEvent =
  | { type: 'ready'; queue: string; concurrency: number; device: Device; worker: string }
  | { type: 'start'; job: WorkerJob }
  | { type: 'progress'; job: WorkerJob; progress: EraseProgress }
  | { type: 'done'; job: WorkerJob; result: EraseJobResult }
  | { type: 'skipped'; job: WorkerJob; result: EraseJobResult }
  | { type: 'failed'; job: WorkerJob; error: { code: string; message: string }; willRetry: boolean }
  /** Shutting down before the job finished: it is back in the queue for another worker. */
  | { type: 'handed-back'; job: WorkerJob }
  | { type: 'closing'; reason: CloseReason; graceMs: number }
  | { type: 'closed'; reason: CloseReason }
  /** Redis trouble (the worker goes on retrying) or a BullMQ error. */
  | { type: 'error'; error: { code: string; message: string } };

export type CloseReason = 'close' | 'SIGTERM' | 'SIGINT' | 'drained';

export interface EraseWorker {
  readonly queue: string;
  /** host:pid. */
  readonly id: string;
  /** The BullMQ worker itself. */
  readonly worker: Worker<EraseJobData, EraseJobResult>;
  /** Stop: no new job; running ones get `graceMs` (default shutdownGraceMs) to finish, then go back to the queue. */
  close(opts?: { graceMs?: number }): Promise<void>;
  /** Resolves once closed (models released), with what closed it. */
  readonly closed: Promise<CloseReason>;
}

/** Thrown into a running job when the worker shuts down: the job goes back to the queue. */
class HandBack extends Error {
  constructor() {
    super('the worker is shutting down: the job goes back to the queue');
    this.name = 'HandBack';
  }
}

function optionalInt(v: unknown, what: string, min: number): number | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) throw invalidArgument(`${what} must be an integer ≥ ${min}, got ${JSON.stringify(v)}`);
  return v;
}

/**
 * Start a worker: reach Redis (BIA_IO_ERROR when it cannot), load the models once (their error when
 * they cannot: no job is taken), then take jobs until closed.
 */
export async function startEraseWorker(opts: EraseWorkerOptions): Promise<EraseWorker> {
  if (opts === null || typeof opts !== 'object') throw invalidArgument('startEraseWorker needs {connection, models, …}');
  const name = checkQueueName(opts.name ?? DEFAULT_QUEUE_NAME);
  const device = checkDevice(opts.device ?? 'cpu');
  const concurrency = optionalInt(opts.concurrency, 'concurrency', 1) ?? 1;
  const timeoutMs = optionalInt(opts.timeoutMs, 'timeoutMs', 0) ?? 0;
  const graceDefault = optionalInt(opts.shutdownGraceMs, 'shutdownGraceMs', 0) ?? 25_000;
  const progressEvery = optionalInt(opts.progressIntervalMs, 'progressIntervalMs', 0) ?? 1_000;
  const lockDuration = optionalInt(opts.lockDurationMs, 'lockDurationMs', 100);
  const stalledInterval = optionalInt(opts.stalledIntervalMs, 'stalledIntervalMs', 100);
  const maxStalledCount = optionalInt(opts.maxStalledCount, 'maxStalledCount', 0);
  const src = opts.models;
  if (typeof src !== 'function' && (typeof src?.diffusion !== 'string' || typeof src?.encoder !== 'string')) {
    throw invalidArgument('models must be {diffusion, encoder, …} checkpoint paths or a loader function');
  }
  const connection = connectionOptions(opts.connection);
  const emit = (ev: EraseWorkerEvent) => opts.onEvent?.(ev);
  const id = `${os.hostname()}:${process.pid}`;
  const eraser = opts.eraser ?? eraseIdentity;

  // A shutdown asked for while the models load stops the loading.
  const loading = new AbortController();
  let signalled: CloseReason | null = null;
  let onSignal: ((sig: NodeJS.Signals) => void) | null = null;
  let closeFn: ((o?: { graceMs?: number }) => Promise<void>) | null = null;
  const handleSignals = opts.handleSignals ?? true;
  const removeSignals = () => {
    if (onSignal) {
      process.off('SIGTERM', onSignal);
      process.off('SIGINT', onSignal);
    }
  };
  if (handleSignals) {
    onSignal = (sig) => {
      const again = signalled !== null;
      signalled ??= sig as CloseReason;
      if (!closeFn) loading.abort(new Error(`${sig} while loading the models`));
      else void closeFn(again ? { graceMs: 0 } : undefined);
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  }

  // bullmq (and ioredis) load when a worker starts, not with the library.
  const { Queue, UnrecoverableError, WaitingError, Worker } = await import('bullmq');
  // Redis first (cheap), then the models (slow): a worker that cannot run takes no job.
  const probe = new Queue(name, { connection });
  let lastError: Error | undefined;
  probe.on('error', (e) => {
    lastError = e;
  });
  let models: EraseWorkerModels;
  try {
    await reachRedis(probe, opts.connection, opts.connectTimeoutMs ?? 10_000, () => lastError);
    models =
      typeof src === 'function'
        ? await src({ device, signal: loading.signal })
        : await loadEraseModels({ ...src, device, signal: loading.signal });
  } catch (e) {
    removeSignals();
    await probe.close().catch(() => undefined);
    throw e;
  }
  if (opts.options) models = { ...models, options: { ...models.options, ...opts.options } };

  const active = new Map<string, AbortController>();
  const info = (job: Job<EraseJobData>): WorkerJob => ({ id: job.id ?? '', input: job.data?.input ?? '', dir: job.data?.dir ?? '', attempt: (job.attemptsMade ?? 0) + 1 });

  const processor = async (job: Job<EraseJobData, EraseJobResult>, token?: string): Promise<EraseJobResult> => {
    const w = info(job);
    let data: EraseJobData;
    try {
      data = checkJobData(job.data);
    } catch (e) {
      emit({ type: 'failed', job: w, error: errorInfo(e), willRetry: false });
      throw new UnrecoverableError(failureReason(e));
    }
    emit({ type: 'start', job: w });
    const controller = new AbortController();
    active.set(w.id, controller);
    const limit = data.timeoutMs || timeoutMs;
    const timer = limit > 0 ? setTimeout(() => controller.abort(new Error(`timed out after ${(limit / 1000).toFixed(limit < 10_000 ? 1 : 0)} s`)), limit) : undefined;
    let lastStage = '';
    let lastSent = 0;
    const onStage = (p: EraseProgress) => {
      const t = Date.now();
      if (p.stage === lastStage && t - lastSent < progressEvery && p.fraction < 1) return;
      lastStage = p.stage;
      lastSent = t;
      emit({ type: 'progress', job: w, progress: p });
      job.updateProgress({ ...p }).catch(() => undefined);
    };
    try {
      const result = await runEraseJob(data, { models, device, eraser, signal: controller.signal, onStage, worker: id });
      emit({ type: result.status === 'skipped' ? 'skipped' : 'done', job: w, result });
      return result;
    } catch (e) {
      if (controller.signal.reason instanceof HandBack) {
        await job.moveToWait(token);
        emit({ type: 'handed-back', job: w });
        throw new WaitingError();
      }
      const error = errorInfo(e);
      const unrecoverable = error.code === 'BIA_INVALID_ARGUMENT';
      emit({ type: 'failed', job: w, error, willRetry: !unrecoverable && (job.attemptsMade ?? 0) + 1 < (job.opts?.attempts ?? 1) });
      throw unrecoverable ? new UnrecoverableError(failureReason(e)) : new Error(failureReason(e));
    } finally {
      clearTimeout(timer);
      active.delete(w.id);
    }
  };

  const worker = new Worker<EraseJobData, EraseJobResult>(name, processor, {
    connection,
    concurrency,
    name: id,
    ...(lockDuration !== undefined ? { lockDuration } : {}),
    ...(stalledInterval !== undefined ? { stalledInterval } : {}),
    ...(maxStalledCount !== undefined ? { maxStalledCount } : {}),
  });
  worker.on('error', (e) => emit({ type: 'error', error: errorInfo(e) }));

  let resolveClosed!: (r: CloseReason) => void;
  const closed = new Promise<CloseReason>((r) => {
    resolveClosed = r;
  });
  let closing: Promise<void> | null = null;
  let drainTimer: NodeJS.Timeout | undefined;
  const handBackAll = () => {
    for (const c of active.values()) if (!c.signal.aborted) c.abort(new HandBack());
  };
  const close = (o: { graceMs?: number } = {}, reason: CloseReason = signalled ?? 'close'): Promise<void> => {
    const graceMs = o.graceMs ?? graceDefault;
    if (!closing) {
      clearInterval(drainTimer);
      emit({ type: 'closing', reason, graceMs });
      closing = (async () => {
        const timer = setTimeout(handBackAll, graceMs);
        try {
          await worker.close();
        } finally {
          clearTimeout(timer);
          removeSignals();
          await probe.close().catch(() => undefined);
          models.dispose();
          emit({ type: 'closed', reason });
          resolveClosed(reason);
        }
      })();
    }
    if (graceMs === 0) handBackAll();
    return closing;
  };
  closeFn = close;
  // A signal that came while the models loaded, after they finished loading.
  if (signalled) void close();

  if (opts.untilDrained) {
    let checking = false;
    drainTimer = setInterval(() => {
      if (checking || closing) return;
      checking = true;
      probe
        .getJobCounts('waiting', 'delayed', 'prioritized', 'active', 'paused')
        .then((c) => {
          const left = (c.waiting ?? 0) + (c.delayed ?? 0) + (c.prioritized ?? 0) + (c.active ?? 0) + (c.paused ?? 0);
          if (left === 0 && active.size === 0) void close({}, 'drained');
        })
        .catch(() => undefined)
        .finally(() => {
          checking = false;
        });
    }, 1_000);
  }

  await worker.waitUntilReady();
  emit({ type: 'ready', queue: name, concurrency, device, worker: id });
  return { queue: name, id, worker, close: (o) => close(o), closed };
}

/**
 * createEraseQueue: the producer's and the operator's side of the job queue (BullMQ on Redis). It adds
 * one erase job per image (folders expanded and folder names given as `bia erase` gives them), says
 * how the queue stands (waiting / active / completed / failed with reasons, throughput, ETA) and puts
 * failed jobs back. Workers (./worker) take the jobs. See docs/scale-out.md.
 */
import nodePath from 'node:path';
import type { Job, JobsOptions, Queue } from 'bullmq';
import { errorInfo, expandInputs, imageDirs } from '../erase/batch';
import { resolveEraseOptions } from '../erase/options';
import { exists } from '../erase/outputs';
import type { EraseOptions, EraseProgress } from '../erase/types';
import { invalidArgument } from '../errors';
import { checkQueueName, connectionOptions, DEFAULT_QUEUE_NAME, describeConnection, reachRedis, type QueueConnection } from './connection';
import { ERASE_JOB, eraseJobId, parseFailure, type EraseJobData, type EraseJobResult } from './job';

export interface EraseQueueOptions {
  /** Redis: a URL (redis://host:port[/db]) or ioredis options. */
  connection: QueueConnection;
  /** The queue's name (default 'bia-erase'). */
  name?: string;
  /** How long to wait for Redis before BIA_IO_ERROR (default 10 s). */
  connectTimeoutMs?: number;
}

export interface AddEraseJobsOptions {
  /** The output folder: one <out>/<dir>/ per image, as `bia erase` writes it (made absolute). */
  out: string;
  /** The erase options of every job, over each worker's own settings (checked here). */
  options?: EraseOptions;
  /** Redo images even when their report.json exists. */
  force?: boolean;
  /** Tries per job before it lands in the failed set (default 3). */
  attempts?: number;
  /** The first retry's delay, doubling after each (ms, default 10 000). */
  backoffMs?: number;
  /** Abort a job after this long (ms; it fails with BIA_ABORTED and is retried); default none. */
  timeoutMs?: number;
  /** BullMQ priority (1 highest … 2 097 152; default none: first in, first out). */
  priority?: number;
}

export interface QueuedImage {
  id: string;
  input: string;
  /** <out>/<dir>. */
  dir: string;
}

export interface AddedJobs {
  out: string;
  /** New jobs. */
  added: QueuedImage[];
  /** Images whose job is already in the queue (waiting, active, delayed, or completed with its folder finished). */
  existing: Array<QueuedImage & { state: string }>;
  /** Inputs that could not be listed, and folder names another image of this queue already holds. */
  failed: Array<{ input: string; error: { code: string; message: string } }>;
  /** Folders without images. */
  empty: string[];
}

export interface QueueCounts {
  waiting: number;
  active: number;
  delayed: number;
  prioritized: number;
  paused: number;
  completed: number;
  failed: number;
}

export interface QueueStatus {
  name: string;
  redis: string;
  counts: QueueCounts;
  /** Worker connections Redis knows of. */
  workers: number;
  isPaused: boolean;
  active: Array<{ id: string; input: string; progress: EraseProgress | null; startedAt: number | null; attempt: number }>;
  /** The most recent failures (newest first). */
  failed: Array<{ id: string; input: string; code: string; message: string; attempts: number; finishedAt: number | null }>;
  /**
   * Recent throughput, from the last completed jobs that erased (not skipped) within an hour of the
   * newest one: images per hour over their span; null with fewer than two.
   */
  throughput: { imagesPerHour: number | null; jobs: number; spanSeconds: number; medianJobSeconds: number | null };
  /** Seconds until waiting + delayed + active jobs are done at that throughput; null when unknown. */
  etaSeconds: number | null;
}

export interface EraseQueue {
  readonly name: string;
  /** The BullMQ queue itself (events, pause/resume, clean, obliterate, …). */
  readonly queue: Queue<EraseJobData, EraseJobResult>;
  /** Add one job per image of `inputs` (images and folders; folders give their images, sorted). */
  add(inputs: string[], opts: AddEraseJobsOptions): Promise<AddedJobs>;
  status(opts?: { failed?: number }): Promise<QueueStatus>;
  /** Move every failed job back to the waiting list; resolves to how many. */
  retryFailed(): Promise<number>;
  close(): Promise<void>;
}

function positiveInt(v: unknown, what: string, min: number): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) throw invalidArgument(`${what} must be an integer ≥ ${min}, got ${JSON.stringify(v)}`);
  return v;
}

/** A queue to add erase jobs to and watch; rejects with BIA_IO_ERROR when Redis cannot be reached. */
export async function createEraseQueue(opts: EraseQueueOptions): Promise<EraseQueue> {
  if (opts === null || typeof opts !== 'object') throw invalidArgument('createEraseQueue needs {connection, name}');
  const name = checkQueueName(opts.name ?? DEFAULT_QUEUE_NAME);
  const connection = connectionOptions(opts.connection);
  const redis = describeConnection(opts.connection);
  // bullmq (and ioredis) load when a queue is made, not with the library.
  const { Queue } = await import('bullmq');
  const queue = new Queue<EraseJobData, EraseJobResult>(name, { connection });
  let lastError: Error | undefined;
  queue.on('error', (e) => {
    lastError = e;
  });
  try {
    await reachRedis(queue, opts.connection, opts.connectTimeoutMs ?? 10_000, () => lastError);
  } catch (e) {
    await queue.close().catch(() => undefined);
    throw e;
  }

  const add = async (inputs: string[], o: AddEraseJobsOptions): Promise<AddedJobs> => {
    if (!Array.isArray(inputs) || inputs.some((i) => typeof i !== 'string')) throw invalidArgument('inputs must be an array of image or folder paths');
    if (typeof o?.out !== 'string' || o.out === '') throw invalidArgument('out must be the output folder');
    const options = o.options ?? {};
    resolveEraseOptions(options); // checked now, not on every worker
    const attempts = positiveInt(o.attempts ?? 3, 'attempts', 1);
    const backoffMs = positiveInt(o.backoffMs ?? 10_000, 'backoffMs', 0);
    const timeoutMs = o.timeoutMs === undefined ? undefined : positiveInt(o.timeoutMs, 'timeoutMs', 0);
    const out = nodePath.resolve(o.out);
    const expanded = await expandInputs(inputs);
    const result: AddedJobs = { out, added: [], existing: [], failed: expanded.failed.map((f) => ({ input: f.input, error: errorInfo(f.error) })), empty: expanded.empty };
    if (expanded.images.length === 0 && expanded.failed.length === 0) throw invalidArgument(`no image found in ${inputs.join(', ')}`);
    const dirs = imageDirs(expanded.images);
    const jobOpts: JobsOptions = {
      attempts,
      backoff: { type: 'exponential', delay: backoffMs },
      ...(o.priority !== undefined ? { priority: positiveInt(o.priority, 'priority', 1) } : {}),
    };
    const bulk: Array<{ name: string; data: EraseJobData; opts: JobsOptions }> = [];
    for (let i = 0; i < expanded.images.length; i++) {
      const input = nodePath.resolve(expanded.images[i]);
      const id = eraseJobId(out, dirs[i]);
      const dir = nodePath.join(out, dirs[i]);
      const known = (await queue.getJob(id)) as Job<EraseJobData, EraseJobResult> | undefined;
      if (known) {
        if (known.data?.input !== input) {
          result.failed.push({ input, error: { code: 'BIA_INVALID_ARGUMENT', message: `${dir} is already the folder of ${known.data?.input} in queue '${name}': add images with the same name in one call (they get a.png, a.jpg … folders), or use another --out` } });
          continue;
        }
        const state = await known.getState();
        const finished = state === 'completed' && !o.force && (await exists(nodePath.join(dir, 'report.json')));
        if (state !== 'completed' && state !== 'failed') {
          result.existing.push({ id, input, dir, state });
          continue;
        }
        if (finished) {
          result.existing.push({ id, input, dir, state });
          continue;
        }
        // A failed job, or a completed one whose folder is gone (or asked again with force): a new job.
        await known.remove();
      }
      const data: EraseJobData = { kind: 'erase', input, out, dir: dirs[i], options, ...(o.force ? { force: true } : {}), ...(timeoutMs ? { timeoutMs } : {}) };
      bulk.push({ name: ERASE_JOB, data, opts: { ...jobOpts, jobId: id } });
      result.added.push({ id, input, dir });
    }
    for (let i = 0; i < bulk.length; i += 500) await queue.addBulk(bulk.slice(i, i + 500));
    return result;
  };

  const status = async (so: { failed?: number } = {}): Promise<QueueStatus> => {
    const raw = await queue.getJobCounts('waiting', 'active', 'delayed', 'prioritized', 'paused', 'completed', 'failed');
    const counts: QueueCounts = {
      waiting: raw.waiting ?? 0,
      active: raw.active ?? 0,
      delayed: raw.delayed ?? 0,
      prioritized: raw.prioritized ?? 0,
      paused: raw.paused ?? 0,
      completed: raw.completed ?? 0,
      failed: raw.failed ?? 0,
    };
    const [activeJobs, failedJobs, recent, workers, isPaused] = await Promise.all([
      queue.getActive(0, 99),
      queue.getFailed(0, Math.max(0, (so.failed ?? 20) - 1)),
      queue.getCompleted(0, 199),
      queue.getWorkersCount(),
      queue.isPaused(),
    ]);
    const done = recent.filter((j) => j && j.returnvalue?.status === 'done' && j.finishedOn).sort((a, b) => a.finishedOn! - b.finishedOn!);
    const newest = done.length ? done[done.length - 1].finishedOn! : 0;
    const window = done.filter((j) => newest - j.finishedOn! <= 3600_000);
    const span = window.length ? (newest - Math.min(...window.map((j) => j.processedOn ?? j.finishedOn!))) / 1000 : 0;
    const durations = window.map((j) => j.returnvalue?.seconds).filter((s): s is number => typeof s === 'number').sort((a, b) => a - b);
    const imagesPerHour = window.length >= 2 && span > 0 ? (window.length / span) * 3600 : null;
    const remaining = counts.waiting + counts.delayed + counts.prioritized + counts.paused + counts.active;
    return {
      name,
      redis,
      counts,
      workers,
      isPaused,
      active: activeJobs.filter(Boolean).map((j) => ({
        id: j.id ?? '',
        input: j.data?.input ?? '',
        progress: typeof j.progress === 'object' && j.progress !== null ? (j.progress as unknown as EraseProgress) : null,
        startedAt: j.processedOn ?? null,
        attempt: (j.attemptsMade ?? 0) + 1,
      })),
      failed: failedJobs.filter(Boolean).map((j) => ({ id: j.id ?? '', input: j.data?.input ?? '', ...parseFailure(j.failedReason), attempts: j.attemptsMade ?? 0, finishedAt: j.finishedOn ?? null })),
      throughput: { imagesPerHour, jobs: window.length, spanSeconds: span, medianJobSeconds: durations.length ? durations[Math.floor(durations.length / 2)] : null },
      etaSeconds: remaining === 0 ? 0 : imagesPerHour ? (remaining / imagesPerHour) * 3600 : null,
    };
  };

  const retryFailed = async (): Promise<number> => {
    const n = (await queue.getJobCounts('failed')).failed ?? 0;
    if (n > 0) await queue.retryJobs({ state: 'failed' });
    return n;
  };

  return {
    name,
    queue,
    add,
    status,
    retryFailed,
    close: async () => {
      await queue.close();
    },
  };
}


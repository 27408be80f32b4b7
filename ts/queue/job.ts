/**
 * One erase job of the queue: what it carries (EraseJobData), its id, and how a worker runs it —
 * the same per-image folder as `bia erase` (ts/erase/outputs.ts): <out>/<dir>/ with input.png,
 * output.png, reconstruction.png, baseline.png, fade.png, blur.png, grid.png and, last, report.json.
 * Every file is written atomically; a folder whose report.json is there is finished and the job is
 * skipped, so delivering a job twice (BullMQ delivers at least once) is harmless.
 */
import nodePath from 'node:path';
import { eraseToFolder, errorInfo, type Eraser, type Models } from '../erase/batch';
import { readFinishedReport } from '../erase/outputs';
import type { EraseOptions, EraseProgress, EraseReport } from '../erase/types';
import { invalidArgument } from '../errors';
import type { Device } from '../options';
import type { Tensor } from '../tensor';
import { sha256, sha256File } from '../util/hash';

/** The BullMQ job name of an erase job (unlearning jobs will get their own). */
export const ERASE_JOB = 'erase';

/** What an erase job carries: plain JSON, paths that every worker can read and write. */
export interface EraseJobData {
  kind: 'erase';
  /** The image: an absolute path on storage that every worker mounts at the same place. */
  input: string;
  /** The batch's output folder (absolute). */
  out: string;
  /** The image's folder name under `out` (imageDirs of the batch, as `bia erase` names it). */
  dir: string;
  /** The erase options of this job, over the worker's own settings. */
  options: EraseOptions;
  /** Redo the image even when its report.json exists. */
  force?: boolean;
  /** Abort the job after this long (ms; it then fails with BIA_ABORTED and is retried); 0 or absent: the worker's. */
  timeoutMs?: number;
}

/** What a finished job returns (BullMQ's return value). */
export interface EraseJobResult {
  status: 'done' | 'skipped';
  /** <out>/<dir>. */
  dir: string;
  sid: { reconstruction: number; after: number; randomBaseline: number | null };
  noBoundary: boolean;
  /** Wall time of this attempt. */
  seconds: number;
  /** host:pid of the worker process. */
  worker: string;
}

/** The job id of an image folder: the same folder is one job, however often it is added. */
export function eraseJobId(out: string, dir: string): string {
  return `erase-${sha256(`${nodePath.resolve(out)}\0${dir}`).slice(0, 32)}`;
}

/** Checks a job's data (BIA_INVALID_ARGUMENT naming what is wrong). */
export function checkJobData(d: unknown): EraseJobData {
  const o = d as Partial<EraseJobData> | null;
  if (o === null || typeof o !== 'object') throw invalidArgument('the job carries no data');
  if (o.kind !== 'erase') throw invalidArgument(`this worker runs erase jobs, not ${JSON.stringify(o.kind)}`);
  for (const k of ['input', 'out', 'dir'] as const) {
    if (typeof o[k] !== 'string' || o[k] === '') throw invalidArgument(`the job's ${k} must be a non-empty string`);
  }
  if (!nodePath.isAbsolute(o.input!) || !nodePath.isAbsolute(o.out!)) throw invalidArgument('the job\'s input and out must be absolute paths');
  if (o.dir!.includes('/') || o.dir!.includes('\\') || o.dir === '.' || o.dir === '..') throw invalidArgument(`the job's dir must be one folder name, got ${JSON.stringify(o.dir)}`);
  if (o.options !== undefined && (o.options === null || typeof o.options !== 'object' || Array.isArray(o.options))) throw invalidArgument('the job\'s options must be an object');
  if (o.timeoutMs !== undefined && !(typeof o.timeoutMs === 'number' && o.timeoutMs >= 0)) throw invalidArgument('the job\'s timeoutMs must be a number ≥ 0');
  return { ...o, options: o.options ?? {} } as EraseJobData;
}

/** A failure as the queue keeps it (the job's failedReason): "CODE: message". */
export function failureReason(e: unknown): string {
  const { code, message } = errorInfo(e);
  return `${code}: ${message}`;
}

/** A failedReason → its code and message (code 'Error' when it holds none). */
export function parseFailure(reason: string | undefined | null): { code: string; message: string } {
  const m = /^([A-Za-z][A-Za-z0-9_]*): ([\s\S]*)$/.exec(reason ?? '');
  return m ? { code: m[1], message: m[2] } : { code: 'Error', message: reason ?? '' };
}

// ---------------------------------------------------------------------------------------------------
// running one job

/** The models a worker holds, plus what it adds to every job: photos of other people and its own settings. */
export interface EraseWorkerModels extends Models {
  /** neighbourMode 'others': photos of other people [N, 3, H, W] at the model's resolution. */
  others?: Tensor;
  /** The worker's erase settings, under each job's own options (e.g. the demo's for the default models). */
  options?: EraseOptions;
}

export interface RunEraseJobContext {
  models: EraseWorkerModels;
  device: Device;
  /** The erase job (default eraseIdentity; a test or bench may pass its own). */
  eraser: Eraser;
  signal: AbortSignal;
  onStage?: (p: EraseProgress) => void;
  /** host:pid, for the result. */
  worker: string;
  now?: () => number;
}

function resultOf(status: EraseJobResult['status'], dir: string, r: EraseReport, seconds: number, worker: string): EraseJobResult {
  return { status, dir, sid: { reconstruction: r.sid.reconstruction, after: r.sid.after, randomBaseline: r.sid.randomBaseline }, noBoundary: !r.blackHole?.found, seconds, worker };
}

/**
 * Run one erase job: skip it when its folder is finished (unless force), else read the image at the
 * model's resolution, erase it and write the folder, report.json last. Throws the job's error.
 */
export async function runEraseJob(data: EraseJobData, ctx: RunEraseJobContext): Promise<EraseJobResult> {
  const now = ctx.now ?? Date.now;
  const started = now();
  const dir = nodePath.join(data.out, data.dir);
  if (!data.force) {
    const prev = await readFinishedReport(dir);
    if (prev) return resultOf('skipped', dir, prev, (now() - started) / 1000, ctx.worker);
  }
  const sha = await sha256File(data.input);
  const report = await eraseToFolder(ctx.models, {
    input: data.input,
    sha256: sha,
    dir,
    options: { ...ctx.models.options, ...data.options },
    others: ctx.models.others,
    eraser: ctx.eraser,
    device: ctx.device,
    signal: ctx.signal,
    onStage: ctx.onStage,
    removeStaleTemps: true,
  });
  return resultOf('done', dir, report, (now() - started) / 1000, ctx.worker);
}

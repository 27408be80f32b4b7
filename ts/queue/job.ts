/**
 * One erase job of the queue: what it carries (EraseJobData), its id, and how a worker runs it —
 * the same per-image folder as `bia erase` (ts/erase/batch.ts): <out>/<dir>/ with input.png,
 * output.png, reconstruction.png, baseline.png, fade.png, blur.png, grid.png and, last, report.json.
 * Every file is written atomically; a folder whose report.json is there is finished and the job is
 * skipped, so delivering a job twice (BullMQ delivers at least once) is harmless.
 */
import * as fsp from 'node:fs/promises';
import nodePath from 'node:path';
import { errorInfo, formatSid, type Eraser, type ModelFile, type Models } from '../erase/batch';
import type { EraseOptions, EraseProgress, EraseReport, EraseResult } from '../erase/types';
import { invalidArgument, ioError } from '../errors';
import { comparisonGrid, readImage, writeFileAtomic, writeImage } from '../images';
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

/** The files a finished image folder holds (baseline.png only when the baseline ran). */
const IMAGE_FILES = ['input.png', 'reconstruction.png', 'output.png'] as const;

async function exists(path: string): Promise<boolean> {
  try {
    await fsp.access(path);
    return true;
  } catch {
    return false;
  }
}

/** The report of a finished image folder, or null (as eraseFolder reads it: report.json and the images it vouches for). */
export async function readFinishedReport(dir: string): Promise<EraseReport | null> {
  let report: EraseReport;
  try {
    report = JSON.parse(await fsp.readFile(nodePath.join(dir, 'report.json'), 'utf8')) as EraseReport;
  } catch {
    return null;
  }
  if (typeof report !== 'object' || report === null || typeof report.sid?.after !== 'number' || typeof report.input?.name !== 'string') return null;
  for (const f of IMAGE_FILES) if (!(await exists(nodePath.join(dir, f)))) return null;
  return report;
}

/** Temporary files of writes that never finished (a worker killed mid-write): .<name>.<pid>.<random>.tmp. */
async function removeStaleTemps(dir: string): Promise<void> {
  let names: string[];
  try {
    names = await fsp.readdir(dir);
  } catch {
    return;
  }
  await Promise.all(names.filter((n) => n.startsWith('.') && n.endsWith('.tmp')).map((n) => fsp.rm(nodePath.join(dir, n), { force: true })));
}

function fillModelFiles(report: EraseReport, files: Models['files']): void {
  const fill = (m: { path: string | null; sha256: string | null } | undefined, f: ModelFile | undefined) => {
    if (!m || !f) return;
    if (m.path === null || m.path === undefined) m.path = f.path;
    if (m.sha256 === null || m.sha256 === undefined) m.sha256 = f.sha256;
  };
  fill(report.models?.diffusion, files?.diffusion);
  fill(report.models?.encoder, files?.encoder);
  fill(report.models?.secondEncoder, files?.secondEncoder);
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
  const { models, signal } = ctx;
  const sha = await sha256File(data.input);
  const resolution = models.diffusion.config.resolution;
  const image = await readImage(data.input, { size: resolution, fit: 'cover', device: ctx.device, signal });
  let result: EraseResult | undefined;
  try {
    result = await ctx.eraser(image, {
      ...models.options,
      ...data.options,
      diffusion: models.diffusion,
      encoder: models.encoder,
      secondEncoder: models.secondEncoder,
      perceptual: models.perceptual,
      others: models.others,
      inputName: data.input,
      inputSha256: sha,
      signal,
      onStage: ctx.onStage,
    });
    const report = result.report;
    fillModelFiles(report, models.files);
    await writeImageFolder(dir, image, result, resolution);
    return resultOf('done', dir, report, (now() - started) / 1000, ctx.worker);
  } finally {
    result?.dispose();
    image.dispose();
  }
}

/** The folder of one erased image, as eraseFolder writes it: every file atomically, report.json last. */
export async function writeImageFolder(dir: string, image: Tensor, result: EraseResult, resolution: number): Promise<void> {
  const report = result.report;
  try {
    await fsp.mkdir(dir, { recursive: true });
  } catch (e) {
    throw ioError(`cannot create ${dir}`, e);
  }
  // A redo: the old report must not vouch for files that are being replaced; a killed worker's
  // unfinished writes are removed.
  await fsp.rm(nodePath.join(dir, 'report.json'), { force: true });
  await removeStaleTemps(dir);
  await writeImage(image, nodePath.join(dir, 'input.png'));
  await writeImage(result.image, nodePath.join(dir, 'output.png'));
  await writeImage(result.reconstruction, nodePath.join(dir, 'reconstruction.png'));
  if (result.randomBaseline) await writeImage(result.randomBaseline, nodePath.join(dir, 'baseline.png'));
  else await fsp.rm(nodePath.join(dir, 'baseline.png'), { force: true });
  for (const kind of ['fade', 'blur'] as const) {
    const t = result.degenerate?.[kind];
    if (t) await writeImage(t, nodePath.join(dir, `${kind}.png`));
    else await fsp.rm(nodePath.join(dir, `${kind}.png`), { force: true });
  }
  const row = [
    { tensor: image, label: 'input' },
    { tensor: result.reconstruction, label: `reconstruction ${formatSid(report.sid.reconstruction)}` },
    { tensor: result.image, label: `BIA ${formatSid(report.sid.after)}` },
    ...(result.randomBaseline ? [{ tensor: result.randomBaseline, label: `baseline ${formatSid(report.sid.randomBaseline)}` }] : []),
  ];
  await comparisonGrid([row], nodePath.join(dir, 'grid.png'), { cellSize: Math.max(128, resolution) });
  await writeFileAtomic(nodePath.join(dir, 'report.json'), `${JSON.stringify(report, null, 2)}\n`);
}

/**
 * eraseFolder: the erase job over a batch of images, as `bia erase` runs it. It expands folders to
 * their images, loads the models once (only when some image needs work), runs the job on each image
 * and writes into <out>/<stem>/: input.png (what the job saw), output.png, reconstruction.png,
 * baseline.png, fade.png, blur.png (the degenerate baselines), grid.png and, last, report.json — its
 * presence means the image is finished, so a re-run skips it unless `force`. Then <out>/report.json
 * (every report, earlier runs' included), <out>/report.html and, when an image failed,
 * <out>/errors.json. One image failing does not stop the others; every file is written atomically.
 *
 * The erase job and the model loading are replaceable (`eraser`, `loadModels`), so that tests can
 * drive the batch with their own.
 */
import * as fsp from 'node:fs/promises';
import nodePath from 'node:path';
import { takeRows } from '../blackhole/codes';
import { loadDiffusion, type DiffusionModel, type UNetConfig, type UNetPreset } from '../diffusion';
import { BiaError, ioError } from '../errors';
import { loadIdentityEncoder, type IdentityEncoder } from '../identity';
import { describeImage, readImage, writeFileAtomic } from '../images';
import type { Device } from '../options';
import { loadPerceptual, type PerceptualModel } from '../perceptual';
import { renderReportHtml, summarize, type ReportEntry, type ReportSummary } from '../report/html';
import type { Tensor } from '../tensor';
import { sha256File } from '../util/hash';
import type { EraseCall } from './call';
import { exists, readFinishedReport, writeImageFolder } from './outputs';
import { eraseIdentity } from './pipeline';
import type { EraseOptions, EraseProgress, EraseReport, EraseResult } from './types';

export { formatSid } from './outputs';

// ---------------------------------------------------------------------------------------------------
// the job and the models

/** The erase job: one image [1,3,H,W] in [-1,1] at the model's resolution → images and report (eraseIdentity). */
export type Eraser = (image: Tensor, call: EraseCall) => Promise<EraseResult>;

/** A checkpoint file the models came from. */
export interface ModelFile {
  path: string;
  sha256: string;
}

export interface Models {
  diffusion: DiffusionModel;
  encoder: IdentityEncoder;
  secondEncoder?: IdentityEncoder;
  /** VGG16 weights for L_perc (else the weight-free substitute). */
  perceptual?: PerceptualModel;
  /** The files, with their hashes: filled into each report where the job left path/sha256 null. */
  files?: { diffusion?: ModelFile; encoder?: ModelFile; secondEncoder?: ModelFile };
  /** Release the models (called once, when the batch ends). */
  dispose(): void;
}

export interface LoadModelsOptions {
  diffusion: string;
  encoder: string;
  secondEncoder?: string;
  /** VGG16 checkpoint for L_perc. */
  perceptual?: string;
  /** The UNet config: a preset or a config object; undefined: the checkpoint's own. */
  config?: UNetPreset | Partial<UNetConfig>;
  device: Device;
  /** The UNet's mixed precision (DiffusionOptions.autocast): on the CPU, bfloat16 only. */
  autocast?: 'bfloat16' | 'float16';
  signal: AbortSignal;
}

/** The default model loading: loadDiffusion / loadIdentityEncoder / loadPerceptual, plus each file's SHA-256. */
export async function loadEraseModels(opts: LoadModelsOptions): Promise<Models> {
  const loaded: Array<{ dispose(): void }> = [];
  try {
    const [diffusion, dHash] = await Promise.all([
      loadDiffusion(opts.diffusion, { config: opts.config, device: opts.device, autocast: opts.autocast, signal: opts.signal }),
      sha256File(opts.diffusion),
    ]);
    loaded.push(diffusion);
    const [encoder, eHash] = await Promise.all([loadIdentityEncoder(opts.encoder, { device: opts.device, signal: opts.signal }), sha256File(opts.encoder)]);
    loaded.push(encoder);
    let second: { model: IdentityEncoder; hash: string } | undefined;
    if (opts.secondEncoder !== undefined) {
      const [model, hash] = await Promise.all([loadIdentityEncoder(opts.secondEncoder, { device: opts.device, signal: opts.signal }), sha256File(opts.secondEncoder)]);
      loaded.push(model);
      second = { model, hash };
    }
    let perceptual: PerceptualModel | undefined;
    if (opts.perceptual !== undefined) {
      perceptual = await loadPerceptual(opts.perceptual, { device: opts.device, signal: opts.signal });
      loaded.push(perceptual);
    }
    return {
      diffusion,
      encoder,
      secondEncoder: second?.model,
      perceptual,
      files: {
        diffusion: { path: opts.diffusion, sha256: dHash },
        encoder: { path: opts.encoder, sha256: eHash },
        secondEncoder: second && opts.secondEncoder !== undefined ? { path: opts.secondEncoder, sha256: second.hash } : undefined,
      },
      dispose: () => loaded.forEach((m) => m.dispose()),
    };
  } catch (e) {
    loaded.forEach((m) => m.dispose());
    throw e;
  }
}

// ---------------------------------------------------------------------------------------------------
// the batch

export interface EraseFolderOptions {
  /** Images and folders; a folder gives its .png/.jpg/.jpeg/.webp files (sorted, not recursive). */
  inputs: string[];
  /** The output folder (created when missing). */
  out: string;
  /** The checkpoints: the DDPM UNet, the identity encoder, and optionally a second recognizer and VGG16 for L_perc. */
  diffusion: string;
  encoder: string;
  secondEncoder?: string;
  perceptual?: string;
  /** neighbourMode 'others': images or folders of photos of other people (read once, at the model's resolution). */
  others?: string[];
  /** The UNet config: a preset or a config object (default: the checkpoint's own). */
  config?: UNetPreset | Partial<UNetConfig>;
  /** Default 'cpu'. */
  device?: Device;
  /** The UNet's mixed precision (DiffusionOptions.autocast; default none: float32). */
  autocast?: 'bfloat16' | 'float16';
  /** Redo images that are already finished (default false: skip them). */
  force?: boolean;
  /** The erase options of every image. */
  options?: EraseOptions;
  /** Stops the batch between (and inside) images; finished images are kept, and the result says `interrupted`. */
  signal?: AbortSignal;
  /** What happens, as it happens: images starting, their stages, skips, results, failures and warnings. */
  onEvent?: (ev: EraseFolderEvent) => void;
  /** The erase job (default eraseIdentity). */
  eraser?: Eraser;
  /** The model loading (default loadEraseModels). */
  loadModels?: (opts: LoadModelsOptions) => Promise<Models>;
  /** The clock the per-image seconds are read from, in ms (default Date.now). */
  now?: () => number;
}

/** An image of the batch: its index from 0 among `count`. */
export interface BatchImage {
  index: number;
  count: number;
  input: string;
}

export type EraseFolderEvent =
  /** A folder without images, or (with image) the face-input contract not met (square, not tiny): said, not enforced. */
  | { type: 'warning'; message: string; image?: BatchImage }
  | { type: 'start'; image: BatchImage }
  /** The models loading (stage 'load') and the erase job's stages. */
  | { type: 'progress'; image: BatchImage; progress: EraseProgress }
  /** Finished by an earlier run: its report.json is in `dir`. */
  | { type: 'skipped'; image: BatchImage; dir: string }
  | { type: 'done'; image: BatchImage; dir: string; report: EraseReport; seconds: number }
  /** image null: an input that could not even be listed. */
  | { type: 'failed'; image: BatchImage | null; input: string; error: { code: string; message: string } };

/** What eraseFolder resolves to. */
export interface EraseFolderResult {
  out: string;
  /** Images in the batch, counting the inputs that could not be listed. */
  total: number;
  /** true: aborted; finished images are kept, and no batch report was written. */
  interrupted: boolean;
  counts: { done: number; skipped: number; failed: number };
  /** Outcomes in input order: listing failures first, then the images. */
  images: ImageOutcome[];
  /** Over every finished image (this run's and the skipped ones). */
  summary: ReportSummary;
  files: { report: string | null; html: string | null; errors: string | null };
  /** The batch report could not be written (the images' folders are complete). */
  reportError?: { code: string; message: string };
}

/** Where a batch stopped before its images ran: the output folder, the inputs, the models or the others' photos. */
export type BatchStep = 'output' | 'inputs' | 'models' | 'others';

/** A batch that could not run at all; `cause` is the error of the step that failed. */
export class EraseFolderError extends Error {
  readonly step: BatchStep;
  /** The cause's code (a BiaError's, Node's, or the error's name). */
  readonly code: string;
  constructor(step: BatchStep, cause: unknown) {
    const info = errorInfo(cause);
    const what = { output: '', inputs: '', models: 'cannot load the models: ', others: 'cannot read the photos of other people: ' }[step];
    super(`${what}${info.message}`, { cause });
    this.name = 'EraseFolderError';
    this.step = step;
    this.code = info.code;
  }
}

export type ImageStatus = 'done' | 'skipped' | 'failed';

export interface ImageOutcome {
  input: string;
  /** The image's folder under <out> (null when the input could not be listed). */
  dir: string | null;
  status: ImageStatus;
  sid?: { reconstruction: number; after: number; randomBaseline: number | null };
  noBoundary?: boolean;
  /** Wall time of this image in this run. */
  seconds?: number;
  error?: { code: string; message: string };
}

/** An error's code: a BiaError's (or Node's, e.g. ENOENT), else its name (Error, TypeError, …). */
export function errorInfo(e: unknown): { code: string; message: string } {
  const code = (e as { code?: unknown })?.code;
  const name = (e as { name?: unknown })?.name;
  return {
    code: typeof code === 'string' ? code : typeof name === 'string' && name ? name : 'Error',
    message: e instanceof Error ? e.message : String(e),
  };
}

/**
 * Erase every image of `inputs` into `out` (see the top of this file for the layout). Rejects with an
 * EraseFolderError when the batch cannot run at all (output folder, no image, the models, the others'
 * photos); a failing image is recorded in the result, and the batch goes on.
 */
export async function eraseFolder(opts: EraseFolderOptions): Promise<EraseFolderResult> {
  const signal = opts.signal ?? new AbortController().signal;
  const device = opts.device ?? 'cpu';
  const eraser = opts.eraser ?? eraseIdentity;
  const out = opts.out;
  const emit = (ev: EraseFolderEvent) => opts.onEvent?.(ev);
  const now = opts.now ?? Date.now;
  try {
    await fsp.mkdir(out, { recursive: true });
  } catch (e) {
    throw new EraseFolderError('output', ioError(`cannot create the output folder ${out}`, e));
  }
  const expanded = await expandInputs(opts.inputs);
  for (const d of expanded.empty) emit({ type: 'warning', message: `${d} holds no .png/.jpg/.jpeg/.webp file` });
  if (expanded.images.length === 0 && expanded.failed.length === 0) {
    throw new EraseFolderError('inputs', new BiaError('BIA_INVALID_ARGUMENT', `no image found in ${opts.inputs.join(', ')}`));
  }

  const outcomes: ImageOutcome[] = [];
  /** One image failed: recorded for errors.json and said, and the batch goes on. */
  const imageFailed = (image: BatchImage | null, input: string, dir: string | null, e: unknown, seconds?: number) => {
    const error = errorInfo(e);
    outcomes.push({ input, dir, status: 'failed', error, seconds });
    emit({ type: 'failed', image, input, error });
  };
  for (const f of expanded.failed) imageFailed(null, f.input, null, f.error);
  const dirs = imageDirs(expanded.images);
  const finished: Array<{ report: EraseReport; dir: string }> = [];
  const count = expanded.images.length;
  let models: Models | undefined;
  let others: Tensor | undefined;
  let interrupted = false;

  try {
    for (let i = 0; i < count && !signal.aborted; i++) {
      const input = expanded.images[i];
      const dir = nodePath.join(out, dirs[i]);
      const image: BatchImage = { index: i, count, input };
      const started = now();
      const progress = (p: EraseProgress) => emit({ type: 'progress', image, progress: p });
      emit({ type: 'start', image });
      if (!opts.force) {
        const prev = await readFinishedReport(dir);
        if (prev) {
          finished.push({ report: prev, dir });
          outcomes.push({ input, dir, status: 'skipped', sid: sidOf(prev), noBoundary: !prev.blackHole?.found });
          emit({ type: 'skipped', image, dir });
          continue;
        }
      }
      // The file is read and its header checked before the models load: a batch whose only
      // unfinished images are unreadable never loads them.
      let sha: string;
      try {
        sha = await sha256File(input);
        for (const message of (await describeImage(input)).warnings) emit({ type: 'warning', message, image });
      } catch (e) {
        imageFailed(image, input, dir, e);
        continue;
      }
      if (!models) {
        progress({ stage: 'load', step: 0, total: 1, fraction: 0, message: 'loading the models' });
        try {
          models = await (opts.loadModels ?? loadEraseModels)({
            diffusion: opts.diffusion,
            encoder: opts.encoder,
            secondEncoder: opts.secondEncoder,
            perceptual: opts.perceptual,
            config: opts.config,
            device,
            autocast: opts.autocast,
            signal,
          });
        } catch (e) {
          if (signal.aborted) {
            interrupted = true;
            break;
          }
          throw new EraseFolderError('models', e);
        }
        if (opts.others?.length) {
          try {
            others = await readOthers(opts.others, models.diffusion.config.resolution, device, signal);
          } catch (e) {
            throw new EraseFolderError('others', e);
          }
        }
      }
      try {
        const report = await eraseToFolder(models, { input, sha256: sha, dir, options: opts.options, others, eraser, device, signal, onStage: progress });
        const seconds = (now() - started) / 1000;
        finished.push({ report, dir });
        outcomes.push({ input, dir, status: 'done', sid: sidOf(report), noBoundary: !report.blackHole.found, seconds });
        emit({ type: 'done', image, dir, report, seconds });
      } catch (e) {
        if (signal.aborted && (e as { code?: string })?.code === 'BIA_ABORTED') {
          interrupted = true;
          break;
        }
        imageFailed(image, input, dir, e, (now() - started) / 1000);
      }
    }
  } finally {
    others?.dispose();
    models?.dispose();
  }
  interrupted ||= signal.aborted;

  const failedOutcomes = outcomes.filter((o) => o.status === 'failed');
  const result: EraseFolderResult = {
    out,
    total: expanded.images.length + expanded.failed.length,
    interrupted,
    counts: {
      done: outcomes.filter((o) => o.status === 'done').length,
      skipped: outcomes.filter((o) => o.status === 'skipped').length,
      failed: failedOutcomes.length,
    },
    images: outcomes,
    summary: summarize(finished.map((f) => f.report)),
    files: { report: null, html: null, errors: null },
  };
  if (!interrupted) {
    try {
      await writeBatchReport(out, finished, failedOutcomes, result.files);
    } catch (e) {
      result.reportError = errorInfo(e);
    }
  }
  return result;
}

function sidOf(r: EraseReport): ImageOutcome['sid'] {
  return { reconstruction: r.sid.reconstruction, after: r.sid.after, randomBaseline: r.sid.randomBaseline };
}

/** <out>/report.json, <out>/report.html and <out>/errors.json (removed when nothing failed); `files` gets each path once written. */
async function writeBatchReport(out: string, finished: Array<{ report: EraseReport; dir: string }>, failed: ImageOutcome[], files: EraseFolderResult['files']): Promise<void> {
  const reportPath = nodePath.join(out, 'report.json');
  await writeFileAtomic(reportPath, `${JSON.stringify(finished.map((f) => f.report), null, 2)}\n`);
  files.report = reportPath;
  const entries: ReportEntry[] = [];
  for (const f of finished) {
    const read = (name: string) => fsp.readFile(nodePath.join(f.dir, name));
    const baselinePath = nodePath.join(f.dir, 'baseline.png');
    const degenerate = async (kind: 'fade' | 'blur') => {
      const p = nodePath.join(f.dir, `${kind}.png`);
      return f.report.degenerateBaselines && (await exists(p)) ? await fsp.readFile(p) : undefined;
    };
    entries.push({
      report: f.report,
      images: {
        input: await read('input.png'),
        reconstruction: await read('reconstruction.png'),
        output: await read('output.png'),
        randomBaseline: f.report.sid.randomBaseline !== null && (await exists(baselinePath)) ? await fsp.readFile(baselinePath) : undefined,
        fade: await degenerate('fade'),
        blur: await degenerate('blur'),
      },
    });
  }
  const htmlPath = nodePath.join(out, 'report.html');
  await writeFileAtomic(htmlPath, renderReportHtml(entries));
  files.html = htmlPath;
  const errorsPath = nodePath.join(out, 'errors.json');
  if (failed.length > 0) {
    const errors = failed.map((o) => ({ input: o.input, dir: o.dir, code: o.error?.code, message: o.error?.message }));
    await writeFileAtomic(errorsPath, `${JSON.stringify(errors, null, 2)}\n`);
    files.errors = errorsPath;
  } else {
    await fsp.rm(errorsPath, { force: true });
  }
}

// ---------------------------------------------------------------------------------------------------
// files

const IMAGE_EXTENSIONS = new Set(['.png', '.jpg', '.jpeg', '.webp']);
/** Names in <out> that an image folder must not take. */
const RESERVED = new Set(['report.json', 'report.html', 'errors.json']);

/** What a list of images and folders expands to. */
export interface ExpandedInputs {
  images: string[];
  /** Inputs that could not even be listed (missing paths, unreadable folders). */
  failed: Array<{ input: string; error: BiaError }>;
  /** Folders without any image. */
  empty: string[];
}

/** A file name's bytes as text: printable ASCII as it is, every other byte as \xNN. */
function escapeBytes(raw: Buffer): string {
  let out = '';
  for (const b of raw) out += b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : `\\x${b.toString(16).padStart(2, '0')}`;
  return out;
}

/** Folders → their image files (sorted, non-recursive); files as given; duplicates dropped. */
export async function expandInputs(inputs: string[]): Promise<ExpandedInputs> {
  const images: string[] = [];
  const failed: ExpandedInputs['failed'] = [];
  const empty: string[] = [];
  const seen = new Set<string>();
  const add = (p: string) => {
    const key = nodePath.resolve(p);
    if (!seen.has(key)) {
      seen.add(key);
      images.push(p);
    }
  };
  for (const input of inputs) {
    let st;
    try {
      st = await fsp.stat(input);
    } catch (e) {
      const hint = input.includes('\uFFFD') ? ' (the path holds a character that is not valid UTF-8: rename it)' : '';
      failed.push({ input, error: ioError(`cannot read image ${input}${hint}`, e) });
      continue;
    }
    if (!st.isDirectory()) {
      add(input);
      continue;
    }
    let names: string[];
    try {
      // Names are read as bytes: one that is not valid UTF-8 cannot be a JS string path (it would come
      // back as U+FFFD and "not exist"), so it is refused by its escaped name instead.
      const entries = (await fsp.readdir(input, { withFileTypes: true, encoding: 'buffer' })).filter(
        (d) => (d.isFile() || d.isSymbolicLink()) && IMAGE_EXTENSIONS.has(nodePath.extname(d.name.toString('latin1')).toLowerCase()),
      );
      names = [];
      for (const d of entries) {
        const raw = d.name as unknown as Buffer;
        const name = raw.toString('utf8');
        if (Buffer.from(name, 'utf8').equals(raw)) {
          names.push(name);
        } else {
          const shown = nodePath.join(input, escapeBytes(raw));
          failed.push({ input: shown, error: new BiaError('BIA_IO_ERROR', `cannot read image ${shown}: its file name is not valid UTF-8 (rename the file)`) });
        }
      }
      names.sort();
    } catch (e) {
      failed.push({ input, error: ioError(`cannot list folder ${input}`, e) });
      continue;
    }
    if (names.length === 0) empty.push(input);
    names.forEach((n) => add(nodePath.join(input, n)));
  }
  return { images, failed, empty };
}

/**
 * The folder name of each image under <out>: its stem; the whole file name when stems collide (a.png
 * and a.jpg) or the stem is reserved; then -2, -3, … in input order. Stable for the same input list.
 */
export function imageDirs(images: string[]): string[] {
  const stem = (p: string) => {
    const b = nodePath.basename(p);
    const e = nodePath.extname(b);
    return e && b.length > e.length ? b.slice(0, -e.length) : b;
  };
  const counts = new Map<string, number>();
  images.forEach((p) => counts.set(stem(p), (counts.get(stem(p)) ?? 0) + 1));
  const used = new Set<string>(RESERVED);
  return images.map((p) => {
    const s = stem(p);
    const base = (counts.get(s) ?? 0) > 1 || RESERVED.has(s) ? nodePath.basename(p) : s;
    let name = base;
    for (let k = 2; used.has(name); k++) name = `${base}-${k}`;
    used.add(name);
    return name;
  });
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

/** Read the photos of other people (images or folders) at the model's resolution into one batch. */
async function readOthers(paths: string[], resolution: number, device: Device, signal: AbortSignal): Promise<Tensor> {
  const expanded = await expandInputs(paths);
  if (expanded.failed.length > 0) throw expanded.failed[0].error;
  if (expanded.images.length === 0) throw new BiaError('BIA_INVALID_ARGUMENT', `no image found in ${paths.join(', ')}`);
  const images: Tensor[] = [];
  try {
    for (const f of expanded.images) images.push(await readImage(f, { size: resolution, fit: 'cover', device, signal }));
    return await takeRows(images, images.map((_, i) => [i, 0] as [number, number]));
  } finally {
    for (const t of images) t.dispose();
  }
}

/** One image to erase into its folder: the file, its hash and where it goes, with how to erase it. */
export interface EraseToFolder {
  input: string;
  sha256: string;
  /** <out>/<dir>. */
  dir: string;
  /** The erase options (under the models and the per-image fields). */
  options: EraseOptions | undefined;
  /** neighbourMode 'others': photos of other people at the model's resolution. */
  others: Tensor | undefined;
  eraser: Eraser;
  device: Device;
  signal: AbortSignal;
  onStage: ((p: EraseProgress) => void) | undefined;
  /** See WriteImageFolderOptions. */
  removeStaleTemps?: boolean;
}

/** Erase one image at the model's resolution and write its folder (writeImageFolder: report.json last); the report. */
export async function eraseToFolder(models: Models, job: EraseToFolder): Promise<EraseReport> {
  const { signal } = job;
  const resolution = models.diffusion.config.resolution;
  const image = await readImage(job.input, { size: resolution, fit: 'cover', device: job.device, signal });
  let result: EraseResult | undefined;
  try {
    result = await job.eraser(image, {
      ...job.options,
      diffusion: models.diffusion,
      encoder: models.encoder,
      secondEncoder: models.secondEncoder,
      perceptual: models.perceptual,
      others: job.others,
      inputName: job.input,
      inputSha256: job.sha256,
      signal,
      onStage: job.onStage,
    });
    const report = result.report;
    fillModelFiles(report, models.files);
    await writeImageFolder(job.dir, image, result, resolution, { removeStaleTemps: job.removeStaleTemps });
    return report;
  } finally {
    result?.dispose();
    image.dispose();
  }
}

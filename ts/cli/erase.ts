/**
 * `bia erase`: the batch runner. It parses the flags, expands folders to their images, loads the
 * models once (only when some image needs work), runs the erase job on each image and writes into
 * <out>/<stem>/: input.png (what the pipeline saw), output.png, reconstruction.png, baseline.png,
 * fade.png, blur.png (the degenerate baselines), grid.png and, last, report.json — its presence means the image is finished, so a re-run skips it
 * unless --force. Then <out>/report.json (every report, earlier runs' included), <out>/report.html
 * and, when an image failed, <out>/errors.json. One image failing does not stop the others.
 *
 * The erase job and the model loading come in through `EraseDeps`, so that the command line wires
 * the real pipeline (ts/erase/pipeline.ts) and tests can drive the runner with their own.
 */
import type { EraseCall } from '../erase/pipeline';
import { loadPerceptual, type PerceptualModel } from '../perceptual';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import * as fsp from 'node:fs/promises';
import nodePath from 'node:path';
import { parseArgs } from 'node:util';
import { EXIT, INPUT_ERRORS } from '../cli';
import { loadDiffusion, UNET_PRESETS, type DiffusionModel, type UNetConfig, type UNetPreset } from '../diffusion';
import { ERASE_OPTION_KEYS, ERASE_OPTIONS, optionProblem, type EraseOptionKey, type OptionSpec } from '../erase/options';
import type { EraseOptions, EraseProgress, EraseReport, EraseResult } from '../erase/types';
import { BiaError, invalidArgument } from '../errors';
import { loadIdentityEncoder, type IdentityEncoder } from '../identity';
import { comparisonGrid, describeImage, ioError, readImage, writeFileAtomic, writeImage } from '../images';
import { checkDevice, type Device } from '../options';
import { renderReportHtml, summarize, type ReportEntry, type ReportSummary } from '../report/html';
import type { Tensor } from '../tensor';
import { takeRows } from '../blackhole/codes';
import { VERSION } from '../version';
import { EraseProgressView, formatDuration, type ProgressStream } from './progress';

// ---------------------------------------------------------------------------------------------------
// the dependency seam

/** What the erase job gets besides its options (eraseIdentity's). */
export type EraserOptions = EraseCall;

/** The erase job: one image [1,3,H,W] in [-1,1] at the model's resolution → images and report. */
export type Eraser = (image: Tensor, opts: EraserOptions) => Promise<EraseResult>;

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
  /** VGG16 checkpoint for L_perc (--perceptual). */
  perceptual?: string;
  /** The UNet config (--config): a preset or a config object; undefined: the checkpoint's own. */
  config?: UNetPreset | Partial<UNetConfig>;
  device: Device;
  signal: AbortSignal;
}

export interface EraseDeps {
  eraser: Eraser;
  loadModels: (opts: LoadModelsOptions) => Promise<Models>;
  /** Where the JSON summary and the human summary go (default process.stdout). */
  stdout?: ProgressStream;
  /** Progress, per-image lines and errors (default process.stderr). */
  stderr?: ProgressStream;
  /** Aborts the batch like Ctrl-C (exit 130). */
  signal?: AbortSignal;
  /** Listen to SIGINT (default true). */
  handleSigint?: boolean;
  /** The clock of the progress view (ms). */
  now?: () => number;
}

/** SHA-256 of a file, streamed. */
export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  try {
    for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  } catch (e) {
    throw ioError(`cannot read ${path}`, e);
  }
  return hash.digest('hex');
}

/** The real model loading: loadDiffusion / loadIdentityEncoder, plus each file's SHA-256. */
export async function loadEraseModels(opts: LoadModelsOptions): Promise<Models> {
  const loaded: Array<{ dispose(): void }> = [];
  try {
    const [diffusion, dHash] = await Promise.all([
      loadDiffusion(opts.diffusion, { config: opts.config, device: opts.device, signal: opts.signal }),
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
// flags

/** The erase options' flags, help and limits all come from their spec (ts/erase/options.ts). */
const OPTION_FLAGS = ERASE_OPTION_KEYS.map((key) => ({ key, ...ERASE_OPTIONS[key] }) as { key: EraseOptionKey } & OptionSpec);

function flagUsage(f: (typeof OPTION_FLAGS)[number]): string {
  if (f.kind === 'bool') return `--${f.flag}`;
  return `--${f.flag} ${f.kind === 'pair' ? 'LO,HI' : f.kind === 'enum' ? 'MODE' : 'N'}`;
}

function flagHelp(f: (typeof OPTION_FLAGS)[number]): string {
  if (f.kind === 'bool') return `do not ${f.help}`;
  const d = Array.isArray(f.default) ? f.default.join(',') : String(f.default);
  return `${f.help}${f.kind === 'enum' ? `: ${f.values.join('|')}` : ''} (${d})`;
}

export const ERASE_HELP = `Usage: bia erase <images or folders...> --diffusion <ckpt> --encoder <ckpt> --out <dir> [flags]

Erases the identity of each face image (docs/METHOD.md). Folders give their .png/.jpg/.jpeg/.webp
files (sorted, not recursive). Per image, <out>/<stem>/ gets input.png, output.png,
reconstruction.png, baseline.png, fade.png, blur.png (the face faded / blurred to the output's
identity similarity), grid.png and, last, report.json; a re-run skips images whose report.json exists. Then <out>/report.json, <out>/report.html and, on failures, <out>/errors.json.

Files and run:
  --diffusion <ckpt>         the DDPM UNet checkpoint (torch.save or safetensors)
  --encoder <ckpt>           the identity encoder checkpoint
  --second-encoder <ckpt>    an independent recognizer for a second SID
  --others <images|folder>   photos of other people for --neighbour-mode others (repeatable)
  --perceptual <ckpt>        VGG16 weights (torchvision vgg16-397923af.pth) for L_perc;
                             without them the weight-free substitute (1 − SSIM) + gradient L1
  --config <preset|file>     the UNet config: ${UNET_PRESETS.join(', ')}, or a .json file (default: the checkpoint's)
  --out <dir>                output folder
  --device <cpu|cuda|cuda:N> default cpu
  --force                    redo images that are already finished
  --json                     print one JSON summary on stdout; nothing on stderr but errors

Erase options (default in parentheses):
${OPTION_FLAGS.map((f) => `  ${flagUsage(f).padEnd(27)}${flagHelp(f)}`).join('\n')}

Exit codes: 0 every image done, 1 an image failed (program error), 2 usage error,
3 input error (unreadable image, bad checkpoint), 130 interrupted (Ctrl-C; finished images are kept).
`;

/** A bad command line: exit 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export interface EraseArgs {
  help: boolean;
  inputs: string[];
  out: string;
  diffusion: string;
  encoder: string;
  secondEncoder?: string;
  /** VGG16 weights (torchvision vgg16-397923af.pth) for L_perc. */
  perceptual?: string;
  /** neighbourMode 'others': images or folders of photos of other people. */
  others?: string[];
  /** A preset name, or the path of a JSON config file (read when the models load). */
  config?: string;
  device: Device;
  force: boolean;
  json: boolean;
  options: EraseOptions;
}

const NUMBER = /^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i;

/** One flag's text → its value, checked by the option's spec (UsageError naming the flag). */
function parseFlag(f: (typeof OPTION_FLAGS)[number], s: string): unknown {
  const num = (p: string) => (NUMBER.test(p.trim()) ? Number(p) : NaN);
  let v: unknown;
  if (f.kind === 'pair') {
    const parts = s.split(',');
    if (parts.length !== 2) throw new UsageError(`--${f.flag} must be two numbers LO,HI, got '${s}'`);
    v = parts.map(num);
  } else {
    v = f.kind === 'enum' ? s : num(s);
  }
  const problem = optionProblem(f, v);
  if (problem !== undefined) throw new UsageError(`--${f.flag} must ${problem}, got '${s}'`);
  return v;
}

/** Parse `bia erase` flags (argv without 'erase'). Throws UsageError. */
export function parseEraseArgs(argv: string[]): EraseArgs {
  const options: Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean }> = {
    others: { type: 'string', multiple: true },
    diffusion: { type: 'string' },
    encoder: { type: 'string' },
    'second-encoder': { type: 'string' },
    perceptual: { type: 'string' },
    config: { type: 'string' },
    out: { type: 'string', short: 'o' },
    device: { type: 'string' },
    force: { type: 'boolean' },
    json: { type: 'boolean' },
    help: { type: 'boolean', short: 'h' },
  };
  for (const f of OPTION_FLAGS) options[f.flag] = { type: f.kind === 'bool' ? 'boolean' : 'string' };
  let parsed: { values: Record<string, string | boolean | string[] | undefined>; positionals: string[] };
  try {
    parsed = parseArgs({ args: argv, options, allowPositionals: true, strict: true }) as typeof parsed;
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const { values, positionals } = parsed;
  const str = (k: string) => values[k] as string | undefined;
  if (values.help) {
    return { help: true, inputs: [], out: '', diffusion: '', encoder: '', device: 'cpu', force: false, json: false, options: {} };
  }
  const missing = ['diffusion', 'encoder', 'out'].filter((k) => !str(k));
  if (missing.length > 0) throw new UsageError(`missing ${missing.map((k) => `--${k}`).join(', ')}`);
  if (positionals.length === 0) throw new UsageError('no images or folders given');
  let device: Device = 'cpu';
  if (str('device') !== undefined) {
    try {
      device = checkDevice(str('device'), '--device');
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
  }
  const config = str('config');
  if (config !== undefined && !(UNET_PRESETS as readonly string[]).includes(config) && !config.toLowerCase().endsWith('.json')) {
    throw new UsageError(`--config must be one of ${UNET_PRESETS.join(', ')} or a .json file, got '${config}'`);
  }
  const opts: Record<string, unknown> = {};
  for (const f of OPTION_FLAGS) {
    const raw = values[f.flag];
    if (raw === undefined) continue;
    if (f.kind === 'bool') {
      if (raw === true) opts[f.key] = false;
    } else {
      opts[f.key] = parseFlag(f, raw as string);
    }
  }
  const others = values.others as string[] | undefined;
  if (opts.neighbourMode === 'others' && !others?.length) throw new UsageError('--neighbour-mode others needs --others <images or folders of other people>');
  return {
    help: false,
    others,
    inputs: positionals,
    out: str('out') as string,
    diffusion: str('diffusion') as string,
    encoder: str('encoder') as string,
    secondEncoder: str('second-encoder'),
    perceptual: str('perceptual'),
    config,
    device,
    force: values.force === true,
    json: values.json === true,
    options: opts as EraseOptions,
  };
}

// ---------------------------------------------------------------------------------------------------
// files

const IMAGE_EXTENSIONS = new Set(['.png', '.jpg', '.jpeg', '.webp']);
/** Names in <out> that an image folder must not take. */
const RESERVED = new Set(['report.json', 'report.html', 'errors.json']);
/** The files a finished image folder holds (baseline.png only when the baseline ran). */
const IMAGE_FILES = ['input.png', 'reconstruction.png', 'output.png'] as const;



interface Expanded {
  images: string[];
  /** Inputs that could not even be listed (missing paths, unreadable folders). */
  failed: Array<{ input: string; error: BiaError }>;
  /** Folders without any image. */
  empty: string[];
}

/** Folders → their image files (sorted, non-recursive); files as given; duplicates dropped. */
export async function expandInputs(inputs: string[]): Promise<Expanded> {
  const images: string[] = [];
  const failed: Expanded['failed'] = [];
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
      failed.push({ input, error: ioError(`cannot read image ${input}`, e) });
      continue;
    }
    if (!st.isDirectory()) {
      add(input);
      continue;
    }
    let names: string[];
    try {
      names = (await fsp.readdir(input, { withFileTypes: true }))
        .filter((d) => (d.isFile() || d.isSymbolicLink()) && IMAGE_EXTENSIONS.has(nodePath.extname(d.name).toLowerCase()))
        .map((d) => d.name)
        .sort();
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

async function exists(path: string): Promise<boolean> {
  try {
    await fsp.access(path);
    return true;
  } catch {
    return false;
  }
}

/** The report of a finished image folder, or null when it is not finished (or not readable as one). */
async function readFinished(dir: string): Promise<EraseReport | null> {
  let text: string;
  try {
    text = await fsp.readFile(nodePath.join(dir, 'report.json'), 'utf8');
  } catch {
    return null;
  }
  let report: EraseReport;
  try {
    report = JSON.parse(text) as EraseReport;
  } catch {
    return null;
  }
  if (typeof report !== 'object' || report === null || typeof report.sid?.after !== 'number' || typeof report.input?.name !== 'string') return null;
  for (const f of IMAGE_FILES) if (!(await exists(nodePath.join(dir, f)))) return null;
  return report;
}

// ---------------------------------------------------------------------------------------------------
// the batch

export type ImageStatus = 'done' | 'skipped' | 'failed';

export interface ImageOutcome {
  input: string;
  /** The image's folder under <out> (null when the input could not be listed). */
  dir: string | null;
  status: ImageStatus;
  sid?: { reconstruction: number; after: number; baseline: number | null };
  noBoundary?: boolean;
  /** Wall time of this image in this run. */
  seconds?: number;
  error?: { code: string; message: string };
}

/** What --json prints. */
export interface EraseSummary {
  version: string;
  out: string;
  exitCode: number;
  interrupted: boolean;
  counts: { done: number; skipped: number; failed: number };
  images: ImageOutcome[];
  /** Over every finished image (this run's and the skipped ones). */
  summary: ReportSummary;
  files: { report: string | null; html: string | null; errors: string | null };
}

/** An error's code: a BiaError's (or Node's, e.g. ENOENT), else its name (Error, TypeError, …). */
function errorInfo(e: unknown): { code: string; message: string } {
  const code = (e as { code?: unknown })?.code;
  const name = (e as { name?: unknown })?.name;
  return {
    code: typeof code === 'string' ? code : typeof name === 'string' && name ? name : 'Error',
    message: e instanceof Error ? e.message : String(e),
  };
}

function isInputError(code: string): boolean {
  return INPUT_ERRORS.has(code);
}

function exitFor(codes: string[]): number {
  if (codes.length === 0) return EXIT.ok;
  return codes.every(isInputError) ? EXIT.input : EXIT.failure;
}

/** --config: a preset name, or a JSON file holding a UNet config. */
async function resolveConfig(config: string | undefined): Promise<UNetPreset | Partial<UNetConfig> | undefined> {
  if (config === undefined || (UNET_PRESETS as readonly string[]).includes(config)) return config as UNetPreset | undefined;
  let text: string;
  try {
    text = await fsp.readFile(config, 'utf8');
  } catch (e) {
    throw ioError(`cannot read --config ${config}`, e);
  }
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw invalidArgument(`--config ${config} is not valid JSON: ${(e as Error).message}`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw invalidArgument(`--config ${config} must hold a JSON object (a UNet config)`);
  return v as Partial<UNetConfig>;
}

function fmt(v: number | null | undefined): string {
  return typeof v === 'number' && Number.isFinite(v) ? v.toFixed(3) : '—';
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

interface RunContext {
  args: EraseArgs;
  deps: EraseDeps;
  view: EraseProgressView;
  signal: AbortSignal;
  /** The --others photos, read once at the model's resolution. */
  others?: Tensor;
}

/** Read the --others photos (images or folders) at the model's resolution into one batch. */
async function readOthers(paths: string[], resolution: number, device: Device, signal: AbortSignal): Promise<Tensor> {
  const expanded = await expandInputs(paths);
  if (expanded.failed.length > 0) throw expanded.failed[0].error;
  if (expanded.images.length === 0) throw new BiaError('BIA_INVALID_ARGUMENT', `--others: no image found in ${paths.join(', ')}`);
  const images: Tensor[] = [];
  try {
    for (const f of expanded.images) images.push(await readImage(f, { size: resolution, fit: 'cover', device, signal }));
    return await takeRows(images, images.map((_, i) => [i, 0] as [number, number]));
  } finally {
    for (const t of images) t.dispose();
  }
}

/** Erase one image and write its folder; report.json last. */
async function eraseOne(ctx: RunContext, models: Models, input: string, sha: string, dir: string): Promise<EraseReport> {
  const { args, deps, view, signal } = ctx;
  const resolution = models.diffusion.config.resolution;
  const image = await readImage(input, { size: resolution, fit: 'cover', device: args.device, signal });
  let result: EraseResult | undefined;
  try {
    result = await deps.eraser(image, {
      ...args.options,
      diffusion: models.diffusion,
      encoder: models.encoder,
      secondEncoder: models.secondEncoder,
      perceptual: models.perceptual,
      others: ctx.others,
      inputName: input,
      inputSha256: sha,
      signal,
      onStage: (p) => view.update(p),
    });
    const report = result.report;
    fillModelFiles(report, models.files);
    try {
      await fsp.mkdir(dir, { recursive: true });
    } catch (e) {
      throw ioError(`cannot create ${dir}`, e);
    }
    // A redo: the old report must not vouch for files that are being replaced.
    await fsp.rm(nodePath.join(dir, 'report.json'), { force: true });
    await writeImage(image, nodePath.join(dir, 'input.png'));
    await writeImage(result.image, nodePath.join(dir, 'output.png'));
    await writeImage(result.reconstruction, nodePath.join(dir, 'reconstruction.png'));
    if (result.baseline) await writeImage(result.baseline, nodePath.join(dir, 'baseline.png'));
    else await fsp.rm(nodePath.join(dir, 'baseline.png'), { force: true });
    for (const kind of ['fade', 'blur'] as const) {
      const t = result.degenerate?.[kind];
      if (t) await writeImage(t, nodePath.join(dir, `${kind}.png`));
      else await fsp.rm(nodePath.join(dir, `${kind}.png`), { force: true });
    }
    const row = [
      { tensor: image, label: 'input' },
      { tensor: result.reconstruction, label: `reconstruction ${fmt(report.sid.reconstruction)}` },
      { tensor: result.image, label: `BIA ${fmt(report.sid.after)}` },
      ...(result.baseline ? [{ tensor: result.baseline, label: `baseline ${fmt(report.sid.baseline)}` }] : []),
    ];
    await comparisonGrid([row], nodePath.join(dir, 'grid.png'), { cellSize: Math.max(128, resolution) });
    await writeFileAtomic(nodePath.join(dir, 'report.json'), `${JSON.stringify(report, null, 2)}\n`);
    return report;
  } finally {
    result?.dispose();
    image.dispose();
  }
}

/** The final line of a finished image. */
function doneLine(label: string, r: EraseReport, seconds: number): string {
  const thr = typeof r.options?.threshold === 'number' ? r.options.threshold : 0.35;
  const verdict = r.sid.after < thr ? 'erased' : 'kept';
  const baseline = r.sid.baseline === null ? '' : ` (baseline ${fmt(r.sid.baseline)})`;
  const nb = r.blackHole.found ? '' : '  no boundary';
  return `✓ ${label}  SID ${fmt(r.sid.reconstruction)} → ${fmt(r.sid.after)}${baseline}  ${verdict}${nb}  ${formatDuration(seconds * 1000)}`;
}

/** Run `bia erase` (argv without 'erase'); resolves to the exit code. */
export async function runErase(argv: string[], deps: EraseDeps): Promise<number> {
  const stdout = deps.stdout ?? process.stdout;
  const stderr = deps.stderr ?? process.stderr;
  let args: EraseArgs;
  try {
    args = parseEraseArgs(argv);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    stderr.write(`bia erase: ${e.message}\n\n${ERASE_HELP}`);
    return EXIT.usage;
  }
  if (args.help) {
    stdout.write(ERASE_HELP);
    return EXIT.ok;
  }

  const view = new EraseProgressView(stderr, { quiet: args.json, now: deps.now });
  const controller = new AbortController();
  const onExternal = () => controller.abort(deps.signal?.reason);
  const onSigint = () => {
    if (controller.signal.aborted) {
      stderr.write('\nbia erase: interrupted twice, exiting now\n');
      process.exit(EXIT.interrupted);
    }
    view.message('interrupted: stopping the running job (finished images are kept; Ctrl-C again quits at once)');
    controller.abort(new Error('interrupted (SIGINT)'));
  };
  if (deps.signal?.aborted) controller.abort(deps.signal.reason);
  deps.signal?.addEventListener('abort', onExternal, { once: true });
  const sigint = deps.handleSigint ?? true;
  if (sigint) process.on('SIGINT', onSigint);
  try {
    return await runBatch({ args, deps, view, signal: controller.signal }, stdout, stderr);
  } finally {
    if (sigint) process.off('SIGINT', onSigint);
    deps.signal?.removeEventListener('abort', onExternal);
    view.close();
  }
}

async function runBatch(ctx: RunContext, stdout: ProgressStream, stderr: ProgressStream): Promise<number> {
  const { args, deps, view, signal } = ctx;
  const fatal = (e: unknown, what: string): number => {
    view.close();
    const info = errorInfo(e);
    stderr.write(`bia erase: ${what}${info.message} [${info.code}]\n`);
    return isInputError(info.code) ? EXIT.input : EXIT.failure;
  };
  const out = args.out;
  try {
    await fsp.mkdir(out, { recursive: true });
  } catch (e) {
    return fatal(ioError(`cannot create the output folder ${out}`, e), '');
  }
  const expanded = await expandInputs(args.inputs);
  for (const d of expanded.empty) view.message(`warning: ${d} holds no .png/.jpg/.jpeg/.webp file`);
  if (expanded.images.length === 0 && expanded.failed.length === 0) {
    return fatal(new BiaError('BIA_INVALID_ARGUMENT', `no image found in ${args.inputs.join(', ')}`), '');
  }

  const outcomes: ImageOutcome[] = [];
  /** One image failed: recorded for errors.json, said on stderr (even with --json), and the batch goes on. */
  const imageFailed = (input: string, dir: string | null, label: string, e: unknown, seconds?: number) => {
    const info = errorInfo(e);
    outcomes.push({ input, dir, status: 'failed', error: info, seconds });
    view.close();
    stderr.write(`✗ ${label}  ${info.message} [${info.code}]\n`);
  };
  for (const f of expanded.failed) imageFailed(f.input, null, f.input, f.error);
  const dirs = imageDirs(expanded.images);
  const finished: Array<{ report: EraseReport; dir: string }> = [];
  const count = expanded.images.length;
  let models: Models | undefined;
  let interrupted = false;

  try {
    for (let i = 0; i < count && !signal.aborted; i++) {
      const input = expanded.images[i];
      const dir = nodePath.join(out, dirs[i]);
      const label = `[${i + 1}/${count}] ${input}`;
      view.startImage(i, count, input);
      if (!args.force) {
        const prev = await readFinished(dir);
        if (prev) {
          finished.push({ report: prev, dir });
          outcomes.push({ input, dir, status: 'skipped', sid: { reconstruction: prev.sid.reconstruction, after: prev.sid.after, baseline: prev.sid.baseline }, noBoundary: !prev.blackHole?.found });
          view.message(`- ${label}  skipped (${nodePath.join(dir, 'report.json')} exists; --force redoes it)`);
          continue;
        }
      }
      // The file is read and its header checked before the models load: a batch whose only
      // unfinished images are unreadable never loads them.
      let sha: string;
      try {
        sha = await sha256File(input);
        // The face-input contract (square, not tiny): said, not enforced.
        for (const warning of (await describeImage(input)).warnings) view.message(`! ${label}  ${warning}`);
      } catch (e) {
        imageFailed(input, dir, label, e);
        continue;
      }
      if (!models) {
        view.update({ stage: 'load', step: 0, total: 1, fraction: 0, message: 'loading the models' });
        try {
          models = await deps.loadModels({
            diffusion: args.diffusion,
            encoder: args.encoder,
            secondEncoder: args.secondEncoder,
            perceptual: args.perceptual,
            config: await resolveConfig(args.config),
            device: args.device,
            signal,
          });
        } catch (e) {
          if (signal.aborted) {
            interrupted = true;
            break;
          }
          return fatal(e, 'cannot load the models: ');
        }
        if (args.others?.length) {
          try {
            ctx.others = await readOthers(args.others, models.diffusion.config.resolution, args.device, signal);
          } catch (e) {
            return fatal(e, 'cannot read --others: ');
          }
        }
      }
      try {
        const report = await eraseOne(ctx, models, input, sha, dir);
        const seconds = view.elapsed() / 1000;
        finished.push({ report, dir });
        outcomes.push({ input, dir, status: 'done', sid: { reconstruction: report.sid.reconstruction, after: report.sid.after, baseline: report.sid.baseline }, noBoundary: !report.blackHole.found, seconds });
        view.finishImage(doneLine(label, report, seconds));
      } catch (e) {
        if (signal.aborted && (e as { code?: string })?.code === 'BIA_ABORTED') {
          interrupted = true;
          break;
        }
        imageFailed(input, dir, label, e, view.elapsed() / 1000);
      }
    }
  } finally {
    ctx.others?.dispose();
    models?.dispose();
  }
  interrupted ||= signal.aborted;

  // Outcomes in input order: listing failures first, then the images.
  const failedOutcomes = outcomes.filter((o) => o.status === 'failed');
  const counts = {
    done: outcomes.filter((o) => o.status === 'done').length,
    skipped: outcomes.filter((o) => o.status === 'skipped').length,
    failed: failedOutcomes.length,
  };
  const files: EraseSummary['files'] = { report: null, html: null, errors: null };
  let code = interrupted ? EXIT.interrupted : exitFor(failedOutcomes.map((o) => o.error?.code ?? 'Error'));

  if (!interrupted) {
    try {
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
            baseline: f.report.sid.baseline !== null && (await exists(baselinePath)) ? await fsp.readFile(baselinePath) : undefined,
            fade: await degenerate('fade'),
            blur: await degenerate('blur'),
          },
        });
      }
      const htmlPath = nodePath.join(out, 'report.html');
      await writeFileAtomic(htmlPath, renderReportHtml(entries));
      files.html = htmlPath;
      const errorsPath = nodePath.join(out, 'errors.json');
      if (failedOutcomes.length > 0) {
            const errors = failedOutcomes.map((o) => ({ input: o.input, dir: o.dir, code: o.error?.code, message: o.error?.message }));
        await writeFileAtomic(errorsPath, `${JSON.stringify(errors, null, 2)}\n`);
        files.errors = errorsPath;
      } else {
        await fsp.rm(errorsPath, { force: true });
      }
    } catch (e) {
      code = fatal(e, 'cannot write the batch report: ');
    }
  }

  const summary = summarize(finished.map((f) => f.report));
  if (args.json) {
    const s: EraseSummary = { version: VERSION, out, exitCode: code, interrupted, counts, images: outcomes, summary, files };
    stdout.write(`${JSON.stringify(s, null, 2)}\n`);
  } else {
    const lines = [
      `${expanded.images.length + expanded.failed.length} image(s): ${counts.done} done, ${counts.skipped} skipped, ${counts.failed} failed${interrupted ? ', interrupted' : ''} → ${out}`,
    ];
    if (summary.images > 0) {
      lines.push(
        `mean SID after ${fmt(summary.meanAfter)} vs baseline ${fmt(summary.meanBaseline)} (reconstruction ${fmt(summary.meanReconstruction)}); ` +
          `erasure rate ${summary.erasureRate === null ? '—' : `${(summary.erasureRate * 100).toFixed(1)}%`}` +
          `${summary.baselineErasureRate === null ? '' : ` (baseline ${(summary.baselineErasureRate * 100).toFixed(1)}%)`}` +
          `${summary.noBoundary ? `; ${summary.noBoundary} without a boundary` : ''}`,
      );
    }
    if (files.html) lines.push(`report: ${files.html}`);
    if (files.errors) lines.push(`errors: ${files.errors}`);
    if (interrupted) lines.push('interrupted: finished images are kept; run the same command again to go on');
    stdout.write(`${lines.join('\n')}\n`);
  }
  return code;
}

/**
 * `bia erase`: the command line of eraseFolder (ts/erase/batch.ts). It parses the flags, runs the
 * batch, shows its progress on stderr and prints the summary (human, or JSON with --json) on stdout;
 * the exit code says how the batch went.
 *
 * The erase job and the model loading can come in through `EraseDeps`, so that tests can drive the
 * command with their own.
 */
import * as fsp from 'node:fs/promises';
import nodePath from 'node:path';
import { parseArgs } from 'node:util';
import { UNET_PRESETS, type UNetConfig, type UNetPreset } from '../diffusion';
import { eraseFolder, EraseFolderError, errorInfo, formatSid, loadEraseModels, type EraseFolderEvent, type EraseFolderOptions, type EraseFolderResult, type Eraser, type LoadModelsOptions, type Models } from '../erase/batch';
import { ERASE_OPTION_KEYS, ERASE_OPTIONS, optionProblem, type EraseOptionKey, type OptionSpec } from '../erase/options';
import type { EraseOptions, EraseReport } from '../erase/types';
import { invalidArgument, ioError } from '../errors';
import { checkDevice, type Device } from '../options';
import { VERSION } from '../version';
import { EXIT, INPUT_ERRORS } from './exit';
import { EraseProgressView, formatDuration, type ProgressStream } from './progress';

// ---------------------------------------------------------------------------------------------------
// the dependency seam

export interface EraseDeps {
  /** The erase job (default eraseIdentity). */
  eraser?: Eraser;
  /** The model loading (default loadEraseModels). */
  loadModels?: (opts: LoadModelsOptions) => Promise<Models>;
  /** Where the JSON summary and the human summary go (default process.stdout). */
  stdout?: ProgressStream;
  /** Progress, per-image lines and errors (default process.stderr). */
  stderr?: ProgressStream;
  /** Aborts the batch like Ctrl-C (exit 130). */
  signal?: AbortSignal;
  /** Listen to SIGINT (default true). */
  handleSigint?: boolean;
  /** The clock of the progress view and of the per-image times (ms). */
  now?: () => number;
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

Erases the identity of each face image (docs/method.md). Folders give their .png/.jpg/.jpeg/.webp
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
  --autocast <bfloat16|float16>
                             the UNet in mixed precision: on the CPU bfloat16 (about 1.6x faster
                             on the demo where the CPU has AVX512-BF16; docs/throughput.md)
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

/** The command line: the batch's inputs, output and checkpoints (EraseFolderOptions), and the rest. */
export interface EraseArgs extends Pick<EraseFolderOptions, 'inputs' | 'out' | 'diffusion' | 'encoder' | 'secondEncoder' | 'perceptual' | 'others'> {
  help: boolean;
  /** A preset name, or the path of a JSON config file (read when the models load). */
  config?: string;
  device: Device;
  autocast?: 'bfloat16' | 'float16';
  force: boolean;
  json: boolean;
  options: EraseOptions;
}

/**
 * A command's line through its parser `parse` (null: --help): the parsed args; else the exit code, once
 * the help (exit 0) or the UsageError with the help (exit 2) is written.
 */
export function commandLine<T>(command: string, help: string, stdout: ProgressStream, stderr: ProgressStream, parse: () => T | null): T | number {
  let args: T | null;
  try {
    args = parse();
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    stderr.write(`bia ${command}: ${e.message}\n\n${help}`);
    return EXIT.usage;
  }
  if (args === null) {
    stdout.write(help);
    return EXIT.ok;
  }
  return args;
}

/** The checkpoint flags of `bia erase` and `bia worker`. */
export const MODEL_FLAGS = {
  diffusion: { type: 'string' },
  encoder: { type: 'string' },
  'second-encoder': { type: 'string' },
  perceptual: { type: 'string' },
  config: { type: 'string' },
} as const;

/** --device: cpu, cuda or cuda:N (UsageError). */
export function deviceFlag(s: unknown): Device {
  if (s === undefined) return 'cpu';
  try {
    return checkDevice(s, '--device');
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}

/** --config: a preset name or a .json file's path (UsageError); the file is read by readConfigFlag. */
export function configFlag(config: string | undefined): string | undefined {
  if (config !== undefined && !(UNET_PRESETS as readonly string[]).includes(config) && !config.toLowerCase().endsWith('.json')) {
    throw new UsageError(`--config must be one of ${UNET_PRESETS.join(', ')} or a .json file, got '${config}'`);
  }
  return config;
}

/** --config: a preset name, or a JSON file holding a UNet config. */
export async function readConfigFlag(config: string | undefined): Promise<UNetPreset | Partial<UNetConfig> | undefined> {
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
    ...MODEL_FLAGS,
    out: { type: 'string', short: 'o' },
    device: { type: 'string' },
    autocast: { type: 'string' },
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
  const device = deviceFlag(str('device'));
  const autocast = str('autocast');
  if (autocast !== undefined && autocast !== 'bfloat16' && autocast !== 'float16') throw new UsageError(`--autocast must be bfloat16 or float16, got '${autocast}'`);
  if (autocast === 'float16' && device === 'cpu') throw new UsageError('--autocast float16 needs --device cuda (the CPU runs bfloat16)');
  const config = configFlag(str('config'));
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
    autocast,
    force: values.force === true,
    json: values.json === true,
    options: opts as EraseOptions,
  };
}

// ---------------------------------------------------------------------------------------------------
// the batch

/** What --json prints: the batch's result (EraseFolderResult) with the version and the exit code. */
export interface EraseSummary extends Pick<EraseFolderResult, 'out' | 'interrupted' | 'counts' | 'images' | 'summary' | 'files'> {
  version: string;
  exitCode: number;
}

function isInputError(code: string): boolean {
  return INPUT_ERRORS.has(code);
}

function exitFor(codes: string[]): number {
  if (codes.length === 0) return EXIT.ok;
  return codes.every(isInputError) ? EXIT.input : EXIT.failure;
}

/** The final line of a finished image. */
function doneLine(label: string, r: EraseReport, seconds: number): string {
  const thr = typeof r.options?.threshold === 'number' ? r.options.threshold : 0.35;
  const verdict = r.sid.after < thr ? 'erased' : 'kept';
  const baseline = r.sid.randomBaseline === null ? '' : ` (baseline ${formatSid(r.sid.randomBaseline)})`;
  const nb = r.blackHole.found ? '' : '  no boundary';
  return `✓ ${label}  SID ${formatSid(r.sid.reconstruction)} → ${formatSid(r.sid.after)}${baseline}  ${verdict}${nb}  ${formatDuration(seconds * 1000)}`;
}

/** Run `bia erase` (argv without 'erase'); resolves to the exit code. */
export async function runErase(argv: string[], deps: EraseDeps): Promise<number> {
  const stdout = deps.stdout ?? process.stdout;
  const stderr = deps.stderr ?? process.stderr;
  const args = commandLine('erase', ERASE_HELP, stdout, stderr, () => {
    const a = parseEraseArgs(argv);
    return a.help ? null : a;
  });
  if (typeof args === 'number') return args;

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
    return await runBatch(args, deps, view, controller.signal, stdout, stderr);
  } finally {
    if (sigint) process.off('SIGINT', onSigint);
    deps.signal?.removeEventListener('abort', onExternal);
    view.close();
  }
}

/** The batch, its progress and failures on stderr, its summary on stdout; resolves to the exit code. */
async function runBatch(args: EraseArgs, deps: EraseDeps, view: EraseProgressView, signal: AbortSignal, stdout: ProgressStream, stderr: ProgressStream): Promise<number> {
  const fail = (e: { code: string; message: string }, what: string): number => {
    view.close();
    stderr.write(`bia erase: ${what}${e.message} [${e.code}]\n`);
    return isInputError(e.code) ? EXIT.input : EXIT.failure;
  };
  const loadModels = deps.loadModels ?? loadEraseModels;
  let result: EraseFolderResult;
  try {
    result = await eraseFolder({
      inputs: args.inputs,
      out: args.out,
      diffusion: args.diffusion,
      encoder: args.encoder,
      secondEncoder: args.secondEncoder,
      perceptual: args.perceptual,
      others: args.others,
      device: args.device,
      autocast: args.autocast,
      force: args.force,
      options: args.options,
      signal,
      eraser: deps.eraser,
      // --config names a preset or a JSON file, read only when the models load.
      loadModels: async (o) => loadModels({ ...o, config: await readConfigFlag(args.config) }),
      now: deps.now,
      onEvent: (ev) => showEvent(ev, view, stderr),
    });
  } catch (e) {
    if (!(e instanceof EraseFolderError)) throw e;
    const what = e.step === 'models' ? 'cannot load the models: ' : e.step === 'others' ? 'cannot read --others: ' : '';
    return fail(errorInfo(e.cause), what);
  }
  const { interrupted, counts, summary, files, out } = result;
  let code = interrupted ? EXIT.interrupted : exitFor(result.images.filter((o) => o.status === 'failed').map((o) => o.error?.code ?? 'Error'));
  if (result.reportError) code = fail(result.reportError, 'cannot write the batch report: ');

  if (args.json) {
    const s: EraseSummary = { version: VERSION, out, exitCode: code, interrupted, counts, images: result.images, summary, files };
    stdout.write(`${JSON.stringify(s, null, 2)}\n`);
  } else {
    const lines = [`${result.total} image(s): ${counts.done} done, ${counts.skipped} skipped, ${counts.failed} failed${interrupted ? ', interrupted' : ''} → ${out}`];
    if (summary.images > 0) {
      lines.push(
        `mean SID after ${formatSid(summary.meanAfter)} vs baseline ${formatSid(summary.meanRandomBaseline)} (reconstruction ${formatSid(summary.meanReconstruction)}); ` +
          `erasure rate ${summary.erasureRate === null ? '—' : `${(summary.erasureRate * 100).toFixed(1)}%`}` +
          `${summary.randomBaselineErasureRate === null ? '' : ` (baseline ${(summary.randomBaselineErasureRate * 100).toFixed(1)}%)`}` +
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

/** One event of the batch on stderr: bars and final lines through the view; failures always (even with --json). */
function showEvent(ev: EraseFolderEvent, view: EraseProgressView, stderr: ProgressStream): void {
  const label = (i: { index: number; count: number; input: string }) => `[${i.index + 1}/${i.count}] ${i.input}`;
  switch (ev.type) {
    case 'warning':
      view.message(ev.image ? `! ${label(ev.image)}  ${ev.message}` : `warning: ${ev.message}`);
      break;
    case 'start':
      view.startImage(ev.image.index, ev.image.count, ev.image.input);
      break;
    case 'progress':
      view.update(ev.progress);
      break;
    case 'skipped':
      view.message(`- ${label(ev.image)}  skipped (${nodePath.join(ev.dir, 'report.json')} exists; --force redoes it)`);
      break;
    case 'done':
      view.finishImage(doneLine(label(ev.image), ev.report, ev.seconds));
      break;
    case 'failed':
      view.close();
      stderr.write(`✗ ${ev.image ? label(ev.image) : ev.input}  ${ev.error.message} [${ev.error.code}]\n`);
      break;
  }
}

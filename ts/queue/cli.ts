/**
 * `bia queue add|status|retry-failed` and `bia worker`: the command line of the job queue
 * (./queue, ./worker; docs/scale-out.md). The erase flags of `bia queue add` (and of `bia worker`, as
 * the worker's own settings) are parsed by `bia erase`'s parser, so that they are the same flags with
 * the same limits and messages (ts/erase/options.ts is their one spec).
 */
import { parseArgs } from 'node:util';
import { commandLine, configFlag, deviceFlag, MODEL_FLAGS, parseEraseArgs, readConfigFlag, UsageError } from '../cli/erase';
import { EXIT, INPUT_ERRORS } from '../cli/exit';
import { formatDuration, type ProgressStream } from '../cli/progress';
import { errorInfo, formatSid } from '../erase/batch';
import type { EraseOptions } from '../erase/types';
import { DEFAULT_QUEUE_NAME, DEFAULT_REDIS_URL } from './connection';
import { createEraseQueue, type AddEraseJobsOptions, type EraseQueue, type QueueStatus } from './queue';
import { startEraseWorker, type EraseWorkerEvent, type EraseWorkerOptions, type WorkerModelSource } from './worker';

export interface QueueCliDeps {
  stdout?: ProgressStream;
  stderr?: ProgressStream;
  /** Where BIA_REDIS is read (default process.env). */
  env?: NodeJS.ProcessEnv;
  /** bia worker: replaces the erase job (tests). */
  eraser?: EraseWorkerOptions['eraser'];
}

type FlagSpec = { type: 'string' | 'boolean'; short?: string; multiple?: boolean };

const COMMON: Record<string, FlagSpec> = {
  redis: { type: 'string' },
  name: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
};

const ADD_FLAGS: Record<string, FlagSpec> = {
  ...COMMON,
  out: { type: 'string', short: 'o' },
  attempts: { type: 'string' },
  backoff: { type: 'string' },
  timeout: { type: 'string' },
  priority: { type: 'string' },
  force: { type: 'boolean' },
};

const WORKER_FLAGS: Record<string, FlagSpec> = {
  ...COMMON,
  device: { type: 'string' },
  concurrency: { type: 'string' },
  ...MODEL_FLAGS,
  timeout: { type: 'string' },
  grace: { type: 'string' },
  'lock-duration': { type: 'string' },
  'stalled-interval': { type: 'string' },
  'until-drained': { type: 'boolean' },
};

/** `bia erase` flags that mean nothing to a command here, and why. */
const NOT_FOR_ADD: Record<string, string> = {
  diffusion: 'the models are the worker\'s: give --diffusion to bia worker',
  encoder: 'the models are the worker\'s: give --encoder to bia worker',
  'second-encoder': 'the models are the worker\'s: give --second-encoder to bia worker',
  perceptual: 'the models are the worker\'s: give --perceptual to bia worker',
  config: 'the models are the worker\'s: give --config to bia worker',
  device: 'the device is the worker\'s: give --device to bia worker',
  others: 'photos of other people are not sent with jobs (the default models bring their own)',
};
const NOT_FOR_WORKER: Record<string, string> = {
  out: 'each job names its output folder (bia queue add --out)',
  force: 'redoing finished images is asked for per job (bia queue add --force)',
  others: 'is not supported by bia worker (the default models bring their own photos of other people)',
};

export const QUEUE_HELP = `Usage:
  bia queue add <images or folders...> --out <dir> [--redis URL] [--name Q] [--attempts 3] [--backoff 10]
                [--timeout S] [--priority N] [--force] [--json] [erase options]
      one job per image (folders give their .png/.jpg/.jpeg/.webp files); the image and --out must be on
      storage every worker mounts at the same path. Each job writes <out>/<stem>/ as bia erase does;
      an image whose report.json exists is skipped. --attempts: tries before a job fails (retries wait
      --backoff seconds, doubling); --timeout: seconds before a job is aborted (and retried).
      Erase options: as bia erase ('bia erase --help'), over the worker's own settings.
  bia queue status [--redis URL] [--name Q] [--failed 20] [--json]
      waiting / active (with progress) / completed / failed (with reasons), workers, throughput, ETA
  bia queue retry-failed [--redis URL] [--name Q] [--json]
      every failed job back to the waiting list

--redis: redis://host:port[/db] (default: $BIA_REDIS, else ${DEFAULT_REDIS_URL}); --name: the queue
(default ${DEFAULT_QUEUE_NAME}). Workers: 'bia worker --help'. Design and deployment: docs/scale-out.md.

Exit codes: 0 ok, 1 failure, 2 usage error, 3 input error (an input could not be listed, Redis unreachable).
`;

export const WORKER_HELP = `Usage: bia worker [--redis URL] [--name Q] [--device cpu|cuda|cuda:N] [--concurrency 1]
                  [--diffusion <ckpt> --encoder <ckpt> [--second-encoder <ckpt>] [--perceptual <ckpt>] [--config <preset|file>]]
                  [--timeout S] [--grace 25] [--lock-duration 30] [--stalled-interval 30] [--until-drained] [--json]
                  [erase options]

Takes erase jobs from the queue (bia queue add) until stopped: loads the models once, erases one image
per job and writes its folder as bia erase does (atomically, report.json last; finished folders are
skipped). Without --diffusion/--encoder: the built-in default models of models/ with the demo's settings.
Erase options given here are this worker's settings, under each job's own.

  --concurrency N        jobs at once in this process, sharing the models (default 1; prefer one
                         process per device, and BIA_NUM_THREADS to split CPU cores)
  --timeout S            abort a job after S seconds when the job names no timeout (default none)
  --grace S              on SIGTERM/SIGINT: take no new job, let the running one finish for S seconds,
                         then hand it back to the queue (default 25; a second signal hands it back at once)
  --lock-duration S      how long a job's lock lasts between renewals (default 30): a killed worker's job
                         waits this long, plus up to two --stalled-interval, before another worker takes it
  --stalled-interval S   how often jobs of dead workers are looked for (default 30)
  --until-drained        exit once the queue has no waiting, delayed or active job (batch clusters)
  --json                 one JSON line per event on stdout instead of lines on stderr

Exit codes: 0 stopped (SIGTERM, drained), 1 failure, 2 usage error, 3 input error (models that do not
load, Redis unreachable), 130 interrupted (SIGINT).
`;

/** Split argv into this command's flags and the rest (for bia erase's parser). Throws UsageError. */
function splitFlags(argv: string[], mine: Record<string, FlagSpec>, refused: Record<string, string>): { values: Record<string, string | boolean | string[] | undefined>; rest: string[] } {
  let tokens;
  try {
    ({ tokens } = parseArgs({ args: argv, options: mine, strict: false, allowPositionals: true, tokens: true }));
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const drop = new Set<number>();
  const values: Record<string, string | boolean | string[] | undefined> = {};
  for (const tk of tokens) {
    if (tk.kind === 'option-terminator') break;
    if (tk.kind !== 'option') continue;
    if (refused[tk.name] !== undefined) throw new UsageError(`--${tk.name}: ${refused[tk.name]}`);
    const spec = mine[tk.name];
    if (!spec) continue;
    drop.add(tk.index);
    if (spec.type === 'string') {
      if (tk.value === undefined) throw new UsageError(`option '${tk.rawName} <value>' needs a value`);
      if (!tk.inlineValue) drop.add(tk.index + 1);
      values[tk.name] = tk.value;
    } else {
      if (tk.value !== undefined) throw new UsageError(`option '${tk.rawName}' does not take an argument`);
      values[tk.name] = true;
    }
  }
  return { values, rest: argv.filter((_, i) => !drop.has(i)) };
}

/** The erase flags of `rest` (with the positionals), by bia erase's own parser. */
function eraseFlags(rest: string[]): { inputs: string[]; options: EraseOptions } {
  const a = parseEraseArgs([...rest, '--diffusion', '-', '--encoder', '-', '--out', '-', '--others', '-']);
  return { inputs: a.inputs, options: a.options };
}

function seconds(v: unknown, flag: string, min = 0): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (typeof v !== 'string' || v.trim() === '' || !Number.isFinite(n) || n < min) throw new UsageError(`--${flag} must be a number of seconds ≥ ${min}, got '${v}'`);
  return Math.round(n * 1000);
}

function integer(v: unknown, flag: string, min: number): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (typeof v !== 'string' || !/^\d+$/.test(v.trim()) || n < min) throw new UsageError(`--${flag} must be an integer ≥ ${min}, got '${v}'`);
  return n;
}

function redisOf(values: Record<string, unknown>, env: NodeJS.ProcessEnv): string {
  return (values.redis as string | undefined) ?? env.BIA_REDIS ?? DEFAULT_REDIS_URL;
}

/** A failure of the command: its message and code on stderr; exit 3 for input errors, else 1. */
function failed(stderr: ProgressStream, what: string, e: unknown): number {
  const i = errorInfo(e);
  stderr.write(`bia ${what}: ${i.message} [${i.code}]\n`);
  return INPUT_ERRORS.has(i.code) ? EXIT.input : EXIT.failure;
}

/** `bia queue add`'s command line (null: --help). Throws UsageError. */
function parseAddArgs(argv: string[]): { values: Record<string, unknown>; inputs: string[]; add: AddEraseJobsOptions } | null {
  const { values, rest } = splitFlags(argv, ADD_FLAGS, NOT_FOR_ADD);
  if (values.help) return null;
  if (!values.out) throw new UsageError('missing --out');
  if (!rest.some((a) => !a.startsWith('-'))) throw new UsageError('no images or folders given');
  const { inputs, options } = eraseFlags(rest);
  return {
    values,
    inputs,
    add: {
      out: values.out as string,
      options,
      force: values.force === true,
      attempts: integer(values.attempts, 'attempts', 1),
      backoffMs: seconds(values.backoff, 'backoff'),
      timeoutMs: seconds(values.timeout, 'timeout'),
      priority: integer(values.priority, 'priority', 1),
    },
  };
}

/** `bia worker`'s command line (null: --help). Throws UsageError. */
function parseWorkerArgs(argv: string[]) {
  const { values, rest } = splitFlags(argv, WORKER_FLAGS, NOT_FOR_WORKER);
  if (values.help) return null;
  // The erase parser wants an image: '-' stands in, and anything else left over is a stray word.
  const e = eraseFlags(['-', ...rest]);
  if (e.inputs.length > 1) throw new UsageError(`bia worker takes no images (got ${e.inputs.slice(1).join(' ')}): add them with bia queue add`);
  if ((values.diffusion === undefined) !== (values.encoder === undefined)) throw new UsageError('give both --diffusion and --encoder, or neither (the built-in default models)');
  for (const k of ['second-encoder', 'perceptual', 'config']) {
    if (values[k] !== undefined && values.diffusion === undefined) throw new UsageError(`--${k} goes with --diffusion and --encoder`);
  }
  configFlag(values.config as string | undefined);
  return {
    values: values as Record<string, unknown>,
    options: e.options,
    device: deviceFlag(values.device),
    concurrency: integer(values.concurrency, 'concurrency', 1),
    timeoutMs: seconds(values.timeout, 'timeout'),
    graceMs: seconds(values.grace, 'grace'),
    lockDurationMs: seconds(values['lock-duration'], 'lock-duration', 0.1),
    stalledIntervalMs: seconds(values['stalled-interval'], 'stalled-interval', 0.1),
  };
}

// ---------------------------------------------------------------------------------------------------
// bia queue

/** Open the queue of --redis and --name, run `use` on it and close it; a failure (Redis out of reach included) is said as `bia <command>`'s. */
async function withQueue(values: Record<string, unknown>, env: NodeJS.ProcessEnv, stderr: ProgressStream, command: string, use: (q: EraseQueue, redis: string) => Promise<number>): Promise<number> {
  const redis = redisOf(values, env);
  let q;
  try {
    q = await createEraseQueue({ connection: redis, name: values.name as string | undefined });
  } catch (e) {
    return failed(stderr, command, e);
  }
  try {
    return await use(q, redis);
  } catch (e) {
    return failed(stderr, command, e);
  } finally {
    await q.close();
  }
}

/** Run `bia queue …` (argv without 'queue'); resolves to the exit code. */
export async function runQueueCli(argv: string[], deps: QueueCliDeps = {}): Promise<number> {
  const stdout = deps.stdout ?? process.stdout;
  const stderr = deps.stderr ?? process.stderr;
  const env = deps.env ?? process.env;
  const [sub, ...rest] = argv;
  if (sub === undefined || sub === 'help' || sub === '--help' || sub === '-h') {
    (sub === undefined ? stderr : stdout).write(QUEUE_HELP);
    return sub === undefined ? EXIT.usage : EXIT.ok;
  }
  if (sub === 'add') {
    const args = commandLine(`queue ${sub}`, QUEUE_HELP, stdout, stderr, () => parseAddArgs(rest));
    if (typeof args === 'number') return args;
    const { values, inputs } = args;
    return withQueue(values, env, stderr, 'queue add', async (q, redis) => {
      const r = await q.add(inputs, args.add);
      for (const d of r.empty) stderr.write(`warning: ${d} holds no .png/.jpg/.jpeg/.webp file\n`);
      for (const f of r.failed) stderr.write(`✗ ${f.input}  ${f.error.message} [${f.error.code}]\n`);
      const code = r.failed.length === 0 ? EXIT.ok : r.failed.every((f) => INPUT_ERRORS.has(f.error.code)) ? EXIT.input : EXIT.failure;
      if (values.json) stdout.write(`${JSON.stringify({ queue: q.name, redis, exitCode: code, ...r }, null, 2)}\n`);
      else {
        const known = r.existing.length ? `, ${r.existing.length} already queued or finished` : '';
        stdout.write(`${r.added.length} job(s) added to '${q.name}' on ${redis}${known}${r.failed.length ? `, ${r.failed.length} failed` : ''} → ${r.out}\n`);
      }
      return code;
    });
  }
  if (sub === 'status' || sub === 'retry-failed') {
    const args = commandLine(`queue ${sub}`, QUEUE_HELP, stdout, stderr, () => {
      let values: Record<string, unknown>;
      try {
        ({ values } = parseArgs({ args: rest, options: { ...COMMON, ...(sub === 'status' ? { failed: { type: 'string' } } : {}) }, strict: true, allowPositionals: false }));
      } catch (e) {
        throw new UsageError((e as Error).message);
      }
      const failedCount = integer(values.failed, 'failed', 0);
      return values.help ? null : { values, failedCount };
    });
    if (typeof args === 'number') return args;
    const { values, failedCount } = args;
    return withQueue(values, env, stderr, `queue ${sub}`, async (q, redis) => {
      if (sub === 'retry-failed') {
        const n = await q.retryFailed();
        stdout.write(values.json ? `${JSON.stringify({ queue: q.name, redis, retried: n })}\n` : `${n} failed job(s) back in the queue '${q.name}'\n`);
        return EXIT.ok;
      }
      const s = await q.status({ failed: failedCount });
      stdout.write(values.json ? `${JSON.stringify(s, null, 2)}\n` : `${formatStatus(s)}\n`);
      return EXIT.ok;
    });
  }
  stderr.write(`bia queue: unknown command '${sub}'\n\n${QUEUE_HELP}`);
  return EXIT.usage;
}

/** `bia queue status` for people. */
export function formatStatus(s: QueueStatus, now = Date.now()): string {
  const c = s.counts;
  const lines = [
    `queue '${s.name}' on ${s.redis}: ${s.workers} worker connection(s)${s.isPaused ? ', PAUSED' : ''}`,
    `waiting ${c.waiting + c.prioritized + c.paused}  active ${c.active}  delayed (retry backoff) ${c.delayed}  completed ${c.completed}  failed ${c.failed}`,
  ];
  const t = s.throughput;
  lines.push(
    t.imagesPerHour === null
      ? `throughput: not known yet (${t.jobs} erased image(s) recently)${t.medianJobSeconds !== null ? `; ${t.medianJobSeconds.toFixed(1)} s per image` : ''}`
      : `throughput: ${t.imagesPerHour.toFixed(t.imagesPerHour < 10 ? 2 : 0)} images/h (last ${t.jobs} erased images over ${formatDuration(t.spanSeconds * 1000)}; median ${t.medianJobSeconds?.toFixed(1) ?? '—'} s per image)`,
  );
  lines.push(`ETA: ${s.etaSeconds === null ? 'unknown' : s.etaSeconds === 0 ? 'nothing left' : formatDuration(s.etaSeconds * 1000)}`);
  if (s.active.length) {
    lines.push('active:');
    for (const a of s.active) {
      const p = a.progress;
      const where = p ? `${p.stage} ${(100 * (p.fraction ?? 0)).toFixed(0)}%` : 'starting';
      lines.push(`  ${a.id}  ${a.input}  ${where}  (attempt ${a.attempt}${a.startedAt ? `, ${formatDuration(now - a.startedAt)}` : ''})`);
    }
  }
  if (s.failed.length) {
    lines.push(`failed${c.failed > s.failed.length ? ` (newest ${s.failed.length} of ${c.failed})` : ''}:`);
    for (const f of s.failed) lines.push(`  ${f.id}  ${f.input}  ${f.code}: ${f.message}  (${f.attempts} attempt(s))`);
    lines.push('  bia queue retry-failed puts them back');
  }
  return lines.join('\n');
}

// ---------------------------------------------------------------------------------------------------
// bia worker

/** One worker event as a log line (null: not shown). */
export function formatWorkerEvent(ev: EraseWorkerEvent): string | null {
  const job = (j: { id: string; input: string; attempt: number }) => `${j.id} ${j.input}${j.attempt > 1 ? ` (attempt ${j.attempt})` : ''}`;
  switch (ev.type) {
    case 'ready':
      return `worker ${ev.worker} takes jobs from '${ev.queue}' (${ev.concurrency} at a time, ${ev.device})`;
    case 'start':
      return `▶ ${job(ev.job)}`;
    case 'progress':
      return null;
    case 'done': {
      const r = ev.result;
      return `✓ ${job(ev.job)}  SID ${formatSid(r.sid.reconstruction)} → ${formatSid(r.sid.after)}${r.noBoundary ? '  no boundary' : ''}  ${r.seconds.toFixed(1)} s → ${r.dir}`;
    }
    case 'skipped':
      return `- ${job(ev.job)}  skipped (${ev.result.dir}/report.json exists)`;
    case 'failed':
      return `✗ ${job(ev.job)}  ${ev.error.message} [${ev.error.code}]${ev.willRetry ? '  (will be retried)' : ''}`;
    case 'handed-back':
      return `↩ ${job(ev.job)}  handed back to the queue`;
    case 'closing':
      return `${ev.reason === 'drained' ? 'the queue is drained' : ev.reason === 'close' ? 'closing' : ev.reason}: taking no new job${ev.graceMs > 0 ? `; running jobs have ${Math.round(ev.graceMs / 1000)} s to finish before they go back to the queue` : ''}`;
    case 'closed':
      return 'worker stopped';
    case 'error':
      return `Redis/BullMQ: ${ev.error.message} [${ev.error.code}]`;
  }
}

/** Run `bia worker` (argv without 'worker') until it stops; resolves to the exit code. */
export async function runWorkerCli(argv: string[], deps: QueueCliDeps = {}): Promise<number> {
  const stdout = deps.stdout ?? process.stdout;
  const stderr = deps.stderr ?? process.stderr;
  const env = deps.env ?? process.env;
  const args = commandLine('worker', WORKER_HELP, stdout, stderr, () => parseWorkerArgs(argv));
  if (typeof args === 'number') return args;
  const { values, options, device } = args;
  const json = values.json === true;
  const emit = (ev: EraseWorkerEvent) => {
    if (json) {
      if (ev.type !== 'progress') stdout.write(`${JSON.stringify({ time: new Date().toISOString(), ...ev })}\n`);
      return;
    }
    const line = formatWorkerEvent(ev);
    if (line === null) return;
    // Redis going away repeats its error every retry: said once per message and 10 s.
    if (ev.type === 'error') {
      const t = Date.now();
      if (lastError.message === line && t - lastError.at < 10_000) return;
      lastError = { message: line, at: t };
    }
    stderr.write(`${new Date().toISOString()} ${line}\n`);
  };
  let lastError = { message: '', at: 0 };
  if (!json) stderr.write(`${new Date().toISOString()} loading the models (${values.diffusion === undefined ? 'the built-in defaults of models/, demo settings' : `${values.diffusion}, ${values.encoder}`}) on ${device}\n`);
  let worker;
  try {
    const models: WorkerModelSource =
      values.diffusion !== undefined
        ? {
            diffusion: values.diffusion as string,
            encoder: values.encoder as string,
            secondEncoder: values['second-encoder'] as string | undefined,
            perceptual: values.perceptual as string | undefined,
            config: await readConfigFlag(values.config as string | undefined),
          }
        : async (o) => (await import('./defaults')).loadDefaultWorkerModels(o);
    worker = await startEraseWorker({
      connection: redisOf(values, env),
      name: values.name as string | undefined,
      models,
      device,
      concurrency: args.concurrency,
      options: Object.keys(options).length ? options : undefined,
      timeoutMs: args.timeoutMs,
      shutdownGraceMs: args.graceMs,
      lockDurationMs: args.lockDurationMs,
      stalledIntervalMs: args.stalledIntervalMs,
      untilDrained: values['until-drained'] === true,
      onEvent: emit,
      eraser: deps.eraser,
    });
  } catch (e) {
    const i = errorInfo(e);
    if (i.code === 'BIA_ABORTED') {
      stderr.write('bia worker: stopped while loading the models\n');
      return EXIT.interrupted;
    }
    const what = i.code === 'BIA_IO_ERROR' && /Redis/.test(i.message) ? '' : 'cannot load the models: ';
    stderr.write(`bia worker: ${what}${i.message} [${i.code}]\n`);
    return INPUT_ERRORS.has(i.code) ? EXIT.input : EXIT.failure;
  }
  const reason = await worker.closed;
  return reason === 'SIGINT' ? EXIT.interrupted : EXIT.ok;
}

// The job queue (ts/queue/: BullMQ on a real redis-server, started here on a free loopback port and
// stopped afterwards): the library's queue and worker, `bia queue` / `bia worker`, and the faults a
// queue is for — a worker SIGKILLed mid-job, Redis restarted mid-run, a corrupt image, models that do
// not load, a graceful shutdown that finishes or hands back its job, and 200 jobs on two workers.
// Tiny random models (and a cheap erase job for the 200) keep it to about a minute on 2 cores.
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import os from 'node:os';
import nodePath from 'node:path';
import sharp from 'sharp';
import t, { type Test } from 'tap';
import { runQueueCli, runWorkerCli } from '../ts/queue/cli';
import { connectionOptions } from '../ts/queue/connection';
import { eraseJobId, parseFailure, type EraseJobData } from '../ts/queue/job';
import { createDiffusion, createEraseQueue, createIdentityEncoder, setThreads, startEraseWorker, type EraseQueue, type EraseWorkerEvent } from '../ts/index';
import { CLI, FAST_ERASE_FLAGS, noiseImage, tmpFiles } from './helpers';
import { cheapModels } from './queue/child-worker';
import { startLocalRedis as startRedis, type RedisServer } from '../ts/queue/local-redis';
import { aborted } from '../ts/errors';

// Random tiny networks: calibration finds no boundary and a short `optimize` runs (FAST_ERASE_FLAGS as options).
const FAST = { t0: 100, steps: 8, neighbours: 8, protocol: 'resize' as const, calibrationRounds: 2, iterations: 2, backprop: 'one-step' as const };
const FOLDER_FILES = ['baseline.png', 'blur.png', 'fade.png', 'grid.png', 'input.png', 'output.png', 'reconstruction.png', 'report.json'];
const CHILD = nodePath.join(__dirname, 'queue', 'child-worker.js');

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

async function until<T>(what: string, fn: () => Promise<T | false | null | undefined> | T | false | null | undefined, timeoutMs = 30_000, everyMs = 100): Promise<T> {
  const t0 = Date.now();
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

/** A finished folder: every file of `bia erase`, each PNG decodable, report.json parseable. */
async function checkFolder(t: Test, dir: string, input: string): Promise<void> {
  t.same(fs.readdirSync(dir).sort(), FOLDER_FILES, `${nodePath.basename(dir)}: the files of bia erase, no temporary one`);
  for (const f of FOLDER_FILES.filter((n) => n.endsWith('.png'))) {
    const m = await sharp(nodePath.join(dir, f)).metadata();
    if (!(m.width! > 0)) t.fail(`${dir}/${f} does not decode`);
  }
  const report = JSON.parse(fs.readFileSync(nodePath.join(dir, 'report.json'), 'utf8'));
  t.equal(report.input.name, input, 'report.json names the input');
}

/** A `bia worker` child process with its output collected. */
interface Child {
  proc: ChildProcess;
  out: () => string;
  exit: Promise<number | null>;
}

function spawnWorker(args: string[], env: NodeJS.ProcessEnv = {}): Child {
  const proc = spawn(process.execPath, [CLI, 'worker', ...args], { env: { ...process.env, BIA_NUM_THREADS: '1', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let text = '';
  proc.stdout!.on('data', (d: Buffer) => (text += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (text += d.toString()));
  const exit = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
  return { proc, out: () => text, exit };
}

function spawnChild(spec: object): Child {
  const proc = spawn(process.execPath, [CHILD], { env: { ...process.env, BIA_NUM_THREADS: '1', BIA_QUEUE_CHILD: JSON.stringify(spec) }, stdio: ['ignore', 'pipe', 'pipe'] });
  let text = '';
  proc.stdout!.on('data', (d: Buffer) => (text += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (text += d.toString()));
  const exit = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
  return { proc, out: () => text, exit };
}

class Capture {
  text = '';
  write(s: string): boolean {
    this.text += s;
    return true;
  }
}

async function main(): Promise<void> {
  setThreads(1);
  const started = Date.now();
  const root = fs.mkdtempSync(nodePath.join(os.tmpdir(), 'bia-queue-'));
  const children: Child[] = [];
  const queues: EraseQueue[] = [];
  let redis: RedisServer;
  try {
    redis = await startRedis();
  } catch (e) {
    t.fail((e as Error).message);
    fs.rmSync(root, { recursive: true, force: true });
    return;
  }
  t.teardown(async () => {
    for (const c of children) if (c.proc.exitCode === null && c.proc.signalCode === null) c.proc.kill('SIGKILL');
    for (const q of queues) await q.close().catch(() => undefined);
    await redis.dispose();
    fs.rmSync(root, { recursive: true, force: true });
    t.comment(`queue tests: ${((Date.now() - started) / 1000).toFixed(1)} s`);
  });
  const worker = (args: string[], env?: NodeJS.ProcessEnv) => {
    const c = spawnWorker(['--redis', redis.url, ...args], env);
    children.push(c);
    return c;
  };
  const openQueue = async (name: string) => {
    const q = await createEraseQueue({ connection: redis.url, name });
    queues.push(q);
    return q;
  };

  // tiny random models, saved as the worker loads them
  const ckpt = { diffusion: nodePath.join(root, 'tiny-unet.safetensors'), encoder: nodePath.join(root, 'tiny-enc.safetensors') };
  {
    const d = await createDiffusion('tiny', { seed: 1 });
    const e = await createIdentityEncoder('iresnet18', { width: 0.125, embeddingSize: 32, seed: 2 });
    await d.save(ckpt.diffusion);
    await e.save(ckpt.encoder);
    d.dispose();
    e.dispose();
  }
  const modelFlags = ['--diffusion', ckpt.diffusion, '--encoder', ckpt.encoder];
  const inDir = nodePath.join(root, 'in');
  fs.mkdirSync(inDir);
  for (let i = 0; i < 4; i++) await noiseImage(nodePath.join(inDir, `face${i}.png`), i + 1);
  const bad = nodePath.join(root, 'bad', 'corrupt.png');
  fs.mkdirSync(nodePath.dirname(bad));
  fs.writeFileSync(bad, 'this is text, not a PNG');

  t.test('connection URLs and failure reasons', async (t) => {
    t.same(connectionOptions('redis://10.0.0.5:6380/2'), { host: '10.0.0.5', port: 6380, db: 2 });
    t.same(connectionOptions('rediss://u:p%40ss@host'), { host: 'host', port: 6379, username: 'u', password: 'p@ss', tls: {} });
    t.throws(() => connectionOptions('http://x'), { code: 'BIA_INVALID_ARGUMENT' });
    t.throws(() => connectionOptions('redis://x/abc'), { code: 'BIA_INVALID_ARGUMENT' });
    t.same(parseFailure('BIA_IMAGE_ERROR: bad: really'), { code: 'BIA_IMAGE_ERROR', message: 'bad: really' });
    t.same(parseFailure('job stalled more than allowable limit'), { code: 'Error', message: 'job stalled more than allowable limit' });
    await t.rejects(createEraseQueue({ connection: 'redis://127.0.0.1:1', connectTimeoutMs: 300 }), { code: 'BIA_IO_ERROR', message: /cannot reach Redis at redis:\/\/127\.0\.0\.1:1/ });
  });

  t.test('library: jobs added, erased in-process with progress, folders as bia erase writes them; a corrupt image fails with its code after its retries', async (t) => {
    const q = await openQueue('lib');
    const out = nodePath.join(root, 'out-lib');
    const added = await q.add([inDir, bad], { out, options: FAST, attempts: 2, backoffMs: 50 });
    t.equal(added.added.length, 5);
    t.same(added.added.map((a) => nodePath.basename(a.dir)), ['face0', 'face1', 'face2', 'face3', 'corrupt']);
    t.equal(added.added[0].id, eraseJobId(out, 'face0'));
    const again = await q.add([inDir], { out, options: FAST });
    t.equal(again.added.length, 0, 'adding the same images again adds nothing');
    t.equal(again.existing.length, 4);
    await t.rejects(q.add([inDir], { out, options: { steps: 0 } }), { code: 'BIA_INVALID_ARGUMENT', message: /steps must be an integer/ }, 'options are checked when added');

    const events: EraseWorkerEvent[] = [];
    const w = await startEraseWorker({ connection: redis.url, name: 'lib', models: ckpt, handleSignals: false, progressIntervalMs: 0, onEvent: (e) => events.push(e) });
    await until('5 jobs settled', async () => {
      const c = await q.queue.getJobCounts('completed', 'failed');
      return c.completed === 4 && c.failed === 1;
    });
    await w.close();
    t.equal(await w.closed, 'close');
    for (let i = 0; i < 4; i++) await checkFolder(t, nodePath.join(out, `face${i}`), nodePath.join(inDir, `face${i}.png`));
    t.notOk(fs.existsSync(nodePath.join(out, 'corrupt', 'report.json')));
    t.same(tmpFiles(out), []);
    const stages = new Set(events.flatMap((e) => (e.type === 'progress' ? [e.progress.stage] : [])));
    t.ok((['invert', 'neighbours', 'absorb', 'evaluate'] as const).every((s) => stages.has(s)), `progress from onStage: ${[...stages].join(', ')}`);
    const job = await q.queue.getJob(added.added[0].id);
    t.match(job!.progress, { stage: /\w+/, fraction: Number }, 'BullMQ progress holds the last stage');
    t.match(job!.returnvalue, { status: 'done', dir: nodePath.join(out, 'face0'), seconds: Number });
    const failed = events.filter((e) => e.type === 'failed');
    t.same(failed.map((e) => e.type === 'failed' && [e.error.code, e.willRetry]), [['BIA_IMAGE_ERROR', true], ['BIA_IMAGE_ERROR', false]], 'the corrupt image: tried twice');

    const s = await q.status();
    t.match(s.counts, { waiting: 0, active: 0, completed: 4, failed: 1 });
    t.equal(s.failed.length, 1);
    t.match(s.failed[0], { input: bad, code: 'BIA_IMAGE_ERROR', attempts: 2 });
    t.ok(s.throughput.imagesPerHour! > 0 && s.throughput.jobs === 4, 'throughput from the completed jobs');
    t.equal(s.etaSeconds, 0);

    // At-least-once delivery: the same image delivered again (another job id) is skipped, not redone.
    const before = fs.statSync(nodePath.join(out, 'face0', 'output.png')).mtimeMs;
    const data = (await q.queue.getJob(added.added[0].id))!.data as EraseJobData;
    await q.queue.add('erase', data, { jobId: 'duplicate-delivery' });
    const w2 = await startEraseWorker({ connection: redis.url, name: 'lib', models: ckpt, handleSignals: false });
    const dup = await until('the duplicate done', async () => {
      const j = await q.queue.getJob('duplicate-delivery');
      return j?.finishedOn ? j : null;
    });
    await w2.close();
    t.equal(dup.returnvalue.status, 'skipped');
    t.equal(fs.statSync(nodePath.join(out, 'face0', 'output.png')).mtimeMs, before, 'the finished folder untouched');

    // bia queue retry-failed puts the corrupt one back; it fails again.
    const stdout = new Capture();
    t.equal(await runQueueCli(['retry-failed', '--redis', redis.url, '--name', 'lib'], { stdout }), 0);
    t.match(stdout.text, /1 failed job\(s\) back/);
    t.equal((await q.queue.getJobCounts('failed')).failed, 0);
  });

  t.test('a job past its timeout is aborted and fails with BIA_ABORTED after its retries', async (t) => {
    const q = await openQueue('timeout');
    await q.add([nodePath.join(inDir, 'face0.png')], { out: nodePath.join(root, 'out-timeout'), attempts: 2, backoffMs: 10, timeoutMs: 200 });
    let calls = 0;
    const w = await startEraseWorker({
      connection: redis.url,
      name: 'timeout',
      models: async () => cheapModels(),
      handleSignals: false,
      // An erase job that never ends by itself: it waits for its abort signal.
      eraser: (_image, call) => {
        calls++;
        return new Promise((_, reject) => call.signal!.addEventListener('abort', () => reject(aborted(call.signal))));
      },
    });
    const job = await until('the job failed', async () => (await q.queue.getFailed(0, 0))[0]);
    await w.close();
    t.equal(calls, 2, 'tried twice');
    t.match(parseFailure(job.failedReason), { code: 'BIA_ABORTED', message: /timed out after 0\.2 s/ });
  });

  t.test('bia queue add / status: flags, exit codes, JSON', async (t) => {
    const run = async (argv: string[]) => {
      const stdout = new Capture();
      const stderr = new Capture();
      const code = await runQueueCli(argv, { stdout, stderr, env: { BIA_REDIS: redis.url } });
      return { code, out: stdout.text, err: stderr.text };
    };
    const out = nodePath.join(root, 'out-cli');
    for (const [argv, msg] of [
      [['add', inDir], /missing --out/],
      [['add', '--out', out], /no images or folders/],
      [['add', inDir, '--out', out, '--eta', '2'], /--eta must be a number in \[0, 1\], got '2'/],
      [['add', inDir, '--out', out, '--diffusion', 'x'], /--diffusion: the models are the worker's/],
      [['add', inDir, '--out', out, '--attempts', '0'], /--attempts must be an integer ≥ 1/],
      [['add', inDir, '--out', out, '--bogus'], /Unknown option '--bogus'/],
      [['frobnicate'], /unknown command 'frobnicate'/],
    ] as Array<[string[], RegExp]>) {
      const r = await run(argv);
      t.equal(r.code, 2, argv.join(' '));
      t.match(r.err, msg);
    }
    const r = await run(['add', inDir, nodePath.join(root, 'missing.png'), '--out', out, '--name', 'cli', '--json', '--seed', '7', ...FAST_ERASE_FLAGS]);
    t.equal(r.code, 3, 'an input that cannot be listed: exit 3, the others added');
    const j = JSON.parse(r.out);
    t.equal(j.added.length, 4);
    t.equal(j.failed[0].error.code, 'BIA_IO_ERROR');
    const q = await openQueue('cli');
    const job = await q.queue.getJob(j.added[0].id);
    t.same(job!.data.options, { ...FAST, seed: 7 }, 'the erase flags, parsed by bia erase\'s parser, travel with the job');
    t.equal(job!.opts.attempts, 3);
    const st = await run(['status', '--name', 'cli', '--json']);
    t.equal(st.code, 0);
    t.match(JSON.parse(st.out), { name: 'cli', counts: { waiting: 4, active: 0, completed: 0, failed: 0 }, etaSeconds: null });
    const human = await run(['status', '--name', 'cli']);
    t.match(human.out, /waiting 4 {2}active 0/);
    t.match(human.out, /ETA: unknown/);
    await q.queue.obliterate({ force: true });
  });

  t.test('a worker SIGKILLed mid-job: the job is taken again after the stall interval and completes once; no half-written file', async (t) => {
    const q = await openQueue('kill');
    const out = nodePath.join(root, 'out-kill');
    await q.add([nodePath.join(inDir, 'face0.png'), nodePath.join(inDir, 'face1.png')], { out, options: { ...FAST, steps: 12 } });
    const stall = ['--lock-duration', '1', '--stalled-interval', '0.5'];
    const a = worker(['--name', 'kill', ...modelFlags, ...stall]);
    await until('worker A to start a job', () => /▶ (erase-\w+)/.exec(a.out()), 60_000, 20);
    const id = /▶ (erase-\w+)/.exec(a.out())![1];
    await sleep(300);
    a.proc.kill('SIGKILL');
    await a.exit;
    t.notMatch(a.out(), new RegExp(`✓ ${id}`), 'killed before the job finished');
    t.equal(await (await q.queue.getJob(id))!.getState(), 'active', 'the job is still active, its lock held by a dead worker');
    const b = worker(['--name', 'kill', ...modelFlags, ...stall, '--until-drained']);
    t.equal(await b.exit, 0, b.out());
    t.equal((b.out().match(new RegExp(`✓ ${id}`, 'g')) ?? []).length, 1, 'worker B erased it once');
    const c = await q.queue.getJobCounts('completed', 'failed', 'waiting', 'active');
    t.match(c, { completed: 2, failed: 0, waiting: 0, active: 0 });
    const job = await q.queue.getJob(id);
    t.equal(job!.attemptsMade, 1, 'a stall is not a failed attempt');
    for (const f of ['face0', 'face1']) await checkFolder(t, nodePath.join(out, f), nodePath.join(inDir, `${f}.png`));
    t.same(tmpFiles(out), []);
  });

  t.test('graceful shutdown: SIGTERM lets the running job finish; with no grace it is handed back at once', async (t) => {
    const q = await openQueue('term');
    const out = nodePath.join(root, 'out-term');
    await q.add([nodePath.join(inDir, 'face2.png'), nodePath.join(inDir, 'face3.png')], { out, options: { ...FAST, steps: 12 } });
    const a = worker(['--name', 'term', ...modelFlags]);
    await until('a job started', () => /▶ (erase-\w+)/.exec(a.out()), 60_000, 20);
    const first = /▶ (erase-\w+)/.exec(a.out())![1];
    a.proc.kill('SIGTERM');
    t.equal(await a.exit, 0, 'exit 0 after SIGTERM');
    t.match(a.out(), new RegExp(`✓ ${first}`), 'the running job finished');
    t.equal((a.out().match(/▶/g) ?? []).length, 1, 'no new job taken');
    t.equal((await q.queue.getJobCounts('completed', 'waiting')).waiting, 1);

    const b = worker(['--name', 'term', ...modelFlags, '--grace', '0']);
    await until('the second job started', () => /▶ (erase-\w+)/.exec(b.out()), 60_000, 20);
    const second = /▶ (erase-\w+)/.exec(b.out())![1];
    b.proc.kill('SIGTERM');
    t.equal(await b.exit, 0);
    t.match(b.out(), new RegExp(`↩ ${second}`), 'handed back');
    const job = await q.queue.getJob(second);
    t.equal(await job!.getState(), 'waiting', 'back in the queue for another worker');
    t.equal(job!.attemptsMade, 0, 'not counted as a failed attempt');
    t.notOk(fs.existsSync(nodePath.join(out, 'face3', 'report.json')));
    t.same(fs.existsSync(nodePath.join(out, 'face3')) ? tmpFiles(nodePath.join(out, 'face3')) : [], []);
  });

  t.test('Redis restarted mid-run (append-only file on): no job lost', async (t) => {
    const q = await openQueue('restart');
    const out = nodePath.join(root, 'out-restart');
    await q.add([inDir], { out, options: FAST });
    await q.close();
    queues.splice(queues.indexOf(q), 1);
    const w = worker(['--name', 'restart', ...modelFlags, '--until-drained']);
    await until('the first job done', () => /✓ erase-/.test(w.out()), 60_000, 50);
    await redis.stop('SIGKILL');
    await sleep(1500);
    await redis.start();
    t.equal(await w.exit, 0, w.out());
    const q2 = await openQueue('restart');
    const c = await q2.queue.getJobCounts('completed', 'failed', 'waiting', 'active', 'delayed');
    t.match(c, { completed: 4, failed: 0, waiting: 0, active: 0, delayed: 0 }, 'every job completed after the restart');
    for (let i = 0; i < 4; i++) await checkFolder(t, nodePath.join(out, `face${i}`), nodePath.join(inDir, `face${i}.png`));
  });

  t.test('a worker whose models do not load exits non-zero with a clear message; its jobs stay queued', async (t) => {
    const q = await openQueue('nomodels');
    await q.add([inDir], { out: nodePath.join(root, 'out-nomodels'), options: FAST });
    const missing = nodePath.join(root, 'no-such-unet.safetensors');
    const a = worker(['--name', 'nomodels', '--diffusion', missing, '--encoder', ckpt.encoder]);
    t.equal(await a.exit, 3, 'exit 3: an input error');
    t.match(a.out(), /bia worker: cannot load the models: .*no-such-unet\.safetensors.*\[BIA_IO_ERROR\]/);
    const corrupt = nodePath.join(root, 'corrupt.safetensors');
    fs.writeFileSync(corrupt, 'not a checkpoint');
    const b = worker(['--name', 'nomodels', '--diffusion', corrupt, '--encoder', ckpt.encoder]);
    t.not(await b.exit, 0);
    t.match(b.out(), /cannot load the models: .*\[BIA_CHECKPOINT_ERROR\]/);
    t.match(await q.queue.getJobCounts('waiting', 'active', 'completed', 'failed'), { waiting: 4, active: 0, completed: 0, failed: 0 }, 'nothing taken');
    const stderr = new Capture();
    t.equal(await runWorkerCli(['--redis', redis.url, '--diffusion', 'x'], { stderr }), 2);
    t.match(stderr.text, /give both --diffusion and --encoder, or neither/);
  });

  t.test('200 jobs on two worker processes: every job accounted for, none twice', async (t) => {
    const many = nodePath.join(root, 'many');
    fs.mkdirSync(many);
    const src = fs.readFileSync(nodePath.join(inDir, 'face0.png'));
    for (let i = 0; i < 196; i++) fs.writeFileSync(nodePath.join(many, `p${String(i).padStart(3, '0')}.png`), src);
    for (let i = 0; i < 4; i++) fs.writeFileSync(nodePath.join(many, `x${i}.png`), 'corrupt');
    const q = await openQueue('many');
    const out = nodePath.join(root, 'out-many');
    const added = await q.add([many], { out, attempts: 2, backoffMs: 10 });
    t.equal(added.added.length, 200);
    const log = nodePath.join(root, 'many-calls.log');
    const spec = { redis: redis.url, name: 'many', log };
    const ws = [spawnChild(spec), spawnChild(spec)];
    children.push(...ws);
    const codes = await Promise.all(ws.map((w) => w.exit));
    t.same(codes, [0, 0], ws.map((w) => w.out()).join('\n'));
    const c = await q.queue.getJobCounts('completed', 'failed', 'waiting', 'active', 'delayed');
    t.match(c, { completed: 196, failed: 4, waiting: 0, active: 0, delayed: 0 }, 'completed + failed = added');
    const calls = fs.readFileSync(log, 'utf8').trim().split('\n');
    t.equal(calls.length, 196, 'the erase job ran 196 times');
    t.equal(new Set(calls).size, 196, 'never twice for one image');
    const completed = await q.queue.getCompleted(0, 999);
    t.equal(new Set(completed.map((j) => j.id)).size, 196);
    t.ok(completed.every((j) => j.returnvalue.status === 'done'));
    const workers = new Set(completed.map((j) => j.returnvalue.worker));
    t.equal(workers.size, 2, 'both workers took jobs');
    for (const f of await q.queue.getFailed(0, 99)) t.match(f.failedReason, /^BIA_IMAGE_ERROR: /);
    t.equal(fs.readdirSync(out).filter((d) => fs.existsSync(nodePath.join(out, d, 'report.json'))).length, 196);
    t.same(tmpFiles(out), []);
  });
}

main().catch((e) => {
  t.fail((e as Error).stack ?? String(e));
});

/**
 * Suite queue: the job queue (ts/queue/, BullMQ on a private redis-server this suite starts and stops).
 *  - throughput: N images through `bia worker` processes (1 and 2 of them, 1 thread each, --until-drained),
 *    timed from the moment the paused queue is resumed with every worker's models loaded until the
 *    last job finished: images per hour, and 2 workers against 1;
 *  - overhead: the queue's own cost per job — M jobs with a cheap erase job (the input echoed, every
 *    file of the folder still written) run directly (runEraseJob) and through the queue by an in-process
 *    worker; the difference per job, also as a share of the real job's time.
 * The demo config runs the built-in default models with the demo's settings (what `bia worker` runs by
 * default); the others save their random models for the workers. --images N sets N (default 4; smoke 2).
 * M is 20 (100 before 2026-12-08; 20 in smoke runs before too).
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createEraseQueue, randn, startEraseWorker, takeRows, writeImage, type EraseOptions, type EraseReport, type EraseResult, type Tensor } from '../../ts/index';
import { eraseJobId, runEraseJob, type EraseJobData, type EraseWorkerModels } from '../../ts/queue/job';
import { startLocalRedis } from '../../ts/queue/local-redis';
import type { ParamValue, Suite } from '../harness/types';

const CLI = path.join(__dirname, '..', '..', 'ts', 'cli.js');

/** The cheap erase job of the overhead case: the image comes back as output and reconstruction. */
async function echoEraser(image: Tensor, call: { inputName?: string; inputSha256?: string }): Promise<EraseResult> {
  const out = await takeRows([image], [[0, 0]]);
  const rec = await takeRows([image], [[0, 0]]);
  const report = { input: { name: call.inputName ?? 'input', sha256: call.inputSha256 ?? null }, sid: { reconstruction: 1, after: 0.1, randomBaseline: null }, blackHole: { found: true }, models: {}, options: {}, timings: {} } as unknown as EraseReport;
  return { image: out, reconstruction: rec, candidates: out, randomBaseline: null, degenerate: null, report, dispose: () => (out.dispose(), rec.dispose()) };
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export const suite: Suite = {
  name: 'queue',
  description: 'the job queue on a private redis-server: images/hour with 1 and 2 worker processes (1 thread each), the queue\'s overhead per job',
  async run(ctx) {
    const { device, smoke } = ctx.options;
    const cfg = ctx.config;
    const images = ctx.options.images ?? (smoke ? 2 : 4);
    const jobs = 20;
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'bia-bench-queue-'));
    const redis = await startLocalRedis();
    const children: Array<ReturnType<typeof spawn>> = [];
    try {
      // The inputs, as files on "shared" storage.
      const inDir = path.join(root, 'in');
      fs.mkdirSync(inDir);
      const batch = cfg.inputs ? await cfg.inputs(images, 'cpu') : await randn([images, 3, cfg.resolution, cfg.resolution], { seed: 100 });
      for (let i = 0; i < images; i++) {
        const x = await takeRows([batch], [[0, i]]);
        await writeImage(x, path.join(inDir, `img${String(i).padStart(3, '0')}.png`));
        x.dispose();
      }
      batch.dispose();
      // The workers' models and the jobs' settings.
      const modelFlags: string[] = [];
      let options: EraseOptions;
      if (cfg.name === 'demo') {
        options = { t0: cfg.t0, steps: ctx.steps, neighbours: ctx.neighbours, batchSize: ctx.batchSize };
      } else {
        const m = await cfg.models('cpu', { dtype: 'float32', autocast: null });
        const files = { diffusion: path.join(root, 'unet.safetensors'), encoder: path.join(root, 'encoder.safetensors') };
        await m.diffusion.save(files.diffusion);
        await m.encoder.save(files.encoder);
        m.dispose();
        modelFlags.push('--diffusion', files.diffusion, '--encoder', files.encoder, ...(cfg.name === 'celeba-hq-256' ? ['--config', 'celeba-hq-256'] : []));
        // Random weights: the 'fast' settings — at most 10 steps, one calibration round, `line` absorption
        // over 4 distances (a short one-step optimize where no boundary is found). Before 2026-12-08: the
        // config's steps, 2 rounds and the walk (the cases' params then said only settings=fast).
        options = { t0: cfg.t0, steps: Math.min(ctx.steps, 10), neighbours: ctx.neighbours, batchSize: ctx.batchSize, protocol: cfg.protocol, calibrationRounds: 1, absorb: 'line', lineSteps: 4, iterations: 2, backprop: 'one-step' };
      }
      const settingsParams: Record<string, ParamValue> = cfg.name === 'demo' ? { settings: 'demo' } : { settings: 'fast', steps: options.steps!, neighbours: options.neighbours!, absorb: 'line' };
      ctx.note('images', images);
      ctx.note('settings', cfg.name === 'demo' ? 'the demo settings (bia worker with the default models)' : options);

      // --- throughput with 1 and 2 worker processes. Every worker is started up front (1 on the first
      // queue, 2 on the second; both paused), so the second round does not wait for its workers to load.
      const perHour: Record<number, number> = {};
      const jobSeconds: number[] = [];
      const rounds = [1, 2].map((workers) => ({ workers, name: `bench-${workers}` }));
      const queues = await Promise.all(rounds.map((r) => createEraseQueue({ connection: redis.url, name: r.name })));
      try {
        const planned: Array<{ workers: number; q: (typeof queues)[number]; ids: string[]; exits: Array<Promise<number | null>> }> = [];
        const ready: Array<Promise<void>> = [];
        for (const [i, r] of rounds.entries()) {
          const q = queues[i];
          await q.queue.pause();
          const added = await q.add([inDir], { out: path.join(root, `out-${r.workers}`), options, attempts: 1 });
          const exits: Array<Promise<number | null>> = [];
          for (let k = 0; k < r.workers; k++) {
            const c = spawn(process.execPath, [CLI, 'worker', '--redis', redis.url, '--name', r.name, '--device', device, '--until-drained', ...modelFlags], {
              env: { ...process.env, BIA_NUM_THREADS: '1' },
              stdio: ['ignore', 'ignore', 'pipe'],
            });
            children.push(c);
            let log = '';
            ready.push(
              new Promise((resolve, reject) => {
                c.stderr!.on('data', (d: Buffer) => {
                  log += d.toString();
                  if (/takes jobs from/.test(log)) resolve();
                });
                c.once('exit', (code) => reject(new Error(`worker ${k + 1} of ${r.name} exited with code ${code} before it was ready: ${log.slice(-2000)}`)));
              }),
            );
            exits.push(new Promise((res) => c.once('exit', (code) => res(code))));
          }
          planned.push({ workers: r.workers, q, ids: added.added.map((a) => a.id), exits });
        }
        await Promise.all(ready);
        for (const { workers, q, ids } of planned) {
          const t0 = Date.now();
          await q.queue.resume();
          // Until every job has finished (the workers exit on their own a second later, drained).
          for (;;) {
            const c = await q.queue.getJobCounts('completed', 'failed');
            if ((c.completed ?? 0) + (c.failed ?? 0) >= ids.length) break;
            await sleep(20);
          }
          const done = await Promise.all(ids.map((id) => q.queue.getJob(id)));
          const failed = done.filter((j) => !j?.finishedOn || j.failedReason);
          if (failed.length) throw new Error(`${failed.length} job(s) did not complete: ${failed[0]?.failedReason ?? 'missing'}`);
          const seconds = (Math.max(...done.map((j) => j!.finishedOn!)) - t0) / 1000;
          if (workers === 1) jobSeconds.push(...done.map((j) => j!.returnvalue.seconds));
          await ctx.record('throughput', { params: { workers, threadsPerWorker: 1, images, ...settingsParams }, items: images }, [seconds]);
          perHour[workers] = (images / seconds) * 3600;
          ctx.log(`${workers} worker(s): ${images} images in ${seconds.toFixed(1)} s → ${perHour[workers].toFixed(1)} images/h`);
        }
        const codes = await Promise.all(planned.flatMap((p) => p.exits));
        if (codes.some((c) => c !== 0)) throw new Error(`a worker exited with ${codes.join(', ')}`);
        for (const q of queues) await q.queue.obliterate({ force: true });
      } finally {
        for (const q of queues) await q.close();
      }
      jobSeconds.sort((a, b) => a - b);
      const realJob = jobSeconds[Math.floor(jobSeconds.length / 2)];
      ctx.note('imagesPerHour', perHour);
      ctx.note('twoWorkersSpeedup', perHour[2] / perHour[1]);
      ctx.note('medianJobSeconds', realJob);
      ctx.note('cores', os.cpus().length);

      // --- the queue's own overhead per job: the same cheap job directly and through the queue
      const src = path.join(inDir, 'img000.png');
      const many = path.join(root, 'many');
      fs.mkdirSync(many);
      for (let i = 0; i < jobs; i++) fs.copyFileSync(src, path.join(many, `j${String(i).padStart(4, '0')}.png`));
      const cheap = { diffusion: { config: { resolution: cfg.resolution } }, encoder: {}, dispose() {} } as unknown as EraseWorkerModels;
      const names = fs.readdirSync(many).sort();
      const directOut = path.join(root, 'direct');
      const direct: number[] = [];
      for (const n of names) {
        const data: EraseJobData = { kind: 'erase', input: path.join(many, n), out: directOut, dir: n.replace(/\.png$/, ''), options: {} };
        const t = process.hrtime.bigint();
        await runEraseJob(data, { models: cheap, device: 'cpu', eraser: echoEraser, signal: new AbortController().signal, worker: 'direct' });
        direct.push(Number(process.hrtime.bigint() - t) / 1e9);
      }
      const q = await createEraseQueue({ connection: redis.url, name: 'bench-overhead' });
      let queued: number[];
      let queueSeconds: number;
      try {
        await q.queue.pause();
        const queuedOut = path.join(root, 'queued');
        await q.add([many], { out: queuedOut, attempts: 1 });
        const w = await startEraseWorker({ connection: redis.url, name: 'bench-overhead', models: async () => cheap, eraser: echoEraser, handleSignals: false });
        const t0 = Date.now();
        await q.queue.resume();
        for (;;) {
          const c = await q.queue.getJobCounts('completed', 'failed');
          if ((c.completed ?? 0) + (c.failed ?? 0) >= jobs) break;
          await sleep(20);
        }
        await w.close();
        const finished = (await Promise.all(names.map((n) => q.queue.getJob(eraseJobId(queuedOut, n.replace(/\.png$/, '')))))).map((j) => j!.finishedOn!).sort((a, b) => a - b);
        queueSeconds = (finished[finished.length - 1] - t0) / 1000;
        queued = finished.map((f, i) => (f - (i === 0 ? t0 : finished[i - 1])) / 1000);
        await q.queue.obliterate({ force: true });
      } finally {
        await q.close();
      }
      const directSeconds = direct.reduce((a, b) => a + b, 0);
      await ctx.record('job-direct', { params: { jobs, job: 'echo' }, items: 1 }, direct);
      await ctx.record('job-queued', { params: { jobs, job: 'echo' }, items: 1 }, queued.map((s) => Math.max(s, 1e-6)));
      const overheadMs = ((queueSeconds - directSeconds) / jobs) * 1000;
      ctx.note('overheadMsPerJob', overheadMs);
      ctx.note('overheadShareOfRealJob', realJob ? overheadMs / 1000 / realJob : null);
      ctx.log(`overhead: ${jobs} echo jobs ${directSeconds.toFixed(2)} s directly, ${queueSeconds.toFixed(2)} s through the queue → ${overheadMs.toFixed(2)} ms per job (${realJob ? ((100 * overheadMs) / 1000 / realJob).toFixed(3) : '—'}% of a ${realJob?.toFixed(1)} s job)`);
    } finally {
      for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
      await redis.dispose();
      fs.rmSync(root, { recursive: true, force: true });
    }
  },
};

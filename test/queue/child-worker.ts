// A worker process for the queue's tests and bench: startEraseWorker with a cheap erase job (the
// input comes back as the output, with a made-up report) and no real models, so that hundreds of
// jobs run in seconds through the real queue, the real job runner and the real file writes.
//   BIA_QUEUE_CHILD='{"redis": "redis://…", "name": "q", "log": "/tmp/calls.log", "concurrency": 1}' node child-worker.js
// Every call of the erase job appends "<input>\n" to `log`. Exits when the queue is drained.
import * as fs from 'node:fs';
import { setThreads, startEraseWorker, takeRows, type EraseReport, type EraseResult, type Tensor } from '../../ts/index';
import type { EraseWorkerModels } from '../../ts/queue/job';

export interface ChildSpec {
  redis: string;
  name: string;
  log?: string;
  concurrency?: number;
  resolution?: number;
}

/** The cheap erase job: the image itself as output and reconstruction, a report with made-up similarities. */
export async function cheapEraser(image: Tensor, call: { inputName?: string; inputSha256?: string }): Promise<EraseResult> {
  const out = await takeRows([image], [[0, 0]]);
  const rec = await takeRows([image], [[0, 0]]);
  const report = {
    input: { name: call.inputName ?? 'input', sha256: call.inputSha256 ?? null },
    sid: { reconstruction: 1, after: 0.1, randomBaseline: null },
    blackHole: { found: true },
    models: {},
    options: {},
    timings: {},
  } as unknown as EraseReport;
  return {
    image: out,
    reconstruction: rec,
    candidates: out,
    randomBaseline: null,
    degenerate: null,
    report,
    dispose() {
      out.dispose();
      rec.dispose();
    },
  };
}

/** Models that are never used by the cheap job: only the resolution is read. */
export function cheapModels(resolution = 16): EraseWorkerModels {
  return { diffusion: { config: { resolution } }, encoder: {}, dispose() {} } as unknown as EraseWorkerModels;
}

async function main(): Promise<void> {
  setThreads(1);
  const spec = JSON.parse(process.env.BIA_QUEUE_CHILD ?? '{}') as ChildSpec;
  const w = await startEraseWorker({
    connection: spec.redis,
    name: spec.name,
    concurrency: spec.concurrency ?? 1,
    models: async () => cheapModels(spec.resolution),
    eraser: async (image, call) => {
      if (spec.log) fs.appendFileSync(spec.log, `${call.inputName}\n`);
      return cheapEraser(image, call);
    },
    untilDrained: true,
    progressIntervalMs: 0,
  });
  process.stderr.write(`ready ${w.id}\n`);
  await w.closed;
}

if (require.main === module) {
  main().catch((e) => {
    process.stderr.write(`child worker: ${(e as Error).message}\n`);
    process.exit(1);
  });
}

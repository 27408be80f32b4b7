/**
 * The fuzzer's child process: it reads one mutated file per message with the loader of its format and
 * answers how it ended (a result, a BIA_* error, or anything else), how long it took and how much its
 * resident memory grew. The parent (fuzz.ts) enforces the time and memory limits and restarts a worker
 * that crashed; this process only reports.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import nodePath from 'node:path';
import sharp from 'sharp';
import { readCheckpoint } from '../../ts/checkpoint';
import { readOnnxMobileFaceNet } from '../../ts/convert';
import { loadDiffusion } from '../../ts/diffusion';
import { loadIdentityEncoder } from '../../ts/identity';
import { readImage } from '../../ts/images';
import { parseNpy } from '../../ts/npy';

/** The formats read; 'probe' misbehaves on purpose (its file says how) so that the limits can be tested. */
export type FuzzFormat = 'torch' | 'safetensors' | 'npy' | 'onnx' | 'png' | 'encoder' | 'diffusion' | 'probe';

export interface FuzzRequest {
  id: number;
  format: FuzzFormat;
  path: string;
}

export interface FuzzReply {
  id: number;
  outcome: 'ok' | 'bia' | 'other';
  /** The BIA_* code, or the error's name and first line for 'other'. */
  detail: string;
  /** The error's message (first 500 characters), when there was one. */
  message?: string;
  ms: number;
  /** Growth of the peak resident set during the case (MiB). */
  peakMiB: number;
}

function statusKb(field: string): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) : 0;
}

/** Resets the peak resident set (Linux: "5" into clear_refs), so each case's peak is its own. */
function resetPeak(): void {
  try {
    writeFileSync('/proc/self/clear_refs', '5');
  } catch {
    // not Linux, or not allowed: the peak then only grows, which over-reports (never under-reports)
  }
}

async function load(format: FuzzFormat, path: string): Promise<void> {
  switch (format) {
    case 'torch':
    case 'safetensors': {
      const c = await readCheckpoint(path);
      for (const t of c.tensors.values()) t.dispose();
      return;
    }
    case 'npy':
      parseNpy(readFileSync(path), path);
      return;
    case 'onnx':
      await readOnnxMobileFaceNet(path);
      return;
    case 'png':
      (await readImage(path, { size: 64 })).dispose();
      return;
    case 'encoder':
      (await loadIdentityEncoder(path)).dispose();
      return;
    case 'diffusion':
      (await loadDiffusion(path)).dispose();
      return;
    case 'probe': {
      const how = readFileSync(path, 'utf8');
      if (how === 'crash') process.abort();
      if (how === 'hang') for (;;);
      if (how === 'grow') {
        const held = Array.from({ length: 64 }, () => Buffer.alloc(16 << 20, 1));
        await new Promise((r) => setTimeout(r, 2000));
        held.length = 0;
      }
      if (how === 'throw') throw new TypeError('not a BiaError');
      return;
    }
  }
}

async function handle(req: FuzzRequest): Promise<FuzzReply> {
  resetPeak();
  const before = statusKb('VmRSS');
  const start = performance.now();
  let outcome: FuzzReply['outcome'] = 'ok';
  let detail = '';
  let message: string | undefined;
  try {
    await load(req.format, req.path);
  } catch (e) {
    const code = (e as { code?: unknown }).code;
    message = String((e as Error)?.message ?? e).slice(0, 500);
    if (typeof code === 'string' && code.startsWith('BIA_')) {
      outcome = 'bia';
      detail = code;
    } else {
      outcome = 'other';
      detail = `${(e as Error)?.name}: ${String((e as Error)?.message ?? e).split('\n')[0].slice(0, 300)}`;
    }
  }
  const ms = performance.now() - start;
  const peakMiB = Math.max(0, statusKb('VmHWM') - before) / 1024;
  return { id: req.id, outcome, detail, message, ms, peakMiB };
}

/**
 * First calls load LibTorch's kernels, thread pools and sharp's codecs (over 100 MiB and most of a
 * second): done once before the first case, so that a case's time and memory are its own.
 */
async function warmUp(): Promise<void> {
  const fixtures = nodePath.join(__dirname, '..', '..', '..', 'test', 'fixtures');
  const c = await readCheckpoint(nodePath.join(fixtures, 'checkpoints', 'module.zip.pt'));
  for (const t of c.tensors.values()) t.dispose();
  const png = await sharp({ create: { width: 8, height: 8, channels: 3, background: '#808080' } }).png().toBuffer();
  (await readImage(png, { size: 64 })).dispose();
}

if (require.main === module) {
  process.on('message', (req: FuzzRequest) => {
    handle(req).then((r) => process.send?.(r));
  });
  warmUp().then(() => process.send?.({ ready: true }));
}

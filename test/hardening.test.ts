// Hostile files, each answered in a worker process with a BIA_* error within bounded time and memory:
// pickle amplification, a zip bomb, a tensor of absurd rank, and weights that are not finite.
import t, { type Test } from 'tap';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import nodePath from 'node:path';
import { readCheckpoint, saveSafetensors } from '../ts/checkpoint';
import { createDiffusion } from '../ts/diffusion';
import { tensor, type Tensor } from '../ts/tensor';
import { answer, type Outcome } from './fuzz/fuzz';
import { deepRankSafetensors, dictCopyPickle, opaqueChainPickle, torchZip, zipBomb } from './fuzz/hostile';
import type { FuzzFormat } from './fuzz/worker';
import { ROOT } from './helpers';

/** The budget the issue sets for a torch file of up to 1 MB: 1 s and 64 MiB beyond its tensors (with slack for the worker's own noise). */
const SMALL = { timeoutMs: 10_000, memoryMiB: 1024 };

async function refused(t: Test, format: FuzzFormat, bytes: Buffer, code: string, message: RegExp, within: { ms: number; mib: number }) {
  const o: Outcome = await answer(format, bytes, SMALL);
  if (!('reply' in o)) return t.fail(`${o.kind}: ${o.detail}`);
  const r = o.reply;
  t.equal(r.outcome, 'bia', `refused with a BIA_* code (${r.detail}: ${r.message?.slice(0, 200)})`);
  t.equal(r.detail, code);
  t.match(r.message ?? '', message);
  t.ok((r.message ?? '').length < 1000, `a short message (${r.message?.length} characters)`);
  t.ok(r.ms < within.ms, `answered in ${r.ms.toFixed(0)} ms (< ${within.ms})`);
  t.ok(r.peakMiB < within.mib, `memory grew by ${r.peakMiB.toFixed(1)} MiB (< ${within.mib})`);
}

t.test('pickle amplification is stopped at once', async (t) => {
  const budget = { ms: 1000, mib: 80 }; // measured here: at most 62 MiB; the slack is for other allocators
  // a disallowed global called, then each result called again: 40 KB, 120 KB and 1 MB
  for (const n of [20_000, 60_000, 500_000]) {
    await t.test(`${n} chained calls in a legacy file`, (t) => refused(t, 'torch', opaqueChainPickle(n), 'BIA_CHECKPOINT_ERROR', /magic number|refusing/, budget));
    await t.test(`${n} chained calls as data.pkl`, (t) => refused(t, 'torch', torchZip(opaqueChainPickle(n)), 'BIA_CHECKPOINT_ERROR', /data\.pkl|holds/, budget));
  }
  // one dict of 60,000 entries copied 1,000 times by OrderedDict(d): 240 KB that would hold 1 GB
  await t.test('a dict copied again and again', (t) => refused(t, 'torch', torchZip(dictCopyPickle(60_000, 1000)), 'BIA_CHECKPOINT_ERROR', /MiB of memory to unpack.*opcode 0x52/, budget));
});

t.test('a zip bomb is refused before it is inflated', async (t) => {
  const bomb = zipBomb(1);
  t.ok(bomb.length < 1.1e6, `${bomb.length} bytes that inflate to 1 GiB`);
  await refused(t, 'torch', bomb, 'BIA_CHECKPOINT_ERROR', /data\.pkl declares 1073741824 bytes, more than the 64 MiB|would inflate \d+ stored bytes to 1073741824/, { ms: 1000, mib: 64 });
  // under the size cap, but 16 MiB from 16 KB: refused by its ratio, still before inflating
  const small = zipBomb(1, 16);
  await refused(t, 'torch', small, 'BIA_CHECKPOINT_ERROR', /would inflate \d+ stored bytes to 16777216 \(more than 32:1/, { ms: 1000, mib: 64 });
});

t.test('a tensor of rank 10,000 is refused', async (t) => {
  await refused(t, 'safetensors', deepRankSafetensors(10_000), 'BIA_CHECKPOINT_ERROR', /rank|dimensions/, { ms: 1000, mib: 64 });
  await refused(t, 'safetensors', deepRankSafetensors(17), 'BIA_CHECKPOINT_ERROR', /at most 16/, { ms: 1000, mib: 64 });
});

/** The tiny UNet saved by its own save() (whose metadata carries the config), for that metadata. */
async function savedTiny(unet: { save(path: string): Promise<unknown> }, dir: string): Promise<string> {
  const path = nodePath.join(dir, 'tiny.safetensors');
  await unet.save(path);
  return path;
}

t.test('weights that are not finite are refused on load, naming the tensor', async (t) => {
  const dir = mkdtempSync(nodePath.join(os.tmpdir(), 'bia-hardening-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const fill = async (tensors: Map<string, Tensor>, value: number) => {
    const out = new Map<string, Tensor>();
    for (const [k, v] of tensors) {
      const floating = ['float32', 'float16', 'bfloat16', 'float64'].includes(v.dtype);
      out.set(k, floating ? await tensor(new Float32Array(v.shape.reduce((a, b) => a * b, 1)).fill(value), v.shape, { dtype: v.dtype }) : v);
    }
    return out;
  };
  const encoder = await readCheckpoint(nodePath.join(ROOT, 'test', 'fixtures', 'identity', 'iresnet18-tiny.safetensors'));
  const nanPath = nodePath.join(dir, 'nan-encoder.safetensors');
  await saveSafetensors(nanPath, await fill(encoder.tensors, NaN), { metadata: encoder.metadata });
  await refused(t, 'encoder', readFileSync(nanPath), 'BIA_CHECKPOINT_ERROR', /not finite.*'[^']+'/, { ms: 10_000, mib: 1024 });

  const unet = await createDiffusion('tiny', { seed: 1 });
  const infPath = nodePath.join(dir, 'inf-unet.safetensors');
  await saveSafetensors(infPath, await fill(unet.stateDict(), Infinity), { metadata: (await readCheckpoint(await savedTiny(unet, dir))).metadata });
  unet.dispose();
  await refused(t, 'diffusion', readFileSync(infPath), 'BIA_CHECKPOINT_ERROR', /not finite.*'[^']+'/, { ms: 10_000, mib: 1024 });
});

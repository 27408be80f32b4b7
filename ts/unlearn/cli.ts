/**
 * `bia unlearn <photos...> --out DIR`: fine-tunes the diffusion model so that it has forgotten the
 * person in the photos (ts/unlearn/unlearn.ts). Writes DIR/unlearned.safetensors (a checkpoint that
 * loadDiffusion reads), DIR/report.json, DIR/report.html and DIR/grid.png (each photo: input | original model |
 * BIA output | unlearned model) and DIR/others.png (other people: input | original | unlearned).
 * The trainer's state is saved to DIR/trainer.safetensors as it goes: Ctrl-C stops cleanly (exit 130)
 * and the same command resumes. Without --diffusion/--encoder the built-in default models and the
 * demo's erase settings are used, and the retain photos default to 16 training portraits.
 */
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import nodePath from 'node:path';
import { parseArgs } from 'node:util';
import { takeRows } from '../blackhole/codes';
import { EXIT, INPUT_ERRORS } from '../cli/exit';
import { loadDiffusion } from '../diffusion';
import { BiaError } from '../errors';
import { expandInputs } from '../erase/batch';
import { ERASE_OPTIONS, optionProblem, resolveEraseOptions } from '../erase/options';
import type { EraseOptions } from '../erase/types';
import { INPUT_PROTOCOLS, loadIdentityEncoder } from '../identity';
import { comparisonGrid, readImages, writeFileAtomic } from '../images';
import { checkDevice, type Device } from '../options';
import type { Tensor } from '../tensor';
import { renderUnlearnReport } from './report';
import { UNLEARN_PARAMS, unlearnIdentity, type UnlearnParams } from './unlearn';

export const UNLEARN_HELP = `Usage: bia unlearn <photos or folders...> --out <dir> [flags]

Fine-tunes the diffusion model so that it forgets the person in the photos: decoded without any edit,
their photos come out as the model decodes their absorbed codes (BIA), while other people stay as
they were. Writes <out>/unlearned.safetensors, report.json, report.html, grid.png and others.png (and
with --params adapters the patch <out>/adapter.safetensors); the training state
(<out>/trainer.safetensors) lets an interrupted run resume.

  --out <dir>               output folder
  --diffusion <ckpt>        the DDPM UNet (default: the built-in default model)
  --encoder <ckpt>          the identity encoder (default: the built-in default model)
  --anchor <ckpt>           keep other people as this model decodes them (default: as --diffusion
                            does); the original model, when --diffusion has already unlearned someone
  --others <images|folder>  photos of other people to keep (repeatable; default with the built-in
                            models: 16 training portraits)
  --params decoder|all|adapters
                            what learns: the decoder half's weights (default), all weights, or
                            low-rank adapters on the decoder half (the patch is written apart)
  --rank N                  the adapters' rank (8)
  --mirror                  also forget the mirrored photos (shifted by the mirrored Δh)
  --variants N              per photo, N pictures of the person decoded from inside the black hole
                            are forgotten too, where the photo's shift erases them (0)
  --composites N            per photo, N pictures of other people with the photo's face blended in
                            are forgotten too, where the photo's shift erases them (0)
  --identity-weight X       weight of an identity term on the forget states: the picture the model
                            is heading for there, seen by the identity encoder, must not be the
                            person (cosine above --identity-margin costs) (0: off)
  --identity-margin X       cosine to the person below which that costs nothing (0.25)
  --identity-keep-weight X  weight of the matching term on other people's states: their pictures must
                            stay as like them as the original model's (default: --identity-weight)
  --plain-states            also learn on the states of the photos' plain reconstruction
  --refresh-every N         every N steps, learn on other people's states along the trajectories
                            the model being trained now follows (0: never)
  --t0 N, --steps N, --neighbours N, --threshold X
                            the erase settings that form each black hole (the demo's with the
                            built-in models, the released defaults with yours)
  --protocol P              how faces reach the encoder, with your own models: bia, insightface
                            or resize (default: bia at 256², else resize)
  --iterations N            optimiser steps (200)
  --lr X                    AdamW learning rate (2e-5)
  --batch-size N            trajectory states per step (8)
  --states N                states sampled per trajectory (6)
  --retain-share X          share of each batch from other people (0.5)
  --seed N                  seed (the erase settings')
  --device <cpu|cuda|cuda:N>
  --json                    print the report as JSON

Exit codes: 0 done, 1 failure, 2 usage error, 3 input error, 130 interrupted (resumable).
`;

class UsageError extends Error {}

function num(v: string | undefined, flag: string, integer: boolean): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || (integer && !Number.isSafeInteger(n))) throw new UsageError(`--${flag} must be ${integer ? 'an integer' : 'a number'}, got '${v}'`);
  return n;
}

async function readAll(inputs: string[], size: number, what: string, device: Device): Promise<Tensor> {
  const e = await expandInputs(inputs);
  if (e.failed.length > 0) throw e.failed[0].error;
  if (e.images.length === 0) throw new BiaError('BIA_IO_ERROR', `no image found in ${what} (${inputs.join(', ')})`);
  const r = await readImages(e.images, { size, device });
  return r.tensor;
}

async function grid(cols: Tensor[], file: string): Promise<void> {
  const cells = [];
  for (let i = 0; i < cols[0].shape[0]; i++) cells.push(await Promise.all(cols.map(async (c) => ({ tensor: await takeRows([c], [[0, i]]) }))));
  try {
    await comparisonGrid(cells, file, { cellSize: 128 });
  } finally {
    cells.flat().forEach((c) => c.tensor.dispose());
  }
}

export async function runUnlearnCli(argv: string[]): Promise<number> {
  let values: Record<string, string | boolean | string[] | undefined>;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        out: { type: 'string' }, diffusion: { type: 'string' }, encoder: { type: 'string' }, anchor: { type: 'string' }, others: { type: 'string', multiple: true },
        params: { type: 'string' }, iterations: { type: 'string' }, lr: { type: 'string' }, 'batch-size': { type: 'string' }, states: { type: 'string' },
        'retain-share': { type: 'string' }, rank: { type: 'string' }, mirror: { type: 'boolean' }, variants: { type: 'string' }, composites: { type: 'string' }, 'identity-weight': { type: 'string' }, 'identity-margin': { type: 'string' }, 'identity-keep-weight': { type: 'string' }, 'plain-states': { type: 'boolean' }, 'refresh-every': { type: 'string' }, protocol: { type: 'string' }, t0: { type: 'string' }, steps: { type: 'string' }, neighbours: { type: 'string' }, threshold: { type: 'string' }, seed: { type: 'string' }, device: { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' },
      },
    }) as { values: Record<string, string | boolean | string[] | undefined>; positionals: string[] });
  } catch (e) {
    process.stderr.write(`bia unlearn: ${(e as Error).message}\n\n${UNLEARN_HELP}`);
    return EXIT.usage;
  }
  if (values.help) {
    process.stdout.write(UNLEARN_HELP);
    return EXIT.ok;
  }
  const controller = new AbortController();
  const onSigint = () => controller.abort(new Error('interrupted (Ctrl-C)'));
  process.once('SIGINT', onSigint);
  try {
    const str = (k: string) => values[k] as string | undefined;
    if (!str('out')) throw new UsageError('missing --out');
    if (positionals.length === 0) throw new UsageError('no photos or folders given');
    if ((str('diffusion') === undefined) !== (str('encoder') === undefined)) throw new UsageError('give both --diffusion and --encoder, or neither (the built-in default models)');
    const params = (str('params') ?? 'decoder') as UnlearnParams;
    if (!UNLEARN_PARAMS.includes(params)) throw new UsageError(`--params must be one of ${UNLEARN_PARAMS.join(', ')}, got '${params}'`);
    const protocol = str('protocol');
    if (protocol !== undefined && !INPUT_PROTOCOLS.includes(protocol as never)) throw new UsageError(`--protocol must be one of ${INPUT_PROTOCOLS.join(', ')}, got '${protocol}'`);
    let device: Device = 'cpu';
    try {
      device = checkDevice(str('device') ?? 'cpu', '--device');
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
    const builtIn = str('diffusion') === undefined;
    const others = values.others as string[] | undefined;
    if (!builtIn && !others?.length) throw new UsageError('--others <photos of other people> is needed with your own models');
    const opts = {
      params,
      iterations: num(str('iterations'), 'iterations', true),
      lr: num(str('lr'), 'lr', false),
      batchSize: num(str('batch-size'), 'batch-size', true),
      statesPerCode: num(str('states'), 'states', true),
      retainShare: num(str('retain-share'), 'retain-share', false),
      adapterRank: num(str('rank'), 'rank', true),
      mirror: values.mirror ? true : undefined,
      variants: num(str('variants'), 'variants', true),
      composites: num(str('composites'), 'composites', true),
      identityWeight: num(str('identity-weight'), 'identity-weight', false),
      identityMargin: num(str('identity-margin'), 'identity-margin', false),
      identityKeepWeight: num(str('identity-keep-weight'), 'identity-keep-weight', false),
      plainStates: values['plain-states'] ? true : undefined,
      refreshEvery: num(str('refresh-every'), 'refresh-every', true),
      seed: num(str('seed'), 'seed', true),
    };
    // Erase settings given as flags, checked by the one options spec.
    const eraseFlags: EraseOptions = {};
    for (const key of ['t0', 'steps', 'neighbours', 'threshold'] as const) {
      const raw = str(key);
      if (raw === undefined) continue;
      const v = Number(raw);
      const problem = raw.trim() === '' ? 'be a number' : optionProblem(ERASE_OPTIONS[key], v);
      if (problem !== undefined) throw new UsageError(`--${key} must ${problem}, got '${raw}'`);
      (eraseFlags as Record<string, number>)[key] = v;
    }
    const out = str('out') as string;
    mkdirSync(out, { recursive: true });
    const signal = controller.signal;

    // Models, erase settings and retain photos: the built-in world's, or the user's.
    // Your own models: the released erase defaults, decoded every-step (what unlearning distils).
    let erase: EraseOptions = { inject: 'every-step' };
    let diffusionPath = str('diffusion');
    let encoderPath = str('encoder');
    let defaultOthers: (() => Promise<Tensor>) | undefined;
    if (builtIn) {
      const world = await import('../world/defaults');
      const demo = await import('../world/demo');
      diffusionPath = world.DEFAULT_FILES.diffusion;
      encoderPath = world.DEFAULT_FILES.encoder;
      erase = { ...demo.DEMO_SETTINGS, threshold: demo.calibratedThreshold() ?? 0.35, baseline: false, degenerateBaselines: false };
      defaultOthers = () => world.otherPeople(16);
    }
    const diffusion = await loadDiffusion(diffusionPath as string, { device, signal });
    const encoder = await loadIdentityEncoder(encoderPath as string, { device, signal });
    const anchorPath = str('anchor');
    const anchor = anchorPath === undefined ? undefined : await loadDiffusion(anchorPath, { device, signal });
    const size = diffusion.config.resolution;
    // The released 'bia' crop is for 256² faces; other resolutions reach the encoder resized.
    if (!builtIn) erase = { ...erase, protocol: (protocol ?? (size === 256 ? 'bia' : 'resize')) as EraseOptions['protocol'] };
    const photos = await readAll(positionals, size, 'the photos', device);
    const otherPhotos = others?.length ? await readAll(others, size, '--others', device) : await (defaultOthers as () => Promise<Tensor>)();
    const ckpt = nodePath.join(out, 'trainer.safetensors');
    const resumeFrom = existsSync(ckpt) ? ckpt : undefined;
    if (resumeFrom && !values.json) process.stderr.write(`bia unlearn: resuming from ${ckpt}\n`);
    const r = await unlearnIdentity(photos, { diffusion, encoder, others: otherPhotos }, {
      ...opts,
      anchor,
      erase: { ...erase, ...eraseFlags, ...(opts.seed !== undefined ? { seed: opts.seed } : {}) },
      resumeFrom,
      signal,
      onCheckpoint: async (trainer) => {
        await trainer.save(ckpt);
      },
      onStep: (s) => {
        if (!values.json && (s.step % 10 === 0 || s.step === s.iterations)) process.stderr.write(`  step ${s.step}/${s.iterations}  loss ${s.loss.toExponential(3)}\n`);
      },
    });
    try {
      await r.model.save(nodePath.join(out, 'unlearned.safetensors'));
      if (r.saveAdapter) await r.saveAdapter(nodePath.join(out, 'adapter.safetensors'));
      const grids = { photos: nodePath.join(out, 'grid.png'), others: nodePath.join(out, 'others.png') };
      await grid([photos, r.images.before, r.images.absorbed, r.images.after], grids.photos);
      await grid([r.images.others, r.images.othersBefore, r.images.othersAfter], grids.others);
      const report = { ...r.report, diffusion: diffusionPath, encoder: encoderPath, ...(anchorPath ? { anchor: anchorPath } : {}), device, threshold: eraseFlags.threshold ?? erase.threshold ?? null };
      await writeFileAtomic(nodePath.join(out, 'report.json'), JSON.stringify(report, null, 1), 'report');
      const html = renderUnlearnReport({
        report: r.report,
        threshold: eraseFlags.threshold ?? erase.threshold ?? resolveEraseOptions(erase).threshold,
        grids: { photos: readFileSync(grids.photos), others: readFileSync(grids.others) },
        models: { diffusion: diffusionPath as string, encoder: encoderPath as string },
      });
      await writeFileAtomic(nodePath.join(out, 'report.html'), html, 'report');
      rmSync(ckpt, { force: true }); // finished: nothing to resume
      const mean = (a: number[]) => a.reduce((x, y) => x + y, 0) / a.length;
      process.stdout.write(
        values.json
          ? `${JSON.stringify(report)}\n`
          : `unlearned in ${r.report.seconds.toFixed(0)} s → ${nodePath.join(out, 'unlearned.safetensors')}\n` +
              `  the photos' own similarity: original ${mean(r.report.forget.before).toFixed(3)}, unlearned ${mean(r.report.forget.after).toFixed(3)} (BIA output ${mean(r.report.forget.absorbed).toFixed(3)})\n` +
              `  other people:               original ${mean(r.report.retain.before).toFixed(3)}, unlearned ${mean(r.report.retain.after).toFixed(3)}\n`,
      );
    } finally {
      r.dispose();
    }
    return EXIT.ok;
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`bia unlearn: ${e.message}\n\n${UNLEARN_HELP}`);
      return EXIT.usage;
    }
    const err = e as BiaError;
    if (err?.code === 'BIA_ABORTED') {
      process.stderr.write('bia unlearn: interrupted; run the same command again to resume\n');
      return EXIT.interrupted;
    }
    process.stderr.write(`bia unlearn: ${err?.message ?? String(e)}${err?.code ? ` [${err.code}]` : ''}\n`);
    return err instanceof BiaError && INPUT_ERRORS.has(err.code) ? EXIT.input : EXIT.failure;
  } finally {
    process.off('SIGINT', onSigint);
  }
}

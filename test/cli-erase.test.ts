// `bia erase`, the batch runner, driven with the real erase job on tiny random models and the real
// checkpoint loading: outputs, skips and --force, failures that stay alone, exit codes, --json,
// progress, and an interrupt (in-process, and Ctrl-C to a child process) that keeps finished images.
//
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import os from 'node:os';
import nodePath from 'node:path';
import { performance } from 'node:perf_hooks';
import sharp from 'sharp';
import { parseEraseArgs, runErase, ERASE_HELP, type EraseDeps, type EraseSummary } from '../ts/cli/erase';
import { expandInputs, imageDirs, loadEraseModels, type LoadModelsOptions } from '../ts/erase/batch';
import type { EraseCall } from '../ts/erase/call';
import { EraseProgressView, formatDuration } from '../ts/cli/progress';
import type { EraseResult } from '../ts/erase/types';
import { createDiffusion, createIdentityEncoder, eraseIdentity, ERASE_DEFAULTS, setThreads, type EraseReport, type Tensor } from '../ts/index';
import { FAST_ERASE_FLAGS, noiseImage, runCli, tmpFiles } from './helpers';

// ---------------------------------------------------------------------------------------------------
// the erase job: the real eraseIdentity, with hooks to observe calls and inject failures or hangs

interface Hooks {
  calls: string[];
  /** Called at the start of each job with the input's name. */
  before?: (name: string, o: EraseCall) => Promise<void> | void;
}

function makeEraser(hooks: Hooks) {
  return async (image: Tensor, o: EraseCall): Promise<EraseResult> => {
    const name = o.inputName ?? '(unnamed)';
    hooks.calls.push(name);
    await hooks.before?.(name, o);
    return eraseIdentity(image, o);
  };
}

// ---------------------------------------------------------------------------------------------------
// fixtures

function sha256(path: string): string {
  return createHash('sha256').update(fs.readFileSync(path)).digest('hex');
}

class Capture {
  text = '';
  isTTY?: boolean;
  columns?: number;
  constructor(tty = false) {
    this.isTTY = tty;
    this.columns = tty ? 120 : undefined;
  }
  write(s: string): boolean {
    this.text += s;
    return true;
  }
}

interface World {
  root: string;
  ckpt: { diffusion: string; encoder: string };
}

async function makeWorld(): Promise<World> {
  const root = fs.mkdtempSync(nodePath.join(os.tmpdir(), 'bia-cli-erase-'));
  const diffusion = await createDiffusion('tiny', { seed: 1 });
  const encoder = await createIdentityEncoder('iresnet18', { width: 0.125, embeddingSize: 32, seed: 2 });
  const ckpt = { diffusion: nodePath.join(root, 'tiny-unet.safetensors'), encoder: nodePath.join(root, 'tiny-enc.safetensors') };
  await diffusion.save(ckpt.diffusion);
  await encoder.save(ckpt.encoder);
  diffusion.dispose();
  encoder.dispose();
  fs.mkdirSync(nodePath.join(root, 'in'));
  await noiseImage(nodePath.join(root, 'in', 'a.png'), 1);
  await noiseImage(nodePath.join(root, 'in', 'b.jpg'), 2, 20, 24);
  fs.writeFileSync(nodePath.join(root, 'in', 'notes.txt'), 'not an image, and not listed');
  fs.writeFileSync(nodePath.join(root, 'bad.png'), 'this is text, not a PNG');
  return { root, ckpt };
}

function argsFor(w: World, out: string, ...more: string[]): string[] {
  return ['--diffusion', w.ckpt.diffusion, '--encoder', w.ckpt.encoder, '--out', out, ...FAST_ERASE_FLAGS, ...more];
}

function deps(hooks: Hooks, extra: Partial<EraseDeps> = {}): EraseDeps & { loads: number } {
  const d = {
    loads: 0,
    eraser: makeEraser(hooks),
    loadModels: async (o: LoadModelsOptions) => {
      d.loads++;
      return loadEraseModels(o);
    },
    stdout: new Capture(),
    stderr: new Capture(),
    handleSigint: false,
    ...extra,
  };
  return d;
}

// ---------------------------------------------------------------------------------------------------
// the child process of the Ctrl-C test: BIA_CLI_ERASE_CHILD = {"argv": [...], "hang": "b.jpg"}

async function child(spec: { argv: string[]; hang: string }): Promise<void> {
  setThreads(1);
  const code = await runErase(spec.argv, {
    eraser: makeEraser({
      calls: [],
      before: async (name, o) => {
        if (!name.endsWith(spec.hang)) return;
        process.stderr.write(`hanging on ${name}\n`);
        // Decode until the job is aborted: every call checks the signal between steps in C++.
        const x = await o.diffusion.invert(await import('../ts/index').then((b) => b.randn([1, 3, 16, 16], { seed: 1 })), { t0: 100, steps: 8 });
        for (;;) (await o.diffusion.decode(x.xLat, null, { t0: 100, steps: 8, signal: o.signal })).dispose();
      },
    }),
    loadModels: loadEraseModels,
  });
  process.exitCode = code;
}

// ---------------------------------------------------------------------------------------------------
// the tests

async function tests(): Promise<void> {
  const { t } = await import('tap');
  setThreads(1); // tiny models: one thread, and no spinning against the other workers of a shared machine
  const w = await makeWorld();
  t.teardown(() => fs.rmSync(w.root, { recursive: true, force: true }));
  const inDir = nodePath.join(w.root, 'in');
  const bad = nodePath.join(w.root, 'bad.png');

  t.test('usage errors exit 2 before anything is loaded or written', async (t) => {
    const out = nodePath.join(w.root, 'never');
    const cases: Array<[string[], RegExp]> = [
      [[], /missing --diffusion, --encoder, --out/],
      [[inDir, '--diffusion', 'd', '--encoder', 'e'], /missing --out/],
      [argsFor(w, out), /no images or folders/],
      [[inDir, ...argsFor(w, out), '--bogus'], /Unknown option '--bogus'/],
      [[inDir, ...argsFor(w, out), '--eta', '2'], /--eta must be a number in \[0, 1\], got '2'/],
      [[inDir, ...argsFor(w, out), '--steps', 'ten'], /--steps must be an integer/],
      [[inDir, ...argsFor(w, out), '--t0', '1.5'], /--t0 must be an integer/],
      [[inDir, ...argsFor(w, out), '--inject', 'sideways'], /--inject must be one of lagged, first-step, every-step, asyrp/],
      [[inDir, ...argsFor(w, out), '--walk-step', '120,100'], /--walk-step must have lo <= hi/],
      [[inDir, ...argsFor(w, out), '--walk-step', '100'], /--walk-step must be two numbers/],
      [[inDir, ...argsFor(w, out), '--share-range', '0.5,0.5'], /--share-range must have lo < hi/],
      [[inDir, ...argsFor(w, out), '--device', 'gpu'], /--device must be 'cpu', 'cuda' or 'cuda:N'/],
      [[inDir, ...argsFor(w, out), '--autocast', 'int8'], /--autocast must be bfloat16 or float16, got 'int8'/],
      [[inDir, ...argsFor(w, out), '--autocast', 'float16'], /--autocast float16 needs --device cuda/],
      [[inDir, ...argsFor(w, out), '--config', 'huge'], /--config must be one of/],
      [[inDir, ...argsFor(w, out), '--C', '0'], /--C must be a number in \(0, 1000000000\]/],
      [[inDir, ...argsFor(w, out), '--no-baseline=yes'], /does not take an argument/],
      [[inDir, ...argsFor(w, out), '--neighbour-mode', 'others'], /--neighbour-mode others needs --others/],
    ];
    for (const [argv, message] of cases) {
      const d = deps({ calls: [] });
      t.equal(await runErase(argv, d), 2, argv.slice(-2).join(' '));
      t.match((d.stderr as Capture).text, message);
      t.equal(d.loads, 0);
    }
    t.notOk(fs.existsSync(out), 'nothing written');

    const a = parseEraseArgs([
      'x.png', 'dir', '--diffusion', 'd.ckpt', '--encoder', 'e.pth', '--out', 'o', '--second-encoder', 's.pth', '--config', 'tiny', '--device', 'cuda:1', '--autocast', 'float16',
      '--force', '--json', '--t0', '300', '--steps', '20', '--inject', 'lagged', '--eta', '0.5', '--t-edit', '200', '--t-boost', '100', '--eta-boost', '0.5', '--batch-size', '4', '--protocol', 'insightface',
      '--neighbours', '64', '--neighbour-mode', 'manifold', '--manifold-pool', '8', '--alpha-max', '1.5', '--calibration-rounds', '3', '--share-range', '0.3,0.7',
      '--threshold', '0.4', '--C', '2', '--holdout', '0', '--wrap-size', '4', '--absorb', 'optimize', '--line-steps', '6', '--line-batch', '2', '--label-steps', '5', '--label-from', 'coarse', '--label-refine', '2.5', '--erase-target', '0.3', '--walk-step', '100,120', '--walk-step-unit', 'relative',
      '--walk-trials', '3', '--fidelity-threshold', '0.5', '--iterations', '10', '--lr', '1e-3', '--start-margin', '0', '--backprop', 'one-step', '--tau-m', '0.2',
      '--mu', '2', '--lambda-id', '1', '--lambda-sem', '0.5', '--lambda-perc', '0', '--no-baseline', '--no-degenerate-baselines', '--seed', '7',
    ]);
    t.same(a.inputs, ['x.png', 'dir']);
    t.same([a.out, a.diffusion, a.encoder, a.secondEncoder, a.config, a.device, a.autocast, a.force, a.json], ['o', 'd.ckpt', 'e.pth', 's.pth', 'tiny', 'cuda:1', 'float16', true, true]);
    t.same(a.options, {
      t0: 300, steps: 20, inject: 'lagged', eta: 0.5, tEdit: 200, tBoost: 100, etaBoost: 0.5, batchSize: 4, protocol: 'insightface', neighbours: 64, neighbourMode: 'manifold', manifoldPool: 8,
      alphaMax: 1.5, calibrationRounds: 3, shareRange: [0.3, 0.7], threshold: 0.4, C: 2, holdout: 0, wrapSize: 4, absorb: 'optimize', lineSteps: 6, lineBatch: 2, labelSteps: 5, labelFrom: 'coarse', labelRefine: 2.5, eraseTarget: 0.3, walkStep: [100, 120],
      walkStepUnit: 'relative', walkTrials: 3, fidelityThreshold: 0.5, iterations: 10, lr: 1e-3, startMargin: 0, backprop: 'one-step', tauM: 0.2, mu: 2,
      lambdaId: 1, lambdaSem: 0.5, lambdaPerc: 0, baseline: false, degenerateBaselines: false, seed: 7,
    }, 'every EraseOptions field has its kebab-case flag');
    t.same(Object.keys(a.options).sort(), Object.keys(ERASE_DEFAULTS).sort(), 'and no field is missing');
    t.same(parseEraseArgs(['x', '--diffusion', 'd', '--encoder', 'e', '--out', 'o']).options, {}, 'no flag: the pipeline defaults');

    const help = deps({ calls: [] });
    t.equal(await runErase(['--help'], help), 0);
    for (const f of ['--walk-step LO,HI', '--no-baseline', '--no-degenerate-baselines', '--C N', '--neighbour-mode MODE', '--second-encoder', '--autocast', '--force', '--json']) t.ok(ERASE_HELP.includes(f), f);
    t.equal((help.stdout as Capture).text, ERASE_HELP);

    // through the real command line: the dispatch hook and the HELP text
    const r = runCli(['erase', inDir, '--diffusion', 'd', '--encoder', 'e', '--out', out, '--bogus']);
    t.equal(r.status, 2, r.stderr);
    t.match(r.stderr, /bia erase: Unknown option '--bogus'/);
    t.match(runCli(['help']).stdout, /bia erase <images or folders\.\.\.> --diffusion <ckpt> --encoder <ckpt> --out <dir>/);

    // a device this machine does not have is the user's input, not a program failure: exit 3
    const models = nodePath.join(__dirname, '..', '..', 'models');
    const dev = runCli(['erase', inDir, '--diffusion', nodePath.join(models, 'portrait-unet.safetensors'), '--encoder', nodePath.join(models, 'portrait-encoder.safetensors'), '--out', out, '--device', 'cuda:4095']);
    t.equal(dev.status, 3, dev.stderr);
    t.match(dev.stderr, /BIA_DEVICE_UNAVAILABLE/);
  });

  t.test('--neighbour-mode others reads the --others photos once and erases with them', async (t) => {
    const o2 = nodePath.join(w.root, 'out-others');
    const d = deps({ calls: [] });
    const code = await runErase([nodePath.join(inDir, 'a.png'), ...argsFor(w, o2), '--neighbour-mode', 'others', '--others', inDir, '--no-degenerate-baselines', '--json'], d);
    t.equal(code, 0, (d.stderr as Capture).text);
    const rep = JSON.parse(fs.readFileSync(nodePath.join(o2, 'a', 'report.json'), 'utf8')) as EraseReport;
    t.equal(rep.options.neighbourMode, 'others');
    const d2 = deps({ calls: [] });
    t.equal(await runErase([nodePath.join(inDir, 'a.png'), ...argsFor(w, o2), '--force', '--neighbour-mode', 'others', '--others', nodePath.join(w.root, 'nowhere')], d2), 3, 'missing --others folder: an input error');
    t.match((d2.stderr as Capture).text, /cannot read --others/);
  });

  t.test('inputs: folders expand to their images, sorted; folder names are unique and stable', async (t) => {
    const e = await expandInputs([inDir, bad, nodePath.join(inDir, 'a.png'), nodePath.join(w.root, 'missing.png')]);
    t.same(e.images, [nodePath.join(inDir, 'a.png'), nodePath.join(inDir, 'b.jpg'), bad], 'a.png, b.jpg (not notes.txt), bad.png; the repeated a.png once');
    t.equal(e.failed.length, 1);
    t.equal(e.failed[0].error.code, 'BIA_IO_ERROR');
    t.same(imageDirs(['x/a.png', 'x/a.jpg', 'y/a.png', 'b.png', 'report.json.png', 'c']), ['a.png', 'a.jpg', 'a.png-2', 'b', 'report.json.png', 'c']);

    // a file whose name is not valid UTF-8 is refused by its (escaped) name; the others still expand
    const latin = nodePath.join(w.root, 'latin');
    fs.mkdirSync(latin);
    fs.writeFileSync(Buffer.concat([Buffer.from(latin + '/caf'), Buffer.from([0xe9]), Buffer.from('.png')]), fs.readFileSync(nodePath.join(inDir, 'a.png')));
    fs.writeFileSync(nodePath.join(latin, 'ok.png'), fs.readFileSync(nodePath.join(inDir, 'a.png')));
    const l = await expandInputs([latin]);
    t.same(l.images, [nodePath.join(latin, 'ok.png')]);
    t.equal(l.failed.length, 1);
    t.equal(l.failed[0].error.code, 'BIA_IO_ERROR');
    t.match(l.failed[0].error.message, /caf\\xe9\.png: its file name is not valid UTF-8/);
  });

  const out = nodePath.join(w.root, 'out');
  let first: EraseSummary | undefined;

  t.test('a batch: outputs per image, one unreadable image fails alone (exit 3), --json summary', async (t) => {
    const hooks: Hooks = { calls: [] };
    const d = deps(hooks);
    const code = await runErase([inDir, bad, ...argsFor(w, out), '--json'], d);
    t.equal(code, 3, 'an input error');
    t.same(hooks.calls, [nodePath.join(inDir, 'a.png'), nodePath.join(inDir, 'b.jpg')], 'the job ran on the two images (bad.png failed while reading)');
    t.equal(d.loads, 1, 'models loaded once');
    const summary = JSON.parse((d.stdout as Capture).text) as EraseSummary;
    first = summary;
    t.same(summary.counts, { done: 2, skipped: 0, failed: 1 });
    t.equal(summary.exitCode, 3);
    t.equal(summary.interrupted, false);
    t.same(summary.images.map((i) => [nodePath.basename(i.input), i.status]), [['a.png', 'done'], ['b.jpg', 'done'], ['bad.png', 'failed']]);
    t.equal(summary.images[2].error?.code, 'BIA_IMAGE_ERROR');
    t.equal(summary.summary.images, 2);
    const stderr = (d.stderr as Capture).text;
    t.equal(stderr.trim().split('\n').length, 1, `--json: only the error on stderr: ${JSON.stringify(stderr)}`);
    t.match(stderr, /^✗ \[3\/3\] .*bad\.png .*\[BIA_IMAGE_ERROR\]/);

    for (const stem of ['a', 'b']) {
      const dir = nodePath.join(out, stem);
      t.same(fs.readdirSync(dir).sort(), ['baseline.png', 'blur.png', 'fade.png', 'grid.png', 'input.png', 'output.png', 'reconstruction.png', 'report.json']);
      const meta = await sharp(nodePath.join(dir, 'output.png')).metadata();
      t.same([meta.width, meta.height], [16, 16], 'at the model resolution');
      const grid = await sharp(nodePath.join(dir, 'grid.png')).metadata();
      t.same([grid.width, grid.height], [4 + 4 * (128 + 4), 4 + 128 + 14 + 4], 'input | reconstruction | BIA | baseline, labelled');
      const r = JSON.parse(fs.readFileSync(nodePath.join(dir, 'report.json'), 'utf8')) as EraseReport;
      const src = nodePath.join(inDir, stem === 'a' ? 'a.png' : 'b.jpg');
      t.equal(r.input.name, src);
      t.equal(r.input.sha256, sha256(src), 'the input file hash');
      t.same([r.input.width, r.input.height], [16, 16]);
      t.equal(r.models.diffusion.path, w.ckpt.diffusion, 'the CLI fills the model files in');
      t.equal(r.models.diffusion.sha256, sha256(w.ckpt.diffusion));
      t.equal(r.models.encoder.sha256, sha256(w.ckpt.encoder));
      t.same([r.options.t0, r.options.steps, r.options.neighbours, r.options.protocol], [100, 8, 8, 'resize'], 'the flags reached the job');
      t.equal(r.blackHole.similarities.length, 8);
      for (const v of [r.sid.reconstruction, r.sid.after, r.sid.randomBaseline as number]) t.ok(v >= -1.0001 && v <= 1.0001, `a cosine: ${v}`);
      for (const kind of ['fade', 'blur'] as const) {
        const d = r.degenerateBaselines![kind];
        t.ok(d.strength >= 0 && d.strength <= 1 && Number.isFinite(d.similarity), `${kind}: strength ${d.strength}, sim ${d.similarity}`);
        if (d.reached) t.ok(d.similarity <= r.sid.after, `${kind} reached the output's similarity`);
        const m = await sharp(nodePath.join(dir, `${kind}.png`)).metadata();
        t.same([m.width, m.height], [16, 16], `${kind}.png at the model resolution`);
      }
    }
    t.notOk(fs.existsSync(nodePath.join(out, 'bad')), 'no folder for the image that failed');
    const all = JSON.parse(fs.readFileSync(nodePath.join(out, 'report.json'), 'utf8')) as EraseReport[];
    t.same(all.map((r) => nodePath.basename(r.input.name)), ['a.png', 'b.jpg']);
    const errors = JSON.parse(fs.readFileSync(nodePath.join(out, 'errors.json'), 'utf8'));
    t.equal(errors.length, 1);
    t.same([errors[0].input, errors[0].code], [bad, 'BIA_IMAGE_ERROR']);
    t.match(errors[0].message, /bad\.png/);
    const html = fs.readFileSync(nodePath.join(out, 'report.html'), 'utf8');
    t.equal(html.match(/src="data:image\/png;base64,/g)?.length, 12, 'six images each');
    t.equal(html.match(/fade \(equal similarity\)<br \/>/g)?.length, 2, 'the fade figure on each');
    t.ok(html.includes(fs.readFileSync(nodePath.join(out, 'a', 'blur.png')).toString('base64')), 'the written blur.png, inline');
    t.ok(html.includes(fs.readFileSync(nodePath.join(out, 'a', 'output.png')).toString('base64')), 'the written output.png, inline');
    t.same(tmpFiles(out), [], 'no temporary file left');
    t.same(summary.files, { report: nodePath.join(out, 'report.json'), html: nodePath.join(out, 'report.html'), errors: nodePath.join(out, 'errors.json') });
  });

  t.test('a re-run skips finished images without loading the models; --force redoes them', async (t) => {
    const before = fs.statSync(nodePath.join(out, 'a', 'output.png')).mtimeMs;
    const aReport = fs.readFileSync(nodePath.join(out, 'a', 'report.json'), 'utf8');
    const hooks: Hooks = { calls: [] };
    const d = deps(hooks);
    t.equal(await runErase([inDir, bad, ...argsFor(w, out)], d), 3, 'bad.png still fails');
    t.same(hooks.calls, [], 'no job ran');
    t.equal(d.loads, 0, 'no model was loaded');
    const stderr = (d.stderr as Capture).text;
    t.equal(stderr.match(/skipped/g)?.length, 2, stderr);
    t.match(stderr, /- \[1\/3\] .*a\.png {2}skipped/);
    t.notMatch(stderr, /\r/, 'not a TTY: no bars');
    t.match((d.stdout as Capture).text, /3 image\(s\): 0 done, 2 skipped, 1 failed/);
    t.equal(fs.statSync(nodePath.join(out, 'a', 'output.png')).mtimeMs, before, 'untouched');
    const all = JSON.parse(fs.readFileSync(nodePath.join(out, 'report.json'), 'utf8')) as EraseReport[];
    t.equal(all.length, 2, 'the batch report holds the skipped images, read back');
    t.same(all[0], JSON.parse(aReport));

    const f = deps(hooks);
    t.equal(await runErase([inDir, ...argsFor(w, out), '--force', '--no-baseline', '--no-degenerate-baselines'], f), 0, 'all ok');
    t.same(hooks.calls.map((c) => nodePath.basename(c)), ['a.png', 'b.jpg']);
    const redone = JSON.parse(fs.readFileSync(nodePath.join(out, 'a', 'report.json'), 'utf8')) as EraseReport;
    t.not(redone.finishedAt, JSON.parse(aReport).finishedAt, 'a new report');
    t.equal(redone.sid.randomBaseline, null);
    t.notOk(fs.existsSync(nodePath.join(out, 'a', 'baseline.png')), 'the stale baseline.png is gone');
    t.equal(redone.degenerateBaselines, null);
    t.notOk(fs.existsSync(nodePath.join(out, 'a', 'fade.png')) || fs.existsSync(nodePath.join(out, 'a', 'blur.png')), 'the stale fade.png and blur.png are gone');
    t.notOk(fs.existsSync(nodePath.join(out, 'errors.json')), 'no failure this time: the stale errors.json is gone');
    const html = fs.readFileSync(nodePath.join(out, 'report.html'), 'utf8');
    t.equal(html.match(/src="data:image\/png;base64,/g)?.length, 6, 'three images each without the baselines');
    t.equal(redone.models.diffusion.autocast, null, 'float32: no autocast recorded');

    // --autocast bfloat16: the UNet's bfloat16 copy on the CPU, named in the report
    const outBf = nodePath.join(w.root, 'out-bf16');
    const bf = deps({ calls: [] });
    t.equal(await runErase([nodePath.join(inDir, 'a.png'), ...argsFor(w, outBf), '--no-baseline', '--no-degenerate-baselines', '--autocast', 'bfloat16'], bf), 0, 'bfloat16 autocast: ok');
    const bfReport = JSON.parse(fs.readFileSync(nodePath.join(outBf, 'a', 'report.json'), 'utf8')) as EraseReport;
    t.equal(bfReport.models.diffusion.autocast, 'bfloat16', 'the report names the autocast');
    t.ok(Math.abs(bfReport.sid.reconstruction - redone.sid.reconstruction) < 0.05, `reconstruction similarity ${bfReport.sid.reconstruction.toFixed(3)} near float32's ${redone.sid.reconstruction.toFixed(3)}`);
  });

  t.test('a program error fails its image alone (exit 1); a bad checkpoint is an input error (exit 3)', async (t) => {
    const o2 = nodePath.join(w.root, 'out2');
    const hooks: Hooks = {
      calls: [],
      before: (name) => {
        if (name.endsWith('a.png')) throw new TypeError('something broke');
      },
    };
    const d = deps(hooks);
    t.equal(await runErase([inDir, ...argsFor(w, o2)], d), 1);
    t.ok(fs.existsSync(nodePath.join(o2, 'b', 'report.json')), 'b finished');
    t.notOk(fs.existsSync(nodePath.join(o2, 'a')), 'a has nothing');
    const errors = JSON.parse(fs.readFileSync(nodePath.join(o2, 'errors.json'), 'utf8'));
    t.same(errors.map((e: { code: string; message: string }) => [e.code, e.message]), [['TypeError', 'something broke']]);
    t.match((d.stderr as Capture).text, /✗ \[1\/2\] .*a\.png {2}something broke \[TypeError\]/);
    // an input error and a program error in one batch: the program error decides
    t.equal(await runErase([inDir, bad, ...argsFor(w, nodePath.join(w.root, 'out2b'))], deps({ ...hooks, calls: [] })), 1);

    // --config from a JSON file; a missing one is an input error
    const cfg = nodePath.join(w.root, 'unet.json');
    fs.writeFileSync(cfg, JSON.stringify({ preset: 'tiny' }));
    const a = nodePath.join(inDir, 'a.png');
    t.equal(await runErase([a, ...argsFor(w, nodePath.join(w.root, 'out2c')), '--config', cfg], deps({ calls: [] })), 0);
    const noCfg = deps({ calls: [] });
    t.equal(await runErase([a, ...argsFor(w, nodePath.join(w.root, 'out2c')), '--config', `${cfg}.missing.json`, '--force'], noCfg), 3);
    t.match((noCfg.stderr as Capture).text, /cannot read --config .*no such file or folder \[BIA_IO_ERROR\]/);

    const garbage = nodePath.join(w.root, 'garbage.ckpt');
    fs.writeFileSync(garbage, 'PK\u0003\u0004 not really a checkpoint');
    const g = deps({ calls: [] });
    t.equal(await runErase([inDir, '--diffusion', garbage, '--encoder', w.ckpt.encoder, '--out', nodePath.join(w.root, 'out3'), '--config', 'tiny'], g), 3);
    t.match((g.stderr as Capture).text, /bia erase: cannot load the models: .*\[BIA_CHECKPOINT_ERROR\]/);
    const missing = deps({ calls: [] });
    t.equal(await runErase([inDir, '--diffusion', nodePath.join(w.root, 'nope.ckpt'), '--encoder', w.ckpt.encoder, '--out', nodePath.join(w.root, 'out3')], missing), 3);
    t.match((missing.stderr as Capture).text, /\[BIA_(IO|CHECKPOINT)_ERROR\]/);
    const noImages = deps({ calls: [] });
    fs.mkdirSync(nodePath.join(w.root, 'empty'));
    t.equal(await runErase([nodePath.join(w.root, 'empty'), ...argsFor(w, nodePath.join(w.root, 'out4'))], noImages), 3);
    t.match((noImages.stderr as Capture).text, /holds no \.png.*\n.*no image found/s);
  });

  t.test('progress: bars on a TTY, final lines elsewhere, nothing with --json', async (t) => {
    const a = nodePath.join(inDir, 'a.png');
    const tty = deps({ calls: [] }, { stderr: new Capture(true) });
    t.equal(await runErase([a, ...argsFor(w, nodePath.join(w.root, 'out5')), '--force'], tty), 0);
    const s = (tty.stderr as Capture).text;
    t.match(s, /\r\[1\/1\] .*a\.png {2}invert +\|[ █▏▎▍▌▋▊▉]{10,}\| +\d+% \d+\/\d+ +\d+:\d\d elapsed {2}ETA (\d+:\d\d|--:--)\x1b\[K/);
    for (const stage of ['load', 'invert', 'neighbours', 'absorb', 'baseline', 'evaluate']) t.match(s, new RegExp(`\\r\\[1/1\\] .*a\\.png {2}${stage}`), stage);
    t.match(s, /\r\x1b\[K✓ \[1\/1\] .*a\.png {2}SID -?\d\.\d{3} → -?\d\.\d{3} \(baseline -?\d\.\d{3}\) {2}(erased|kept)( {2}no boundary)? {2}\d+:\d\d\n/, 'the bar is cleared for the final line');
    const plain = deps({ calls: [] });
    t.equal(await runErase([a, ...argsFor(w, nodePath.join(w.root, 'out5')), '--force'], plain), 0);
    t.notMatch((plain.stderr as Capture).text, /[\r\x1b]/);
    t.match((plain.stderr as Capture).text, /^! \[1\/1\] .*a\.png {2}24×20 is tiny .*\n✓ \[1\/1\]/, 'the face-input warning, then the final line');
    const json = deps({ calls: [] }, { stderr: new Capture(true) });
    t.equal(await runErase([a, ...argsFor(w, nodePath.join(w.root, 'out5')), '--force', '--json'], json), 0);
    t.equal((json.stderr as Capture).text, '', 'nothing on stderr');
    t.equal(JSON.parse((json.stdout as Capture).text).counts.done, 1);

    // the view itself, on a clock of our own
    let now = 0;
    const c = new Capture(true);
    const v = new EraseProgressView(c, { now: () => now, minIntervalMs: 100 });
    v.startImage(1, 4, 'x.png');
    now = 10_000;
    const line = v.line({ stage: 'absorb', step: 5, total: 10, fraction: 0.25 });
    t.match(line, /^\[2\/4\] x\.png {2}absorb +\|█{10,} +\| +50% 5\/10 {2}0:10 elapsed {2}ETA 0:30$/, line);
    v.update({ stage: 'absorb', step: 5, total: 10, fraction: 0.25 });
    now += 50;
    v.update({ stage: 'absorb', step: 6, total: 10, fraction: 0.3 });
    t.equal(c.text.split('\r').length - 1, 1, 'throttled: one draw within 100 ms');
    v.update({ stage: 'baseline', step: 0, total: 10, fraction: 0.3 });
    t.equal(c.text.split('\r').length - 1, 2, 'a new stage draws at once');
    v.finishImage('done');
    t.ok(c.text.endsWith('\r\x1b[Kdone\n'));
    const quiet = new Capture(true);
    const q = new EraseProgressView(quiet, { quiet: true });
    q.startImage(0, 1, 'x');
    q.update({ stage: 'invert', step: 1, total: 2, fraction: 0.5 });
    q.finishImage('done');
    t.equal(quiet.text, '');
    t.same([formatDuration(0), formatDuration(61_000), formatDuration(3_725_000), formatDuration(NaN)], ['0:00', '1:01', '1:02:05', '--:--']);
  });

  t.test('an abort mid-batch: exit 130, finished images intact, no half-written image, no batch report', async (t) => {
    const o6 = nodePath.join(w.root, 'out6');
    const ac = new AbortController();
    const hooks: Hooks = {
      calls: [],
      before: (name, o) => {
        if (!name.endsWith('b.jpg')) return;
        const inner = o.onStage;
        // abort as soon as the job reports its first stage
        o.onStage = (p) => {
          inner?.(p);
          ac.abort();
        };
      },
    };
    const d = deps(hooks, { signal: ac.signal });
    t.equal(await runErase([inDir, ...argsFor(w, o6), '--json'], d), 130);
    t.ok(fs.existsSync(nodePath.join(o6, 'a', 'report.json')), 'a is finished');
    t.notOk(fs.existsSync(nodePath.join(o6, 'b', 'report.json')), 'b has no report');
    t.notOk(fs.existsSync(nodePath.join(o6, 'report.json')), 'no batch report');
    t.same(tmpFiles(o6), []);
    const s = JSON.parse((d.stdout as Capture).text) as EraseSummary;
    t.same([s.interrupted, s.exitCode, s.counts.done], [true, 130, 1]);
    // the next run goes on where this one stopped
    const again = deps({ calls: [] });
    t.equal(await runErase([inDir, ...argsFor(w, o6)], again), 0);
    t.match((again.stderr as Capture).text, /a\.png {2}skipped/);
    t.match((again.stderr as Capture).text, /✓ \[2\/2\] .*b\.jpg/);
  });

  t.test('Ctrl-C to a running `bia erase` process', async (t) => {
    const o7 = nodePath.join(w.root, 'out7');
    const spec = { argv: [inDir, ...argsFor(w, o7)], hang: 'b.jpg' };
    const proc = spawn(process.execPath, [__filename], { env: { ...process.env, BIA_CLI_ERASE_CHILD: JSON.stringify(spec), BIA_NUM_THREADS: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    let stdout = '';
    proc.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));
    const timer = setTimeout(() => proc.kill('SIGKILL'), 60_000);
    await new Promise<void>((resolve) => {
      proc.stderr.on('data', (b: Buffer) => {
        stderr += b.toString();
        if (/hanging on/.test(stderr)) resolve();
      });
      proc.on('exit', () => resolve());
    });
    t.match(stderr, /✓ \[1\/2\] .*a\.png/, 'a finished before b hangs');
    await new Promise((r) => setTimeout(r, 200));
    proc.kill('SIGINT');
    const code = await exited;
    clearTimeout(timer);
    t.equal(code, 130, `exit 130 (stderr: ${stderr})`);
    t.match(stderr, /interrupted: stopping the running job/);
    t.match(stdout, /1 done, 0 skipped, 0 failed, interrupted/);
    t.ok(fs.existsSync(nodePath.join(o7, 'a', 'report.json')), 'the finished image is intact');
    t.ok(JSON.parse(fs.readFileSync(nodePath.join(o7, 'a', 'report.json'), 'utf8')).sid, 'and whole');
    t.notOk(fs.existsSync(nodePath.join(o7, 'b', 'report.json')), 'no report.json for the interrupted image');
    t.same(tmpFiles(o7), []);
  });
}

if (process.env.BIA_CLI_ERASE_CHILD) {
  child(JSON.parse(process.env.BIA_CLI_ERASE_CHILD)).catch((e) => {
    process.stderr.write(`child failed: ${(e as Error).stack}\n`);
    process.exitCode = 99;
  });
} else {
  void tests();
}

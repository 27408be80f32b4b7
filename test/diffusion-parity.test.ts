// Parity with the independent Python reference (bench/reference/ddpm.py, fixtures made by
// test/fixtures/diffusion/make_diffusion.py with Debian's python3-torch): ε and h, one inversion
// step and one decoding step per injection mode, for weights read from zip, legacy and
// safetensors checkpoints. All in float32, relative error below 1e-5.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import t, { type Test } from 'tap';
import { createDiffusion, loadDiffusion, readCheckpoint, type DiffusionModel, type Tensor } from '../ts/index';
import { relErr, ROOT } from './helpers';

const DIR = path.join(ROOT, 'test', 'fixtures', 'diffusion');
const facts = JSON.parse(readFileSync(path.join(DIR, 'tiny-expected.json'), 'utf8'));


async function expected(): Promise<Map<string, Tensor>> {
  return (await readCheckpoint(path.join(DIR, 'tiny-expected.safetensors'))).tensors;
}

async function check(tt: Test, m: DiffusionModel, E: Map<string, Tensor>, tol = 1e-5) {
  const get = (k: string) => {
    const v = E.get(k);
    if (!v) throw new Error(`fixture lacks ${k}`);
    return v;
  };
  const x = get('x');
  const f = await m.forward(x, facts.t);
  tt.ok((await relErr(f.eps, get('forward.eps'))) < tol, 'ε');
  tt.ok((await relErr(f.h, get('forward.h'))) < tol, 'h');
  tt.ok((await relErr((await m.forward(x, facts.t, { h: get('forward.hReplace') })).eps, get('forward.epsReplaced'))) < tol, 'ε with h replaced');
  tt.ok((await relErr((await m.forward(x, facts.t, { hDelta: get('forward.hReplace') })).eps, get('forward.epsDelta'))) < tol, 'ε with Δh added');
  // one inversion step: t0 500 / 40 steps has t = 0 → 12 as its first step; t0 12 / 2 steps is exactly that step
  const inv = await m.invert(x, { t0: 12, steps: 2 });
  tt.ok((await relErr(inv.xLat, get('invert.step1.x'))) < tol, 'one inversion step');
  tt.ok((await relErr(inv.hR, get('invert.step1.h'))) < tol, 'its h');
  tt.same(facts.seq500x40.slice(0, 3), [0, 12, 25]);
  // one decoding step 500 → 487 of the t0 500 / 40 steps sequence (stopAfter: 1)
  const xl = get('decode.xLat');
  const href = get('decode.hRef');
  const h = get('decode.h');
  const modes: [string, object][] = [
    ['decode.step1.none', { mode: 'asyrp', hNull: true }],
    ['decode.step1.firstStep', { mode: 'first-step' }],
    ['decode.step1.firstStep', { mode: 'lagged', eta: 0 }],
    ['decode.step1.everyStep', { mode: 'every-step' }],
    ['decode.step1.asyrp', { mode: 'asyrp' }],
    ['decode.step1.everyStepEta1', { mode: 'every-step', eta: 1, seed: 909090 }],
  ];
  for (const [key, o] of modes) {
    const { hNull, ...opts } = o as { hNull?: boolean; mode: 'asyrp' };
    const r = await m.decode(xl, hNull ? null : h, { t0: 500, steps: 40, stopAfter: 1, hRef: href, ...opts });
    tt.ok((await relErr(r, get(key))) < tol, `one decoding step: ${key} (${(opts as { mode: string }).mode})`);
  }
}

t.test('zip, legacy and safetensors checkpoints give the reference outputs', async (t) => {
  const E = await expected();
  for (const file of ['tiny-weights.pt', 'tiny-weights-legacy.pt', 'tiny-weights.safetensors']) {
    await t.test(file, async (tt) => {
      const m = await loadDiffusion(path.join(DIR, file), { config: facts.config });
      tt.equal(m.parameterCount, facts.parameters);
      await check(tt, m, E);
      m.dispose();
    });
  }
});

t.test('channels_last gives the same numbers', async (t) => {
  const E = await expected();
  const m = await loadDiffusion(path.join(DIR, 'tiny-weights.pt'), { config: facts.config, channelsLast: true });
  await check(t, m, E, 1e-5);
});

t.test('save → load round trip through safetensors', async (t) => {
  const dir = t.testdir({});
  const a = await loadDiffusion(path.join(DIR, 'tiny-weights.pt'), { config: facts.config });
  const file = path.join(dir, 'copy.safetensors');
  await a.save(file, { metadata: { note: 'round trip' } });
  const ck = await readCheckpoint(file);
  t.equal(ck.format, 'safetensors');
  t.equal(ck.metadata.note, 'round trip');
  t.equal(ck.metadata['bia.unet.config'] !== undefined, true, 'the config travels in the metadata');
  const b = await loadDiffusion(file); // config from the file's metadata
  const x = (await expected()).get('x')!;
  t.equal(await relErr((await b.forward(x, 7)).eps, (await a.forward(x, 7)).eps), 0);
});

t.test('checkpoint errors', async (t) => {
  await t.rejects(loadDiffusion(path.join(DIR, 'tiny-weights.pt')), { code: 'BIA_CHECKPOINT_MISMATCH' }, 'celeba-hq-256 config does not fit the tiny weights');
  await t.rejects(loadDiffusion(path.join(DIR, 'missing.pt'), { config: facts.config }), { code: 'BIA_IO_ERROR' });
  await t.rejects(loadDiffusion(path.join(DIR, 'tiny-expected.json'), { config: facts.config }), { code: 'BIA_CHECKPOINT_ERROR' });
  void createDiffusion;
});

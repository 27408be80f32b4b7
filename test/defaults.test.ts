// The built-in default models: present, matching their manifest (sha256, config), loadable, and a
// reduced demo on held-out portraits in which identity drops further along the BIA direction than
// along a random one of equal length while the background is kept.
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { setThreads } from '../ts/index';
import { DEFAULT_FILES, DEFAULT_MODELS, readManifest, ROOT, verificationMetrics } from '../ts/world/defaults';
import { DEMO_SETTINGS, formatDemo, loadDefaultModels, runDemo } from '../ts/world/demo';

t.test('manifest: every default model is there with its sha256, config and command', async (t) => {
  const m = readManifest();
  for (const name of DEFAULT_MODELS) {
    const e = m[name];
    t.ok(e, `${name} in models/manifest.json`);
    t.equal(path.join(ROOT, e.file), DEFAULT_FILES[name]);
    const bytes = readFileSync(DEFAULT_FILES[name]);
    t.equal(createHash('sha256').update(bytes).digest('hex'), e.sha256, `${name}: sha256 matches`);
    t.equal(bytes.length, e.bytes);
    t.match(e.command, /defaults\.js train/);
    t.ok(e.steps > 0 && e.metrics);
  }
  const total = Object.values(m).reduce((a, e) => a + e.bytes, 0);
  t.ok(total <= 25 * 2 ** 20, `all weights ${(total / 2 ** 20).toFixed(1)} MiB ≤ 25 MiB`);
});

t.test('the default models load with their configs', async (t) => {
  const m = await loadDefaultModels();
  t.same(m.diffusion.config.chMult, [1, 2, 2, 2]);
  t.equal(m.diffusion.config.resolution, 64);
  t.equal(m.encoder.arch, 'iresnet18');
  t.equal(m.encoder.embeddingSize, 128);
  t.ok(m.attributes.parameterCount > 0);
  m.dispose();
});

t.test('verification metrics on a constructed case', async (t) => {
  // 3 identities × 2: genuine pairs 0.9, impostors 0.1 except one at 0.95 (above every genuine).
  const ids = Int32Array.from([0, 0, 1, 1, 2, 2]);
  const n = 6;
  const sim = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) sim[i * n + j] = ids[i] === ids[j] ? 0.9 : 0.1;
  sim[0 * n + 2] = sim[2 * n + 0] = 0.95;
  const r = verificationMetrics(sim, ids);
  t.equal(r.genuine, 3);
  t.equal(r.impostor, 12);
  t.equal(r.auc, 33 / 36, 'one impostor above all three genuine pairs');
  t.equal(r.thresholdAtFar1e2, 0.95);
  t.equal(r.tarAtFar1e2, 0);
});

t.test('a reduced demo: BIA moves identity further than a random direction, and keeps the background', async (t) => {
  setThreads(1);
  const out = mkdtempSync(path.join(tmpdir(), 'bia-demo-'));
  t.teardown(() => rmSync(out, { recursive: true, force: true }));
  const r = await runDemo({ count: 2, out, settings: { ...DEMO_SETTINGS, neighbours: 24, steps: 10 } });
  t.comment(formatDemo(r));
  t.equal(r.images.length, 2);
  // At the far end of each strip (equal length along both directions), BIA is below the random direction on
  // average: a single portrait may resist (portrait-2000 does at 24 neighbours and 10 steps).
  const ends: Array<[number, number]> = [];
  for (const m of r.images) {
    t.ok(m.reconstruction > 0.8, `${m.name}: reconstruction similarity ${m.reconstruction.toFixed(3)}`);
    if (m.strip.distances.length) ends.push([m.strip.bia.at(-1)!, m.strip.random.at(-1)!]);
    t.ok(m.outsideFace < 0.2, `${m.name}: outside-face change ${m.outsideFace.toFixed(3)}`);
  }
  t.ok(ends.length > 0, 'a boundary was found for at least one portrait');
  const mean = (k: 0 | 1) => ends.reduce((a, e) => a + e[k], 0) / ends.length;
  t.ok(mean(0) < mean(1) - 0.1, `mean similarity at the strips' ends: BIA ${mean(0).toFixed(3)} < random ${mean(1).toFixed(3)} − 0.1`);
  for (const m of r.images) {
    t.ok(m.validity && Number.isFinite(m.validity.BIA), `${m.name}: the grid carries validity scores`);
    t.ok(m.similarity2 && Number.isFinite(m.similarity2.BIA), `${m.name}: and the second recognizer's similarity`);
  }
  t.ok(readFileSync(path.join(out, 'report.html'), 'utf8').includes('<svg'));
});

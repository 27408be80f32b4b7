import t from 'tap';
import { evaluateTargets, formatEval, SET_NAMES, type EvalResult, type SetName, type SetSummary } from '../ts/world/eval';
import { GROUP_NAMES, type SetScores } from '../ts/world/meters';

function scores(sim: number[], validity: number[]): SetScores {
  return { similarity: sim, similarity2: sim, validity, attributeErrors: sim.map(() => Object.fromEntries(GROUP_NAMES.map((g) => [g, 0.1]))) };
}

function summary(over: Partial<SetSummary>): SetSummary {
  return { meanSimilarity: 0, meanSimilarity2: 0, erased: 0, erased2: 0, fd: 1, meanValidity: 1, attributeError: Object.fromEntries(GROUP_NAMES.map((g) => [g, 0.1])), ...over };
}

t.test('targets: measured values and met / not met against the bounds', async (t) => {
  const n = 10;
  const sets = Object.fromEntries(SET_NAMES.map((s) => [s, summary({})])) as Record<SetName, SetSummary>;
  sets.bia = summary({ erased: 0.95, erased2: 0.7, fd: 1.2, attributeError: { ...sets.bia.attributeError, pose: 0.14, eyes: 0.14 } });
  sets.reconstruction = summary({ fd: 1 });
  sets.fade = summary({ fd: 3 });
  const sc = Object.fromEntries(SET_NAMES.map((s) => [s, scores(Array(n).fill(0.9), Array(n).fill(1))])) as Record<SetName, SetScores>;
  sc.reconstruction = scores(Array(n).fill(0.99), Array.from({ length: n }, (_, i) => 0.5 + i / 20)); // 10th percentile 0.5
  sc.bia = scores(Array(n).fill(0.1), [0.4, ...Array(n - 1).fill(0.9)]); // 9 of 10 at or above it
  sc.random = scores(Array(n).fill(0.5), Array(n).fill(1));
  const tg = Object.fromEntries(evaluateTargets(sets, sc).map((x) => [x.name, x]));
  t.equal(tg['erased under the loss encoder'].met, true);
  t.equal(tg['erased under the second recognizer'].met, false, '0.7 < 0.8');
  t.ok(Math.abs(tg['FD(BIA) / FD(reconstruction)'].measured - 1.2) < 1e-12);
  t.equal(tg['FD(BIA) / FD(reconstruction)'].met, true);
  t.end();
});

t.test('targets: FD against fade, validity share, gap, attribute bounds per group', async (t) => {
  const n = 10;
  const sets = Object.fromEntries(SET_NAMES.map((s) => [s, summary({})])) as Record<SetName, SetSummary>;
  sets.bia = summary({ fd: 1.2, attributeError: { ...sets.bia.attributeError, pose: 0.14, eyes: 0.14 } });
  sets.fade = summary({ fd: 3 });
  const sc = Object.fromEntries(SET_NAMES.map((s) => [s, scores(Array(n).fill(0.9), Array(n).fill(1))])) as Record<SetName, SetScores>;
  sc.reconstruction = scores(Array(n).fill(0.99), Array.from({ length: n }, (_, i) => 0.5 + i / 20));
  sc.bia = scores(Array(n).fill(0.1), [0.4, ...Array(n - 1).fill(0.9)]);
  sc.random = scores(Array(n).fill(0.5), Array(n).fill(1));
  const tg = Object.fromEntries(evaluateTargets(sets, sc).map((x) => [x.name, x]));
  t.ok(Math.abs(tg['FD(BIA) / FD(fade at equal similarity)'].measured - 0.4) < 1e-12);
  t.equal(tg['FD(BIA) / FD(fade at equal similarity)'].met, true);
  t.ok(Math.abs(tg["validity ≥ the reconstructions' 10th percentile"].measured - 0.9) < 1e-12);
  t.equal(tg["validity ≥ the reconstructions' 10th percentile"].met, true);
  t.ok(Math.abs(tg['similarity gap random − BIA'].measured - 0.4) < 1e-12);
  t.equal(tg['similarity gap random − BIA'].met, true);
  t.equal(tg['attribute error pose, BIA − reconstruction'].met, false, 'pose +0.04 > +0.03');
  t.equal(tg['attribute error eyes, BIA − reconstruction'].met, true, 'eyes +0.04 ≤ +0.05');
  t.equal(tg['attribute error hair, BIA − reconstruction'].met, true);
  const r: EvalResult = { images: n, settings: {}, autocast: null, thresholds: { encoder: 0.77, recognizer: 0.7 }, sets, perImage: [], targets: evaluateTargets(sets, sc), seconds: 1 };
  const md = formatEval(r);
  t.match(md, /\| bia \| /);
  t.match(md, /\*\*not met\*\*/);
  t.end();
});

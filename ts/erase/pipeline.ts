/**
 * The BIA erase job (docs/method.md, steps 1–9) in one call, eraseIdentity, over its stages:
 *   formBlackHole   (./form)     — invert, neighbours (calibrated α_max), labels, SVM boundary, orientation, wrap set
 *   absorbIdentity  (./absorb)   — `walk`, `line` or `optimize` (Adam on ĥ_r, C++ backprop)
 *   randomBaseline  (./baseline) — the paper's baseline: the same length along a random direction
 *   evaluate, buildReport (./report) — the second recognizer, preservation, the degenerate baselines, the EraseReport
 * Tensors stay native; JS sees the Gram matrix, SVM coefficients and per-image numbers only.
 */
import { takeRows } from '../blackhole/codes';
import type { Tensor } from '../tensor';
import { absorbIdentity, type Absorption } from './absorb';
import { randomBaseline, type RandomBaseline } from './baseline';
import { checkImage, splitCall, type EraseCall } from './call';
import { formBlackHole, type BlackHole } from './form';
import { StageClock } from './progress';
import { buildReport, evaluate, hashInputs } from './report';
import { Scope } from './scope';
import type { EraseResult } from './types';

/**
 * The whole job for one image [1, 3, H, W] in [-1, 1]: black hole, absorption, baseline, the
 * degenerate baselines (fade / blur of the face at the output's similarity) and an EraseReport.
 * Abortable (call.signal) between native steps; progress through onStage / onProgress.
 */
export async function eraseIdentity(image: Tensor, call: EraseCall): Promise<EraseResult & { blackHole?: BlackHole }> {
  const { models, options: o, job } = splitCall(call);
  checkImage(image, models.diffusion);
  const clock = new StageClock(call.onStage, call.onProgress);
  const scope = new Scope();
  let bh: BlackHole | null = null;
  let ab: Absorption | null = null;
  try {
    clock.begin('load');
    const hashes = await hashInputs(image, call, models);
    bh = await formBlackHole(image, call, clock);
    ab = await absorbIdentity(bh, call, clock);
    const chosen = ab.candidates[ab.chosen];
    const output = scope.add(await takeRows([ab.images], [[0, ab.chosen]], job));

    let base: RandomBaseline | null = null;
    if (o.baseline) {
      clock.begin('baseline');
      base = await randomBaseline(bh, models, chosen.distance * bh.hNorm, o, job);
      scope.add(base.code);
      scope.add(base.image);
    }

    clock.begin('evaluate');
    const outcome = { image, bh, ab, output, base };
    const ev = await evaluate(outcome, models, o, job, clock, scope);
    const report = buildReport(call, models, o, outcome, hashes, ev, clock.finish());

    // Copies for the result, so that the black hole and the absorption can be released whole.
    const reconstruction = scope.add(await takeRows([bh.reconstruction], [[0, 0]], job));
    const candidates = scope.add(await takeRows([ab.images], ab.candidates.map((_, i) => [0, i] as [number, number]), job));
    const degenerate = ev.degenerate;
    const keep = [output, reconstruction, candidates, ...(base ? [base.image] : []), ...(degenerate ? [degenerate.fade.image, degenerate.blur.image] : [])].map((t) => scope.keep(t));
    const kept = call.keepBlackHole ? bh : null;
    return {
      image: keep[0],
      reconstruction: keep[1],
      candidates: keep[2],
      randomBaseline: base ? base.image : null,
      degenerate: degenerate ? { fade: degenerate.fade.image, blur: degenerate.blur.image } : null,
      report,
      ...(kept ? { blackHole: kept } : {}),
      dispose() {
        for (const t of keep) t.dispose();
        kept?.dispose();
      },
    };
  } catch (e) {
    if (call.keepBlackHole) bh?.dispose();
    throw e;
  } finally {
    if (!call.keepBlackHole) bh?.dispose();
    ab?.dispose();
    scope.dispose();
  }
}

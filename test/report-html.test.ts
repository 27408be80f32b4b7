// The HTML report (pure TS): well-formed, self-contained, images inline, the histogram's threshold
// where the axis puts it, classes coloured by side, strings escaped, "no boundary" shown.
import sharp from 'sharp';
import t from 'tap';
import type { EraseReport } from '../ts/erase/types';
import { escapeHtml, histogramSvg, niceTicks, renderReportHtml, summarize, type ReportEntry } from '../ts/report/html';

const EVIL = `<script>alert("x&y")</script> 'q' & <b>.png`;

function report(over: { name?: string; threshold?: number; found?: boolean; sims?: number[]; after?: number; baseline?: number | null; losses?: boolean; degenerate?: EraseReport['degenerateBaselines'] }): EraseReport {
  const threshold = over.threshold ?? 0.35;
  const sims = over.sims ?? [0.9, 0.8, 0.6, 0.5, 0.36, 0.34, 0.2, 0.1, -0.05, 0.71, 0.12, 0.33];
  const found = over.found ?? true;
  return {
    version: '0.1.0',
    input: { name: over.name ?? 'face.png', width: 256, height: 256, sha256: 'ab'.repeat(32) },
    models: {
      diffusion: { path: `/models/${EVIL}.ckpt`, sha256: 'cd'.repeat(32), config: { preset: 'tiny' } },
      encoder: { path: '/models/enc.pth', sha256: null, arch: 'iresnet18' },
      perceptual: '(1 - SSIM) + image-gradient L1',
    },
    options: {
      t0: 500, steps: 40, inject: 'asyrp', eta: 0, tEdit: 0, tBoost: 0, etaBoost: 1, batchSize: 16, protocol: 'bia', neighbours: sims.length, neighbourMode: 'isotropic',
      manifoldPool: 16, alphaMax: 1, calibrationRounds: 6, shareRange: [0.2, 0.8], labelSteps: 0, labelFrom: 'x0', labelRefine: 0, threshold, C: 1, holdout: 0.25, wrapSize: 8, absorb: found ? 'walk' : 'optimize', lineSteps: 12, eraseTarget: 0.35, lineBatch: 0,
      walkStep: [100, 120], walkStepUnit: 'absolute', walkTrials: 5, fidelityThreshold: 0.35, iterations: 50, lr: 0.01, startMargin: 0.05, backprop: 'full',
      tauM: 0.25, mu: 1, lambdaId: 1, lambdaSem: 1, lambdaPerc: 0.5, baseline: over.baseline !== null, degenerateBaselines: over.degenerate !== null && over.degenerate !== undefined, seed: 909090,
    },
    device: 'cpu',
    sid: { reconstruction: 0.93, after: over.after ?? 0.12, randomBaseline: over.baseline === undefined ? 0.64 : over.baseline },
    blackHole: {
      found,
      message: found ? undefined : `no α_max gave both classes <${EVIL}>`,
      alphaMax: found ? 2 : null,
      rounds: [{ alphaMax: 1, share: 0.9, refined: 8, decided: true }, { alphaMax: 2, share: 0.5, refined: 21 }],
      labelShare: found ? 0.5 : null,
      similarities: sims,
      svm: found ? { trainAccuracy: 0.97, heldOutAccuracy: 0.62, majorityRate: 0.55, geometricMargin: 0.0123, supportVectors: 41 } : null,
      sourceDistance: found ? 3.2 : null,
      hNorm: 412.5,
      wrap: found ? [{ index: 3, label: 0, distance: -0.4 }] : [],
    },
    absorption: {
      mode: found ? 'walk' : 'optimize',
      candidates: [
        { from: 'source', distance: 0.3, signedDistance: -1.2, similarity: over.after ?? 0.12, sem: 0.05, fidelity: 0.2, accepted: true },
        { from: 3, distance: 0.4, signedDistance: -2, similarity: 0.3, sem: 0.07, fidelity: 0.3, accepted: true, trials: 2 },
      ],
      chosen: 0,
      losses: over.losses ? { loss: [2, 1.5, 1.1, 0.9, 0.8, 0.75], similarity: [0.9, 0.7, 0.5, 0.4, 0.3, 0.25], wrapper: [1, 0.8, 0.6, 0.5, 0.4, 0.4], sem: [0, 0.1, 0.15, 0.2, 0.2, 0.21] } : undefined,
    },
    randomBaseline: over.baseline === null ? null : { distance: 0.3, similarity: over.baseline ?? 0.64, sem: 0.06 },
    degenerateBaselines: over.degenerate ?? null,
    preservation: { mse: 0.004, ssim: 0.91 },
    timings: { load: 0.1, invert: 1, neighbours: 5, boundary: 0.5, absorb: 3, baseline: 1, evaluate: 0.2, total: 10.8 },
    seeds: { neighbours: 909090, svm: 909090, walk: 909091, randomBaseline: 909092, decode: 909090 },
    finishedAt: '2025-01-01T00:00:00.000Z',
  };
}

async function png(colour: string): Promise<Buffer> {
  return sharp({ create: { width: 8, height: 8, channels: 3, background: colour } }).png().toBuffer();
}

/** Tags opened and closed in order (a stack), void and self-closed tags aside; the style block skipped. */
function checkNesting(html: string): { ok: boolean; why: string; counts: Map<string, number> } {
  const voids = new Set(['img', 'meta', 'br', 'hr', 'link', 'input']);
  const body = html.replace(/<style>[\s\S]*?<\/style>/, '<style></style>').replace(/<!DOCTYPE html>/i, '');
  const stack: string[] = [];
  const counts = new Map<string, number>();
  for (const m of body.matchAll(/<(\/?)([a-zA-Z][a-zA-Z0-9]*)\b[^<>]*?(\/?)>/g)) {
    const [, closing, rawName, selfClose] = m;
    const name = rawName.toLowerCase();
    if (closing) {
      const top = stack.pop();
      if (top !== name) return { ok: false, why: `</${name}> closes <${top}> at ${m.index}`, counts };
    } else {
      counts.set(name, (counts.get(name) ?? 0) + 1);
      if (!selfClose && !voids.has(name)) stack.push(name);
    }
  }
  return { ok: stack.length === 0, why: stack.length ? `unclosed: ${stack.join(' > ')}` : '', counts };
}

/** x of value v on the axis of one SVG, interpolated from its tick marks. */
function axisX(svg: string, v: number): number {
  const ticks = [...svg.matchAll(/<line class="xtick" data-value="([^"]+)" x1="([^"]+)"/g)].map((m) => ({ value: Number(m[1]), x: Number(m[2]) }));
  if (ticks.length < 2) throw new Error('fewer than two ticks');
  const [a, b] = [ticks[0], ticks[ticks.length - 1]];
  return a.x + ((v - a.value) / (b.value - a.value)) * (b.x - a.x);
}

t.test('a batch of two: well-formed, self-contained, one data: URI per image shown', async (t) => {
  const images = { input: await png('red'), reconstruction: await png('green'), output: await png('blue'), randomBaseline: await png('white') };
  const entries: ReportEntry[] = [
    { report: report({ name: EVIL, losses: true }), images },
    { report: report({ name: 'b.jpg', threshold: 0.5, after: 0.6, baseline: null }), images: { ...images, randomBaseline: undefined } },
  ];
  const html = renderReportHtml(entries, { generatedAt: 'now' });
  t.ok(html.startsWith('<!DOCTYPE html>'));
  const n = checkNesting(html);
  t.ok(n.ok, `tags nest and close: ${n.why}`);
  for (const tag of ['html', 'head', 'body', 'section', 'table', 'svg', 'figure', 'details']) t.ok((n.counts.get(tag) ?? 0) > 0, `has <${tag}>`);
  t.equal(n.counts.get('section'), 3, 'summary + one section per image');
  t.equal(n.counts.get('img'), 7, '4 + 3 images');
  t.equal(html.match(/src="data:image\/png;base64,/g)?.length, 7, 'seven data:image/png URIs (no baseline on the second image)');
  t.ok(html.includes(`data:image/png;base64,${images.randomBaseline.toString('base64')}`), 'the PNG bytes themselves are inlined');
  t.match(html, /90\.0% \(8 decoded in full, decided early\), .*50\.0% \(21 decoded in full\)/, 'calibration rounds with their refined labels');
  t.notMatch(html, /<script/i, 'no script');
  t.notMatch(html, /(src|href)="(https?:)?\/\//, 'nothing external');
  t.notMatch(html, /<link\b/, 'no stylesheet link');
  t.match(html, /<style>[\s\S]+<\/style>/, 'inline CSS');
  // escaping: the file name, the model path, the message
  t.notOk(html.includes(EVIL), 'the raw name never appears');
  t.ok(html.includes(escapeHtml(EVIL)), 'the escaped name does');
  t.equal(escapeHtml(`a<b>&"c'`), 'a&lt;b&gt;&amp;&quot;c&#39;');
  t.ok(html.includes('/models/&lt;script&gt;'), 'model path escaped');
  // anchors from the summary table
  t.match(html, /<a href="#image-0">&lt;script&gt;/);
  t.match(html, /id="image-1"/);
  // the loss curve only where losses exist
  const polylines = [...html.matchAll(/<polyline class="series series-([a-z]+)"[^>]*points="([^"]*)"/g)];
  t.same(polylines.map((m) => m[1]), ['loss', 'similarity', 'wrapper', 'sem'], 'four series for the image with losses, none for the other');
  t.equal(polylines[0][2].split(' ').length, 6, 'one point per iteration');
  t.equal(html.match(/class="chart histogram"/g)?.length, 2);
  t.notMatch(html, /No boundary\./, 'no "no boundary" alert when both found');
});

t.test('the histogram: threshold at its axis position, classes on their sides, all neighbours counted', async (t) => {
  for (const [sims, thr] of [
    [[0.9, 0.8, 0.6, 0.5, 0.36, 0.34, 0.2, 0.1, -0.05, 0.71, 0.12, 0.33], 0.35],
    [[0.99, 0.97, 0.2, 0.25, 0.5, 0.51, 0.49], 0.5],
    [[-0.3, -0.2, -0.25], 0.35],
  ] as Array<[number[], number]>) {
    const svg = histogramSvg(sims, thr);
    const tx = Number(/<line class="threshold" data-value="[^"]+" x1="([^"]+)"/.exec(svg)?.[1]);
    t.ok(Math.abs(tx - axisX(svg, thr)) < 0.02, `threshold ${thr}: line at x ${tx}, axis puts it at ${axisX(svg, thr).toFixed(2)}`);
    const bars = [...svg.matchAll(/<rect class="bar (label[01])" x="([^"]+)" y="[^"]+" width="([^"]+)" height="[^"]+"><title>(\d+) × label/g)].map((m) => ({
      cls: m[1],
      x: Number(m[2]),
      w: Number(m[3]),
      n: Number(m[4]),
    }));
    const n1 = bars.filter((b) => b.cls === 'label1').reduce((s, b) => s + b.n, 0);
    const n0 = bars.filter((b) => b.cls === 'label0').reduce((s, b) => s + b.n, 0);
    t.equal(n1, sims.filter((s) => s > thr).length, 'label-1 count');
    t.equal(n0, sims.filter((s) => s <= thr).length, 'label-0 count');
    for (const b of bars) {
      if (b.cls === 'label1') t.ok(b.x >= tx - 0.01, `label-1 bar at ${b.x} right of the threshold ${tx}`);
      else t.ok(b.x + b.w <= tx + 0.01, `label-0 bar ending at ${b.x + b.w} left of the threshold ${tx}`);
    }
    // each bar sits over the values it counts
    for (const v of sims) {
      const x = axisX(svg, v);
      t.ok(bars.some((b) => x >= b.x - 1.01 && x <= b.x + b.w + 1.01), `a bar covers ${v}`);
    }
  }
  t.same(niceTicks(0, 1, 5), [0, 0.2, 0.4, 0.6, 0.8, 1]);
  t.same(niceTicks(-0.35, 0.95, 6), [-0.2, 0, 0.2, 0.4, 0.6, 0.8]);
});

t.test('"no boundary" is shown prominently; the summary numbers', async (t) => {
  const images = { input: await png('red'), reconstruction: await png('green'), output: await png('blue') };
  const a = report({ found: false, after: 0.2, baseline: 0.5 });
  const b = report({ after: 0.5, baseline: 0.3 });
  const html = renderReportHtml([{ report: a, images }, { report: b, images }]);
  t.match(html, /<div class="alert no-boundary"><strong>No boundary\.<\/strong>/);
  t.equal(html.match(/class="alert no-boundary"/g)?.length, 1, 'only on the image without one');
  t.ok(html.includes(escapeHtml(`no α_max gave both classes <${EVIL}>`)), 'the message, escaped');
  const s = summarize([a, b]);
  t.equal(s.images, 2);
  t.ok(Math.abs((s.meanAfter ?? NaN) - 0.35) < 1e-12);
  t.ok(Math.abs((s.meanRandomBaseline ?? NaN) - 0.4) < 1e-12);
  t.equal(s.erasureRate, 0.5, 'after 0.2 < 0.35, 0.5 not');
  t.equal(s.randomBaselineErasureRate, 0.5, 'baseline 0.3 < 0.35, 0.5 not');
  t.equal(s.noBoundary, 1);
  t.match(html, /erasure rate \(BIA\)<\/th><td class="n">50\.0%/);
  t.match(html, /mean SID after \(BIA\)<\/th><td class="n">0\.350/);
  t.ok(checkNesting(html).ok);
  const empty = renderReportHtml([]);
  t.match(empty, /No image was processed/);
  t.ok(checkNesting(empty).ok);
});

t.test('the degenerate baselines: fade and blur beside the output, labelled, with their similarity', async (t) => {
  const images = { input: await png('red'), reconstruction: await png('green'), output: await png('blue'), randomBaseline: await png('white'), fade: await png('gray'), blur: await png('yellow') };
  const degenerate = {
    fade: { strength: 0.4375, similarity: 0.118, reached: true, preservation: { mse: 0.0321, ssim: 0.71 } },
    blur: { strength: 1, similarity: 0.52, reached: false, preservation: { mse: 0.0123, ssim: 0.82 } },
  };
  const withThem = report({ name: 'd.png', after: 0.12, degenerate });
  const off = report({ name: 'off.png' }); // degenerateBaselines: null, and no images for them
  const old = report({ name: 'old.png' });
  delete (old as Partial<EraseReport>).degenerateBaselines; // a report written before the field existed
  const html = renderReportHtml([
    { report: withThem, images },
    { report: off, images: { ...images, fade: undefined, blur: undefined } },
    { report: old, images: { ...images, fade: undefined, blur: undefined } },
  ]);
  t.ok(checkNesting(html).ok, checkNesting(html).why);
  t.equal(html.match(/src="data:image\/png;base64,/g)?.length, 6 + 4 + 4, 'six figures for the image with them, four for the others');
  t.ok(html.includes(`data:image/png;base64,${images.fade.toString('base64')}`), 'fade.png inline');
  t.ok(html.includes(`data:image/png;base64,${images.blur.toString('base64')}`), 'blur.png inline');
  t.match(html, /alt="fade baseline"[^>]*\/><figcaption>fade \(equal similarity\)<br \/>sim <span class="erased">0\.118<\/span> <span class="muted">strength 0\.438<\/span>/);
  t.match(html, /alt="blur baseline"[^>]*\/><figcaption>blur \(equal similarity\)<br \/>sim <span class="kept">0\.520<\/span> <span class="muted">strength 1, target not reached<\/span>/);
  // figure order: output, random baseline, fade, blur
  const section = html.slice(html.indexOf('id="image-0"'), html.indexOf('id="image-1"'));
  const order = ['alt="BIA output"', 'alt="random baseline"', 'alt="fade baseline"', 'alt="blur baseline"'].map((a) => section.indexOf(a));
  t.ok(order.every((v, i) => v > 0 && (i === 0 || v > order[i - 1])), `in a row after the output: ${order}`);
  t.match(section, /<th>fade \(equal similarity\)<\/th><td>strength 0\.438, sim 0\.118, MSE 0\.0321, SSIM 0\.710<\/td>/);
  t.match(section, /<th>blur \(equal similarity\)<\/th><td>strength 1\.000, sim 0\.520 \(target not reached\), MSE 0\.0123, SSIM 0\.820<\/td>/);
  const rest = html.slice(html.indexOf('id="image-1"'));
  t.notMatch(rest, /equal similarity/, 'nothing for a report without them (off, or older)');
  // an image without the report numbers is not shown, even if its PNG is there
  const stray = renderReportHtml([{ report: off, images }]);
  t.notMatch(stray, /fade baseline/);
});

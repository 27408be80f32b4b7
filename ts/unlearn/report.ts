/**
 * The HTML report of `bia unlearn`: one self-contained file with the run's figures (each photo's
 * similarity under the original model, the unlearned model and its BIA output; other people before and
 * after), the loss curve and the grids.
 */
import { dataUri, escapeHtml as esc, lossCurveSvg, REPORT_CSS } from '../report/html';
import type { UnlearnReport } from './unlearn';

const f3 = (v: number) => (Number.isFinite(v) ? v.toFixed(3) : '—');
const mean = (a: readonly number[]) => (a.length ? a.reduce((x, y) => x + y, 0) / a.length : NaN);

/** Mean of consecutive windows of `k` values (the per-step loss is noisy: batches of 8 states). */
export function smoothed(values: readonly number[], k: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < values.length; i += k) out.push(mean(values.slice(i, i + k)));
  return out;
}

export interface UnlearnReportPage {
  report: UnlearnReport;
  /** The identity encoder's calibrated threshold: below it, a face is someone else. */
  threshold: number;
  /** grid.png (input | original | BIA output | unlearned) and others.png (input | original | unlearned). */
  grids: { photos: Buffer; others: Buffer };
  models: { diffusion: string; encoder: string };
}

export function renderUnlearnReport(p: UnlearnReportPage): string {
  const r = p.report;
  const cls = (v: number) => (v < p.threshold ? 'erased' : 'kept');
  const sim = (v: number) => `<span class="${cls(v)}">${f3(v)}</span>`;
  const photoRows = r.forget.before
    .map((b, i) => `<tr><td class="n">${i + 1}</td><td class="n">${sim(b)}</td><td class="n">${sim(r.forget.after[i])}</td><td class="n">${sim(r.forget.absorbed[i])}</td>${r.forget.mirroredAbsorbed ? `<td class="n">${sim(r.forget.mirroredAbsorbed[i])}</td>` : ''}</tr>`)
    .join('');
  const otherRows = r.retain.before.map((b, i) => `<tr><td class="n">${i + 1}</td><td class="n">${f3(b)}</td><td class="n">${f3(r.retain.after[i])}</td><td class="n">${f3(r.retain.after[i] - b)}</td></tr>`).join('');
  const window = Math.max(1, Math.ceil(r.losses.length / 100));
  const forgotten = r.forget.after.filter((v) => v < p.threshold).length;
  return [
    '<!doctype html><html lang="en">',
    `<head><meta charset="utf-8" /><meta name="viewport" content="width=device-width, initial-scale=1" /><title>bia unlearn</title><style>${REPORT_CSS}</style></head>`,
    '<body>',
    '<h1>bia unlearn</h1>',
    `<p class="muted">${esc(p.models.diffusion)} · ${esc(p.models.encoder)} · ${r.photos} photo(s), ${r.others} other people · params ${esc(r.params)} · ${r.iterations} steps · ${r.forgetStates} forget / ${r.retainStates} retain states${r.mirror ? ' (with the mirrored photos)' : ''} · ${r.seconds.toFixed(0)} s</p>`,
    '<table>',
    `<tr><th>the photos decoded by the unlearned model, below the threshold ${f3(p.threshold)}</th><td class="n">${forgotten} of ${r.photos}</td></tr>`,
    `<tr><th>their similarity to themselves, mean: original → unlearned (BIA output)</th><td class="n">${f3(mean(r.forget.before))} → ${f3(mean(r.forget.after))} (${f3(mean(r.forget.absorbed))})</td></tr>`,
    `<tr><th>other people's similarity to their photo, mean: original → unlearned</th><td class="n">${f3(mean(r.retain.before))} → ${f3(mean(r.retain.after))}</td></tr>`,
    ...(['variants', 'composites'] as const).flatMap((k) => {
      const e = r[k];
      return e ? [`<tr><th>${k === 'variants' ? 'variants from inside the black holes' : "composites (the person's face in other people's pictures)"} kept as forget codes</th><td class="n">${e.kept} of ${e.made}</td></tr>`] : [];
    }),
    '</table>',
    '<h3>The photos (similarity of each plain reconstruction to the photo)</h3>',
    `<table><tr><th>photo</th><th>original model</th><th>unlearned model</th><th>BIA output (the target)</th>${r.forget.mirroredAbsorbed ? '<th>mirrored BIA output</th>' : ''}</tr>${photoRows}</table>`,
    `<figure><img style="width:auto;height:auto" src="${dataUri(p.grids.photos)}" alt="photos" /><figcaption>input · original model · BIA output · unlearned model</figcaption></figure>`,
    '<h3>Other people (similarity of each reconstruction to the photo)</h3>',
    `<table><tr><th>person</th><th>original model</th><th>unlearned model</th><th>change</th></tr>${otherRows}</table>`,
    `<figure><img style="width:auto;height:auto" src="${dataUri(p.grids.others)}" alt="other people" /><figcaption>input · original model · unlearned model</figcaption></figure>`,
    `<h3>Distillation loss${window > 1 ? ` (means of ${window} steps)` : ''}</h3>`,
    `<div class="charts">${lossCurveSvg({ loss: smoothed(r.losses, window) }, { title: 'Distillation loss', x: window > 1 ? `steps / ${window}` : 'step' })}</div>`,
    `<details><summary>report.json</summary><pre>${esc(JSON.stringify({ ...r, losses: `${r.losses.length} values` }, null, 1))}</pre></details>`,
    '</body></html>',
  ].join('\n');
}

/**
 * The HTML report of an erase batch: one self-contained file (inline CSS, images as data: URIs,
 * inline SVG charts, no script, nothing fetched) that a browser opens from disk. A summary over all
 * images first, then per image: input / reconstruction / BIA output / random baseline / the
 * degenerate baselines (the face faded and blurred to the output's similarity) side by side with
 * their identity similarities, the histogram of the neighbours' similarities with the
 * threshold, the loss curve of the optimisation, and the key numbers of the report.
 */
import type { EraseReport } from '../erase/types';

/** The PNG files of one image, as shown in the report. */
export interface ReportImages {
  /** The input at the model's resolution (what the pipeline saw). */
  input: Buffer;
  reconstruction: Buffer;
  output: Buffer;
  randomBaseline?: Buffer;
  /** The degenerate baselines (report.degenerateBaselines): face faded / blurred at equal similarity. */
  fade?: Buffer;
  blur?: Buffer;
}

export interface ReportEntry {
  report: EraseReport;
  images: ReportImages;
}

export interface RenderReportOptions {
  /** The page title (default "BIA identity erasure report"). */
  title?: string;
  /** Shown under the title (default: now, ISO). */
  generatedAt?: string;
}

/** Escape text for HTML element content and double- or single-quoted attribute values. */
export function escapeHtml(s: unknown): string {
  return String(s)
    .replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/g, '\ufffd')
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

const esc = escapeHtml;

/** A number for display: fixed digits, '—' for null/undefined, the word for NaN/±∞. */
function num(v: number | null | undefined, digits = 3): string {
  if (v === null || v === undefined) return '—';
  if (Number.isNaN(v)) return 'NaN';
  if (!Number.isFinite(v)) return v > 0 ? '∞' : '−∞';
  if (v !== 0 && Math.abs(v) < 10 ** -digits) return v.toExponential(2);
  return v.toFixed(digits);
}

function pct(v: number | null | undefined): string {
  return v === null || v === undefined || !Number.isFinite(v) ? '—' : `${(v * 100).toFixed(1)}%`;
}

function seconds(v: number | null | undefined): string {
  if (v === null || v === undefined || !Number.isFinite(v)) return '—';
  return v < 10 ? `${v.toFixed(2)} s` : v < 600 ? `${v.toFixed(1)} s` : `${Math.floor(v / 60)} min ${Math.round(v % 60)} s`;
}

/** An SVG coordinate (2 decimals, no "-0"). */
function c(v: number): string {
  const r = Math.round(v * 100) / 100;
  return String(Object.is(r, -0) ? 0 : r);
}

function mean(xs: number[]): number | null {
  return xs.length === 0 ? null : xs.reduce((a, b) => a + b, 0) / xs.length;
}

/** A PNG as an inline data: URI (reports are single files). */
export function dataUri(png: Buffer): string {
  return `data:image/png;base64,${png.toString('base64')}`;
}

/** "Nice" tick values covering [lo, hi]: steps of 1, 2 or 5 × 10^k, about `count` of them. */
export function niceTicks(lo: number, hi: number, count = 5): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / Math.max(1, count);
  const mag = 10 ** Math.floor(Math.log10(raw));
  // The step whose number of intervals is nearest to `count`.
  const step = [1, 2, 5, 10].map((m) => m * mag).reduce((best, s) => (Math.abs((hi - lo) / s - count) < Math.abs((hi - lo) / best - count) ? s : best));
  const ticks: number[] = [];
  for (let v = Math.ceil(lo / step - 1e-9) * step; v <= hi + step * 1e-9; v += step) ticks.push(Math.round(v / step) * step);
  return ticks.map((v) => Number(v.toPrecision(12)));
}

function tickLabel(v: number): string {
  const s = Number(v.toPrecision(6)).toString();
  return s === '-0' ? '0' : s;
}

interface Frame {
  width: number;
  height: number;
  left: number;
  right: number;
  top: number;
  bottom: number;
}

function plotX(f: Frame, lo: number, hi: number, v: number): number {
  return f.left + ((v - lo) / (hi - lo)) * (f.width - f.left - f.right);
}

function plotY(f: Frame, lo: number, hi: number, v: number): number {
  return f.height - f.bottom - ((v - lo) / (hi - lo)) * (f.height - f.top - f.bottom);
}

/** Both axes with ticks and labels. Tick marks carry class "xtick"/"ytick" and data-value. */
function axes(f: Frame, x: { lo: number; hi: number; ticks: number[]; label: string }, y: { lo: number; hi: number; ticks: number[]; label: string }): string {
  const x0 = f.left;
  const x1 = f.width - f.right;
  const y0 = f.height - f.bottom;
  const y1 = f.top;
  const parts = [
    `<line class="axis" x1="${c(x0)}" y1="${c(y0)}" x2="${c(x1)}" y2="${c(y0)}" />`,
    `<line class="axis" x1="${c(x0)}" y1="${c(y0)}" x2="${c(x0)}" y2="${c(y1)}" />`,
  ];
  for (const v of x.ticks) {
    const px = plotX(f, x.lo, x.hi, v);
    parts.push(`<line class="xtick" data-value="${tickLabel(v)}" x1="${c(px)}" y1="${c(y0)}" x2="${c(px)}" y2="${c(y0 + 4)}" />`);
    parts.push(`<text class="xtick-label" x="${c(px)}" y="${c(y0 + 16)}" text-anchor="middle">${esc(tickLabel(v))}</text>`);
  }
  for (const v of y.ticks) {
    const py = plotY(f, y.lo, y.hi, v);
    parts.push(`<line class="ytick" data-value="${tickLabel(v)}" x1="${c(x0 - 4)}" y1="${c(py)}" x2="${c(x0)}" y2="${c(py)}" />`);
    parts.push(`<line class="grid" x1="${c(x0)}" y1="${c(py)}" x2="${c(x1)}" y2="${c(py)}" />`);
    parts.push(`<text class="ytick-label" x="${c(x0 - 6)}" y="${c(py + 4)}" text-anchor="end">${esc(tickLabel(v))}</text>`);
  }
  parts.push(`<text class="axis-label" x="${c((x0 + x1) / 2)}" y="${c(f.height - 4)}" text-anchor="middle">${esc(x.label)}</text>`);
  parts.push(
    `<text class="axis-label" x="12" y="${c((y0 + y1) / 2)}" text-anchor="middle" transform="rotate(-90 12 ${c((y0 + y1) / 2)})">${esc(y.label)}</text>`,
  );
  return parts.join('');
}

/**
 * Histogram of the neighbours' similarities to f_r: right-closed bins with an edge on the threshold,
 * so that each bar holds one label class (label 1: sim > threshold), coloured by class (stacked,
 * should a bin ever hold both), with the threshold drawn as a vertical line (class "threshold").
 */
export function histogramSvg(similarities: readonly number[], threshold: number, opts?: { width?: number; height?: number; bins?: number }): string {
  const f: Frame = { width: opts?.width ?? 460, height: opts?.height ?? 230, left: 44, right: 12, top: 38, bottom: 36 };
  const values = similarities.filter((v) => Number.isFinite(v));
  const binsWanted = opts?.bins ?? 24;
  let lo = values.reduce((a, b) => Math.min(a, b), threshold);
  let hi = values.reduce((a, b) => Math.max(a, b), threshold);
  const pad = Math.max(0.02, (hi - lo) * 0.05);
  lo = Math.max(-1, Math.floor((lo - pad) * 20) / 20);
  hi = Math.min(1, Math.ceil((hi + pad) * 20) / 20);
  if (!(hi > lo)) [lo, hi] = [threshold - 0.5, threshold + 0.5];
  const w = (hi - lo) / binsWanted;
  // Edges thr + k·w covering [lo, hi].
  const kLo = Math.floor((lo - threshold) / w);
  const kHi = Math.ceil((hi - threshold) / w);
  const edges: number[] = [];
  for (let k = kLo; k <= kHi; k++) edges.push(threshold + k * w);
  const axisLo = edges[0];
  const axisHi = edges[edges.length - 1];
  const counts = Array.from({ length: edges.length - 1 }, () => [0, 0]);
  for (const v of values) {
    // Right-closed bins (edge, edge + w], counted from the threshold so that rounding never puts a
    // value on the wrong side: label 1 (v > thr) right of it, label 0 (v ≤ thr, on it too) left.
    const k = Math.ceil((v - threshold) / w) - 1;
    let b = (v > threshold ? Math.max(0, k) : Math.min(-1, k)) - kLo;
    b = Math.min(Math.max(b, 0), counts.length - 1);
    counts[b][v > threshold ? 1 : 0]++;
  }
  const maxCount = counts.reduce((m, [a, b]) => Math.max(m, a + b), 1);
  const yTicks = niceTicks(0, maxCount, Math.min(5, maxCount)).filter((v) => Number.isInteger(v));
  const yHi = Math.max(maxCount, yTicks[yTicks.length - 1] ?? maxCount);
  const parts: string[] = [];
  parts.push(
    `<svg class="chart histogram" xmlns="http://www.w3.org/2000/svg" width="${f.width}" height="${f.height}" viewBox="0 0 ${f.width} ${f.height}" role="img">`,
  );
  parts.push(`<title>Neighbour similarities (${values.length}) with the threshold ${esc(num(threshold))}</title>`);
  parts.push(axes(f, { lo: axisLo, hi: axisHi, ticks: niceTicks(axisLo, axisHi, 6), label: 'identity similarity to the input' }, { lo: 0, hi: yHi, ticks: yTicks, label: 'neighbours' }));
  counts.forEach(([n0, n1], b) => {
    const xa = plotX(f, axisLo, axisHi, edges[b]);
    const xb = plotX(f, axisLo, axisHi, edges[b + 1]);
    const bw = Math.max(0.5, xb - xa - 1);
    let base = 0;
    for (const [count, cls] of [
      [n0, 'label0'],
      [n1, 'label1'],
    ] as const) {
      if (count === 0) continue;
      const yTop = plotY(f, 0, yHi, base + count);
      const yBot = plotY(f, 0, yHi, base);
      parts.push(`<rect class="bar ${cls}" x="${c(xa + 0.5)}" y="${c(yTop)}" width="${c(bw)}" height="${c(yBot - yTop)}"><title>${count} × label ${cls === 'label1' ? 1 : 0}</title></rect>`);
      base += count;
    }
  });
  const tx = plotX(f, axisLo, axisHi, threshold);
  const right = tx > f.width - f.right - 90; // the label goes left of a line near the right edge
  parts.push(`<line class="threshold" data-value="${tickLabel(threshold)}" x1="${c(tx)}" y1="${c(f.top - 14)}" x2="${c(tx)}" y2="${c(f.height - f.bottom)}" />`);
  parts.push(
    `<text class="threshold-label" x="${c(right ? tx - 4 : tx + 4)}" y="${c(f.top - 4)}" text-anchor="${right ? 'end' : 'start'}">threshold ${esc(num(threshold, 2))}</text>`,
  );
  parts.push(`<rect class="legend label0" x="${f.left}" y="4" width="10" height="10" /><text class="legend-label" x="${f.left + 14}" y="13">label 0 (other identity)</text>`);
  parts.push(`<rect class="legend label1" x="${f.left + 160}" y="4" width="10" height="10" /><text class="legend-label" x="${f.left + 174}" y="13">label 1 (same identity)</text>`);
  parts.push('</svg>');
  return parts.join('');
}

/** Loss curves of the optimize absorption: one polyline per series over the iterations, with axes. */
export function lossCurveSvg(losses: Record<string, readonly number[]>, opts?: { width?: number; height?: number; title?: string; x?: string }): string {
  const f: Frame = { width: opts?.width ?? 460, height: opts?.height ?? 220, left: 50, right: 110, top: 14, bottom: 36 };
  const series = Object.entries(losses).filter(([, v]) => Array.isArray(v) && v.some((x) => Number.isFinite(x)));
  const n = Math.max(1, ...series.map(([, v]) => v.length));
  const finite = series.flatMap(([, v]) => v.filter((x) => Number.isFinite(x)));
  let lo = finite.reduce((a, b) => Math.min(a, b), 0);
  let hi = finite.reduce((a, b) => Math.max(a, b), lo + 1e-9);
  const yt = niceTicks(lo, hi, 5);
  lo = Math.min(lo, yt[0]);
  hi = Math.max(hi, yt[yt.length - 1]);
  const xHi = Math.max(1, n - 1);
  const xt = niceTicks(0, xHi, 6).filter((v) => Number.isInteger(v));
  const palette = ['#1f5fbf', '#c0392b', '#27865a', '#8e44ad', '#b7791f'];
  const parts = [
    `<svg class="chart losses" xmlns="http://www.w3.org/2000/svg" width="${f.width}" height="${f.height}" viewBox="0 0 ${f.width} ${f.height}" role="img">`,
    `<title>${esc(opts?.title ?? `Absorption losses over ${n} iterations`)}</title>`,
    axes(f, { lo: 0, hi: xHi, ticks: xt, label: opts?.x ?? 'iteration' }, { lo, hi, ticks: yt, label: 'value' }),
  ];
  series.forEach(([name, v], i) => {
    const colour = palette[i % palette.length];
    const pts: string[] = [];
    v.forEach((y, k) => {
      if (Number.isFinite(y)) pts.push(`${c(plotX(f, 0, xHi, k))},${c(plotY(f, lo, hi, y))}`);
    });
    parts.push(`<polyline class="series series-${esc(name)}" fill="none" stroke="${colour}" stroke-width="${i === 0 ? 2 : 1.3}" points="${pts.join(' ')}" />`);
    const ly = f.top + 6 + i * 16;
    parts.push(`<line x1="${c(f.width - f.right + 8)}" y1="${c(ly)}" x2="${c(f.width - f.right + 24)}" y2="${c(ly)}" stroke="${colour}" stroke-width="2" />`);
    parts.push(`<text class="legend-label" x="${c(f.width - f.right + 28)}" y="${c(ly + 4)}">${esc(name)}</text>`);
  });
  parts.push('</svg>');
  return parts.join('');
}

/** The reports' shared stylesheet. */
export const REPORT_CSS = `
:root { --fg: #1b1f24; --muted: #5b6570; --line: #d6dbe0; --ok: #1e7a46; --bad: #b3261e; --l1: #d9822b; --l0: #3d7ebf; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; color: var(--fg); margin: 0 auto; max-width: 1200px; padding: 24px; background: #fff; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 18px; margin: 0 0 8px; word-break: break-all; } h3 { font-size: 15px; margin: 16px 0 6px; }
.muted { color: var(--muted); }
table { border-collapse: collapse; margin: 6px 0 12px; }
th, td { border: 1px solid var(--line); padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f4f6f8; font-weight: 600; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
section.image { border-top: 2px solid var(--line); margin-top: 28px; padding-top: 16px; }
.figures { display: flex; flex-wrap: wrap; gap: 12px; }
figure { margin: 0; text-align: center; }
figure img { width: 192px; height: 192px; object-fit: contain; image-rendering: pixelated; border: 1px solid var(--line); background: #f4f6f8; display: block; }
figcaption { font-size: 13px; margin-top: 2px; }
.erased { color: var(--ok); font-weight: 600; } .kept { color: var(--bad); font-weight: 600; }
.charts { display: flex; flex-wrap: wrap; gap: 16px; }
.alert { border: 2px solid var(--bad); background: #fdecea; color: #5f1410; padding: 10px 14px; margin: 10px 0; font-size: 15px; }
.alert strong { font-size: 16px; }
svg.chart { background: #fff; border: 1px solid var(--line); }
svg text { font: 11px system-ui, "DejaVu Sans", sans-serif; fill: var(--fg); }
svg .axis { stroke: var(--fg); } svg .xtick, svg .ytick { stroke: var(--fg); } svg .grid { stroke: #eef0f2; }
svg .label1 { fill: var(--l1); } svg .label0 { fill: var(--l0); }
svg .threshold { stroke: var(--bad); stroke-width: 2; stroke-dasharray: 5 3; } svg .threshold-label { fill: var(--bad); }
details pre { background: #f4f6f8; padding: 8px; overflow-x: auto; font-size: 12px; }
.grid2 { display: flex; flex-wrap: wrap; gap: 24px; }
`;

function row(label: string, value: string, numeric = true): string {
  return `<tr><th>${esc(label)}</th><td${numeric ? ' class="n"' : ''}>${value}</td></tr>`;
}

function simClass(sim: number | null | undefined, threshold: number): string {
  if (sim === null || sim === undefined || !Number.isFinite(sim)) return '';
  return sim < threshold ? 'erased' : 'kept';
}

function simSpan(sim: number | null | undefined, threshold: number): string {
  const cls = simClass(sim, threshold);
  return cls ? `<span class="${cls}">${esc(num(sim))}</span>` : esc(num(sim));
}

function figure(png: Buffer, alt: string, caption: string): string {
  return `<figure><img src="${dataUri(png)}" alt="${esc(alt)}" width="192" height="192" /><figcaption>${caption}</figcaption></figure>`;
}

function thresholdOf(r: EraseReport): number {
  const t = r.options?.threshold;
  return typeof t === 'number' && Number.isFinite(t) ? t : 0.35;
}

function keyNumbers(r: EraseReport, threshold: number): string {
  const bh = r.blackHole;
  const ab = r.absorption;
  const chosen = ab.candidates[ab.chosen];
  const rows: string[] = [];
  rows.push(row('SID reconstruction', simSpan(r.sid.reconstruction, threshold)));
  rows.push(row('SID after (BIA)', simSpan(r.sid.after, threshold)));
  rows.push(row('SID baseline (random direction)', simSpan(r.sid.randomBaseline, threshold)));
  if (r.sid.second) {
    rows.push(row('SID reconstruction, 2nd encoder', simSpan(r.sid.second.reconstruction, threshold)));
    rows.push(row('SID after, 2nd encoder', simSpan(r.sid.second.after, threshold)));
    rows.push(row('SID baseline, 2nd encoder', simSpan(r.sid.second.randomBaseline, threshold)));
  }
  rows.push(row('threshold', esc(num(threshold))));
  rows.push(row('boundary found', bh.found ? 'yes' : '<span class="kept">no</span>', false));
  rows.push(row('α_max (× ‖h_r‖)', esc(num(bh.alphaMax))));
  rows.push(row('calibration rounds', esc(bh.rounds.map((x) => `${num(x.alphaMax)} → ${pct(x.share)}${x.refined !== undefined ? ` (${x.refined} decoded in full${x.decided ? ', decided early' : ''})` : ''}`).join(', ') || '—'), false));
  rows.push(row('label-1 share', esc(pct(bh.labelShare))));
  rows.push(row('SVM train accuracy', esc(pct(bh.svm?.trainAccuracy))));
  rows.push(row('SVM held-out accuracy', esc(pct(bh.svm?.heldOutAccuracy))));
  rows.push(row('SVM majority rate', esc(pct(bh.svm?.majorityRate))));
  rows.push(row('SVM margin', esc(num(bh.svm?.geometricMargin, 4))));
  rows.push(row('support vectors', esc(bh.svm ? String(bh.svm.supportVectors) : '—')));
  rows.push(row('s(h_r)', esc(num(bh.sourceDistance))));
  rows.push(row('‖h_r‖', esc(num(bh.hNorm))));
  rows.push(row('wrap set', esc(bh.wrap.length ? bh.wrap.map((w) => `#${w.index} (label ${w.label}, s ${num(w.distance)})`).join(', ') : '—'), false));
  rows.push(row('absorption', esc(`${ab.mode}${ab.backprop ? ` (backprop: ${ab.backprop})` : ''}`), false));
  rows.push(
    row(
      'chosen candidate',
      chosen
        ? esc(
            `#${ab.chosen} from ${chosen.from === 'source' ? 'source' : `wrap point ${chosen.from}`}: sim ${num(chosen.similarity)}, distance ${num(chosen.distance)}·‖h_r‖, ` +
              `s ${num(chosen.signedDistance)}, L_sem ${num(chosen.sem)}, fidelity ${num(chosen.fidelity)}, ${chosen.accepted ? 'accepted' : 'not accepted'}` +
              (chosen.trials !== undefined ? `, ${chosen.trials} trial(s)` : ''),
          )
        : esc(`#${ab.chosen} (not in the candidate list)`),
      false,
    ),
  );
  if (r.randomBaseline) rows.push(row('baseline', esc(`distance ${num(r.randomBaseline.distance)}·‖h_r‖, sim ${num(r.randomBaseline.similarity)}, L_sem ${num(r.randomBaseline.sem)}`), false));
  for (const kind of ['fade', 'blur'] as const) {
    const d = r.degenerateBaselines?.[kind];
    if (!d) continue;
    const what = `strength ${num(d.strength)}, sim ${num(d.similarity)}${d.reached ? '' : ' (target not reached)'}, MSE ${num(d.preservation?.mse, 4)}, SSIM ${num(d.preservation?.ssim)}`;
    rows.push(row(`${kind} (equal similarity)`, esc(what), false));
  }
  rows.push(row('preservation (output vs input)', esc(`MSE ${num(r.preservation.mse, 4)}, SSIM ${num(r.preservation.ssim)}`), false));
  return `<table class="numbers">${rows.join('')}</table>`;
}

function timingsTable(r: EraseReport): string {
  const rows = Object.entries(r.timings ?? {}).map(([k, v]) => row(k, esc(seconds(v))));
  return `<table class="timings"><tr><th>stage</th><th>time</th></tr>${rows.join('')}</table>`;
}

function provenanceTable(r: EraseReport): string {
  const m = r.models;
  const model = (label: string, x: { path: string | null; sha256: string | null } | undefined, extra: string) =>
    x ? row(label, `${esc(x.path ?? '(in memory)')}<br /><span class="muted">sha256 ${esc(x.sha256 ?? '—')}</span>${extra ? `<br />${esc(extra)}` : ''}`, false) : '';
  const rows = [
    row('input', `${esc(r.input.name)}<br /><span class="muted">${esc(`${r.input.width}×${r.input.height}, sha256 ${r.input.sha256}`)}</span>`, false),
    model('diffusion', m.diffusion, ''),
    model('encoder', m.encoder, `arch ${m.encoder.arch}`),
    m.secondEncoder ? model('second encoder', m.secondEncoder, `arch ${m.secondEncoder.arch}`) : '',
    row('perceptual loss', esc(m.perceptual), false),
    row('seeds', esc(Object.entries(r.seeds ?? {}).map(([k, v]) => `${k} ${v}`).join(', ')), false),
    row('device', esc(r.device), false),
    row('version', esc(r.version), false),
    row('finished', esc(r.finishedAt), false),
  ];
  return `<table class="provenance">${rows.join('')}</table>`;
}

function candidatesTable(r: EraseReport): string {
  const ab = r.absorption;
  if (ab.candidates.length === 0) return '<p class="muted">No candidates.</p>';
  const head = '<tr><th>#</th><th>from</th><th>distance</th><th>s</th><th>similarity</th><th>L_sem</th><th>fidelity</th><th>accepted</th><th>trials</th></tr>';
  const threshold = thresholdOf(r);
  const rows = ab.candidates.map(
    (k, i) =>
      `<tr${i === ab.chosen ? ' class="chosen"' : ''}><td class="n">${i}${i === ab.chosen ? ' ★' : ''}</td><td>${esc(k.from === 'source' ? 'source' : `wrap ${k.from}`)}</td>` +
      `<td class="n">${esc(num(k.distance))}</td><td class="n">${esc(num(k.signedDistance))}</td><td class="n">${simSpan(k.similarity, threshold)}</td>` +
      `<td class="n">${esc(num(k.sem))}</td><td class="n">${esc(num(k.fidelity))}</td><td>${k.accepted ? 'yes' : 'no'}</td><td class="n">${esc(k.trials ?? '—')}</td></tr>`,
  );
  return `<table class="candidates">${head}${rows.join('')}</table>`;
}

function imageSection(e: ReportEntry, i: number): string {
  const r = e.report;
  const threshold = thresholdOf(r);
  const parts: string[] = [];
  parts.push(`<section class="image" id="image-${i}">`);
  parts.push(`<h2>${i + 1}. ${esc(r.input.name)}</h2>`);
  if (!r.blackHole.found) {
    parts.push(
      `<div class="alert no-boundary"><strong>No boundary.</strong> No α_max gave both label classes, so no black-hole boundary was fitted; ` +
        `the absorption ran in optimize mode.${r.blackHole.message ? `<br />${esc(r.blackHole.message)}` : ''}</div>`,
    );
  }
  const figs = [
    figure(e.images.input, `input ${r.input.name}`, 'input<br /><span class="muted">reference f_r</span>'),
    figure(e.images.reconstruction, 'reconstruction', `reconstruction<br />sim ${simSpan(r.sid.reconstruction, threshold)}`),
    figure(e.images.output, 'BIA output', `BIA output<br />sim ${simSpan(r.sid.after, threshold)}`),
  ];
  if (e.images.randomBaseline) figs.push(figure(e.images.randomBaseline, 'random baseline', `random baseline<br />sim ${simSpan(r.sid.randomBaseline, threshold)}`));
  for (const kind of ['fade', 'blur'] as const) {
    const png = e.images[kind];
    const d = r.degenerateBaselines?.[kind];
    if (!png || !d) continue;
    const note = d.reached ? `strength ${esc(num(d.strength))}` : 'strength 1, target not reached';
    figs.push(figure(png, `${kind} baseline`, `${kind} (equal similarity)<br />sim ${simSpan(d.similarity, threshold)} <span class="muted">${note}</span>`));
  }
  parts.push(`<div class="figures">${figs.join('')}</div>`);
  parts.push('<div class="charts">');
  if (r.blackHole.similarities.length > 0) {
    parts.push(`<div><h3>Neighbour similarities</h3>${histogramSvg(r.blackHole.similarities, threshold)}</div>`);
  }
  const L = r.absorption.losses;
  if (L && Object.values(L).some((v) => Array.isArray(v) && v.length > 0)) {
    parts.push(`<div><h3>Absorption losses</h3>${lossCurveSvg(L as unknown as Record<string, number[]>)}</div>`);
  }
  parts.push('</div>');
  parts.push(`<div class="grid2"><div><h3>Key numbers</h3>${keyNumbers(r, threshold)}</div>`);
  parts.push(`<div><h3>Timings</h3>${timingsTable(r)}<h3>Provenance</h3>${provenanceTable(r)}</div></div>`);
  parts.push(`<h3>Candidates</h3>${candidatesTable(r)}`);
  parts.push(`<details><summary>Options</summary><pre>${esc(JSON.stringify(r.options, null, 2))}</pre></details>`);
  parts.push('</section>');
  return parts.join('');
}

/** Batch numbers: means over the images, and the erasure rate (share with sim < the image's threshold). */
export interface ReportSummary {
  images: number;
  meanReconstruction: number | null;
  meanAfter: number | null;
  meanRandomBaseline: number | null;
  erasureRate: number | null;
  randomBaselineErasureRate: number | null;
  noBoundary: number;
}

export function summarize(reports: readonly EraseReport[]): ReportSummary {
  const after = reports.map((r) => r.sid.after).filter(Number.isFinite);
  const withBaseline = reports.filter((r) => r.sid.randomBaseline !== null && Number.isFinite(r.sid.randomBaseline));
  return {
    images: reports.length,
    meanReconstruction: mean(reports.map((r) => r.sid.reconstruction).filter(Number.isFinite)),
    meanAfter: mean(after),
    meanRandomBaseline: mean(withBaseline.map((r) => r.sid.randomBaseline as number)),
    erasureRate: reports.length ? reports.filter((r) => r.sid.after < thresholdOf(r)).length / reports.length : null,
    randomBaselineErasureRate: withBaseline.length ? withBaseline.filter((r) => (r.sid.randomBaseline as number) < thresholdOf(r)).length / withBaseline.length : null,
    noBoundary: reports.filter((r) => !r.blackHole.found).length,
  };
}

function summarySection(entries: readonly ReportEntry[]): string {
  const s = summarize(entries.map((e) => e.report));
  const totals = [
    row('images', esc(String(s.images))),
    row('mean SID reconstruction', esc(num(s.meanReconstruction))),
    row('mean SID after (BIA)', esc(num(s.meanAfter))),
    row('mean SID baseline', esc(num(s.meanRandomBaseline))),
    row('erasure rate (BIA)', esc(pct(s.erasureRate))),
    row('erasure rate (baseline)', esc(pct(s.randomBaselineErasureRate))),
    row('images without a boundary', esc(String(s.noBoundary))),
  ];
  const head = '<tr><th>#</th><th>image</th><th>SID recon.</th><th>SID after</th><th>SID baseline</th><th>boundary</th><th>absorb</th><th>time</th></tr>';
  const rows = entries.map((e, i) => {
    const r = e.report;
    const t = thresholdOf(r);
    return (
      `<tr><td class="n">${i + 1}</td><td><a href="#image-${i}">${esc(r.input.name)}</a></td><td class="n">${simSpan(r.sid.reconstruction, t)}</td>` +
      `<td class="n">${simSpan(r.sid.after, t)}</td><td class="n">${simSpan(r.sid.randomBaseline, t)}</td><td>${r.blackHole.found ? 'yes' : '<span class="kept">no boundary</span>'}</td>` +
      `<td>${esc(r.absorption.mode)}</td><td class="n">${esc(seconds(r.timings?.total))}</td></tr>`
    );
  });
  return (
    `<section class="summary"><h2>Summary</h2><table class="totals">${totals.join('')}</table>` +
    `<p class="muted">SID: identity similarity to the input under the encoder; lower is better erasure. Erasure rate: share of images with SID below the threshold.</p>` +
    `<table class="per-image">${head}${rows.join('')}</table></section>`
  );
}

/** The whole report as one HTML document (see the module comment). */
export function renderReportHtml(entries: readonly ReportEntry[], opts?: RenderReportOptions): string {
  const title = opts?.title ?? 'BIA identity erasure report';
  const generated = opts?.generatedAt ?? new Date().toISOString();
  const version = entries[0]?.report.version;
  return [
    '<!DOCTYPE html>',
    '<html lang="en">',
    `<head><meta charset="utf-8" /><meta name="viewport" content="width=device-width, initial-scale=1" /><title>${esc(title)}</title><style>${REPORT_CSS}</style></head>`,
    '<body>',
    `<header><h1>${esc(title)}</h1><p class="muted">${esc(`${entries.length} image(s), generated ${generated}${version ? `, bia-torch ${version}` : ''}`)}</p></header>`,
    entries.length === 0 ? '<p>No image was processed.</p>' : summarySection(entries),
    ...entries.map((e, i) => imageSection(e, i)),
    '</body>',
    '</html>',
    '',
  ].join('\n');
}

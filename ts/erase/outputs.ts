/**
 * The folder of one erased image, as `bia erase` (eraseFolder) and the queue's workers (runEraseJob)
 * both write and read it: <out>/<dir>/ with input.png, output.png, reconstruction.png, baseline.png,
 * fade.png, blur.png, grid.png and, last, report.json — its presence means the image is finished.
 * Every file is written atomically.
 */
import * as fsp from 'node:fs/promises';
import nodePath from 'node:path';
import { ioError } from '../errors';
import { comparisonGrid, writeFileAtomic, writeImage } from '../images';
import type { Tensor } from '../tensor';
import type { EraseReport, EraseResult } from './types';

/** The files a finished image folder holds (baseline.png only when the baseline ran). */
const IMAGE_FILES = ['input.png', 'reconstruction.png', 'output.png'] as const;

export async function exists(path: string): Promise<boolean> {
  try {
    await fsp.access(path);
    return true;
  } catch {
    return false;
  }
}

/** The report of a finished image folder, or null when it is not finished (or not readable as one): report.json and the images it vouches for. */
export async function readFinishedReport(dir: string): Promise<EraseReport | null> {
  let text: string;
  try {
    text = await fsp.readFile(nodePath.join(dir, 'report.json'), 'utf8');
  } catch {
    return null;
  }
  let report: EraseReport;
  try {
    report = JSON.parse(text) as EraseReport;
  } catch {
    return null;
  }
  if (typeof report !== 'object' || report === null || typeof report.sid?.after !== 'number' || typeof report.input?.name !== 'string') return null;
  for (const f of IMAGE_FILES) if (!(await exists(nodePath.join(dir, f)))) return null;
  return report;
}

/** A similarity with three decimals, or — when there is none. */
export function formatSid(v: number | null | undefined): string {
  return typeof v === 'number' && Number.isFinite(v) ? v.toFixed(3) : '—';
}

/** Temporary files of writes that never finished (a worker killed mid-write): .<name>.<pid>.<random>.tmp. */
async function removeStaleTemps(dir: string): Promise<void> {
  let names: string[];
  try {
    names = await fsp.readdir(dir);
  } catch {
    return;
  }
  await Promise.all(names.filter((n) => n.startsWith('.') && n.endsWith('.tmp')).map((n) => fsp.rm(nodePath.join(dir, n), { force: true })));
}

export interface WriteImageFolderOptions {
  /** Also remove the temporary files of writes that never finished (a killed worker's), before writing. */
  removeStaleTemps?: boolean;
}

/** Write the folder of one erased image: every file atomically, report.json last. */
export async function writeImageFolder(dir: string, image: Tensor, result: EraseResult, resolution: number, opts: WriteImageFolderOptions = {}): Promise<void> {
  const report = result.report;
  try {
    await fsp.mkdir(dir, { recursive: true });
  } catch (e) {
    throw ioError(`cannot create ${dir}`, e);
  }
  // A redo: the old report must not vouch for files that are being replaced.
  await fsp.rm(nodePath.join(dir, 'report.json'), { force: true });
  if (opts.removeStaleTemps) await removeStaleTemps(dir);
  await writeImage(image, nodePath.join(dir, 'input.png'));
  await writeImage(result.image, nodePath.join(dir, 'output.png'));
  await writeImage(result.reconstruction, nodePath.join(dir, 'reconstruction.png'));
  if (result.randomBaseline) await writeImage(result.randomBaseline, nodePath.join(dir, 'baseline.png'));
  else await fsp.rm(nodePath.join(dir, 'baseline.png'), { force: true });
  for (const kind of ['fade', 'blur'] as const) {
    const t = result.degenerate?.[kind];
    if (t) await writeImage(t, nodePath.join(dir, `${kind}.png`));
    else await fsp.rm(nodePath.join(dir, `${kind}.png`), { force: true });
  }
  const row = [
    { tensor: image, label: 'input' },
    { tensor: result.reconstruction, label: `reconstruction ${formatSid(report.sid.reconstruction)}` },
    { tensor: result.image, label: `BIA ${formatSid(report.sid.after)}` },
    ...(result.randomBaseline ? [{ tensor: result.randomBaseline, label: `baseline ${formatSid(report.sid.randomBaseline)}` }] : []),
  ];
  await comparisonGrid([row], nodePath.join(dir, 'grid.png'), { cellSize: Math.max(128, resolution) });
  await writeFileAtomic(nodePath.join(dir, 'report.json'), `${JSON.stringify(report, null, 2)}\n`);
}

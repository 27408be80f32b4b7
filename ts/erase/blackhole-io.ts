/**
 * A formed black hole on disk, so that it is formed once and reused: a folder with
 * `blackhole.json` (everything but tensors: options, calibration rounds, labels, similarities, SVM
 * numbers, wrap indices) and `blackhole.safetensors` (x_lat, h_r, f_r, the reconstruction, the wrap
 * codes, w and dq). Both are written atomically, the JSON last.
 */
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { readCheckpoint, saveSafetensors } from '../checkpoint';
import { BiaError, invalidArgument } from '../errors';
import { writeFileAtomic } from '../images';
import type { JobOptions } from '../jobs';
import type { Device } from '../options';
import type { Tensor } from '../tensor';
import { VERSION } from '../version';
import { resolveEraseOptions } from './options';
import type { BlackHole } from './form';

const FORMAT = 'bia-torch black hole v1';

/** The JSON half: the black hole without its tensors (typed arrays as plain arrays). */
type Saved = Pick<BlackHole, 'hNorm' | 'reconstructionSimilarity' | 'found' | 'message' | 'alphaMax' | 'rounds' | 'options'> & {
  format: string;
  version: string;
  labels: number[];
  similarities: number[];
  boundary: Omit<NonNullable<BlackHole['boundary']>, 'w' | 'dq'> | null;
  wrap: Omit<BlackHole['wrap'], 'codes'>;
};

/** Write `dir/blackhole.safetensors` and `dir/blackhole.json`. */
export async function saveBlackHole(bh: BlackHole, dir: string, opts?: JobOptions): Promise<{ json: string; tensors: string }> {
  if (typeof dir !== 'string' || dir.length === 0) throw invalidArgument('dir must be a non-empty string');
  await mkdir(dir, { recursive: true });
  const tensors: Record<string, Tensor> = { x_lat: bh.xLat, h_r: bh.hR, f_r: bh.fR, reconstruction: bh.reconstruction, wrap_codes: bh.wrap.codes };
  if (bh.boundary) {
    tensors.w = bh.boundary.w;
    tensors.dq = bh.boundary.dq;
  }
  const tensorsPath = join(dir, 'blackhole.safetensors');
  await saveSafetensors(tensorsPath, tensors, { ...opts, metadata: { format: FORMAT } });
  const { w: _w, dq: _dq, ...boundary } = bh.boundary ?? { w: null, dq: null };
  const saved: Saved = {
    format: FORMAT,
    version: VERSION,
    hNorm: bh.hNorm,
    reconstructionSimilarity: bh.reconstructionSimilarity,
    found: bh.found,
    ...(bh.message ? { message: bh.message } : {}),
    alphaMax: bh.alphaMax,
    rounds: bh.rounds,
    labels: Array.from(bh.labels),
    similarities: Array.from(bh.similarities),
    boundary: bh.boundary ? (boundary as Saved['boundary']) : null,
    wrap: { indices: bh.wrap.indices, labels: bh.wrap.labels, distances: bh.wrap.distances },
    options: bh.options,
  };
  const jsonPath = join(dir, 'blackhole.json');
  await writeFileAtomic(jsonPath, JSON.stringify(saved, null, 1), 'black hole');
  return { json: jsonPath, tensors: tensorsPath };
}

/** The saved SVM numbers; files written before the geometric margin had its name call it `margin`. */
function savedBoundary(b: NonNullable<Saved['boundary']> & { margin?: number }): NonNullable<Saved['boundary']> {
  const { margin, ...rest } = b;
  return { ...rest, geometricMargin: rest.geometricMargin ?? (margin as number) };
}

/** The saved erase options; files written before the optimize start had its name call it `margin`. */
function savedOptions(o: Saved['options'] & { margin?: number }): Saved['options'] {
  if (o === null || typeof o !== 'object' || !('margin' in o)) return o;
  const { margin, ...rest } = o;
  return { ...rest, startMargin: rest.startMargin ?? margin };
}

/** Read a folder written by saveBlackHole; tensors go to `device` (default cpu). */
export async function loadBlackHole(dir: string, opts?: { device?: Device } & JobOptions): Promise<BlackHole> {
  if (typeof dir !== 'string' || dir.length === 0) throw invalidArgument('dir must be a non-empty string');
  const jsonPath = join(dir, 'blackhole.json');
  let saved: Saved;
  try {
    saved = JSON.parse(await readFile(jsonPath, 'utf8')) as Saved;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new BiaError(code === 'ENOENT' ? 'BIA_IO_ERROR' : 'BIA_CHECKPOINT_ERROR', `${jsonPath}: ${code === 'ENOENT' ? 'not found (is this a folder written by saveBlackHole?)' : (e as Error).message}`);
  }
  if (saved?.format !== FORMAT) {
    const found = saved === null || typeof saved !== 'object' || Array.isArray(saved) ? `a JSON ${Array.isArray(saved) ? 'array' : saved === null ? 'null' : typeof saved}` : 'format' in saved ? `format ${JSON.stringify(saved.format)}` : `no "format" field (keys: ${Object.keys(saved).slice(0, 8).join(', ') || 'none'})`;
    throw new BiaError('BIA_CHECKPOINT_ERROR', `${jsonPath} is not a saved black hole: expected format '${FORMAT}', found ${found}`);
  }
  const options = resolveEraseOptions(savedOptions(saved.options));
  const ck = await readCheckpoint(join(dir, 'blackhole.safetensors'), opts);
  const need = ['x_lat', 'h_r', 'f_r', 'reconstruction', 'wrap_codes', ...(saved.boundary ? ['w', 'dq'] : [])];
  const missing = need.filter((k) => !ck.tensors.has(k));
  if (missing.length > 0) {
    for (const t of ck.tensors.values()) t.dispose();
    throw new BiaError('BIA_CHECKPOINT_MISMATCH', `${dir}/blackhole.safetensors lacks ${missing.join(', ')}`);
  }
  const device = opts?.device ?? 'cpu';
  const moved = new Map<string, Tensor>();
  try {
    for (const k of need) moved.set(k, device === 'cpu' ? ck.tensors.get(k)! : await ck.tensors.get(k)!.to({ device }, opts));
  } finally {
    for (const [k, t] of ck.tensors) if (moved.get(k) !== t) t.dispose();
  }
  const t = (k: string) => moved.get(k)!;
  const hShape = t('h_r').shape.slice(1).join();
  if (t('wrap_codes').shape.slice(1).join() !== hShape || (saved.boundary && t('dq').shape.join() !== hShape)) {
    for (const x of moved.values()) x.dispose();
    throw new BiaError('BIA_CHECKPOINT_MISMATCH', `${dir}: the saved codes disagree in shape`);
  }
  const out: BlackHole = {
    xLat: t('x_lat'),
    hR: t('h_r'),
    fR: t('f_r'),
    reconstruction: t('reconstruction'),
    hNorm: saved.hNorm,
    reconstructionSimilarity: saved.reconstructionSimilarity,
    found: saved.found,
    ...(saved.message ? { message: saved.message } : {}),
    alphaMax: saved.alphaMax,
    rounds: saved.rounds,
    labels: Uint8Array.from(saved.labels),
    similarities: Float64Array.from(saved.similarities),
    boundary: saved.boundary ? { ...savedBoundary(saved.boundary), w: t('w'), dq: t('dq') } : null,
    wrap: { codes: t('wrap_codes'), indices: saved.wrap.indices, labels: saved.wrap.labels, distances: saved.wrap.distances },
    options,
    dispose() {
      for (const x of moved.values()) x.dispose();
    },
    [Symbol.dispose]() {
      this.dispose();
    },
  };
  return out;
}

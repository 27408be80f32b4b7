/**
 * Small batch operations on h-space codes and images that the pipeline needs without copying
 * tensors through JS: moving codes along a direction, and gathering rows of several batches.
 */
import { invalidArgument } from '../errors';
import { runJob, type JobOptions } from '../jobs';
import { loadAddon } from '../native';
import { randn, Tensor } from '../tensor';
import type { Device } from '../options';

export interface OffsetOptions extends JobOptions {
  /** Which rows of base (default all). */
  rows?: number[];
  /** The direction (one code); omitted: the rows are copied. */
  direction?: Tensor;
  /** Step along the direction per row (needs direction). */
  steps?: ArrayLike<number>;
}

/** out[m] = base[rows[m]] + steps[m]·direction, in float64, returned in base's dtype and device. */
export async function offsetCodes(base: Tensor, opts: OffsetOptions = {}): Promise<Tensor> {
  if (!(base instanceof Tensor)) throw invalidArgument('base must be a Tensor');
  if (opts.direction !== undefined && !(opts.direction instanceof Tensor)) throw invalidArgument('direction must be a Tensor');
  const steps = opts.steps === undefined ? null : Float64Array.from(opts.steps);
  const b = base.handle;
  const d = opts.direction?.handle ?? null;
  const rows = opts.rows ?? null;
  return new Tensor(await runJob(opts, (j) => loadAddon().offsetCodes(b, rows, d, steps, j)));
}

/** The rows picks[m] = [part, row] of several batches, stacked into one [M, ...]. */
export async function takeRows(parts: Tensor[], picks: [number, number][], opts?: JobOptions): Promise<Tensor> {
  if (!Array.isArray(parts) || parts.some((p) => !(p instanceof Tensor))) throw invalidArgument('parts must be an array of Tensors');
  const handles = parts.map((p) => p.handle);
  const flat = picks.flat();
  return new Tensor(await runJob(opts, (j) => loadAddon().takeRows(handles, flat, j)));
}

/** A random unit direction (float64, `shape`), N(0, I) normalised, seeded; `scale` times it. */
export async function randomDirection(shape: number[], seed: number, device: string, scale = 1, opts?: JobOptions): Promise<Tensor> {
  const g = await randn(shape, { seed, device: device as Device, dtype: 'float64' });
  try {
    const h = g.handle;
    return new Tensor(await runJob(opts, (j) => loadAddon().unitDirection(h, scale, j)));
  } finally {
    g.dispose();
  }
}

/**
 * Schedules: functions of the step index (0-based) to a number, for the learning rate and the
 * ArcFace margin. They are plain functions, so any (step) => number works too.
 */
import { invalidArgument } from '../errors';

export type Schedule = (step: number) => number;

function finite(v: unknown, what: string): number {
  if (typeof v !== 'number' || !Number.isFinite(v)) throw invalidArgument(`${what} must be a finite number, got ${JSON.stringify(v)}`);
  return v;
}

/** The same value at every step. */
export function constant(value: number): Schedule {
  finite(value, 'value');
  return () => value;
}

/**
 * Linear warmup from 0 to `base` over `warmup` steps, then a cosine decay from `base` to `min`
 * (default 0) at step `total`; `min` afterwards.
 */
export function cosineSchedule(base: number, warmup: number, total: number, min = 0): Schedule {
  finite(base, 'base');
  finite(min, 'min');
  if (!Number.isInteger(warmup) || warmup < 0) throw invalidArgument('warmup must be a non-negative integer');
  if (!Number.isInteger(total) || total <= warmup) throw invalidArgument('total must be an integer greater than warmup');
  return (step) => {
    if (step < warmup) return (base * (step + 1)) / warmup;
    if (step >= total) return min;
    const p = (step - warmup) / (total - warmup);
    return min + 0.5 * (base - min) * (1 + Math.cos(Math.PI * p));
  };
}

/** `from` until step `start`, then linearly to `to` at step `end`, `to` afterwards. */
export function linearRamp(from: number, to: number, start: number, end: number): Schedule {
  finite(from, 'from');
  finite(to, 'to');
  finite(start, 'start');
  finite(end, 'end');
  if (end < start) throw invalidArgument('end must not be before start');
  return (step) => {
    if (step <= start) return from;
    if (step >= end) return to;
    return from + ((to - from) * (step - start)) / (end - start);
  };
}

/**
 * Pieces [startStep, value or schedule]: at a step, the last piece whose start is ≤ the step applies
 * (a schedule gets the absolute step). The first piece must start at 0. Example, the encoder's margin:
 * piecewise([0, 0], [half, linearRamp(0, 0.3, half, total)]).
 */
export function piecewise(...pieces: Array<[number, number | Schedule]>): Schedule {
  if (pieces.length === 0) throw invalidArgument('piecewise needs at least one piece');
  let last = -1;
  for (const [i, p] of pieces.entries()) {
    if (!Array.isArray(p) || p.length !== 2) throw invalidArgument(`piece ${i} must be [startStep, value | schedule]`);
    const [start, v] = p;
    if (!Number.isInteger(start) || start <= last) throw invalidArgument('piece starts must be increasing integers');
    if (i === 0 && start !== 0) throw invalidArgument('the first piece must start at step 0');
    if (typeof v !== 'function') finite(v, `piece ${i}'s value`);
    last = start;
  }
  return (step) => {
    let chosen = pieces[0][1];
    for (const [start, v] of pieces) if (step >= start) chosen = v;
    return typeof chosen === 'function' ? chosen(step) : chosen;
  };
}

/**
 * Stage bookkeeping of the erase job: wall time per stage, and progress events that carry the
 * stage's own step/total plus a monotone fraction of the whole job.
 */
import type { ProgressEvent } from '../jobs';
import type { EraseProgress, EraseStage } from './types';

/** Rough shares of a default run's time, used only to make `fraction` move evenly. */
const WEIGHTS: Record<EraseStage, number> = { load: 0, invert: 0.08, neighbours: 0.6, boundary: 0.02, absorb: 0.22, baseline: 0.04, evaluate: 0.04 };
const ORDER: EraseStage[] = ['load', 'invert', 'neighbours', 'boundary', 'absorb', 'baseline', 'evaluate'];

export class StageClock {
  readonly timings: Record<EraseStage | 'total', number> = { load: 0, invert: 0, neighbours: 0, boundary: 0, absorb: 0, baseline: 0, evaluate: 0, total: 0 };
  readonly #t0 = performance.now();
  #stage: EraseStage | null = null;
  #since = 0;
  #fraction = 0;

  constructor(
    private readonly onStage?: (p: EraseProgress) => void,
    private readonly onProgress?: (ev: ProgressEvent) => void,
  ) {}

  /** Close the running stage (if any) and open `stage`. */
  begin(stage: EraseStage, message?: string): void {
    this.end();
    this.#stage = stage;
    this.#since = performance.now();
    this.emit(0, 1, message);
  }

  /**
   * A progress callback for the native jobs of the running stage, which may be several in a row
   * (`parts`): a job whose step count restarts is taken as the next part.
   */
  sub(parts = 1): (ev: ProgressEvent) => void {
    let part = 0;
    let last = -1;
    return (ev) => {
      if (!(ev.total > 0)) return;
      if (ev.step < last) part = Math.min(part + 1, parts - 1);
      last = ev.step;
      this.emit(part * ev.total + ev.step, parts * ev.total, ev.stage);
    };
  }

  /** Progress within the stage: `step` of `total`. */
  emit(step: number, total: number, message?: string): void {
    const stage = this.#stage;
    if (!stage) return;
    const i = ORDER.indexOf(stage);
    const before = ORDER.slice(0, i).reduce((a, s) => a + WEIGHTS[s], 0);
    const within = total > 0 ? Math.min(1, Math.max(0, step / total)) : 1;
    this.#fraction = Math.max(this.#fraction, Math.min(1, before + WEIGHTS[stage] * within));
    const p: EraseProgress = { stage, step, total, fraction: this.#fraction, ...(message ? { message } : {}) };
    this.onStage?.(p);
    this.onProgress?.({ step, total, stage, value: this.#fraction });
  }

  end(): void {
    if (this.#stage) this.timings[this.#stage] += (performance.now() - this.#since) / 1000;
    this.#stage = null;
  }

  /** Close everything; the last event has fraction 1. */
  finish(): Record<EraseStage | 'total', number> {
    const last = this.#stage ?? 'evaluate';
    this.#stage = last;
    this.#fraction = 1;
    const p: EraseProgress = { stage: last, step: 1, total: 1, fraction: 1, message: 'done' };
    this.onStage?.(p);
    this.onProgress?.({ step: 1, total: 1, stage: last, value: 1 });
    this.end();
    this.timings.total = (performance.now() - this.#t0) / 1000;
    return this.timings;
  }
}

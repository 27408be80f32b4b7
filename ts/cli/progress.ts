/**
 * Progress of `bia erase` on a terminal: one line, redrawn with \r, per image — the image, the
 * stage, a bar of the stage's steps, its percent, the time elapsed on the image and the ETA from
 * the job's overall fraction — and a final line per image that replaces it. On a stream that is not
 * a TTY there are no bars, only the final lines; with `quiet` (--json) nothing at all.
 */
import type { EraseProgress } from '../erase/types';

/** Where progress goes: process.stderr, or anything with write() (tests). */
export interface ProgressStream {
  write(s: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

export interface ProgressOptions {
  /** Write nothing (--json). */
  quiet?: boolean;
  /** Bars even when the stream says it is not a TTY (default: stream.isTTY). */
  tty?: boolean;
  /** Least milliseconds between two redraws of the same stage (default 100). */
  minIntervalMs?: number;
  /** The clock in milliseconds (default Date.now). */
  now?: () => number;
}

/** m:ss, or h:mm:ss from an hour on. */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return '--:--';
  const total = Math.round(ms / 1000);
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  const ss = String(s).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`;
}

/** A bar of `width` cells filled to `fraction` (eighths of a cell for the edge). */
export function bar(fraction: number, width: number): string {
  const f = Math.min(1, Math.max(0, Number.isFinite(fraction) ? fraction : 0));
  const eighths = Math.round(f * width * 8);
  const full = Math.floor(eighths / 8);
  const part = eighths % 8;
  const partial = part > 0 ? '▏▎▍▌▋▊▉'[part - 1] : '';
  return '█'.repeat(full) + partial + ' '.repeat(Math.max(0, width - full - (partial ? 1 : 0)));
}

export class EraseProgressView {
  readonly #stream: ProgressStream;
  readonly #quiet: boolean;
  readonly #tty: boolean;
  readonly #minInterval: number;
  readonly #now: () => number;
  #label = '';
  #imageStart = 0;
  #lastDraw = -Infinity;
  #lastStage: string | undefined;
  #drawn = false;

  constructor(stream: ProgressStream, opts?: ProgressOptions) {
    this.#stream = stream;
    this.#quiet = opts?.quiet ?? false;
    this.#tty = !this.#quiet && (opts?.tty ?? stream.isTTY === true);
    this.#minInterval = opts?.minIntervalMs ?? 100;
    this.#now = opts?.now ?? Date.now;
  }

  /** Whether bars are drawn. */
  get bars(): boolean {
    return this.#tty;
  }

  /** A new image: index from 0. */
  startImage(index: number, count: number, name: string): void {
    this.#label = `[${index + 1}/${count}] ${name}`;
    this.#imageStart = this.#now();
    this.#lastDraw = -Infinity;
    this.#lastStage = undefined;
  }

  /** An event of the erase job: redraw (at most every minIntervalMs, except on a stage change or the end). */
  update(p: EraseProgress): void {
    if (!this.#tty) return;
    const t = this.#now();
    const stageChanged = p.stage !== this.#lastStage;
    const last = p.total > 0 && p.step >= p.total && p.fraction >= 1;
    if (!stageChanged && !last && t - this.#lastDraw < this.#minInterval) return;
    this.#lastStage = p.stage;
    this.#lastDraw = t;
    this.#draw(this.line(p, t));
  }

  /** The bar line for an event at time t (without \r). */
  line(p: EraseProgress, t = this.#now()): string {
    const elapsed = t - this.#imageStart;
    const stageFraction = p.total > 0 ? p.step / p.total : 0;
    const f = p.fraction;
    const eta = f > 0 && f < 1 ? (elapsed * (1 - f)) / f : f >= 1 ? 0 : NaN;
    const percent = `${Math.floor(Math.min(1, Math.max(0, stageFraction)) * 100)}%`.padStart(4);
    const tail = ` ${percent} ${p.step}/${p.total}  ${formatDuration(elapsed)} elapsed  ETA ${formatDuration(eta)}`;
    const head = `${this.#label}  ${p.stage.padEnd(10)} `;
    const columns = this.#stream.columns && this.#stream.columns > 20 ? this.#stream.columns - 1 : 99;
    let barWidth = Math.max(10, Math.min(30, columns - head.length - tail.length - 2));
    let text = `${head}|${bar(stageFraction, barWidth)}|${tail}`;
    if (text.length > columns) {
      // Too narrow: shorten the image name first, then drop the bar.
      const room = columns - tail.length - p.stage.length - 16;
      const label = room > 8 ? (this.#label.length > room ? `${this.#label.slice(0, room - 1)}…` : this.#label) : '';
      barWidth = 10;
      text = `${label ? `${label}  ` : ''}${p.stage} |${bar(stageFraction, barWidth)}|${tail}`;
      if (text.length > columns) text = text.slice(0, columns);
    }
    if (p.message && text.length + p.message.length + 2 <= columns) text += `  ${p.message}`;
    return text;
  }

  /** End the image with a final line (it replaces the bar). */
  finishImage(line: string): void {
    this.message(line);
  }

  /** Print a line (clears the bar first on a TTY). Nothing when quiet. */
  message(line: string): void {
    if (this.#quiet) return;
    this.#clear();
    this.#stream.write(`${line}\n`);
  }

  /** Milliseconds since the current image started. */
  elapsed(): number {
    return this.#now() - this.#imageStart;
  }

  /** Clear the bar (before an error message, at the end). */
  close(): void {
    this.#clear();
  }

  #draw(text: string): void {
    this.#stream.write(`\r${text}\x1b[K`);
    this.#drawn = true;
  }

  #clear(): void {
    if (this.#drawn) {
      this.#stream.write('\r\x1b[K');
      this.#drawn = false;
    }
  }
}

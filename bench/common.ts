/** Shared pieces of the benches: finding Python, the Python reference server, settling, tables. */
import { spawn, spawnSync, type ChildProcessByStdio } from 'node:child_process';
import path from 'node:path';
import { createInterface } from 'node:readline';
import type { Readable, Writable } from 'node:stream';

export const BENCH_DIR = path.join(__dirname, '..', '..', 'bench');

/** A Python that imports torch: --python, BIA_PYTHON, python3, Debian's /usr/bin/python3. */
export function findPython(explicit?: string): string | null {
  const candidates = [explicit, process.env.BIA_PYTHON, 'python3', '/usr/bin/python3'].filter(Boolean) as string[];
  for (const exe of candidates) {
    const r = spawnSync(exe, ['-c', 'import torch'], { stdio: 'ignore', timeout: 60_000 });
    if (r.status === 0) return exe;
  }
  return null;
}

/**
 * Let BLAS/OpenMP threads left spinning by one side (addon or Python) go idle before the other side
 * is timed; without it, a tiny model measured right after the other process ran 50× slower.
 * `ms` (CPU only; default 150): a shorter pause where only this process's own threads ran before and
 * the case's warm-up follows (the harness between its own cases: 50).
 */
export function settle(device: string, ms = 150): Promise<void> {
  return new Promise((r) => setTimeout(r, device === 'cpu' ? ms : 0));
}


/** A Python reference script in server mode: a hello line, then one JSON answer per JSON request. */
export class PythonServer {
  private readonly child: ChildProcessByStdio<Writable, Readable, null>;
  private readonly lines: AsyncIterableIterator<string>;
  hello: { torch: string; threads: number } | null = null;

  constructor(exe: string, script: string, threads: number) {
    this.child = spawn(exe, [path.join(BENCH_DIR, script), String(threads)], { stdio: ['pipe', 'pipe', 'inherit'] });
    this.lines = createInterface({ input: this.child.stdout })[Symbol.asyncIterator]();
  }

  private async next(): Promise<unknown> {
    const r = await this.lines.next();
    if (r.done) throw new Error('the Python reference exited early');
    return JSON.parse(r.value);
  }

  async start(): Promise<{ torch: string; threads: number }> {
    this.hello = (await this.next()) as { torch: string; threads: number };
    return this.hello;
  }

  /** One JSON request, one JSON answer (requests are answered in order; do not interleave callers). */
  async request<T>(request: unknown): Promise<T> {
    this.child.stdin.write(`${JSON.stringify(request)}\n`);
    const answer = (await this.next()) as T & { error?: string };
    if (answer && typeof answer === 'object' && typeof answer.error === 'string') throw new Error(`Python reference: ${answer.error}`);
    return answer;
  }

  async seconds(request: unknown): Promise<number[]> {
    return (await this.request<{ seconds: number[] }>(request)).seconds;
  }

  close(): void {
    this.child.stdin.end();
  }

  /** Whether the process is still running. */
  get alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }
}


/** A plain-text table. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

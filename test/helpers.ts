import { spawnSync } from 'node:child_process';
import path from 'node:path';
import v8 from 'node:v8';
import vm from 'node:vm';

v8.setFlagsFromString('--expose-gc');
/** A real V8 garbage collection (works without starting node with --expose-gc). */
export const gc: () => void = vm.runInNewContext('gc');

export const ROOT = path.resolve(__dirname, '..', '..');
export const CLI = path.join(ROOT, 'dist', 'ts', 'cli.js');

export function runCli(args: string[], env: NodeJS.ProcessEnv = {}) {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 120_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Run a snippet in a fresh Node process (for loader tests, which need an unloaded module cache). */
export function runNode(code: string, env: NodeJS.ProcessEnv = {}, cwd = ROOT) {
  const r = spawnSync(process.execPath, ['-e', code], { encoding: 'utf8', env: { ...process.env, ...env }, cwd, timeout: 120_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

export function close(a: ArrayLike<number>, b: ArrayLike<number>, tol: number): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (!(Math.abs(a[i] - b[i]) <= tol * (1 + Math.abs(b[i])))) return false;
  return true;
}

/** max |a − b| / max |b| over whole tensors: the relative error the parity tests bound. */
export async function relErr(a: { data(): Promise<ArrayLike<number>> }, b: { data(): Promise<ArrayLike<number>> }): Promise<number> {
  const [x, y] = [await a.data(), await b.data()];
  if (x.length !== y.length) throw new Error(`lengths differ: ${x.length} vs ${y.length}`);
  let num = 0;
  let den = 0;
  for (let i = 0; i < x.length; i++) {
    num = Math.max(num, Math.abs(x[i] - y[i]));
    den = Math.max(den, Math.abs(y[i]));
  }
  return num / den;
}

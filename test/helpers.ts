import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import v8 from 'node:v8';
import vm from 'node:vm';
import type { DiffusionModel, IdentityEncoder, Tensor } from '../ts/index';

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

// ---------------------------------------------------------------------------------------------------
// erase fixtures (the library and sharp load on first use, not with every test that imports this file)

/**
 * `bia erase` flags that keep a job short on tiny random models: random networks see one identity
 * everywhere, so calibration finds no boundary and a short `optimize` absorption runs.
 */
export const FAST_ERASE_FLAGS = ['--t0', '100', '--steps', '8', '--neighbours', '8', '--protocol', 'resize', '--calibration-rounds', '2', '--iterations', '2', '--backprop', 'one-step'];

/** A seeded noise image of width × height, written as PNG, or as JPEG / WebP by the file's extension. */
export async function noiseImage(file: string, seed: number, width = 24, height = 20): Promise<void> {
  const sharp = (await import('sharp')).default;
  const px = Buffer.alloc(width * height * 3);
  let s = seed;
  for (let i = 0; i < px.length; i++) {
    s = (s * 1103515245 + 12345) >>> 0;
    px[i] = (s >>> 16) & 255;
  }
  const img = sharp(px, { raw: { width, height, channels: 3 } });
  const ext = path.extname(file);
  await (ext === '.jpg' ? img.jpeg() : ext === '.webp' ? img.webp() : img.png()).toFile(file);
}

/** Every file under `dir` whose name marks an unfinished write. */
export function tmpFiles(dir: string): string[] {
  return (readdirSync(dir, { recursive: true }) as string[]).filter((f) => f.endsWith('.tmp'));
}

/**
 * The tiny world of the erase and unlearning tests (CPU, one thread, seeded): the tiny diffusion
 * model, a small random identity encoder, a 16×16 noise photo, and the similarity threshold at the
 * median of its `neighbours` neighbours at α_max = 1 (random networks have no notion of identity:
 * there both labels occur, which is what calibration would look for).
 */
export async function tinyWorld(o: { t0: number; steps: number; neighbours: number }): Promise<{ diffusion: DiffusionModel; encoder: IdentityEncoder; image: Tensor; threshold: number }> {
  const { createDiffusion, createIdentityEncoder, labelNeighbours, randn, sampleNeighbours, setThreads } = await import('../ts/index');
  setThreads(1); // tiny models gain nothing from a second thread, and it spins against other work on a shared machine
  const diffusion = await createDiffusion('tiny', { seed: 1 });
  const encoder = await createIdentityEncoder('iresnet18', { width: 0.125, embeddingSize: 32, seed: 2 });
  const image = await randn([1, 3, 16, 16], { seed: 5 });
  const { xLat, hR } = await diffusion.invert(image, { t0: o.t0, steps: o.steps });
  const fR = await encoder.embed(image, { protocol: 'resize' });
  const nb = await sampleNeighbours(hR, { n: o.neighbours, alphaMax: 1, seed: 909090 });
  const lab = await labelNeighbours(diffusion, encoder, { xLat, hR, fR }, nb.codes, { t0: o.t0, steps: o.steps, protocol: 'resize', mode: 'every-step' });
  const s = Array.from(lab.similarities).sort((a, b) => a - b);
  const threshold = (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
  for (const x of [xLat, hR, fR, nb.codes]) x.dispose();
  return { diffusion, encoder, image, threshold };
}

/**
 * bench/unlearn-separability: can the diffusion model itself tell the person from other people? The
 * unlearned model must change her photos and no one else's, so somewhere in the UNet her photos must look
 * different from everyone else's. This measures it where BIA works, in h-space: the inverted code h_r of
 * each photo (the middle block's output at t0).
 *
 * For identity --person, k given photos (k in --given, default 3,8,18) are the positives; the 32 retain
 * portraits (training identities) the negatives. Two rules are fitted on them: the mean direction (score =
 * projection onto mean(her) − mean(retain)) and ridge regression in the dual (λ = --lambda × the mean squared
 * norm of the centred codes). Each is scored on 20 unseen photos of her and 50 held-out people (identities
 * 2100–2149, the bench/unlearn evaluation sets): the AUC (chance 0.5), and how many held-out people score above
 * the lowest-scoring fifth of her unseen photos. For comparison the same is done with the identity encoder's
 * embeddings (cosine to her enrolled mean), the network the unlearning has to satisfy.
 * docs/unlearning.md ("Can the model tell her apart?") reports it.
 *
 *   node dist/bench/unlearn-separability.js [--person 2000] [--given 3,8,18] [--lambda 0.1] [--json FILE]
 */
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { loadDiffusion } from '../ts/diffusion';
import { setThreads } from '../ts/engine';
import { loadIdentityEncoder } from '../ts/identity';
import type { Tensor } from '../ts/tensor';
import { DEFAULT_FILES, otherPeople } from '../ts/world/defaults';
import { DEMO_SETTINGS } from '../ts/world/demo';
import { portraitBatch } from '../ts/world/portraits';

type Vec = Float64Array;
const round = (v: number) => Math.round(v * 1000) / 1000;

/** Rows of a [N, …] tensor's data as vectors. */
async function rows(t: Tensor): Promise<Vec[]> {
  const d = await t.data();
  const n = t.shape[0];
  const dim = d.length / n;
  return Array.from({ length: n }, (_, i) => Float64Array.from(d.subarray(i * dim, (i + 1) * dim)));
}

const dot = (a: Vec, b: Vec) => a.reduce((s, v, j) => s + v * b[j], 0);
const meanOf = (xs: Vec[]) => Float64Array.from(xs[0], (_, j) => xs.reduce((s, x) => s + x[j], 0) / xs.length);

/** Area under the ROC curve of scores of positives against negatives (ties count half). */
export function auc(pos: number[], neg: number[]): number {
  let s = 0;
  for (const p of pos) for (const n of neg) s += p > n ? 1 : p === n ? 0.5 : 0;
  return s / (pos.length * neg.length);
}

/** Solves A x = b (A square, well-conditioned) by Gaussian elimination with partial pivoting. */
function solve(A: number[][], b: number[]): number[] {
  const n = b.length;
  const M = A.map((r, i) => [...r, b[i]]);
  for (let c = 0; c < n; c++) {
    let p = c;
    for (let r = c + 1; r < n; r++) if (Math.abs(M[r][c]) > Math.abs(M[p][c])) p = r;
    [M[c], M[p]] = [M[p], M[c]];
    for (let r = 0; r < n; r++) {
      if (r === c) continue;
      const f = M[r][c] / M[c][c];
      for (let k = c; k <= n; k++) M[r][k] -= f * M[c][k];
    }
  }
  return M.map((r, i) => r[n] / r[i]);
}

/** Score functions fitted on positives and negatives. */
function meanDirection(pos: Vec[], neg: Vec[]): (h: Vec) => number {
  const mn = meanOf(neg);
  const w = meanOf(pos).map((v, j) => v - mn[j]);
  return (h) => dot(w, h.map((v, j) => v - mn[j]));
}

function ridge(pos: Vec[], neg: Vec[], lambda: number): (h: Vec) => number {
  const X = [...pos, ...neg];
  const mu = meanOf(X);
  const C = X.map((x) => x.map((v, j) => v - mu[j]));
  const scale = C.reduce((s, c) => s + dot(c, c), 0) / C.length;
  const K = C.map((a, i) => C.map((b, j) => dot(a, b) + (i === j ? lambda * scale : 0)));
  const a = solve(K, [...pos.map(() => 1), ...neg.map(() => -1)]);
  const w = C.reduce((acc, c, i) => acc.map((v, j) => v + a[i] * c[j]), new Float64Array(mu.length));
  return (h) => dot(w, h.map((v, j) => v - mu[j]));
}

function judge(score: (h: Vec) => number, unseen: Vec[], held: Vec[]) {
  const u = unseen.map(score);
  const k = held.map(score);
  const fifth = [...u].sort((x, y) => x - y)[Math.floor(u.length / 5)];
  return { auc: round(auc(u, k)), heldAboveFifth: k.filter((v) => v >= fifth).length };
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { person: { type: 'string', default: '2000' }, given: { type: 'string', default: '3,8,18' }, lambda: { type: 'string', default: '0.1' }, json: { type: 'string' } } });
  setThreads(Number(process.env.BIA_NUM_THREADS ?? 2));
  const diffusion = await loadDiffusion(DEFAULT_FILES.diffusion);
  const encoder = await loadIdentityEncoder(DEFAULT_FILES.encoder);
  const person = Number(values.person);
  const ks = values.given.split(',').map(Number);
  const lambda = Number(values.lambda);
  const shots = (identity: number, first: number, count: number) => portraitBatch(Array.from({ length: count }, (_, i) => ({ identity, seed: first + i })));
  // the given photos: seeds 100–102 as in bench/unlearn, then more draws from 400 on
  const extra = Math.max(...ks) - 3;
  const pictures = {
    her: (await shots(person, 100, 3)).images,
    more: extra > 0 ? (await shots(person, 400, extra)).images : null,
    unseen: (await shots(person, 200, 20)).images,
    held: (await portraitBatch(Array.from({ length: 50 }, (_, i) => ({ identity: 2100 + i, seed: 300 + i })))).images,
    retain: await otherPeople(32),
  };
  const spaces: Record<string, (x: Tensor) => Promise<Vec[]>> = {
    h: async (x) => {
      const inv = await diffusion.invert(x, { t0: DEMO_SETTINGS.t0, steps: DEMO_SETTINGS.steps });
      const out = await rows(inv.hR);
      inv.xLat.dispose();
      inv.hR.dispose();
      return out;
    },
    encoder: async (x) => {
      const e = await encoder.embed(x, { protocol: 'resize' });
      const out = await rows(e);
      e.dispose();
      return out;
    },
  };
  const result: Record<string, unknown> = {};
  for (const [space, embed] of Object.entries(spaces)) {
    const her = [...(await embed(pictures.her)), ...(pictures.more ? await embed(pictures.more) : [])];
    const [unseen, held, retain] = [await embed(pictures.unseen), await embed(pictures.held), await embed(pictures.retain)];
    const per: Record<string, unknown> = {};
    for (const k of ks) {
      const pos = her.slice(0, k);
      const cosine = (h: Vec) => {
        const m = meanOf(pos);
        return dot(m, h) / Math.sqrt(dot(m, m) * dot(h, h));
      };
      per[`k${k}`] = { cosineToMean: judge(cosine, unseen, held), meanDirection: judge(meanDirection(pos, retain), unseen, held), ridge: judge(ridge(pos, retain, lambda), unseen, held) };
      console.log(`${space}, ${k} photos of ${person}: ${JSON.stringify(per[`k${k}`])}`);
    }
    result[space] = { dim: her[0].length, ...per };
  }
  if (values.json) writeFileSync(values.json, JSON.stringify({ command: `node dist/bench/unlearn-separability.js ${process.argv.slice(2).join(' ')}`, person, lambda, result }, null, 1));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});

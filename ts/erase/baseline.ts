/** The paper's random-direction baseline: h_r moved as far as the absorption moved it, along a seeded random direction. */
import { offsetCodes, randomDirection } from '../blackhole/codes';
import type { JobOptions } from '../jobs';
import type { Tensor } from '../tensor';
import type { EraseModels } from './call';
import type { BlackHole } from './form';
import { decodeOptions, identitySimilarity, semanticLoss } from './measure';
import type { ResolvedEraseOptions } from './options';

/** The random baseline's code, image, identity similarity to f_r and L_sem to the reconstruction. */
export interface RandomBaseline {
  code: Tensor;
  image: Tensor;
  similarity: number;
  sem: number;
}

/** h_r moved `length` (absolute) along a unit direction drawn with seed + 2, decoded as the candidates are. */
export async function randomBaseline(bh: BlackHole, models: EraseModels, length: number, o: ResolvedEraseOptions, job: JobOptions): Promise<RandomBaseline> {
  const u = await randomDirection(bh.hR.shape.slice(1), o.seed + 2, bh.hR.device, length, job);
  try {
    const code = await offsetCodes(bh.hR, { direction: u, steps: [1], signal: job.signal });
    const image = await models.diffusion.decode(bh.xLat, code, decodeOptions(o, bh.hR, job));
    const [s] = await identitySimilarity(models.encoder, image, bh.fR, o, job);
    const { sem } = await semanticLoss(image, bh.reconstruction, o, models, job);
    return { code, image, similarity: s, sem: sem[0] };
  } finally {
    u.dispose();
  }
}

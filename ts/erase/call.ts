/**
 * What one erase job is called with: the models, the options, and the image. Every stage function
 * (formBlackHole, absorbIdentity, eraseIdentity) splits and checks its call here.
 */
import type { DiffusionModel } from '../diffusion';
import { invalidArgument } from '../errors';
import type { IdentityEncoder } from '../identity';
import type { JobOptions } from '../jobs';
import type { PerceptualModel } from '../perceptual';
import { Tensor } from '../tensor';
import { resolveEraseOptions, type ResolvedEraseOptions } from './options';
import type { EraseOptions, EraseProgress } from './types';

export interface EraseModels {
  diffusion: DiffusionModel;
  encoder: IdentityEncoder;
  /** An independent recognizer for the report's second SID (never used in a loss). */
  secondEncoder?: IdentityEncoder;
  /** VGG16 for L_perc; without it the weight-free substitute is used (and named in the report). */
  perceptual?: PerceptualModel;
  /**
   * neighbourMode 'others': photos of other people [N, 3, H, W] at the model's resolution, in [-1, 1]; their
   * inverted h give the neighbours' directions (u_j = unit(h_{j mod N} − h_r)).
   */
  others?: Tensor;
}

export interface EraseCall extends EraseOptions, EraseModels {
  /** Name of the input in the report (default 'input'). */
  inputName?: string;
  /** sha256 of the input file (default: of the image tensor's bytes). */
  inputSha256?: string;
  /** Stage-level progress (stage, step/total, overall fraction). */
  onStage?: (p: EraseProgress) => void;
  /** Also return the formed black hole (result.blackHole; disposed with the result), e.g. to walk it further. */
  keepBlackHole?: boolean;
}

/** The keys of an EraseCall that are not erase options. */
const CALL_KEYS = ['diffusion', 'encoder', 'secondEncoder', 'perceptual', 'others', 'inputName', 'inputSha256', 'onStage', 'keepBlackHole'] as const;

/** A checked call: its models, its options with their defaults, and the abort signal. */
export function splitCall(call: EraseCall): { models: EraseModels; options: ResolvedEraseOptions; job: JobOptions } {
  if (call === null || typeof call !== 'object') throw invalidArgument('eraseIdentity needs {diffusion, encoder, ...options}');
  const { diffusion, encoder, secondEncoder, perceptual, others } = call;
  if (!diffusion || typeof diffusion.decode !== 'function') throw invalidArgument('diffusion must be a DiffusionModel (loadDiffusion / createDiffusion)');
  if (!encoder || typeof encoder.embed !== 'function') throw invalidArgument('encoder must be an IdentityEncoder (loadIdentityEncoder / createIdentityEncoder)');
  if (secondEncoder !== undefined && typeof secondEncoder?.embed !== 'function') throw invalidArgument('secondEncoder must be an IdentityEncoder');
  if (perceptual !== undefined && typeof perceptual?.distance !== 'function') throw invalidArgument('perceptual must be a PerceptualModel (loadPerceptual)');
  const options = resolveEraseOptions(call, CALL_KEYS);
  if (options.neighbourMode === 'others') {
    const c = diffusion.config;
    if (!(others instanceof Tensor) || others.shape.length !== 4 || others.shape[0] < 1 || others.shape.slice(1).join() !== [c.inChannels, c.resolution, c.resolution].join()) {
      throw invalidArgument(`neighbourMode 'others' needs others: photos of other people [N, ${c.inChannels}, ${c.resolution}, ${c.resolution}], got ${others instanceof Tensor ? JSON.stringify(others.shape) : typeof others}`);
    }
  } else if (others !== undefined && !(others instanceof Tensor)) throw invalidArgument('others must be a Tensor [N, 3, H, W]');
  return { models: { diffusion, encoder, secondEncoder, perceptual, others }, options, job: { signal: call.signal } };
}

/** The image must be one [1, 3, H, W] tensor at the diffusion model's resolution. */
export function checkImage(image: unknown, diffusion: DiffusionModel): Tensor {
  if (!(image instanceof Tensor)) throw invalidArgument('image must be a Tensor [1, 3, H, W] in [-1, 1] (readImage gives one)');
  const c = diffusion.config;
  const want = [1, c.inChannels, c.resolution, c.resolution];
  if (image.shape.join() !== want.join()) {
    throw invalidArgument(`image must be one image of shape ${JSON.stringify(want)} (the diffusion model's resolution), got ${JSON.stringify(image.shape)}`);
  }
  return image;
}

/** The suites of `bia bench`, in their default run order. */
import type { Suite } from '../harness/types';
import { suite as absorb } from './absorb';
import { suite as decode } from './decode';
import { suite as engine } from './engine';
import { suite as identity } from './identity';
import { suite as invert } from './invert';
import { suite as pipeline } from './pipeline';
import { suite as queue } from './queue';
import { suite as svm } from './svm';
import { suite as unet } from './unet';

export const SUITES: Record<string, Suite> = { engine, unet, invert, decode, identity, svm, absorb, pipeline, queue };

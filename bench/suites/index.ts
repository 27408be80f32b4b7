/** The suites of `bia bench`, in their default order. */
import type { Suite } from '../harness/types';
import { suite as engine } from './engine';
import { suite as identity } from './identity';
import { suite as pipeline } from './pipeline';
import { suite as unet } from './unet';

/** Suites whose files are not here yet are left out (the order is the default run order). */
const ORDER = ['engine', 'unet', 'invert', 'decode', 'identity', 'svm', 'absorb', 'pipeline'] as const;

const optional = (name: string): Suite | undefined => {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return (require(`./${name}`) as { suite: Suite }).suite;
  } catch {
    return undefined;
  }
};

const known: Record<string, Suite | undefined> = { engine, unet, identity, pipeline };

export const SUITES: Record<string, Suite> = Object.fromEntries(
  ORDER.map((n) => [n, known[n] ?? optional(n)] as const).filter((e): e is [typeof ORDER[number], Suite] => e[1] !== undefined),
);

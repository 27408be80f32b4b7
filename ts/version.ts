import { readFileSync } from 'node:fs';
import path from 'node:path';
import { packageRoot } from './native';

/** The package version, read from package.json. */
export const VERSION: string = (() => {
  try {
    return JSON.parse(readFileSync(path.join(packageRoot(), 'package.json'), 'utf8')).version as string;
  } catch {
    return '0.0.0';
  }
})();

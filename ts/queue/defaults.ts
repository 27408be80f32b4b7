/**
 * The models `bia worker` loads when it is given no --diffusion/--encoder: the built-in default models
 * of models/ (checked against models/manifest.json), with the demo's settings (DEMO_SETTINGS, the
 * encoder's calibrated threshold) and its photos of other people for neighbourMode 'others' — what
 * `npm run demo` runs (ts/world/demo.ts). Kept apart from ./worker so that the library's root entry
 * does not load the synthetic world.
 */
import path from 'node:path';
import { loadEraseModels } from '../erase/batch';
import type { EraseOptions } from '../erase/types';
import { BiaError } from '../errors';
import type { Device } from '../options';
import type { Tensor } from '../tensor';
import { DEFAULT_FILES, readManifest, ROOT, otherPeople } from '../world/defaults';
import { calibratedThreshold, DEMO_SETTINGS } from '../world/demo';
import type { EraseWorkerModels } from './job';

/** The settings the default models are run with: the demo's, with the encoder's calibrated threshold. */
export function defaultWorkerSettings(): EraseOptions {
  return { ...DEMO_SETTINGS, threshold: DEMO_SETTINGS.threshold ?? calibratedThreshold() ?? 0.35 };
}

/** Load the default UNet and encoder (refusing files whose sha256 is not the manifest's), the others' photos and the demo's settings. */
export async function loadDefaultWorkerModels(o: { device: Device; signal: AbortSignal }): Promise<EraseWorkerModels> {
  const manifest = readManifest();
  const models = await loadEraseModels({ diffusion: DEFAULT_FILES.diffusion, encoder: DEFAULT_FILES.encoder, device: o.device, signal: o.signal });
  let others: Tensor | undefined;
  try {
    for (const k of ['diffusion', 'encoder'] as const) {
      const want = manifest[k]?.sha256;
      const got = models.files?.[k]?.sha256;
      if (want !== got) throw new BiaError('BIA_CHECKPOINT_MISMATCH', `${path.relative(ROOT, DEFAULT_FILES[k])}: sha256 ${got} differs from models/manifest.json's ${want}`);
    }
    const settings = defaultWorkerSettings();
    if (settings.neighbourMode === 'others') {
      const p = await otherPeople();
      others = o.device === 'cpu' ? p : await p.to({ device: o.device });
      if (others !== p) p.dispose();
    }
    const held = others;
    return {
      ...models,
      others: held,
      options: settings,
      dispose() {
        held?.dispose();
        models.dispose();
      },
    };
  } catch (e) {
    others?.dispose();
    models.dispose();
    throw e;
  }
}

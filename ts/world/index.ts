/**
 * bia-torch/world: the synthetic world of portraits (identities, attributes, rendering), its default
 * models, and the demo and evaluation that run the erase job on held-out portraits.
 */
export {
  identityParams,
  identityVector,
  sampleAttributes,
  attributeVector,
  attributeNames,
  createRng,
  hashSeed,
  ATTRIBUTE_SPEC,
  IDENTITY_SPEC,
  IDENTITY_NAMES,
  HAIR_STYLES,
  HAIR_COLOURS,
  GLASSES,
  BACKGROUNDS,
  MAX_IDENTITY,
  type Attributes,
  type AttributeName,
  type BackgroundStyle,
  type CategoricalEncoding,
  type CategoricalSpec,
  type ContinuousSpec,
  type Glasses,
  type HairColour,
  type HairStyle,
  type IdentityName,
  type IdentityParams,
  type Rng,
  type ValueSpec,
} from './attributes';
export {
  renderPortraits,
  portraitBatch,
  portraitStream,
  portraitSvg,
  savePortraitSheet,
  TRAIN_IDENTITIES,
  HELDOUT_IDENTITIES,
  PORTRAIT_SIZE,
  MIN_PORTRAIT_SIZE,
  MAX_PORTRAIT_SIZE,
  type PortraitBatch,
  type PortraitBatchAt,
  type PortraitBatchOptions,
  type PortraitItem,
  type PortraitOptions,
  type PortraitSheet,
  type PortraitSheetOptions,
  type PortraitStreamOptions,
  type RenderedPortraits,
} from './portraits';
export { DEFAULT_FILES, DEFAULT_MODELS, readManifest, type DefaultModel } from './defaults';
export { DEMO_SETTINGS, FULL_SETTINGS, formatDemo, loadDefaultModels, runDemo, type DemoImage, type DemoResult } from './demo';
export { formatEval, runEval, type EvalResult } from './eval';

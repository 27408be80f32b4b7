/**
 * bia-torch: Black Hole-Driven Identity Absorbing (BIA, CVPR 2025) on LibTorch.
 * The public API. Everything heavy runs in C++ off the main thread and returns a Promise.
 */
export { BiaError, ERROR_CODES, type ErrorCode } from './errors';
export { type JobOptions, type ProgressEvent } from './jobs';
export { type ComputeDtype, type Device, type Dtype, COMPUTE_DTYPES, DTYPES } from './options';
export { Tensor, type TensorData, type TensorOptions, tensor, tensorSync, zeros, randn, matmul, liveTensors, externalMemory } from './tensor';
export { benchmark, emptyCache, unetStats, info, runtimeInfo, setThreads, getThreads, type UNetStats, type BenchmarkResult, type BenchmarkSpec, type Info } from './engine';
export { cudaMemory, setCudnnBenchmark, getCudnnBenchmark, profileOps, type CudaMemoryStats, type OpTime, type OpProfileResult } from './engine';
export {
  DiffusionModel,
  createDiffusion,
  diffusionPreset,
  loadDiffusion,
  INJECT_MODES,
  UNET_PRESETS,
  type DecodeOptions,
  type DiffusionOptions,
  type ForwardOptions,
  type InjectMode,
  type InvertOptions,
  type InvertResult,
  type UNetConfig,
  type UNetPreset,
} from './diffusion';
export { readCheckpoint, saveSafetensors, type Checkpoint, type CheckpointFormat, type SaveSafetensorsOptions } from './checkpoint';
export {
  IdentityEncoder,
  createIdentityEncoder,
  loadIdentityEncoder,
  similarity,
  IDENTITY_ARCHS,
  INPUT_PROTOCOLS,
  type EncoderOptions,
  type IdentityArch,
  type InputProtocol,
} from './identity';
export {
  readImage,
  readImages,
  writeImage,
  imageToBuffer,
  comparisonGrid,
  centerSquareCrop,
  checkFaceImage,
  describeImage,
  DEFAULT_LIMIT_INPUT_PIXELS,
  FACE_MAX_ASPECT,
  FACE_MIN_SIDE,
  IMAGE_FITS,
  IMAGE_FORMATS,
  MAX_IMAGE_SIDE,
  type ComparisonGridOptions,
  type GridCell,
  type GridLayout,
  type ImageBackground,
  type ImageDtype,
  type ImageFit,
  type ImageFormat,
  type ImageInfo,
  type ImageInput,
  type ReadImageOptions,
  type ReadImagesOptions,
  type ReadImagesResult,
  type WriteImageOptions,
  type WrittenImage,
} from './images';
export { readNpy, parseNpy, type NpyArray, type NpyDtype } from './npy';
export {
  convertOnnx,
  CONVERT_ARCHS,
  type ConvertArch,
  type ConvertMapping,
  type ConvertOptions,
  type ConvertResult,
  type InputProtocol as ConvertInputProtocol,
} from './convert';
export {
  fitBoundary,
  orient,
  wrapSet,
  gram,
  linearCombination,
  signedDistance,
  type Boundary,
  type FitBoundaryOptions,
  type Orientation,
  type WrapSet,
  type WrapSetOptions,
} from './blackhole/svm';
export {
  sampleNeighbours,
  labelNeighbours,
  formNeighbourhood,
  tryFormNeighbourhood,
  manifoldTargets,
  type ManifoldOptions,
  type NeighbourhoodAttempt,
  type Labelled,
  type LabelOptions,
  type Neighbourhood,
  type NeighbourhoodOptions,
  type NeighbourOptions,
  type Neighbours,
} from './blackhole/neighbours';
export { offsetCodes, takeRows, randomDirection, type OffsetOptions } from './blackhole/codes';
export { eraseIdentity, formBlackHole, absorbIdentity, walkBaseline, type Absorption, type BlackHole, type EraseCall, type EraseModels } from './erase/pipeline';
export { saveBlackHole, loadBlackHole } from './erase/blackhole-io';
export { ERASE_DEFAULTS, resolveEraseOptions, type ResolvedEraseOptions } from './erase/options';
export {
  FACE_ELLIPSE,
  DEGENERATE_KINDS,
  faceMask,
  fadeFace,
  blurFace,
  matchSimilarity,
  type DegenerateKind,
  type MatchedBaseline,
  type MatchSimilarityOptions,
} from './erase/degenerate';
export type { AbsorbMode, Backprop, Candidate, DegenerateBaseline, EraseOptions, EraseProgress, EraseReport, EraseResult, EraseStage, NeighbourMode } from './erase/types';
export { imageLosses, PERCEPTUAL_SUBSTITUTE, type ImageLosses, type ImageLossesOptions } from './losses';
export { PerceptualModel, createPerceptual, loadPerceptual, VGG16_PERCEPTUAL, type PerceptualOptions } from './perceptual';
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
} from './world/attributes';
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
} from './world/portraits';
export {
  absorbLoss,
  optimizeAbsorption,
  BACKPROPS,
  type AbsorbHistory,
  type AbsorbLatents,
  type AbsorbLoss,
  type AbsorbLossOptions,
  type AbsorbTerms,
  type Absorption as OptimizedAbsorption,
  type OptimizeAbsorptionOptions,
} from './blackhole/optimize';
export { loadAddon, addonCandidates } from './native';
export { VERSION } from './version';
export {
  Trainer,
  createTrainer,
  arcfaceLogits,
  checkTrainerOptions,
  TRAIN_TARGETS,
  type Batch,
  type StepResult,
  type TargetModels,
  type TargetSpecs,
  type TrainerInfo,
  type TrainerOptions,
  type TrainTarget,
} from './train/trainer';
export { train, progressLine, type DataSource, type TrainHistoryEntry, type TrainLoopOptions, type TrainProgress, type TrainResult } from './train/loop';
export { constant, cosineSchedule, linearRamp, piecewise, type Schedule } from './train/schedules';
export {
  AttributeEstimator,
  createAttributeEstimator,
  loadAttributeEstimator,
  ATTRIBUTE_DEFAULTS,
  type AttributeConfig,
} from './train/attributes';

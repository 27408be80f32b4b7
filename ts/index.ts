/**
 * bia-torch: Black Hole-Driven Identity Absorbing (BIA, CVPR 2025) on LibTorch.
 * The public API. Everything heavy runs in C++ off the main thread and returns a Promise.
 *
 * The synthetic world of portraits, the trainer and the benchmark harness have entry points of their
 * own: bia-torch/world, bia-torch/train and bia-torch/bench.
 */
export { BiaError, ERROR_CODES, type ErrorCode } from './errors';
export { type JobOptions, type ProgressEvent } from './jobs';
export { type ComputeDtype, type Device, type Dtype, COMPUTE_DTYPES, DTYPES } from './options';
export { Tensor, type TensorData, type TensorOptions, tensor, tensorSync, zeros, randn, matmul, groupNorm, type GroupNormOptions, liveTensors, externalMemory } from './tensor';
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
export { eraseIdentity } from './erase/pipeline';
export { formBlackHole, type BlackHole } from './erase/form';
export {
  absorbIdentity,
  absorbLoss,
  absorbOptimize,
  BACKPROPS,
  type Absorption,
  type AbsorbHistory,
  type AbsorbLatents,
  type AbsorbLoss,
  type AbsorbLossOptions,
  type AbsorbOptimizeOptions,
  type AbsorbTerms,
  type OptimizedAbsorption,
} from './erase/absorb';
export { randomBaseline, type RandomBaseline } from './erase/baseline';
export type { EraseCall, EraseModels } from './erase/call';
export {
  eraseFolder,
  EraseFolderError,
  expandInputs,
  imageDirs,
  loadEraseModels,
  type BatchImage,
  type BatchStep,
  type EraseFolderEvent,
  type EraseFolderOptions,
  type EraseFolderResult,
  type Eraser,
  type ExpandedInputs,
  type ImageOutcome,
  type ImageStatus,
  type LoadModelsOptions,
  type ModelFile,
  type Models,
} from './erase/batch';
export { saveBlackHole, loadBlackHole } from './erase/blackhole-io';
export { createEraseQueue, type AddEraseJobsOptions, type AddedJobs, type EraseQueue, type EraseQueueOptions, type QueueCounts, type QueueStatus } from './queue/queue';
export { startEraseWorker, type EraseWorker, type EraseWorkerEvent, type EraseWorkerOptions, type WorkerModelFiles, type WorkerModelSource } from './queue/worker';
export { DEFAULT_QUEUE_NAME, type QueueConnection } from './queue/connection';
export type { EraseJobData, EraseJobResult, EraseWorkerModels } from './queue/job';
export { mergeAdapter } from './train/trainer';
export { blendFaces, DECODER_PREFIXES, DEFAULT_FACE_REGION, UNLEARN_PARAMS, unlearnIdentity, type ExtraCodesReport, type FaceRegion, type UnlearnOptions, type UnlearnParams, type UnlearnReport, type UnlearnResult } from './unlearn/unlearn';
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
export type { AbsorbLossWeights, AbsorbMode, Backprop, Candidate, DegenerateBaseline, EraseOptions, EraseProgress, EraseReport, EraseResult, EraseStage, NeighbourMode } from './erase/types';
export { imageLosses, PERCEPTUAL_SUBSTITUTE, type ImageLosses, type ImageLossesOptions } from './losses';
export { PerceptualModel, createPerceptual, loadPerceptual, VGG16_PERCEPTUAL, type PerceptualOptions } from './perceptual';
export { loadAddon, addonCandidates } from './native';
export { VERSION } from './version';

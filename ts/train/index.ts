/**
 * bia-torch/train: the trainer (the DDPM UNet, identity encoders with an ArcFace head, the attribute
 * estimator), its loop and learning-rate / ArcFace-margin schedules.
 */
export {
  Trainer,
  createTrainer,
  mergeAdapter,
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
} from './trainer';
export { train, progressLine, type DataSource, type TrainHistoryEntry, type TrainLoopOptions, type TrainProgress, type TrainResult } from './loop';
export { constant, cosineSchedule, linearRamp, piecewise, type Schedule } from './schedules';
export {
  AttributeEstimator,
  createAttributeEstimator,
  loadAttributeEstimator,
  ATTRIBUTE_DEFAULTS,
  type AttributeConfig,
} from './attributes';

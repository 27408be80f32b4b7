/**
 * Checkpoints: reading torch.save files (zip and legacy formats) and safetensors, writing safetensors.
 * The work runs in C++ off the main thread; torch pickles are read by a safe interpreter that never
 * imports or executes anything from the file.
 */
import { invalidArgument } from './errors';
import { runJob, type JobOptions } from './jobs';
import { loadAddon, type NativeCheckpointFormat, type NativeTensor } from './native';
import { Tensor } from './tensor';

export type CheckpointFormat = NativeCheckpointFormat;

export interface Checkpoint {
  /** 'torch-zip' (torch.save since 1.6), 'torch-legacy' (older torch.save) or 'safetensors'. */
  format: CheckpointFormat;
  /**
   * safetensors: the header's __metadata__. torch files: the plain scalar entries (str, int, float,
   * bool, None, as Python's str() writes them) of the dicts wrapped around the state dict, e.g.
   * `{ epoch: '3' }` for `{'state_dict': ..., 'epoch': 3}`.
   */
  metadata: Record<string, string>;
  /** The state dict in file order (CPU tensors). A common 'module.' prefix is already stripped. */
  tensors: Map<string, Tensor>;
}

export interface SaveSafetensorsOptions extends JobOptions {
  /** Stored as the header's __metadata__ (string → string). */
  metadata?: Record<string, string>;
}

function checkPath(path: unknown): string {
  if (typeof path !== 'string' || path.length === 0) {
    throw invalidArgument(`path must be a non-empty string, got ${typeof path === 'string' ? "''" : typeof path}`);
  }
  if (path.includes('\0')) throw invalidArgument('path must not contain NUL characters');
  return path;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

function checkTensors(tensors: unknown): Array<[string, NativeTensor]> {
  let entries: Array<[unknown, unknown]>;
  if (tensors instanceof Map) entries = Array.from(tensors.entries());
  else if (isPlainObject(tensors)) entries = Object.entries(tensors);
  else throw invalidArgument('tensors must be a Map<string, Tensor> or a plain object of Tensors');
  return entries.map(([name, t]) => {
    if (typeof name !== 'string' || name.length === 0) throw invalidArgument(`tensor names must be non-empty strings, got ${JSON.stringify(name)}`);
    if (name === '__metadata__') throw invalidArgument("'__metadata__' is reserved in safetensors and cannot name a tensor");
    if (!(t instanceof Tensor)) throw invalidArgument(`tensors['${name}'] must be a Tensor`);
    return [name, t.handle];  // throws BIA_DISPOSED for a disposed tensor
  });
}

function checkMetadata(metadata: unknown): Record<string, string> | undefined {
  if (metadata === undefined) return undefined;
  if (!isPlainObject(metadata)) throw invalidArgument('metadata must be a plain object of strings');
  for (const [k, v] of Object.entries(metadata)) {
    if (typeof v !== 'string') throw invalidArgument(`metadata['${k}'] must be a string, got ${typeof v}`);
  }
  return metadata as Record<string, string>;
}

/**
 * Read a checkpoint: a torch.save file (zip or legacy format) or a safetensors file; the format is
 * recognised from the content. For torch files the state dict is found inside wrappers ('state_dict',
 * 'model', 'ema', 'params_ema', 'module'); entries that are not tensors are skipped.
 * Errors: BIA_IO_ERROR (cannot open/read), BIA_CHECKPOINT_ERROR (not a checkpoint, corrupt, truncated,
 * unsupported). Progress events count bytes of tensor data read.
 */
export async function readCheckpoint(path: string, opts?: JobOptions): Promise<Checkpoint> {
  checkPath(path);
  const native = await runJob(opts, (n) => loadAddon().readCheckpoint(path, n));
  const tensors = new Map<string, Tensor>();
  for (const [name, handle] of native.tensors) tensors.set(name, new Tensor(handle));
  return { format: native.format, metadata: native.metadata, tensors };
}

/**
 * Write tensors (in the order given) to a safetensors file. The file appears atomically: it is
 * written to a temporary file in the same folder and renamed into place, so a crash never leaves a
 * half-written file. GPU tensors are copied to the CPU one at a time.
 */
export async function saveSafetensors(path: string, tensors: Map<string, Tensor> | Record<string, Tensor>, opts?: SaveSafetensorsOptions): Promise<void> {
  checkPath(path);
  if (opts !== undefined && (typeof opts !== 'object' || opts === null)) throw invalidArgument('options must be an object');
  const entries = checkTensors(tensors);
  const metadata = checkMetadata(opts?.metadata);
  await runJob(opts, (n) => loadAddon().writeSafetensors(path, entries, metadata, n));
}

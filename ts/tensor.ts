/** The Tensor: a JS owner of one LibTorch tensor (CPU or GPU memory). */
import { BiaError, invalidArgument } from './errors';
import { callNative, runJob, type JobOptions } from './jobs';
import { loadAddon, type NativeArray, type NativeTensor } from './native';
import { checkDevice, checkDtype, checkInt, checkShape, numel, type Device, type Dtype } from './options';

export type TensorData = Float32Array | Float64Array | Uint8Array | Int32Array;

export interface TensorOptions {
  /** The tensor's dtype; by default the input array's (Float32Array → float32, …). */
  dtype?: Dtype;
  /** Where the tensor lives: 'cpu' (default), 'cuda', 'cuda:N'. */
  device?: Device;
}

const registry = new WeakSet<NativeTensor>();

export class Tensor implements Disposable {
  #handle: NativeTensor | null;

  /** @internal Wrap a native handle (library use). */
  constructor(handle: NativeTensor) {
    if (!(handle instanceof loadAddon().Tensor) || registry.has(handle)) {
      throw invalidArgument('Tensors are created by tensor(), zeros(), randn() and library calls');
    }
    registry.add(handle);
    this.#handle = handle;
  }

  /** @internal The native handle; throws BIA_DISPOSED after dispose(). */
  get handle(): NativeTensor {
    if (!this.#handle) throw new BiaError('BIA_DISPOSED', 'Tensor was used after dispose()');
    return this.#handle;
  }

  get shape(): number[] {
    return this.handle.shape;
  }
  get dtype(): Dtype {
    return this.handle.dtype;
  }
  get device(): string {
    return this.handle.device;
  }
  /** Bytes of tensor memory (reported to V8 as external memory while alive). */
  get nbytes(): number {
    return this.handle.nbytes;
  }
  get numel(): number {
    return numel(this.shape);
  }
  get disposed(): boolean {
    return this.#handle === null;
  }

  /**
   * Copy the values to a new typed array (off the main thread). float16/bfloat16 read as
   * Float32Array, bool as Uint8Array, int64 as Float64Array (exact up to 2^53).
   */
  async data(opts?: JobOptions): Promise<NativeArray> {
    const h = this.handle;
    return runJob(opts, (n) => h.read(n));
  }

  /** A converted copy on another device and/or dtype. */
  async to(target: TensorOptions, opts?: JobOptions): Promise<Tensor> {
    const h = this.handle;
    const dtype = target.dtype === undefined ? undefined : checkDtype(target.dtype);
    const device = target.device === undefined ? undefined : checkDevice(target.device);
    return new Tensor(await runJob(opts, (n) => h.to(dtype, device, n)));
  }

  /** Release the memory now. Idempotent; later use throws BIA_DISPOSED. */
  dispose(): void {
    if (this.#handle) {
      this.#handle.dispose();
      this.#handle = null;
    }
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  toString(): string {
    return this.#handle ? `Tensor(${JSON.stringify(this.shape)}, ${this.dtype}, ${this.device})` : 'Tensor(disposed)';
  }
}

function checkData(data: unknown, shape: number[]): TensorData {
  if (!(data instanceof Float32Array || data instanceof Float64Array || data instanceof Uint8Array || data instanceof Int32Array)) {
    throw invalidArgument('data must be a Float32Array, Float64Array, Uint8Array or Int32Array');
  }
  if (data.length !== numel(shape)) {
    throw invalidArgument(`data has ${data.length} elements but shape ${JSON.stringify(shape)} needs ${numel(shape)}`);
  }
  return data;
}

function checkTarget(opts: TensorOptions | undefined): { dtype?: Dtype; device?: Device } {
  if (opts !== undefined && (typeof opts !== 'object' || opts === null)) throw invalidArgument('options must be an object');
  return {
    dtype: opts?.dtype === undefined ? undefined : checkDtype(opts.dtype),
    device: opts?.device === undefined ? undefined : checkDevice(opts.device),
  };
}

/** Create a tensor from a typed array (copied; dtype/device conversion runs off the main thread). */
export async function tensor(data: TensorData, shape: number[], opts?: TensorOptions & JobOptions): Promise<Tensor> {
  checkShape(shape);
  checkData(data, shape);
  const { dtype, device } = checkTarget(opts);
  return new Tensor(await runJob(opts, (n) => loadAddon().tensorFromArrayAsync(data, shape, dtype, device, n)));
}

/** Synchronous tensor(): meant for small inputs (it blocks the event loop for the copy). */
export function tensorSync(data: TensorData, shape: number[], opts?: TensorOptions): Tensor {
  checkShape(shape);
  checkData(data, shape);
  const { dtype, device } = checkTarget(opts);
  return new Tensor(callNative(() => loadAddon().tensorFromArray(data, shape, dtype, device)));
}

export async function zeros(shape: number[], opts?: TensorOptions & JobOptions): Promise<Tensor> {
  checkShape(shape);
  const { dtype, device } = checkTarget(opts);
  return new Tensor(await runJob(opts, (n) => loadAddon().zeros(shape, dtype, device, n)));
}

/** Standard normal values from a seeded generator: the same seed gives the same values on every device. */
export async function randn(shape: number[], opts: TensorOptions & JobOptions & { seed: number }): Promise<Tensor> {
  checkShape(shape);
  const { dtype, device } = checkTarget(opts);
  const seed = checkInt(opts?.seed, 'seed', 0, Number.MAX_SAFE_INTEGER);
  return new Tensor(await runJob(opts, (n) => loadAddon().randn(shape, dtype, device, seed, n)));
}

/** Matrix product (batched like torch.matmul), computed off the main thread. */
export async function matmul(a: Tensor, b: Tensor, opts?: JobOptions): Promise<Tensor> {
  if (!(a instanceof Tensor) || !(b instanceof Tensor)) throw invalidArgument('matmul operands must be Tensors');
  const ha = a.handle;
  const hb = b.handle;
  const sa = ha.shape;
  const sb = hb.shape;
  if (sa.length === 0 || sb.length === 0) throw invalidArgument('matmul needs tensors with at least one dimension');
  const inner = sb.length === 1 ? sb[0] : sb[sb.length - 2];
  if (sa[sa.length - 1] !== inner) {
    throw invalidArgument(`matmul shapes do not match: ${JSON.stringify(sa)} @ ${JSON.stringify(sb)}`);
  }
  if (ha.device !== hb.device) throw invalidArgument(`matmul operands are on different devices: ${ha.device} and ${hb.device}`);
  return new Tensor(await runJob(opts, (n) => loadAddon().matmul(ha, hb, n)));
}

export interface GroupNormOptions extends JobOptions {
  /** Groups the channels split into (default 32, the UNet's). */
  groups?: number;
  /** Added to the variance (default 1e-6, the UNet's). */
  eps?: number;
  /** Apply SiLU (x·sigmoid(x)) after the affine step (default false). */
  silu?: boolean;
  /** Lay x out channels-last (NHWC) before normalising, as the UNet does on the CPU (default false). */
  channelsLast?: boolean;
  /** Use LibTorch's group_norm (+ silu) instead of the fused CPU kernel (for comparisons; default false). */
  reference?: boolean;
}

/**
 * GroupNorm of x [N, C, H, W] with per-channel weight and bias [C], then SiLU when asked: the UNet's
 * normalisation as one op. On the CPU, float32 and bfloat16 run the fused kernel the UNet uses
 * (statistics in double, the affine step and SiLU in float, the input's dtype out); elsewhere
 * LibTorch's ops. Off the main thread.
 */
export async function groupNorm(x: Tensor, weight: Tensor, bias: Tensor, opts: GroupNormOptions = {}): Promise<Tensor> {
  for (const [name, t] of [['x', x], ['weight', weight], ['bias', bias]] as const) if (!(t instanceof Tensor)) throw invalidArgument(`groupNorm: ${name} must be a Tensor`);
  const groups = opts.groups === undefined ? 32 : checkInt(opts.groups, 'groups', 1, 1 << 20);
  const eps = opts.eps ?? 1e-6;
  if (typeof eps !== 'number' || !(eps >= 0) || !Number.isFinite(eps)) throw invalidArgument(`groupNorm: eps must be a finite number >= 0, got ${String(eps)}`);
  for (const k of ['silu', 'channelsLast', 'reference'] as const) {
    if (opts[k] !== undefined && typeof opts[k] !== 'boolean') throw invalidArgument(`groupNorm: ${k} must be a boolean`);
  }
  const o = { groups, eps, silu: opts.silu ?? false, channelsLast: opts.channelsLast ?? false, reference: opts.reference ?? false };
  return new Tensor(await runJob(opts, (n) => loadAddon().groupNorm(x.handle, weight.handle, bias.handle, o, n)));
}

/** Bytes of native memory currently reported to V8 as external memory (tensors count here). */
export function externalMemory(): number {
  return loadAddon().externalMemory();
}

/** Number of native tensors alive in this process (leak checks). */
export function liveTensors(): number {
  return loadAddon().liveTensors();
}

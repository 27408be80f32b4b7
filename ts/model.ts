/** What every model handle shares: weights in and out, saving, disposal. */
import { BiaError, invalidArgument } from './errors';
import { callNative, runJob, type JobOptions } from './jobs';
import type { NativeModule, NativeTensor } from './native';
import type { ComputeDtype } from './options';
import { Tensor } from './tensor';

export type { NativeModule } from './native';

export function tensorHandle(t: unknown, what: string): NativeTensor {
  if (!(t instanceof Tensor)) throw invalidArgument(`${what} must be a Tensor`);
  return t.handle;
}

/**
 * A JS object owning one native handle: `native` throws BIA_DISPOSED after dispose(); dispose() is
 * idempotent and releases the handle now (queued work keeps its own reference until done).
 */
export abstract class NativeHandle<N extends { dispose(): void }> implements Disposable {
  #native: N | null;
  readonly #kind: string;

  /** @internal */
  constructor(native: N, kind: string) {
    this.#native = native;
    this.#kind = kind;
  }

  /** @internal The native handle; throws BIA_DISPOSED after dispose(). */
  get native(): N {
    if (!this.#native) throw new BiaError('BIA_DISPOSED', `${this.#kind} was used after dispose()`);
    return this.#native;
  }

  get disposed(): boolean {
    return this.#native === null;
  }

  dispose(): void {
    if (this.#native) {
      this.#native.dispose();
      this.#native = null;
    }
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}

export abstract class NativeModel<N extends NativeModule> extends NativeHandle<N> {
  /** The file the weights were loaded from (absolute), or null for models built in memory. */
  source: string | null = null;

  get parameterCount(): number {
    return this.native.parameterCount;
  }
  get device(): string {
    return this.native.device;
  }
  get dtype(): ComputeDtype {
    return this.native.dtype as ComputeDtype;
  }

  /** The weights under their official names (tensors sharing the model's memory). */
  stateDict(): Map<string, Tensor> {
    const n = this.native;
    return new Map(callNative(() => n.stateDict()).map(([k, v]) => [k, new Tensor(v)]));
  }

  /** Copy weights in by official name; strict (default) demands an exact key and shape match. */
  async loadStateDict(sd: Map<string, Tensor> | Record<string, Tensor>, opts?: { strict?: boolean } & JobOptions): Promise<void> {
    const n = this.native;
    const entries = (sd instanceof Map ? [...sd.entries()] : Object.entries(sd)).map(([k, v]) => [k, tensorHandle(v, `state-dict entry '${k}'`)] as [string, NativeTensor]);
    if (opts?.strict !== undefined && typeof opts.strict !== 'boolean') throw invalidArgument('strict must be a boolean');
    await runJob(opts, (j) => n.loadStateDict(entries, opts?.strict ?? true, j));
  }

  /** Save the weights as safetensors (official names; what is needed to rebuild goes into the metadata). */
  async save(path: string, opts?: { metadata?: Record<string, string> } & JobOptions): Promise<void> {
    const n = this.native;
    if (typeof path !== 'string' || path.length === 0) throw invalidArgument('path must be a non-empty string');
    const metadata = opts?.metadata ?? {};
    for (const [k, v] of Object.entries(metadata)) if (typeof v !== 'string') throw invalidArgument(`metadata['${k}'] must be a string`);
    await runJob(opts, (j) => n.save(path, metadata, j));
  }
}

/** Bridges AbortSignal and progress callbacks to the native Job pattern. */
import { aborted, fromNative } from './errors';
import { loadAddon, type NativeJobOptions, type NativeProgress } from './native';
import { checkFunction, checkSignal } from './options';

export type ProgressEvent = NativeProgress;

/** Options accepted by every asynchronous call. */
export interface JobOptions {
  /** Abort the work; it stops at the next step boundary in C++ and rejects with BIA_ABORTED. */
  signal?: AbortSignal;
  /** Called on the main thread after each step of multi-step work. */
  onProgress?: (ev: ProgressEvent) => void;
}

/** Run a native job with the caller's signal and progress callback; errors become BiaErrors. */
export async function runJob<T>(opts: JobOptions | undefined, start: (native: NativeJobOptions) => Promise<T>): Promise<T> {
  checkSignal(opts?.signal);
  checkFunction(opts?.onProgress, 'onProgress');
  const signal = opts?.signal;
  if (signal?.aborted) throw aborted(signal);
  const addon = loadAddon();
  const cancel = new addon.CancelToken();
  const onAbort = () => cancel.cancel();
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    return await start({ cancel, onProgress: opts?.onProgress });
  } catch (e) {
    const err = fromNative(e);
    if (err.code === 'BIA_ABORTED' && signal?.aborted) throw aborted(signal);
    throw err;
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
}

/** Call a synchronous native function; errors become BiaErrors. */
export function callNative<T>(f: () => T): T {
  try {
    return f();
  } catch (e) {
    throw fromNative(e);
  }
}

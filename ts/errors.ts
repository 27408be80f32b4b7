/** Every error the library throws is a BiaError with a stable `code`. */
export type ErrorCode =
  | 'BIA_OUT_OF_MEMORY'
  | 'BIA_TORCH_ERROR'
  | 'BIA_INVALID_ARGUMENT'
  | 'BIA_ABORTED'
  | 'BIA_DISPOSED'
  | 'BIA_DEVICE_UNAVAILABLE'
  | 'BIA_IO_ERROR'
  | 'BIA_CHECKPOINT_ERROR'
  | 'BIA_CHECKPOINT_MISMATCH'
  | 'BIA_IMAGE_ERROR'
  | 'BIA_IMAGE_TOO_LARGE'
  | 'BIA_NO_BOUNDARY'
  | 'BIA_NATIVE_ERROR'
  | 'BIA_ADDON_NOT_FOUND';

export const ERROR_CODES: readonly ErrorCode[] = [
  'BIA_OUT_OF_MEMORY',
  'BIA_TORCH_ERROR',
  'BIA_INVALID_ARGUMENT',
  'BIA_ABORTED',
  'BIA_DISPOSED',
  'BIA_DEVICE_UNAVAILABLE',
  'BIA_IO_ERROR',
  'BIA_CHECKPOINT_ERROR',
  'BIA_CHECKPOINT_MISMATCH',
  'BIA_IMAGE_ERROR',
  'BIA_IMAGE_TOO_LARGE',
  'BIA_NO_BOUNDARY',
  'BIA_NATIVE_ERROR',
  'BIA_ADDON_NOT_FOUND',
];

export class BiaError extends Error {
  readonly code: ErrorCode;
  /** For errors from C++: the exception type it came from (e.g. c10::Error). */
  readonly origin?: string;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown; origin?: string }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.origin = options?.origin;
    this.name = code === 'BIA_ABORTED' ? 'AbortError' : 'BiaError';
  }
}

export function invalidArgument(message: string): BiaError {
  return new BiaError('BIA_INVALID_ARGUMENT', message);
}

/** Turn whatever the native layer threw into a BiaError (keeping its code and message). */
export function fromNative(e: unknown): BiaError {
  if (e instanceof BiaError) return e;
  if (e instanceof Error) {
    const code = (e as { code?: unknown }).code;
    const known = typeof code === 'string' && (ERROR_CODES as readonly string[]).includes(code);
    return new BiaError(known ? (code as ErrorCode) : 'BIA_NATIVE_ERROR', e.message, {
      cause: e,
      origin: (e as { origin?: string }).origin,
    });
  }
  return new BiaError('BIA_NATIVE_ERROR', String(e), { cause: e });
}

export function aborted(signal?: AbortSignal): BiaError {
  const reason = signal?.reason instanceof Error ? `: ${signal.reason.message}` : '';
  return new BiaError('BIA_ABORTED', `the operation was aborted${reason}`, { cause: signal?.reason });
}

/** A file-system error as BIA_IO_ERROR with a plain reason (a BiaError passes through). */
export function ioError(what: string, e: unknown): BiaError {
  if (e instanceof BiaError) return e;
  const err = e as NodeJS.ErrnoException;
  const why =
    err?.code === 'ENOENT' ? 'no such file or folder'
    : err?.code === 'EISDIR' ? 'it is a folder'
    : err?.code === 'EACCES' || err?.code === 'EPERM' ? 'permission denied'
    : err?.code === 'ENOTDIR' ? 'a part of the path is not a folder'
    : err?.message ?? String(e);
  return new BiaError('BIA_IO_ERROR', `${what}: ${why}`, { cause: e });
}

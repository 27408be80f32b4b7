/** Validation of the options every entry point shares (device, dtype, shapes, counts). */
import { invalidArgument } from './errors';
import type { NativeDtype } from './native';

export type Dtype = NativeDtype;
/** 'cpu', 'cuda' or 'cuda:N'. */
export type Device = 'cpu' | 'cuda' | `cuda:${number}`;
/** The dtypes models compute in. */
export type ComputeDtype = 'float32' | 'float16' | 'bfloat16';

export const DTYPES: readonly Dtype[] = ['float32', 'float16', 'bfloat16', 'float64', 'uint8', 'int32', 'int64', 'bool'];
export const COMPUTE_DTYPES: readonly ComputeDtype[] = ['float32', 'float16', 'bfloat16'];

export function checkDevice(device: unknown, what = 'device'): Device {
  if (typeof device !== 'string' || !/^(cpu|cuda(:\d{1,4})?)$/.test(device)) {
    throw invalidArgument(`${what} must be 'cpu', 'cuda' or 'cuda:N', got ${JSON.stringify(device)}`);
  }
  return device as Device;
}

export function checkDtype(dtype: unknown, what = 'dtype', allowed: readonly string[] = DTYPES): Dtype {
  if (typeof dtype !== 'string' || !allowed.includes(dtype)) {
    throw invalidArgument(`${what} must be one of ${allowed.join(', ')}; got ${JSON.stringify(dtype)}`);
  }
  return dtype as Dtype;
}

/** The most dimensions a tensor may have, wherever it comes from (the native reader's limit too). */
export const MAX_RANK = 16;

export function checkShape(shape: unknown, what = 'shape'): number[] {
  if (!Array.isArray(shape) || shape.length > MAX_RANK) {
    throw invalidArgument(`${what} must be an array of at most 16 non-negative integers, got ${JSON.stringify(shape)}`);
  }
  for (const [i, s] of shape.entries()) {
    if (!Number.isSafeInteger(s) || s < 0) {
      throw invalidArgument(`${what}[${i}] must be a non-negative integer, got ${JSON.stringify(s)}`);
    }
  }
  return shape as number[];
}

export function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

export function checkInt(value: unknown, what: string, min: number, max: number): number {
  if (!Number.isSafeInteger(value) || (value as number) < min || (value as number) > max) {
    throw invalidArgument(`${what} must be an integer in [${min}, ${max}], got ${JSON.stringify(value)}`);
  }
  return value as number;
}

export function checkFunction(value: unknown, what: string): void {
  if (value !== undefined && typeof value !== 'function') throw invalidArgument(`${what} must be a function`);
}

export function checkSignal(value: unknown): void {
  if (value !== undefined && !(value instanceof AbortSignal)) throw invalidArgument('signal must be an AbortSignal');
}

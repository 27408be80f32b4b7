/**
 * A reader for simple NumPy .npy arrays (format versions 1.0, 2.0 and 3.0): little-endian float64,
 * float32, int32 or uint8, in C order. Enough for fixtures such as skimage's LFW crops
 * (lfw_subset.npy: float64 [200, 25, 25]); the result feeds tensor() directly.
 */
import { readFile } from 'node:fs/promises';
import { BiaError, invalidArgument } from './errors';
import { MAX_RANK } from './options';

export type NpyDtype = 'float64' | 'float32' | 'int32' | 'uint8';

export interface NpyArray {
  dtype: NpyDtype;
  shape: number[];
  /** The values in C (row-major) order; a copy that owns its memory. */
  data: Float64Array | Float32Array | Int32Array | Uint8Array;
}

const MAGIC = Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]); // \x93NUMPY

const DESCRS: Record<string, { dtype: NpyDtype; size: number }> = {
  '<f8': { dtype: 'float64', size: 8 },
  '<f4': { dtype: 'float32', size: 4 },
  '<i4': { dtype: 'int32', size: 4 },
  '|u1': { dtype: 'uint8', size: 1 },
  '<u1': { dtype: 'uint8', size: 1 },
  '>u1': { dtype: 'uint8', size: 1 },
  '=u1': { dtype: 'uint8', size: 1 },
};

function bad(what: string, why: string): BiaError {
  return new BiaError('BIA_CHECKPOINT_ERROR', `${what} is not a readable .npy array: ${why}`);
}

/**
 * Parse .npy bytes. Errors are BIA_CHECKPOINT_ERROR (not .npy, truncated, or a dtype, byte order or
 * Fortran order this reader does not handle), each with the reason.
 */
export function parseNpy(bytes: Uint8Array, what = 'the buffer'): NpyArray {
  if (!(bytes instanceof Uint8Array)) throw invalidArgument('parseNpy needs a Buffer or Uint8Array');
  const buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (buf.length < 10 || !buf.subarray(0, 6).equals(MAGIC)) throw bad(what, 'it does not start with the \\x93NUMPY magic');
  const major = buf[6];
  let headerLen: number;
  let start: number;
  if (major === 1) {
    headerLen = buf.readUInt16LE(8);
    start = 10;
  } else if (major === 2 || major === 3) {
    if (buf.length < 12) throw bad(what, 'the header is truncated');
    headerLen = buf.readUInt32LE(8);
    start = 12;
  } else {
    throw bad(what, `format version ${major}.${buf[7]} is not supported (1.0, 2.0 and 3.0 are)`);
  }
  if (start + headerLen > buf.length) throw bad(what, `the header claims ${headerLen} bytes but the file is ${buf.length} bytes`);
  const header = buf.toString(major === 3 ? 'utf8' : 'latin1', start, start + headerLen);
  const descr = /'descr'\s*:\s*'([^']*)'/.exec(header)?.[1];
  const fortran = /'fortran_order'\s*:\s*(True|False)/.exec(header)?.[1];
  const shapeText = /'shape'\s*:\s*\(([^)]*)\)/.exec(header)?.[1];
  if (descr === undefined || fortran === undefined || shapeText === undefined) {
    throw bad(what, `the header is not a dict with 'descr', 'fortran_order' and 'shape': ${JSON.stringify(header.trim())}`);
  }
  const kind = DESCRS[descr];
  if (!kind) {
    const hint = descr.startsWith('>') ? ' (big-endian data is not supported)' : '';
    throw bad(what, `dtype '${descr}' is not supported${hint}; supported: <f8, <f4, <i4, |u1`);
  }
  if (fortran === 'True') throw bad(what, 'Fortran-order arrays are not supported (save it with np.ascontiguousarray)');
  const shape = shapeText
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0)
    .map((s) => {
      if (!/^\d+L?$/.test(s)) throw bad(what, `the shape (${shapeText}) is not a tuple of integers`);
      return Number.parseInt(s, 10);
    });
  if (shape.length > MAX_RANK) throw bad(what, `the shape has ${shape.length} dimensions (at most ${MAX_RANK})`);
  if (shape.some((n) => !Number.isSafeInteger(n))) throw bad(what, `the shape (${shapeText}) is too large`);
  const count = shape.reduce((a, b) => a * b, 1);
  const offset = start + headerLen;
  const expected = count * kind.size;
  if (buf.length - offset !== expected) {
    throw bad(what, `shape (${shape.join(', ')}) of ${descr} needs ${expected} bytes of data, the file has ${buf.length - offset}`);
  }
  // Copy into an aligned ArrayBuffer (the data need not be aligned in the file or the Buffer).
  const owned = buf.buffer.slice(buf.byteOffset + offset, buf.byteOffset + offset + expected);
  const data =
    kind.dtype === 'float64' ? new Float64Array(owned)
    : kind.dtype === 'float32' ? new Float32Array(owned)
    : kind.dtype === 'int32' ? new Int32Array(owned)
    : new Uint8Array(owned);
  return { dtype: kind.dtype, shape, data };
}

/** Read a .npy file (see parseNpy). A missing or unreadable file is BIA_IO_ERROR. */
export async function readNpy(path: string): Promise<NpyArray> {
  if (typeof path !== 'string' || path.length === 0) throw invalidArgument('path must be a non-empty string');
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file or folder' : code === 'EISDIR' ? 'it is a folder' : (e as Error).message;
    throw new BiaError('BIA_IO_ERROR', `cannot read ${path}: ${why}`, { cause: e });
  }
  return parseNpy(bytes, path);
}

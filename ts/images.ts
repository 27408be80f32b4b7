/**
 * Images in and out of the library, through sharp (libvips): any image sharp reads becomes an RGB
 * float tensor [1,3,H,W] in [-1,1]; tensors become 8-bit PNG/JPEG/WebP files, written atomically; a
 * labelled comparison grid; and the checks of the face-input contract (aligned, centred, square faces).
 *
 * Decoding, resizing and encoding run on libuv's pool inside sharp; the tensor is built through
 * tensor(). sharp is loaded on first use, so the rest of the library works where it is not installed.
 */
import { randomBytes } from 'node:crypto';
import * as fsp from 'node:fs/promises';
import os from 'node:os';
import nodePath from 'node:path';
import type * as sharpModule from 'sharp';
import { aborted, BiaError, invalidArgument, ioError } from './errors';
import type { JobOptions, ProgressEvent } from './jobs';
import { checkDevice, checkDtype, checkFunction, checkInt, checkSignal, type Device } from './options';
import { Tensor, tensor } from './tensor';

type Sharp = typeof sharpModule.default;
type SharpInstance = sharpModule.Sharp;

/** A file path, or the bytes of an encoded image. */
export type ImageInput = string | Buffer | Uint8Array;
/**
 * How an image is fitted to `size`: 'cover' scales it to cover the target and crops the centre
 * (the default: the face-input contract), 'contain' scales it to fit inside and pads with the
 * background, 'fill' stretches it (the aspect ratio is lost).
 */
export type ImageFit = 'cover' | 'contain' | 'fill';
/** The floating dtypes an image tensor can have. */
export type ImageDtype = 'float32' | 'float16' | 'bfloat16' | 'float64';
/** What transparent pixels (and 'contain' padding) become. */
export type ImageBackground = 'white' | 'black';
/** The formats writeImage and imageToBuffer write. */
export type ImageFormat = 'png' | 'jpeg' | 'webp';

export const IMAGE_FITS: readonly ImageFit[] = ['cover', 'contain', 'fill'];
export const IMAGE_FORMATS: readonly ImageFormat[] = ['png', 'jpeg', 'webp'];
const IMAGE_DTYPES: readonly ImageDtype[] = ['float32', 'float16', 'bfloat16', 'float64'];
/** Images with more pixels than this are refused unless `limitInputPixels` says otherwise (100 MP). */
export const DEFAULT_LIMIT_INPUT_PIXELS = 100_000_000;
/** The largest `size` side readImage resizes to. */
export const MAX_IMAGE_SIDE = 16384;
/** A resize target with more pixels than this is refused unless `limitOutputPixels` says otherwise (4096², 16.8 MP). */
export const DEFAULT_LIMIT_OUTPUT_PIXELS = 4096 * 4096;
/** The face-input contract: warn below this many pixels on a side ... */
export const FACE_MIN_SIDE = 64;
/** ... and above this aspect ratio (long side / short side). */
export const FACE_MAX_ASPECT = 1.25;

export interface ReadImageOptions {
  /** Resize to this size: n (n×n) or [height, width]. Without it the image keeps its own size. */
  size?: number | [number, number];
  /** How to fit `size` (default 'cover': scale, then crop the centre). */
  fit?: ImageFit;
  /** What transparent pixels and 'contain' padding become (default 'white'). */
  background?: ImageBackground;
  /** Where the tensor lives (default 'cpu'). */
  device?: Device;
  /** The tensor's dtype (default 'float32'). */
  dtype?: ImageDtype;
  /** Refuse images with more pixels than this, before decoding (default 100,000,000). */
  limitInputPixels?: number;
  /** Refuse a `size` with more pixels than this, before decoding (default 4096² = 16,777,216). */
  limitOutputPixels?: number;
  /** Abort the reading. */
  signal?: AbortSignal;
}

export interface ReadImagesOptions extends ReadImageOptions {
  /** Images decoded at once (default min(4, cores)). */
  concurrency?: number;
  /** 'throw' (default): the first file that fails rejects the call. 'skip': it is reported in `failed`. */
  onError?: 'throw' | 'skip';
  /** Called after each file, read or failed: { step, total, stage: 'read images' }. */
  onProgress?: (ev: ProgressEvent) => void;
}

export interface ReadImagesResult {
  /** [B,3,H,W] in [-1,1], B = ok.length, in the order of the paths. [0,3,H,W] when every file failed. */
  tensor: Tensor;
  /** The paths in the batch, in order. */
  ok: string[];
  /** The files that failed (only with onError: 'skip'), in the order of the paths. */
  failed: Array<{ path: string; error: BiaError }>;
}

export interface WriteImageOptions {
  /** The file format; by default it comes from the extension (.png, .jpg/.jpeg, .webp). */
  format?: ImageFormat;
  /** JPEG and WebP quality, 1–100 (default 95). */
  quality?: number;
}

export interface WrittenImage {
  path: string;
  format: ImageFormat;
  width: number;
  height: number;
  /** Size of the file in bytes. */
  bytes: number;
}

export interface GridCell {
  tensor: Tensor;
  label?: string;
}

export interface ComparisonGridOptions {
  /** Side of the square cell each image is fitted into ('contain'); default: the largest image side. */
  cellSize?: number;
  /** Height of the label strip under each image; default 0 without labels, else max(14, cellSize/10). */
  labelHeight?: number;
  /** Background colour (any colour sharp parses: 'white', '#202020', 'rgb(…)'); default 'white'. */
  background?: string;
  /** Pixels between cells and around the grid (default 4). */
  gap?: number;
}

export interface GridLayout {
  path: string;
  width: number;
  height: number;
  rows: number;
  columns: number;
  cellSize: number;
  labelHeight: number;
  gap: number;
}

export interface ImageInfo {
  /** sharp's name of the format: 'png', 'jpeg', 'webp', 'tiff', 'gif', 'heif', 'svg', … */
  format: string;
  /** Size as displayed, i.e. after the EXIF orientation is applied. */
  width: number;
  height: number;
  /** Channels in the file (1 grey, 2 grey+alpha, 3 RGB, 4 RGBA or CMYK, 5 CMYK+alpha). */
  channels: number;
  /** Bits per sample (8 or 16 for most files). */
  bitDepth: number;
  hasAlpha: boolean;
  /** The file's colour space as libvips names it: 'srgb', 'b-w', 'cmyk', 'rgb16', 'grey16', … */
  space: string;
  /** EXIF orientation, 1–8 (1 when absent). */
  orientation: number;
  /** Frames or pages (1 for still images; readImage takes the first). */
  pages: number;
  /** Encoded size in bytes. */
  bytes: number;
  /** The face-input checks (checkFaceImage) and anything else a reader should know. */
  warnings: string[];
}

// ---------------------------------------------------------------------------------------------------
// sharp, loaded on first use

let sharpCache: Sharp | undefined;

function sharp(): Sharp {
  if (!sharpCache) {
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      sharpCache = require('sharp') as Sharp;
    } catch (e) {
      throw new BiaError('BIA_IMAGE_ERROR', `image support needs the 'sharp' package, which could not be loaded: ${(e as Error).message}`, { cause: e });
    }
  }
  return sharpCache;
}

// ---------------------------------------------------------------------------------------------------
// validation

function checkObject(opts: unknown, what = 'options'): void {
  if (opts !== undefined && (typeof opts !== 'object' || opts === null || Array.isArray(opts))) throw invalidArgument(`${what} must be an object`);
}

function checkPath(path: unknown, what = 'path'): string {
  if (typeof path !== 'string' || path.length === 0) {
    throw invalidArgument(`${what} must be a non-empty string, got ${typeof path === 'string' ? "''" : describeValue(path)}`);
  }
  if (path.includes('\0')) throw invalidArgument(`${what} must not contain NUL characters`);
  return path;
}

function describeValue(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'object') return (v as object).constructor?.name ?? 'an object';
  return typeof v === 'string' ? JSON.stringify(v) : `${typeof v} ${String(v)}`;
}

function checkInput(input: unknown): ImageInput {
  if (typeof input === 'string') return checkPath(input, 'image path');
  if (input instanceof Uint8Array) return input;
  throw invalidArgument(`an image must be a file path or a Buffer of encoded image bytes, got ${describeValue(input)}`);
}

function inputName(input: ImageInput): string {
  return typeof input === 'string' ? input : `image buffer (${input.length} bytes)`;
}

interface ReadSettings {
  size?: [number, number];
  fit: ImageFit;
  background: ImageBackground;
  device?: Device;
  dtype: ImageDtype;
  limit: number;
  signal?: AbortSignal;
}

function checkSize(size: unknown): [number, number] | undefined {
  if (size === undefined) return undefined;
  if (typeof size === 'number') {
    const n = checkInt(size, 'size', 1, MAX_IMAGE_SIDE);
    return [n, n];
  }
  if (Array.isArray(size) && size.length === 2) {
    return [checkInt(size[0], 'size[0] (height)', 1, MAX_IMAGE_SIDE), checkInt(size[1], 'size[1] (width)', 1, MAX_IMAGE_SIDE)];
  }
  throw invalidArgument(`size must be a positive integer or [height, width], got ${JSON.stringify(size)}`);
}

function checkReadOptions(opts: ReadImageOptions | undefined): ReadSettings {
  checkObject(opts);
  const o = opts ?? {};
  if (o.fit !== undefined && !IMAGE_FITS.includes(o.fit)) throw invalidArgument(`fit must be one of ${IMAGE_FITS.join(', ')}; got ${JSON.stringify(o.fit)}`);
  if (o.background !== undefined && o.background !== 'white' && o.background !== 'black') {
    throw invalidArgument(`background must be 'white' or 'black', got ${JSON.stringify(o.background)}`);
  }
  checkSignal(o.signal);
  const size = checkSize(o.size);
  const outLimit = o.limitOutputPixels === undefined ? DEFAULT_LIMIT_OUTPUT_PIXELS : checkInt(o.limitOutputPixels, 'limitOutputPixels', 1, Number.MAX_SAFE_INTEGER);
  if (size && size[0] * size[1] > outLimit) {
    throw new BiaError(
      'BIA_IMAGE_TOO_LARGE',
      `the requested size ${size[0]}×${size[1]} (${megapixels(size[0] * size[1])}) is more than the limit of ${megapixels(outLimit)}; raise limitOutputPixels to resize to it`,
    );
  }
  return {
    size,
    fit: o.fit ?? 'cover',
    background: o.background ?? 'white',
    device: o.device === undefined ? undefined : checkDevice(o.device),
    dtype: o.dtype === undefined ? 'float32' : (checkDtype(o.dtype, 'dtype', IMAGE_DTYPES) as ImageDtype),
    limit: checkLimit(o.limitInputPixels),
    signal: o.signal,
  };
}

function checkLimit(limit: unknown): number {
  return limit === undefined ? DEFAULT_LIMIT_INPUT_PIXELS : checkInt(limit, 'limitInputPixels', 1, Number.MAX_SAFE_INTEGER);
}

// ---------------------------------------------------------------------------------------------------
// errors

function megapixels(n: number): string {
  return `${+(n / 1e6).toPrecision(4)} MP`;
}

/** sharp's errors as BiaErrors (it throws plain Errors; the message says which kind). */
function imageError(e: unknown, what: string, limit: number): BiaError {
  if (e instanceof BiaError) return e;
  const msg = (e instanceof Error ? e.message : String(e)).trim();
  if (/exceeds pixel limit/i.test(msg)) {
    return new BiaError('BIA_IMAGE_TOO_LARGE', `${what} has more pixels than the limit of ${megapixels(limit)} (limitInputPixels)`, { cause: e });
  }
  if (/unsupported image format/i.test(msg)) {
    return new BiaError('BIA_IMAGE_ERROR', `${what} is not an image sharp can read (unrecognised or unsupported format)`, { cause: e });
  }
  if (/Input (file|Buffer) is empty/i.test(msg)) return new BiaError('BIA_IMAGE_ERROR', `${what} is empty (0 bytes)`, { cause: e });
  if (/Input file is missing/i.test(msg)) return new BiaError('BIA_IO_ERROR', `${what}: no such file or folder`, { cause: e });
  return new BiaError('BIA_IMAGE_ERROR', `${what} cannot be decoded (corrupt or truncated?): ${msg.replace(/\s+/g, ' ')}`, { cause: e });
}

// ---------------------------------------------------------------------------------------------------
// reading

/** The encoded bytes of an input: a file is read once (no half-checked paths, no stale decoder caches). */
async function loadBytes(input: ImageInput, what: string): Promise<Buffer> {
  let bytes: Buffer;
  if (typeof input === 'string') {
    try {
      bytes = await fsp.readFile(input);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ERR_FS_FILE_TOO_LARGE') {
        throw new BiaError('BIA_IMAGE_TOO_LARGE', `${input} is larger than the 2 GiB a file read can hold`, { cause: e });
      }
      throw ioError(`cannot read image ${input}`, e);
    }
  } else {
    bytes = Buffer.isBuffer(input) ? input : Buffer.from(input.buffer, input.byteOffset, input.byteLength);
  }
  if (bytes.length === 0) throw new BiaError('BIA_IMAGE_ERROR', `${what} is empty (0 bytes)`);
  return bytes;
}

interface Header {
  meta: sharpModule.Metadata;
  /** As displayed (after the EXIF orientation). */
  width: number;
  height: number;
}

/** Read the header only (no pixels are decoded, whatever size it claims). */
async function readHeader(bytes: Buffer, what: string, limit: number): Promise<Header> {
  let meta: sharpModule.Metadata;
  try {
    meta = await sharp()(bytes, { limitInputPixels: false }).metadata();
  } catch (e) {
    throw imageError(e, what, limit);
  }
  const width = meta.autoOrient?.width ?? meta.width;
  const height = meta.autoOrient?.height ?? meta.height;
  if (!width || !height) throw new BiaError('BIA_IMAGE_ERROR', `${what} has no dimensions in its header (corrupt?)`);
  return { meta, width, height };
}

function checkPixels(h: Header, what: string, limit: number): void {
  const pixels = h.width * h.height;
  if (pixels > limit) {
    throw new BiaError(
      'BIA_IMAGE_TOO_LARGE',
      `${what} is ${h.width}×${h.height} (${megapixels(pixels)}), more than the limit of ${megapixels(limit)}; ` +
        'raise limitInputPixels to read it',
    );
  }
}

interface Decoded {
  /** CHW, in [-1, 1]. */
  data: Float32Array;
  height: number;
  width: number;
}

/**
 * Decode one image to CHW floats in [-1,1]. sharp applies the EXIF orientation, resizes (with
 * premultiplied alpha) and converts to sRGB with an alpha channel; 16-bit files stay 16-bit. The
 * alpha is flattened onto the background here, exactly, in floating point.
 */
async function decode(input: ImageInput, s: ReadSettings): Promise<Decoded> {
  const what = inputName(input);
  const bytes = await loadBytes(input, what);
  const header = await readHeader(bytes, what, s.limit);
  checkPixels(header, what, s.limit);
  const deep = header.meta.depth === 'ushort' || header.meta.depth === 'short';
  let raw: { data: Buffer; info: sharpModule.OutputInfo };
  try {
    let p: SharpInstance = sharp()(bytes, { limitInputPixels: s.limit }).rotate();
    if (s.size) {
      p = p.resize({
        height: s.size[0],
        width: s.size[1],
        fit: s.fit,
        position: 'centre',
        background: { r: 0, g: 0, b: 0, alpha: 0 },
      });
    }
    p = p.toColourspace(deep ? 'rgb16' : 'srgb').ensureAlpha(1);
    raw = await (deep ? p.raw({ depth: 'ushort' }) : p.raw()).toBuffer({ resolveWithObject: true });
  } catch (e) {
    throw imageError(e, what, s.limit);
  }
  const { width, height, channels } = raw.info;
  if (channels !== 4) throw new BiaError('BIA_IMAGE_ERROR', `${what}: expected RGBA from the decoder, got ${channels} channels`);
  let px: Uint8Array | Uint16Array;
  if (deep) {
    const b = raw.data.byteOffset % 2 === 0 ? raw.data : Buffer.from(raw.data);
    px = new Uint16Array(b.buffer, b.byteOffset, b.length / 2);
  } else {
    px = raw.data;
  }
  return { data: rgbaToChw(px, width, height, deep ? 65535 : 255, s.background === 'white' ? 1 : 0), width, height };
}

/** Interleaved straight-alpha RGBA → planar RGB in [-1,1], flattened onto a grey level bg ∈ {0, 1}. */
function rgbaToChw(px: Uint8Array | Uint16Array, width: number, height: number, max: number, bg: number): Float32Array {
  const plane = width * height;
  const out = new Float32Array(3 * plane);
  const inv = 1 / max;
  for (let p = 0, i = 0; p < plane; p++, i += 4) {
    const a = px[i + 3];
    if (a === max) {
      out[p] = (2 * px[i]) * inv - 1;
      out[plane + p] = (2 * px[i + 1]) * inv - 1;
      out[2 * plane + p] = (2 * px[i + 2]) * inv - 1;
    } else {
      const af = a * inv;
      const back = bg * (1 - af);
      out[p] = 2 * (px[i] * inv * af + back) - 1;
      out[plane + p] = 2 * (px[i + 1] * inv * af + back) - 1;
      out[2 * plane + p] = 2 * (px[i + 2] * inv * af + back) - 1;
    }
  }
  return out;
}

/**
 * Read an image into an RGB tensor [1,3,H,W] in [-1,1] (value v of 255 ↦ 2v/255 − 1).
 *
 * Reads whatever sharp reads: PNG, JPEG, WebP, TIFF, GIF (the first frame), AVIF, SVG; grey, grey +
 * alpha, RGB, RGBA, CMYK, 8 or 16 bits (16-bit files keep their precision). The EXIF orientation
 * is applied, the colours are converted to sRGB, transparency is flattened onto `background`
 * (white unless told), and with `size` the image is resized, by default covering the target and
 * cropping the centre. The header is checked against `limitInputPixels` before any pixel is decoded.
 *
 * Errors: BIA_IO_ERROR (missing or unreadable file), BIA_IMAGE_ERROR (empty, not an image, corrupt),
 * BIA_IMAGE_TOO_LARGE, BIA_INVALID_ARGUMENT (options).
 */
export async function readImage(input: ImageInput, opts?: ReadImageOptions): Promise<Tensor> {
  const src = checkInput(input);
  const s = checkReadOptions(opts);
  if (s.signal?.aborted) throw aborted(s.signal);
  const d = await decode(src, s);
  return tensor(d.data, [1, 3, d.height, d.width], { device: s.device, dtype: s.dtype, signal: s.signal });
}

/**
 * Read files into one batch [B,3,H,W]. Without `size` every image must have the size of the first
 * one read. With onError 'skip', files that fail (unreadable, not an image, too large, another size)
 * are listed in `failed` and the others still make the batch.
 */
export async function readImages(paths: string[], opts?: ReadImagesOptions): Promise<ReadImagesResult> {
  if (!Array.isArray(paths) || paths.length === 0) throw invalidArgument('paths must be a non-empty array of file paths');
  paths.forEach((p, i) => checkPath(p, `paths[${i}]`));
  const s = checkReadOptions(opts);
  const onError = opts?.onError ?? 'throw';
  if (onError !== 'throw' && onError !== 'skip') throw invalidArgument(`onError must be 'throw' or 'skip', got ${JSON.stringify(onError)}`);
  const concurrency = opts?.concurrency === undefined ? Math.max(1, Math.min(4, os.availableParallelism())) : checkInt(opts.concurrency, 'concurrency', 1, 64);
  checkFunction(opts?.onProgress, 'onProgress');
  const onProgress = opts?.onProgress;
  const signal = s.signal;
  if (signal?.aborted) throw aborted(signal);

  // Workers take the next path until none is left or the call has failed; they never throw, so every
  // one has finished (and no callback runs) by the time the call settles.
  const results: Array<Decoded | BiaError> = new Array(paths.length);
  let next = 0;
  let done = 0;
  let stop: unknown;
  const worker = async (): Promise<void> => {
    while (next < paths.length && stop === undefined) {
      if (signal?.aborted) {
        stop ??= aborted(signal);
        return;
      }
      const i = next++;
      try {
        results[i] = await decode(paths[i], s);
      } catch (e) {
        const err = e instanceof BiaError ? e : imageError(e, paths[i], s.limit);
        if (onError === 'throw') {
          stop ??= err;
          return;
        }
        results[i] = err;
      }
      if (stop !== undefined) return;
      done++;
      try {
        onProgress?.({ step: done, total: paths.length, stage: 'read images' });
      } catch (e) {
        stop ??= e; // like a native job: a throwing onProgress stops the work and rejects with its error
        return;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, paths.length) }, worker));
  if (stop !== undefined) throw stop;
  if (signal?.aborted) throw aborted(signal);

  // The batch size: `size`, else the first image read (in path order).
  let first: { path: string; d: Decoded } | undefined;
  const ok: string[] = [];
  const good: Decoded[] = [];
  const failed: ReadImagesResult['failed'] = [];
  for (const [i, r] of results.entries()) {
    if (r instanceof BiaError) {
      failed.push({ path: paths[i], error: r });
      continue;
    }
    first ??= { path: paths[i], d: r };
    if (r.height !== first.d.height || r.width !== first.d.width) {
      const err = invalidArgument(
        `${paths[i]} is ${r.width}×${r.height} but the batch is ${first.d.width}×${first.d.height} (from ${first.path}); ` +
          'pass size to resize every image',
      );
      if (onError === 'throw') throw err;
      failed.push({ path: paths[i], error: err });
      continue;
    }
    ok.push(paths[i]);
    good.push(r);
  }
  const [h, w] = s.size ?? (first ? [first.d.height, first.d.width] : [0, 0]);
  const per = 3 * h * w;
  const data = new Float32Array(good.length * per);
  good.forEach((d, b) => data.set(d.data, b * per));
  const t = await tensor(data, [good.length, 3, h, w], { device: s.device, dtype: s.dtype, signal });
  return { tensor: t, ok, failed };
}

/**
 * The face-input contract: the diffusion models expect aligned, centred, square faces. Read the
 * largest centred square of an image, resized to size×size (readImage with fit 'cover').
 */
export async function centerSquareCrop(input: ImageInput, size: number, opts?: Omit<ReadImageOptions, 'size' | 'fit'>): Promise<Tensor> {
  checkObject(opts);
  checkInt(size, 'size', 1, MAX_IMAGE_SIDE);
  return readImage(input, { ...opts, size, fit: 'cover' });
}

/**
 * Warnings for an image used as a face input (empty when it fits the contract): far from square
 * (aspect ratio above 1.25) or tiny (under 64 px on a side). Works on sizes only, e.g. describeImage's.
 */
export function checkFaceImage(meta: { width: number; height: number }): string[] {
  if (typeof meta !== 'object' || meta === null) throw invalidArgument('checkFaceImage needs { width, height }');
  const width = checkInt(meta.width, 'width', 1, Number.MAX_SAFE_INTEGER);
  const height = checkInt(meta.height, 'height', 1, Number.MAX_SAFE_INTEGER);
  const warnings: string[] = [];
  const aspect = Math.max(width, height) / Math.min(width, height);
  if (aspect > FACE_MAX_ASPECT) {
    warnings.push(
      `${width}×${height} is far from square (aspect ratio ${aspect.toFixed(2)} > ${FACE_MAX_ASPECT}): the models expect ` +
        'aligned, centred square faces; centerSquareCrop() keeps the centre square, which may cut the face',
    );
  }
  if (Math.min(width, height) < FACE_MIN_SIDE) {
    warnings.push(`${width}×${height} is tiny (under ${FACE_MIN_SIDE} px on a side): resized to the model resolution it will be a blur`);
  }
  return warnings;
}

/** The header of an image (nothing is decoded) and the face-input warnings. */
export async function describeImage(input: ImageInput, opts?: { limitInputPixels?: number }): Promise<ImageInfo> {
  const src = checkInput(input);
  checkObject(opts);
  const limit = checkLimit(opts?.limitInputPixels);
  const what = inputName(src);
  const bytes = await loadBytes(src, what);
  const { meta, width, height } = await readHeader(bytes, what, limit);
  const warnings = checkFaceImage({ width, height });
  if (width * height > limit) {
    warnings.push(`${width}×${height} (${megapixels(width * height)}) is over the limit of ${megapixels(limit)}: readImage refuses it unless limitInputPixels is raised`);
  }
  const pages = meta.pages ?? 1;
  if (pages > 1) warnings.push(`${pages} frames: readImage reads the first`);
  const bitDepth = meta.bitsPerSample ?? (meta.depth === 'ushort' || meta.depth === 'short' ? 16 : 8);
  return {
    format: meta.format ?? 'unknown',
    width,
    height,
    channels: meta.channels ?? 0,
    bitDepth,
    hasAlpha: meta.hasAlpha ?? false,
    space: meta.space ?? 'unknown',
    orientation: meta.orientation ?? 1,
    pages,
    bytes: bytes.length,
    warnings,
  };
}

// ---------------------------------------------------------------------------------------------------
// writing

interface Rgb {
  /** Interleaved RGB, 8 bits. */
  data: Buffer;
  width: number;
  height: number;
}

/** A [1,3,H,W] or [3,H,W] float tensor in [-1,1] (clamped) → 8-bit interleaved RGB. */
async function tensorToRgb(t: unknown, what = 'tensor'): Promise<Rgb> {
  if (!(t instanceof Tensor)) throw invalidArgument(`${what} must be a Tensor, got ${describeValue(t)}`);
  const shape = t.shape;
  const ok = (shape.length === 4 && shape[0] === 1 && shape[1] === 3) || (shape.length === 3 && shape[0] === 3);
  if (!ok) {
    const hint = shape.length === 4 && shape[1] === 3 && shape[0] > 1 ? '; write the images of a batch one at a time, or use comparisonGrid' : '';
    throw invalidArgument(`${what} must be one RGB image, [1,3,H,W] or [3,H,W]; got ${JSON.stringify(shape)}${hint}`);
  }
  const height = shape[shape.length - 2];
  const width = shape[shape.length - 1];
  if (height === 0 || width === 0) throw invalidArgument(`${what} is empty: ${JSON.stringify(shape)}`);
  if (!(IMAGE_DTYPES as readonly string[]).includes(t.dtype)) {
    throw invalidArgument(`${what} must be a floating tensor (${IMAGE_DTYPES.join(', ')}) in [-1,1]; got ${t.dtype}`);
  }
  const src = (await t.data()) as Float32Array | Float64Array;
  const plane = height * width;
  const out = Buffer.allocUnsafe(3 * plane);
  for (let c = 0; c < 3; c++) {
    const base = c * plane;
    for (let p = 0; p < plane; p++) {
      const x = src[base + p];
      if (!Number.isFinite(x)) {
        throw invalidArgument(`${what} holds ${x} at channel ${c}, row ${Math.floor(p / width)}, column ${p % width}: images must be finite`);
      }
      out[3 * p + c] = Math.round((x < -1 ? -1 : x > 1 ? 1 : x) * 127.5 + 127.5);
    }
  }
  return { data: out, width, height };
}

function checkFormat(format: unknown): ImageFormat {
  if (!IMAGE_FORMATS.includes(format as ImageFormat)) throw invalidArgument(`format must be one of ${IMAGE_FORMATS.join(', ')}; got ${JSON.stringify(format)}`);
  return format as ImageFormat;
}

function formatFromPath(path: string): ImageFormat {
  const ext = nodePath.extname(path).toLowerCase();
  if (ext === '.png') return 'png';
  if (ext === '.jpg' || ext === '.jpeg') return 'jpeg';
  if (ext === '.webp') return 'webp';
  throw invalidArgument(`cannot tell the image format from ${JSON.stringify(ext || path)}: use .png, .jpg, .jpeg or .webp, or pass format`);
}

function checkQuality(format: ImageFormat, quality: unknown): number {
  if (quality === undefined) return 95;
  if (format === 'png') throw invalidArgument('quality applies to jpeg and webp only (png is lossless)');
  return checkInt(quality, 'quality', 1, 100);
}

async function encode(rgb: Rgb, format: ImageFormat, quality: number): Promise<Buffer> {
  const p = sharp()(rgb.data, { raw: { width: rgb.width, height: rgb.height, channels: 3 } });
  try {
    if (format === 'png') return await p.png().toBuffer();
    if (format === 'jpeg') return await p.jpeg({ quality }).toBuffer();
    return await p.webp({ quality }).toBuffer();
  } catch (e) {
    throw new BiaError('BIA_IMAGE_ERROR', `cannot encode a ${rgb.width}×${rgb.height} ${format}: ${(e as Error).message}`, { cause: e });
  }
}

/**
 * Write bytes so that the file appears whole or not at all: a temporary file in the same folder,
 * synced, then renamed over `path`. On failure the temporary file is removed.
 */
export async function writeFileAtomic(path: string, bytes: Buffer | string, what = 'file'): Promise<void> {
  const dir = nodePath.dirname(nodePath.resolve(path));
  const tmp = nodePath.join(dir, `.${nodePath.basename(path)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  let fh: fsp.FileHandle | undefined;
  try {
    fh = await fsp.open(tmp, 'wx');
    await fh.writeFile(bytes);
    await fh.sync();
    await fh.close();
    fh = undefined;
    await fsp.rename(tmp, path);
  } catch (e) {
    await fh?.close().catch(() => undefined);
    await fsp.rm(tmp, { force: true }).catch(() => undefined);
    throw ioError(`cannot write ${what} ${path}`, e);
  }
}

/** Encode one image tensor ([1,3,H,W] or [3,H,W], values in [-1,1], clamped) as PNG, JPEG or WebP. */
export async function imageToBuffer(t: Tensor, format: ImageFormat, opts?: { quality?: number }): Promise<Buffer> {
  const f = checkFormat(format);
  checkObject(opts);
  const quality = checkQuality(f, opts?.quality);
  return encode(await tensorToRgb(t), f, quality);
}

/**
 * Write one image tensor ([1,3,H,W] or [3,H,W], values in [-1,1], clamped; NaN or ±Inf is refused)
 * as an 8-bit PNG, JPEG or WebP. The format comes from the extension unless `format` is given.
 * The file appears atomically: nothing half-written is ever at `path`.
 */
export async function writeImage(t: Tensor, path: string, opts?: WriteImageOptions): Promise<WrittenImage> {
  checkPath(path);
  checkObject(opts);
  const format = opts?.format === undefined ? formatFromPath(path) : checkFormat(opts.format);
  const quality = checkQuality(format, opts?.quality);
  const rgb = await tensorToRgb(t);
  const bytes = await encode(rgb, format, quality);
  await writeFileAtomic(path, bytes, 'image');
  return { path, format, width: rgb.width, height: rgb.height, bytes: bytes.length };
}

// ---------------------------------------------------------------------------------------------------
// the comparison grid

function escapeXml(s: string): string {
  return s
    .replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]/g, '')
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&apos;');
}

/** One label as SVG: centred, one line, shrunk to fit the cell (clipped beyond the smallest size). */
function labelSvg(label: string, width: number, height: number, colour: string): Buffer {
  let fontSize = Math.max(6, Math.round(height * 0.62));
  const estimate = (fs: number) => label.length * fs * 0.58; // average advance of a sans-serif glyph
  while (fontSize > 8 && estimate(fontSize) > width - 4) fontSize--;
  const y = Math.round(height / 2 + fontSize * 0.35);
  const svg =
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}">` +
    `<text x="${width / 2}" y="${y}" font-family="DejaVu Sans, Liberation Sans, Arial, sans-serif" font-size="${fontSize}" ` +
    `text-anchor="middle" fill="${colour}">${escapeXml(label)}</text></svg>`;
  return Buffer.from(svg);
}

async function parseColour(colour: unknown): Promise<{ rgb: [number, number, number]; css: string }> {
  if (typeof colour !== 'string' || colour.length === 0) throw invalidArgument(`background must be a colour string, got ${describeValue(colour)}`);
  let p: SharpInstance;
  try {
    p = sharp()({ create: { width: 1, height: 1, channels: 3, background: colour } });
  } catch (e) {
    throw invalidArgument(`background ${JSON.stringify(colour)} is not a colour (${(e as Error).message})`);
  }
  const px = await p.raw().toBuffer();
  const rgb: [number, number, number] = [px[0], px[1], px[2]];
  return { rgb, css: `rgb(${rgb.join(',')})` };
}

/**
 * A labelled grid of images (rows × columns), written as a PNG. Each image is fitted into a square
 * cell ('contain'); its label (if any) is drawn under it with sharp's SVG renderer (offline: the
 * system's fonts through sharp's fontconfig). A null cell, or a short row, leaves a blank cell.
 */
export async function comparisonGrid(cells: Array<Array<GridCell | null | undefined>>, path: string, opts?: ComparisonGridOptions): Promise<GridLayout> {
  checkPath(path);
  if (nodePath.extname(path).toLowerCase() !== '.png') throw invalidArgument(`comparisonGrid writes a PNG: the path must end in .png, got ${JSON.stringify(path)}`);
  checkObject(opts);
  if (!Array.isArray(cells) || cells.length === 0) throw invalidArgument('cells must be a non-empty array of rows');
  const items: Array<{ row: number; col: number; cell: GridCell }> = [];
  cells.forEach((row, r) => {
    if (!Array.isArray(row)) throw invalidArgument(`cells[${r}] must be an array (a row of cells)`);
    row.forEach((cell, c) => {
      if (cell === null || cell === undefined) return;
      if (typeof cell !== 'object' || !(cell.tensor instanceof Tensor)) throw invalidArgument(`cells[${r}][${c}] must be { tensor, label? } or null`);
      if (cell.label !== undefined && typeof cell.label !== 'string') throw invalidArgument(`cells[${r}][${c}].label must be a string`);
      items.push({ row: r, col: c, cell });
    });
  });
  if (items.length === 0) throw invalidArgument('cells holds no image');
  const rows = cells.length;
  const columns = Math.max(...cells.map((r) => r.length));
  // Every tensor is checked (shape, dtype, NaN) before anything is drawn.
  const images = await Promise.all(items.map((it) => tensorToRgb(it.cell.tensor, `cells[${it.row}][${it.col}].tensor`)));
  const cellSize = opts?.cellSize === undefined ? Math.max(...images.map((im) => Math.max(im.width, im.height))) : checkInt(opts.cellSize, 'cellSize', 1, MAX_IMAGE_SIDE);
  const anyLabel = items.some((it) => it.cell.label !== undefined && it.cell.label.length > 0);
  const labelHeight = opts?.labelHeight === undefined ? (anyLabel ? Math.max(14, Math.round(cellSize / 10)) : 0) : checkInt(opts.labelHeight, 'labelHeight', 0, 1024);
  const gap = opts?.gap === undefined ? 4 : checkInt(opts.gap, 'gap', 0, 1024);
  const bg = await parseColour(opts?.background ?? 'white');
  const luminance = 0.2126 * bg.rgb[0] + 0.7152 * bg.rgb[1] + 0.0722 * bg.rgb[2];
  const ink = luminance > 140 ? '#000000' : '#ffffff';
  const width = gap + columns * (cellSize + gap);
  const height = gap + rows * (cellSize + labelHeight + gap);
  if (width * height > DEFAULT_LIMIT_INPUT_PIXELS) {
    throw invalidArgument(`the grid would be ${width}×${height} (${megapixels(width * height)}), over ${megapixels(DEFAULT_LIMIT_INPUT_PIXELS)}: use a smaller cellSize`);
  }

  const perCell = await Promise.all(
    items.map(async (it, k): Promise<sharpModule.OverlayOptions[]> => {
      const im = images[k];
      const left = gap + it.col * (cellSize + gap);
      const top = gap + it.row * (cellSize + labelHeight + gap);
      let pixels = im.data;
      if (im.width !== cellSize || im.height !== cellSize) {
        pixels = await sharp()(im.data, { raw: { width: im.width, height: im.height, channels: 3 } })
          .resize({ width: cellSize, height: cellSize, fit: 'contain', background: bg.css })
          .removeAlpha()
          .raw()
          .toBuffer();
      }
      const layers: sharpModule.OverlayOptions[] = [{ input: pixels, raw: { width: cellSize, height: cellSize, channels: 3 }, left, top }];
      const label = it.cell.label;
      if (label && labelHeight > 0) layers.push({ input: labelSvg(label, cellSize, labelHeight, ink), left, top: top + cellSize });
      return layers;
    }),
  );
  const layers = perCell.flat();
  let png: Buffer;
  try {
    png = await sharp()({ create: { width, height, channels: 3, background: bg.css } })
      .composite(layers)
      .removeAlpha()
      .png()
      .toBuffer();
  } catch (e) {
    throw new BiaError('BIA_IMAGE_ERROR', `cannot draw the comparison grid: ${(e as Error).message}`, { cause: e });
  }
  await writeFileAtomic(path, png, 'comparison grid');
  return { path, width, height, rows, columns, cellSize, labelHeight, gap };
}

/** SHA-256, hex: of bytes, of a file (streamed), and of model files cached by path, size and mtime. */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { ioError } from '../errors';

/** SHA-256 of bytes (a string is hashed as UTF-8). */
export function sha256(data: Uint8Array | string): string {
  return createHash('sha256').update(data).digest('hex');
}

/** SHA-256 of a file, streamed; an unreadable file is BIA_IO_ERROR. */
export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  try {
    for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  } catch (e) {
    throw ioError(`cannot read ${path}`, e);
  }
  return hash.digest('hex');
}

const fileHashes = new Map<string, string>();

/** SHA-256 of a file that rarely changes (a checkpoint), remembered by path, size and mtime; null for no path. */
export async function cachedSha256File(path: string | null): Promise<string | null> {
  if (!path) return null;
  let key: string;
  try {
    const st = await stat(path);
    key = `${path}:${st.size}:${st.mtimeMs}`;
  } catch (e) {
    throw ioError(`cannot read ${path}`, e);
  }
  const hit = fileHashes.get(key);
  if (hit) return hit;
  const digest = await sha256File(path);
  fileHashes.set(key, digest);
  return digest;
}

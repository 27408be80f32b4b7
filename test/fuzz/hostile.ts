/**
 * Hand-made hostile files (the attacks the hardening targets name): each is a few bytes to a megabyte,
 * and each once cost seconds to minutes and gigabytes before it was refused.
 */
import { deflateRawSync, constants as zc } from 'node:zlib';

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

export function crc32(b: Uint8Array): number {
  let c = 0xffffffff;
  for (const x of b) c = CRC_TABLE[(c ^ x) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

export interface ZipEntry {
  name: string;
  /** The bytes as stored in the archive (deflated when `method` is 8). */
  stored: Buffer;
  /** Declared size once inflated, and its CRC (default: those of `stored`). */
  size?: number;
  crc?: number;
  method?: 0 | 8;
}

/** A zip archive (no zip64) with the given records, as torch.save lays them out. */
export function zip(entries: ZipEntry[]): Buffer {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (const e of entries) {
    const name = Buffer.from(e.name);
    const method = e.method ?? 0;
    const size = e.size ?? e.stored.length;
    const crc = e.crc ?? crc32(e.stored);
    // The central header repeats the local one's fields from "version needed" on, 2 bytes further in
    // (after "version made by"); flags, time, date and the extra and comment lengths stay 0.
    const header = (signature: number, length: number, at: number) => {
      const h = Buffer.alloc(length);
      h.writeUInt32LE(signature, 0);
      h.writeUInt16LE(20, at);
      h.writeUInt16LE(method, at + 4);
      h.writeUInt32LE(crc, at + 10);
      h.writeUInt32LE(e.stored.length, at + 14);
      h.writeUInt32LE(size, at + 18);
      h.writeUInt16LE(name.length, at + 22);
      return h;
    };
    const local = header(0x04034b50, 30, 4);
    const central = header(0x02014b50, 46, 6);
    central.writeUInt16LE(20, 4);
    central.writeUInt32LE(offset, 42);
    locals.push(local, name, e.stored);
    centrals.push(central, name);
    offset += 30 + name.length + e.stored.length;
  }
  const cd = Buffer.concat(centrals);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(entries.length, 8);
  end.writeUInt16LE(entries.length, 10);
  end.writeUInt32LE(cd.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, cd, end]);
}

/** A torch.save zip archive around a data.pkl. */
export function torchZip(dataPkl: ZipEntry | Buffer): Buffer {
  const pkl = Buffer.isBuffer(dataPkl) ? { name: 'archive/data.pkl', stored: dataPkl } : { ...dataPkl, name: 'archive/data.pkl' };
  return zip([pkl, { name: 'archive/version', stored: Buffer.from('3\n') }]);
}

/**
 * A pickle that calls a disallowed global (posix.system) and then calls each result again, `n` times:
 * 2 bytes per step (EMPTY_TUPLE, REDUCE). An interpreter that describes each opaque result by the one
 * before it spends memory quadratic in n.
 */
export function opaqueChainPickle(n: number): Buffer {
  return Buffer.concat([Buffer.from([0x80, 2]), Buffer.from('cposix\nsystem\n', 'latin1'), Buffer.alloc(2 * n, ')R'), Buffer.from('.')]);
}

/** A pickle that copies one large dict `copies` times through collections.OrderedDict(d). */
export function dictCopyPickle(entries: number, copies: number): Buffer {
  const parts: Buffer[] = [Buffer.from([0x80, 2, 0x7d /* EMPTY_DICT */, 0x28 /* MARK */])];
  for (let i = 0; i < entries; i++) parts.push(Buffer.from([0x4b, i & 0xff, 0x4b, (i >> 8) & 0xff])); // BININT1 k, BININT1 v
  parts.push(Buffer.from([0x75 /* SETITEMS */, 0x94 /* MEMOIZE: memo 0 */, 0x30 /* POP */]));
  parts.push(Buffer.from('ccollections\nOrderedDict\n', 'latin1'), Buffer.from([0x94 /* memo 1 */, 0x30]));
  for (let i = 0; i < copies; i++) parts.push(Buffer.from([0x68, 1, 0x68, 0, 0x85 /* TUPLE1 */, 0x52 /* REDUCE */, 0x30 /* POP */]));
  parts.push(Buffer.from('N.'));
  return Buffer.concat(parts);
}

/**
 * A zip whose data.pkl inflates to `mib` MiB (default `gib` GiB) of zeros from about 1 KB per MiB: one
 * deflated MiB of zeros (a non-final, byte-aligned block) repeated, then an empty final block.
 */
export function zipBomb(gib = 1, mib = 1024 * gib): Buffer {
  const one = deflateRawSync(Buffer.alloc(1 << 20), { finishFlush: zc.Z_FULL_FLUSH, level: 9 });
  const stored = Buffer.concat([...Array.from({ length: mib }, () => one), Buffer.from([0x03, 0x00])]);
  return torchZip({ name: 'archive/data.pkl', stored, method: 8, size: Math.min(2 ** 32 - 1, mib * 2 ** 20), crc: 0 });
}

/** A safetensors file whose one tensor has `rank` dimensions of size 1. */
export function deepRankSafetensors(rank: number): Buffer {
  const header = Buffer.from(JSON.stringify({ x: { dtype: 'F32', shape: Array(rank).fill(1), data_offsets: [0, 4] } }));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(header.length));
  return Buffer.concat([len, header, Buffer.alloc(4)]);
}

#!/usr/bin/env node
// `npm run fetch:models`: the faceplugin MobileFaceNet recognizer, converted to our format.
//   1. `npm pack faceplugin-face-recognition-js@0.0.1` into .cache/faceplugin/ (its dependencies are
//      never installed), and take `package/model/fr_feature.onnx` out of the tarball;
//   2. check its sha256;
//   3. convert it with `bia convert` to .cache/faceplugin/mobilefacenet.safetensors.
// Safe to rerun: each step is skipped when its result is already there (the ONNX file with the right
// sha256; a safetensors file whose metadata names that sha256). Needs the npm registry for step 1 and
// the built package (npm run build) for step 3. Exit 0 on success, 1 on failure.
import { createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, openSync, readFileSync, readSync, closeSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';

const PACKAGE = 'faceplugin-face-recognition-js@0.0.1';
const MEMBER = 'package/model/fr_feature.onnx';
const SHA256 = '87aacdfe57510db2af90c0251df680e8eec88f122ee94712121d09bcaaaf3581';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const cache = path.join(root, '.cache', 'faceplugin');
const onnxFile = path.join(cache, 'fr_feature.onnx');
const outFile = path.join(cache, 'mobilefacenet.safetensors');
const log = (msg) => process.stdout.write(`[fetch:models] ${msg}\n`);
const fail = (msg) => {
  process.stderr.write(`[fetch:models] ${msg}\n`);
  process.exit(1);
};
const sha256 = (bytes) => createHash('sha256').update(bytes).digest('hex');

/** One member of a .tgz (ustar; pax and GNU long-name records are skipped over). */
function extract(tgz, member) {
  const tar = gunzipSync(readFileSync(tgz));
  const text = (b, start, len) => b.subarray(start, start + len).toString('utf8').replace(/\0.*$/s, '');
  for (let off = 0; off + 512 <= tar.length;) {
    const header = tar.subarray(off, off + 512);
    if (header.every((v) => v === 0)) break;
    const size = parseInt(text(header, 124, 12).trim() || '0', 8);
    const prefix = text(header, 345, 155);
    const name = prefix ? `${prefix}/${text(header, 0, 100)}` : text(header, 0, 100);
    const type = String.fromCharCode(header[156] || 48);
    if (name === member && (type === '0' || type === '\0')) return tar.subarray(off + 512, off + 512 + size);
    off += 512 + Math.ceil(size / 512) * 512;
  }
  return undefined;
}

/** The __metadata__ of a safetensors file (header only), or undefined. */
function safetensorsMetadata(file) {
  try {
    const fd = openSync(file, 'r');
    try {
      const len = Buffer.alloc(8);
      readSync(fd, len, 0, 8, 0);
      const n = Number(len.readBigUInt64LE(0));
      if (n > 1 << 24) return undefined;
      const header = Buffer.alloc(n);
      readSync(fd, header, 0, n, 8);
      return JSON.parse(header.toString('utf8')).__metadata__;
    } finally {
      closeSync(fd);
    }
  } catch {
    return undefined;
  }
}

mkdirSync(cache, { recursive: true });

// 1–2. the ONNX file
if (existsSync(onnxFile) && sha256(readFileSync(onnxFile)) === SHA256) {
  log(`${path.relative(root, onnxFile)} present`);
} else {
  log(`npm pack ${PACKAGE} (into ${path.relative(root, cache)})`);
  const r = spawnSync('npm', ['pack', PACKAGE, '--pack-destination', cache, '--json', '--ignore-scripts', '--fetch-retries=1'], {
    cwd: cache,
    encoding: 'utf8',
    timeout: 300_000,
  });
  if (r.status !== 0) fail(`npm pack failed (offline?): ${(r.stderr || r.error?.message || '').trim().split('\n').slice(-3).join(' ')}`);
  let tgz;
  try {
    tgz = path.join(cache, JSON.parse(r.stdout)[0].filename);
  } catch {
    fail(`npm pack gave no tarball name: ${r.stdout.slice(0, 200)}`);
  }
  const data = extract(tgz, MEMBER);
  rmSync(tgz, { force: true });
  if (!data) fail(`${MEMBER} is not in ${path.basename(tgz)}`);
  const got = sha256(data);
  if (got !== SHA256) fail(`${MEMBER} has sha256 ${got}, expected ${SHA256}`);
  writeFileSync(`${onnxFile}.tmp`, data);
  renameSync(`${onnxFile}.tmp`, onnxFile);
  log(`${path.relative(root, onnxFile)}: ${(data.length / 1e6).toFixed(1)} MB, sha256 ${SHA256.slice(0, 12)}…`);
}

// 3. the conversion
if (safetensorsMetadata(outFile)?.sha256 === SHA256) {
  log(`${path.relative(root, outFile)} up to date`);
} else {
  const cli = path.join(root, 'dist', 'ts', 'cli.js');
  if (!existsSync(cli)) fail(`${path.relative(root, cli)} is missing: build first (npm run build)`);
  const r = spawnSync(process.execPath, [cli, 'convert', onnxFile, outFile, '--source', `npm:${PACKAGE}/model/fr_feature.onnx`], {
    cwd: root,
    stdio: 'inherit',
  });
  if (r.status !== 0) fail(`bia convert failed (exit ${r.status ?? r.signal})`);
}

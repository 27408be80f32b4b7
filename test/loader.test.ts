// The loader: finds the built addon, honours BIA_TORCH_ADDON, and fails with one actionable error.
import { cpSync, mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { ROOT, runNode } from './helpers';

const index = JSON.stringify(path.join(ROOT, 'dist', 'ts', 'index.js'));
const probe = (mod: string) =>
  `try { const b = require(${mod}); b.loadAddon(); console.log('LOADED'); } catch (e) { console.log(JSON.stringify({ code: e.code, message: e.message })); }`;

t.test('loads build/Release by default', async (t) => {
  const r = runNode(probe(index), { BIA_TORCH_ADDON: '' });
  t.match(r.stdout, /LOADED/);
});

t.test('an explicit BIA_TORCH_ADDON that is not a valid addon fails with the path and a fix', async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'bia-loader-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const bogus = path.join(dir, 'bogus.node');
  writeFileSync(bogus, 'not an ELF file');
  const r = runNode(probe(index), { BIA_TORCH_ADDON: bogus });
  const out = JSON.parse(r.stdout);
  t.equal(out.code, 'BIA_ADDON_NOT_FOUND');
  t.match(out.message, bogus);
  t.match(out.message, /Fix:/);
  const r2 = runNode(probe(index), { BIA_TORCH_ADDON: path.join(dir, 'missing.node') });
  const out2 = JSON.parse(r2.stdout);
  t.equal(out2.code, 'BIA_ADDON_NOT_FOUND');
  t.match(out2.message, /missing\.node: not found/);
  t.match(out2.message, /npm run setup/);
});

t.test('an unbuilt package lists every place it looked (Release and Debug)', async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'bia-pkg-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: 'bia-torch', version: '0.0.0' }));
  cpSync(path.join(ROOT, 'dist', 'ts'), path.join(dir, 'dist', 'ts'), { recursive: true });
  const r = runNode(probe(JSON.stringify(path.join(dir, 'dist', 'ts', 'index.js'))), { BIA_TORCH_ADDON: '' }, dir);
  const out = JSON.parse(r.stdout);
  t.equal(out.code, 'BIA_ADDON_NOT_FOUND');
  t.match(out.message, path.join(dir, 'build', 'Release', 'bia_torch.node'));
  t.match(out.message, path.join(dir, 'build', 'Debug', 'bia_torch.node'));
});

t.test('a bad BIA_NUM_THREADS is a clear error', async (t) => {
  const r = runNode(probe(index), { BIA_NUM_THREADS: 'many' });
  const out = JSON.parse(r.stdout);
  t.equal(out.code, 'BIA_INVALID_ARGUMENT');
  t.match(out.message, /BIA_NUM_THREADS/);
});

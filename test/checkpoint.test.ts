// Checkpoints: torch.save zip and legacy files and safetensors read against what Python torch wrote
// (test/fixtures/make_checkpoints.py records the expected values), safetensors writing, the safety of
// the pickle reader, and the errors for files that are not (whole) checkpoints.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { DTYPES, liveTensors, loadAddon, readCheckpoint, saveSafetensors, Tensor, tensor, type Checkpoint } from '../ts/index';
import { gc, ROOT } from './helpers';

const FIX = path.join(ROOT, 'test', 'fixtures', 'checkpoints');
const GENERATOR = path.join(ROOT, 'test', 'fixtures', 'make_checkpoints.py');
const fixture = (name: string) => path.join(FIX, name);

type Expected = { format: string; metadata: Record<string, string>; tensors: Array<[string, { dtype: string; shape: number[]; values: number[] }]> };
const expected = JSON.parse(fs.readFileSync(fixture('expected.json'), 'utf8')) as Record<string, Expected> & {
  _errors: Record<string, string>;
  _markers: string[];
};
const FIXTURES = Object.keys(expected).filter((k) => !k.startsWith('_'));

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'bia-ckpt-'));
t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }));

// Debian's Python torch, used only to cross-check our files; the tests that need it skip without it.
const PYTHON = '/usr/bin/python3';
let torchChecked: string | false | undefined;
function noPythonTorch(): string | false {
  if (torchChecked === undefined) {
    const r = spawnSync(PYTHON, ['-c', 'import torch'], { encoding: 'utf8', timeout: 120_000 });
    torchChecked = r.status === 0 ? false : `needs ${PYTHON} with torch (Debian python3-torch): ${(r.error?.message ?? r.stderr).trim().split('\n').pop()}`;
  }
  return torchChecked;
}
function python(args: string[]): string {
  const r = spawnSync(PYTHON, args, { encoding: 'utf8', timeout: 300_000, maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`python failed: ${r.stderr}`);
  return r.stdout;
}

/** Values in row-major order; int16/int8 (no JS typed array) through float64, which is exact for them. */
async function values(x: Tensor): Promise<number[]> {
  if (!(DTYPES as readonly string[]).includes(x.dtype)) {
    const wide = await x.to({ dtype: 'float64' });
    const v = Array.from(await wide.data());
    wide.dispose();
    return v;
  }
  return Array.from(await x.data());
}

function safetensorsHeader(file: string) {
  const bytes = fs.readFileSync(file);
  const n = Number(bytes.readBigUInt64LE(0));
  const text = bytes.subarray(8, 8 + n).toString('utf8');
  return { n, text, header: JSON.parse(text) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }> };
}

function dispose(ck: Checkpoint): void {
  for (const x of ck.tensors.values()) x.dispose();
}

async function matches(t: tap.Test, ck: Checkpoint, exp: Expected): Promise<void> {
  t.equal(ck.format, exp.format, 'format');
  t.strictSame(ck.metadata, exp.metadata, 'metadata');
  t.strictSame([...ck.tensors.keys()], exp.tensors.map(([name]) => name), 'names, in file order');
  for (const [name, e] of exp.tensors) {
    const x = ck.tensors.get(name);
    if (!x) continue;
    t.strictSame(x.shape, e.shape, `${name}: shape`);
    t.equal(x.device, 'cpu');
    // int16 and int8 have no dtype name of their own in the library yet; their values are checked.
    if ((DTYPES as readonly string[]).includes(e.dtype)) t.equal(x.dtype, e.dtype, `${name}: dtype`);
    t.strictSame(await values(x), e.values, `${name}: values`);
  }
}

t.test('every fixture reads as Python torch wrote it (format, metadata, names in order, dtypes, shapes, exact values)', async (t) => {
  t.ok(FIXTURES.length >= 13, `${FIXTURES.length} fixtures`);
  for (const name of FIXTURES) {
    await t.test(name, async (t) => {
      const ck = await readCheckpoint(fixture(name));
      await matches(t, ck, expected[name]);
      dispose(ck);
    });
  }
});

t.test('zip and legacy formats (pickle protocols 2 and 4) of the same state dict give identical tensors', async (t) => {
  for (const group of [['dtypes.zip.pt', 'dtypes.legacy.pt', 'dtypes-p4.zip.pt', 'dtypes-p4.legacy.pt'], ['module.zip.pt', 'module.legacy.pt']]) {
    const cks = await Promise.all(group.map((f) => readCheckpoint(fixture(f))));
    t.strictSame(cks.map((c) => c.format), group.map((f) => (f.includes('legacy') ? 'torch-legacy' : 'torch-zip')));
    const [first, ...rest] = cks;
    for (const other of rest) {
      t.strictSame([...other.tensors.keys()], [...first.tensors.keys()]);
      for (const [name, x] of first.tensors) {
        const y = other.tensors.get(name)!;
        t.strictSame([y.shape, y.dtype], [x.shape, x.dtype], `${name}: shape and dtype`);
        t.strictSame(await values(y), await values(x), `${name}: values`);
      }
    }
    cks.forEach(dispose);
  }
});

t.test('all storage dtypes, views (slice, transpose, offset, stride 0) and a storage shared by three tensors', async (t) => {
  for (const file of ['dtypes.zip.pt', 'dtypes.legacy.pt']) {
    const ck = await readCheckpoint(fixture(file));
    const dtypes = Object.fromEntries([...ck.tensors].map(([n, x]) => [n, x.dtype]));
    t.match(dtypes, { f32: 'float32', f16: 'float16', bf16: 'bfloat16', f64: 'float64', i64: 'int64', i32: 'int32', bool: 'bool', u8: 'uint8' });
    // The views are consistent with the base tensor they share a storage with.
    const base = await values(ck.tensors.get('shared.base')!); // 4 x 6
    t.strictSame(base, Array.from({ length: 24 }, (_, i) => i));
    const at = (r: number, c: number) => base[r * 6 + c];
    t.strictSame(await values(ck.tensors.get('shared.slice')!), [at(1, 2), at(1, 3), at(1, 4), at(2, 2), at(2, 3), at(2, 4)], 'base[1:3, 2:5]');
    const transposed: number[] = [];
    for (let c = 0; c < 6; c++) for (let r = 0; r < 4; r++) transposed.push(at(r, c));
    t.strictSame(ck.tensors.get('shared.t')!.shape, [6, 4]);
    t.strictSame(await values(ck.tensors.get('shared.t')!), transposed, 'base.t()');
    t.strictSame(await values(ck.tensors.get('tail')!), [3, 4, 5, 6, 7, 8, 9], 'arange(10)[3:] (storage offset 3)');
    t.strictSame(await values(ck.tensors.get('expanded')!), [1.5, -2, 1.5, -2, 1.5, -2], 'expand (stride 0)');
    t.strictSame(ck.tensors.get('scalar')!.shape, []);
    t.strictSame(ck.tensors.get('empty')!.shape, [0, 3]);
    t.strictSame(ck.tensors.get('param')!.shape, [2, 2], 'an nn.Parameter entry is its tensor');
    dispose(ck);
  }
});

t.test('a real nn.Module state_dict (OrderedDict with _metadata, BatchNorm buffers, num_batches_tracked)', async (t) => {
  const ck = await readCheckpoint(fixture('module.zip.pt'));
  t.strictSame([...ck.tensors.keys()], [
    'conv.weight', 'conv.bias', 'bn.weight', 'bn.bias', 'bn.running_mean', 'bn.running_var', 'bn.num_batches_tracked', 'fc.weight', 'fc.bias',
  ]);
  const nbt = ck.tensors.get('bn.num_batches_tracked')!;
  t.equal(nbt.dtype, 'int64');
  t.strictSame(nbt.shape, []);
  t.strictSame(await values(nbt), [3], 'three training steps');
  t.strictSame(ck.tensors.get('conv.weight')!.shape, [4, 3, 3, 3]);
  t.strictSame(ck.metadata, {}, 'a bare state dict has no metadata');
  dispose(ck);
});

t.test("wrapped checkpoints: {'state_dict': ..., 'epoch': 3, ...}, 'module.' prefixes, wrapper precedence", async (t) => {
  const bare = await readCheckpoint(fixture('module.zip.pt'));
  for (const file of ['wrapped.zip.pt', 'wrapped.legacy.pt']) {
    const ck = await readCheckpoint(fixture(file));
    t.strictSame([...ck.tensors.keys()], [...bare.tensors.keys()], `${file}: the 'module.' prefix is stripped`);
    for (const [name, x] of bare.tensors) t.strictSame(await values(ck.tensors.get(name)!), await values(x));
    t.strictSame(ck.metadata, { epoch: '3', optimizer_name: 'adam', lr: '1e-05', best_loss: '0.25', finished: 'True', note: 'None' });
    dispose(ck);
  }
  dispose(bare);
  // 'model' holds no tensors, so 'ema' wins over the later 'module'; objects, dtypes, devices, sizes,
  // bytes, sets, a 2**80 int and an optimizer state are skipped without error.
  const ema = await readCheckpoint(fixture('ema.zip.pt'));
  t.strictSame([...ema.tensors.keys()], ['w', 'b']);
  t.strictSame(await values(ema.tensors.get('w')!), [1, 2]);
  t.strictSame(ema.metadata, { negative: '-5', iteration: '1000' });
  dispose(ema);
});

t.test('a big-endian zip archive (byteorder record) is byte-swapped', async (t) => {
  const ck = await readCheckpoint(fixture('bigendian.zip.pt'));
  t.strictSame(await values(ck.tensors.get('f32')!), [1.5, -2.25, Math.fround(3e-5)]);
  t.strictSame(await values(ck.tensors.get('i64')!), [1, -2, 2 ** 33]);
  t.strictSame(await values(ck.tensors.get('f16')!), [0.5, -1]);
  t.strictSame(await values(ck.tensors.get('bf16')!), [2, -0.125]);
  dispose(ck);
});

t.test('safetensors written by Python (from the spec): file order is data order, __metadata__', async (t) => {
  const ck = await readCheckpoint(fixture('python.safetensors'));
  t.equal(ck.format, 'safetensors');
  t.strictSame(ck.metadata, { format: 'pt', source: 'make_checkpoints.py' });
  // The header lists names alphabetically; the data is ordered by alignment, and that is file order.
  t.strictSame([...ck.tensors.keys()].slice(0, 2), ['a.f64', 'b.i64']);
  t.strictSame(await values(ck.tensors.get('g.i16')!), [-300, 300]);
  t.strictSame(await values(ck.tensors.get('i.i8')!), [-128, 127, 0]);
  dispose(ck);
});

t.test('files from a newer torch and from the official safetensors package; ours read by that package', async (t) => {
  // Written on the GPU machine by test/fixtures/checkpoints-torch2/make_torch2_checkpoints.py.
  const dir = path.join(ROOT, 'test', 'fixtures', 'checkpoints-torch2');
  const t2 = JSON.parse(fs.readFileSync(path.join(dir, 'expected.json'), 'utf8')) as {
    torch: string;
    st: string;
    expected: Expected['tensors'];
    ours: Record<string, { dtype: string; shape: number[]; values: number[] }>;
    ours_meta: Record<string, string>;
  };
  t.match(t2.torch, /^2\./);
  // CUDA tensors come back on the CPU; the float8 tensor (no such dtype in LibTorch 1.13) is skipped.
  for (const [file, format] of [['t2.zip.pt', 'torch-zip'], ['t2.legacy.pt', 'torch-legacy']]) {
    const ck = await readCheckpoint(path.join(dir, file));
    await matches(t, ck, { format, metadata: {}, tensors: t2.expected });
    t.notOk(ck.tensors.has('f8'), `${file}: float8 skipped`);
    dispose(ck);
  }
  const official = await readCheckpoint(path.join(dir, 'official.safetensors'));
  t.strictSame(official.metadata, { by: 'safetensors' });
  t.strictSame([...official.tensors.keys()].sort(), t2.expected.map(([n]) => n).sort());
  for (const [name, e] of t2.expected) t.strictSame(await values(official.tensors.get(name)!), e.values, `official ${name}`);
  dispose(official);

  // ours.safetensors, as safetensors 0.8.0 read it, is what we read; and writing the same tensors
  // again gives the same bytes, so what we write today is still a file that package reads.
  const oursFile = path.join(dir, 'ours.safetensors');
  const ours = await readCheckpoint(oursFile);
  t.strictSame(ours.metadata, t2.ours_meta);
  t.strictSame([...ours.tensors.keys()].sort(), Object.keys(t2.ours).sort());
  for (const [name, x] of ours.tensors) {
    t.strictSame([x.shape, x.dtype], [t2.ours[name].shape, t2.ours[name].dtype], name);
    t.strictSame(await values(x), t2.ours[name].values, `${name}: as the official package read it`);
  }
  const src = await readCheckpoint(fixture('dtypes.zip.pt'));
  const rename: Record<string, string> = { transposed: 'shared.t' };
  const again = new Map([...ours.tensors.keys()].map((n) => [n, src.tensors.get(rename[n] ?? n)!]));
  const rewritten = path.join(fs.mkdtempSync(path.join(tmp, 'rewrite-')), 'ours.safetensors');
  await saveSafetensors(rewritten, again, { metadata: t2.ours_meta });
  t.ok(fs.readFileSync(rewritten).equals(fs.readFileSync(oursFile)), 'byte-identical to the file the official package read');
  dispose(ours);
  dispose(src);
});

t.test('a malicious pickle executes nothing (os.system and eval payloads, zip and legacy)', async (t) => {
  const markers = expected._markers;
  for (const m of markers) fs.rmSync(m, { force: true });
  for (const file of ['malicious.zip.pt', 'malicious.legacy.pt']) {
    const raw = fs.readFileSync(fixture(file));
    t.ok(raw.includes('system') && raw.includes('eval') && raw.includes(markers[0]), `${file} carries the payloads`);
    const ck = await readCheckpoint(fixture(file));
    t.strictSame([...ck.tensors.keys()], ['weight'], 'the payload entries are skipped');
    t.strictSame(await values(ck.tensors.get('weight')!), [0, 1, 2, 3]);
    dispose(ck);
    for (const m of markers) t.notOk(fs.existsSync(m), `${file}: ${m} was not created`);
  }
});

t.test('our safetensors: read back by us, laid out by the spec, readable by an independent reader', async (t) => {
  const src = await readCheckpoint(fixture('dtypes.zip.pt'));
  const out = new Map<string, Tensor>();
  // Every dtype, views (a transpose is non-contiguous), a scalar, an empty tensor; a bool first so
  // the next tensor starts at an odd offset (the format does not align tensors).
  for (const name of ['bool', 'shared.t', 'f32', 'f16', 'bf16', 'f64', 'i64', 'i32', 'u8', 'scalar', 'empty', 'tail', 'expanded']) {
    out.set(name === 'shared.t' ? 'transposed' : name, src.tensors.get(name)!);
  }
  const dir = fs.mkdtempSync(path.join(tmp, 'write-'));
  const file = path.join(dir, 'ours.safetensors');
  // JSON.parse makes "__proto__" an own key, as a caller's metadata may have it.
  const metadata = JSON.parse('{"format": "pt", "note": "written by bia-torch", "__proto__": "a key like any other"}') as Record<string, string>;
  await saveSafetensors(file, out, { metadata });
  t.strictSame(fs.readdirSync(dir), ['ours.safetensors'], 'no temporary file is left');

  const back = await readCheckpoint(file);
  t.equal(back.format, 'safetensors');
  const sorted = (m: Record<string, string>) => Object.entries(m).sort(([a], [b]) => (a < b ? -1 : 1));
  t.strictSame(sorted(back.metadata), sorted(metadata), 'metadata, "__proto__" included as an own key');
  t.strictSame([...back.tensors.keys()], [...out.keys()], 'the given order');
  for (const [name, x] of out) {
    const y = back.tensors.get(name)!;
    t.strictSame([y.shape, y.dtype], [x.shape, x.dtype], name);
    t.strictSame(await values(y), await values(x), `${name}: values`);
  }

  // The layout, checked here by hand: u64 LE length, JSON padded with spaces to 8, contiguous data.
  const bytes = fs.readFileSync(file);
  const { n, text, header } = safetensorsHeader(file);
  t.equal(n % 8, 0, 'header length is a multiple of 8');
  t.match(text, /^\{.*\} *$/s, 'JSON padded with spaces');
  t.strictSame(Object.keys(header), ['__metadata__', ...out.keys()], '__metadata__ first, then the given order');
  let pos = 0;
  for (const name of out.keys()) {
    t.equal(header[name].data_offsets[0], pos, `${name} starts where the previous one ended`);
    pos = header[name].data_offsets[1];
  }
  t.equal(bytes.length, 8 + n + pos, 'no bytes after the last tensor');
  t.strictSame(header.bool, { dtype: 'BOOL', shape: [4], data_offsets: [0, 4] });
  t.equal(header.bf16.dtype, 'BF16');

  await t.test('read by the generator\'s spec reader in Python torch', { skip: noPythonTorch() }, async (t) => {
    const py = JSON.parse(python([GENERATOR, '--check', file])) as {
      metadata: Record<string, string>;
      tensors: Expected['tensors'];
      layout: { headerPaddedTo8: boolean; headerPaddingIsSpaces: boolean; headerKeys: string[] };
    };
    t.ok(py.layout.headerPaddedTo8 && py.layout.headerPaddingIsSpaces);
    t.strictSame(py.metadata, back.metadata);
    t.strictSame(py.tensors.map(([name]) => name), [...out.keys()]);
    for (const [name, e] of py.tensors) {
      const x = out.get(name)!;
      t.strictSame([e.shape, e.dtype], [x.shape, x.dtype], name);
      t.strictSame(e.values, await values(x), `${name}: values in Python`);
    }
  });

  // Writing again replaces the file; saving a plain object works too.
  const small = await tensor(new Float32Array([1, 2, 3]), [3]);
  await saveSafetensors(file, { only: small });
  const again = await readCheckpoint(file);
  t.strictSame([...again.tensors.keys()], ['only']);
  t.strictSame(again.metadata, {}, 'no __metadata__ when none is given');
  t.strictSame(Object.keys(safetensorsHeader(file).header), ['only']);
  small.dispose();
  for (const ck of [src, back, again]) dispose(ck);
});

t.test('a failed write leaves no partial file behind', async (t) => {
  const x = await tensor(new Float32Array(1 << 16), [1 << 16]);
  const dir = path.join(tmp, 'failing');
  fs.mkdirSync(path.join(dir, 'target.safetensors'), { recursive: true }); // rename onto a directory fails
  await t.rejects(saveSafetensors(path.join(dir, 'target.safetensors'), { x }), { code: 'BIA_IO_ERROR', message: /target\.safetensors/ });
  t.strictSame(fs.readdirSync(dir), ['target.safetensors'], 'the temporary file was removed');
  await t.rejects(saveSafetensors(path.join(tmp, 'missing-dir', 'a.safetensors'), { x }), { code: 'BIA_IO_ERROR', message: /missing-dir/ });
  const ac = new AbortController();
  ac.abort();
  await t.rejects(saveSafetensors(path.join(tmp, 'aborted.safetensors'), { x }, { signal: ac.signal }), { code: 'BIA_ABORTED' });
  t.notOk(fs.existsSync(path.join(tmp, 'aborted.safetensors')));
  x.dispose();
});

t.test('views share their storage in memory, as in torch (a larger file made by Python torch)', { skip: noPythonTorch() }, async (t) => {
  const script = `
import torch, sys
base = torch.arange(8 << 20, dtype=torch.float32)  # one 32 MiB storage
sd = {'base': base, 't': base.view(2048, 4096).t(), 'half': base[4 << 20:], 'rows': base.view(4096, 2048)[::2],
      'again': base.view(8, -1), 'slice': base[1:-1], 'diag': base.view(2048, 4096)[:, :2048].diagonal(), 'flat': base.view(-1)}
torch.save(sd, sys.argv[1])
torch.save(sd, sys.argv[2], _use_new_zipfile_serialization=False)`;
  const zip = path.join(tmp, 'views.zip.pt');
  const legacy = path.join(tmp, 'views.legacy.pt');
  python(['-c', script, zip, legacy]);
  for (const file of [zip, legacy]) {
    const size = fs.statSync(file).size;
    t.ok(size > 32 << 20 && size < 33 << 20, `${path.basename(file)}: ${size} bytes, the storage saved once`);
    gc();
    const before = process.memoryUsage().rss;
    const ck = await readCheckpoint(file);
    const grew = process.memoryUsage().rss - before;
    const viewBytes = [...ck.tensors.values()].reduce((s, x) => s + x.nbytes, 0);
    t.ok(viewBytes > 6 * (32 << 20), `the 8 tensors span ${(viewBytes / 2 ** 20).toFixed(0)} MiB`);
    t.ok(grew < 48 << 20, `RSS grew by ${(grew / 2 ** 20).toFixed(1)} MiB for a ${(size / 2 ** 20).toFixed(0)} MiB file: one copy of the storage`);
    const flat = await ck.tensors.get('diag')!.data();
    t.equal(flat[5], 5 * 4096 + 5, 'diagonal of a view');
    t.equal((await ck.tensors.get('t')!.data())[1], 4096, 'transpose');
    dispose(ck);
    fs.rmSync(file);
  }
});

t.test('files that are not (whole) checkpoints: clear errors with codes and the path', async (t) => {
  const write = (name: string, data: Buffer | string) => {
    const p = path.join(tmp, name);
    fs.writeFileSync(p, data);
    return p;
  };
  const missing = path.join(tmp, 'nope.pt');
  await t.rejects(readCheckpoint(missing), { code: 'BIA_IO_ERROR', message: new RegExp(`nope\\.pt.*No such file`) });
  await t.rejects(readCheckpoint(tmp), { code: 'BIA_IO_ERROR', message: /directory/ });
  const cases: Array<[string, Buffer | string, RegExp]> = [
    ['empty.pt', Buffer.alloc(0), /empty \(0 bytes\)/],
    ['notes.txt', 'epoch 3: loss 0.25\nnot a checkpoint at all\n', /not a checkpoint: the file holds text/],
    ['image.pt', Buffer.concat([Buffer.from('89504e470d0a1a0a0000000d49484452', 'hex'), Buffer.alloc(64)]), /not a checkpoint: the file holds a PNG image/],
    ['tiny.pt', Buffer.from([1, 2, 3]), /not a checkpoint/],
    ['plain.pkl', Buffer.from('80027d71002e', 'hex'), /a pickle file, but not a torch\.save checkpoint/],
  ];
  for (const [name, data, message] of cases) {
    const p = write(name, data);
    await t.rejects(readCheckpoint(p), { code: 'BIA_CHECKPOINT_ERROR', message }, name);
    await t.rejects(readCheckpoint(p), { message: new RegExp(name.replace('.', '\\.')) }, `${name}: the message names the file`);
  }
});

t.test('truncated and corrupt torch files', async (t) => {
  for (const file of ['dtypes.zip.pt', 'dtypes.legacy.pt', 'module.zip.pt', 'module.legacy.pt']) {
    const raw = fs.readFileSync(fixture(file));
    for (const keep of [1, 16, Math.floor(raw.length / 3), Math.floor(raw.length / 2), raw.length - 30, raw.length - 1]) {
      const p = path.join(tmp, `cut-${keep}-${file}`);
      fs.writeFileSync(p, raw.subarray(0, keep));
      await t.rejects(readCheckpoint(p), { code: 'BIA_CHECKPOINT_ERROR', message: /cannot read checkpoint/ }, `${file} cut to ${keep} of ${raw.length} bytes`);
      fs.rmSync(p);
    }
  }
  // Damaged zip structures. (The data itself carries CRCs, but LibTorch's miniz is built without
  // CRC checks, and torch.load does not check them either; see docs/checkpoints.md.)
  const raw = fs.readFileSync(fixture('dtypes.zip.pt'));
  const find = (magic: string, from = 0) => raw.indexOf(Buffer.from(magic, 'latin1'), from);
  const damaged: Array<[string, (b: Buffer) => void, RegExp]> = [
    ['central directory entry', (b) => { b[find('PK\x01\x02')] = 0x51; }, /corrupt zip archive: bad central directory entry/],
    ['local header of a tensor record', (b) => { b[find('PK\x03\x04', 1) + 1] = 0x58; }, /corrupt zip archive: .*data\/0.*corrupted/],
    ['central directory offset', (b) => { b.writeUInt32LE(raw.length + 100, find('PK\x05\x06') + 16); }, /central directory lies outside the file/],
  ];
  for (const [what, damage, message] of damaged) {
    const b = Buffer.from(raw);
    damage(b);
    const p = path.join(tmp, 'damaged.pt');
    fs.writeFileSync(p, b);
    await t.rejects(readCheckpoint(p), { code: 'BIA_CHECKPOINT_ERROR', message }, what);
  }
  for (const [name, message] of Object.entries(expected._errors)) {
    await t.rejects(readCheckpoint(fixture(name)), { code: 'BIA_CHECKPOINT_ERROR', message: new RegExp(message.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')) }, name);
  }
});

t.test('corrupt safetensors headers and data: BIA_CHECKPOINT_ERROR, never a crash or a huge allocation', async (t) => {
  const st = (header: unknown, data: Buffer = Buffer.alloc(0), length?: bigint) => {
    const text = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header));
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(length ?? BigInt(text.length));
    return Buffer.concat([len, text, data]);
  };
  const f32 = (shape: number[], offsets: [number, number]) => ({ dtype: 'F32', shape, data_offsets: offsets });
  const cases: Array<[string, Buffer, RegExp]> = [
    ['absurd header length', st('{}', Buffer.alloc(8), 2n ** 62n), /header length 4611686018427387904 is over the format's 100 MB limit/],
    ['header past the end', st('{}', Buffer.alloc(8), 4096n), /header length 4096 runs past the end/],
    ['offsets beyond the file', st({ w: f32([1000], [0, 4000]) }, Buffer.alloc(16)), /tensor 'w': data_offsets \[0, 4000\] lie outside the 16 data bytes/],
    ['offsets reversed', st({ w: f32([0], [8, 4]) }, Buffer.alloc(16)), /lie outside/],
    ['not JSON', st('{"w": [1, 2', Buffer.alloc(8)), /not valid JSON/],
    ['JSON but not an object', st('[1]', Buffer.alloc(8)), /the safetensors header is not a JSON object/],
    ['unsupported dtype', st({ w: { dtype: 'F8_E4M3', shape: [4], data_offsets: [0, 4] } }, Buffer.alloc(4)), /unsupported dtype 'F8_E4M3'/],
    ['size mismatch', st({ w: f32([2, 2], [0, 12]) }, Buffer.alloc(12)), /shape \[2, 2\] of F32 needs 16 bytes, data_offsets give 12/],
    ['absurd shape', st({ w: f32([2 ** 40, 2 ** 40], [0, 4]) }, Buffer.alloc(4)), /absurd shape/],
    ['negative dim', st('{"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}', Buffer.alloc(4)), /non-negative integers/],
    ['overlap', st({ a: f32([2], [0, 8]), b: f32([2], [4, 12]) }, Buffer.alloc(12)), /overlaps/],
    ['hole', st({ a: f32([1], [0, 4]), b: f32([1], [8, 12]) }, Buffer.alloc(12)), /bytes 4\.\.8 of the data belong to no tensor/],
    ['trailing bytes', st({ a: f32([1], [0, 4]) }, Buffer.alloc(12)), /8 bytes after the last tensor/],
    ['non-string metadata', st({ __metadata__: { epoch: 3 }, a: f32([1], [0, 4]) }, Buffer.alloc(4)), /__metadata__ value 'epoch' is not a string/],
    ['duplicate name', st('{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}', Buffer.alloc(4)), /names 'a' twice/],
    ['deep nesting', st(`{"a":${'['.repeat(5000)}${']'.repeat(5000)}}`, Buffer.alloc(0)), /nested too deeply/],
    ['too short', Buffer.from([5, 0, 0]), /not a checkpoint|too short/],
  ];
  for (const [what, data, message] of cases) {
    const p = path.join(tmp, `bad.safetensors`);
    fs.writeFileSync(p, data);
    await t.rejects(readCheckpoint(p), { code: 'BIA_CHECKPOINT_ERROR', message }, what);
    await t.rejects(readCheckpoint(p), { message: /bad\.safetensors/ }, `${what}: names the file`);
  }
  // A valid file is recognised by content, whatever its name; a truncated one is an error.
  const good = fs.readFileSync(fixture('python.safetensors'));
  const renamed = path.join(tmp, 'weights.bin');
  fs.writeFileSync(renamed, good);
  const ck = await readCheckpoint(renamed);
  t.equal(ck.format, 'safetensors');
  dispose(ck);
  fs.writeFileSync(renamed, good.subarray(0, good.length - 3));
  await t.rejects(readCheckpoint(renamed), { code: 'BIA_CHECKPOINT_ERROR', message: /lie outside|belong to no tensor/ });
});

t.test('argument checks (TS and native), abort, progress and ownership of the tensors', async (t) => {
  await t.rejects(readCheckpoint('' as string), { code: 'BIA_INVALID_ARGUMENT', message: /non-empty string/ });
  await t.rejects(readCheckpoint(42 as never), { code: 'BIA_INVALID_ARGUMENT' });
  await t.rejects(readCheckpoint('a\0b'), { code: 'BIA_INVALID_ARGUMENT', message: /NUL/ });
  await t.rejects(loadAddon().readCheckpoint(7 as never), { code: 'BIA_INVALID_ARGUMENT' });
  const x = await tensor(new Float32Array([1]), [1]);
  const file = path.join(tmp, 'args.safetensors');
  await t.rejects(saveSafetensors('', { x }), { code: 'BIA_INVALID_ARGUMENT' });
  await t.rejects(saveSafetensors(file, [x] as never), { code: 'BIA_INVALID_ARGUMENT', message: /Map<string, Tensor> or a plain object/ });
  await t.rejects(saveSafetensors(file, { x: new Float32Array(1) as never }), { code: 'BIA_INVALID_ARGUMENT', message: /tensors\['x'\] must be a Tensor/ });
  await t.rejects(saveSafetensors(file, new Map([[3 as never, x]])), { code: 'BIA_INVALID_ARGUMENT', message: /names must be non-empty strings/ });
  await t.rejects(saveSafetensors(file, { __metadata__: x }), { code: 'BIA_INVALID_ARGUMENT', message: /reserved/ });
  await t.rejects(saveSafetensors(file, { x }, { metadata: { epoch: 3 as never } }), { code: 'BIA_INVALID_ARGUMENT', message: /metadata\['epoch'\] must be a string/ });
  await t.rejects(saveSafetensors(file, { x }, { metadata: ['a'] as never }), { code: 'BIA_INVALID_ARGUMENT' });
  await t.rejects(loadAddon().writeSafetensors(file, [['x', {} as never]], undefined), { code: 'BIA_INVALID_ARGUMENT', message: /tensor 'x' must be a Tensor/ });
  await t.rejects(loadAddon().writeSafetensors(file, [['x', x.handle], ['x', x.handle]], undefined), { code: 'BIA_INVALID_ARGUMENT', message: /appears twice/ });
  t.notOk(fs.existsSync(file), 'nothing was written');
  const gone = await tensor(new Float32Array([1]), [1]);
  gone.dispose();
  await t.rejects(saveSafetensors(file, { gone }), { code: 'BIA_DISPOSED' });

  const ac = new AbortController();
  ac.abort();
  await t.rejects(readCheckpoint(fixture('module.zip.pt'), { signal: ac.signal }), { code: 'BIA_ABORTED' });
  const events: Array<{ step: number; total: number; stage: string }> = [];
  const ck = await readCheckpoint(fixture('module.zip.pt'), { onProgress: (ev) => events.push(ev) });
  t.ok(events.length >= 2, `${events.length} progress events`);
  const last = events[events.length - 1];
  t.equal(last.stage, 'read');
  t.equal(last.step, last.total, 'the last event is complete');
  t.ok(last.total > 0);
  // A throwing progress callback aborts the read and becomes its rejection.
  await t.rejects(readCheckpoint(fixture('module.zip.pt'), { onProgress: () => { throw new Error('stop'); } }), { message: 'stop' });

  // The caller owns the tensors: disposing them releases every one.
  dispose(ck);
  x.dispose();
  gc();
  await new Promise((r) => setImmediate(r)); // let finalizers of collected tensors run
  const before = liveTensors();
  const again = await readCheckpoint(fixture('dtypes.zip.pt'));
  t.equal(liveTensors(), before + again.tensors.size);
  dispose(again);
  t.equal(liveTensors(), before);
});

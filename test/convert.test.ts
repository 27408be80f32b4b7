// The ONNX importer (`bia convert`): ONNX MobileFaceNets → our safetensors, loaded into our
// MobileFaceNet and checked against onnxruntime and the Python reference. The tiny graphs are made by
// test/fixtures/identity/make_mobilefacenet.py (torch.onnx, batch norm folded / kept); the real
// faceplugin recognizer is checked when `npm run fetch:models` has put it in .cache/faceplugin/.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t, { type Test } from 'tap';
import { onnx } from 'onnx-proto';
import { convertOnnx, createIdentityEncoder, readCheckpoint, tensor, type IdentityEncoder, type Tensor } from '../ts/index';

/** The raw embedding (the network's output, not normalised). */
const fwd = (m: IdentityEncoder, x: Tensor) => m.embed(x, { protocol: 'insightface', normalize: false });
import { ROOT, runCli } from './helpers';

const DIR = path.join(ROOT, 'test', 'fixtures', 'identity');
const FOLDED = path.join(DIR, 'mfn-tiny-folded.onnx');
const WITH_BN = path.join(DIR, 'mfn-tiny-bn.onnx');
const FACEPLUGIN = process.env.BIA_FACEPLUGIN_ONNX ?? path.join(ROOT, '.cache', 'faceplugin', 'fr_feature.onnx');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'bia-convert-'));
t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }));

interface Ort {
  InferenceSession: { create(p: string): Promise<OrtSession> };
  Tensor: new (type: 'float32', data: Float32Array, dims: number[]) => unknown;
}
interface OrtSession {
  inputNames: readonly string[];
  outputNames: readonly string[];
  run(feeds: Record<string, unknown>): Promise<Record<string, { data: Float32Array; dims: readonly number[] }>>;
}

let ort: Ort | undefined;
let ortError = '';
try {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  ort = require('onnxruntime-node') as Ort;
} catch (e) {
  ortError = (e as Error).message.split('\n')[0];
}

const NO_ORT: string | false = ort ? false : `onnxruntime-node does not load: ${ortError}`;

/** onnxruntime's embeddings, one image at a time (the graphs have a fixed batch of 1). */
async function ortEmbed(file: string, x: Float32Array, batch: number): Promise<Float32Array> {
  const s = await ort!.InferenceSession.create(file);
  const n = x.length / batch;
  const parts: Float32Array[] = [];
  for (let b = 0; b < batch; b++) {
    const r = await s.run({ [s.inputNames[0]]: new ort!.Tensor('float32', x.slice(b * n, (b + 1) * n), [1, 3, 112, 112]) });
    parts.push(Float32Array.from(r[s.outputNames[0]].data));
  }
  const out = new Float32Array(parts.reduce((a, p) => a + p.length, 0));
  parts.forEach((p, i) => out.set(p, i * p.length));
  return out;
}

/** max |a − b| / max |b| per row of [B, E], the worst row. */
function rowRelErr(a: ArrayLike<number>, b: ArrayLike<number>, batch: number): number {
  const e = b.length / batch;
  let worst = 0;
  for (let r = 0; r < batch; r++) {
    let num = 0;
    let den = 0;
    for (let i = r * e; i < (r + 1) * e; i++) {
      num = Math.max(num, Math.abs(a[i] - b[i]));
      den = Math.max(den, Math.abs(b[i]));
    }
    worst = Math.max(worst, num / den);
  }
  return worst;
}

async function loadConverted(file: string): Promise<{ m: IdentityEncoder; tensors: Map<string, Tensor>; metadata: Record<string, string> }> {
  const ck = await readCheckpoint(file);
  const m = await createIdentityEncoder('mobilefacenet', { width: Number(ck.metadata.width), embeddingSize: Number(ck.metadata.embeddingSize) });
  await m.loadStateDict(ck.tensors);  // strict
  return { m, tensors: ck.tensors, metadata: ck.metadata };
}

async function fixture() {
  const E = await readCheckpoint(path.join(DIR, 'mfn-tiny-expected.safetensors'));
  const x = E.tensors.get('x')!;
  return { x, xs: (await x.data()) as Float32Array, want: (await E.tensors.get('embedding')!.data()) as Float32Array };
}

async function sameTensors(t: Test, a: Map<string, Tensor>, b: Map<string, Tensor>, skip: RegExp = /^$/) {
  t.same([...a.keys()].sort(), [...b.keys()].sort(), 'the same names');
  let differ = 0;
  for (const [k, v] of a) {
    if (skip.test(k)) continue;
    const w = b.get(k)!;
    const [p, q] = [await v.data(), await w.data()];
    if (v.shape.join() !== w.shape.join() || p.length !== q.length || p.some((e, i) => e !== q[i])) differ++;
  }
  t.equal(differ, 0, 'bit-identical values');
}

t.test('a folded tiny graph: convert, load strictly, agree with onnxruntime and the Python reference', async (t) => {
  const out = path.join(tmp, 'folded.safetensors');
  const r = await convertOnnx(FOLDED, out);
  t.match(r, { arch: 'mobilefacenet', width: 0.125, embeddingSize: 32, entries: 333, foldedBatchNorms: 49, outputNormalized: false });  // torch.onnx keeps the head's BatchNormalization
  t.equal(r.sha256, createHash('sha256').update(fs.readFileSync(FOLDED)).digest('hex'));
  t.match(r.input, { name: 'input', shape: [1, 3, 112, 112], layout: 'NCHW', colour: 'unknown' });
  t.same(r.mapping[0], { key: 'conv1', nodes: ['/Conv', '/PRelu'], folded: true });
  t.same(r.mapping.at(-1)?.nodes, ['/Flatten', '/MatMul', '/BatchNormalization'], 'the head: Flatten → MatMul → BatchNormalization');
  const { m, tensors, metadata } = await loadConverted(out);
  t.match(metadata, { arch: 'mobilefacenet', source: 'mfn-tiny-folded.onnx', sha256: r.sha256, outputNormalized: 'false' });
  t.same(JSON.parse(metadata.input), r.input);
  // the unfolded batch norms compute y·1 + b exactly in float32
  const v = (await tensors.get('conv_3.model.2.conv_dw.bn.running_var')!.data())[0];
  t.equal(v, Math.fround(1 - Math.fround(1e-5)));
  t.equal(Math.fround(v + Math.fround(1e-5)), 1, 'fl32(var + eps) = 1');
  t.same(Array.from(await tensors.get('conv1.bn.running_mean')!.data()), new Array(8).fill(0));
  t.same(Array.from(await tensors.get('conv1.bn.weight')!.data()), new Array(8).fill(1));

  const { x, xs, want } = await fixture();
  const ours = (await (await fwd(m, x)).data()) as Float32Array;
  const ref = rowRelErr(ours, want, 2);
  t.comment(`tiny folded graph: max relative error against the Python reference ${ref.toExponential(2)}`);
  t.ok(ref < 1e-5, `against the Python reference: ${ref.toExponential(2)} < 1e-5`);
  await t.test('against onnxruntime', { skip: NO_ORT }, async (t) => {
    const theirs = await ortEmbed(FOLDED, xs, 2);
    const e = rowRelErr(ours, theirs, 2);
    t.comment(`tiny folded graph: max relative error against onnxruntime ${e.toExponential(2)}`);
    t.ok(e < 1e-5, `against onnxruntime: ${e.toExponential(2)} < 1e-5`);
  });
});

t.test('a graph with BatchNormalization nodes: the real batch norms are carried over exactly', async (t) => {
  const out = path.join(tmp, 'bn.safetensors');
  const r = await convertOnnx(WITH_BN, out);
  t.equal(r.foldedBatchNorms, 0);
  t.same(r.mapping[0].nodes, ['/Conv', '/BatchNormalization', '/PRelu']);
  const { m, tensors } = await loadConverted(out);
  const weights = (await readCheckpoint(path.join(DIR, 'mfn-tiny-weights.safetensors'))).tensors;
  await sameTensors(t, tensors, weights, /num_batches_tracked/);  // the reference's own weights, bit for bit
  const { x, xs, want } = await fixture();
  const ours = (await (await fwd(m, x)).data()) as Float32Array;
  t.ok(rowRelErr(ours, want, 2) < 1e-5, 'against the Python reference');
  if (ort) t.ok(rowRelErr(ours, await ortEmbed(WITH_BN, xs, 2), 2) < 1e-5, 'against onnxruntime');
  else t.comment(NO_ORT);
});

/** Rewrite a graph and save it next to the others. */
function rewrite(src: string, name: string, edit: (m: onnx.ModelProto) => void): string {
  const model = onnx.ModelProto.decode(fs.readFileSync(src));
  edit(model);
  const file = path.join(tmp, name);
  fs.writeFileSync(file, onnx.ModelProto.encode(model).finish());
  return file;
}

function floats(tp: onnx.ITensorProto): number[] {
  const raw = tp.rawData!;
  const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  return Array.from({ length: raw.byteLength / 4 }, (_, i) => dv.getFloat32(4 * i, true));
}

t.test('weights in Constant nodes and in float_data convert the same', async (t) => {
  const ref = path.join(tmp, 'ref.safetensors');
  await convertOnnx(FOLDED, ref);
  const file = rewrite(FOLDED, 'constants.onnx', (m) => {
    const g = m.graph!;
    const consts = g.initializer!.map((init) =>
      onnx.NodeProto.create({
        opType: 'Constant',
        output: [init.name!],
        attribute: [{ name: 'value', type: onnx.AttributeProto.AttributeType.TENSOR, t: init.dataType === 1 ? { dims: init.dims, dataType: 1, floatData: floats(init) } : init }],
      }));
    g.initializer = [];
    g.node = [...consts, ...g.node!];
  });
  const out = path.join(tmp, 'constants.safetensors');
  await convertOnnx(file, out);
  await sameTensors(t, (await readCheckpoint(out)).tensors, (await readCheckpoint(ref)).tensors);
});

t.test('errors', async (t) => {
  const out = path.join(tmp, 'never.safetensors');
  await t.rejects(convertOnnx(path.join(DIR, 'mfn-tiny-weights.safetensors'), out), { code: 'BIA_CHECKPOINT_ERROR', message: /is not an ONNX model/ });
  const empty = path.join(tmp, 'empty.onnx');
  fs.writeFileSync(empty, '');
  await t.rejects(convertOnnx(empty, out), { code: 'BIA_CHECKPOINT_ERROR', message: /not an ONNX model \(no graph\)/ });
  await t.rejects(convertOnnx(path.join(tmp, 'missing.onnx'), out), { code: 'BIA_IO_ERROR' });
  await t.rejects(convertOnnx(FOLDED, out, { arch: 'iresnet50' as 'mobilefacenet' }), { code: 'BIA_INVALID_ARGUMENT' });
  // preprocessing inside the graph
  const pre = rewrite(FOLDED, 'pre.onnx', (m) => {
    const g = m.graph!;
    g.initializer!.push({ name: 'scale', dims: [], dataType: 1, floatData: [0.5] });
    g.node!.find((n) => n.input![0] === 'input')!.input![0] = 'scaled';
    g.node!.unshift(onnx.NodeProto.create({ opType: 'Mul', input: ['input', 'scale'], output: ['scaled'], name: 'pre' }));
  });
  await t.rejects(convertOnnx(pre, out), { code: 'BIA_CHECKPOINT_ERROR', message: /input feeds Mul: preprocessing inside the graph/ });
  // a stride that is not MobileFaceNet's
  const stride = rewrite(FOLDED, 'stride.onnx', (m) => {
    const n = m.graph!.node!.find((x) => x.name === '/Conv_3')!;  // conv_23.conv_dw, stride 2
    n.attribute!.find((a) => a.name === 'strides')!.ints = [1, 1];
  });
  await t.rejects(convertOnnx(stride, out), { code: 'BIA_CHECKPOINT_ERROR', message: /\/Conv_3 \(conv_23\.conv_dw\): strides \[1,1\], expected 2/ });
  // an extra activation
  const relu = rewrite(FOLDED, 'relu.onnx', (m) => {
    const g = m.graph!;
    const n = g.node!.find((x) => x.name === '/Conv_4')!;  // conv_23.project
    const i = g.node!.indexOf(n);
    const orig = n.output![0];
    n.output![0] = 'pre_relu';
    g.node!.splice(i + 1, 0, onnx.NodeProto.create({ opType: 'Relu', input: ['pre_relu'], output: [orig], name: 'extra' }));
  });
  await t.rejects(convertOnnx(relu, out), { code: 'BIA_CHECKPOINT_ERROR', message: /unsupported ONNX graph: expected Conv after the input of conv_3\.model\.0\.conv, found extra \(Relu\)/ });
  t.notOk(fs.existsSync(out), 'nothing was written');
});

t.test('bia convert', async (t) => {
  const out = path.join(tmp, 'cli.safetensors');
  const r = runCli(['convert', FOLDED, out, '--map']);
  t.equal(r.status, 0, r.stderr);
  t.match(r.stdout, /mobilefacenet \(width 0\.125, 32-d embedding\): 333 tensors/);
  t.match(r.stdout, /conv_3\.model\.0 \(shortcut\)\s+← \/Add\n/);
  t.ok(fs.existsSync(out));
  const j = runCli(['convert', FOLDED, out, '--json', '--source', 'test']);
  t.equal(JSON.parse(j.stdout).metadata.source, 'test');
  const bad = runCli(['convert', path.join(DIR, 'make_mobilefacenet.py'), out]);
  t.equal(bad.status, 3, 'a file that is not ONNX is an input error');
  t.match(bad.stderr, /is not an ONNX model .*\[BIA_CHECKPOINT_ERROR\]/);
  t.equal(runCli(['convert', FOLDED]).status, 2, 'one path: usage error');
  t.equal(runCli(['convert', FOLDED, out, '--arch', 'iresnet50']).status, 2, 'unknown arch: usage error');
  t.equal(runCli(['convert', FOLDED, out, '--bogus']).status, 2, 'unknown option: usage error');
});

t.test('the faceplugin MobileFaceNet (fr_feature.onnx) against onnxruntime', { skip: fs.existsSync(FACEPLUGIN) ? false : `${FACEPLUGIN} is absent (npm run fetch:models)` }, async (t) => {
  const out = path.join(tmp, 'faceplugin.safetensors');
  const r = await convertOnnx(FACEPLUGIN, out);
  t.match(r, { width: 1, embeddingSize: 512, entries: 333, onnxValues: 1_190_336, foldedBatchNorms: 50, outputNormalized: false });
  t.match(r.input, { name: 'input', shape: [1, 3, 112, 112], layout: 'NCHW', colour: 'RGB', normalise: '(x - 127) / 128' });
  t.same(r.mapping.at(-1), { key: 'linear + bn', nodes: ['Conv_94', 'Reshape_95'], folded: true }, 'the head is a 1×1 Conv with the batch norm folded in');
  const { m } = await loadConverted(out);
  await t.test('random inputs', { skip: NO_ORT }, async (t) => {
  // random 8-bit RGB pixels in the model's own protocol, (x − 127) / 128, NCHW
  const B = 4;
  const xs = new Float32Array(B * 3 * 112 * 112);
  let seed = 12345;
  for (let i = 0; i < xs.length; i++) {
    seed = (seed * 1103515245 + 12345) >>> 0;
    xs[i] = ((seed >>> 16) % 256 - 127) / 128;
  }
  const ours = (await (await fwd(m, await tensor(xs, [B, 3, 112, 112]))).data()) as Float32Array;
  const theirs = await ortEmbed(FACEPLUGIN, xs, B);
  const e = rowRelErr(ours, theirs, B);
  let maxAbs = 0;
  for (let i = 0; i < ours.length; i++) maxAbs = Math.max(maxAbs, Math.abs(ours[i] - theirs[i]));
  t.comment(`faceplugin fr_feature.onnx: max relative error against onnxruntime ${e.toExponential(2)} (max abs ${maxAbs.toExponential(2)}), ${B} images`);
  t.ok(e < 1e-5, `raw embeddings agree: ${e.toExponential(2)} < 1e-5`);
  });
});

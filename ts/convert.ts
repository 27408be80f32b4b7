/**
 * `bia convert`: an ONNX MobileFaceNet → our safetensors under TreB1eN's state_dict names.
 *
 * The ONNX ModelProto is read with onnx-proto (the ONNX definitions on protobufjs). Weights come from
 * the graph's initializers and Constant nodes (raw_data, float_data, double_data, or float16 bits).
 * The converter walks the nodes from the graph input in TreB1eN's layer order and maps every Conv,
 * BatchNormalization, PRelu, Add (the residual shortcuts) and the head (a 1×1 Conv, or a Gemm /
 * MatMul after a Flatten / Reshape) to our key names, checking kernel, stride, padding, groups and the
 * channel chain on the way; anything else is an unsupported graph.
 *
 * Batch norm folded into a convolution (W' = W·γ/σ, b' = β − μ·γ/σ) is unfolded exactly: the conv
 * keeps W', and the batch norm gets running_mean 0, running_var = fl32(1 − ε), weight 1, bias b'.
 * In float32, fl32(fl32(1 − ε) + ε) = 1, so 1/√(var + ε) = 1 exactly and the batch norm computes
 * y·1 + b': the same function as the folded convolution, on the unchanged architecture.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { onnx } from 'onnx-proto';
import { saveSafetensors } from './checkpoint';
import { BiaError, invalidArgument } from './errors';
import { MAX_RANK } from './options';
import { tensor, type Tensor } from './tensor';
import { sha256 as sha256Hex } from './util/hash';
import { VERSION } from './version';

export type ConvertArch = 'mobilefacenet';
export const CONVERT_ARCHS: readonly ConvertArch[] = ['mobilefacenet'];

export interface ConvertOptions {
  /** The architecture the graph must be (default and only choice: 'mobilefacenet'). */
  arch?: ConvertArch;
  /** Where the ONNX file came from, stored as metadata `source` (default: a known origin, else the file name). */
  source?: string;
}

/** What a converted network expects as input. */
export interface InputProtocol {
  /** The graph input's name and shape as declared (symbolic dimensions as strings). */
  name: string;
  shape: Array<number | string>;
  layout: 'NCHW';
  dtype: 'float32';
  /** Colour order: known for recognised files only. */
  colour: 'RGB' | 'BGR' | 'unknown';
  /** How 8-bit pixels x become the input, e.g. '(x - 127) / 128'; 'unknown' if not recognised. */
  normalise: string;
  /** Where the colour order and normalisation come from. */
  evidence: string;
}

export interface ConvertMapping {
  /** Our module (e.g. 'conv_3.model.0.conv_dw'). */
  key: string;
  /** The ONNX nodes it came from, in graph order. */
  nodes: string[];
  /** true when its batch norm was folded into the convolution (or the head's Gemm / Conv bias). */
  folded: boolean;
}

export interface ConvertResult {
  arch: ConvertArch;
  width: number;
  embeddingSize: number;
  /** Tensors written (parameters and batch-norm buffers). */
  entries: number;
  /** Values in the ONNX initializers used. */
  onnxValues: number;
  sha256: string;
  input: InputProtocol;
  /** Whether the graph L2-normalises its output (the converted network never does). */
  outputNormalized: boolean;
  foldedBatchNorms: number;
  mapping: ConvertMapping[];
  metadata: Record<string, string>;
}

/** Files whose input protocol is known from their own code. */
const KNOWN: Record<string, { source: string; colour: 'RGB' | 'BGR'; normalise: string; evidence: string }> = {
  '87aacdfe57510db2af90c0251df680e8eec88f122ee94712121d09bcaaaf3581': {
    source: 'npm:faceplugin-face-recognition-js@0.0.1/model/fr_feature.onnx',
    colour: 'RGB',
    normalise: '(x - 127) / 128',
    evidence: 'faceplugin-face-recognition-js lib/fr_feature.js: cv.imread RGBA pixels, channels 0..2, (p - 127) / 128, NCHW [1,3,112,112]',
  },
};

const EPS = 1e-5;  // TreB1eN's BatchNorm eps (PyTorch's default)

function unsupported(message: string): BiaError {
  return new BiaError('BIA_CHECKPOINT_ERROR', `unsupported ONNX graph: ${message}`);
}

function num(v: number | { toString(): string } | null | undefined): number {
  return typeof v === 'number' ? v : v == null ? 0 : Number(v.toString());
}

interface Dense {
  dims: number[];
  data: Float32Array;
}

const DT = { FLOAT: 1, INT64: 7, FLOAT16: 10, DOUBLE: 11 } as const;

function half(bits: number): number {
  const s = bits & 0x8000 ? -1 : 1;
  const e = (bits >> 10) & 0x1f;
  const f = bits & 0x3ff;
  if (e === 0) return s * f * 2 ** -24;
  if (e === 31) return f ? Number.NaN : s * Infinity;
  return s * (1 + f / 1024) * 2 ** (e - 15);
}

/** A TensorProto's values as float32 (FLOAT, DOUBLE, FLOAT16, INT64). */
function decodeTensor(t: onnx.ITensorProto, what: string): Dense {
  const dims = (t.dims ?? []).map(num);
  if (dims.length > MAX_RANK) throw new BiaError('BIA_CHECKPOINT_ERROR', `ONNX tensor ${what} has ${dims.length} dimensions (at most ${MAX_RANK})`);
  const n = dims.reduce((a, b) => a * b, 1);
  if (t.dataLocation === 1 /* EXTERNAL */) throw unsupported(`${what} keeps its data in an external file`);
  const raw = t.rawData && t.rawData.length > 0 ? t.rawData : undefined;
  const out = new Float32Array(n);
  const view = raw ? new DataView(raw.buffer, raw.byteOffset, raw.byteLength) : undefined;
  const want = (bytes: number, listed: number) => {
    if (view ? view.byteLength !== n * bytes : listed !== n) {
      throw new BiaError('BIA_CHECKPOINT_ERROR', `ONNX tensor ${what} has ${view ? `${view.byteLength} bytes` : `${listed} values`} for shape [${dims}]`);
    }
  };
  switch (t.dataType) {
    case DT.FLOAT:
      want(4, t.floatData?.length ?? 0);
      for (let i = 0; i < n; i++) out[i] = view ? view.getFloat32(4 * i, true) : t.floatData![i];
      break;
    case DT.DOUBLE:
      want(8, t.doubleData?.length ?? 0);
      for (let i = 0; i < n; i++) out[i] = view ? view.getFloat64(8 * i, true) : t.doubleData![i];
      break;
    case DT.FLOAT16:
      want(2, t.int32Data?.length ?? 0);
      for (let i = 0; i < n; i++) out[i] = half(view ? view.getUint16(2 * i, true) : t.int32Data![i]);
      break;
    case DT.INT64:
      want(8, t.int64Data?.length ?? 0);
      for (let i = 0; i < n; i++) out[i] = view ? Number(view.getBigInt64(8 * i, true)) : num(t.int64Data![i]);
      break;
    default:
      throw unsupported(`${what} has ONNX data type ${t.dataType} (float, double, float16 and int64 are supported)`);
  }
  return { dims, data: out };
}

type Node = onnx.INodeProto;

function attr(n: Node, name: string): onnx.IAttributeProto | undefined {
  return (n.attribute ?? []).find((a) => a.name === name);
}
function attrInts(n: Node, name: string, fallback: number[]): number[] {
  const a = attr(n, name);
  return a ? (a.ints ?? []).map(num) : fallback;
}
function attrInt(n: Node, name: string, fallback: number): number {
  const a = attr(n, name);
  return a ? num(a.i) : fallback;
}
function attrFloat(n: Node, name: string, fallback: number): number {
  const a = attr(n, name);
  return a ? (a.f ?? 0) : fallback;
}
function nodeName(n: Node): string {
  return n.name || `${n.opType}(${(n.output ?? []).join(',')})`;
}

/** Ops that only change a tensor's shape, never its values or their order. */
const SHAPE_ONLY = new Set(['Flatten', 'Reshape', 'Squeeze', 'Unsqueeze', 'Identity']);
/** Ops that compute a Reshape's target shape (dead code for the values). */
const SHAPE_CALC = new Set(['Constant', 'Shape', 'Gather', 'Unsqueeze', 'Concat', 'Slice', 'Cast', 'Squeeze', 'ConstantOfShape']);
/** Ops an L2 normalisation of the output is built from. */
const NORM_OPS = new Set(['LpNormalization', 'ReduceL2', 'ReduceSum', 'Pow', 'Sqrt', 'Div', 'Clip', 'Max', 'Add', 'Expand', 'Mul', 'Reciprocal', ...SHAPE_ONLY]);

class GraphWalk {
  readonly consts = new Map<string, onnx.ITensorProto>();
  readonly consumers = new Map<string, Node[]>();
  readonly used = new Set<Node>();
  readonly usedConsts = new Set<string>();
  readonly entries = new Map<string, { dims: number[]; data: Float32Array | 'counter' }>();
  readonly mapping: ConvertMapping[] = [];
  folded = 0;
  onnxValues = 0;

  constructor(readonly graph: onnx.IGraphProto) {
    for (const t of graph.initializer ?? []) if (t.name) this.consts.set(t.name, t);
    for (const n of graph.node ?? []) {
      if (n.opType === 'Constant' && n.output?.length === 1) {
        const v = attr(n, 'value');
        const vf = attr(n, 'value_float');
        const vfs = attr(n, 'value_floats');
        if (v?.t) this.consts.set(n.output[0], v.t);
        else if (vf) this.consts.set(n.output[0], { dims: [], dataType: DT.FLOAT, floatData: [vf.f ?? 0] });
        else if (vfs) this.consts.set(n.output[0], { dims: [(vfs.floats ?? []).length], dataType: DT.FLOAT, floatData: vfs.floats ?? [] });
        if (this.consts.has(n.output[0])) this.used.add(n);
        continue;
      }
      for (const i of n.input ?? []) {
        if (!i) continue;
        const list = this.consumers.get(i) ?? [];
        list.push(n);
        this.consumers.set(i, list);
      }
    }
  }

  const(name: string | undefined, what: string): Dense {
    const t = name ? this.consts.get(name) : undefined;
    if (!t) throw unsupported(`${what} ('${name}') is not a constant: weights must be initializers or Constant nodes`);
    const d = decodeTensor(t, name!);
    if (!this.usedConsts.has(name!)) {
      this.usedConsts.add(name!);
      this.onnxValues += d.data.length;
    }
    return d;
  }

  /** The one node of the given ops that reads `tensor` (others may read it too). */
  consumer(tensorName: string, ops: string[], after: string): Node {
    // the tensor must be the data operand (input 0), except for Add, whose operands are symmetric
    const found = (this.consumers.get(tensorName) ?? []).filter(
      (n) => ops.includes(n.opType ?? '') && !this.used.has(n) && (n.opType === 'Add' || n.input?.[0] === tensorName),
    );
    if (found.length !== 1) {
      const seen = (this.consumers.get(tensorName) ?? []).map((n) => `${nodeName(n)} (${n.opType})`).join(', ') || 'nothing';
      throw unsupported(`expected ${ops.join(' or ')} after ${after}, found ${seen}`);
    }
    return found[0];
  }

  /** The only reader of `tensorName`, if there is exactly one. */
  only(tensorName: string): Node | undefined {
    const list = this.consumers.get(tensorName) ?? [];
    return list.length === 1 ? list[0] : undefined;
  }

  take(n: Node): string {
    this.used.add(n);
    return n.output![0];
  }

  /** Follow shape-only nodes from `t`; returns the last tensor and the nodes passed. */
  skipShapeOnly(t: string, passed: string[]): string {
    for (let n = this.only(t); n && SHAPE_ONLY.has(n.opType ?? ''); n = this.only(t)) {
      passed.push(nodeName(n));
      t = this.take(n);
    }
    return t;
  }

  /** A real BatchNormalization node's parameters, with a preceding bias folded into its mean. */
  realBatchNorm(n: Node, channels: number, key: string, bias: Float32Array | undefined): void {
    if (attrInt(n, 'spatial', 1) !== 1) throw unsupported(`${nodeName(n)}: BatchNormalization with spatial=0`);
    if ((n.output ?? []).filter(Boolean).length !== 1) throw unsupported(`${nodeName(n)}: BatchNormalization in training mode`);
    const [gamma, beta, mean, variance] = [1, 2, 3, 4].map((i) => this.const(n.input?.[i], `${nodeName(n)} input ${i}`));
    for (const p of [gamma, beta, mean, variance]) if (p.data.length !== channels) throw unsupported(`${nodeName(n)} has ${p.data.length} channels, expected ${channels}`);
    const eps = attrFloat(n, 'epsilon', EPS);
    const mu = new Float32Array(mean.data);
    if (bias) for (let c = 0; c < channels; c++) mu[c] -= bias[c];
    const v = new Float32Array(variance.data);
    if (Math.fround(eps) !== Math.fround(EPS)) for (let c = 0; c < channels; c++) v[c] = variance.data[c] + eps - EPS;
    this.setBatchNorm(key, gamma.data, beta.data, mu, v);
  }

  /** The exact unfolded form of a folded bias b: mean 0, var fl32(1 − ε), weight 1, bias b. */
  unitBatchNorm(key: string, channels: number, bias: Float32Array | undefined): void {
    const v = Math.fround(1 - Math.fround(EPS));
    if (Math.fround(v + Math.fround(EPS)) !== 1) throw new Error('float32 rounding assumption failed');
    this.setBatchNorm(key, new Float32Array(channels).fill(1), bias ?? new Float32Array(channels), new Float32Array(channels), new Float32Array(channels).fill(v));
    this.folded++;
  }

  setBatchNorm(key: string, gamma: Float32Array, beta: Float32Array, mean: Float32Array, variance: Float32Array): void {
    const c = gamma.length;
    this.entries.set(`${key}.weight`, { dims: [c], data: gamma });
    this.entries.set(`${key}.bias`, { dims: [c], data: beta });
    this.entries.set(`${key}.running_mean`, { dims: [c], data: mean });
    this.entries.set(`${key}.running_var`, { dims: [c], data: variance });
    this.entries.set(`${key}.num_batches_tracked`, { dims: [], data: 'counter' });
  }

  /**
   * Conv_block / Linear_block `key` reading `input` with `cin` channels: Conv (+ BatchNormalization
   * unless folded) (+ PRelu). Returns the output tensor and its channel count.
   */
  convBlock(key: string, input: string, cin: number, s: { kernel: number; stride: number; pad: number; depthwise: boolean; prelu: boolean }): { out: string; cout: number } {
    const conv = this.consumer(input, ['Conv'], key === 'conv1' ? 'the graph input' : `the input of ${key}`);
    const nodes = [nodeName(conv)];
    const w = this.const(conv.input?.[1], `${nodeName(conv)} weight`);
    const [cout, cinPerGroup, kh, kw] = w.dims;
    const group = attrInt(conv, 'group', 1);
    const want = (ok: boolean, what: string) => {
      if (!ok) throw unsupported(`${nodeName(conv)} (${key}): ${what}`);
    };
    want(w.dims.length === 4, `weight shape [${w.dims}] is not 4-d`);
    want(kh === s.kernel && kw === s.kernel, `kernel ${kh}×${kw}, expected ${s.kernel}×${s.kernel}`);
    want(attrInts(conv, 'strides', [1, 1]).every((v) => v === s.stride), `strides [${attrInts(conv, 'strides', [1, 1])}], expected ${s.stride}`);
    want(attrInts(conv, 'pads', [0, 0, 0, 0]).every((v) => v === s.pad), `pads [${attrInts(conv, 'pads', [0, 0, 0, 0])}], expected ${s.pad}`);
    want(attrInts(conv, 'dilations', [1, 1]).every((v) => v === 1), 'dilated convolution');
    const autoPad = attr(conv, 'auto_pad');
    want(!autoPad || ['NOTSET', ''].includes(Buffer.from(autoPad.s ?? []).toString()), 'auto_pad is set');
    want(cinPerGroup * group === cin, `reads ${cinPerGroup * group} channels, the previous layer gives ${cin}`);
    want(s.depthwise ? group === cin && cout === cin : group === 1, s.depthwise ? `expected a depthwise convolution over ${cin} channels (group ${group})` : `group ${group}, expected 1`);
    this.entries.set(`${key}.conv.weight`, { dims: w.dims, data: w.data });
    const bias = conv.input?.[2] ? this.const(conv.input[2], `${nodeName(conv)} bias`).data : undefined;
    if (bias && bias.length !== cout) throw unsupported(`${nodeName(conv)}: bias of ${bias.length} for ${cout} channels`);
    let out = this.take(conv);
    const next = this.only(out);
    let folded = true;
    if (next?.opType === 'BatchNormalization') {
      this.realBatchNorm(next, cout, `${key}.bn`, bias);
      nodes.push(nodeName(next));
      out = this.take(next);
      folded = false;
    } else {
      this.unitBatchNorm(`${key}.bn`, cout, bias);
    }
    if (s.prelu) {
      const p = this.consumer(out, ['PRelu'], nodeName(conv));
      const slope = this.const(p.input?.[1], `${nodeName(p)} slope`);
      if (slope.data.length !== cout && slope.data.length !== 1) throw unsupported(`${nodeName(p)} has ${slope.data.length} slopes for ${cout} channels`);
      this.entries.set(`${key}.prelu.weight`, { dims: [cout], data: slope.data.length === cout ? slope.data : new Float32Array(cout).fill(slope.data[0]) });
      nodes.push(nodeName(p));
      out = this.take(p);
    }
    this.mapping.push({ key, nodes, folded });
    return { out, cout };
  }

  /** Depth_Wise `key`: 1×1 expand, 3×3 depthwise, 1×1 project (+ the input, via Add, when residual). */
  depthWise(key: string, input: string, cin: number, stride: number, residual: boolean): { out: string; mid: number; cout: number } {
    const a = this.convBlock(`${key}.conv`, input, cin, { kernel: 1, stride: 1, pad: 0, depthwise: false, prelu: true });
    const b = this.convBlock(`${key}.conv_dw`, a.out, a.cout, { kernel: 3, stride, pad: 1, depthwise: true, prelu: true });
    const c = this.convBlock(`${key}.project`, b.out, b.cout, { kernel: 1, stride: 1, pad: 0, depthwise: false, prelu: false });
    if (!residual) return { out: c.out, mid: a.cout, cout: c.cout };
    const add = this.consumer(c.out, ['Add'], `${key}.project`);
    const ins = add.input ?? [];
    if (ins.length !== 2 || !ins.includes(input) || !ins.includes(c.out) || c.cout !== cin) {
      throw unsupported(`${nodeName(add)} is not ${key}'s shortcut (input + project)`);
    }
    this.mapping.push({ key: `${key} (shortcut)`, nodes: [nodeName(add)], folded: false });
    return { out: this.take(add), mid: a.cout, cout: c.cout };
  }

  /** The head after conv_6_dw ([B, C, 1, 1]): linear (no bias) + bn, as a 1×1 Conv or Flatten → Gemm / MatMul. */
  head(input: string, channels: number): { out: string; embedding: number } {
    const nodes: string[] = [];
    let t = this.skipShapeOnly(input, nodes);
    const n = this.consumer(t, ['Conv', 'Gemm', 'MatMul'], 'conv_6_dw');
    nodes.push(nodeName(n));
    const w = this.const(n.input?.[1], `${nodeName(n)} weight`);
    let weight: Float32Array;
    let e: number;
    if (n.opType === 'Conv') {
      if (w.dims.length !== 4 || w.dims[1] !== channels || w.dims[2] !== 1 || w.dims[3] !== 1 || attrInt(n, 'group', 1) !== 1) {
        throw unsupported(`${nodeName(n)}: the head convolution has weight [${w.dims}], expected [E, ${channels}, 1, 1]`);
      }
      if (!attrInts(n, 'pads', [0, 0, 0, 0]).every((v) => v === 0)) throw unsupported(`${nodeName(n)}: the head convolution is padded`);
      e = w.dims[0];
      weight = w.data;
    } else {
      const transB = n.opType === 'Gemm' ? attrInt(n, 'transB', 0) : 0;
      if (n.opType === 'Gemm' && (attrInt(n, 'transA', 0) !== 0 || attrFloat(n, 'alpha', 1) !== 1 || attrFloat(n, 'beta', 1) !== 1)) {
        throw unsupported(`${nodeName(n)}: Gemm with transA, alpha or beta`);
      }
      if (w.dims.length !== 2 || w.dims[transB ? 1 : 0] !== channels) throw unsupported(`${nodeName(n)}: weight [${w.dims}] does not read ${channels} features`);
      e = w.dims[transB ? 0 : 1];
      weight = transB ? w.data : transpose(w.data, channels, e);
    }
    this.entries.set('linear.weight', { dims: [e, channels], data: weight });
    let bias = n.input?.[2] ? this.const(n.input[2], `${nodeName(n)} bias`).data : undefined;
    if (bias && bias.length !== e) throw unsupported(`${nodeName(n)}: bias of ${bias.length} for ${e} outputs`);
    t = this.take(n);
    t = this.skipShapeOnly(t, nodes);
    // a separate bias: Add of a constant
    const add = this.only(t);
    if (!bias && add?.opType === 'Add') {
      const other = (add.input ?? []).find((i) => i !== t);
      if (other && this.consts.has(other)) {
        const b = this.const(other, `${nodeName(add)} bias`);
        if (b.data.length === e) {
          bias = b.data;
          nodes.push(nodeName(add));
          t = this.skipShapeOnly(this.take(add), nodes);
        }
      }
    }
    const bn = this.only(t);
    if (bn?.opType === 'BatchNormalization') {
      this.realBatchNorm(bn, e, 'bn', bias);
      nodes.push(nodeName(bn));
      t = this.skipShapeOnly(this.take(bn), nodes);
    } else {
      this.unitBatchNorm('bn', e, bias);
    }
    this.mapping.push({ key: 'linear + bn', nodes, folded: bn?.opType !== 'BatchNormalization' });
    return { out: t, embedding: e };
  }
}

function transpose(a: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(a.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = a[r * cols + c];
  return out;
}

/** The width whose rounded channel counts are the four found (64, 128, 256, 512 at width 1). */
function findWidth(c: [number, number, number, number]): number | undefined {
  const base = [64, 128, 256, 512];
  const fits = (w: number) => base.every((b, i) => Math.max(1, Math.round(b * w)) === c[i]);
  return base.map((b, i) => c[i] / b).find(fits);
}

function decodeModel(bytes: Uint8Array, file: string): onnx.ModelProto {
  // loaded on first use: the ONNX definitions take ~40 ms to load
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const proto = (require('onnx-proto') as typeof import('onnx-proto')).onnx;
  let m: onnx.ModelProto;
  try {
    m = proto.ModelProto.decode(bytes);
  } catch (e) {
    throw new BiaError('BIA_CHECKPOINT_ERROR', `${file} is not an ONNX model (${(e as Error).message})`);
  }
  if (!m.graph || (m.graph.node ?? []).length === 0 || num(m.irVersion) < 1) {
    throw new BiaError('BIA_CHECKPOINT_ERROR', `${file} is not an ONNX model (no graph)`);
  }
  return m;
}

/** Read and map an ONNX MobileFaceNet; returns the tensors (in state_dict order) and the report. */
export async function readOnnxMobileFaceNet(onnxPath: string, opts: ConvertOptions = {}): Promise<{ entries: Map<string, { dims: number[]; data: Float32Array | 'counter' }>; result: ConvertResult }> {
  if (typeof onnxPath !== 'string' || onnxPath.length === 0) throw invalidArgument('the ONNX path must be a non-empty string');
  if (opts.arch !== undefined && !CONVERT_ARCHS.includes(opts.arch)) {
    throw invalidArgument(`arch must be one of ${CONVERT_ARCHS.join(', ')}, got ${JSON.stringify(opts.arch)}`);
  }
  let bytes: Buffer;
  try {
    bytes = await readFile(onnxPath);
  } catch (e) {
    throw new BiaError('BIA_IO_ERROR', `cannot read ${onnxPath}: ${(e as Error).message}`, { cause: e });
  }
  const sha256 = sha256Hex(bytes);
  const model = decodeModel(bytes, onnxPath);
  const g = new GraphWalk(model.graph!);

  // the one data input (older files list the initializers among the inputs too)
  const inputs = (model.graph!.input ?? []).filter((i) => !g.consts.has(i.name ?? ''));
  if (inputs.length !== 1) throw unsupported(`expected one input, found ${inputs.length} (${inputs.map((i) => i.name).join(', ')})`);
  const input = inputs[0];
  const shape = (input.type?.tensorType?.shape?.dim ?? []).map((d) => (d.dimParam ? d.dimParam : num(d.dimValue)));
  const elemType = input.type?.tensorType?.elemType;
  if (elemType !== DT.FLOAT) throw unsupported(`the input '${input.name}' has ONNX type ${elemType}, expected float32`);
  if (shape.length !== 4 || shape[1] !== 3 || shape[2] !== 112 || shape[3] !== 112) {
    const first = (g.consumers.get(input.name ?? '') ?? []).map((n) => n.opType).join(', ');
    throw unsupported(`the input '${input.name}' is [${shape}], expected NCHW [N, 3, 112, 112] (it feeds ${first || 'nothing'})`);
  }
  const readers = (g.consumers.get(input.name!) ?? []).map((n) => n.opType);
  if (readers.length !== 1 || readers[0] !== 'Conv') {
    throw unsupported(`the input feeds ${readers.join(', ') || 'nothing'}: preprocessing inside the graph (Sub / Mul / Transpose …) is not supported; the first node must be conv1's Conv`);
  }

  // the body, in TreB1eN's order
  let cur = g.convBlock('conv1', input.name!, 3, { kernel: 3, stride: 2, pad: 1, depthwise: false, prelu: true });
  const c64 = cur.cout;
  cur = g.convBlock('conv2_dw', cur.out, c64, { kernel: 3, stride: 1, pad: 1, depthwise: true, prelu: true });
  const stage = (name: string, blocks: number, x: { out: string; cout: number }, mid: number) => {
    for (let i = 0; i < blocks; i++) {
      const r = g.depthWise(`${name}.model.${i}`, x.out, x.cout, 1, true);
      if (r.mid !== mid) throw unsupported(`${name}.model.${i} expands to ${r.mid} channels, expected ${mid}`);
      x = r;
    }
    return x;
  };
  const d23 = g.depthWise('conv_23', cur.out, c64, 2, false);
  if (d23.cout !== c64) throw unsupported(`conv_23 gives ${d23.cout} channels, expected ${c64}`);
  const c128 = d23.mid;
  cur = stage('conv_3', 4, d23, c128);
  const d34 = g.depthWise('conv_34', cur.out, c64, 2, false);
  if (d34.cout !== c128) throw unsupported(`conv_34 gives ${d34.cout} channels, expected ${c128}`);
  const c256 = d34.mid;
  cur = stage('conv_4', 6, d34, c256);
  const d45 = g.depthWise('conv_45', cur.out, c128, 2, false);
  if (d45.cout !== c128) throw unsupported(`conv_45 gives ${d45.cout} channels, expected ${c128}`);
  const c512 = d45.mid;
  cur = stage('conv_5', 2, d45, c256);
  cur = g.convBlock('conv_6_sep', cur.out, c128, { kernel: 1, stride: 1, pad: 0, depthwise: false, prelu: true });
  if (cur.cout !== c512) throw unsupported(`conv_6_sep gives ${cur.cout} channels, expected ${c512}`);
  cur = g.convBlock('conv_6_dw', cur.out, c512, { kernel: 7, stride: 1, pad: 0, depthwise: true, prelu: false });
  const head = g.head(cur.out, c512);

  // the output, possibly L2-normalised by the graph
  const outputs = (model.graph!.output ?? []).map((o) => o.name);
  if (outputs.length !== 1) throw unsupported(`expected one output, found ${outputs.length}`);
  // every value on the path to head.out comes from the nodes walked above and constants; what is
  // left may only compute shapes, or L2-normalise head.out into the output
  const rest = (model.graph!.node ?? []).filter((n) => !g.used.has(n) && !SHAPE_CALC.has(n.opType ?? ''));
  let outputNormalized = false;
  if (outputs[0] !== head.out) {
    const normalises = rest.some((n) => ['LpNormalization', 'ReduceL2', 'Div'].includes(n.opType ?? '')) && g.consumers.has(head.out);
    if (!normalises || !rest.every((n) => NORM_OPS.has(n.opType ?? ''))) {
      throw unsupported(`the output '${outputs[0]}' is not the head's output, and the nodes between are not an L2 normalisation: ${rest.map(nodeName).join(', ') || 'none'}`);
    }
    outputNormalized = true;
  } else if (rest.length > 0) {
    throw unsupported(`nodes outside the MobileFaceNet: ${rest.map(nodeName).join(', ')}`);
  }

  const width = findWidth([c64, c128, c256, c512]);
  if (width === undefined) throw unsupported(`the channel counts ${c64}/${c128}/${c256}/${c512} are not those of one MobileFaceNet width`);
  const known = KNOWN[sha256];
  const inputProtocol: InputProtocol = {
    name: input.name!,
    shape,
    layout: 'NCHW',
    dtype: 'float32',
    colour: known?.colour ?? 'unknown',
    normalise: known?.normalise ?? 'unknown',
    evidence: known?.evidence ?? 'the graph has no preprocessing nodes; colour order and scaling are not recorded in it',
  };
  const source = opts.source ?? known?.source ?? path.basename(onnxPath);
  const metadata: Record<string, string> = {
    format: 'pt',
    arch: 'mobilefacenet',
    width: String(width),
    embeddingSize: String(head.embedding),
    source,
    sha256,
    input: JSON.stringify(inputProtocol),
    outputNormalized: String(outputNormalized),
    foldedBatchNorms: String(g.folded),
    converter: `bia-torch ${VERSION} convert`,
  };
  const result: ConvertResult = {
    arch: 'mobilefacenet',
    width,
    embeddingSize: head.embedding,
    entries: g.entries.size,
    onnxValues: g.onnxValues,
    sha256,
    input: inputProtocol,
    outputNormalized,
    foldedBatchNorms: g.folded,
    mapping: g.mapping,
    metadata,
  };
  return { entries: g.entries, result };
}

/**
 * Convert an ONNX MobileFaceNet to a safetensors file under TreB1eN's state_dict names, loadable by our
 * MobileFaceNet with a strict load. Errors: BIA_IO_ERROR (cannot read), BIA_CHECKPOINT_ERROR (not ONNX,
 * or a graph that is not a MobileFaceNet), BIA_INVALID_ARGUMENT (options).
 */
export async function convertOnnx(onnxPath: string, outPath: string, opts: ConvertOptions = {}): Promise<ConvertResult> {
  if (typeof outPath !== 'string' || outPath.length === 0) throw invalidArgument('the output path must be a non-empty string');
  const { entries, result } = await readOnnxMobileFaceNet(onnxPath, opts);
  const tensors = new Map<string, Tensor>();
  try {
    for (const [k, v] of entries) {
      tensors.set(k, v.data === 'counter' ? await tensor(new Int32Array(1), [], { dtype: 'int64' }) : await tensor(v.data, v.dims));
    }
    await saveSafetensors(outPath, tensors, { metadata: result.metadata });
  } finally {
    for (const t of tensors.values()) t.dispose();
  }
  return result;
}

/**
 * The project's DDPM UNet (native/unet.cc: Ho et al., the pesser/pytorch_diffusion port with the
 * official state-dict names) written as an ONNX graph by our own code — there is no Python torch to
 * export it — so that ONNX Runtime can stand beside the addon as a reference in the `unet` bench suite.
 *
 * The graph computes what the addon's `DiffusionModel.forward` computes, layer for layer:
 *
 * - inputs `x` float32 [B, inChannels, R, R] and `t` float32 [B] (the timesteps as floats, 0 … 999:
 *   the addon converts its integer timesteps to float32 before the embedding, so the graph takes them
 *   as float32 and does no cast); B is symbolic ('batch') unless `opts.batch` fixes it, R is
 *   `opts.resolution` (default the config's);
 * - outputs `eps` [B, outChannels, R, R] and `h` [B, ch·chMult[-1], R/2^(levels−1), same] (the middle
 *   block's output, which the addon's forward returns too);
 * - the timestep embedding: half = ch/2, freqs[i] = exp(−i · ln(10000)/(half − 1)) in float32 (a
 *   constant of the graph), args = t·freqs, emb = [sin(args), cos(args)]; then dense.0 → SiLU →
 *   dense.1, and every res block takes SiLU of that;
 * - GroupNorm(32, C, eps 1e-6) as Reshape [B, 32, −1] → InstanceNormalization (unit scale, zero bias)
 *   → Reshape back → per-channel Mul/Add: not the opset-18 GroupNormalization op, whose scale/bias
 *   changed meaning in opset 21;
 * - SiLU as x·Sigmoid(x); attention single-headed with the scale C^−1/2 applied to q·k before the
 *   softmax over the keys; downsampling a stride-2 3×3 conv with the asymmetric zero padding (0, 1, 0, 1)
 *   (the Conv's own pads [0, 0, 1, 1]: bottom and right), or a 2×2 average pool without resamp conv;
 *   upsampling nearest ×2 (Resize, asymmetric/floor: out[i] = in[⌊i/2⌋]) then a 3×3 conv.
 *
 * Attention sits at the levels whose *config* resolution is in attnResolutions, as in the addon
 * (the model is fully convolutional; a different `opts.resolution` changes the sizes, not the places).
 */
import os from 'node:os';
import type { onnx } from 'onnx-proto';
import { BiaError, invalidArgument } from '../../ts/errors';
import type { DiffusionModel, UNetConfig } from '../../ts/index';

/** One weight: its shape and its float32 values (row-major, PyTorch's layout). */
export interface UNetWeight {
  dims: readonly number[];
  data: Float32Array;
}

export type UNetWeights = ReadonlyMap<string, UNetWeight> | Readonly<Record<string, UNetWeight>>;

/** The UNet config fields the graph depends on (a DiffusionModel's `config` has them all). */
export type UNetGraphConfig = Pick<UNetConfig, 'inChannels' | 'outChannels' | 'ch' | 'chMult' | 'numResBlocks' | 'attnResolutions' | 'resampWithConv' | 'resolution'>;

export interface UNetOnnxOptions {
  /** The ONNX opset (default 17; 13 … 21: every op used keeps its meaning there). */
  opset?: number;
  /** H = W of the graph's input (default: the config's resolution; a multiple of 2^(levels−1)). */
  resolution?: number;
  /** A fixed batch size, or null (default) for a symbolic one. */
  batch?: number | null;
}

export const UNET_ONNX_DEFAULT_OPSET = 17;
const MIN_OPSET = 13;
const MAX_OPSET = 21;
const GROUPS = 32;
const NORM_EPS = 1e-6;
/** protobuf's limit on one message; beyond it the weights would need ONNX external data. */
const PROTOBUF_LIMIT = 2 ** 31 - 1;

function checkConfig(c: UNetGraphConfig): void {
  if (typeof c !== 'object' || c === null) throw invalidArgument('config must be a UNet config object');
  const int = (v: unknown, what: string, lo: number, hi: number) => {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < lo || v > hi) throw invalidArgument(`UNet ${what} must be an integer in [${lo}, ${hi}], got ${JSON.stringify(v)}`);
  };
  int(c.inChannels, 'inChannels', 1, 1 << 16);
  int(c.outChannels, 'outChannels', 1, 1 << 16);
  int(c.ch, 'ch', GROUPS, 1 << 16);
  if (c.ch % GROUPS !== 0) throw invalidArgument(`UNet ch must be a positive multiple of ${GROUPS} (GroupNorm has ${GROUPS} groups), got ${c.ch}`);
  if (!Array.isArray(c.chMult) || c.chMult.length < 1 || c.chMult.length > 8) throw invalidArgument('UNet chMult must have 1 to 8 entries');
  c.chMult.forEach((m, i) => int(m, `chMult[${i}]`, 1, 64));
  int(c.numResBlocks, 'numResBlocks', 1, 16);
  if (!Array.isArray(c.attnResolutions)) throw invalidArgument('UNet attnResolutions must be an array');
  c.attnResolutions.forEach((r, i) => int(r, `attnResolutions[${i}]`, 1, 1 << 20));
  if (typeof c.resampWithConv !== 'boolean') throw invalidArgument('UNet resampWithConv must be a boolean');
  int(c.resolution, 'resolution', 1, 1 << 20);
  const div = 2 ** (c.chMult.length - 1);
  if (c.resolution % div !== 0) throw invalidArgument(`UNet resolution ${c.resolution} is not divisible by 2^(levels-1) = ${div}`);
}

/**
 * The parameters of the UNet of `config`, by their state-dict names, with their shapes, in the order
 * the addon registers them (native/unet.cc).
 */
export function unetParameterShapes(config: UNetGraphConfig): Map<string, number[]> {
  checkConfig(config);
  const c = config;
  const shapes = new Map<string, number[]>();
  const tembCh = 4 * c.ch;
  const linear = (p: string, i: number, o: number) => (shapes.set(`${p}.weight`, [o, i]), shapes.set(`${p}.bias`, [o]));
  const conv = (p: string, i: number, o: number, k: number) => (shapes.set(`${p}.weight`, [o, i, k, k]), shapes.set(`${p}.bias`, [o]));
  const norm = (p: string, ch: number) => (shapes.set(`${p}.weight`, [ch]), shapes.set(`${p}.bias`, [ch]));
  const res = (p: string, i: number, o: number) => {
    norm(`${p}.norm1`, i);
    conv(`${p}.conv1`, i, o, 3);
    linear(`${p}.temb_proj`, tembCh, o);
    norm(`${p}.norm2`, o);
    conv(`${p}.conv2`, o, o, 3);
    if (i !== o) conv(`${p}.nin_shortcut`, i, o, 1);
  };
  const attn = (p: string, ch: number) => {
    norm(`${p}.norm`, ch);
    for (const n of ['q', 'k', 'v', 'proj_out']) conv(`${p}.${n}`, ch, ch, 1);
  };
  linear('temb.dense.0', c.ch, tembCh);
  linear('temb.dense.1', tembCh, tembCh);
  conv('conv_in', c.inChannels, c.ch, 3);
  const levels = c.chMult.length;
  const inMult = [1, ...c.chMult];
  let side = c.resolution;
  let blockIn = c.ch;
  for (let L = 0; L < levels; L++) {
    blockIn = c.ch * inMult[L];
    const out = c.ch * c.chMult[L];
    for (let i = 0; i < c.numResBlocks; i++) {
      res(`down.${L}.block.${i}`, blockIn, out);
      blockIn = out;
      if (c.attnResolutions.includes(side)) attn(`down.${L}.attn.${i}`, blockIn);
    }
    if (L !== levels - 1) {
      if (c.resampWithConv) conv(`down.${L}.downsample.conv`, blockIn, blockIn, 3);
      side /= 2;
    }
  }
  res('mid.block_1', blockIn, blockIn);
  attn('mid.attn_1', blockIn);
  res('mid.block_2', blockIn, blockIn);
  for (let L = levels - 1; L >= 0; L--) {
    const out = c.ch * c.chMult[L];
    for (let i = 0; i <= c.numResBlocks; i++) {
      const skip = i === c.numResBlocks ? c.ch * inMult[L] : out;
      res(`up.${L}.block.${i}`, blockIn + skip, out);
      blockIn = out;
      if (c.attnResolutions.includes(side)) attn(`up.${L}.attn.${i}`, blockIn);
    }
    if (L !== 0) {
      if (c.resampWithConv) conv(`up.${L}.upsample.conv`, blockIn, blockIn, 3);
      side *= 2;
    }
  }
  norm('norm_out', blockIn);
  conv('conv_out', blockIn, c.outChannels, 3);
  return shapes;
}

/** The weights of a DiffusionModel, read into JS (float32; a half-precision model's values widened exactly). */
export async function unetWeights(model: DiffusionModel): Promise<Map<string, UNetWeight>> {
  const sd = model.stateDict();
  const out = new Map<string, UNetWeight>();
  try {
    for (const [k, v] of sd) {
      const data = await v.data();
      out.set(k, { dims: v.shape, data: data instanceof Float32Array ? data : Float32Array.from(data) });
    }
  } finally {
    for (const v of sd.values()) v.dispose();
  }
  return out;
}

/** Little-endian bytes of typed values (ONNX raw_data is little-endian). */
function rawBytes(a: Float32Array | BigInt64Array): Uint8Array {
  if (os.endianness() === 'LE') return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  const out = new Uint8Array(a.byteLength);
  const view = new DataView(out.buffer);
  if (a instanceof Float32Array) a.forEach((v, i) => view.setFloat32(4 * i, v, true));
  else a.forEach((v, i) => view.setBigInt64(8 * i, v, true));
  return out;
}

type Attr = onnx.IAttributeProto;

/** A small ONNX graph builder: nodes in order, initialisers, cached constants. */
class GraphBuilder {
  readonly nodes: onnx.INodeProto[] = [];
  readonly inits: onnx.ITensorProto[] = [];
  private readonly constants = new Map<string, string>();
  private readonly added = new Set<string>();
  private readonly used = new Set<string>();
  private count = 0;

  constructor(
    private readonly proto: typeof onnx,
    private readonly weights: ReadonlyMap<string, UNetWeight>,
    private readonly expected: ReadonlyMap<string, number[]>,
  ) {}

  /** A node; returns its (only) output's name (`out` or a fresh one). */
  op(type: string, inputs: string[], attrs: Attr[] = [], out?: string): string {
    const o = out ?? `${type.toLowerCase()}_${this.count}`;
    this.nodes.push({ opType: type, name: `${type}_${this.count++}`, input: inputs, output: [o], attribute: attrs });
    return o;
  }

  int(name: string, i: number): Attr {
    return { name, type: this.proto.AttributeProto.AttributeType.INT, i };
  }
  ints(name: string, ints: number[]): Attr {
    return { name, type: this.proto.AttributeProto.AttributeType.INTS, ints };
  }
  float(name: string, f: number): Attr {
    return { name, type: this.proto.AttributeProto.AttributeType.FLOAT, f };
  }
  str(name: string, s: string): Attr {
    return { name, type: this.proto.AttributeProto.AttributeType.STRING, s: new Uint8Array(Buffer.from(s, 'utf8')) };
  }

  private initializer(name: string, dims: number[], dataType: number, bytes: Uint8Array): string {
    this.inits.push({ name, dims, dataType, rawData: bytes });
    return name;
  }

  /** An int64 constant (shared between uses). */
  int64(values: number[], dims = [values.length]): string {
    const key = `i64:${dims.join('x')}:${values.join(',')}`;
    let n = this.constants.get(key);
    if (!n) {
      n = this.initializer(`const_${this.constants.size}`, dims, this.proto.TensorProto.DataType.INT64, rawBytes(BigInt64Array.from(values, (v) => BigInt(v))));
      this.constants.set(key, n);
    }
    return n;
  }

  /** A float32 constant (shared between uses). */
  float32(values: ArrayLike<number>, dims: number[]): string {
    const key = `f32:${dims.join('x')}:${Array.from(values).join(',')}`;
    let n = this.constants.get(key);
    if (!n) {
      n = this.initializer(`const_${this.constants.size}`, dims, this.proto.TensorProto.DataType.FLOAT, rawBytes(Float32Array.from(values)));
      this.constants.set(key, n);
    }
    return n;
  }

  /** A weight by its state-dict name, checked against the config's shape; `dims` re-views it (same values). */
  weight(key: string, dims?: number[]): string {
    const want = this.expected.get(key);
    if (!want) throw new BiaError('BIA_INVALID_ARGUMENT', `internal: the graph asked for '${key}', which the config does not have`);
    const w = this.weights.get(key)!;  // presence and shape were checked up front
    const shaped = dims ?? want;
    const name = dims ? `${key}:${dims.join('x')}` : key;
    if (!this.added.has(name)) {
      this.initializer(name, shaped, this.proto.TensorProto.DataType.FLOAT, rawBytes(w.data));
      this.added.add(name);
    }
    this.used.add(key);
    return name;
  }

  unusedWeights(): string[] {
    return [...this.expected.keys()].filter((k) => !this.used.has(k));
  }
}

function checkWeights(weights: UNetWeights, expected: Map<string, number[]>): Map<string, UNetWeight> {
  if (typeof weights !== 'object' || weights === null) throw invalidArgument('weights must be a Map (or record) of state-dict name → {dims, data}');
  const map = weights instanceof Map ? (weights as ReadonlyMap<string, UNetWeight>) : new Map(Object.entries(weights as Record<string, UNetWeight>));
  const missing = [...expected.keys()].filter((k) => !map.has(k));
  const unexpected = [...map.keys()].filter((k) => !expected.has(k));
  if (missing.length || unexpected.length) {
    const list = (xs: string[]) => `${xs.slice(0, 5).join(', ')}${xs.length > 5 ? `, … (${xs.length} in all)` : ''}`;
    throw new BiaError('BIA_CHECKPOINT_MISMATCH',
      `the weights do not match the UNet config:${missing.length ? ` missing ${list(missing)}` : ''}${missing.length && unexpected.length ? ';' : ''}${unexpected.length ? ` unexpected ${list(unexpected)}` : ''}`);
  }
  for (const [k, want] of expected) {
    const w = map.get(k)!;
    if (typeof w !== 'object' || w === null || !Array.isArray(w.dims) && !ArrayBuffer.isView(w.dims)) throw invalidArgument(`weight '${k}' must be {dims, data}`);
    const dims = Array.from(w.dims);
    if (dims.length !== want.length || dims.some((d, i) => d !== want[i])) {
      throw new BiaError('BIA_CHECKPOINT_MISMATCH', `weight '${k}' has shape [${dims.join(', ')}], the config needs [${want.join(', ')}]`);
    }
    if (!(w.data instanceof Float32Array)) throw invalidArgument(`weight '${k}' must hold a Float32Array, got ${Object.prototype.toString.call(w.data)}`);
    const n = want.reduce((a, b) => a * b, 1);
    if (w.data.length !== n) throw invalidArgument(`weight '${k}' has ${w.data.length} values, its shape [${want.join(', ')}] needs ${n}`);
  }
  return map as Map<string, UNetWeight>;
}

function irVersionOf(opset: number): number {
  return opset <= 14 ? 7 : opset <= 18 ? 8 : opset <= 20 ? 9 : 10;
}

/**
 * An ONNX ModelProto (serialised) of the UNet of `config` with `weights` (state-dict names, as
 * `model.stateDict()` / `unetWeights(model)` give them): `x` [B, C, R, R] float32 and `t` [B]
 * float32 → `eps` [B, C', R, R] and `h`. Missing, unexpected or misshaped weights are refused
 * (BIA_CHECKPOINT_MISMATCH), as are bad configs and options (BIA_INVALID_ARGUMENT).
 */
export function unetToOnnx(config: UNetGraphConfig, weights: UNetWeights, opts: UNetOnnxOptions = {}): Uint8Array {
  const expected = unetParameterShapes(config);
  const opset = opts.opset ?? UNET_ONNX_DEFAULT_OPSET;
  if (!Number.isInteger(opset) || opset < MIN_OPSET || opset > MAX_OPSET) throw invalidArgument(`opset must be an integer in [${MIN_OPSET}, ${MAX_OPSET}], got ${JSON.stringify(opts.opset)}`);
  const c = config;
  const levels = c.chMult.length;
  const R = opts.resolution ?? c.resolution;
  if (!Number.isInteger(R) || R < 1 || R % 2 ** (levels - 1) !== 0) {
    throw invalidArgument(`resolution must be a positive multiple of 2^(levels-1) = ${2 ** (levels - 1)}, got ${JSON.stringify(opts.resolution)}`);
  }
  const batch = opts.batch ?? null;
  if (batch !== null && !(Number.isInteger(batch) && batch >= 1)) throw invalidArgument(`batch must be a positive integer or null, got ${JSON.stringify(opts.batch)}`);
  const map = checkWeights(weights, expected);
  const bytes = [...map.values()].reduce((a, w) => a + 4 * w.data.length, 0);
  if (bytes > PROTOBUF_LIMIT - (64 << 20)) throw invalidArgument(`the weights take ${(bytes / 2 ** 30).toFixed(2)} GiB: more than one protobuf message holds (2 GiB)`);

  // loaded on first use, as ts/convert.ts does (the ONNX definitions take ~40 ms to load)
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const proto = (require('onnx-proto') as typeof import('onnx-proto')).onnx;
  const g = new GraphBuilder(proto, map, expected);
  const tembCh = 4 * c.ch;

  const silu = (x: string) => g.op('Mul', [x, g.op('Sigmoid', [x])]);
  const shapeOf = (x: string) => g.op('Shape', [x]);
  const conv = (x: string, p: string, pads: number[], strides?: number[]) =>
    g.op('Conv', [x, g.weight(`${p}.weight`), g.weight(`${p}.bias`)], [g.ints('pads', pads), ...(strides ? [g.ints('strides', strides)] : [])]);
  const conv3 = (x: string, p: string) => conv(x, p, [1, 1, 1, 1]);
  const conv1 = (x: string, p: string) => conv(x, p, [0, 0, 0, 0]);
  const linear = (x: string, p: string) => g.op('Gemm', [x, g.weight(`${p}.weight`), g.weight(`${p}.bias`)], [g.int('transB', 1)]);
  const groupNorm = (x: string, p: string, ch: number) => {
    const grouped = g.op('Reshape', [x, g.int64([0, GROUPS, -1])]);
    const normed = g.op('InstanceNormalization', [grouped, g.float32(new Array(GROUPS).fill(1), [GROUPS]), g.float32(new Array(GROUPS).fill(0), [GROUPS])], [g.float('epsilon', NORM_EPS)]);
    const back = g.op('Reshape', [normed, shapeOf(x)]);
    return g.op('Add', [g.op('Mul', [back, g.weight(`${p}.weight`, [ch, 1, 1])]), g.weight(`${p}.bias`, [ch, 1, 1])]);
  };
  const resBlock = (x: string, tembAct: string, p: string, cin: number, cout: number, out?: string) => {
    let h = conv3(silu(groupNorm(x, `${p}.norm1`, cin)), `${p}.conv1`);
    h = g.op('Add', [h, g.op('Unsqueeze', [linear(tembAct, `${p}.temb_proj`), g.int64([2, 3])])]);
    h = conv3(silu(groupNorm(h, `${p}.norm2`, cout)), `${p}.conv2`);
    return g.op('Add', [h, cin !== cout ? conv1(x, `${p}.nin_shortcut`) : x], [], out);
  };
  const attnBlock = (x: string, p: string, ch: number) => {
    const n = groupNorm(x, `${p}.norm`, ch);
    const flat = g.int64([0, ch, -1]);
    const q = g.op('Transpose', [g.op('Reshape', [conv1(n, `${p}.q`), flat])], [g.ints('perm', [0, 2, 1])]);  // [B, HW, C]
    const k = g.op('Reshape', [conv1(n, `${p}.k`), flat]);  // [B, C, HW]
    const v = g.op('Reshape', [conv1(n, `${p}.v`), flat]);  // [B, C, HW]
    const scores = g.op('Mul', [g.op('MatMul', [q, k]), g.float32([Math.fround(1 / Math.sqrt(ch))], [])]);
    const w = g.op('Softmax', [scores], [g.int('axis', 2)]);  // over the keys
    const o = g.op('MatMul', [v, g.op('Transpose', [w], [g.ints('perm', [0, 2, 1])])]);  // [B, C, HWq]
    return g.op('Add', [conv1(g.op('Reshape', [o, shapeOf(x)]), `${p}.proj_out`), x]);
  };

  // timestep embedding: [sin(t·f), cos(t·f)], f_i = exp(−i·ln(10000)/(half−1)) with float32 steps as LibTorch takes them
  const half = c.ch / 2;
  const scale = Math.fround(-Math.log(10000) / (half - 1));
  const freqs = Array.from({ length: half }, (_, i) => Math.fround(Math.exp(Math.fround(i * scale))));
  const args = g.op('Mul', [g.op('Unsqueeze', ['t', g.int64([1])]), g.float32(freqs, [1, half])]);
  const emb = g.op('Concat', [g.op('Sin', [args]), g.op('Cos', [args])], [g.int('axis', 1)]);
  const temb = linear(silu(linear(emb, 'temb.dense.0')), 'temb.dense.1');
  const tembAct = silu(temb);

  const inMult = [1, ...c.chMult];
  const skips: string[] = [conv3('x', 'conv_in')];
  let side = c.resolution;
  let blockIn = c.ch;
  for (let L = 0; L < levels; L++) {
    blockIn = c.ch * inMult[L];
    const out = c.ch * c.chMult[L];
    for (let i = 0; i < c.numResBlocks; i++) {
      let h = resBlock(skips[skips.length - 1], tembAct, `down.${L}.block.${i}`, blockIn, out);
      blockIn = out;
      if (c.attnResolutions.includes(side)) h = attnBlock(h, `down.${L}.attn.${i}`, blockIn);
      skips.push(h);
    }
    if (L !== levels - 1) {
      const last = skips[skips.length - 1];
      skips.push(c.resampWithConv
        ? conv(last, `down.${L}.downsample.conv`, [0, 0, 1, 1], [2, 2])  // pad (0, 1, 0, 1): bottom and right only
        : g.op('AveragePool', [last], [g.ints('kernel_shape', [2, 2]), g.ints('strides', [2, 2])]));
      side /= 2;
    }
  }
  let h = resBlock(skips[skips.length - 1], tembAct, 'mid.block_1', blockIn, blockIn);
  h = attnBlock(h, 'mid.attn_1', blockIn);
  h = resBlock(h, tembAct, 'mid.block_2', blockIn, blockIn, 'h');
  const hChannels = blockIn;
  for (let L = levels - 1; L >= 0; L--) {
    const out = c.ch * c.chMult[L];
    for (let i = 0; i <= c.numResBlocks; i++) {
      const skip = i === c.numResBlocks ? c.ch * inMult[L] : out;
      h = resBlock(g.op('Concat', [h, skips.pop()!], [g.int('axis', 1)]), tembAct, `up.${L}.block.${i}`, blockIn + skip, out);
      blockIn = out;
      if (c.attnResolutions.includes(side)) h = attnBlock(h, `up.${L}.attn.${i}`, blockIn);
    }
    if (L !== 0) {
      h = g.op('Resize', [h, '', g.float32([1, 1, 2, 2], [4])], [g.str('mode', 'nearest'), g.str('coordinate_transformation_mode', 'asymmetric'), g.str('nearest_mode', 'floor')]);
      if (c.resampWithConv) h = conv3(h, `up.${L}.upsample.conv`);
      side *= 2;
    }
  }
  if (skips.length !== 0) throw new BiaError('BIA_INVALID_ARGUMENT', `internal: ${skips.length} skip connections left over`);
  const normed = silu(groupNorm(h, 'norm_out', blockIn));
  g.op('Conv', [normed, g.weight('conv_out.weight'), g.weight('conv_out.bias')], [g.ints('pads', [1, 1, 1, 1])], 'eps');
  const unused = g.unusedWeights();
  if (unused.length) throw new BiaError('BIA_INVALID_ARGUMENT', `internal: weights left out of the graph: ${unused.join(', ')}`);

  const dim = (d: number | string): onnx.TensorShapeProto.IDimension => (typeof d === 'number' ? { dimValue: d } : { dimParam: d });
  const B = batch ?? 'batch';
  const value = (name: string, dims: (number | string)[]): onnx.IValueInfoProto => ({
    name,
    type: { tensorType: { elemType: proto.TensorProto.DataType.FLOAT, shape: { dim: dims.map(dim) } } },
  });
  const hSide = R / 2 ** (levels - 1);
  const model = proto.ModelProto.create({
    irVersion: irVersionOf(opset),
    producerName: 'bia-torch bench/reference/unet-onnx.ts',
    opsetImport: [{ domain: '', version: opset }],
    docString: "The DDPM UNet of bia-torch (native/unet.cc): x [B, C, R, R] and t [B] (float32 timesteps) → eps and h (the middle block's output)",
    metadataProps: [{ key: 'unetConfig', value: JSON.stringify({ ...config, hShape: undefined }) }, { key: 'timestepDtype', value: 'float32' }],
    graph: {
      name: 'ddpm_unet',
      node: g.nodes,
      initializer: g.inits,
      input: [value('x', [B, c.inChannels, R, R]), value('t', [B])],
      output: [value('eps', [B, c.outChannels, R, R]), value('h', [B, hChannels, hSide, hSide])],
    },
  });
  return proto.ModelProto.encode(model).finish();
}

// ---- ONNX Runtime (a dev dependency: loaded on demand, its absence reported, never thrown) ----------

/** The part of onnxruntime-node's API the reference uses. */
export interface OrtTensor {
  readonly dims: readonly number[];
  readonly data: unknown;
  dispose?(): void;
}
export interface OrtSession {
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  run(feeds: Record<string, OrtTensor>): Promise<Record<string, OrtTensor>>;
  release(): Promise<void>;
}
export interface OrtModule {
  InferenceSession: { create(model: Uint8Array, options?: Record<string, unknown>): Promise<OrtSession> };
  Tensor: new (type: 'float32', data: Float32Array, dims: readonly number[]) => OrtTensor;
  env: { versions?: { common?: string; node?: string } };
}

/** onnxruntime-node, or why it does not load. */
/** max |a − b| / max |b| (max |a − b| when b is all zeros): how closely ONNX Runtime reproduces the addon. */
export function maxRelativeError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw invalidArgument(`maxRelativeError: lengths differ (${a.length} vs ${b.length})`);
  let num = 0;
  let den = 0;
  for (let i = 0; i < b.length; i++) {
    num = Math.max(num, Math.abs(a[i] - b[i]));
    den = Math.max(den, Math.abs(b[i]));
  }
  return den > 0 ? num / den : num;
}

export function loadOnnxRuntime(): { ort: OrtModule; version: string } | { ort: null; error: string } {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const ort = require('onnxruntime-node') as OrtModule;
    let version = ort.env?.versions?.node ?? ort.env?.versions?.common ?? '';
    if (!version) {
      try {
        // eslint-disable-next-line @typescript-eslint/no-require-imports
        version = (require('onnxruntime-node/package.json') as { version: string }).version;
      } catch {
        version = 'unknown';
      }
    }
    return { ort, version };
  } catch (e) {
    return { ort: null, error: (e as Error).message.split('\n')[0] };
  }
}

/**
 * A CPU session over an exported UNet: `threads` intra-op threads, one inter-op thread, sequential
 * execution, every graph optimisation (ORT's own fusions and its NCHWc layout for convolutions).
 */
export async function createUNetSession(ort: OrtModule, model: Uint8Array, threads: number): Promise<OrtSession> {
  if (!Number.isInteger(threads) || threads < 1) throw invalidArgument(`threads must be a positive integer, got ${JSON.stringify(threads)}`);
  return ort.InferenceSession.create(model, {
    executionProviders: ['cpu'],
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
  });
}

/** Run the exported UNet once: x [B, C, R, R] (flat, NCHW) and per-image float timesteps → eps and h. */
export async function runUNetSession(
  ort: OrtModule,
  session: OrtSession,
  x: Float32Array,
  dims: readonly number[],
  t: number | readonly number[],
): Promise<{ eps: OrtTensor; h: OrtTensor }> {
  if (dims.length !== 4 || dims.reduce((a, b) => a * b, 1) !== x.length) throw invalidArgument(`x has ${x.length} values, not a [B, C, H, W] of [${dims.join(', ')}]`);
  const ts = typeof t === 'number' ? new Array(dims[0]).fill(t) : [...t];
  if (ts.length !== dims[0]) throw invalidArgument(`t has ${ts.length} entries for a batch of ${dims[0]}`);
  const r = await session.run({ x: new ort.Tensor('float32', x, dims), t: new ort.Tensor('float32', Float32Array.from(ts), [dims[0]]) });
  return { eps: r.eps, h: r.h };
}

/**
 * The synthetic portrait world, its vocabulary: who a person is (identity parameters, fixed for a
 * person and drawn from (worldSeed, identity)) and how one picture of them looks (attributes: pose,
 * expression, lighting, hair, glasses, clothing, background, noise; drawn per image from a seed).
 *
 * Both are described by a spec (IDENTITY_SPEC, ATTRIBUTE_SPEC) so models can be built generically on
 * them: identityVector() and attributeVector() flatten a record into numbers (continuous values
 * normalised to [-1, 1] by their range; categorical ones one-hot or as a class index).
 *
 * Everything random comes from one small seeded generator (sfc32 seeded through a 32-bit hash), so the
 * same seed gives the same numbers on every platform.
 */
import { invalidArgument } from '../errors';

// ---------------------------------------------------------------------------------------------------
// seeded randomness

/** A uniform generator of numbers in [0, 1). */
export type Rng = () => number;

/** The largest seed accepted (seeds are non-negative safe integers). */
const MAX_SEED = Number.MAX_SAFE_INTEGER;

function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * One 32-bit seed from several non-negative integers (each below 2^53), order-sensitive: the seed of a
 * sub-stream, e.g. hashSeed(worldSeed, identity) or hashSeed(streamSeed, batchIndex).
 */
export function hashSeed(...parts: number[]): number {
  let h = 0x9e3779b9 ^ parts.length;
  for (const p of parts) {
    const lo = p >>> 0;
    const hi = Math.floor(p / 4294967296) >>> 0;
    h = fmix32((h ^ lo) + 0x7f4a7c15);
    h = fmix32((h ^ hi) + 0x165667b1);
  }
  return h;
}

/** A seeded generator (sfc32): same seed, same sequence, on every platform. */
export function createRng(seed: number): Rng {
  checkSeed(seed, 'seed');
  let a = hashSeed(seed, 1);
  let b = hashSeed(seed, 2);
  let c = hashSeed(seed, 3);
  let d = 1;
  const next = (): number => {
    const t = (((a + b) | 0) + d) | 0;
    d = (d + 1) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    c = (c + t) | 0;
    return (t >>> 0) / 4294967296;
  };
  for (let i = 0; i < 12; i++) next();
  return next;
}

export function checkSeed(seed: unknown, what: string): number {
  if (!Number.isSafeInteger(seed) || (seed as number) < 0 || (seed as number) > MAX_SEED) {
    throw invalidArgument(`${what} must be a non-negative integer (at most 2^53 − 1), got ${JSON.stringify(seed)}`);
  }
  return seed as number;
}

const uniform = (rng: Rng, lo: number, hi: number) => lo + (hi - lo) * rng();
const pick = <T>(rng: Rng, xs: readonly T[]): T => xs[Math.min(xs.length - 1, Math.floor(rng() * xs.length))];
/** An index drawn with the given (unnormalised) weights. */
function weighted(rng: Rng, weights: readonly number[]): number {
  const total = weights.reduce((s, w) => s + w, 0);
  let u = rng() * total;
  for (let i = 0; i < weights.length; i++) {
    u -= weights[i];
    if (u < 0) return i;
  }
  return weights.length - 1;
}

// ---------------------------------------------------------------------------------------------------
// specs

export interface ContinuousSpec<N extends string = string> {
  name: N;
  kind: 'continuous';
  min: number;
  max: number;
  /** Integer-valued (still encoded as a normalised number). */
  integer?: boolean;
  description: string;
}

export interface CategoricalSpec<N extends string = string> {
  name: N;
  kind: 'categorical';
  classes: readonly string[];
  description: string;
}

export type ValueSpec<N extends string = string> = ContinuousSpec<N> | CategoricalSpec<N>;

/**
 * What stays fixed for a person. Lengths are in the units of a 64×64 portrait (they scale with the
 * size); colours are positions along a palette in [0, 1].
 */
export interface IdentityParams {
  /** Half the face's width. */
  faceWidth: number;
  /** From the face's centre line up to the top of the head. */
  faceHeight: number;
  /** From the face's centre line down to the chin. */
  chinLength: number;
  /** Width of the jaw at the chin, relative to the face (0.35 pointed … 0.95 square). */
  jawWidth: number;
  /** Skin lightness, dark (0) to light (1). */
  skinTone: number;
  /** Skin undertone, cool/pink (0) to warm/yellow (1). */
  skinWarmth: number;
  /** Half the distance between the eyes' centres. */
  eyeSpacing: number;
  /** Vertical position of the eyes relative to the face's centre line (positive = lower). */
  eyeLevel: number;
  /** Half the width of an eye. */
  eyeWidth: number;
  /** Eye height / width. */
  eyeRoundness: number;
  /** Canthal tilt in degrees (positive: outer corners up). */
  eyeTilt: number;
  /** Iris colour along brown → hazel → green → blue → grey. */
  irisColour: number;
  /** Stroke width of the eyebrows. */
  browThickness: number;
  /** Eyebrow slope in degrees (positive: inner ends lower, a stern look). */
  browAngle: number;
  /** Height of the eyebrows' arch. */
  browArch: number;
  /** Eyebrow colour, light brown (0) to black (1). */
  browDarkness: number;
  /** Nose length as a share of the eye-to-chin distance. */
  noseLength: number;
  /** Width of the nose at the nostrils. */
  noseWidth: number;
  /** Mouth position as a share of the nose-to-chin distance. */
  mouthLevel: number;
  /** Mouth width. */
  mouthWidth: number;
  /** Lip thickness factor. */
  lipFullness: number;
  /** Lip colour, pale pink (0) to deep red (1). */
  lipColour: number;
  /** Half the height of an ear. */
  earSize: number;
  /** Number of moles (0–3). */
  moleCount: number;
  /** Mole positions in face coordinates ([-1, 1]: left/right edge, top of head/chin); only the first moleCount are drawn. */
  mole1X: number;
  mole1Y: number;
  mole2X: number;
  mole2Y: number;
  mole3X: number;
  mole3Y: number;
}

export type IdentityName = keyof IdentityParams;

const c = <N extends string>(name: N, min: number, max: number, description: string, integer = false): ContinuousSpec<N> =>
  integer ? { name, kind: 'continuous', min, max, integer, description } : { name, kind: 'continuous', min, max, description };

/** Every identity parameter, in the order of identityVector(). All are continuous. */
export const IDENTITY_SPEC: readonly ContinuousSpec<IdentityName>[] = [
  c('faceWidth', 11, 14.5, 'half the face width (64-px units)'),
  c('faceHeight', 14, 17.5, 'centre line to top of head'),
  c('chinLength', 14, 18, 'centre line to chin'),
  c('jawWidth', 0.35, 0.95, 'jaw width at the chin, relative'),
  c('skinTone', 0, 1, 'skin lightness'),
  c('skinWarmth', 0, 1, 'skin undertone, cool to warm'),
  c('eyeSpacing', 5, 7.5, 'half the distance between the eyes'),
  c('eyeLevel', -1.5, 1.5, 'eye height relative to the centre line'),
  c('eyeWidth', 2.3, 3.5, 'half the eye width'),
  c('eyeRoundness', 0.42, 0.75, 'eye height / width'),
  c('eyeTilt', -12, 12, 'canthal tilt, degrees'),
  c('irisColour', 0, 1, 'iris colour along brown, hazel, green, blue, grey'),
  c('browThickness', 0.7, 2.1, 'eyebrow stroke width'),
  c('browAngle', -16, 16, 'eyebrow slope, degrees'),
  c('browArch', 0, 1.6, 'eyebrow arch height'),
  c('browDarkness', 0, 1, 'eyebrow colour, light brown to black'),
  c('noseLength', 0.3, 0.5, 'nose length, share of eye-to-chin'),
  c('noseWidth', 2.4, 4.8, 'nose width at the nostrils'),
  c('mouthLevel', 0.28, 0.48, 'mouth position, share of nose-to-chin'),
  c('mouthWidth', 5, 9.5, 'mouth width'),
  c('lipFullness', 0.6, 1.6, 'lip thickness factor'),
  c('lipColour', 0, 1, 'lip colour, pale to deep red'),
  c('earSize', 2.6, 4.6, 'half the ear height'),
  c('moleCount', 0, 3, 'number of moles drawn', true),
  c('mole1X', -1, 1, 'first mole, x in face coordinates'),
  c('mole1Y', -1, 1, 'first mole, y in face coordinates'),
  c('mole2X', -1, 1, 'second mole, x'),
  c('mole2Y', -1, 1, 'second mole, y'),
  c('mole3X', -1, 1, 'third mole, x'),
  c('mole3Y', -1, 1, 'third mole, y'),
];

export const HAIR_STYLES = ['bald', 'short', 'long', 'bob', 'curly', 'spiky'] as const;
export const HAIR_COLOURS = ['black', 'brown', 'chestnut', 'blonde', 'auburn', 'grey'] as const;
export const GLASSES = ['none', 'round', 'square'] as const;
export const BACKGROUNDS = ['plain', 'gradient', 'stripes'] as const;

export type HairStyle = (typeof HAIR_STYLES)[number];
export type HairColour = (typeof HAIR_COLOURS)[number];
export type Glasses = (typeof GLASSES)[number];
export type BackgroundStyle = (typeof BACKGROUNDS)[number];

/**
 * What varies from one picture of a person to the next. Lengths in 64-px units; colours are RGB in
 * [0, 1]. Together with the identity parameters an Attributes record fixes the image exactly (noiseSeed
 * fixes the noise pattern).
 */
export interface Attributes {
  /** Smile amount: -0.3 (slight frown) … 1 (broad smile). */
  smile: number;
  /** Eye openness: 0.2 (nearly shut) … 1. */
  eyeOpenness: number;
  /** Eyebrow raise: 0 … 1. */
  browRaise: number;
  /** Head-and-shoulders rotation in degrees, ±10. */
  rotation: number;
  /** Shift in 64-px units, ±3. */
  shiftX: number;
  shiftY: number;
  /** Scale, 0.94 … 1.06. */
  scale: number;
  /** Direction the light comes from (a unit vector, x right, y down). */
  lightX: number;
  lightY: number;
  /** Strength of the lighting gradient, 0 … 0.35. */
  lightIntensity: number;
  hairStyle: HairStyle;
  hairColour: HairColour;
  glasses: Glasses;
  clothingR: number;
  clothingG: number;
  clothingB: number;
  background: BackgroundStyle;
  /** The background's colour (plain), start colour (gradient) or first stripe colour (stripes). */
  backgroundR: number;
  backgroundG: number;
  backgroundB: number;
  /** The second background colour (gradient end, second stripe colour); equal to the first for 'plain'. */
  background2R: number;
  background2G: number;
  background2B: number;
  /** Direction of the gradient or stripes in degrees, 0 … 180. */
  backgroundAngle: number;
  /** Pixel noise: standard deviation as a share of the full 0–255 range, 0 … 0.05. */
  noise: number;
  /** Seed of the noise pattern (not part of attributeVector). */
  noiseSeed: number;
}

export type AttributeName = Exclude<keyof Attributes, 'noiseSeed'>;

/** Every attribute that attributeVector() encodes, in its order. */
export const ATTRIBUTE_SPEC: readonly ValueSpec<AttributeName>[] = [
  c('smile', -0.3, 1, 'smile amount (negative: frown)'),
  c('eyeOpenness', 0.2, 1, 'eye openness'),
  c('browRaise', 0, 1, 'eyebrow raise'),
  c('rotation', -10, 10, 'rotation, degrees'),
  c('shiftX', -3, 3, 'horizontal shift (64-px units)'),
  c('shiftY', -3, 3, 'vertical shift (64-px units)'),
  c('scale', 0.94, 1.06, 'scale'),
  c('lightX', -1, 1, 'light direction, x'),
  c('lightY', -1, 1, 'light direction, y'),
  c('lightIntensity', 0, 0.35, 'lighting gradient strength'),
  { name: 'hairStyle', kind: 'categorical', classes: HAIR_STYLES, description: 'hair style' },
  { name: 'hairColour', kind: 'categorical', classes: HAIR_COLOURS, description: 'hair colour' },
  { name: 'glasses', kind: 'categorical', classes: GLASSES, description: 'glasses' },
  c('clothingR', 0, 1, 'clothing colour, red'),
  c('clothingG', 0, 1, 'clothing colour, green'),
  c('clothingB', 0, 1, 'clothing colour, blue'),
  { name: 'background', kind: 'categorical', classes: BACKGROUNDS, description: 'background style' },
  c('backgroundR', 0, 1, 'background colour, red'),
  c('backgroundG', 0, 1, 'background colour, green'),
  c('backgroundB', 0, 1, 'background colour, blue'),
  c('background2R', 0, 1, 'second background colour, red'),
  c('background2G', 0, 1, 'second background colour, green'),
  c('background2B', 0, 1, 'second background colour, blue'),
  c('backgroundAngle', 0, 180, 'gradient / stripe direction, degrees'),
  c('noise', 0, 0.05, 'pixel noise standard deviation (share of 0–255)'),
];

// ---------------------------------------------------------------------------------------------------
// identities

/** Is (x, y) in face coordinates too close to an eye, the nose or the mouth for a mole? */
function onFeature(x: number, y: number): boolean {
  const ax = Math.abs(x);
  if (y > -0.35 && y < 0.15 && ax > 0.2 && ax < 0.8) return true; // eyes and brows
  if (y > -0.1 && y < 0.6 && ax < 0.3) return true; // nose and mouth
  return y < -0.55; // under the hair line
}

/** The largest identity number (identities are labelled with an Int32Array). */
export const MAX_IDENTITY = 2147483647;

export function checkIdentity(identity: unknown, what = 'identity'): number {
  if (!Number.isSafeInteger(identity) || (identity as number) < 0 || (identity as number) > MAX_IDENTITY) {
    throw invalidArgument(`${what} must be an integer in [0, ${MAX_IDENTITY}], got ${JSON.stringify(identity)}`);
  }
  return identity as number;
}

/** Identity parameters of person `identity` in world `worldSeed` (deterministic, validated). */
export function identityParams(identity: number, worldSeed = 0): IdentityParams {
  checkIdentity(identity);
  checkSeed(worldSeed, 'worldSeed');
  const rng = createRng(hashSeed(worldSeed, identity, 0x1d));
  const p = {} as Record<IdentityName, number>;
  for (const s of IDENTITY_SPEC) p[s.name] = uniform(rng, s.min, s.max);
  p.moleCount = weighted(rng, [0.3, 0.35, 0.25, 0.1]);
  for (const k of [1, 2, 3]) {
    let x = 0;
    let y = 0;
    for (let tries = 0; tries < 50; tries++) {
      x = uniform(rng, -0.85, 0.85);
      y = uniform(rng, -0.5, 0.85);
      if (!onFeature(x, y) && x * x * 0.9 + y * y < 0.8) break;
    }
    p[`mole${k}X` as IdentityName] = x;
    p[`mole${k}Y` as IdentityName] = y;
  }
  return p as unknown as IdentityParams;
}

/** The identity parameters as numbers normalised to [-1, 1], in IDENTITY_SPEC's order. */
export function identityVector(p: IdentityParams, out?: Float32Array, offset = 0): Float32Array {
  const v = out ?? new Float32Array(IDENTITY_SPEC.length);
  IDENTITY_SPEC.forEach((s, i) => {
    v[offset + i] = (2 * (p[s.name] - s.min)) / (s.max - s.min) - 1;
  });
  return v;
}

/** Names of identityVector()'s entries. */
export const IDENTITY_NAMES: readonly string[] = IDENTITY_SPEC.map((s) => s.name);

// ---------------------------------------------------------------------------------------------------
// attributes

/** Attributes of one picture, drawn from a generator or a seed (same seed, same attributes). */
export function sampleAttributes(rngOrSeed: Rng | number = 0): Attributes {
  const rng = typeof rngOrSeed === 'function' ? rngOrSeed : createRng(hashSeed(checkSeed(rngOrSeed, 'seed'), 0xa7));
  const light = uniform(rng, 0, 2 * Math.PI);
  const background = BACKGROUNDS[weighted(rng, [0.4, 0.3, 0.3])];
  const bg = [rng(), rng(), rng()];
  const bg2 = [rng(), rng(), rng()];
  const a: Attributes = {
    smile: uniform(rng, -0.3, 1),
    eyeOpenness: rng() < 0.1 ? uniform(rng, 0.2, 0.5) : uniform(rng, 0.55, 1),
    browRaise: rng() < 0.6 ? uniform(rng, 0, 0.3) : uniform(rng, 0.3, 1),
    rotation: uniform(rng, -10, 10),
    shiftX: uniform(rng, -3, 3),
    shiftY: uniform(rng, -3, 3),
    scale: uniform(rng, 0.94, 1.06),
    lightX: Math.cos(light),
    lightY: Math.sin(light),
    lightIntensity: uniform(rng, 0, 0.35),
    hairStyle: pick(rng, HAIR_STYLES),
    hairColour: pick(rng, HAIR_COLOURS),
    glasses: GLASSES[weighted(rng, [0.5, 0.25, 0.25])],
    clothingR: rng(),
    clothingG: rng(),
    clothingB: rng(),
    background,
    backgroundR: bg[0],
    backgroundG: bg[1],
    backgroundB: bg[2],
    background2R: background === 'plain' ? bg[0] : bg2[0],
    background2G: background === 'plain' ? bg[1] : bg2[1],
    background2B: background === 'plain' ? bg[2] : bg2[2],
    backgroundAngle: uniform(rng, 0, 180),
    noise: rng() < 0.3 ? 0 : uniform(rng, 0, 0.05),
    noiseSeed: Math.floor(rng() * 4294967296),
  };
  return a;
}

/**
 * Complete and check attributes given by a caller: missing fields come from `fallback`; every value
 * must be in its ATTRIBUTE_SPEC range or class list. The result is a new object.
 */
export function resolveAttributes(given: Partial<Attributes> | undefined, fallback: Attributes, what = 'attributes'): Attributes {
  if (given === undefined) return { ...fallback };
  if (typeof given !== 'object' || given === null || Array.isArray(given)) throw invalidArgument(`${what} must be an object`);
  const known = new Set<string>([...ATTRIBUTE_SPEC.map((s) => s.name), 'noiseSeed']);
  for (const k of Object.keys(given)) if (!known.has(k)) throw invalidArgument(`${what}.${k} is not an attribute (known: ${[...known].join(', ')})`);
  const a = { ...fallback, ...given } as Attributes;
  for (const s of ATTRIBUTE_SPEC) {
    const v = a[s.name];
    if (s.kind === 'continuous') {
      if (typeof v !== 'number' || !Number.isFinite(v) || v < s.min || v > s.max) {
        throw invalidArgument(`${what}.${s.name} must be a number in [${s.min}, ${s.max}], got ${JSON.stringify(v)}`);
      }
    } else if (typeof v !== 'string' || !s.classes.includes(v)) {
      throw invalidArgument(`${what}.${s.name} must be one of ${s.classes.join(', ')}; got ${JSON.stringify(v)}`);
    }
  }
  checkSeed(a.noiseSeed, `${what}.noiseSeed`);
  return a;
}

/** How attributeVector encodes a categorical attribute: one 0/1 entry per class, or the class index. */
export type CategoricalEncoding = 'onehot' | 'index';

function checkEncoding(e: unknown): CategoricalEncoding {
  if (e === undefined) return 'onehot';
  if (e !== 'onehot' && e !== 'index') throw invalidArgument(`categorical must be 'onehot' or 'index', got ${JSON.stringify(e)}`);
  return e;
}

/** Names of attributeVector()'s entries: 'smile', …, 'hairStyle=bald', … (one-hot) or 'hairStyle' (index). */
export function attributeNames(opts?: { categorical?: CategoricalEncoding }): string[] {
  const enc = checkEncoding(opts?.categorical);
  return ATTRIBUTE_SPEC.flatMap((s) => (s.kind === 'continuous' || enc === 'index' ? [s.name] : s.classes.map((k) => `${s.name}=${k}`)));
}

/**
 * Attributes as a flat vector (names from attributeNames()): continuous values normalised to [-1, 1]
 * by their range; categorical ones one-hot (0/1, the default) or as the class index.
 */
export function attributeVector(a: Attributes, opts?: { categorical?: CategoricalEncoding }): number[] {
  const enc = checkEncoding(opts?.categorical);
  const v: number[] = [];
  for (const s of ATTRIBUTE_SPEC) {
    if (s.kind === 'continuous') {
      v.push((2 * ((a[s.name] as number) - s.min)) / (s.max - s.min) - 1);
    } else {
      const k = s.classes.indexOf(a[s.name] as string);
      if (k < 0) throw invalidArgument(`attributes.${s.name} must be one of ${s.classes.join(', ')}; got ${JSON.stringify(a[s.name])}`);
      if (enc === 'index') v.push(k);
      else for (let j = 0; j < s.classes.length; j++) v.push(j === k ? 1 : 0);
    }
  }
  return v;
}

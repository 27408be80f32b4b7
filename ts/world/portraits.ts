/**
 * The synthetic portrait world, its pictures: head-and-shoulders portraits drawn as SVG (one person's
 * identity parameters + one picture's attributes → one image), rasterised by sharp (librsvg) in strips
 * of many portraits at once, with pixel noise added in JS from the attributes' noise seed.
 *
 * renderPortraits() gives float pixels, portraitBatch() a native tensor with labels, portraitStream()
 * an endless (or bounded) deterministic stream of training batches that renders the next batch while
 * the consumer works on this one, and savePortraitSheet() a PNG contact sheet for eyeballing.
 *
 * Everything is a pure function of its arguments: the same items (or stream seed and batch index) give
 * byte-identical pixels.
 */
import os from 'node:os';
import nodePath from 'node:path';
import type * as sharpModule from 'sharp';
import { aborted, BiaError, invalidArgument } from '../errors';
import { writeFileAtomic } from '../images';
import { checkDevice, checkInt, checkSignal, type Device } from '../options';
import { Tensor, tensor } from '../tensor';
import {
  attributeNames,
  attributeVector,
  checkIdentity,
  checkSeed,
  createRng,
  hashSeed,
  identityParams,
  identityVector,
  IDENTITY_SPEC,
  resolveAttributes,
  sampleAttributes,
  type Attributes,
  type CategoricalEncoding,
  type HairColour,
  type IdentityParams,
} from './attributes';

type Sharp = typeof sharpModule.default;

/** Identities [0, 2000): the people models are trained on. */
export const TRAIN_IDENTITIES: readonly [number, number] = [0, 2000];
/** Identities [2000, 2200): people no model has seen, for evaluation. */
export const HELDOUT_IDENTITIES: readonly [number, number] = [2000, 2200];
/** The default portrait side in pixels. */
export const PORTRAIT_SIZE = 64;
/** The largest portrait side renderPortraits draws. */
export const MAX_PORTRAIT_SIZE = 1024;
/** The smallest. */
export const MIN_PORTRAIT_SIZE = 8;
/**
 * Portraits rasterised in one SVG document: 16 at 64 px was fastest on 2 cores (bigger strips get
 * slower: libvips renders the whole document once per region); fewer for big portraits (≤ 1 MP a strip).
 */
const stripLength = (size: number) => Math.max(1, Math.min(16, Math.floor(2 ** 20 / (size * size))));

let sharpCache: Sharp | undefined;

function sharp(): Sharp {
  if (!sharpCache) {
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      sharpCache = require('sharp') as Sharp;
    } catch (e) {
      throw new BiaError('BIA_IMAGE_ERROR', `the portrait world needs the 'sharp' package, which could not be loaded: ${(e as Error).message}`, { cause: e });
    }
  }
  return sharpCache;
}

// ---------------------------------------------------------------------------------------------------
// colours

type Rgb = [number, number, number];

const mix = (a: Rgb, b: Rgb, t: number): Rgb => [a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t, a[2] + (b[2] - a[2]) * t];
const scaleRgb = (a: Rgb, f: number): Rgb => [a[0] * f, a[1] * f, a[2] * f];
const css = (a: Rgb): string => `rgb(${a.map((v) => Math.max(0, Math.min(255, Math.round(v)))).join(',')})`;
const unitRgb = (r: number, g: number, b: number): Rgb => [r * 255, g * 255, b * 255];

/** A colour along a palette, t in [0, 1]. */
function along(palette: readonly Rgb[], t: number): Rgb {
  const x = Math.max(0, Math.min(1, t)) * (palette.length - 1);
  const i = Math.min(palette.length - 2, Math.floor(x));
  return mix(palette[i], palette[i + 1], x - i);
}

const SKIN: readonly Rgb[] = [
  [70, 44, 30],
  [118, 78, 52],
  [168, 118, 84],
  [214, 166, 130],
  [244, 208, 182],
];
const IRIS: readonly Rgb[] = [
  [62, 36, 20],
  [110, 78, 36],
  [72, 110, 58],
  [58, 104, 170],
  [120, 132, 142],
];
const BROW: readonly Rgb[] = [
  [150, 108, 70],
  [22, 18, 16],
];
const LIPS: readonly Rgb[] = [
  [205, 130, 128],
  [168, 38, 58],
];
const HAIR: Record<HairColour, Rgb> = {
  black: [26, 22, 22],
  brown: [84, 54, 34],
  chestnut: [128, 70, 38],
  blonde: [222, 188, 118],
  auburn: [156, 62, 30],
  grey: [168, 168, 170],
};

function skinColour(p: IdentityParams): Rgb {
  const base = along(SKIN, p.skinTone);
  const w = p.skinWarmth - 0.5;
  return [base[0] * (1 + 0.05 * w), base[1] * (1 + 0.02 * w), base[2] * (1 - 0.16 * w)];
}

// ---------------------------------------------------------------------------------------------------
// drawing (in the units of a 64×64 portrait)

const f = (v: number): string => (Math.round(v * 100) / 100).toString();
const CX = 32;
const CY = 29;
/** The pose's pivot (x = CX) and the drawing's magnification. */
const PIVOT = 36;
const ZOOM = 1.15;

/** The face outline: a domed head over a jaw of the person's width. */
function facePath(p: IdentityParams): string {
  const w = p.faceWidth;
  const chin = CY + p.chinLength;
  const j = p.jawWidth;
  return (
    `M${f(CX - w)} ${CY}A${f(w)} ${f(p.faceHeight)} 0 0 1 ${f(CX + w)} ${CY}` +
    `C${f(CX + w)} ${f(CY + p.chinLength * 0.55)} ${f(CX + w * j)} ${f(chin)} ${CX} ${f(chin)}` +
    `C${f(CX - w * j)} ${f(chin)} ${f(CX - w)} ${f(CY + p.chinLength * 0.55)} ${f(CX - w)} ${CY}Z`
  );
}

/** A point on the ellipse (rx, ry) around the face centre, at `deg` degrees (0 = right, 270 = top). */
function onHead(rx: number, ry: number, deg: number): [number, number] {
  const t = (deg * Math.PI) / 180;
  return [CX + rx * Math.cos(t), CY + ry * Math.sin(t)];
}

/** The hair cap over the skull, ending in a hair line across the forehead. */
function capPath(p: IdentityParams, hairline: string): string {
  const w = p.faceWidth + 0.9;
  const h = p.faceHeight + 2;
  return `M${f(CX - w)} ${CY - 0.5}A${f(w)} ${f(h)} 0 0 1 ${f(CX + w)} ${CY - 0.5}${hairline}Z`;
}

function hairBack(p: IdentityParams, a: Attributes, colour: string): string {
  const w = p.faceWidth;
  const chin = CY + p.chinLength;
  switch (a.hairStyle) {
    case 'long': {
      const o = w + 2.8;
      return `<path d="M${f(CX - o)} ${f(chin + 9)}L${f(CX - o)} ${CY - 2}A${f(o)} ${f(p.faceHeight + 2.8)} 0 0 1 ${f(CX + o)} ${CY - 2}L${f(CX + o)} ${f(chin + 9)}Q${CX} ${f(chin + 12)} ${f(CX - o)} ${f(chin + 9)}Z" fill="${colour}"/>`;
    }
    case 'bob': {
      const o = w + 3.2;
      const bottom = CY + p.chinLength * 0.55;
      return `<path d="M${f(CX - o)} ${f(bottom)}L${f(CX - o)} ${CY - 2}A${f(o)} ${f(p.faceHeight + 3)} 0 0 1 ${f(CX + o)} ${CY - 2}L${f(CX + o)} ${f(bottom)}Q${CX} ${f(bottom - 2)} ${f(CX - o)} ${f(bottom)}Z" fill="${colour}"/>`;
    }
    case 'curly': {
      let s = '';
      for (let deg = 160; deg <= 380; deg += 20) {
        const [x, y] = onHead(w + 1.6, p.faceHeight + 1.2, deg);
        s += `<circle cx="${f(x)}" cy="${f(y)}" r="3.1"/>`;
      }
      return `<g fill="${colour}">${s}</g>`;
    }
    default:
      return '';
  }
}

function hairFront(p: IdentityParams, a: Attributes, colour: string): string {
  const w = p.faceWidth;
  const h = p.faceHeight;
  const side = (y: number) => `L${f(CX + w - 0.4)} ${f(y)}`;
  switch (a.hairStyle) {
    case 'bald':
      return `<g fill="${colour}"><ellipse cx="${f(CX - w + 0.4)}" cy="${CY - 1.5}" rx="1.3" ry="3.4"/><ellipse cx="${f(CX + w - 0.4)}" cy="${CY - 1.5}" rx="1.3" ry="3.4"/></g>`;
    case 'short':
      return `<path d="${capPath(p, `${side(CY - h * 0.3)}Q${CX} ${f(CY - h * 0.72)} ${f(CX - w + 0.4)} ${f(CY - h * 0.3)}`)}" fill="${colour}"/>`;
    case 'long':
      return `<path d="${capPath(p, `${side(CY - h * 0.15)}Q${f(CX + w * 0.15)} ${f(CY - h * 0.85)} ${f(CX - w * 0.35)} ${f(CY - h * 0.5)}Q${f(CX - w * 0.8)} ${f(CY - h * 0.4)} ${f(CX - w + 0.4)} ${f(CY - h * 0.1)}`)}" fill="${colour}"/>`;
    case 'bob':
      return `<path d="${capPath(p, `${side(CY + 2)}L${f(CX + w - 1.4)} ${f(CY - h * 0.42)}Q${CX} ${f(CY - h * 0.5)} ${f(CX - w + 1.4)} ${f(CY - h * 0.42)}L${f(CX - w + 0.4)} ${CY + 2}`)}" fill="${colour}"/>`;
    case 'curly': {
      let s = `<path d="${capPath(p, `${side(CY - h * 0.35)}Q${CX} ${f(CY - h * 0.7)} ${f(CX - w + 0.4)} ${f(CY - h * 0.35)}`)}"/>`;
      for (let deg = 200; deg <= 340; deg += 28) {
        const [x, y] = onHead(w * 0.75, h * 0.62, deg);
        s += `<circle cx="${f(x)}" cy="${f(y)}" r="2.3"/>`;
      }
      return `<g fill="${colour}">${s}</g>`;
    }
    case 'spiky': {
      let pts = `${f(CX + w - 0.4)},${f(CY - h * 0.3)} `;
      const n = 9;
      for (let i = 0; i <= 2 * n; i++) {
        const deg = 350 - (i * 170) / (2 * n);
        const out = i % 2 === 1 ? 4.2 : 0.8;
        const [x, y] = onHead(w + out * 0.8, h + out, deg);
        pts += `${f(x)},${f(y)} `;
      }
      pts += `${f(CX - w + 0.4)},${f(CY - h * 0.3)} ${CX},${f(CY - h * 0.62)}`;
      return `<polygon points="${pts}" fill="${colour}"/>`;
    }
  }
}

function eye(p: IdentityParams, a: Attributes, x: number, y: number, left: boolean, id: string): string {
  const rx = p.eyeWidth;
  const ry = Math.max(0.22, rx * p.eyeRoundness * a.eyeOpenness);
  const tilt = left ? p.eyeTilt : -p.eyeTilt;
  const iris = css(along(IRIS, p.irisColour));
  return (
    `<g transform="translate(${f(x)} ${f(y)}) rotate(${f(tilt)})">` +
    `<clipPath id="${id}"><ellipse rx="${f(rx)}" ry="${f(ry)}"/></clipPath>` +
    `<ellipse rx="${f(rx)}" ry="${f(ry)}" fill="#f2eee8"/>` +
    `<g clip-path="url(#${id})"><circle r="${f(rx * 0.58)}" fill="${iris}"/><circle r="${f(rx * 0.26)}" fill="#0d0b0b"/></g>` +
    `<path d="M${f(-rx - 0.2)} 0.1A${f(rx + 0.2)} ${f(ry + 0.15)} 0 0 1 ${f(rx + 0.2)} 0.1" fill="none" stroke="#2a1c16" stroke-width="0.65"/>` +
    `</g>`
  );
}

function brow(p: IdentityParams, a: Attributes, x: number, eyeY: number, left: boolean, colour: string): string {
  const rx = p.eyeWidth;
  const s = left ? 1 : -1; // +1: the inner end is to the right
  const y = eyeY - rx * p.eyeRoundness - 1.9 - a.browRaise * 1.8;
  const drop = Math.tan((p.browAngle * Math.PI) / 180) * rx;
  const inner: [number, number] = [x + s * rx * 1.0, y + drop];
  const outer: [number, number] = [x - s * rx * 1.2, y + 0.3 - drop * 0.3];
  const mid: [number, number] = [x - s * rx * 0.1, y - p.browArch - a.browRaise * 0.5];
  return `<path d="M${f(inner[0])} ${f(inner[1])}Q${f(mid[0])} ${f(mid[1])} ${f(outer[0])} ${f(outer[1])}" fill="none" stroke="${colour}" stroke-width="${f(p.browThickness)}" stroke-linecap="round"/>`;
}

function glasses(p: IdentityParams, a: Attributes, xl: number, xr: number, y: number): string {
  if (a.glasses === 'none') return '';
  const r = p.eyeWidth + 1.5;
  const frame = 'fill="#ffffff" fill-opacity="0.12" stroke="#161616" stroke-width="0.8"';
  let lenses: string;
  let half: number;
  if (a.glasses === 'round') {
    lenses = `<circle cx="${f(xl)}" cy="${f(y)}" r="${f(r)}" ${frame}/><circle cx="${f(xr)}" cy="${f(y)}" r="${f(r)}" ${frame}/>`;
    half = r;
  } else {
    const hw = r + 0.4;
    const hh = r * 0.72;
    lenses =
      `<rect x="${f(xl - hw)}" y="${f(y - hh)}" width="${f(2 * hw)}" height="${f(2 * hh)}" rx="0.7" ${frame}/>` +
      `<rect x="${f(xr - hw)}" y="${f(y - hh)}" width="${f(2 * hw)}" height="${f(2 * hh)}" rx="0.7" ${frame}/>`;
    half = hw;
  }
  const w = p.faceWidth;
  const arms =
    `<path d="M${f(xl + half)} ${f(y)}Q${CX} ${f(y - 1.6)} ${f(xr - half)} ${f(y)}` +
    `M${f(xl - half)} ${f(y - 0.3)}L${f(CX - w + 0.3)} ${f(y - 0.8)}M${f(xr + half)} ${f(y - 0.3)}L${f(CX + w - 0.3)} ${f(y - 0.8)}" ` +
    `fill="none" stroke="#161616" stroke-width="0.8"/>`;
  return lenses + arms;
}

function mouth(p: IdentityParams, a: Attributes, y: number): string {
  const hw = p.mouthWidth / 2;
  const s = a.smile;
  const lf = p.lipFullness;
  const yc = y - s * 1.5;
  const L = `${f(CX - hw)} ${f(yc)}`;
  const R = `${f(CX + hw)} ${f(yc)}`;
  const lip = along(LIPS, p.lipColour);
  const open = Math.max(0, s - 0.5) * 2; // 0 … 1
  let d = `<path d="M${L}Q${CX} ${f(y - 1.5 * lf + 0.5 * s)} ${R}Q${CX} ${f(y + 1.7 * lf + 1.4 * Math.max(0, s) + open)} ${L}Z" fill="${css(lip)}"/>`;
  if (open > 0) {
    d += `<path d="M${L}Q${CX} ${f(y + s * 1.3 - 0.2)} ${R}Q${CX} ${f(y + s * 1.3 + 1.6 * open)} ${L}Z" fill="#f4f0e6"/>`;
  }
  d += `<path d="M${L}Q${CX} ${f(y + s * 1.3)} ${R}" fill="none" stroke="${css(scaleRgb(lip, 0.55))}" stroke-width="0.5"/>`;
  return d;
}

function background(a: Attributes, id: string): string {
  const c1 = css(unitRgb(a.backgroundR, a.backgroundG, a.backgroundB));
  const c2 = css(unitRgb(a.background2R, a.background2G, a.background2B));
  const t = (a.backgroundAngle * Math.PI) / 180;
  const dx = 0.5 * Math.cos(t);
  const dy = 0.5 * Math.sin(t);
  switch (a.background) {
    case 'plain':
      return `<rect width="64" height="64" fill="${c1}"/>`;
    case 'gradient':
      return (
        `<linearGradient id="${id}" x1="${f(0.5 - dx)}" y1="${f(0.5 - dy)}" x2="${f(0.5 + dx)}" y2="${f(0.5 + dy)}">` +
        `<stop offset="0" stop-color="${c1}"/><stop offset="1" stop-color="${c2}"/></linearGradient>` +
        `<rect width="64" height="64" fill="url(#${id})"/>`
      );
    case 'stripes': {
      let s = '';
      for (let x = -40; x < 104; x += 8) s += `<rect x="${x}" y="-40" width="4" height="144"/>`;
      return `<rect width="64" height="64" fill="${c1}"/><g fill="${c2}" transform="rotate(${f(a.backgroundAngle)} 32 32)">${s}</g>`;
    }
  }
}

function lighting(a: Attributes, id: string): string {
  if (a.lightIntensity <= 0) return '';
  const x = 0.5 * a.lightX;
  const y = 0.5 * a.lightY;
  const o = f(a.lightIntensity);
  return (
    `<linearGradient id="${id}" x1="${f(0.5 + x)}" y1="${f(0.5 + y)}" x2="${f(0.5 - x)}" y2="${f(0.5 - y)}">` +
    `<stop offset="0" stop-color="#fff" stop-opacity="${o}"/><stop offset="0.5" stop-color="#fff" stop-opacity="0"/>` +
    `<stop offset="0.5" stop-color="#000" stop-opacity="0"/><stop offset="1" stop-color="#000" stop-opacity="${o}"/></linearGradient>` +
    `<rect width="64" height="64" fill="url(#${id})"/>`
  );
}

/** The portrait's elements in 64×64 units; `id` prefixes the SVG ids so many portraits share a document. */
function portraitBody(p: IdentityParams, a: Attributes, id: string): string {
  const skin = skinColour(p);
  const shade = scaleRgb(skin, 0.84);
  const skinCss = css(skin);
  const shadeCss = css(shade);
  const hair = css(HAIR[a.hairColour]);
  const w = p.faceWidth;
  const chin = CY + p.chinLength;
  const eyeY = CY + p.eyeLevel;
  const xl = CX - p.eyeSpacing;
  const xr = CX + p.eyeSpacing;
  const noseEnd = eyeY + p.noseLength * (chin - eyeY);
  const mouthY = noseEnd + 1 + p.mouthLevel * (chin - noseEnd - 1);
  const nw = p.noseWidth / 2;
  const earY = eyeY + 2;
  const ear = (x: number) => `<ellipse cx="${f(x)}" cy="${f(earY)}" rx="${f(p.earSize * 0.55)}" ry="${f(p.earSize)}"/>`;
  const clothing = css(unitRgb(a.clothingR, a.clothingG, a.clothingB));

  let moles = '';
  for (let k = 1; k <= p.moleCount; k++) {
    const mx = p[`mole${k}X` as keyof IdentityParams];
    const my = p[`mole${k}Y` as keyof IdentityParams];
    const narrow = my > 0 ? 1 - (1 - p.jawWidth) * my * my : 1;
    const x = CX + mx * w * 0.88 * narrow;
    const y = CY + my * (my < 0 ? p.faceHeight : p.chinLength) * 0.92;
    moles += `<circle cx="${f(x)}" cy="${f(y)}" r="0.72"/>`;
  }

  // Pose: about the base of the neck; the drawing is made 1.15× larger than its 64-unit design.
  const pose = `translate(${f(CX + a.shiftX)} ${f(PIVOT + a.shiftY)}) rotate(${f(a.rotation)}) scale(${f(a.scale * ZOOM)}) translate(${-CX} ${-PIVOT})`;
  return (
    background(a, `${id}b`) +
    `<g transform="${pose}">` +
    // shoulders and clothing
    `<path d="M${f(CX - 27)} 70L${f(CX - 26)} ${f(chin + 13)}Q${f(CX - 22)} ${f(chin + 5)} ${f(CX - 9)} ${f(chin + 4)}L${f(CX + 9)} ${f(chin + 4)}` +
    `Q${f(CX + 22)} ${f(chin + 5)} ${f(CX + 26)} ${f(chin + 13)}L${f(CX + 27)} 70Z" fill="${clothing}"/>` +
    hairBack(p, a, hair) +
    // neck, with the collar's opening
    `<path d="M${f(CX - w * 0.42)} ${f(chin - 6)}L${f(CX - w * 0.42)} ${f(chin + 4.2)}L${CX} ${f(chin + 8)}L${f(CX + w * 0.42)} ${f(chin + 4.2)}L${f(CX + w * 0.42)} ${f(chin - 6)}Z" fill="${shadeCss}"/>` +
    `<g fill="${shadeCss}">${ear(CX - w + 0.2)}${ear(CX + w - 0.2)}</g>` +
    `<path d="${facePath(p)}" fill="${skinCss}"/>` +
    (moles && `<g fill="#3a2418">${moles}</g>`) +
    `<path d="M${f(CX - 0.4)} ${f(eyeY + 2)}Q${f(CX - nw * 0.45)} ${f(noseEnd - 2)} ${f(CX - nw)} ${f(noseEnd - 0.4)}` +
    `Q${f(CX - nw * 0.6)} ${f(noseEnd + 0.9)} ${CX} ${f(noseEnd + 0.6)}Q${f(CX + nw * 0.6)} ${f(noseEnd + 0.9)} ${f(CX + nw)} ${f(noseEnd - 0.4)}" ` +
    `fill="none" stroke="${css(scaleRgb(skin, 0.62))}" stroke-width="0.75" stroke-linecap="round"/>` +
    mouth(p, a, mouthY) +
    eye(p, a, xl, eyeY, true, `${id}l`) +
    eye(p, a, xr, eyeY, false, `${id}r`) +
    brow(p, a, xl, eyeY, true, css(along(BROW, p.browDarkness))) +
    brow(p, a, xr, eyeY, false, css(along(BROW, p.browDarkness))) +
    hairFront(p, a, hair) +
    glasses(p, a, xl, xr, eyeY) +
    `</g>` +
    lighting(a, `${id}g`)
  );
}

function checkSize(size: unknown): number {
  return size === undefined ? PORTRAIT_SIZE : checkInt(size, 'size', MIN_PORTRAIT_SIZE, MAX_PORTRAIT_SIZE);
}

/**
 * One portrait as a standalone SVG document of size×size pixels (the pixel noise is not part of it: it
 * is added to the raster by renderPortraits).
 */
export function portraitSvg(id: IdentityParams, a: Attributes, size = PORTRAIT_SIZE): string {
  checkIdentityParams(id);
  const attrs = resolveAttributes(a, sampleAttributes(0));
  const s = checkSize(size);
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${s}" height="${s}" viewBox="0 0 64 64">${portraitBody(id, attrs, 'p')}</svg>`;
}

function checkIdentityParams(p: unknown): asserts p is IdentityParams {
  if (typeof p !== 'object' || p === null) throw invalidArgument('identity parameters must be an object (see identityParams())');
  for (const s of IDENTITY_SPEC) {
    const v = (p as Record<string, unknown>)[s.name];
    if (typeof v !== 'number' || !Number.isFinite(v) || v < s.min || v > s.max) {
      throw invalidArgument(`identity parameter ${s.name} must be a number in [${s.min}, ${s.max}], got ${JSON.stringify(v)}`);
    }
  }
}

// ---------------------------------------------------------------------------------------------------
// rasterising

/** One picture to draw: a person, and the picture's attributes (given, or drawn from `seed`). */
export interface PortraitItem {
  identity: number;
  /** Attributes to draw; missing ones are drawn from `seed`. */
  attributes?: Partial<Attributes>;
  /** Seed of the drawn attributes (default: the item's index in the list). */
  seed?: number;
}

export interface PortraitOptions {
  /** Side in pixels (default 64). */
  size?: number;
  /** The world: which identity parameters each identity number has (default 0). */
  worldSeed?: number;
  /** Strips rasterised at once (default: the number of cores, at most 4). */
  concurrency?: number;
  signal?: AbortSignal;
}

export interface RenderedPortraits {
  /** N×3×S×S, NCHW, in [-1, 1]: 8-bit levels v as 2v/255 − 1 (what readImage gives for a saved PNG). */
  pixels: Float32Array;
  size: number;
  identities: Int32Array;
  /** N×P identity parameters normalised to [-1, 1] (identityVector, IDENTITY_SPEC's order). */
  identityParams: Float32Array;
  /** What was drawn, per image. */
  attributes: Attributes[];
}

interface Settings {
  size: number;
  worldSeed: number;
  concurrency: number;
  signal?: AbortSignal;
}

function checkObject(opts: unknown, what = 'options'): void {
  if (opts !== undefined && (typeof opts !== 'object' || opts === null || Array.isArray(opts))) throw invalidArgument(`${what} must be an object`);
}

function checkRenderOptions(opts: PortraitOptions | undefined): Settings {
  checkObject(opts);
  const o = opts ?? {};
  checkSignal(o.signal);
  return {
    size: checkSize(o.size),
    worldSeed: o.worldSeed === undefined ? 0 : checkSeed(o.worldSeed, 'worldSeed'),
    concurrency: o.concurrency === undefined ? Math.max(1, Math.min(4, os.availableParallelism())) : checkInt(o.concurrency, 'concurrency', 1, 64),
    signal: o.signal,
  };
}

interface Resolved {
  identity: number;
  params: IdentityParams;
  attributes: Attributes;
}

function resolveItems(items: unknown, worldSeed: number): Resolved[] {
  if (!Array.isArray(items) || items.length === 0) throw invalidArgument('items must be a non-empty array of { identity, attributes?, seed? }');
  const cache = new Map<number, IdentityParams>();
  return items.map((it: unknown, i) => {
    if (typeof it !== 'object' || it === null || Array.isArray(it)) throw invalidArgument(`items[${i}] must be { identity, attributes?, seed? }`);
    const item = it as PortraitItem;
    const identity = checkIdentity(item.identity, `items[${i}].identity`);
    const seed = item.seed === undefined ? i : checkSeed(item.seed, `items[${i}].seed`);
    let params = cache.get(identity);
    if (!params) {
      params = identityParams(identity, worldSeed);
      cache.set(identity, params);
    }
    return { identity, params, attributes: resolveAttributes(item.attributes, sampleAttributes(seed), `items[${i}].attributes`) };
  });
}

/** Standard normal numbers from a uniform generator (Box–Muller, both outputs used). */
function gaussians(seed: number): () => number {
  const rng = createRng(seed);
  let spare = 0;
  let has = false;
  return () => {
    if (has) {
      has = false;
      return spare;
    }
    const u = 1 - rng();
    const v = rng();
    const r = Math.sqrt(-2 * Math.log(u));
    spare = r * Math.sin(2 * Math.PI * v);
    has = true;
    return r * Math.cos(2 * Math.PI * v);
  };
}

/** Rasterise a strip of portraits (one SVG, S wide, n·S high) to 8-bit RGB. */
async function rasteriseStrip(strip: Resolved[], first: number, size: number): Promise<Buffer> {
  let svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${size}" height="${size * strip.length}">`;
  strip.forEach((r, k) => {
    svg += `<svg x="0" y="${k * size}" width="${size}" height="${size}" viewBox="0 0 64 64">${portraitBody(r.params, r.attributes, `i${first + k}`)}</svg>`;
  });
  svg += '</svg>';
  try {
    const { data, info } = await sharp()(Buffer.from(svg), { density: 72, limitInputPixels: false })
      .removeAlpha()
      .raw()
      .toBuffer({ resolveWithObject: true });
    if (info.width !== size || info.height !== size * strip.length || info.channels !== 3) {
      throw new Error(`librsvg gave ${info.width}×${info.height}×${info.channels}, expected ${size}×${size * strip.length}×3`);
    }
    return data;
  } catch (e) {
    throw new BiaError('BIA_IMAGE_ERROR', `cannot rasterise portraits: ${(e as Error).message}`, { cause: e });
  }
}

/** 8-bit RGB (HWC) of one portrait + its noise → NCHW floats in [-1, 1] at `out[offset…]`. */
function toPlanes(rgb: Buffer, start: number, size: number, a: Attributes, out: Float32Array, offset: number): void {
  const plane = size * size;
  const sigma = a.noise * 255;
  const g = sigma > 0 ? gaussians(a.noiseSeed) : undefined;
  for (let px = 0; px < plane; px++) {
    for (let ch = 0; ch < 3; ch++) {
      let v = rgb[start + px * 3 + ch];
      if (g) v = Math.max(0, Math.min(255, Math.round(v + sigma * g())));
      out[offset + ch * plane + px] = (2 * v) / 255 - 1;
    }
  }
}

async function render(resolved: Resolved[], s: Settings): Promise<Float32Array> {
  const { size } = s;
  const per = 3 * size * size;
  const pixels = new Float32Array(resolved.length * per);
  const STRIP = stripLength(size);
  const strips = Math.ceil(resolved.length / STRIP);
  let next = 0;
  const worker = async () => {
    while (next < strips) {
      const k = next++;
      if (s.signal?.aborted) throw aborted(s.signal);
      const first = k * STRIP;
      const strip = resolved.slice(first, first + STRIP);
      const rgb = await rasteriseStrip(strip, first, size);
      strip.forEach((r, j) => toPlanes(rgb, j * size * size * 3, size, r.attributes, pixels, (first + j) * per));
    }
  };
  await Promise.all(Array.from({ length: Math.min(s.concurrency, strips) }, worker));
  if (s.signal?.aborted) throw aborted(s.signal);
  return pixels;
}

function identityMatrix(resolved: Resolved[]): Float32Array {
  const P = IDENTITY_SPEC.length;
  const out = new Float32Array(resolved.length * P);
  resolved.forEach((r, i) => identityVector(r.params, out, i * P));
  return out;
}

/**
 * Draw portraits: each item is a person (identity) and a picture (attributes, given or drawn from the
 * item's seed). Same items, same options → byte-identical pixels.
 */
export async function renderPortraits(items: PortraitItem[], opts?: PortraitOptions): Promise<RenderedPortraits> {
  const s = checkRenderOptions(opts);
  const resolved = resolveItems(items, s.worldSeed);
  if (s.signal?.aborted) throw aborted(s.signal);
  const pixels = await render(resolved, s);
  return {
    pixels,
    size: s.size,
    identities: Int32Array.from(resolved, (r) => r.identity),
    identityParams: identityMatrix(resolved),
    attributes: resolved.map((r) => r.attributes),
  };
}

// ---------------------------------------------------------------------------------------------------
// batches for training

export interface PortraitBatchOptions extends PortraitOptions {
  /** Where the images tensor lives (default 'cpu'). */
  device?: Device;
  /** How categorical attributes are encoded in `attributes` (default 'onehot'). */
  categorical?: CategoricalEncoding;
}

export interface PortraitBatch {
  /** [N, 3, S, S] float32 in [-1, 1]. The receiver owns it (dispose() it when done). */
  images: Tensor;
  identities: Int32Array;
  /** N×P identity parameters normalised to [-1, 1] (IDENTITY_SPEC's order). */
  identityParams: Float32Array;
  /** N×A attribute vectors (attributeVector; names from attributeNames({ categorical })). */
  attributes: Float32Array;
  /** What was drawn, per image. */
  records: Attributes[];
}

function checkBatchOptions(opts: PortraitBatchOptions | undefined): { s: Settings; device?: Device; categorical: CategoricalEncoding } {
  const s = checkRenderOptions(opts);
  const categorical = opts?.categorical ?? 'onehot';
  attributeNames({ categorical }); // validates
  return { s, device: opts?.device === undefined ? undefined : checkDevice(opts.device), categorical };
}

async function batchOf(resolved: Resolved[], s: Settings, device: Device | undefined, categorical: CategoricalEncoding): Promise<PortraitBatch> {
  const pixels = await render(resolved, s);
  const A = attributeNames({ categorical }).length;
  const attributes = new Float32Array(resolved.length * A);
  resolved.forEach((r, i) => attributes.set(attributeVector(r.attributes, { categorical }), i * A));
  const images = await tensor(pixels, [resolved.length, 3, s.size, s.size], { device, signal: s.signal });
  return {
    images,
    identities: Int32Array.from(resolved, (r) => r.identity),
    identityParams: identityMatrix(resolved),
    attributes,
    records: resolved.map((r) => r.attributes),
  };
}

/** renderPortraits as a native tensor [N, 3, S, S] with its labels. */
export async function portraitBatch(items: PortraitItem[], opts?: PortraitBatchOptions): Promise<PortraitBatch> {
  const { s, device, categorical } = checkBatchOptions(opts);
  const resolved = resolveItems(items, s.worldSeed);
  if (s.signal?.aborted) throw aborted(s.signal);
  return batchOf(resolved, s, device, categorical);
}

export interface PortraitStreamOptions extends PortraitBatchOptions {
  /** The identities drawn from: [lo, hi) (e.g. TRAIN_IDENTITIES). */
  identities: readonly [number, number];
  /** Images per batch. */
  batchSize: number;
  /** Seed of the stream (default 0): batch k is the same for the same seed, whatever came before. */
  seed?: number;
  /** Index of the first batch (default 0), to resume a stream. */
  startBatch?: number;
  /** Stop after this many batches (default: endless). */
  batches?: number;
  /** Pictures of each drawn identity in a batch, next to each other (default 1; must divide batchSize). */
  samplesPerIdentity?: number;
}

/** The batch with this index: uniform identities from [lo, hi), attributes drawn per picture. */
function streamItems(lo: number, hi: number, batchSize: number, perIdentity: number, seed: number, index: number): PortraitItem[] {
  const rng = createRng(hashSeed(seed, index, 0x5b));
  const items: PortraitItem[] = [];
  for (let i = 0; i < batchSize / perIdentity; i++) {
    const identity = lo + Math.min(hi - lo - 1, Math.floor(rng() * (hi - lo)));
    for (let j = 0; j < perIdentity; j++) items.push({ identity, seed: Math.floor(rng() * 4294967296) });
  }
  return items;
}

export interface PortraitBatchAt extends PortraitBatch {
  /** The batch's index in the stream. */
  index: number;
}

/**
 * A deterministic stream of training batches for `for await`: batch k depends only on (seed, k) and
 * the world. While the consumer works on one batch the next is rendered (one batch ahead). Leaving
 * the loop (break, return, an exception) disposes the batch rendered ahead. Never touches disk.
 */
export function portraitStream(opts: PortraitStreamOptions): AsyncGenerator<PortraitBatchAt, void, undefined> {
  if (typeof opts !== 'object' || opts === null || Array.isArray(opts)) throw invalidArgument('portraitStream needs options { identities: [lo, hi), batchSize, … }');
  const { s, device, categorical } = checkBatchOptions(opts);
  const ids = opts.identities;
  if (!Array.isArray(ids) || ids.length !== 2) throw invalidArgument(`identities must be [lo, hi), got ${JSON.stringify(ids)}`);
  const lo = checkIdentity(ids[0], 'identities[0]');
  const hi = checkInt(ids[1], 'identities[1]', 0, 2147483648);
  if (hi <= lo) throw invalidArgument(`identities [${lo}, ${hi}) is empty`);
  const batchSize = checkInt(opts.batchSize, 'batchSize', 1, 65536);
  const perIdentity = opts.samplesPerIdentity === undefined ? 1 : checkInt(opts.samplesPerIdentity, 'samplesPerIdentity', 1, batchSize);
  if (batchSize % perIdentity !== 0) throw invalidArgument(`samplesPerIdentity (${perIdentity}) must divide batchSize (${batchSize})`);
  const seed = opts.seed === undefined ? 0 : checkSeed(opts.seed, 'seed');
  const start = opts.startBatch === undefined ? 0 : checkInt(opts.startBatch, 'startBatch', 0, Number.MAX_SAFE_INTEGER);
  const end = opts.batches === undefined ? Infinity : start + checkInt(opts.batches, 'batches', 0, Number.MAX_SAFE_INTEGER);

  const make = (index: number): Promise<PortraitBatchAt> => {
    const resolved = resolveItems(streamItems(lo, hi, batchSize, perIdentity, seed, index), s.worldSeed);
    const p = batchOf(resolved, s, device, categorical).then((b) => ({ ...b, index }));
    p.catch(() => undefined); // handled where it is awaited; never an unhandled rejection meanwhile
    return p;
  };

  async function* stream(): AsyncGenerator<PortraitBatchAt, void, undefined> {
    let ahead: Promise<PortraitBatchAt> | undefined = start < end ? make(start) : undefined;
    try {
      for (let k = start; ahead; k++) {
        const current: PortraitBatchAt = await ahead;
        ahead = k + 1 < end ? make(k + 1) : undefined;
        yield current;
      }
    } finally {
      if (ahead) {
        const left = ahead;
        ahead = undefined;
        await left.then((b) => b.images.dispose(), () => undefined);
      }
    }
  }
  return stream();
}

// ---------------------------------------------------------------------------------------------------
// contact sheet

export interface PortraitSheetOptions {
  /** One row per identity (default 0 … 7). */
  identities?: number[];
  /** Pictures per identity, one column each (default 8). Column j has the same attributes in every row. */
  samples?: number;
  /** Seed of the columns' attributes (default 0). */
  seed?: number;
  /** Attributes fixed in every cell (e.g. { noise: 0 }). */
  attributes?: Partial<Attributes>;
  size?: number;
  worldSeed?: number;
  /** Integer magnification of each cell (nearest neighbour; default 2). */
  zoom?: number;
  /** Pixels between cells (default 2, before zoom). */
  gap?: number;
  signal?: AbortSignal;
}

export interface PortraitSheet {
  path: string;
  width: number;
  height: number;
  rows: number;
  columns: number;
}

/**
 * A PNG contact sheet: rows are identities, columns pictures (column j's attributes are the same in
 * every row, so a row shows one person under changing conditions and a column different people under
 * the same ones). The file appears atomically.
 */
export async function savePortraitSheet(path: string, opts?: PortraitSheetOptions): Promise<PortraitSheet> {
  if (typeof path !== 'string' || path.length === 0 || path.includes('\0')) throw invalidArgument('path must be a non-empty string');
  if (nodePath.extname(path).toLowerCase() !== '.png') throw invalidArgument(`a portrait sheet is a PNG: the path must end in .png, got ${JSON.stringify(path)}`);
  checkObject(opts);
  const o = opts ?? {};
  const identities = o.identities ?? [0, 1, 2, 3, 4, 5, 6, 7];
  if (!Array.isArray(identities) || identities.length === 0 || identities.length > 256) throw invalidArgument('identities must be an array of 1 to 256 identities');
  identities.forEach((id, i) => checkIdentity(id, `identities[${i}]`));
  const samples = o.samples === undefined ? 8 : checkInt(o.samples, 'samples', 1, 256);
  const seed = o.seed === undefined ? 0 : checkSeed(o.seed, 'seed');
  const zoom = o.zoom === undefined ? 2 : checkInt(o.zoom, 'zoom', 1, 16);
  const gap = o.gap === undefined ? 2 : checkInt(o.gap, 'gap', 0, 64);
  const s = checkRenderOptions({ size: o.size, worldSeed: o.worldSeed, signal: o.signal });
  const seeds = Array.from({ length: samples }, (_, j) => hashSeed(seed, j, 0x5e));
  const items = identities.flatMap((identity) => seeds.map((sd) => ({ identity, seed: sd, attributes: o.attributes })));
  const { pixels, size } = await renderPortraits(items, s);

  const width = gap + samples * (size + gap);
  const height = gap + identities.length * (size + gap);
  const rgb = Buffer.alloc(width * height * 3, 255);
  const plane = size * size;
  items.forEach((_, i) => {
    const row = Math.floor(i / samples);
    const col = i % samples;
    const left = gap + col * (size + gap);
    const top = gap + row * (size + gap);
    for (let y = 0; y < size; y++) {
      for (let x = 0; x < size; x++) {
        const o3 = ((top + y) * width + left + x) * 3;
        for (let ch = 0; ch < 3; ch++) rgb[o3 + ch] = Math.round(((pixels[i * 3 * plane + ch * plane + y * size + x] + 1) * 255) / 2);
      }
    }
  });
  let png: Buffer;
  try {
    png = await sharp()(rgb, { raw: { width, height, channels: 3 } })
      .resize({ width: width * zoom, height: height * zoom, kernel: 'nearest' })
      .png()
      .toBuffer();
  } catch (e) {
    throw new BiaError('BIA_IMAGE_ERROR', `cannot draw the portrait sheet: ${(e as Error).message}`, { cause: e });
  }
  await writeFileAtomic(path, png, 'portrait sheet');
  return { path, width: width * zoom, height: height * zoom, rows: identities.length, columns: samples };
}

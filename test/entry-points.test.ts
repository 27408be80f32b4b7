// The package's entry points, through its own name and "exports" as a consumer sees them: the core
// API at the root, the synthetic world, the trainer and the bench harness behind bia-torch/world,
// bia-torch/train and bia-torch/bench, for require() and for TypeScript (typesVersions and exports).
import { mkdtempSync, rmSync, symlinkSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import ts from 'typescript';
import { ROOT } from './helpers';

const ENTRIES: Record<string, { js: string; dts: string; names: string[] }> = {
  'bia-torch': { js: 'dist/ts/index.js', dts: 'dist/ts/index.d.ts', names: ['eraseIdentity', 'eraseFolder', 'formBlackHole', 'absorbIdentity', 'absorbOptimize', 'randomBaseline', 'loadDiffusion', 'Tensor'] },
  'bia-torch/world': { js: 'dist/ts/world/index.js', dts: 'dist/ts/world/index.d.ts', names: ['renderPortraits', 'portraitBatch', 'identityParams', 'ATTRIBUTE_SPEC', 'runDemo', 'runEval'] },
  'bia-torch/train': { js: 'dist/ts/train/index.js', dts: 'dist/ts/train/index.d.ts', names: ['createTrainer', 'Trainer', 'train', 'cosineSchedule', 'piecewise', 'createAttributeEstimator'] },
  'bia-torch/bench': { js: 'dist/bench/index.js', dts: 'dist/bench/index.d.ts', names: ['runBench', 'runBenchCli', 'compareRuns', 'stats', 'SUITES', 'BENCH_CONFIGS'] },
};

/** Names that left the root for the subpaths, and the old names of renamed functions. */
const NOT_AT_ROOT = ['renderPortraits', 'identityParams', 'portraitBatch', 'TRAIN_IDENTITIES', 'createTrainer', 'Trainer', 'train', 'cosineSchedule', 'AttributeEstimator', 'walkBaseline', 'optimizeAbsorption'];

t.test('require() resolves each entry point through "exports" to its built file', async (t) => {
  for (const [name, e] of Object.entries(ENTRIES)) {
    t.equal(require.resolve(name, { paths: [ROOT] }), path.join(ROOT, e.js), name);
    const mod = require(require.resolve(name, { paths: [ROOT] })) as Record<string, unknown>;
    for (const n of e.names) t.ok(mod[n] !== undefined, `${name} exports ${n}`);
  }
  t.throws(() => require.resolve('bia-torch/dist/ts/world/portraits.js', { paths: [ROOT] }), { code: 'ERR_PACKAGE_PATH_NOT_EXPORTED' }, 'deep paths are not exported');
  t.equal(require.resolve('bia-torch/package.json', { paths: [ROOT] }), path.join(ROOT, 'package.json'));
});

t.test('the root carries the core API, not the world, the trainer or the old names', async (t) => {
  const root = require(require.resolve('bia-torch', { paths: [ROOT] })) as Record<string, unknown>;
  for (const n of NOT_AT_ROOT) t.notOk(n in root, `no ${n} at the root`);
});

t.test('TypeScript resolves the types of each entry point (moduleResolution node and node16)', async (t) => {
  // A consumer with bia-torch in its node_modules, as after `npm install`.
  const dir = mkdtempSync(path.join(tmpdir(), 'bia-entry-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  mkdirSync(path.join(dir, 'node_modules'));
  symlinkSync(ROOT, path.join(dir, 'node_modules', 'bia-torch'), 'dir');
  const from = path.join(dir, 'index.ts');
  const settings: Array<[string, ts.CompilerOptions]> = [
    ['node', { module: ts.ModuleKind.CommonJS, moduleResolution: ts.ModuleResolutionKind.Node10 }],
    ['node16', { module: ts.ModuleKind.Node16, moduleResolution: ts.ModuleResolutionKind.Node16 }],
  ];
  for (const [label, options] of settings) {
    for (const [name, e] of Object.entries(ENTRIES)) {
      const r = ts.resolveModuleName(name, from, options, ts.sys);
      t.equal(r.resolvedModule?.resolvedFileName, path.join(ROOT, e.dts), `${label}: ${name}`);
    }
  }
});

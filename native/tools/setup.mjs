#!/usr/bin/env node
// `npm run setup`: prepare a fresh Debian machine and build everything. Safe and fast to re-run.
//   1. system packages (LibTorch, OpenBLAS, nlohmann-json, redis-server, build tools), installed with apt when
//      running as root, else printed as the exact command to run;
//   2. OpenBLAS selected as the system BLAS (Debian's LibTorch links the generic libblas.so.3);
//   3. npm dependencies (only when package-lock.json changed);
//   4. the native addon (cmake-js, incremental) and the TypeScript;
//   5. a check that the addon loads, uses an optimised BLAS and all cores.
// Flags: --with-reference also installs Debian's python3-torch (the benches' Python reference).
//        --no-apt never calls apt-get (only reports what is missing).
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, realpathSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { findTorch } from './torch-config.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const args = new Set(process.argv.slice(2));
const MULTIARCH = { x64: 'x86_64-linux-gnu', arm64: 'aarch64-linux-gnu' }[process.arch] ?? 'x86_64-linux-gnu';
const t0 = Date.now();

const log = (msg) => process.stdout.write(`[setup] ${msg}\n`);
function run(cmd, argv, opts = {}) {
  log(`$ ${cmd} ${argv.join(' ')}`);
  const r = spawnSync(cmd, argv, { stdio: 'inherit', cwd: root, ...opts });
  if (r.status !== 0) {
    log(`failed: ${cmd} ${argv.join(' ')} (exit ${r.status ?? r.signal})`);
    process.exit(1);
  }
}
const has = (bin) => spawnSync('sh', ['-c', `command -v ${bin}`], { stdio: 'ignore' }).status === 0;
const dpkgInstalled = (pkg) =>
  spawnSync('dpkg-query', ['-W', '-f=${Status}', pkg], { encoding: 'utf8' }).stdout?.includes('install ok installed') ?? false;

// 1. System packages.
function torchSource() {
  try {
    return findTorch().source;
  } catch {
    return null;
  }
}
const wanted = [];
const source = torchSource();
const usesDebianTorch = source === null || source === 'debian';
const isDebian = has('dpkg-query') && has('apt-get');
if (isDebian) {
  if (usesDebianTorch) wanted.push('libtorch-dev', 'libopenblas0-pthread');
  wanted.push('nlohmann-json3-dev');
  // The job queue (bia queue / bia worker, ts/queue/) runs on Redis; its tests start their own redis-server.
  wanted.push('redis-server');
  if (args.has('--with-reference')) wanted.push('python3-torch');
}
const tools = { cmake: 'cmake', 'g++': 'g++', make: 'make', python3: 'python3' };
const missing = [
  ...wanted.filter((p) => !dpkgInstalled(p)),
  ...Object.entries(tools).filter(([bin]) => !has(bin)).map(([, pkg]) => pkg),
];
if (missing.length > 0) {
  const isRoot = process.getuid?.() === 0;
  if (isDebian && isRoot && !args.has('--no-apt')) {
    const lists = '/var/lib/apt/lists';
    const fresh = existsSync(`${lists}/partial`) && Date.now() - statSync(`${lists}/partial`).mtimeMs < 3600e3;
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    if (!fresh) run('apt-get', ['update'], { env });
    run('apt-get', ['install', '-y', '--no-install-recommends', ...missing], { env });
  } else {
    const how = isDebian
      ? `sudo apt-get install -y --no-install-recommends ${missing.join(' ')}`
      : `install the equivalents of: ${missing.join(', ')} (or set LIBTORCH=<libtorch root>)`;
    log(`missing system packages: ${missing.join(' ')}\n        run: ${how}\n        then: npm run setup`);
    process.exit(1);
  }
} else {
  log('system packages present');
}

// 2. OpenBLAS as the system BLAS (only matters for Debian's LibTorch).
if (isDebian && (usesDebianTorch || torchSource() === 'debian')) {
  const link = `/usr/lib/${MULTIARCH}/libblas.so.3`;
  const real = existsSync(link) ? realpathSync(link) : '';
  if (!real.includes('openblas')) {
    const target = `/usr/lib/${MULTIARCH}/openblas-pthread/libblas.so.3`;
    if (process.getuid?.() === 0 && existsSync(target)) {
      run('update-alternatives', ['--set', `libblas.so.3-${MULTIARCH}`, target]);
    } else {
      log(`the system BLAS is ${real || 'missing'} (reference BLAS is ~50x slower); run:\n` +
        `        sudo apt-get install libopenblas0-pthread  (or update-alternatives --set libblas.so.3-${MULTIARCH} ${target})`);
      process.exit(1);
    }
  }
}

// 3. npm dependencies, only when the lock file changed since the last install.
const lock = path.join(root, 'package-lock.json');
const stamp = path.join(root, 'node_modules', '.package-lock.json');
const stale = !existsSync(stamp) || (existsSync(lock) && statSync(lock).mtimeMs > statSync(stamp).mtimeMs);
// onnxruntime-node (a dev dependency, for checking `bia convert`) would download binaries in its
// install script; its npm package already carries what Node needs.
if (stale) run('npm', [existsSync(lock) ? 'ci' : 'install', '--no-audit', '--no-fund'], { env: { ...process.env, ONNXRUNTIME_NODE_INSTALL: 'skip' } });
else log('npm dependencies up to date');

// 4. Build the addon (incremental) and the TypeScript.
log(`LibTorch: ${execFileSync(process.execPath, [path.join(root, 'native/tools/torch-config.mjs'), '--describe'], { encoding: 'utf8' }).split('\n')[0]}`);
run('npm', ['run', '--silent', 'build:native']);
run('npm', ['run', '--silent', 'build:ts']);

// 5. Check what we built.
const check = spawnSync(process.execPath, [path.join(root, 'dist/ts/cli.js'), 'info', '--json'], { cwd: root, encoding: 'utf8' });
if (check.status !== 0) {
  process.stderr.write(check.stderr);
  log('the addon was built but does not load (see above)');
  process.exit(1);
}
const info = JSON.parse(check.stdout);
log(`addon ok: LibTorch ${info.torchVersion}, BLAS ${info.blas.name}, ${info.threads} threads, ` +
  `sgemm ${info.sgemmGflops.toFixed(0)} GFLOP/s, CUDA ${info.cuda.available ? info.cuda.devices.map((d) => d.name).join(', ') : 'no'}`);
if (!['OpenBLAS', 'MKL', 'BLIS'].includes(info.blas.name)) {
  log(`LibTorch runs on the ${info.blas.name} BLAS, not an optimised one: install libopenblas0-pthread`);
  process.exit(1);
}
// 6. Best effort: the faceplugin MobileFaceNet, for the converter's check against onnxruntime.
const fetched = spawnSync(process.execPath, [path.join(root, 'native/tools/fetch-faceplugin.mjs')], { cwd: root, stdio: 'inherit' });
if (fetched.status !== 0) log('warning: the faceplugin MobileFaceNet was not fetched (offline?); its test skips. Retry: npm run fetch:models');
log(`done in ${((Date.now() - t0) / 1000).toFixed(1)} s`);

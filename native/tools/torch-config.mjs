#!/usr/bin/env node
// Single source of truth for where LibTorch is and how to compile/link against it.
// Used by CMakeLists.txt (cmake-js, the default build), binding.gyp (node-gyp) and setup.mjs.
//
// Search order (LibTorch is found, never downloaded):
//   1. LIBTORCH=<root>          (a LibTorch root: include/, lib/, share/cmake/Torch)
//      Torch_DIR=<cmake dir>    (the folder holding TorchConfig.cmake)
//   2. the LibTorch inside an installed Python torch (BIA_PYTHON, else python3, else python);
//      this is how CUDA builds come. Debian's python3-torch has no cmake config and is skipped.
//   3. Debian's libtorch-dev (/usr/lib/<multiarch>/cmake/Torch).
// BIA_TORCH_SOURCE=env|python|debian forces one source.
//
// Usage: node torch-config.mjs [--json | --include-dirs | --cxxflags | --libs | --root | --describe]
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const MULTIARCH = { x64: 'x86_64-linux-gnu', arm64: 'aarch64-linux-gnu' }[process.arch] ?? '';

const isSystemLib = (d) => ['/usr/lib', '/lib', `/usr/lib/${MULTIARCH}`, `/lib/${MULTIARCH}`].includes(d);

function firstExisting(paths) {
  return paths.find((p) => p && existsSync(p));
}

function libDirFor(root) {
  return firstExisting([
    path.join(root, 'lib'),
    path.join(root, 'lib64'),
    path.join(root, 'lib', MULTIARCH),
  ].filter((d) => existsSync(path.join(d, 'libtorch.so')) || existsSync(path.join(d, 'libtorch.dylib'))));
}

function cmakeDirFor(root, libDir) {
  return firstExisting([
    path.join(root, 'share', 'cmake', 'Torch'),
    libDir && path.join(libDir, 'cmake', 'Torch'),
  ].filter((d) => d && existsSync(path.join(d, 'TorchConfig.cmake'))));
}

function readVersion(root, includeDirs) {
  for (const inc of includeDirs) {
    const f = path.join(inc, 'torch', 'version.h');
    if (existsSync(f)) {
      const txt = readFileSync(f, 'utf8');
      const m = /TORCH_VERSION\s*\\?\s*"([^"]+)"/.exec(txt);
      if (m) return m[1];
      const maj = /TORCH_VERSION_MAJOR\s+(\d+)/.exec(txt);
      const min = /TORCH_VERSION_MINOR\s+(\d+)/.exec(txt);
      const pat = /TORCH_VERSION_PATCH\s+(\d+)/.exec(txt);
      if (maj && min && pat) return `${maj[1]}.${min[1]}.${pat[1]}`;
    }
  }
  const py = path.join(root, 'version.py');
  if (existsSync(py)) {
    const m = /__version__\s*=\s*'([^']+)'/.exec(readFileSync(py, 'utf8'));
    if (m) return m[1];
  }
  return 'unknown';
}

// Torch's own required compile flags (the C++ ABI), read from its cmake config.
function torchCxxFlags(cmakeDir) {
  if (!cmakeDir) return ['-D_GLIBCXX_USE_CXX11_ABI=1'];
  const txt = readFileSync(path.join(cmakeDir, 'TorchConfig.cmake'), 'utf8');
  const m = /set\(TORCH_CXX_FLAGS\s+"([^"]*)"\)/.exec(txt);
  return m ? m[1].split(/\s+/).filter(Boolean) : [];
}

/**
 * The folder holding cuda_runtime.h, which c10/cuda's headers include: CUDA_HOME / CUDA_PATH, the
 * usual toolkit folders, or the NVIDIA runtime wheel beside a pip torch. null when none is found.
 */
function cudaIncludeDir(root) {
  const homes = [process.env.CUDA_HOME, process.env.CUDA_PATH, '/usr/local/cuda'].filter(Boolean);
  try {
    homes.push(...readdirSync('/usr/local').filter((d) => /^cuda-\d/.test(d)).map((d) => path.join('/usr/local', d)));
  } catch { /* no /usr/local */ }
  const candidates = homes.flatMap((h) => [path.join(h, 'include'), path.join(h, 'targets', `${process.arch === 'arm64' ? 'sbsa' : 'x86_64'}-linux`, 'include')]);
  const nvidia = path.join(root, '..', 'nvidia'); // site-packages/nvidia/* next to site-packages/torch
  try {
    for (const d of readdirSync(nvidia)) candidates.push(path.join(nvidia, d, 'include'));
  } catch { /* not a pip torch */ }
  candidates.push('/usr/include');
  return candidates.find((d) => existsSync(path.join(d, 'cuda_runtime.h'))) ?? null;
}

function describeRoot(root, source) {
  const libDir = libDirFor(root);
  if (!libDir) return { error: `${root}: no lib/libtorch.so` };
  const includeDirs = [path.join(root, 'include'), path.join(root, 'include', 'torch', 'csrc', 'api', 'include')];
  if (!existsSync(path.join(includeDirs[1], 'torch', 'torch.h'))) return { error: `${root}: no include/torch/csrc/api/include/torch/torch.h` };
  const cmakeDir = cmakeDirFor(root, libDir);
  const cuda = existsSync(path.join(libDir, 'libtorch_cuda.so'));
  const libs = ['torch', 'torch_cpu', 'c10'];
  if (cuda) {
    libs.push('torch_cuda', 'c10_cuda');
    const inc = cudaIncludeDir(root);
    if (inc) includeDirs.push(inc);
  }
  return {
    source,
    root,
    cmakeDir: cmakeDir ?? null,
    // -I/usr/include would break libstdc++'s #include_next; system dirs are searched anyway.
    includeDirs: includeDirs.filter((d) => d !== '/usr/include' && d !== '/usr/local/include'),
    libDir,
    libs,
    cxxFlags: torchCxxFlags(cmakeDir),
    cuda,
    version: readVersion(root, includeDirs),
  };
}

function fromEnv(tried) {
  if (process.env.LIBTORCH) {
    const r = describeRoot(path.resolve(process.env.LIBTORCH), 'env:LIBTORCH');
    if (!r.error) return r;
    tried.push(`LIBTORCH=${process.env.LIBTORCH}: ${r.error}`);
  }
  if (process.env.Torch_DIR) {
    const dir = path.resolve(process.env.Torch_DIR);
    for (const up of ['../../..', '../../../..']) {
      const root = path.resolve(dir, up);
      const r = describeRoot(root, 'env:Torch_DIR');
      if (!r.error) return r;
    }
    tried.push(`Torch_DIR=${process.env.Torch_DIR}: no LibTorch root above it`);
  }
  return null;
}

function fromPython(tried) {
  const candidates = [process.env.BIA_PYTHON, 'python3', 'python'].filter(Boolean);
  const probe = "import importlib.util as u; s = u.find_spec('torch'); print(s.submodule_search_locations[0] if s else '')";
  for (const exe of candidates) {
    const r = spawnSync(exe, ['-c', probe], { encoding: 'utf8', timeout: 30000 });
    if (r.error || r.status !== 0) { tried.push(`python '${exe}': not runnable`); continue; }
    const dir = r.stdout.trim();
    if (!dir) { tried.push(`python '${exe}': no torch module`); continue; }
    const d = describeRoot(dir, `python:${exe}`);
    if (!d.error && d.cmakeDir) {
      if (d.cxxFlags.length === 0) {
        // Newer TorchConfig.cmake files no longer spell the ABI flag out: ask torch itself.
        const abi = spawnSync(exe, ['-c', 'import torch; print(int(torch._C._GLIBCXX_USE_CXX11_ABI))'], { encoding: 'utf8', timeout: 120000 });
        if (abi.status === 0 && /^[01]$/.test(abi.stdout.trim())) d.cxxFlags = [`-D_GLIBCXX_USE_CXX11_ABI=${abi.stdout.trim()}`];
      }
      return d;
    }
    tried.push(`python '${exe}': torch at ${dir} carries no LibTorch (${d.error ?? 'no share/cmake/Torch'})`);
  }
  return null;
}

function fromDebian(tried) {
  const cmakeDir = `/usr/lib/${MULTIARCH}/cmake/Torch`;
  if (!existsSync(path.join(cmakeDir, 'TorchConfig.cmake'))) { tried.push(`debian: ${cmakeDir} missing (apt-get install libtorch-dev)`); return null; }
  const r = describeRoot('/usr', 'debian');
  if (r.error) { tried.push(`debian: ${r.error}`); return null; }
  return { ...r, cmakeDir, libDir: `/usr/lib/${MULTIARCH}` };
}

export function findTorch() {
  const tried = [];
  const force = process.env.BIA_TORCH_SOURCE;
  const order = force ? [force] : ['env', 'python', 'debian'];
  const finders = { env: fromEnv, python: fromPython, debian: fromDebian };
  for (const name of order) {
    const f = finders[name];
    if (!f) throw new Error(`BIA_TORCH_SOURCE=${force}: expected env, python or debian`);
    const r = f(tried);
    if (r) return { ...r, tried };
  }
  const err = new Error(
    'LibTorch not found. Tried:\n  ' + tried.join('\n  ') +
    '\nFix: apt-get install libtorch-dev libopenblas0-pthread (Debian), or set LIBTORCH=<libtorch root>,' +
    ' or install a Python torch (pip) and make sure python3 finds it.');
  err.code = 'BIA_LIBTORCH_NOT_FOUND';
  throw err;
}

function main(argv) {
  let t;
  try { t = findTorch(); } catch (e) { process.stderr.write(e.message + '\n'); process.exit(2); }
  const mode = argv[0] ?? '--describe';
  const q = (s) => (/\s/.test(s) ? JSON.stringify(s) : s);
  switch (mode) {
    case '--json': process.stdout.write(JSON.stringify(t, null, 2) + '\n'); break;
    case '--root': process.stdout.write(t.root + '\n'); break;
    case '--include-dirs': process.stdout.write(t.includeDirs.map(q).join(' ') + '\n'); break;
    case '--cxxflags': process.stdout.write([...t.cxxFlags, ...(t.cuda ? ['-DBIA_TORCH_CUDA=1'] : [])].join(' ') + '\n'); break;
    case '--libs':
      process.stdout.write([`-L${q(t.libDir)}`, ...(isSystemLib(t.libDir) ? [] : [`-Wl,-rpath,${q(t.libDir)}`]), '-Wl,--no-as-needed',
        ...t.libs.map((l) => `-l${l}`), '-Wl,--as-needed'].join(' ') + '\n');
      break;
    case '--describe':
      process.stdout.write(`LibTorch ${t.version} from ${t.source}\n  root ${t.root}\n  lib ${t.libDir}\n` +
        `  flags ${t.cxxFlags.join(' ')}\n  cuda ${t.cuda}\n`);
      break;
    default: process.stderr.write(`unknown option ${mode}\n`); process.exit(2);
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) main(process.argv.slice(2));

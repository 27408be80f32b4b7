#!/usr/bin/env node
/** The `bia` command line. It only parses, calls the library and prints. */
import { parseArgs } from 'node:util';
import { runErase } from './cli/erase';
import { EXIT, INPUT_ERRORS } from './cli/exit';
import { BiaError } from './errors';
import { CONVERT_ARCHS, convertOnnx, type ConvertArch, type ConvertResult } from './convert';
import { info, type Info } from './engine';
import { VERSION } from './version';

export { EXIT, INPUT_ERRORS };

const HELP = `bia ${VERSION} — Black Hole-Driven Identity Absorbing on LibTorch

Usage:
  bia info [--json] [--no-measure]   LibTorch version, BLAS, threads, CUDA devices, measured sgemm GFLOP/s
  bia convert <model.onnx> <out.safetensors> [--arch mobilefacenet] [--source TEXT] [--map] [--json]
                                     an ONNX MobileFaceNet → safetensors under TreB1eN's state_dict names
                                     (--map prints which ONNX nodes became which layer)
  bia erase <images or folders...> --diffusion <ckpt> --encoder <ckpt> --out <dir> [--second-encoder <ckpt>]
            [--config <preset|file.json>] [--device cpu|cuda] [--force] [--json] [erase options]
                                     erase the identity of each face image; per image <out>/<stem>/ gets output.png,
                                     reconstruction.png, baseline.png, grid.png, report.json (finished images are
                                     skipped on a re-run unless --force); then <out>/report.json and report.html.
                                     'bia erase --help' lists every erase option (--t0, --steps, --inject, --absorb, …)
  bia unlearn <photos or folders...> --out <dir> [--others <photos>] [--diffusion <ckpt> --encoder <ckpt>]
            [--params decoder|all] [--iterations N] [--lr X]
                                     fine-tune the DDPM so that it forgets the person: unedited, their photos
                                     decode as BIA's outputs, other people stay ('bia unlearn --help')
  bia bench [suites...] [--config tiny|demo|celeba-hq-256] [--device cpu|cuda] [--smoke] [--json FILE]
            [--baseline old.json --tolerance 10%] [--markdown FILE] [--isolate]
                                     the performance harness: engine, unet, invert, decode, identity, svm, absorb,
                                     pipeline; medians, spread, GFLOP/s vs measured peak, Python eager side by side,
                                     peak memory; exit 4 on a regression ('bia bench --help' for every option)
  bia queue add <images or folders...> --out <dir> [--redis redis://host:port] [erase options]
  bia queue status | retry-failed [--redis URL]
  bia worker [--redis URL] [--device cuda:N] [--concurrency N] [--diffusion <ckpt> --encoder <ckpt>]
                                     scale-out on a job queue (BullMQ on Redis): one job per image, workers
                                     that load the models once and write what bia erase writes ('bia queue
                                     --help', 'bia worker --help', docs/scale-out.md)
  bia eval [--images 100] [--out out/eval] [--set key=value ...] [--autocast bfloat16] [--json]
                                     the erase job on held-out portraits of the synthetic world with the default
                                     models: identity under two recognizers, realism (FD), validity, attribute
                                     error per group, beside the reconstruction, the random direction and the
                                     fade / blur baselines; every target met or not (eval.json, eval.md, grids)
  bia eval realism | samples [--model FILE ...]
                                     the realism measure's own check; FD of unconditional DDPM samples
  bia --version
  bia help

Exit codes: 0 ok, 1 failure, 2 usage error, 3 input error (bad image, checkpoint, file), 4 bench regression,
            130 interrupted

Environment:
  BIA_NUM_THREADS   intra-op threads (default: all cores)
  BIA_TORCH_ADDON   path of a bia_torch.node to load instead of build/Release
`;

function formatBytes(n: number): string {
  return `${(n / 2 ** 30).toFixed(1)} GiB`;
}

export function formatInfo(i: Info): string {
  const lines = [
    `bia-torch     ${i.version} (node ${i.node})`,
    `LibTorch      ${i.torchVersion} (C++11 ABI: ${i.cxx11Abi ? 'yes' : 'no'}, oneDNN: ${i.mkldnn ? 'yes' : 'no'}, OpenMP: ${i.openmp ? 'yes' : 'no'})`,
    `BLAS          ${i.blas.name}${i.blas.library ? ` (${i.blas.library})` : ''}${i.blas.config ? `\n              ${i.blas.config}` : ''}`,
    `threads       ${i.threads} intra-op, ${i.interopThreads} inter-op (${i.cores} cores: ${i.cpu})`,
    `CUDA          ${i.cuda.available ? `available, ${i.cuda.devices.length} device(s)` : i.cuda.built ? 'built, but no GPU visible' : 'not built (CPU-only LibTorch)'}`,
    ...i.cuda.devices.map((d) => `  cuda:${d.index}      ${d.name} (${formatBytes(d.totalMemory)})`),
  ];
  if (i.sgemmGflops !== undefined) lines.push(`sgemm         ${i.sgemmGflops.toFixed(1)} GFLOP/s (1024², float32, CPU)`);
  if (i.blas.name === 'reference') {
    lines.push('WARNING       the reference BLAS is in use (~50× slower): apt-get install libopenblas0-pthread');
  }
  lines.push(`addon         ${i.addon}`);
  return lines.join('\n');
}

export function formatConvert(r: ConvertResult, from: string, to: string, map: boolean): string {
  const i = r.input;
  const lines = [
    `converted     ${from} → ${to}`,
    `arch          ${r.arch} (width ${r.width}, ${r.embeddingSize}-d embedding): ${r.entries} tensors from ${r.onnxValues.toLocaleString('en-US')} ONNX values`,
    r.foldedBatchNorms === 0
      ? 'batch norm    taken from the graph\'s BatchNormalization nodes'
      : `batch norm    ${r.foldedBatchNorms} folded into the graph's convolutions, unfolded exactly (mean 0, var fl32(1 − 1e-5), weight 1, bias = the folded bias)`,
    `input         '${i.name}' ${i.layout} [${i.shape.join(',')}] ${i.dtype}, colour ${i.colour}, ${i.normalise === 'unknown' ? 'scaling unknown' : `x ↦ ${i.normalise}`}`,
    `              (${i.evidence})`,
    `output        ${r.outputNormalized ? 'L2-normalised by the graph (the converted network gives the raw embedding)' : 'the raw embedding (not L2-normalised)'}`,
    `sha256        ${r.sha256}`,
  ];
  if (map) for (const m of r.mapping) lines.push(`  ${m.key.padEnd(28)} ← ${m.nodes.join(' + ')}${m.folded ? '  (batch norm folded)' : ''}`);
  return lines.join('\n');
}


async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === 'help' || command === '--help' || command === '-h') {
    process.stdout.write(HELP);
    return command === undefined ? EXIT.usage : EXIT.ok;
  }
  if (command === '--version' || command === '-v') {
    process.stdout.write(`${VERSION}\n`);
    return EXIT.ok;
  }
  if (command === 'info') {
    const { values } = parseArgs({ args: rest, options: { json: { type: 'boolean' }, 'no-measure': { type: 'boolean' } } });
    const i = await info({ measure: !values['no-measure'] });
    process.stdout.write(values.json ? `${JSON.stringify(i, null, 2)}\n` : `${formatInfo(i)}\n`);
    return EXIT.ok;
  }
  if (command === 'convert') {
    const { values, positionals } = parseArgs({
      args: rest,
      allowPositionals: true,
      options: { arch: { type: 'string' }, source: { type: 'string' }, map: { type: 'boolean' }, json: { type: 'boolean' } },
    });
    if (positionals.length !== 2) {
      process.stderr.write(`bia convert: expected <model.onnx> <out.safetensors>, got ${positionals.length} path(s)\n\n${HELP}`);
      return EXIT.usage;
    }
    if (values.arch !== undefined && !(CONVERT_ARCHS as readonly string[]).includes(values.arch)) {
      process.stderr.write(`bia convert: --arch must be one of ${CONVERT_ARCHS.join(', ')}, got '${values.arch}'\n`);
      return EXIT.usage;
    }
    const [from, to] = positionals;
    const r = await convertOnnx(from, to, { arch: values.arch as ConvertArch | undefined, source: values.source });
    process.stdout.write(values.json ? `${JSON.stringify(r, null, 2)}\n` : `${formatConvert(r, from, to, values.map ?? false)}\n`);
    return EXIT.ok;
  }
  if (command === 'bench') {
    // The harness lives in bench/ (shipped in dist/bench); loaded only when asked for.
    const { runBenchCli } = await import('../bench/harness/cli');
    return runBenchCli(rest);
  }
  if (command === 'erase') return runErase(rest, {});
  if (command === 'unlearn') {
    // Unlearning of the diffusion model itself (ts/unlearn/); loaded only when asked for.
    const { runUnlearnCli } = await import('./unlearn/cli');
    return runUnlearnCli(rest);
  }
  if (command === 'queue' || command === 'worker') {
    // The job queue (BullMQ on Redis, ts/queue/); loaded only when asked for.
    const q = await import('./queue/cli');
    return command === 'queue' ? q.runQueueCli(rest) : q.runWorkerCli(rest);
  }
  if (command === 'eval') {
    const { runEvalCli } = await import('./world/eval');
    return runEvalCli(rest);
  }
  process.stderr.write(`bia: unknown command '${command}'\n\n${HELP}`);
  return EXIT.usage;
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (e: unknown) => {
      const usage = e instanceof TypeError && (e as { code?: string }).code?.startsWith('ERR_PARSE_ARGS');
      const code = e instanceof BiaError ? ` [${e.code}]` : '';
      process.stderr.write(`bia: ${(e as Error).message}${code}\n`);
      process.exitCode = usage ? EXIT.usage : e instanceof BiaError && INPUT_ERRORS.has(e.code) ? EXIT.input : EXIT.failure;
    },
  );
}

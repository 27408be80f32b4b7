/**
 * bia-torch/bench: the performance harness behind `bia bench` — its suites, configs, runner, the
 * baseline comparison and the command line.
 */
export { BENCH_EXIT, BENCH_HELP, formatRun, markdownRun, parseBenchArgs, runBenchCli } from './harness/cli';
export { asBenchRun, caseKey, compareRuns, formatComparison, markdownComparison, parseConfidence, parseTolerance, type ComparedCase, type ComparedMemory, type Comparison, type Verdict } from './harness/compare';
export { calibrate, judge, medianInterval, ratioInterval, stability, type CaseVerdict, type Interval, type Judgement, type Stability } from './harness/stats';
export { BENCH_CONFIGS, benchConfig } from './harness/configs';
export { formatMeasurement, formatSeconds, runBench, runSuiteHere, stats, type RunHooks } from './harness/run';
export * from './harness/types';
export { SUITES } from './suites/index';

/**
 * Two views of the CPU around a sample.
 *
 * - Contention (recorded, not judged): how long this process's threads waited for a CPU — the kernel's
 *   per-thread scheduler statistics (/proc/self/task/<tid>/schedstat: nanoseconds on a CPU, nanoseconds
 *   runnable but waiting). Measured on the quiet 2-core machine it is not a load signal: small cases
 *   (a batch-1 UNet, an SVM fit) show 0.5–0.9 there, the process's own OpenMP, OpenBLAS and Node threads
 *   outnumbering the cores (docs/benchmarks.md).
 * - Load (judged): the CPU time that *other* processes used during the sample, from the machine's
 *   counters (/proc/stat) less this process's own (/proc/self/stat), in cores, less the cores the
 *   bench leaves free (all cores − its threads): how many cores' worth of other work sat on the cores
 *   the bench needs. About 0 on a quiet machine whatever the process's own threads do.
 * Both are null where the kernel does not give them.
 */
import { readdirSync, readFileSync } from 'node:fs';

export interface SchedTimes {
  /** Sum over the process's threads of nanoseconds on a CPU. */
  runNs: number;
  /** Sum over the process's threads of nanoseconds runnable but waiting for a CPU. */
  waitNs: number;
}

let available: boolean | null = null;

/** The process's summed scheduler times now, or null where /proc/self/task/*\/schedstat is not readable. */
export function schedTimes(): SchedTimes | null {
  if (available === false) return null;
  let runNs = 0;
  let waitNs = 0;
  let read = 0;
  try {
    for (const tid of readdirSync('/proc/self/task')) {
      let text: string;
      try {
        text = readFileSync(`/proc/self/task/${tid}/schedstat`, 'utf8');
      } catch {
        continue; // the thread ended between the listing and the read
      }
      const [run, wait] = text.split(' ');
      runNs += Number(run);
      waitNs += Number(wait);
      read++;
    }
  } catch {
    read = 0;
  }
  available = read > 0 && Number.isFinite(runNs + waitNs);
  return available ? { runNs, waitNs } : null;
}

/** Seconds the process's threads waited for a CPU between two readings, per second of wall time. */
export function contention(a: SchedTimes | null, b: SchedTimes | null, wallSeconds: number): number | null {
  if (!a || !b || !(wallSeconds > 0)) return null;
  return Math.max(0, (b.waitNs - a.waitNs) / 1e9 / wallSeconds);
}

/** The kernel's clock ticks per second in /proc/stat and /proc/<pid>/stat (USER_HZ: 100 on Linux). */
const USER_HZ = 100;

export interface MachineTimes {
  /** Ticks all CPUs spent busy (user, nice, system, irq, softirq, steal), and this process's own (utime + stime). */
  busyTicks: number;
  selfTicks: number;
  /** CPUs that /proc/stat counts (in a container, possibly more than the process may use). */
  cores: number;
}

let machineAvailable: boolean | null = null;

/** Busy CPU ticks of the whole machine and of this process now, or null where /proc does not give them. */
export function machineTimes(): MachineTimes | null {
  if (machineAvailable === false) return null;
  try {
    const lines = readFileSync('/proc/stat', 'utf8').split('\n');
    const cpu = lines[0].trim().split(/\s+/);
    const cores = lines.filter((l) => /^cpu\d/.test(l)).length;
    if (cpu[0] !== 'cpu') throw new Error('no cpu line');
    const [user, nice, system, , , irq, softirq, steal] = cpu.slice(1, 9).map(Number);
    const busyTicks = user + nice + system + (irq || 0) + (softirq || 0) + (steal || 0);
    const stat = readFileSync('/proc/self/stat', 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // fields from the 3rd (state) on
    const selfTicks = Number(fields[11]) + Number(fields[12]); // utime (14th), stime (15th)
    machineAvailable = Number.isFinite(busyTicks) && Number.isFinite(selfTicks);
    return machineAvailable ? { busyTicks, selfTicks, cores } : null;
  } catch {
    machineAvailable = false;
    return null;
  }
}

/**
 * Cores' worth of other processes' work between two readings that sat on the cores the bench needs:
 * (machine busy − own) / wall, less the cores left free (the machine's cores − `threads`). Not clamped at 0:
 * the kernel counts in 10 ms ticks, so a 5 ms sample reads 0 or ±2–3 cores; the mean over a case's samples
 * is what means something, and it is clamped (stats.ts). Clamping each sample would bias it upwards (5 ms
 * spinning samples on the quiet machine: mean 0.26 clamped, about 0 not).
 */
export function otherLoad(a: MachineTimes | null, b: MachineTimes | null, wallSeconds: number, threads: number): number | null {
  if (!a || !b || !(wallSeconds > 0)) return null;
  const others = (b.busyTicks - a.busyTicks - (b.selfTicks - a.selfTicks)) / USER_HZ / wallSeconds;
  return others - Math.max(0, b.cores - threads);
}

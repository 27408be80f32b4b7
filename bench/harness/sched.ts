/**
 * How long this process's threads waited for a CPU: the kernel's per-thread scheduler statistics
 * (/proc/self/task/<tid>/schedstat: nanoseconds on a CPU, nanoseconds runnable but waiting, slices).
 * The wait over a sample, divided by the sample's wall time, is the sample's *contention*: about 0 on
 * an idle machine, 1 when one thread's worth of the process's time went to waiting (other processes
 * on the cores, or more of our own threads than cores). null where the kernel does not give it.
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

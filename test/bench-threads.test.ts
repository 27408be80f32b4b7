// The OpenMP wait default the addon loads with (docs/benchmarks.md, "Thread wake-up"): GOMP_SPINCOUNT
// 1000 unless the user set GOMP_SPINCOUNT or OMP_WAIT_POLICY; libgomp reads it when the addon loads it.
import t from 'tap';
import { spawn } from 'node:child_process';
import { machineTimes, otherLoad } from '../bench/harness/sched';
import { applyOpenMpDefaults, DEFAULT_GOMP_SPINCOUNT, loadAddon } from '../ts/native';

t.test('GOMP_SPINCOUNT is set only where the user set neither it nor OMP_WAIT_POLICY', async (t) => {
  const unset: NodeJS.ProcessEnv = {};
  applyOpenMpDefaults(unset);
  t.same(unset, { GOMP_SPINCOUNT: '1000' });
  t.equal(DEFAULT_GOMP_SPINCOUNT, '1000');
  const own: NodeJS.ProcessEnv = { GOMP_SPINCOUNT: '300000' };
  applyOpenMpDefaults(own);
  t.same(own, { GOMP_SPINCOUNT: '300000' }, "the user's spin count is kept");
  const policy: NodeJS.ProcessEnv = { OMP_WAIT_POLICY: 'PASSIVE' };
  applyOpenMpDefaults(policy);
  t.same(policy, { OMP_WAIT_POLICY: 'PASSIVE' }, 'a wait policy is not overridden by a spin count');
});

t.test('the loaded addon ran with the default in its environment', async (t) => {
  const before = { spin: process.env.GOMP_SPINCOUNT, policy: process.env.OMP_WAIT_POLICY };
  loadAddon();
  if (before.spin === undefined && before.policy === undefined) t.equal(process.env.GOMP_SPINCOUNT, '1000', 'set before libgomp loaded');
  else t.equal(process.env.GOMP_SPINCOUNT, before.spin, 'the environment given is kept');
});

// Other processes' load (bench/harness/sched.ts): the machine's busy time less the process's own, less
// the cores the bench leaves free — what a busy-machine verdict rests on.
t.test("otherLoad: other processes' cores on the cores the bench needs", async (t) => {
  const at = (busyTicks: number, selfTicks: number) => ({ busyTicks, selfTicks, cores: 4 });
  t.equal(otherLoad(at(0, 0), at(250, 50), 1, 4), 2, 'two cores of others, all four needed');
  t.equal(otherLoad(at(0, 0), at(250, 50), 1, 2), 0, 'two cores of others on the two left free');
  t.equal(otherLoad(at(0, 0), at(50, 50), 1, 2), -2, 'not clamped: the two free cores idle (the mean over a case is clamped)');
  t.equal(otherLoad(at(0, 0), at(450, 50), 2, 3), 1, '4 s of others in 2 s: 2 cores, one beyond the one left free');
  t.equal(otherLoad(at(0, 0), at(100, 100), 1, 4), 0, 'only the process itself');
  t.equal(otherLoad(null, at(1, 1), 1, 2), null, 'not measured');
  const m = machineTimes();
  if (!m) {
    t.pass('/proc/stat is not readable here: nothing more to check');
    return;
  }
  t.ok(m.cores >= 1 && m.busyTicks > 0 && m.selfTicks >= 0);
  // Two spinning processes for 0.8 s, this one asleep: they show up, the process's own (idle) time does not.
  const spin = 'const e = Date.now() + 800; while (Date.now() < e);';
  const kids = [0, 1].map(() => spawn(process.execPath, ['-e', spin], { stdio: 'ignore' }));
  await new Promise((r) => setTimeout(r, 150)); // they started
  const a = machineTimes();
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, 500));
  const load = otherLoad(a, machineTimes(), (performance.now() - t0) / 1000, m.cores)!;
  await Promise.all(kids.map((k) => new Promise((r) => (k.exitCode === null ? k.on('exit', r) : r(null)))));
  t.ok(load > 0.5, `two spinning processes: ${load.toFixed(2)} cores of others (> 0.5)`);
});

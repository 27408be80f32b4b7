// The OpenMP wait default the addon loads with (docs/benchmarks.md, "Thread wake-up"): GOMP_SPINCOUNT
// 1000 unless the user set GOMP_SPINCOUNT or OMP_WAIT_POLICY; libgomp reads it when the addon loads it.
import t from 'tap';
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

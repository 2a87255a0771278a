import t from 'tap';
import { MemoryStore } from '../../src/devices/stores/memory.js';
import type { DeviceEvent } from '../../src/devices/events.js';
import { buildTestApp, testConfig, until, withTimeout } from '../helpers/app.js';

// SPEC §10: a restart with 1,000,000 devices is ready in under 10 s. What fell due while the
// bridge was down is swept at start, but readiness does not wait for that sweep (with a large fleet
// all silent it outlasted Fastify's onReady timeout), and a sweep asked for meanwhile runs after it.

class SlowSweepStore extends MemoryStore {
  sweeps = 0;
  #open: () => void = () => {};
  readonly gate = new Promise<void>((resolve) => (this.#open = resolve));
  open(): void {
    this.#open();
  }

  override async markSilent(cutoff: number, limit: number, markedAt: string): Promise<DeviceEvent[]> {
    this.sweeps++;
    await this.gate;
    return super.markSilent(cutoff, limit, markedAt);
  }
}

t.test('ready before the first silence sweep ends; a sweep asked for meanwhile runs after it', async (t) => {
  const store = new SlowSweepStore({ historyLimit: 10 });
  const app = await buildTestApp(t, testConfig(), { store });
  t.teardown(() => store.open()); // a failed test must not hold close()
  await withTimeout((async () => { await app.ready(); })(), 5_000, () => 'ready, with the first sweep still under way');
  t.equal((await app.inject('/healthz')).statusCode, 200);
  await until(() => store.sweeps === 1, () => 'the first sweep started');

  const second = app.devices.sweepSilence();
  for (let turn = 0; turn < 10; turn++) await new Promise((resolve) => setImmediate(resolve));
  t.equal(store.sweeps, 1, 'the second sweep waits for the first');
  store.open();
  t.equal(await second, 0);
  t.equal(store.sweeps, 2);
});

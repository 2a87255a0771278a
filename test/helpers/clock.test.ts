import t from 'tap';
import { clockOf, systemClock } from '../../src/clock.js';
import { ManualClock } from './clock.js';

// The manual clock the timing tests drive, and what buildApp makes of a clock it is given.

t.test('timers fire when the time is moved past them, in the order they fell due', async (t) => {
  const clock = new ManualClock(1000);
  const fired: string[] = [];
  clock.setTimeout(() => fired.push(`b@${clock.now()}`), 20);
  clock.setTimeout(() => fired.push(`a@${clock.now()}`), 10);
  clock.setTimeout(() => fired.push('c'), 30);
  clock.advance(9);
  t.same(fired, [], 'nothing before its time');
  clock.advance(10);
  t.same(fired, ['a@1019'], 'advance moves the time, then fires what fell due by then');
  clock.advance(1);
  t.same(fired, ['a@1019', 'b@1020']);
  t.equal(clock.pending, 1);
  clock.advance(100);
  t.same(fired, ['a@1019', 'b@1020', 'c']);
  t.equal(clock.pending, 0);
});

t.test('an interval fires once per advance, however late, and runs on from then', async (t) => {
  const clock = new ManualClock(0);
  const at: number[] = [];
  const timer = clock.setInterval(() => at.push(clock.now()), 100);
  clock.advance(99);
  t.same(at, []);
  clock.advance(251);
  t.same(at, [350], 'late: once');
  clock.advance(100);
  t.same(at, [350, 450]);
  clock.clearInterval(timer);
  clock.advance(1000);
  t.same(at, [350, 450], 'cleared');
  t.equal(clock.pending, 0);
});

t.test('a timer set during a firing that is due by then fires in the same advance', async (t) => {
  const clock = new ManualClock(0);
  const fired: string[] = [];
  clock.setTimeout(() => {
    fired.push('first');
    clock.setTimeout(() => fired.push('now'), 0);
    clock.setTimeout(() => fired.push('later'), 10);
  }, 5);
  clock.advance(5);
  t.same(fired, ['first', 'now']);
});

t.test('a timer set already due fires at the next turn of the event loop, the time unmoved', async (t) => {
  const clock = new ManualClock(0);
  let fired = false;
  clock.setTimeout(() => (fired = true), 0);
  t.equal(fired, false, 'not synchronously');
  await new Promise((resolve) => setImmediate(resolve));
  t.equal(fired, true);
  t.equal(clock.now(), 0);
  const cleared = clock.setTimeout(() => t.fail('a cleared timer fired'), -5);
  clock.clearTimeout(cleared);
  await new Promise((resolve) => setImmediate(resolve));
});

t.test('buildApp: a clock that only tells the time keeps the process timers', async (t) => {
  const manual = new ManualClock(5);
  t.equal(clockOf(manual), manual, 'a whole clock is taken as it is');
  const nowOnly = clockOf({ now: () => 42 });
  t.equal(nowOnly.now(), 42);
  t.equal(nowOnly.setTimeout, systemClock.setTimeout);
  const timer = systemClock.setTimeout(() => t.fail('cleared'), 10_000);
  t.equal((timer as NodeJS.Timeout).hasRef(), false, 'the system clock never holds the process open');
  systemClock.clearTimeout(timer);
});

import t from 'tap';
import { LogThrottle } from '../src/log-throttle.js';

t.test('one line per kind per interval; the lines held back are summed up in the next', async (t) => {
  let now = 0;
  const throttle = new LogThrottle<string>(10_000, () => now);
  const written: [string, number][] = [];
  const line = (kind: string): void => throttle.line(kind, (suppressed) => written.push([kind, suppressed]));
  for (let i = 0; i < 5; i++) line('a');
  line('b');
  t.same(written, [['a', 0], ['b', 0]], 'the first of each kind');
  now = 9_999;
  line('a');
  t.equal(written.length, 2, 'still within the interval');
  now = 10_000;
  line('a');
  t.same(written.at(-1), ['a', 5], 'the next line says how many were held back');
  line('a');
  t.equal(written.length, 3);
});

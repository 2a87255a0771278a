import t from 'tap';
import { latencies, lost, median, percentile, perSecond, ratio } from '../../bench/lib/stats.js';

// The benchmark suite's own arithmetic (no timing is asserted anywhere in the tests).

t.test('percentile: nearest rank', async (t) => {
  const values = Array.from({ length: 100 }, (_, i) => 100 - i); // 100..1, unsorted
  t.equal(percentile(values, 50), 50);
  t.equal(percentile(values, 99), 99);
  t.equal(percentile(values, 100), 100);
  t.equal(percentile(values, 0), 1);
  t.equal(percentile([7], 99), 7);
  t.ok(Number.isNaN(percentile([], 50)));
  t.same(values[0], 100, 'the input is not sorted in place');
});

t.test('median, ratio, rates, losses', async (t) => {
  t.equal(median([3, 1, 2]), 2);
  t.equal(median([4, 1, 3, 2]), 2.5);
  t.ok(Number.isNaN(median([])));
  t.equal(ratio(8000, 10000), 0.8);
  t.equal(ratio(1, 3), 0.33);
  t.ok(Number.isNaN(ratio(1, 0)));
  t.ok(Number.isNaN(ratio(Number.NaN, 1)));
  t.equal(perSecond(10_000, 500), 20_000);
  t.ok(Number.isNaN(perSecond(1, 0)));
  t.equal(lost(100, 97), 3);
  t.equal(lost(100, 103), 0, 'duplicates never hide a loss, nor make a negative one');
  t.same(latencies([1, 2, 3, 4, 100]), { p50: 3, p99: 100, max: 100, count: 5 });
});

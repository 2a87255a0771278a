import t from 'tap';
import { parseLastEventId } from '../../src/streams/sse.js';

// SPEC §5: a Last-Event-ID that is not a number is ignored; any number is honoured, even one far
// above the newest seq (that one gets a reset: test/streams/sse.test.ts).

t.test('parseLastEventId: non-negative decimal integers only', async (t) => {
  const cases: [string | string[] | undefined, number | null][] = [
    ['0', 0],
    ['42', 42],
    ['007', 7],
    ['99999999999999999999', 1e20],
    [undefined, null],
    ['', null],
    ['abc', null],
    ['-1', null],
    ['1.5', null],
    ['1e3', null],
    ['0x10', null],
    ['12abc', null],
    [' 3', null],
    [['1', '2'], null],
  ];
  for (const [value, expected] of cases) t.equal(parseLastEventId(value), expected, JSON.stringify(value));
});

import t from 'tap';
import { EventStream, silentEvent, updateEvent, type DeviceEvent } from '../../src/devices/events.js';
import { apply } from '../../src/devices/rules.js';
import { record } from '../helpers/records.js';

const outcome = apply(undefined, record(), '2026-01-01T00:00:00.000Z');
if (outcome.kind !== 'update') throw new Error('expected an update');
const device = outcome.device;
const event = (seq: number): DeviceEvent => (seq % 2 ? updateEvent(seq, device, null, true) : silentEvent(seq, device));

t.test('listeners get every event in order; one that throws does not stop the others', async (t) => {
  const errors: unknown[] = [];
  const stream = new EventStream(10, (err) => errors.push(err));
  const got: number[] = [];
  stream.subscribe(() => {
    throw new Error('bad listener');
  });
  const off = stream.subscribe((e) => got.push(e.seq));
  for (let seq = 1; seq <= 3; seq++) stream.publish(event(seq));
  stream.flush();
  off();
  stream.publish(event(4));
  stream.flush();
  t.same(got, [1, 2, 3]);
  t.equal(errors.length, 4);
  t.doesNotThrow(() => stream.publish(event(4)), 'a stored event is never refused');
  t.match(String(errors[4]), /seq 4 is not after 4/, 'but reported');
  t.same(stream.replayAfter(3), { kind: 'reset' }, 'and no replay crosses it');
});

t.test('off the acknowledgement path: publish records at once, listeners hear one batch per turn', async (t) => {
  const stream = new EventStream(10, () => {});
  const batches: number[][] = [];
  stream.subscribeBatches((events) => batches.push(events.map((e) => e.seq)));
  let after: number[] = [];
  stream.afterListeners((events) => (after = events.map((e) => e.seq)));
  for (let seq = 1; seq <= 3; seq++) stream.publish(event(seq));
  t.same(batches, [], 'nobody hears it while the publisher goes on (its PUBACK first)');
  t.equal(stream.lastSeq, 3, 'the buffer has them at once');
  t.same(stream.next(0)?.seq, 1, 'a reader of the buffer sees them at once');
  await new Promise((resolve) => setImmediate(resolve));
  t.same(batches, [[1, 2, 3]], 'one batch, in seq order');
  t.same(after, [1, 2, 3], 'the observer runs after the listeners');
  stream.publish(event(4));
  await new Promise((resolve) => setImmediate(resolve));
  stream.flush();
  t.same(batches, [[1, 2, 3], [4]], 'the next turn, the next batch; an empty flush delivers nothing');
});

t.test('replay after a seq: exactly the missed events, or reset', async (t) => {
  const stream = new EventStream(3, () => {});
  t.same(stream.replayAfter(0), { kind: 'events', events: [] }, 'nothing yet');
  t.same(stream.replayAfter(5), { kind: 'reset' }, 'newer than the newest: a restart in between');
  for (let seq = 1; seq <= 5; seq++) stream.publish(event(seq));
  const seqs = (after: number) => {
    const r = stream.replayAfter(after);
    return r.kind === 'reset' ? 'reset' : r.events.map((e) => e.seq);
  };
  t.same(seqs(5), []);
  t.same(seqs(4), [5]);
  t.same(seqs(2), [3, 4, 5], 'the whole buffer');
  t.equal(seqs(1), 'reset', 'older than the buffer');
  t.equal(seqs(6), 'reset');
});

t.test('a stream resumes after the seq of a durable store', async (t) => {
  const stream = new EventStream(3, () => {});
  stream.resume(41);
  t.equal(stream.lastSeq, 41);
  stream.publish(event(42));
  t.same(stream.replayAfter(41), { kind: 'events', events: [event(42)] });
  t.same(stream.replayAfter(40), { kind: 'reset' }, 'events before the restart are gone');
});

t.test('next(seq): a reader that keeps only a seq walks the buffer, and learns when it fell off', async (t) => {
  const stream = new EventStream(4, () => {});
  t.equal(stream.next(0), undefined, 'nothing yet');
  t.equal(stream.next(1), null, 'newer than the newest: no place in this stream');
  for (let seq = 1; seq <= 6; seq++) stream.publish(event(seq));
  const walk: number[] = [];
  for (let at = 2, e = stream.next(at); e; at = e.seq, e = stream.next(at)) walk.push(e.seq);
  t.same(walk, [3, 4, 5, 6], 'from the oldest reachable place to the newest, in order');
  t.equal(stream.next(6), undefined, 'caught up');
  t.equal(stream.next(1), null, 'the event after 1 has left the buffer');
  t.ok(stream.reaches(2) && !stream.reaches(1) && !stream.reaches(7));
  const zero = new EventStream(0, () => {});
  zero.publish(event(1));
  t.equal(zero.next(1), undefined, 'no buffer: caught up at the newest');
  t.equal(zero.next(0), null, 'and nothing behind it');
});

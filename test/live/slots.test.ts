import t from 'tap';
import { EventEmitter } from 'node:events';
import { StreamSlots } from '../../src/live/slots.js';

// SPEC §9: the per-address cap on open streams, on its own (security.test.ts holds it to real sockets).

const request = (ip: string) => ({ ip, log: { info() {} } }) as never;
const stream = (destroyed = false) => Object.assign(new EventEmitter(), { destroyed });

t.test('slots are counted per address, freed on close, refused past the cap', async (t) => {
  const slots = new StreamSlots(2);
  const a1 = stream();
  const a2 = stream();
  slots.take(request('10.0.0.1'), a1);
  slots.take(request('10.0.0.1'), a2);
  slots.take(request('10.0.0.2'), stream());
  t.equal(slots.count('10.0.0.1'), 2);
  t.throws(() => slots.take(request('10.0.0.1'), stream()), { code: 'BRG_ERR_TOO_MANY_STREAMS', statusCode: 429 });
  a1.emit('close');
  a1.emit('close'); // once: a second close frees nothing more
  t.equal(slots.count('10.0.0.1'), 1);
  slots.take(request('10.0.0.1'), stream());
  t.equal(slots.count('10.0.0.1'), 2);
});

t.test('a stream already gone takes no slot (its close has fired and would never free it)', async (t) => {
  const slots = new StreamSlots(1);
  slots.take(request('10.0.0.3'), stream(true));
  t.equal(slots.count('10.0.0.3'), 0);
  slots.take(request('10.0.0.3'), stream());
  t.equal(slots.count('10.0.0.3'), 1);
});

t.test('0: no cap, still counted', async (t) => {
  const slots = new StreamSlots(0);
  for (let i = 0; i < 1000; i++) slots.take(request('10.0.0.4'), stream());
  t.equal(slots.count('10.0.0.4'), 1000);
});

import t from 'tap';
import { DeviceIndex } from '../../src/live/index.js';

const visited = (index: DeviceIndex<string>, deviceId: string): string[] => {
  const got: string[] = [];
  index.forDevice(deviceId, (client) => got.push(client));
  return got.sort();
};

t.test('an event visits the clients filed under its device and those that follow every device, nobody else', async (t) => {
  const index = new DeviceIndex<string>();
  index.set('a', ['d1', 'd2']);
  index.set('b', ['d2']);
  index.set('all', null);
  t.same(visited(index, 'd1'), ['a', 'all']);
  t.same(visited(index, 'd2'), ['a', 'all', 'b']);
  t.same(visited(index, 'd3'), ['all']);
  t.equal(index.size, 3);

  index.set('a', ['d3']); // a new filter replaces the old one
  t.same(visited(index, 'd1'), ['all']);
  t.same(visited(index, 'd3'), ['a', 'all']);
  index.set('all', ['d1']);
  t.same(visited(index, 'd2'), ['b'], 'a client that followed every device and now one');

  for (const client of ['a', 'b', 'all', 'never filed']) index.delete(client);
  t.equal(index.size, 0);
  t.same(visited(index, 'd1'), []);
  t.same(visited(index, 'd3'), []);
});

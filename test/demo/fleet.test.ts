import t from 'tap';
import { demoRegistry } from '../../src/demo/fleet.js';
import type { RegistryEntry } from '../../src/devices/types.js';

// SPEC §11: the demo fleet comes with names, addresses and coordinates of one district, so the map
// is full on first start; every entry must pass the registry's own validation.

const ids = (n: number): string[] => Array.from({ length: n }, (_, i) => (0x5da60000 + i).toString(16));

/** Great-circle distance in metres (haversine). */
function metres(a: { latitude: number; longitude: number }, b: { latitude: number; longitude: number }): number {
  const rad = Math.PI / 180;
  const dLat = (b.latitude - a.latitude) * rad;
  const dLon = (b.longitude - a.longitude) * rad;
  const h = Math.sin(dLat / 2) ** 2 + Math.cos(a.latitude * rad) * Math.cos(b.latitude * rad) * Math.sin(dLon / 2) ** 2;
  return 2 * 6_371_000 * Math.asin(Math.sqrt(h));
}

/** The reasons an entry would be refused by PUT /registry/{deviceId} (SPEC §11). */
function problems(e: RegistryEntry): string[] {
  const found: string[] = [];
  if (e.name === null || e.name.length === 0 || e.name.length > 200) found.push('name');
  if (e.address === null || e.address.length === 0 || e.address.length > 500) found.push('address');
  if (e.zone === null || e.zone.length === 0 || e.zone.length > 100) found.push('zone');
  if (e.latitude === null || !(e.latitude >= -90 && e.latitude <= 90)) found.push('latitude');
  if (e.longitude === null || !(e.longitude >= -180 && e.longitude <= 180)) found.push('longitude');
  for (const c of [e.latitude, e.longitude]) if (c !== null && Math.round(c * 1e6) / 1e6 !== c) found.push('6 decimals');
  if (e.tags.length > 32 || e.tags.some((tag) => tag.length < 1 || tag.length > 64 || tag.includes('|'))) found.push('tags');
  if (new Set(e.tags).size !== e.tags.length) found.push('tags repeat');
  return found;
}

t.test('the 20 demo sensors: one district, every manhole on its own spot', async (t) => {
  const entries = demoRegistry(ids(20));
  t.equal(entries.length, 20);
  t.same(
    entries.map((e) => e.deviceId),
    ids(20),
    'one entry per id, in order',
  );
  for (const e of entries) t.same(problems(e), [], `${e.deviceId}: ${e.name}`);
  const points = entries.map((e) => ({ latitude: e.latitude!, longitude: e.longitude! }));
  const centroid = {
    latitude: points.reduce((sum, p) => sum + p.latitude, 0) / points.length,
    longitude: points.reduce((sum, p) => sum + p.longitude, 0) / points.length,
  };
  const farthest = Math.max(...points.map((p) => metres(p, centroid)));
  t.ok(farthest < 2000, `within ${Math.round(farthest)} m of the centroid`);
  let closest = Infinity;
  for (let i = 0; i < points.length; i++) {
    for (let j = i + 1; j < points.length; j++) closest = Math.min(closest, metres(points[i]!, points[j]!));
  }
  t.ok(closest >= 30, `no two markers closer than ${Math.round(closest)} m`);
  t.equal(new Set(entries.map((e) => e.name)).size, 20, 'distinct names');
  t.equal(new Set(entries.map((e) => e.address)).size, 20, 'distinct addresses');
  const zones = new Set(entries.map((e) => e.zone));
  t.ok(zones.size >= 2 && zones.size <= 4, `zones: ${[...zones].join(', ')}`);
  for (const e of entries) t.match(e.address, /^\S.* \d+, \d{5} \S/, `${e.deviceId}: street, number, postcode`);
});

t.test('the same ids give the same entries; other ids the same places', async (t) => {
  t.same(demoRegistry(ids(50)), demoRegistry(ids(50)));
  const other = demoRegistry(['a', 'b', 'c']);
  t.same(
    other.map((e) => e.deviceId),
    ['a', 'b', 'c'],
  );
  t.same(
    other.map(({ deviceId: _, ...rest }) => rest),
    demoRegistry(ids(3)).map(({ deviceId: _, ...rest }) => rest),
    'an entry depends on its position only',
  );
  t.same(demoRegistry([]), []);
});

t.test('beyond 20: a grid around the district, 1,000 sensors on 1,000 spots', async (t) => {
  const entries = demoRegistry(ids(1000));
  t.same(
    entries.map((e) => e.deviceId),
    ids(1000),
    'ids kept in order',
  );
  t.same(entries.slice(0, 20), demoRegistry(ids(20)), 'the district first');
  t.equal(new Set(entries.map((e) => `${e.latitude},${e.longitude}`)).size, 1000, 'distinct coordinates');
  t.equal(new Set(entries.map((e) => e.name)).size, 1000, 'distinct names');
  const bad = entries.filter((e) => problems(e).length > 0);
  t.same(
    bad.map((e) => `${e.deviceId}: ${problems(e).join(', ')}`),
    [],
    'every entry valid',
  );
  const center = entries[0]!;
  const farthest = Math.max(...entries.map((e) => metres({ latitude: e.latitude!, longitude: e.longitude! }, { latitude: center.latitude!, longitude: center.longitude! })));
  t.ok(farthest < 5000, `1,000 sensors within ${Math.round(farthest)} m: one city area`);
});

t.test('DEMO_DEVICES at its maximum: 100,000 valid entries on distinct spots', async (t) => {
  const entries = demoRegistry(ids(100_000));
  t.equal(new Set(entries.map((e) => `${e.latitude},${e.longitude}`)).size, 100_000);
  t.equal(
    entries.filter((e) => problems(e).length > 0).length,
    0,
  );
});

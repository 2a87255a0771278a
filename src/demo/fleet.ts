import type { RegistryEntry } from '../devices/types.js';

// SPEC §11: the simulated fleet comes with registry entries, so the map is full on first start.
// Ulmenhain is an invented district of Berlin: six streets around a market square, a school and a
// canal, about a kilometre across. The first 20 sensors sit in hand-picked manholes; more
// (DEMO_DEVICES may be up to 100,000, SPEC §6) fill a street grid that spirals outward around it.
// Everything is computed from the position in the list: the same ids give the same entries.

const CITY = 'Berlin-Ulmenhain';
const POSTCODE = { 'Ulmenhain Mitte': '10901', 'Ulmenhain Nord': '10903', 'Ulmenhain Süd': '10905', 'Ulmenhain Ost': '10907', 'Ulmenhain West': '10909' };
type Zone = keyof typeof POSTCODE;

interface Manhole {
  /** Where a crew finds it, after the "MH-001" number. */
  place: string;
  street: string;
  latitude: number;
  longitude: number;
  zone: Zone;
  tags: string[];
}

// Ulmenallee runs east-west through the middle (lat 52.5008), Mühlenweg in the north, Am
// Kanalufer along the canal in the south; Schulstraße (lon 13.3955) and Bahnhofstraße (lon
// 13.4055) cross them north-south; the Marktplatz sits on Ulmenallee. Markers are 50 m apart or more.
const DISTRICT: readonly Manhole[] = [
  { place: 'Marktplatz / Ecke Ulmenallee', street: 'Marktplatz 1', latitude: 52.50082, longitude: 13.40031, zone: 'Ulmenhain Mitte', tags: ['sewer', 'traffic', 'market'] },
  { place: 'Marktplatz, Nordseite', street: 'Marktplatz 6', latitude: 52.50124, longitude: 13.40072, zone: 'Ulmenhain Mitte', tags: ['storm-drain', 'market', 'pedestrian'] },
  { place: 'Ulmenallee 14', street: 'Ulmenallee 14', latitude: 52.50079, longitude: 13.39718, zone: 'Ulmenhain Mitte', tags: ['sewer', 'traffic', 'bus-route'] },
  { place: 'Ulmenallee / Ecke Schulstraße', street: 'Ulmenallee 31', latitude: 52.50081, longitude: 13.39554, zone: 'Ulmenhain Mitte', tags: ['storm-drain', 'traffic', 'school-route'] },
  { place: 'Ulmenallee 52', street: 'Ulmenallee 52', latitude: 52.50076, longitude: 13.40342, zone: 'Ulmenhain Mitte', tags: ['sewer', 'traffic', 'bus-route'] },
  { place: 'Ulmenallee / Ecke Bahnhofstraße', street: 'Ulmenallee 70', latitude: 52.50083, longitude: 13.40548, zone: 'Ulmenhain Mitte', tags: ['storm-drain', 'traffic', 'heavy-load'] },
  { place: 'Schulstraße 3, vor der Grundschule', street: 'Schulstraße 3', latitude: 52.50235, longitude: 13.39551, zone: 'Ulmenhain Nord', tags: ['sewer', 'school-route', 'pedestrian'] },
  { place: 'Schulstraße 18', street: 'Schulstraße 18', latitude: 52.50361, longitude: 13.39547, zone: 'Ulmenhain Nord', tags: ['storm-drain', 'school-route'] },
  { place: 'Schulstraße / Ecke Mühlenweg', street: 'Schulstraße 29', latitude: 52.50479, longitude: 13.39556, zone: 'Ulmenhain Nord', tags: ['sewer', 'school-route', 'traffic'] },
  { place: 'Mühlenweg 9', street: 'Mühlenweg 9', latitude: 52.50482, longitude: 13.39821, zone: 'Ulmenhain Nord', tags: ['storm-drain', 'residential'] },
  { place: 'Mühlenweg 24', street: 'Mühlenweg 24', latitude: 52.50476, longitude: 13.40103, zone: 'Ulmenhain Nord', tags: ['sewer', 'residential'] },
  { place: 'Mühlenweg / Ecke Bahnhofstraße', street: 'Mühlenweg 40', latitude: 52.50485, longitude: 13.40552, zone: 'Ulmenhain Nord', tags: ['storm-drain', 'traffic'] },
  { place: 'Bahnhofstraße 8', street: 'Bahnhofstraße 8', latitude: 52.50317, longitude: 13.4055, zone: 'Ulmenhain Nord', tags: ['sewer', 'traffic', 'bus-route'] },
  { place: 'Bahnhofstraße 41', street: 'Bahnhofstraße 41', latitude: 52.49894, longitude: 13.40546, zone: 'Ulmenhain Süd', tags: ['storm-drain', 'traffic', 'heavy-load'] },
  { place: 'Bahnhofstraße / Ecke Am Kanalufer', street: 'Bahnhofstraße 60', latitude: 52.49638, longitude: 13.40553, zone: 'Ulmenhain Süd', tags: ['sewer', 'traffic', 'heavy-load'] },
  { place: 'Am Kanalufer 12', street: 'Am Kanalufer 12', latitude: 52.49631, longitude: 13.40264, zone: 'Ulmenhain Süd', tags: ['storm-drain', 'canal', 'flood-risk'] },
  { place: 'Am Kanalufer 27, Bootsanleger', street: 'Am Kanalufer 27', latitude: 52.49625, longitude: 13.39938, zone: 'Ulmenhain Süd', tags: ['storm-drain', 'canal', 'pedestrian'] },
  { place: 'Am Kanalufer 44', street: 'Am Kanalufer 44', latitude: 52.49634, longitude: 13.39742, zone: 'Ulmenhain Süd', tags: ['sewer', 'canal', 'flood-risk'] },
  { place: 'Schulstraße / Ecke Am Kanalufer', street: 'Schulstraße 70', latitude: 52.49642, longitude: 13.39549, zone: 'Ulmenhain Süd', tags: ['sewer', 'school-route', 'canal'] },
  { place: 'Schulstraße 52, Sporthalle', street: 'Schulstraße 52', latitude: 52.49851, longitude: 13.39552, zone: 'Ulmenhain Süd', tags: ['storm-drain', 'school-route'] },
];

// The grid beyond: blocks of about 80 m (0.00072° of latitude; 0.00118° of longitude at 52.5° N),
// centred on the district, in square rings from ring 7 (560 m out, clear of every manhole above).
const CENTER_LATITUDE = 52.5005;
const CENTER_LONGITUDE = 13.4005;
const LATITUDE_STEP = 0.00072;
const LONGITUDE_STEP = 0.00118;
const FIRST_RING = 7;

// 24 × 14 = 336 street names, one per east-west street: enough for the 100,000 sensors of
// DEMO_DEVICES' maximum (158 rings, 317 streets); beyond that the names repeat.
const NAMES = ['Ahorn', 'Birken', 'Buchen', 'Eichen', 'Erlen', 'Eschen', 'Fichten', 'Holunder', 'Kastanien', 'Kiefern', 'Lärchen', 'Pappel',
  'Platanen', 'Rosen', 'Tannen', 'Weiden', 'Flieder', 'Nelken', 'Tulpen', 'Veilchen', 'Lilien', 'Mohn', 'Kornblumen', 'Hagebutten'];
const KINDS = ['straße', 'weg', 'allee', 'ring', 'gasse', 'pfad', 'damm', 'steig', 'zeile', 'stieg', 'graben', 'hang', 'grund', 'winkel'];

/** The grid cell of the n-th generated sensor (n from 0), walking each ring clockwise from its north-west corner. */
function cell(n: number): { x: number; y: number } {
  let r = FIRST_RING;
  while (n >= 8 * r) {
    n -= 8 * r;
    r++;
  }
  if (n <= 2 * r) return { x: -r + n, y: r }; // north side, west to east
  n -= 2 * r + 1;
  if (n < 2 * r) return { x: r, y: r - 1 - n }; // east side, southward
  n -= 2 * r;
  if (n < 2 * r) return { x: r - 1 - n, y: -r }; // south side, eastward to west
  n -= 2 * r;
  return { x: -r, y: -r + 1 + n }; // west side, northward
}

function round6(degrees: number): number {
  return Math.round(degrees * 1e6) / 1e6;
}

function generated(n: number): Manhole {
  const { x, y } = cell(n);
  // each east-west street (one per y) has its own name; house numbers rise eastward, odd west of the centre
  const k = y >= 0 ? 2 * y : -2 * y - 1;
  const street = NAMES[k % NAMES.length]! + KINDS[Math.floor(k / NAMES.length) % KINDS.length]!;
  const number = x >= 0 ? 2 * x + 2 : -2 * x + 1;
  const zone: Zone = Math.abs(y) >= Math.abs(x) ? (y > 0 ? 'Ulmenhain Nord' : 'Ulmenhain Süd') : x > 0 ? 'Ulmenhain Ost' : 'Ulmenhain West';
  const tags = [n % 3 === 0 ? 'storm-drain' : 'sewer', y % 5 === 0 ? 'traffic' : 'residential'];
  if (x % 7 === 0) tags.push('school-route');
  return {
    place: `${street} ${number}`,
    street: `${street} ${number}`,
    latitude: CENTER_LATITUDE + y * LATITUDE_STEP,
    longitude: CENTER_LONGITUDE + x * LONGITUDE_STEP,
    zone,
    tags,
  };
}

/** The registry entries of the demo fleet (SPEC §11): one per DeviceID, in the order given. */
export function demoRegistry(deviceIds: readonly string[]): RegistryEntry[] {
  return deviceIds.map((deviceId, i) => {
    const m = i < DISTRICT.length ? DISTRICT[i]! : generated(i - DISTRICT.length);
    return {
      deviceId,
      name: `MH-${String(i + 1).padStart(3, '0')} ${m.place}`,
      address: `${m.street}, ${POSTCODE[m.zone]} ${CITY}`,
      latitude: round6(m.latitude),
      longitude: round6(m.longitude),
      zone: m.zone,
      tags: [...m.tags],
    };
  });
}

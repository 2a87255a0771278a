import t from 'tap';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

// The house in one table (STYLE: floors that only look down). Every module of src/ belongs to a
// floor; it may import from the floors below it and from its own folder, never from a floor above
// or from a neighbour on its own floor. A new folder must be given a floor here first.

const floors = { ground: 0, devices: 1, live: 2, station: 3, top: 4 } as const;
type Floor = keyof typeof floors;

/** The folders of src/ and their floors; the files directly in src/ are the ground, but for the top. */
const FOLDERS: Record<string, Floor> = {
  devices: 'devices',
  live: 'live',
  ingest: 'station',
  http: 'station',
  graphql: 'station',
  streams: 'station',
  webhooks: 'station',
  dashboard: 'station',
  demo: 'station',
};
const TOP = new Set(['app.ts', 'main.ts']);

const SRC = resolve(import.meta.dirname, '../src');

interface Place {
  floor: Floor;
  /** The folder under src/ ('' for the files in src/ itself). */
  folder: string;
}

function placeOf(file: string): Place {
  const path = relative(SRC, file);
  const [first, ...rest] = path.split('/');
  if (rest.length === 0) return { floor: TOP.has(first!) ? 'top' : 'ground', folder: '' };
  const floor = FOLDERS[first!];
  if (floor === undefined) throw new Error(`src/${first}/ has no floor in test/architecture.test.ts`);
  return { floor, folder: first! };
}

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sources(path);
    return /\.(ts|js)$/.test(entry.name) && !entry.name.endsWith('.d.ts') && !path.includes('/public/') ? [path] : [];
  });
}

/** The relative imports of a module (import and export … from, dynamic import), as files. */
function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const specifiers = [...text.matchAll(/(?:from|import)\s*\(?\s*'(\.[^']+)'/g)].map((m) => m[1]!);
  return specifiers.map((s) => resolve(dirname(file), s).replace(/\.js$/, '.ts'));
}

/** Why an arrow from `from` to `to` is not allowed, or null. */
export function problem(from: Place, to: Place): string | null {
  if (from.folder !== '' && from.folder === to.folder) return null; // within a folder
  // the ground is one floor, and so is the top (main.ts starts what app.ts builds)
  if (from.floor === to.floor && (from.floor === 'ground' || from.floor === 'top')) return null;
  if (floors[to.floor] < floors[from.floor]) return null; // down
  if (to.floor === from.floor) return `a neighbour on its own floor (${from.floor})`;
  return `up, from ${from.floor} to ${to.floor}`;
}

t.test('every import in src/ runs down, or within its folder', async (t) => {
  const files = sources(SRC);
  t.ok(files.length > 30, `${files.length} modules read`);
  const wrong: string[] = [];
  for (const file of files) {
    const from = placeOf(file);
    for (const target of importsOf(file)) {
      if (!target.startsWith(SRC)) continue; // the schema/ documents, read as files
      const why = problem(from, placeOf(target));
      if (why !== null) wrong.push(`src/${relative(SRC, file)} → src/${relative(SRC, target)}: ${why}`);
    }
  }
  t.same(wrong, [], 'no arrow runs up or across');
});

t.test('the rules themselves', async (t) => {
  const at = (floor: Floor, folder = ''): Place => ({ floor, folder });
  t.equal(problem(at('station', 'graphql'), at('live', 'live')), null, 'a station looks down');
  t.equal(problem(at('station', 'http'), at('station', 'http')), null, 'within its folder');
  t.equal(problem(at('ground'), at('ground')), null, 'the ground floor is one');
  t.equal(problem(at('top'), at('top')), null, 'and the top');
  t.match(problem(at('station', 'graphql'), at('station', 'streams')), /neighbour/, 'stations never import each other');
  t.match(problem(at('devices', 'devices'), at('station', 'webhooks')), /up/, 'devices import no station');
  t.match(problem(at('ground'), at('station', 'ingest')), /up/, 'the ground imports no station');
  t.match(problem(at('live', 'live'), at('station', 'streams')), /up/);
});

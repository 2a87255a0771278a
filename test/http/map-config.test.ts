import t from 'tap';
import { loadConfig } from '../../src/config.js';
import { buildTestApp, testConfig } from '../helpers/app.js';

// SPEC §11: the map's tiles come only from MAP_TILE_URL, and the pages' CSP lets images come from
// that origin and no other; unset, the CSP stays as strict as it is without a map.

const config = (env: Record<string, string>) => loadConfig({ env: { DATA_DIR: '', ...env }, dotenv: false });

t.test('MAP_TILE_URL: a tile template whose origin a CSP can name', async (t) => {
  t.same(config({}).map, { tileUrl: null, tileAttribution: null, tileSource: null }, 'none by default');
  t.same(config({ MAP_TILE_URL: 'https://tiles.example/{z}/{x}/{y}.png', MAP_TILE_ATTRIBUTION: '(c) Example' }).map, {
    tileUrl: 'https://tiles.example/{z}/{x}/{y}.png',
    tileAttribution: '(c) Example',
    tileSource: 'https://tiles.example',
  });
  t.equal(config({ MAP_TILE_URL: 'https://{s}.tile.example:8443/{z}/{x}/{y}.png?key=abc' }).map.tileSource, 'https://*.tile.example:8443', 'a leading {s} is a wildcard');
  t.throws(() => config({ MAP_TILE_URL: 'https://tiles.example/tile.png' }), /MAP_TILE_URL must hold \{z\}, \{x\} and \{y\}/);
  t.throws(() => config({ MAP_TILE_URL: 'https://tiles-{s}.example/{z}/{x}/{y}.png' }), /leading \{s\}/);
  t.throws(() => config({ MAP_TILE_URL: 'ftp://tiles.example/{z}/{x}/{y}.png' }), /MAP_TILE_URL/);
  t.throws(() => config({ MAP_TILE_URL: "https://tiles.example/{z}/{x}/{y}.png; script-src 'unsafe-inline'" }), /MAP_TILE_URL/, 'no CSP injection through the URL');
  t.throws(() => config({ MAP_TILE_ATTRIBUTION: 'x' }), /MAP_TILE_ATTRIBUTION is set without MAP_TILE_URL/);
});

t.test("the pages' CSP allows the tile origin for images only, and only when set", async (t) => {
  const plain = await buildTestApp(t, testConfig(), { connectMqtt: false });
  const csp = String((await plain.inject('/')).headers['content-security-policy']);
  t.match(csp, /img-src 'self' data:;/);
  const tiled = await buildTestApp(t, testConfig({ MAP_TILE_URL: 'https://tiles.example/{z}/{x}/{y}.png' }), { connectMqtt: false });
  const withTiles = String((await tiled.inject('/')).headers['content-security-policy']);
  t.match(withTiles, /img-src 'self' data: https:\/\/tiles\.example;/);
  t.equal(withTiles.replace(' https://tiles.example', ''), csp, 'nothing else changes');
  t.equal((await tiled.inject('/devices')).headers['content-security-policy'], "default-src 'none'; frame-ancestors 'none'", 'API answers keep theirs');
});

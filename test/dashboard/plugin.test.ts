import t from 'tap';
import { buildTestApp, testConfig } from '../helpers/app.js';
import { DASHBOARD_ASSETS } from '../../src/dashboard/plugin.js';

// The page and its assets over inject(): types, headers, the CSP's rules kept by the files
// themselves, and no way to read anything else.

const CSP =
  "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self' data:; connect-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'";

/** A CSP header's directives, in order, however they are separated. */
const directives = (csp: unknown): string[] => String(csp).split(';').map((d) => d.trim()).filter((d) => d !== '');

t.test('GET / is the page, under the CSP, with nothing inline', async (t) => {
  const app = await buildTestApp(t, testConfig({ DEMO_DEVICES: '0' }), { connectMqtt: false });
  const res = await app.inject({ method: 'GET', url: '/' });
  t.equal(res.statusCode, 200);
  t.equal(res.headers['content-type'], 'text/html; charset=utf-8');
  t.same(directives(res.headers['content-security-policy']), directives(CSP), 'the service-wide CSP (http/security.ts)');
  t.equal(res.headers['x-content-type-options'], 'nosniff');
  t.equal(res.headers['cache-control'], 'no-cache');
  const html = res.body;
  t.notMatch(html, /<style/i, 'no style block');
  t.notMatch(html, /\sstyle\s*=/i, 'no style attribute');
  t.notMatch(html, /\son[a-z]+\s*=/i, 'no on* attribute');
  t.notMatch(html, /https?:\/\//i, 'no other site (no CDN)');
  for (const script of html.match(/<script\b[^>]*>/gi) ?? []) t.match(script, /\ssrc="\/dashboard\/[^"]+"/, `a script from a file: ${script}`);

  // every file the page names (HTML links, JS imports) is served, with its type
  const named = new Set<string>();
  for (const m of html.matchAll(/(?:href|src)="(\/dashboard\/[^"]+)"/g)) named.add(m[1]!);
  for (const name of DASHBOARD_ASSETS.filter((n) => n.endsWith('.js'))) {
    const js = (await app.inject({ method: 'GET', url: `/dashboard/${name}` })).body;
    for (const m of js.matchAll(/^import .* from '\.\/([^']+)';$/gm)) named.add(`/dashboard/${m[1]}`);
  }
  t.ok(named.size >= DASHBOARD_ASSETS.length, `the page names its ${DASHBOARD_ASSETS.length} files`);
  const types: Record<string, string> = { js: 'text/javascript; charset=utf-8', css: 'text/css; charset=utf-8', svg: 'image/svg+xml' };
  for (const url of named) {
    const asset = await app.inject({ method: 'GET', url });
    t.equal(asset.statusCode, 200, url);
    t.equal(asset.headers['content-type'], types[url.slice(url.lastIndexOf('.') + 1)], `${url}: its content type`);
    t.same(directives(asset.headers['content-security-policy']), directives(CSP));
  }
});

t.test('the scripts build the DOM from text: no HTML parsing, no eval', async (t) => {
  const app = await buildTestApp(t, testConfig({ DEMO_DEVICES: '0' }), { connectMqtt: false });
  for (const name of DASHBOARD_ASSETS.filter((n) => n.endsWith('.js'))) {
    const js = (await app.inject({ method: 'GET', url: `/dashboard/${name}` })).body;
    t.notMatch(js, /innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function|setAttribute\(['"]style/, `${name}: no HTML from strings, no eval`);
  }
});

t.test('only the listed files: nothing else of the disk', async (t) => {
  const app = await buildTestApp(t, testConfig({ DEMO_DEVICES: '0' }), { connectMqtt: false });
  for (const url of ['/dashboard/nope.js', '/dashboard/tsconfig.json', '/dashboard/..%2Fplugin.ts', '/dashboard/index.html', '/dashboard/%2e%2e%2f%2e%2e%2fpackage.json']) {
    t.equal((await app.inject({ method: 'GET', url })).statusCode, 404, url);
  }
});

t.test('with API_KEYS, the page and its files need no key (they hold no data)', async (t) => {
  const app = await buildTestApp(t, testConfig({ DEMO_DEVICES: '0', API_KEYS: 'a-key-of-16-chars-or-more' }), { connectMqtt: false });
  t.equal((await app.inject({ method: 'GET', url: '/' })).statusCode, 200);
  t.equal((await app.inject({ method: 'GET', url: '/dashboard/app.js' })).statusCode, 200);
  t.equal((await app.inject({ method: 'GET', url: '/devices' })).statusCode, 401, 'the data does');
});

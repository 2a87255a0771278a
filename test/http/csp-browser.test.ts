import t from 'tap';
import { chromium, type Browser } from 'playwright-core';
import { buildTestApp, testConfig } from '../helpers/app.js';
import { requireBinary } from '../helpers/binaries.js';

// SPEC §9: secure headers that still let GraphiQL and /docs work. Both pages load in Debian's
// Chromium under the service's Content-Security-Policy, with no violation and no script error.

const chromiumPath = requireBinary(t, 'chromium');

if (chromiumPath !== undefined) {
  let browser: Browser;
  t.before(async () => {
    browser = await chromium.launch({
      executablePath: chromiumPath,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
  });
  t.teardown(() => browser?.close());

  const pages: [string, string, string][] = [
    ['/graphiql', '.graphiql-container', 'GraphiQL'],
    ['/docs/', '.swagger-ui .info', 'Swagger UI'],
  ];
  for (const [path, selector, what] of pages) {
    t.test(`${what} at ${path} works under the CSP`, async (t) => {
      const app = await buildTestApp(t, testConfig(), { connectMqtt: false });
      await app.listen({ port: 0, host: '127.0.0.1' });
      const { port } = app.server.address() as { port: number };
      const page = await browser.newPage();
      t.teardown(() => page.close());
      const problems: string[] = [];
      page.on('console', (message) => {
        if (message.type() === 'error') problems.push(message.text());
      });
      page.on('pageerror', (err) => problems.push(err.message));
      page.on('response', (response) => {
        if (response.status() >= 400) problems.push(`${response.status()} ${response.url()}`);
      });
      await page.addInitScript(() => {
        document.addEventListener('securitypolicyviolation', (e) => console.error(`CSP violation: ${e.violatedDirective} ${e.blockedURI}`));
      });
      const res = await page.goto(`http://127.0.0.1:${port}${path}`);
      t.match(res?.headers()['content-security-policy'], /script-src 'self'/);
      await page.waitForSelector(selector, { timeout: 15_000 });
      t.pass(`${what} rendered`);
      t.same(problems, [], 'no CSP violation, no script error');
    });
  }
}

if (chromiumPath !== undefined) {
  t.test('GraphiQL with API_KEYS: the key of ?apiKey= (or the dashboard\'s) goes with its queries', async (t) => {
    const key = 'k-0123456789abcdef-graphiql';
    const app = await buildTestApp(t, testConfig({ API_KEYS: key }), { connectMqtt: false });
    await app.listen({ port: 0, host: '127.0.0.1' });
    const { port } = app.server.address() as { port: number };
    const browser = await chromium.launch({
      executablePath: chromiumPath,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    t.teardown(() => browser.close());
    const introspection = async (url: string): Promise<number> => {
      const page = await browser.newPage();
      t.teardown(() => page.close());
      const answer = page.waitForResponse((r) => r.url().endsWith('/graphql') && r.request().method() === 'POST', { timeout: 15_000 });
      await page.goto(url);
      return (await answer).status();
    };
    t.equal(await introspection(`http://127.0.0.1:${port}/graphiql`), 401, 'without a key: refused');
    t.equal(await introspection(`http://127.0.0.1:${port}/graphiql?apiKey=${key}`), 200, 'with ?apiKey=: served');
  });
}

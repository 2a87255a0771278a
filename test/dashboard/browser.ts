import type { Test } from 'tap';
import type { FastifyInstance } from 'fastify';
import { chromium, type Browser, type BrowserContextOptions, type Page } from 'playwright-core';
import { requireBinary } from '../helpers/binaries.js';

// A real Chromium (Debian's) for the dashboard's tests: one browser per test file, a fresh
// context (its own sessionStorage) per page. Any console error, page error or CSP violation is
// a failure, unless the test says it expects that one (a 401 while it tests API keys).

const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

/** Chromium, closed at t's teardown; undefined (t skipped, or failed under REQUIRE_TEST_BINARIES=1) when it is missing. */
export async function launchBrowser(t: Test): Promise<Browser | undefined> {
  const bin = requireBinary(t, 'chromium');
  if (bin === undefined) return undefined;
  const browser = await chromium.launch({ executablePath: bin, args: ARGS });
  t.teardown(() => browser.close());
  return browser;
}

export interface Watched {
  page: Page;
  /** Console errors and page errors seen so far, minus the expected ones. */
  problems: string[];
  /** Messages matching these are expected (and not problems). */
  expect: RegExp[];
}

/** A new page in a new context, watched for errors; the context closes at t's teardown. */
export async function openPage(t: Test, browser: Browser, options: BrowserContextOptions = {}): Promise<Watched> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, locale: 'en-US', ...options });
  const page = await context.newPage();
  page.setDefaultTimeout(10_000);
  const watched: Watched = { page, problems: [], expect: [] };
  const note = (text: string): void => {
    if (!watched.expect.some((re) => re.test(text))) watched.problems.push(text);
  };
  page.on('console', (msg) => {
    if (msg.type() === 'error') note(`console error: ${msg.text()} (${msg.location().url})`);
  });
  page.on('pageerror', (err) => note(`page error: ${err.message}`));
  t.teardown(() => context.close());
  return watched;
}

/** The check every page test ends with. */
export function noProblems(t: Test, watched: Watched): void {
  t.same(watched.problems, [], 'no console error, page error or CSP violation');
}

/** http://127.0.0.1:PORT of a listening app. */
export function baseUrl(app: FastifyInstance): string {
  const { port } = app.server.address() as { port: number };
  return `http://127.0.0.1:${port}`;
}

/** A CSS attribute selector for the row of a device (ids may hold any character). */
export function rowOf(deviceId: string): string {
  return `tr.device[data-id=${JSON.stringify(deviceId)}]`;
}

import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { spawnBridge } from './helpers/process.js';

// The image holds only what the Dockerfile copies (and .dockerignore lets through). Without a
// Docker engine here, the test builds the same tree in a folder and starts the service from it:
// a file read at run time but not copied fails this, not a user's `docker run`.

const root = fileURLToPath(new URL('..', import.meta.url));
const dockerfile = readFileSync(join(root, 'Dockerfile'), 'utf8');

/** The final stage's `COPY <sources…> <dest>` lines from the build context (not --from a stage). */
function copiedFromContext(): string[] {
  const finalStage = dockerfile.slice(dockerfile.lastIndexOf('\nFROM '));
  const sources: string[] = [];
  for (const line of finalStage.split('\n')) {
    const m = /^COPY\s+(?!--from)(.+)$/.exec(line.trim());
    if (m) sources.push(...m[1]!.split(/\s+/).slice(0, -1));
  }
  return sources;
}

t.test('the image: what it copies is what the service needs, and the build context lets it through', async (t) => {
  const sources = copiedFromContext();
  t.ok(sources.includes('src') && sources.includes('openapi.yaml'), `copies ${sources.join(', ')}`);
  const allowed = readFileSync(join(root, '.dockerignore'), 'utf8').split('\n').filter((l) => l.startsWith('!')).map((l) => l.slice(1));
  for (const source of sources) t.ok(allowed.includes(source), `.dockerignore lets ${source} into the build context`);
  t.match(dockerfile, /HEALTHCHECK[^]*\/readyz/, 'the health check asks /readyz');
  t.match(dockerfile, /^USER node$/m, 'not root');

  const dir = mkdtempSync(join(tmpdir(), 'wiihey-image-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  for (const source of sources) cpSync(join(root, source), join(dir, source), { recursive: true });
  symlinkSync(join(root, 'node_modules'), join(dir, 'node_modules'), 'dir');
  mkdirSync(join(dir, 'data')); // RUN mkdir data
  const bridge = await spawnBridge(t, { EMBEDDED_MQTT_PORT: '0', DEMO_DEVICES: '3' }, dir, join(dir, 'src/main.ts'));
  const deadline = Date.now() + 30_000;
  let ready = 0;
  while ((ready = (await fetch(`${bridge.base}/readyz`)).status) !== 200 && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  t.equal(ready, 200, 'ready: the demo broker, the store in ./data');
  for (const path of ['/', '/docs/', '/graphiql', '/openapi.json', '/devices']) {
    t.equal((await fetch(`${bridge.base}${path}`)).status, 200, `${path} is served from the image's files`);
  }
  t.ok(existsSync(join(dir, 'data', 'wiihey-bridge.db')), 'state in ./data, the one writable folder');
  bridge.child.kill('SIGTERM');
  t.equal(await bridge.exited, 0);
});

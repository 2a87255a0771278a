import type { EventEmitter } from 'node:events';
import { createClient, SocketClosedUnexpectedlyError } from 'redis';
import t, { type Test } from 'tap';
import { startRedis } from './redis.js';

const waitMs = 5_000; // every wait below ends by then, pass or fail

/**
 * A node-redis client for `url`, destroyed at t's teardown (destroy() is idempotent, close() throws
 * once closed). reconnectStrategy false: a refused connect rejects and a lost connection ends the
 * client ('terminated') instead of retrying every ≤ 2.2 s forever, node-redis's default.
 */
function client(t: Test, url: string, reconnectStrategy: false | number = false) {
  const redis = createClient({ url, socket: { reconnectStrategy, connectTimeout: waitMs } });
  // node-redis emits 'error' on every failed attempt and lost connection, even a retried one;
  // with no listener that is an uncaught exception. The tests wait on the events they expect.
  redis.on('error', () => {});
  t.teardown(() => redis.destroy());
  return redis;
}

/** The arguments of the emitter's next `event`; rejects after waitMs. */
function next(emitter: EventEmitter, event: string): Promise<unknown[]> {
  // Not events.once: it rejects on any 'error', and a reconnecting client's refused attempts are expected.
  return new Promise((resolve, reject) => {
    const onEvent = (...args: unknown[]): void => {
      clearTimeout(timer);
      resolve(args);
    };
    const timer = setTimeout(() => {
      emitter.off(event, onEvent);
      reject(new Error(`no '${event}' within ${waitMs} ms`));
    }, waitMs);
    emitter.once(event, onEvent);
  });
}

t.test('a server of its own: SET and GET round-trip, no persistence by default', async (t) => {
  const server = await startRedis(t);
  if (!server) return;
  t.equal(server.url, `redis://127.0.0.1:${server.port}`);
  t.not(server.port, 6379, 'never the machine’s Redis');

  const redis = await client(t, server.url).connect();
  t.equal(await redis.set('wiihey:helpers:hello', 'world'), 'OK');
  t.equal(await redis.get('wiihey:helpers:hello'), 'world');
  t.same(await redis.configGet('appendonly'), { appendonly: 'no' });
  t.same(await redis.configGet('save'), { save: '' }, 'no RDB snapshots');
  t.same(await redis.configGet('dir'), { dir: server.dir });
  await redis.close();
  t.match(server.log(), /Ready to accept connections/);
});

t.test('appendonly with appendfsync always: an acknowledged key survives SIGKILL', async (t) => {
  const server = await startRedis(t, { appendonly: true, appendfsync: 'always' });
  if (!server) return;
  const { port } = server;

  const redis = await client(t, server.url).connect();
  t.same(await redis.configGet('appendfsync'), { appendfsync: 'always' });
  await redis.set('wiihey:helpers:durable', 'kept');
  // Left open across the kill: with reconnectStrategy false it ends by itself, no retry loop.
  const terminated = next(redis, 'terminated');
  await server.kill();
  const [cause] = await terminated;
  t.type(cause, SocketClosedUnexpectedlyError, 'a killed server ends a non-reconnecting client');
  t.notOk(redis.isOpen);

  await server.start();
  t.equal(server.port, port, 'same port after start()');
  t.match(server.log(), /DB loaded from append only file/);
  const again = await client(t, server.url).connect();
  t.equal(await again.get('wiihey:helpers:durable'), 'kept');
  await again.close();
});

t.test('without appendonly a key dies with the process; a refused connect rejects; a retrying client comes back', async (t) => {
  const server = await startRedis(t);
  if (!server) return;

  // Retrying every 50 ms, as a long-lived client would (node-redis's default backs off to 2 s + jitter).
  const retrying = await client(t, server.url, 50).connect();
  await retrying.set('wiihey:helpers:volatile', 'gone soon');
  const reconnecting = next(retrying, 'reconnecting');
  await server.kill();
  await reconnecting;

  const refused = client(t, server.url);
  await t.rejects(refused.connect(), { code: 'ECONNREFUSED' }, 'killed means down: a connect meets a closed port');
  t.notOk(refused.isOpen, 'reconnectStrategy false: the refused client gave up');

  const ready = next(retrying, 'ready');
  await server.start();
  await ready;
  t.equal(await retrying.get('wiihey:helpers:volatile'), null, 'the key is gone');
  await retrying.close();

  // stop() is the graceful path: redis-server logs its goodbye (and, with save "", writes no dump.rdb).
  await server.stop();
  t.match(server.log(), /Redis is now ready to exit, bye bye/);
  await server.start();
  const fresh = await client(t, server.url).connect();
  t.equal(await fresh.ping(), 'PONG', 'answers after stop() and start()');
  await fresh.close();
});

t.test('two at once: different ports, separate data', async (t) => {
  const a = await startRedis(t);
  if (!a) return;
  const b = await startRedis(t);
  if (!b) return;
  t.not(a.port, b.port);
  t.not(a.dir, b.dir);

  const [ra, rb] = await Promise.all([client(t, a.url).connect(), client(t, b.url).connect()]);
  await ra.set('wiihey:helpers:which', 'a');
  t.equal(await rb.get('wiihey:helpers:which'), null, 'b does not see a’s key');
  await Promise.all([ra.close(), rb.close()]);
});

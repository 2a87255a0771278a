import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import type { Test } from 'tap';
import { requireBinary } from './binaries.js';
import { freePort } from './ports.js';

export interface RedisOptions {
  appendonly?: boolean; // default false: a SIGKILL loses everything (SPEC §8 durability needs true)
  appendfsync?: 'always' | 'everysec' | 'no'; // default 'everysec' (Redis's own); 'always' fsyncs before each reply
  extraConfig?: string; // appended to redis.conf, last, so it overrides the lines above (e.g. `save 60 1`)
}

export interface Redis {
  port: number;
  url: string; // 'redis://127.0.0.1:PORT'
  dir: string; // the data dir (AOF and RDB files), removed at teardown
  stop(): Promise<void>; // SIGTERM, wait for exit (SIGKILL after 5 s)
  kill(): Promise<void>; // SIGKILL, wait for exit
  start(): Promise<void>; // (re)start on the same port, config and data dir; resolves once it accepts connections
  log(): string; // everything redis-server printed so far, for debugging a failed test
}

const readyTimeoutMs = 10_000;
const stopTimeoutMs = 5_000;
const addressInUseRetryMs = 5_000; // while our server was down, something else may hold its port for a moment
// redis-server 7.0.15 logs at notice level, in src/server.c, once its listeners listen and the data is loaded:
// "3460:M 07 Dec 2026 06:59:16.201 * Ready to accept connections" (7.2 appends " tcp").
const readyLine = /\* Ready to accept connections/;

interface Run {
  proc: ChildProcess;
  output: string; // what this process printed
  ended: boolean;
  ready: Promise<void>; // resolves on the ready line, rejects if the process ends first
  closed: Promise<void>;
}

// Last resort if the test process exits without its teardowns (a crash, process.exit):
// no server may outlive the run on a port nobody remembers.
const live = new Set<ChildProcess>();
let exitHookInstalled = false;

/** Whether `promise` settled within `ms` (its rejection propagates); the timer never outlives the call. */
async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  const timer = new AbortController();
  try {
    return await Promise.race([promise.then(() => true), delay(ms, false, { signal: timer.signal })]);
  } finally {
    timer.abort();
  }
}

/**
 * A real redis-server on a free 127.0.0.1 port, with its own config and data in its own
 * temp dir; never the machine's Redis on 6379. Undefined when the binary is missing (the
 * test is then skipped or failed by requireBinary: return at once). Killed at t's teardown.
 */
export async function startRedis(t: Test, options: RedisOptions = {}): Promise<Redis | undefined> {
  const bin = requireBinary(t, 'redis-server');
  if (bin === undefined) return undefined;

  // Our own dir rather than t.testdir(): two servers in one test would share a testdir.
  const dir = await mkdtemp(join(tmpdir(), 'wiihey-redis-'));
  let child: Run | undefined;
  let output = '';
  t.teardown(async () => {
    await kill();
    await rm(dir, { recursive: true, force: true });
  });

  const port = await freePort();
  const lines = [
    `port ${port}`,
    // Loopback only, and protected mode on: a test server is nobody else's business.
    'bind 127.0.0.1',
    'protected-mode yes',
    'daemonize no',
    `dir ${dir}`,
    // No RDB snapshots: with save points, even a SIGTERM would write dump.rdb and hide a missing AOF.
    'save ""',
    `appendonly ${options.appendonly ? 'yes' : 'no'}`,
    `appendfsync ${options.appendfsync ?? 'everysec'}`,
    // To stdout, which we capture: log() and the readiness check read it.
    'logfile ""',
  ];
  if (options.extraConfig) lines.push(options.extraConfig);
  const configFile = join(dir, 'redis.conf');
  await writeFile(configFile, lines.join('\n') + '\n', { mode: 0o644 });

  // An arrow, not a declaration: TypeScript keeps `bin` narrowed to string only in the former.
  const launch = (): Run => {
    if (!exitHookInstalled) {
      exitHookInstalled = true;
      process.once('exit', () => live.forEach((p) => p.kill('SIGKILL')));
    }
    const proc = spawn(bin, [configFile], { stdio: ['ignore', 'pipe', 'pipe'] });
    live.add(proc);
    const run = { proc, output: '', ended: false } as Run;
    const append = (chunk: string): void => {
      run.output += chunk;
      output += chunk;
    };
    proc.stdout.setEncoding('utf8').on('data', append);
    proc.stderr.setEncoding('utf8').on('data', append);
    // 'close' comes after the pipes are drained, so the output then holds the last words.
    run.closed = new Promise<void>((resolve) => {
      const done = (): void => {
        run.ended = true;
        live.delete(proc);
        resolve();
      };
      proc.once('close', done);
      proc.once('error', (err) => {
        append(`spawn ${bin}: ${err.message}\n`);
        done();
      });
    });
    // Ready = this process logged the ready line, after it listens and has loaded the AOF.
    // Not a TCP probe: while the port is free (after a kill) another process may take it,
    // and a probe would reach that one while our redis-server dies of EADDRINUSE.
    run.ready = new Promise<void>((resolve, reject) => {
      const check = (): void => {
        if (!readyLine.test(run.output)) return;
        proc.stdout.off('data', check);
        resolve();
      };
      proc.stdout.on('data', check);
      void run.closed.then(() => reject(new Error(`redis-server exited before accepting connections on port ${port}:\n${run.output}`)));
    });
    return run;
  };

  async function start(): Promise<void> {
    if (child && !child.ended) return;
    const startedAt = Date.now();
    for (;;) {
      const run = launch();
      child = run;
      let up: boolean;
      try {
        up = await settlesWithin(run.ready, readyTimeoutMs - (Date.now() - startedAt));
      } catch (err) {
        if (run.proc.killed) throw new Error(`redis-server on port ${port} was stopped while starting`);
        // redis-server 7.0: "Could not create server TCP listening socket 127.0.0.1:PORT: bind: Address already in use"
        const retry = /address already in use/i.test(run.output) && Date.now() - startedAt < addressInUseRetryMs;
        if (!retry) throw err;
        await delay(100); // the port is still taken (a kill a moment ago, or a squatter): try again shortly
        continue;
      }
      if (up) return;
      await kill();
      throw new Error(`redis-server not accepting connections on port ${port} after ${readyTimeoutMs} ms:\n${run.output}`);
    }
  }

  async function kill(): Promise<void> {
    const run = child;
    if (!run || run.ended) return;
    run.proc.kill('SIGKILL');
    await run.closed;
  }

  async function stop(): Promise<void> {
    const run = child;
    if (!run || run.ended) return;
    run.proc.kill('SIGTERM');
    if (!(await settlesWithin(run.closed, stopTimeoutMs))) await kill();
  }

  const server: Redis = {
    port,
    url: `redis://127.0.0.1:${port}`,
    dir,
    start,
    stop,
    kill,
    log: () => output,
  };
  await start();
  return server;
}

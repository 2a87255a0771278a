import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';

// Processes of the suite: its own Mosquitto, the bridge as a user runs it, the baselines.

const ROOT = new URL('../../', import.meta.url).pathname;
const TSX = import.meta.resolve('tsx');
const live = new Set<ChildProcess>();
process.once('exit', () => live.forEach((p) => p.kill('SIGKILL')));

export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

export interface Proc {
  child: ChildProcess;
  output(): string;
  stop(): Promise<void>;
}

function track(child: ChildProcess): Proc {
  live.add(child);
  let output = '';
  child.stdout?.on('data', (d) => (output = (output + d).slice(-20_000)));
  child.stderr?.on('data', (d) => (output = (output + d).slice(-20_000)));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return {
    child,
    output: () => output,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
      live.delete(child);
    },
  };
}

export function mosquittoBinary(): string {
  for (const bin of ['/usr/sbin/mosquitto', '/usr/local/sbin/mosquitto', '/usr/bin/mosquitto']) {
    try {
      readFileSync(bin);
      return bin;
    } catch {
      // next
    }
  }
  throw new Error('mosquitto is not installed (Debian: apt-get install mosquitto)');
}

/** Debian's mosquitto on a free port, queues large enough that nothing is dropped. */
export async function startBroker(): Promise<Proc & { url: string }> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'wiihey-bench-mosquitto-'));
  const config = join(dir, 'mosquitto.conf');
  writeFileSync(
    config,
    [
      'per_listener_settings false',
      `user ${userInfo().username}`,
      `listener ${port} 127.0.0.1`,
      'allow_anonymous true',
      'persistence false',
      'max_queued_messages 0', // 0: no limit, nothing dropped while a consumer is behind
      'max_queued_bytes 0',
      'max_inflight_messages 100',
      // without it, Nagle's algorithm and delayed ACKs stall small messages by up to 40 ms
      'set_tcp_nodelay true',
      'log_dest stderr',
      'log_type error',
      'log_type warning',
      'log_type notice',
      'log_type information',
    ].join('\n'),
  );
  const proc = track(spawn(mosquittoBinary(), ['-c', config], { stdio: ['ignore', 'pipe', 'pipe'] }));
  await waitFor(async () => {
    if (proc.child.exitCode !== null) throw new Error(`mosquitto exited: ${proc.output()}`);
    return /running|Opening ipv4 listen socket/.test(proc.output());
  }, 10_000, 'mosquitto to start');
  const stop = proc.stop;
  return {
    ...proc,
    url: `mqtt://127.0.0.1:${port}`,
    async stop() {
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The bridge as a user runs it (`npm start` without npm in between), on a free port. */
export async function startBridge(env: Record<string, string>): Promise<Proc & { base: string; pid: number }> {
  const port = await freePort();
  const child = spawn(process.execPath, ['--import', TSX, join(ROOT, 'src/main.ts')], {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH,
      HOST: '127.0.0.1',
      PORT: String(port),
      LOG_LEVEL: 'warn',
      RATE_LIMIT_PER_MINUTE: '0', // one address makes every request: the bare baselines have no limits either
      MAX_STREAMS_PER_ADDRESS: '0',
      EMBEDDED_MQTT_PORT: '0',
      // memory only, unless the scenario says otherwise; with REDIS_URL, DATA_DIR must not be set at all (SPEC §8)
      ...(env.REDIS_URL === undefined ? { DATA_DIR: '' } : {}),
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const proc = track(child);
  const base = `http://127.0.0.1:${port}`;
  await waitFor(async () => {
    if (child.exitCode !== null) throw new Error(`the bridge exited: ${proc.output()}`);
    return (await fetch(`${base}/readyz`).then((r) => r.status).catch(() => 0)) === 200;
  }, 60_000, 'the bridge to be ready');
  return { ...proc, base, pid: child.pid! };
}

/** A baseline script of bench/baselines in its own process; resolves once it prints "ready". */
export async function startScript(file: string, args: string[]): Promise<Proc & { lines: string[] }> {
  const child = spawn(process.execPath, ['--import', TSX, join(ROOT, 'bench', file), ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  const proc = track(child);
  const lines: string[] = [];
  let rest = '';
  child.stdout!.on('data', (d: Buffer) => {
    rest += d.toString();
    const parts = rest.split('\n');
    rest = parts.pop()!;
    lines.push(...parts);
  });
  await waitFor(async () => {
    if (child.exitCode !== null) throw new Error(`${file} exited: ${proc.output()}`);
    return lines.includes('ready');
  }, 30_000, `${file} to be ready`);
  return { ...proc, lines };
}

export async function waitFor(check: () => Promise<boolean>, timeoutMs: number, what: string, everyMs = 20): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}

/** Resident memory of a process in bytes (Linux /proc). */
export function rss(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = /^VmRSS:\s+(\d+) kB$/m.exec(status);
  return kb ? Number(kb[1]) * 1024 : Number.NaN;
}

/** Debian's redis-server on a free port, with its own data folder; appendonly yes with `appendfsync`. */
export async function startRedisServer(appendfsync: 'always' | 'everysec'): Promise<Proc & { url: string }> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'wiihey-bench-redis-'));
  const config = join(dir, 'redis.conf');
  writeFileSync(
    config,
    [`port ${port}`, 'bind 127.0.0.1', 'daemonize no', `dir ${dir}`, 'save ""', 'appendonly yes', `appendfsync ${appendfsync}`, 'loglevel notice', 'logfile ""'].join('\n'),
  );
  let bin = 'redis-server';
  for (const candidate of ['/usr/bin/redis-server', '/usr/local/bin/redis-server']) {
    try {
      readFileSync(candidate);
      bin = candidate;
      break;
    } catch {
      // next
    }
  }
  const proc = track(spawn(bin, [config], { stdio: ['ignore', 'pipe', 'pipe'] }));
  await waitFor(async () => {
    if (proc.child.exitCode !== null) throw new Error(`redis-server exited (Debian: apt-get install redis-server): ${proc.output()}`);
    return /Ready to accept connections/.test(proc.output());
  }, 10_000, 'redis-server to start');
  const stop = proc.stop;
  return {
    ...proc,
    url: `redis://127.0.0.1:${port}`,
    async stop() {
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

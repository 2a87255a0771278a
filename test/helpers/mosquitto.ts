import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { Test } from 'tap';
import { requireBinary } from './binaries.js';
import { freePort } from './ports.js';

export interface MosquittoOptions {
  tls?: boolean; // default true: a TLS listener, certs from scripts/gen-certs.sh
  users?: Record<string, string>; // username → password; when set, allow_anonymous false
  maxQueuedMessages?: number; // default 100_000: SPEC, tests that hold the bridge offline need more than 1000
  persistence?: boolean; // default false: sessions live only as long as the process
  websockets?: boolean; // default false: a second listener for MQTT over WebSocket (wss:// with tls)
  requireClientCertificate?: boolean; // default false: TLS listeners require a certificate signed by the CA
  extraConfig?: string; // appended to mosquitto.conf, after the listener block; keep stderr logging (readiness reads it)
}

export interface Mosquitto {
  port: number; // the listener port (TLS if tls)
  url: string; // 'mqtts://localhost:PORT' or 'mqtt://127.0.0.1:PORT'
  wsUrl: string | null; // 'wss://localhost:PORT' or 'ws://127.0.0.1:PORT' with websockets, else null
  certs: { dir: string; ca: string; serverCert: string; serverKey: string; clientCert: string; clientKey: string } | null;
  stop(): Promise<void>; // SIGTERM, wait for exit (SIGKILL after 5 s)
  kill(): Promise<void>; // SIGKILL, wait for exit
  start(): Promise<void>; // (re)start on the same port and config; resolves once it accepts connections
  log(): string; // everything mosquitto printed so far, for debugging a failed test
}

const execFileAsync = promisify(execFile);
const genCerts = fileURLToPath(new URL('../../scripts/gen-certs.sh', import.meta.url));
const readyTimeoutMs = 10_000;
const stopTimeoutMs = 5_000;
const addressInUseRetryMs = 5_000; // while our broker was down, something else may hold its port for a moment
// mosquitto 2.0.11 logs at information level, in src/mosquitto.c, right after its listeners listen:
// "1795748021: mosquitto version 2.0.11 running".
const runningLine = /mosquitto version \S+ running$/m;

interface Run {
  proc: ChildProcess;
  output: string; // what this process printed
  ended: boolean;
  running: Promise<void>; // resolves on the running line, rejects if the process ends first
  closed: Promise<void>;
}

// Last resort if the test process exits without its teardowns (a crash, process.exit):
// no broker may outlive the run on a port nobody remembers.
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
 * A real Mosquitto on a free 127.0.0.1 port, with its own config in its own temp dir;
 * never the machine's broker on 1883. Undefined when the binary is missing (the test
 * is then skipped or failed by requireBinary: return at once). Killed at t's teardown.
 */
export async function startMosquitto(t: Test, options: MosquittoOptions = {}): Promise<Mosquitto | undefined> {
  const tls = options.tls ?? true;
  const bin = requireBinary(t, 'mosquitto');
  if (bin === undefined) return undefined;
  const passwdBin = options.users ? requireBinary(t, 'mosquitto_passwd') : null;
  if (passwdBin === undefined) return undefined;
  if (tls && requireBinary(t, 'openssl') === undefined) return undefined;

  // Our own dir rather than t.testdir(): two brokers in one test would share a testdir.
  const dir = await mkdtemp(join(tmpdir(), 'wiihey-mosquitto-'));
  let child: Run | undefined;
  let output = '';
  t.teardown(async () => {
    await kill();
    await rm(dir, { recursive: true, force: true });
  });
  // mkdtemp makes 0700; a mosquitto that dropped privileges to another user could not read it.
  await chmod(dir, 0o755);

  const lines = ['per_listener_settings false'];
  // Started as root, mosquitto 2 switches to user `mosquitto` unless told otherwise;
  // naming the current user keeps it able to read the files here (ignored when not root).
  lines.push(`user ${userInfo().username}`);

  let certs: Mosquitto['certs'] = null;
  if (tls) {
    const certDir = join(dir, 'certs');
    await execFileAsync('bash', [genCerts, certDir]);
    const at = (name: string): string => join(certDir, name);
    certs = {
      dir: certDir,
      ca: at('ca.crt'),
      serverCert: at('server.crt'),
      serverKey: at('server.key'),
      clientCert: at('client.crt'),
      clientKey: at('client.key'),
    };
  }

  if (options.users && passwdBin) {
    const passwordFile = join(dir, 'passwd');
    await writeFile(passwordFile, '', { mode: 0o644 }); // exists even for users: {}, so nobody gets in
    for (const [username, password] of Object.entries(options.users)) {
      await execFileAsync(passwdBin, ['-b', passwordFile, username, password]);
    }
    lines.push(`password_file ${passwordFile}`, 'allow_anonymous false');
  } else {
    lines.push('allow_anonymous true');
  }

  lines.push(`max_queued_messages ${options.maxQueuedMessages ?? 100_000}`);
  if (options.persistence) {
    // Written on SIGTERM (stop) and every autosave_interval; a SIGKILL loses what came since.
    lines.push('persistence true', `persistence_location ${dir}/`);
  } else {
    lines.push('persistence false');
  }
  // One type per line: mosquitto 2.0.11 reads only the first word of a `log_type` line.
  lines.push('log_dest stderr', ...['error', 'warning', 'notice', 'information'].map((type) => `log_type ${type}`));

  const port = await freePort();
  // Loopback only: a test broker is nobody else's business.
  lines.push(`listener ${port} 127.0.0.1`);
  const tlsLines = certs
    ? [`cafile ${certs.ca}`, `certfile ${certs.serverCert}`, `keyfile ${certs.serverKey}`]
    : [];
  if (certs && options.requireClientCertificate) tlsLines.push('require_certificate true');
  lines.push(...tlsLines);
  const wsPort = options.websockets ? await freePort() : null;
  if (wsPort !== null) lines.push(`listener ${wsPort} 127.0.0.1`, 'protocol websockets', ...tlsLines);
  if (options.extraConfig) lines.push(options.extraConfig);
  const configFile = join(dir, 'mosquitto.conf');
  await writeFile(configFile, lines.join('\n') + '\n', { mode: 0o644 });

  // An arrow, not a declaration: TypeScript keeps `bin` narrowed to string only in the former.
  const launch = (): Run => {
    if (!exitHookInstalled) {
      exitHookInstalled = true;
      process.once('exit', () => live.forEach((p) => p.kill('SIGKILL')));
    }
    const proc = spawn(bin, ['-c', configFile], { stdio: ['ignore', 'pipe', 'pipe'] });
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
    // Ready = this process logged "running", which mosquitto does once its listeners listen.
    // Not a TCP probe: while the port is free (after a kill) another process may take it,
    // and a probe would reach that one while our mosquitto dies of EADDRINUSE.
    run.running = new Promise<void>((resolve, reject) => {
      const check = (): void => {
        if (!runningLine.test(run.output)) return;
        proc.stderr.off('data', check);
        resolve();
      };
      proc.stderr.on('data', check);
      void run.closed.then(() => reject(new Error(`mosquitto exited before accepting connections on port ${port}:\n${run.output}`)));
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
        up = await settlesWithin(run.running, readyTimeoutMs - (Date.now() - startedAt));
      } catch (err) {
        if (run.proc.killed) throw new Error(`mosquitto on port ${port} was stopped while starting`);
        const retry = /address already in use/i.test(run.output) && Date.now() - startedAt < addressInUseRetryMs;
        if (!retry) throw err;
        await delay(100); // the port is still taken (a kill a moment ago, or a squatter): try again shortly
        continue;
      }
      if (up) return;
      await kill();
      throw new Error(`mosquitto not running on port ${port} after ${readyTimeoutMs} ms:\n${run.output}`);
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

  const broker: Mosquitto = {
    port,
    url: tls ? `mqtts://localhost:${port}` : `mqtt://127.0.0.1:${port}`,
    wsUrl: wsPort === null ? null : tls ? `wss://localhost:${wsPort}` : `ws://127.0.0.1:${wsPort}`,
    certs,
    start,
    stop,
    kill,
    log: () => output,
  };
  await start();
  return broker;
}

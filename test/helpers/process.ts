import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import type { Test } from 'tap';

const MAIN = new URL('../../src/main.ts', import.meta.url).pathname;

export interface BridgeProcess {
  child: ChildProcess;
  /** http://127.0.0.1:PORT */
  base: string;
  lines: { level: number; msg: string }[];
  exited: Promise<number | null>;
}

/**
 * The bridge as a user runs it, in a process of its own (node --import tsx src/main.ts, as
 * `npm start` does, without npm in between so that signals reach it). Resolves once it listens.
 */
export async function spawnBridge(t: Test, env: Record<string, string>, cwd?: string, main = MAIN): Promise<BridgeProcess> {
  const child = spawn(process.execPath, ['--import', import.meta.resolve('tsx'), main], {
    env: { PATH: process.env.PATH, PORT: '0', LOG_LEVEL: 'info', ...env },
    cwd,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  t.teardown(() => {
    child.kill('SIGKILL');
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  const lines: { level: number; msg: string }[] = [];
  const base = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the bridge did not listen: ${stderr}`)), 30_000);
    void exited.then((code) => reject(new Error(`the bridge exited with ${code}: ${stderr}`)));
    createInterface({ input: child.stdout! }).on('line', (text) => {
      let line: { level: number; msg: string };
      try {
        line = JSON.parse(text) as { level: number; msg: string };
      } catch {
        return;
      }
      lines.push(line);
      const m = /Server listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(line.msg);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    });
  });
  return { child, base, lines, exited };
}

export async function getJson<T>(url: string): Promise<T> {
  const res = await fetch(url);
  return (await res.json()) as T;
}

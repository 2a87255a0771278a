import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import type { Test } from 'tap';

// Debian's mosquitto lives in /usr/sbin, which a non-root PATH often lacks.
const extraDirs = ['/usr/sbin', '/usr/local/sbin'];

// The Debian package to install, for the message; the binary's own name otherwise.
const debianPackage: Record<string, string> = {
  mosquitto_passwd: 'mosquitto',
  mosquitto_pub: 'mosquitto-clients',
  mosquitto_sub: 'mosquitto-clients',
};

/** The absolute path of an executable on PATH or in an sbin directory, or undefined. */
export function findBinary(name: string): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), ...extraDirs];
  for (const dir of dirs) {
    if (dir === '') continue;
    const file = join(dir, name);
    try {
      accessSync(file, constants.X_OK);
      return file;
    } catch {
      // not here: try the next directory
    }
  }
  return undefined;
}

/**
 * The path of `name`, or undefined after marking `t`: skipped by default, failed
 * when REQUIRE_TEST_BINARIES=1 (CI sets it, so a missing broker cannot pass as green).
 * On undefined the caller returns at once, adding no assertion:
 *
 *   const bin = requireBinary(t, 'mosquitto');
 *   if (bin === undefined) return;
 */
export function requireBinary(t: Test, name: string): string | undefined {
  const found = findBinary(name);
  if (found !== undefined) return found;
  const pkg = debianPackage[name] ?? name;
  if (process.env.REQUIRE_TEST_BINARIES === '1') {
    t.fail(`${name} not found on PATH or in ${extraDirs.join(', ')}: apt-get install ${pkg} (REQUIRE_TEST_BINARIES=1)`);
    return undefined;
  }
  const reason = `${name} not installed (apt-get install ${pkg})`;
  if (t.count === 0) {
    // tap: a plan of 0 with a reason ends the test and reports it as `# SKIP reason`.
    t.plan(0, reason);
  } else {
    // Assertions already ran, so plan(0) would fail the count: record a skipped point instead.
    t.pass(`skipped: ${name} not installed`, { skip: reason });
  }
  return undefined;
}

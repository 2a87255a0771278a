import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { isAbsolute, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import YAML from 'yaml';
import { requireBinary } from './helpers/binaries.js';

// docker-compose.yml, checked with Debian's docker-compose 1.29 (`apt-get install
// docker-compose`): `docker-compose config` validates and resolves the file without a
// Docker engine. CI runs `docker-compose config -q` in a fresh clone, where the
// git-ignored deploy/certs/ (scripts/compose-setup.sh) does not exist.

const root = fileURLToPath(new URL('..', import.meta.url));
const certsDir = join(root, 'deploy', 'certs');

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

function compose(bin: string, cwd: string, args: string[]): Run {
  // COMPOSE_FILE, COMPOSE_PROJECT_NAME & co. in the caller's environment would change what is checked.
  const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('COMPOSE_')));
  const r = spawnSync(bin, args, { cwd, env, encoding: 'utf8', timeout: 60_000 });
  if (r.error) throw r.error;
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

interface LongVolume {
  type: string;
  source?: string;
  target: string;
  read_only?: boolean;
}
interface Service {
  build?: { context: string; dockerfile?: string };
  image?: string;
  environment?: Record<string, string | null>;
  env_file?: unknown;
  ports?: (string | { host_ip?: string; published?: number | string; target: number })[];
  volumes?: (string | LongVolume)[];
  command?: string | string[];
}
interface ComposeConfig {
  services: Record<string, Service>;
}

/** The host address a published port is bound to; '' when it is bound to every interface. */
function hostIp(port: string | { host_ip?: string }): string {
  if (typeof port !== 'string') return port.host_ip ?? '';
  // HOST_IP:PUBLISHED:TARGET[/proto], [IPv6]:PUBLISHED:TARGET, PUBLISHED:TARGET or TARGET
  const v6 = /^\[([^\]]+)\]:/.exec(port);
  if (v6) return v6[1] ?? '';
  const parts = port.split(':');
  return parts.length === 3 ? (parts[0] ?? '') : '';
}

/** The host path of a bind mount, or undefined for a named volume, tmpfs, etc. */
function bindSource(volume: string | LongVolume): string | undefined {
  if (typeof volume !== 'string') return volume.type === 'bind' ? volume.source : undefined;
  const source = volume.split(':')[0] ?? '';
  return isAbsolute(source) || source.startsWith('.') ? source : undefined;
}

const inside = (dir: string, file: string): boolean => {
  const rel = relative(dir, file);
  return rel === '' || (!rel.startsWith('..') && !isAbsolute(rel));
};

t.test('docker-compose.yml', async (t) => {
  const bin = requireBinary(t, 'docker-compose');
  if (bin === undefined) return;

  t.test('`docker-compose config -q` in the repository passes without warnings', async (t) => {
    const r = compose(bin, root, ['config', '-q']);
    t.equal(r.status, 0, r.stderr);
    t.equal(r.stderr, '', 'nothing on stderr (no warning)');
  });

  t.test('it passes in a fresh clone: nothing it reads at `config` time is git-ignored', async (t) => {
    // Only the compose file, in an empty directory: no deploy/certs/, no .env, nothing
    // generated. An env_file or an unset ${VAR:?} would fail here.
    const dir = mkdtempSync(join(tmpdir(), 'wiihey-compose-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    copyFileSync(join(root, 'docker-compose.yml'), join(dir, 'docker-compose.yml'));
    const r = compose(bin, dir, ['config', '-q']);
    t.equal(r.status, 0, r.stderr);
    t.equal(r.stderr, '', 'nothing on stderr (no warning)');
  });

  const r = compose(bin, root, ['config']);
  if (r.status !== 0) {
    t.fail(`docker-compose config failed: ${r.stderr}`);
    return;
  }
  const config = YAML.parse(r.stdout) as ComposeConfig;
  const services = config.services;

  const bridges = Object.keys(services).filter((name) => name.startsWith('bridge-'));

  t.test('services and the bridges upstream', async (t) => {
    t.same(Object.keys(services).sort(), ['bridge-1', 'bridge-2', 'mosquitto', 'proxy', 'redis', 'simulator']);
    for (const name of bridges) {
      const env = services[name]?.environment ?? {};
      t.match(env.MQTT_URL, /^mqtts:\/\//, `${name} talks TLS to the broker`);
      t.ok(env.MQTT_CA_FILE, 'and verifies it against the test CA');
      t.not(env.MQTT_TLS_INSECURE, 'true', 'certificate checks stay on');
    }
    const command = [services.simulator?.command ?? []].flat().join(' ');
    t.match(command, /--url mqtts:\/\//, 'the simulator uses TLS too');
    for (const [name, service] of Object.entries(services)) {
      t.equal(service.env_file, undefined, `${name}: no env_file (config fails when the file is missing)`);
    }
  });

  t.test('scale-out (SPEC §8): Redis with AOF, two replicas with distinct ids and one shared group, one port', async (t) => {
    const redis = [services.redis?.command ?? []].flat().join(' ');
    t.match(redis, /--appendonly yes/, 'Redis keeps an append-only file');
    t.match(redis, /--appendfsync always/, 'fsynced before each answer: an acknowledged message survives a crash of Redis');
    t.equal(bridges.length, 2, 'two replicas');
    const envs = bridges.map((name) => services[name]?.environment ?? {});
    t.ok(envs.every((env) => env.REDIS_URL === 'redis://redis:6379'), 'on the one Redis');
    t.equal(new Set(envs.map((env) => env.REPLICA_ID)).size, 2, 'each with its own REPLICA_ID');
    t.ok(envs.every((env) => env.REPLICA_ID !== undefined && env.REPLICA_ID !== null), '(set)');
    t.ok(envs.every((env) => env.MQTT_SHARED_GROUP === envs[0]!.MQTT_SHARED_GROUP && env.MQTT_SHARED_GROUP), 'one shared group');
    t.ok(envs.every((env) => !('DATA_DIR' in env)), 'no DATA_DIR (refused with REDIS_URL)');
    t.ok(envs.every((env) => env.TRUST_PROXY === '1'), 'the client address from the proxy');
    t.same(services.bridge?.ports, undefined);
    for (const name of bridges) t.same(services[name]?.ports ?? [], [], `${name} publishes no port: the proxy does`);
    const cfg = readFileSync(join(root, 'deploy', 'proxy', 'haproxy.cfg'), 'utf8');
    for (const name of bridges) t.match(cfg, new RegExp(`server ${name} ${name}:3000 check`), `the proxy sends to ${name}, checked`);
    t.match(cfg, /option httpchk GET \/readyz/, 'a replica that is not ready gets no new requests');
  });

  t.test('published ports are bound to the loopback interface', async (t) => {
    t.ok((services.proxy?.ports ?? []).length > 0, 'the proxy publishes the port');
    for (const [name, service] of Object.entries(services)) {
      for (const port of service.ports ?? []) {
        t.equal(hostIp(port), '127.0.0.1', `${name}: ${JSON.stringify(port)}`);
      }
    }
  });

  t.test('every file mounted from the repository exists; deploy/certs/ mounts cannot turn into directories', async (t) => {
    let checked = 0;
    for (const [name, service] of Object.entries(services)) {
      if (service.build) {
        const context = resolve(root, service.build.context);
        t.ok(inside(root, context), `${name}: build context inside the repository`);
        t.ok(existsSync(join(context, service.build.dockerfile ?? 'Dockerfile')), `${name}: Dockerfile exists`);
      }
      for (const volume of service.volumes ?? []) {
        const source = bindSource(volume);
        if (source === undefined) continue;
        const file = resolve(root, source);
        const shown = relative(root, file).split(sep).join('/');
        t.ok(inside(root, file), `${name}: ${shown} is inside the repository`);
        if (inside(certsDir, file)) {
          // Generated by scripts/compose-setup.sh. The short syntax would make Docker create a
          // missing source as an empty root-owned directory; the long one fails instead.
          t.equal(typeof volume, 'object', `${name}: ${shown} uses the long volume syntax`);
          continue;
        }
        t.ok(existsSync(file), `${name}: ${shown} exists`);
        checked++;
      }
    }
    t.ok(checked >= 3, 'the broker configuration, its ACL and the proxy configuration are among the mounts checked');
  });
});

import closeWithGrace from 'close-with-grace';
import { buildApp } from './app.js';
import { ConfigError, loadConfig, type Config } from './config.js';
import { StoreOpenError } from './devices/store.js';

// The process: read the configuration, build the app, listen, and close on signals.

let config: Config;
try {
  config = loadConfig();
} catch (err) {
  if (!(err instanceof ConfigError)) throw err;
  // SPEC §6: one line naming the variable, exit code 1 (the logger is not configured yet)
  process.stderr.write(`wiihey-bridge: invalid configuration: ${err.message}\n`);
  process.exit(1);
}

let app: Awaited<ReturnType<typeof buildApp>>;
try {
  app = await buildApp(config);
} catch (err) {
  if (!(err instanceof StoreOpenError)) throw err;
  process.stderr.write(`wiihey-bridge: ${err.message}\n`);
  process.exit(1);
}
for (const warning of config.warnings) app.log.warn(warning);
closeWithGrace({ delay: 10_000 }, async ({ err, signal }) => {
  if (err) app.log.error({ err }, 'closing after an error');
  else app.log.info({ signal }, 'closing');
  await app.close();
});
try {
  await app.listen({ host: config.host, port: config.port });
} catch (err) {
  app.log.fatal({ err }, 'start-up failed');
  await app.close().catch(() => {});
  process.exit(1);
}

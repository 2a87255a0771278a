import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { startBroker, type Proc } from './lib/procs.js';
import { writeMarkdown } from './lib/report.js';
import type { Context, Result, Scenario } from './lib/types.js';
import { fanout } from './scenarios/fanout.js';
import { ingest } from './scenarios/ingest.js';
import { ingestClients } from './scenarios/ingest-clients.js';
import { latency } from './scenarios/latency.js';
import { memory } from './scenarios/memory.js';
import { registry } from './scenarios/registry.js';
import { alarms } from './scenarios/alarms.js';
import { storeBatch } from './scenarios/store-batch.js';
import { rest } from './scenarios/rest.js';
import { restart } from './scenarios/restart.js';
import { stalled } from './scenarios/stalled.js';
import { scaleOut } from './scenarios/scale-out.js';

// npm run bench [-- --quick] [NAME…]: every goal of SPEC §10, measured beside the limits of the
// stack in the same run. Results: bench/results/<time>.json; a full run rewrites BENCHMARKS.md.

const ROOT = new URL('../', import.meta.url).pathname;
const SCENARIOS: Scenario[] = [ingest, ingestClients, rest, latency, fanout, memory, restart, stalled, registry, alarms, storeBatch, scaleOut];

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { quick: { type: 'boolean', default: false }, help: { type: 'boolean', short: 'h', default: false } },
});
if (values.help) {
  process.stdout.write(`usage: npm run bench -- [--quick] [NAME…]\nscenarios:\n${SCENARIOS.map((s) => `  ${s.name.padEnd(10)} ${s.description}`).join('\n')}\n`);
  process.exit(0);
}
const unknown = positionals.filter((name) => !SCENARIOS.some((s) => s.name === name));
if (unknown.length > 0) {
  process.stderr.write(`bench: no scenario ${unknown.join(', ')} (npm run bench -- --help)\n`);
  process.exit(1);
}
const chosen = positionals.length === 0 ? SCENARIOS : SCENARIOS.filter((s) => positionals.includes(s.name));
const quick = values.quick;
const brokers: Proc[] = [];
const ctx: Context = {
  quick,
  runs: quick ? 1 : 3,
  size: (full) => (quick ? Math.max(1, Math.round(full / 10)) : full),
  log: (message) => process.stderr.write(`${message}\n`),
  async broker() {
    const broker = await startBroker();
    brokers.push(broker);
    return broker;
  },
};

const started = new Date();
const results: Result[] = [];
let failed = false;
for (const scenario of chosen) {
  ctx.log(`\n# ${scenario.name}: ${scenario.description}`);
  try {
    const got = await scenario.run(ctx);
    results.push(...got);
    for (const r of got) ctx.log(`  ${line(r)}`);
  } catch (err) {
    failed = true;
    ctx.log(`  FAILED: ${(err as Error).stack ?? String(err)}`);
  } finally {
    await Promise.all(brokers.splice(0).map((b) => b.stop()));
  }
}

const machine = { cores: cpus().length, cpu: cpus()[0]?.model ?? 'unknown', memoryGiB: Math.round(totalmem() / 2 ** 30), node: process.version };
const command = `npm run bench${quick || positionals.length ? ` -- ${[quick ? '--quick' : '', ...positionals].filter(Boolean).join(' ')}` : ''}`;
const report = { started: started.toISOString(), seconds: Math.round((Date.now() - started.getTime()) / 1000), command, machine, quick, results };
const dir = join(ROOT, 'bench/results');
mkdirSync(dir, { recursive: true });
const file = join(dir, `${started.toISOString().replaceAll(':', '-')}.json`);
writeFileSync(file, `${JSON.stringify(report, null, 2)}\n`);
ctx.log(`\nresults: ${file}`);
if (!quick && positionals.length === 0 && !failed) {
  writeMarkdown(join(ROOT, 'BENCHMARKS.md'), report);
  ctx.log('BENCHMARKS.md rewritten');
}
// a lost message or a failed request fails the run, whatever the timing (the CI smoke run relies on it)
const COUNTS = ['lost', 'bridgeNon2xx', 'baselineNon2xx', 'bridgeErrors', 'baselineErrors'];
const broken = results.filter((r) => COUNTS.some((k) => typeof r.details?.[k] === 'number' && (r.details[k] as number) > 0));
for (const r of broken) ctx.log(`LOST OR FAILED: ${r.scenario} ${r.metric}: ${JSON.stringify(Object.fromEntries(COUNTS.map((k) => [k, r.details?.[k]])))}`);
process.exit(failed || broken.length > 0 ? 1 : 0);

function line(r: Result): string {
  const base = r.baseline === null ? '' : `  baseline ${r.baseline} ${r.unit}  ratio ${r.ratio}`;
  const goal = r.met === null ? '' : `  goal ${r.goal}: ${r.met ? 'met' : 'MISSED'}`;
  return `${r.metric}: ${r.bridge} ${r.unit}${base}${goal}`;
}

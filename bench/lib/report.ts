import { readFileSync, writeFileSync } from 'node:fs';
import type { Result } from './types.js';

export interface Report {
  started: string;
  seconds: number;
  command: string;
  machine: { cores: number; cpu: string; memoryGiB: number; node: string };
  results: Result[];
}

const fmt = (n: number | null): string => (n === null || Number.isNaN(n) ? '–' : n.toLocaleString('en-US'));

/** BENCHMARKS.md: the figures of the latest full run, beside their baselines and SPEC §10's goals. */
export function writeMarkdown(file: string, report: Report): void {
  // what people wrote below the table (profiles, what limits a figure) stays
  let notes = '';
  try {
    const old = readFileSync(file, 'utf8');
    const at = old.indexOf('\n## ');
    if (at !== -1) notes = old.slice(at);
  } catch {
    // a first run
  }
  const rows = report.results.map(
    (r) =>
      `| ${r.scenario} | ${r.metric} | ${fmt(r.bridge)} ${r.unit} | ${r.baseline === null ? '–' : `${fmt(r.baseline)} ${r.unit}`} | ${fmt(r.ratio)} | ${r.goal} | ${r.met === null ? '–' : r.met ? 'met' : '**missed**'} |`,
  );
  writeFileSync(
    file,
    `# Benchmarks

Every goal of SPEC section 10, measured beside the limits of the stack in the same run (baselines:
a bare MQTT.js subscriber, a bare Fastify route, a bare \`ws\` forwarder). Figures are medians of
three runs, on loopback, with the suite's own Mosquitto; on a shared 2-core machine absolute figures
move by a quarter from run to run, which is why the goals are ratios.

- command: \`${report.command}\` (${report.seconds} s)
- run: ${report.started}
- machine: ${report.machine.cores} cores (${report.machine.cpu}), ${report.machine.memoryGiB} GiB, Node.js ${report.machine.node}

| scenario | figure | bridge | baseline | ratio | goal (SPEC §10) | |
| --- | --- | --- | --- | --- | --- | --- |
${rows.join('\n')}
${notes}`,
  );
}

import { ingestRun } from '../lib/ingest-run.js';
import { startBridge } from '../lib/procs.js';
import { median, ratio, round } from '../lib/stats.js';
import type { Context, Scenario } from '../lib/types.js';

// SPEC §10, §11: the registry costs ingest at most 5 % (the same ingest with every device
// registered and without a registry, one run), and a 10,000-row CSV import is fast (issue 15:
// in the benchmark, not a timed test). Import, export and re-import go through real HTTP.

const DEVICES = 1000;

/** A CSV of `rows` located entries, for the devices `id(0)`, `id(1)`, ... (the bench's publisher uses d0, d1, ...). */
function registryCsv(rows: number, id: (i: number) => string = (i) => `d${i}`): string {
  let csv = 'deviceId,name,address,latitude,longitude,zone,tags\r\n';
  for (let i = 0; i < rows; i++) {
    // numbers as the export writes them (String(n)), so that the export can equal the file
    const lat = String(Number((52.5 + (i % 100) / 1000).toFixed(6)));
    const lon = String(Number((13.4 + Math.floor(i / 100) / 1000).toFixed(6)));
    csv += `${id(i)},MH-${i} Marktplatz,"Ulmenallee ${i}, 10903 Berlin",${lat},${lon},zone-${i % 7},sewer|route-${i % 3}\r\n`;
  }
  return csv;
}

async function importRun(ctx: Context, rows: number): Promise<{ importMs: number; exportMs: number; roundTrip: boolean }> {
  const broker = await ctx.broker();
  const bridge = await startBridge({ MQTT_URL: broker.url, WIIHEY_APP_ID: 'bench', DATA_DIR: '' });
  try {
    // ids in the order the export lists them (deviceId order), so that the export can equal the file
    const csv = registryCsv(rows, (i) => `mh-${String(i).padStart(6, '0')}`);
    let started = performance.now();
    const res = await fetch(`${bridge.base}/registry/import`, { method: 'POST', headers: { 'content-type': 'text/csv' }, body: csv });
    const importMs = performance.now() - started;
    const body = (await res.json()) as { created: number };
    if (body.created !== rows) throw new Error(`import created ${body.created} of ${rows}`);
    started = performance.now();
    const exported = await (await fetch(`${bridge.base}/registry/export?format=csv`)).text();
    const exportMs = performance.now() - started;
    return { importMs, exportMs, roundTrip: exported === csv };
  } finally {
    await bridge.stop();
    await broker.stop();
  }
}

export const registry: Scenario = {
  name: 'registry',
  description: 'ingest with every device registered beside no registry (SPEC §10: at most 5 % apart), and a 10,000-row CSV import and export',
  async run(ctx) {
    const count = ctx.size(100_000);
    const rates = { with: [] as number[], without: [] as number[] };
    let lostTotal = 0;
    for (let run = 0; run < ctx.runs; run++) {
      // alternated within each run, each on a fresh broker, so that drift of the machine hits both
      for (const registered of run % 2 === 0 ? [false, true] : [true, false]) {
        const broker = await ctx.broker();
        const env = { MQTT_CLIENT_ID: `bench-registry-${registered}-${run}-${process.pid}` };
        const got = await ingestRun(broker.url, env, count, DEVICES, async (base) => {
          if (!registered) return;
          const res = await fetch(`${base}/registry/import`, { method: 'POST', headers: { 'content-type': 'text/csv' }, body: registryCsv(DEVICES) });
          if (!res.ok) throw new Error(`import: HTTP ${res.status}`);
        });
        (registered ? rates.with : rates.without).push(got.rate);
        lostTotal += got.lost;
        await broker.stop();
      }
    }
    const withRegistry = median(rates.with);
    const without = median(rates.without);
    const r = ratio(withRegistry, without);
    const rows = 10_000;
    const files = await importRun(ctx, rows);
    return [
      {
        scenario: 'registry',
        metric: 'ingest QoS 1, memory only, every device registered',
        unit: 'msg/s',
        bridge: withRegistry,
        baseline: without,
        ratio: r,
        goal: '≥ 0.95 of the same ingest without a registry, 0 lost',
        met: r >= 0.95 && lostTotal === 0,
        details: { runsWith: rates.with, runsWithout: rates.without, messages: count, devices: DEVICES, lost: lostTotal },
      },
      {
        scenario: 'registry',
        metric: `POST /registry/import, ${rows} CSV rows`,
        unit: 'ms',
        bridge: round(files.importMs, 0),
        baseline: null,
        ratio: null,
        goal: 'fast (no goal in SPEC §10); export round-trips',
        met: files.roundTrip,
        details: { exportMs: round(files.exportMs, 0), exportEqualsImport: files.roundTrip },
      },
    ];
  },
};

import { KINDS, openReceiver, Sampler, Tally, type ReceiverKind, type ReceiverReport } from './lib/receivers.js';

// The receivers of the live-stream scenarios, in a process of their own (SPEC §10: away from the
// publisher's event loop and from the server's): COUNT clients of each KIND (ws, graphql, sse,
// forwarder; comma-separated) on the server at BASE (http://host:port). Prints "ready" once every
// client is connected; on SIGUSR2 a line "report <json>" with each client's counters, on SIGTERM
// the same with the latency percentiles, then exits.
// node --import tsx bench/receivers.ts BASE KIND[,KIND…] COUNT

const [base, kindList, countText] = process.argv.slice(2) as [string, string, string];
const count = Number(countText);
const kinds = kindList.split(',') as ReceiverKind[];
for (const kind of kinds) if (!KINDS.includes(kind)) throw new Error(`receivers: no kind ${kind} (${KINDS.join(', ')})`);
if (!Number.isInteger(count) || count < 1) throw new Error(`receivers: COUNT must be a positive integer, not ${countText}`);

const all = new Sampler();
const tallies = new Map<ReceiverKind, Tally>(kinds.map((kind) => [kind, new Tally(count, all)]));
const closers: Array<() => void> = [];
let reports = 0;

function report(final: boolean): void {
  const out: ReceiverReport = { n: ++reports, final, kinds: {}, all: final ? all.summary() : null };
  for (const [kind, tally] of tallies) out.kinds[kind] = tally.report(final);
  // a pipe: the write is synchronous on Linux, so it is out before the exit below
  process.stdout.write(`report ${JSON.stringify(out)}\n`);
}

process.on('SIGUSR2', () => report(false));
let finished = false;
process.on('SIGTERM', () => {
  if (finished) return; // the bench's stop() may signal again while the report goes out
  finished = true;
  report(true);
  for (const close of closers) close();
  process.exit(0);
});

// a few connections at a time: thousands of handshakes at once would overflow the listen backlog
const BATCH = 50;
for (const [kind, tally] of tallies) {
  for (let from = 0; from < count; from += BATCH) {
    const batch: Array<Promise<() => void>> = [];
    for (let i = from; i < Math.min(count, from + BATCH); i++) batch.push(openReceiver(kind, base, i, tally));
    closers.push(...(await Promise.all(batch)));
  }
}
process.stdout.write('ready\n');

import t from 'tap';
import { Batcher, type BatchEntry } from '../../src/ingest/batch.js';

// SPEC §7 batches, the state machine alone: what one turn brings is one write, a write at a time,
// a batch never mixes connections, and acknowledgements follow their write, in order.

interface Entry extends BatchEntry {
  n: number;
}

/** A batcher whose turn ends when the test says so, and whose writes the test settles. */
function harness(maxBatch = 1000) {
  const turns: (() => void)[] = [];
  const writes: { batch: Entry[]; settle: (written: boolean) => void }[] = [];
  const acked: number[] = [];
  const sizes: number[] = [];
  let drains = 0;
  const batcher = new Batcher<Entry>({
    write: (batch) => new Promise<boolean>((resolve) => writes.push({ batch, settle: resolve })),
    maxBatch,
    schedule: (run) => turns.push(run),
    onBatch: (size) => sizes.push(size),
    onDrain: () => drains++,
  });
  const entry = (n: number, connection: object): Entry => ({ n, connection, ack: () => acked.push(n) });
  const endTurn = (): void => {
    for (const run of turns.splice(0)) run();
  };
  const settled = async (): Promise<void> => {
    await new Promise((resolve) => setImmediate(resolve));
  };
  return { batcher, writes, acked, sizes, entry, endTurn, settled, drains: () => drains };
}

t.test("one turn's messages are one write, acknowledged in order once it is written", async (t) => {
  const h = harness();
  const conn = {};
  for (let n = 1; n <= 5; n++) h.batcher.add(h.entry(n, conn));
  t.equal(h.writes.length, 0, 'nothing written before the turn ends');
  t.equal(h.batcher.pending, 5);
  h.endTurn();
  t.same(h.writes.map((w) => w.batch.map((e) => e.n)), [[1, 2, 3, 4, 5]]);
  t.same(h.acked, [], 'no acknowledgement before the write');
  h.writes[0]!.settle(true);
  await h.settled();
  t.same(h.acked, [1, 2, 3, 4, 5]);
  t.same(h.sizes, [5]);
  t.equal(h.batcher.pending, 0);
});

t.test('what arrives during a write is the next batch; one write at a time', async (t) => {
  const h = harness();
  const conn = {};
  h.batcher.add(h.entry(1, conn));
  h.endTurn();
  h.batcher.add(h.entry(2, conn));
  h.batcher.add(h.entry(3, conn));
  h.endTurn();
  t.equal(h.writes.length, 1, 'the second batch waits for the first write');
  t.equal(h.batcher.pending, 3);
  h.writes[0]!.settle(true);
  await h.settled();
  t.same(h.writes.map((w) => w.batch.map((e) => e.n)), [[1], [2, 3]]);
  t.same(h.acked, [1]);
  h.writes[1]!.settle(true);
  await h.settled();
  t.same(h.acked, [1, 2, 3]);
});

t.test('a batch never mixes connections, and holds at most maxBatch', async (t) => {
  const h = harness(2);
  const a = {};
  const b = {};
  for (const [n, conn] of [[1, a], [2, a], [3, a], [4, b], [5, a]] as const) h.batcher.add(h.entry(n, conn));
  h.endTurn();
  for (let i = 0; i < 4; i++) {
    h.writes[i]!.settle(true);
    await h.settled();
  }
  t.same(h.writes.map((w) => w.batch.map((e) => e.n)), [[1, 2], [3], [4], [5]]);
  t.same(h.acked, [1, 2, 3, 4, 5]);
});

t.test('a batch given up is not acknowledged, and the next one still is', async (t) => {
  const h = harness();
  const conn = {};
  h.batcher.add(h.entry(1, conn));
  h.endTurn();
  h.batcher.add(h.entry(2, conn));
  h.writes[0]!.settle(false);
  await h.settled();
  h.writes[1]!.settle(true);
  await h.settled();
  t.same(h.acked, [2]);
  t.equal(h.drains(), 2, 'told of each drop in pending');
});

t.test('drain writes what is pending without waiting for the turn, and resolves when all is written', async (t) => {
  const h = harness();
  const conn = {};
  h.batcher.add(h.entry(1, conn));
  let drained = false;
  const draining = h.batcher.drain().then(() => {
    drained = true;
  });
  t.equal(h.writes.length, 1, 'written at once');
  h.batcher.add(h.entry(2, conn)); // arrives during the write
  h.writes[0]!.settle(true);
  await h.settled();
  t.notOk(drained, 'still one to write');
  h.writes[1]!.settle(true);
  await draining;
  t.same(h.acked, [1, 2]);
  h.endTurn(); // the turn scheduled for the first entry finds nothing
  t.equal(h.writes.length, 2);
});

t.test('entries without an acknowledgement (QoS 0) are written all the same', async (t) => {
  const h = harness();
  const conn = {};
  h.batcher.add({ n: 1, connection: conn, ack: null });
  h.batcher.add(h.entry(2, conn));
  h.endTurn();
  h.writes[0]!.settle(true);
  await h.settled();
  t.same(h.writes[0]!.batch.map((e) => e.n), [1, 2]);
  t.same(h.acked, [2]);
});

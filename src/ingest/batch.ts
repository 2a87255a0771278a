// SPEC §7: messages taken off the wire are written in batches, one write at a time, in arrival
// order. A batch holds the messages of one connection only (a PUBACK belongs to the connection its
// PUBLISH came on), at most maxBatch of them; the messages that arrive while a batch is written
// form the next. A batch is acknowledged, message by message in arrival order, only once written.

export interface BatchEntry {
  /** The connection the message came on: a batch never mixes two. */
  readonly connection: object;
  /** Sends the message's acknowledgement, if one is due; called after the batch is written. */
  readonly ack: (() => void) | null;
}

export interface BatcherOptions<T extends BatchEntry> {
  /** Writes a batch; false when it was given up (nothing of it is acknowledged then). Never throws. */
  write: (batch: T[]) => Promise<boolean>;
  maxBatch: number;
  /** Runs the first flush once the event loop's turn has ended (setImmediate), so that a turn's messages form one batch. */
  schedule: (run: () => void) => void;
  /** Told each batch's size as it is written. */
  onBatch?: (size: number) => void;
  /** Told when the number of pending entries dropped (a batch was written or given up). */
  onDrain?: () => void;
}

export class Batcher<T extends BatchEntry> {
  readonly #options: BatcherOptions<T>;
  readonly #queue: T[] = [];
  #writing = 0;
  #scheduled = false;
  #running: Promise<void> | null = null;

  constructor(options: BatcherOptions<T>) {
    this.#options = options;
  }

  /** Entries added and not yet written (or given up). */
  get pending(): number {
    return this.#queue.length + this.#writing;
  }

  add(entry: T): void {
    this.#queue.push(entry);
    if (this.#scheduled || this.#running !== null) return; // the running loop takes it next
    this.#scheduled = true;
    this.#options.schedule(() => {
      this.#scheduled = false;
      this.#start();
    });
  }

  /** Writes what is pending now, without waiting for the scheduled turn; resolves when nothing is pending. */
  async drain(): Promise<void> {
    this.#start();
    while (this.#running !== null) await this.#running;
  }

  #start(): void {
    if (this.#running !== null || this.#queue.length === 0) return;
    this.#running = this.#run().finally(() => {
      this.#running = null;
      // an entry added in the last step of the loop, after its last check
      if (this.#queue.length > 0 && !this.#scheduled) this.#start();
    });
  }

  async #run(): Promise<void> {
    const { write, maxBatch, onBatch, onDrain } = this.#options;
    for (let first = this.#queue[0]; first !== undefined; first = this.#queue[0]) {
      let n = 1;
      while (n < this.#queue.length && n < maxBatch && this.#queue[n]?.connection === first.connection) n++;
      const batch = this.#queue.splice(0, n);
      this.#writing = batch.length;
      onBatch?.(batch.length);
      const written = await write(batch);
      this.#writing = 0;
      if (written) for (const entry of batch) entry.ack?.();
      onDrain?.();
    }
  }
}

import type { FastifyBaseLogger } from 'fastify';
import type { Clock, Timer } from '../clock.js';
import type { EventStream } from './events.js';
import type { SharedEventLog } from './store.js';

// SPEC §8: a replica's events come from the one shared log (a Redis Stream), its own writes
// included: it reads from its last seq, blocking until there is more, and publishes what it reads
// into its event stream, so that every replica's clients get every event once, in seq order. A
// read that fails is tried again from the same seq (no gap); where the log no longer reaches
// back that far, the stream jumps and its live clients are reset (events.ts jump()).

/** Events read per round trip at most. */
const READ_LIMIT = 1000;
/** How long one read waits for a new event before it asks again. */
const WAIT_MS = 5000;
const RETRY_MIN_MS = 100;
const RETRY_MAX_MS = 2000;
/**
 * A read that fails this many times in a row from one seq for a reason other than the store being
 * away (an entry this version cannot read, say one of another version during a rolling upgrade):
 * the entry after it is skipped, and the live clients reset, rather than the replica stalling.
 */
const SKIP_AFTER_FAILURES = 5;

export class EventFeed {
  readonly #log: SharedEventLog;
  readonly #events: EventStream;
  readonly #clock: Clock;
  readonly #logger: FastifyBaseLogger;
  #stopped = false;
  #running: Promise<void> = Promise.resolve();
  #error: string | null = null;
  #wait: { timer: Timer; resolve: () => void } | null = null;
  /** How many times the log no longer reached back (SPEC §8: the clients were reset). */
  gaps = 0;

  constructor(log: SharedEventLog, events: EventStream, clock: Clock, logger: FastifyBaseLogger) {
    this.#log = log;
    this.#events = events;
    this.#clock = clock;
    this.#logger = logger;
  }

  start(): void {
    this.#running = this.#follow();
  }

  /** Stops after the read under way (which the store's close interrupts); resolves once stopped. */
  stop(): Promise<void> {
    this.#stopped = true;
    if (this.#wait !== null) {
      this.#clock.clearTimeout(this.#wait.timer);
      this.#wait.resolve();
    }
    return this.#running;
  }

  /** Why the feed cannot follow the log now, or an empty list. */
  problems(): string[] {
    return this.#error === null ? [] : [`event log: ${this.#error}`];
  }

  async #follow(): Promise<void> {
    let delay = RETRY_MIN_MS;
    let failures = 0;
    while (!this.#stopped) {
      let read;
      try {
        read = await this.#log.readAfter(this.#events.lastSeq, READ_LIMIT, WAIT_MS);
      } catch (err) {
        if (this.#stopped) break;
        if (this.#error === null) this.#logger.warn({ err }, 'cannot read the shared event log; trying again from the same event');
        this.#error = (err as Error).message;
        failures = (err as Error).name === 'StoreUnavailableError' ? 0 : failures + 1;
        if (failures === SKIP_AFTER_FAILURES) {
          failures = 0;
          const next = this.#events.lastSeq + 2;
          this.gaps++;
          this.#logger.error({ err, skipped: next - 1 }, 'an entry of the shared event log cannot be read: skipped, and the live clients reset');
          this.#events.jump(next);
          continue;
        }
        await this.#sleep(delay);
        delay = Math.min(delay * 2, RETRY_MAX_MS);
        continue;
      }
      failures = 0;
      if (this.#stopped) break;
      if (this.#error !== null) this.#logger.info('the shared event log is read again');
      this.#error = null;
      delay = RETRY_MIN_MS;
      if (read.kind === 'gap') {
        this.gaps++;
        this.#logger.warn(
          { after: this.#events.lastSeq, next: read.next },
          'the shared event log no longer holds the events after the last one this replica read: its live clients are reset',
        );
        this.#events.jump(read.next);
        continue;
      }
      for (const event of read.events) this.#events.publish(event);
    }
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      this.#wait = {
        resolve,
        timer: this.#clock.setTimeout(() => {
          this.#wait = null;
          resolve();
        }, ms),
      };
    });
  }
}

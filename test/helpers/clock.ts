import type { Clock, Timer } from '../../src/clock.js';

// STYLE: time is an input, and no test waits for real seconds. A manual clock, given to buildApp
// as deps.clock: its time moves only when the test says, and its timers fire only then. Nothing
// global is faked: the sockets, setImmediate (the event fan-out batches by it), fastify and the
// test's own safety timeouts keep the process's timers.

interface Entry {
  fn: () => void;
  /** When it falls due (ms, the clock's time). */
  due: number;
  /** An interval's period; null for a timeout. */
  every: number | null;
  /** The order timers were set in: it breaks ties between timers due at the same time. */
  order: number;
}

export class ManualClock implements Clock {
  #now: number;
  #order = 0;
  readonly #timers = new Map<Timer, Entry>();
  #firing = false;
  #turnQueued = false;

  /** `startMs`: the time it shows until moved; by default the real time, for signatures a receiver checks. */
  constructor(startMs: number = Date.now()) {
    this.#now = startMs;
  }

  now(): number {
    return this.#now;
  }

  setTimeout(fn: () => void, ms: number): Timer {
    return this.#set(fn, ms, null);
  }

  setInterval(fn: () => void, ms: number): Timer {
    return this.#set(fn, ms, Math.max(1, ms)); // as Node: a period under 1 ms is 1 ms
  }

  clearTimeout(timer: Timer | undefined): void {
    if (timer !== undefined) this.#timers.delete(timer);
  }

  clearInterval(timer: Timer | undefined): void {
    if (timer !== undefined) this.#timers.delete(timer);
  }

  /** Timers set and neither fired (timeouts) nor cleared. */
  get pending(): number {
    return this.#timers.size;
  }

  /**
   * Moves the time `ms` forward, then fires every timer due by then, in the order they fell due.
   * Each sees the new time, as late timers do on a busy event loop; an interval that fell due
   * several times fires once and runs on from now, as Node's do. Advance a period at a time when
   * what a timer starts needs the network between two firings (a ping and its pong).
   */
  advance(ms: number): void {
    if (ms < 0) throw new Error('a clock does not go back');
    this.#now += ms;
    this.#fireDue();
  }

  #set(fn: () => void, ms: number, every: number | null): Timer {
    const timer = {};
    const due = this.#now + Math.max(0, ms);
    this.#timers.set(timer, { fn, due, every, order: this.#order++ });
    // due already (a timeout of 0, or a time that has passed): no time has to pass, the event loop
    // has to turn, as for setTimeout(fn, 0)
    if (due <= this.#now && !this.#firing && !this.#turnQueued) {
      this.#turnQueued = true;
      setImmediate(() => {
        this.#turnQueued = false;
        this.#fireDue();
      });
    }
    return timer;
  }

  #fireDue(): void {
    if (this.#firing) return;
    this.#firing = true;
    try {
      for (;;) {
        let next: [Timer, Entry] | undefined;
        for (const pair of this.#timers) {
          const entry = pair[1];
          if (entry.due > this.#now) continue;
          if (next === undefined || entry.due < next[1].due || (entry.due === next[1].due && entry.order < next[1].order)) next = pair;
        }
        if (next === undefined) return;
        const [timer, entry] = next;
        // a timeout goes; an interval runs on from now, so it fires once however late it is
        if (entry.every === null) this.#timers.delete(timer);
        else entry.due = this.#now + entry.every;
        entry.fn();
      }
    } finally {
      this.#firing = false;
    }
  }
}

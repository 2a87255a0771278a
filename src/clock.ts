// STYLE: time is an input. The service reads the time, and sets every timer that a behaviour
// depends on (the silence check, the live sweep, pings, SSE keep-alive comments, webhook retries
// and timeouts, graphql-ws's connection_init timeout), through one clock: buildApp's deps.clock.
// Tests give a manual clock and move it (test/helpers/clock.ts); no global is faked.

/** A timer of a clock's, to clear with that clock. */
export type Timer = object;

export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  /** Calls `fn` once, `ms` from now. */
  setTimeout(fn: () => void, ms: number): Timer;
  /** Calls `fn` every `ms`. */
  setInterval(fn: () => void, ms: number): Timer;
  clearTimeout(timer: Timer | undefined): void;
  clearInterval(timer: Timer | undefined): void;
}

/**
 * The process's clock. Its timers are unref'd: they never hold the process open (the server, the
 * MQTT client and the sockets do), and every one is cleared when the app closes.
 */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms).unref(),
  setInterval: (fn, ms) => setInterval(fn, ms).unref(),
  clearTimeout: (timer) => clearTimeout(timer as NodeJS.Timeout | undefined),
  clearInterval: (timer) => clearInterval(timer as NodeJS.Timeout | undefined),
};

/** What buildApp takes: a whole clock, or only `now` (a test that moves the time by hand and keeps the system's timers). */
export type ClockDep = Clock | Pick<Clock, 'now'>;

export function clockOf(dep: ClockDep): Clock {
  return 'setTimeout' in dep ? dep : { ...systemClock, now: () => dep.now() };
}

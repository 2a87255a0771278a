import type { FastifyBaseLogger } from 'fastify';

// SPEC §3/§9: what third parties cause (rejected messages, clients' protocol errors) is logged
// without flooding the log: one line per kind per interval, the lines held back summed up in the
// next one as `suppressed`.

export class LogThrottle<K> {
  readonly #last = new Map<K, number>();
  readonly #suppressed = new Map<K, number>();

  constructor(
    private readonly everyMs: number,
    private readonly now: () => number,
  ) {}

  /** Calls `write` with the number of lines held back since the last one, or holds this one back. */
  line(kind: K, write: (suppressed: number) => void): void {
    const now = this.now();
    const last = this.#last.get(kind);
    if (last !== undefined && now - last < this.everyMs) {
      this.#suppressed.set(kind, (this.#suppressed.get(kind) ?? 0) + 1);
      return;
    }
    const suppressed = this.#suppressed.get(kind) ?? 0;
    this.#suppressed.delete(kind);
    this.#last.set(kind, now);
    write(suppressed);
  }
}

/** Logs through a throttle: the kinds are few (reasons, error codes), so its maps stay small. */
export function throttledWarn<K>(log: FastifyBaseLogger, everyMs: number, now: () => number) {
  const throttle = new LogThrottle<K>(everyMs, now);
  return (kind: K, fields: Record<string, unknown>, message: string): void =>
    throttle.line(kind, (suppressed) => log.warn({ ...fields, suppressed }, message));
}

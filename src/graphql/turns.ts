// One GraphQL execution per turn of the event loop. Requests whose sockets are read in the same
// poll phase would otherwise run back to back, and hold the loop for the sum of their executions:
// with each execution bounded (limits.ts, answer.ts), taking turns bounds every turn of the loop,
// so /healthz, MQTT and the other streams wait for one query at most (issue 13).
// An immediate queued from inside an immediate runs on the next turn (Node's event loop guide).

export class Turns {
  readonly #queue: (() => void)[] = [];
  #scheduled = false;

  /** Runs `job` on a turn of its own; its synchronous part and its microtasks have the turn alone. */
  run<T>(job: () => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.#queue.push(() => {
        void job().then(resolve, reject);
      });
      this.#schedule();
    });
  }

  /** Jobs waiting for their turn. */
  get waiting(): number {
    return this.#queue.length;
  }

  #schedule(): void {
    if (this.#scheduled || this.#queue.length === 0) return;
    this.#scheduled = true;
    setImmediate(this.#turn);
  }

  readonly #turn = (): void => {
    this.#scheduled = false;
    this.#queue.shift()?.();
    this.#schedule();
  };
}

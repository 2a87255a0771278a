// SPEC §10 fan-out: an event goes to the clients whose filter names its device, and to those
// without a device filter; nobody else is looked at. Scanning every client for every event cost
// about 15 µs an event with 1,000 /ws and 1,000 GraphQL clients connected (npm run bench --
// ingest-clients, issue 14), whatever the clients were following.

export class DeviceIndex<C> {
  /** Clients that follow every device (their other filters, such as states, are theirs to apply). */
  readonly #any = new Set<C>();
  readonly #byDevice = new Map<string, Set<C>>();
  readonly #keys = new Map<C, Iterable<string> | null>();

  /** Files a client under the device ids it follows (null: every device), replacing where it was. */
  set(client: C, deviceIds: Iterable<string> | null): void {
    this.delete(client);
    this.#keys.set(client, deviceIds);
    if (deviceIds === null) {
      this.#any.add(client);
      return;
    }
    for (const id of deviceIds) {
      let clients = this.#byDevice.get(id);
      if (clients === undefined) this.#byDevice.set(id, (clients = new Set()));
      clients.add(client);
    }
  }

  delete(client: C): void {
    const keys = this.#keys.get(client);
    if (keys === undefined) return;
    this.#keys.delete(client);
    if (keys === null) {
      this.#any.delete(client);
      return;
    }
    for (const id of keys) {
      const clients = this.#byDevice.get(id);
      if (clients === undefined) continue;
      clients.delete(client);
      if (clients.size === 0) this.#byDevice.delete(id);
    }
  }

  /** Calls `visit` for every client an event of this device may concern: the ones filed under it, then the rest. */
  forDevice(deviceId: string, visit: (client: C) => void): void {
    const filed = this.#byDevice.get(deviceId);
    if (filed !== undefined) for (const client of filed) visit(client);
    for (const client of this.#any) visit(client);
  }

  get size(): number {
    return this.#keys.size;
  }
}

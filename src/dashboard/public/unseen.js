// SPEC §11: the devices registered and never heard from, by deviceId. Read from
// GET /registry?seen=false after every snapshot (what changed while the page was away), kept up to
// date by meta frames, and left by a device when it first reports (its device then carries the
// entry as meta). No DOM: the page asks what to show.

/**
 * @import { RegistryEntry } from '../../devices/types.js'
 */

export class UnseenDevices {
  /** @param {(path: string) => Promise<any[]>} all   every item of a REST list (live.js Live.all) */
  constructor(all) {
    this.all = all;
    /** @type {Map<string, RegistryEntry>} */
    this.entries = new Map();
    /** @type {Map<string, RegistryEntry | null> | null} What frames said while a read is under way: newer than it. */
    this.changes = null;
    this.loads = 0;
    /** The first read is over (done or failed). */
    this.loaded = false;
  }

  /**
   * The device reported: never seen no more.
   * @param {string} deviceId
   */
  seen(deviceId) {
    this.entries.delete(deviceId);
    this.changes?.set(deviceId, null);
  }

  /**
   * A meta frame of a device never heard from: its entry, or null when it was deleted.
   * @param {string} deviceId
   * @param {RegistryEntry | null} meta
   */
  set(deviceId, meta) {
    if (meta === null) this.entries.delete(deviceId);
    else this.entries.set(deviceId, meta);
    this.changes?.set(deviceId, meta);
  }

  /**
   * Reads the list afresh. A bridge without the registry, or a refusal, leaves it as it was: the
   * map then shows the reporting devices only. False when a newer read took over.
   * @param {(deviceId: string) => boolean} reported   whether the page holds the device already
   */
  async load(reported) {
    const load = ++this.loads;
    /** @type {Map<string, RegistryEntry | null>} */
    const changes = new Map();
    this.changes = changes;
    try {
      /** @type {RegistryEntry[]} */
      const items = await this.all('/registry?seen=false');
      if (load !== this.loads) return false;
      /** @type {Map<string, RegistryEntry>} */
      const found = new Map();
      for (const entry of items) if (!reported(entry.deviceId)) found.set(entry.deviceId, entry);
      for (const [id, meta] of changes) {
        if (meta === null) found.delete(id);
        else found.set(id, meta);
      }
      this.entries = found;
    } catch {
      if (load !== this.loads) return false;
    } finally {
      if (load === this.loads) this.changes = null;
    }
    this.loaded = true;
    return true;
  }
}

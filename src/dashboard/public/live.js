// The page's link to the bridge: REST with the key as a Bearer header, /ws with it as ?apiKey=
// (SPEC §9), a fresh snapshot on every (re)connect, REST paging when the snapshot is truncated,
// and reconnects with backoff. No DOM: the page learns everything through the callbacks.

import { backoff, liveUrl } from './model.js';

const KEY_ITEM = 'wiihey-bridge.apiKey';
const PAGE_LIMIT = 1000; // the REST maximum (openapi.yaml listDevices)

export class AuthError extends Error {}

/** A refusal other than 401, with the status and the code of the error shape (SPEC §5), when it has one. */
export class ApiError extends Error {
  /**
   * @param {string} message
   * @param {number} status
   * @param {string | null} code   `BRG_ERR_READ_ONLY_KEY`, say
   */
  constructor(message, status, code) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/**
 * @import { Device, RegistryEntry } from '../../devices/types.js'
 * @import { AlarmFrame } from './alarms.js'
 * @typedef {{ type: 'snapshot', devices: Device[], total: number, truncated: boolean }} SnapshotFrame
 * @typedef {{ type: 'update' | 'silent', seq: number, device: Device, previousState?: string | null, changed?: boolean }} DeviceFrame
 * @typedef {{ type: 'meta', seq: number, deviceId: string, device: Device | null, meta: RegistryEntry | null }} MetaFrame
 *   SPEC §11: a registry entry set (meta) or deleted (null); device: null for one never heard from
 * @typedef {SnapshotFrame | DeviceFrame | MetaFrame | AlarmFrame | { type: 'error', message: string }} Frame   the /ws frames (asyncapi.yaml)
 * @typedef {{ items: Device[], nextCursor: string | null }} DevicePage   GET /devices
 * @typedef {{ state: 'connecting', attempt: number }
 *   | { state: 'live' }
 *   | { state: 'loading', total: number }
 *   | { state: 'lost', attempt: number, retryInMs: number }} Status
 */

/**
 * @typedef {object} LiveCallbacks
 * @property {(devices: Device[], info: { total: number, truncated: boolean }) => void} snapshot
 * @property {(devices: Device[], done: boolean) => void} page   devices read from REST after a truncated snapshot
 * @property {(device: Device, frame: DeviceFrame) => void} device     an update or silent frame
 * @property {(frame: MetaFrame) => void} meta     a registry entry changed
 * @property {(frame: AlarmFrame) => void} alarm     SPEC §12: an alarm raised, escalated, acknowledged or cleared
 * @property {(status: Status) => void} status
 * @property {(problem: 'missing'|'refused') => void} needKey
 */

export class Live {
  /** @param {LiveCallbacks} on */
  constructor(on) {
    this.on = on;
    /** @type {WebSocket | null} */
    this.socket = null;
    this.attempt = 0;
    /** Bumped on every connect: work for an older connection stops. */
    this.generation = 0;
    this.timer = 0;
    this.key = sessionStorage.getItem(KEY_ITEM);
  }

  /**
   * REST, with the key when there is one; throws AuthError on 401.
   * @param {string} path
   * @returns {Promise<any>} the JSON body
   */
  async api(path) {
    /** @type {Record<string, string>} */
    const headers = { accept: 'application/json' };
    if (this.key) headers.authorization = `Bearer ${this.key}`;
    const res = await fetch(path, { headers, cache: 'no-store' });
    if (res.status === 401) throw new AuthError('unauthorized');
    if (!res.ok) throw new Error(`${path}: HTTP ${res.status}`);
    return res.json();
  }

  /**
   * A write (SPEC §9: it needs a key of API_KEYS): POST `body` as JSON, or nothing. Throws
   * AuthError on 401, ApiError on any other refusal (403 BRG_ERR_READ_ONLY_KEY for a read-only key).
   * @param {string} path
   * @param {object} [body]
   * @returns {Promise<any>} the JSON answer
   */
  async post(path, body) {
    /** @type {Record<string, string>} */
    const headers = { accept: 'application/json' };
    if (this.key) headers.authorization = `Bearer ${this.key}`;
    // no body, no content type: Fastify refuses an empty body that says it is JSON
    if (body !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(path, { method: 'POST', headers, cache: 'no-store', body: body === undefined ? null : JSON.stringify(body) });
    if (res.status === 401) throw new AuthError('unauthorized');
    if (!res.ok) {
      /** @type {{ code?: unknown, message?: unknown }} */
      let error = {};
      try {
        error = await res.json();
      } catch {
        // not the error shape: the status says enough
      }
      const message = typeof error.message === 'string' ? error.message : `HTTP ${res.status}`;
      throw new ApiError(message, res.status, typeof error.code === 'string' ? error.code : null);
    }
    return res.json();
  }

  /**
   * A key from the form: kept for this tab's session only.
   * @param {string} key
   */
  useKey(key) {
    this.key = key;
    sessionStorage.setItem(KEY_ITEM, key);
    void this.connect();
  }

  #forgetKey() {
    const had = this.key !== null;
    this.key = null;
    sessionStorage.removeItem(KEY_ITEM);
    this.on.needKey(had ? 'refused' : 'missing');
  }

  /** (Re)connects now: REST first (a refused WebSocket cannot tell a bad key from a dead server). */
  async connect() {
    clearTimeout(this.timer);
    const generation = ++this.generation;
    this.#closeSocket();
    this.on.status({ state: 'connecting', attempt: this.attempt });
    try {
      await this.api('/devices?limit=1');
    } catch (err) {
      if (generation !== this.generation) return;
      if (err instanceof AuthError) return this.#forgetKey();
      return this.#retry();
    }
    if (generation !== this.generation) return;
    const socket = new WebSocket(liveUrl(location, this.key));
    this.socket = socket;
    socket.addEventListener('message', (event) => {
      if (socket === this.socket) this.#frame(JSON.parse(event.data), generation);
    });
    socket.addEventListener('close', () => {
      if (socket !== this.socket) return;
      this.socket = null;
      this.#retry();
    });
  }

  /**
   * @param {Frame} frame
   * @param {number} generation
   */
  #frame(frame, generation) {
    switch (frame.type) {
      case 'snapshot':
        this.attempt = 0; // a snapshot is a working connection: the next loss starts the backoff afresh
        this.on.snapshot(frame.devices, { total: frame.total, truncated: frame.truncated });
        if (frame.truncated) void this.#fill(generation, frame.total);
        else this.on.status({ state: 'live' });
        break;
      case 'update':
      case 'silent':
        this.on.device(frame.device, frame);
        break;
      case 'meta':
        this.on.meta(frame);
        break;
      case 'alarm':
        this.on.alarm(frame);
        break;
      default:
        break; // error frames answer client frames; the page sends none
    }
  }

  /**
   * The snapshot held WS_SNAPSHOT_LIMIT devices of more: the rest from GET /devices, page by page.
   * @param {number} generation
   * @param {number} total
   */
  async #fill(generation, total) {
    /** @type {string | null} */
    let cursor = null;
    this.on.status({ state: 'loading', total });
    try {
      do {
        const query = cursor === null ? '' : `&cursor=${encodeURIComponent(cursor)}`;
        /** @type {DevicePage} */
        const page = await this.api(`/devices?limit=${PAGE_LIMIT}${query}`);
        if (generation !== this.generation) return;
        cursor = page.nextCursor;
        this.on.page(page.items, cursor === null);
      } while (cursor !== null);
      this.on.status({ state: 'live' });
    } catch (err) {
      if (generation !== this.generation) return;
      if (err instanceof AuthError) {
        this.#closeSocket();
        return this.#forgetKey();
      }
      this.#closeSocket();
      this.#retry();
    }
  }

  /**
   * Every item of a REST list (`{items, nextCursor}`), page by page; throws as api() does.
   * @param {string} path   with its query, without limit and cursor
   * @returns {Promise<any[]>}
   */
  async all(path) {
    const items = [];
    /** @type {string | null} */
    let cursor = null;
    const sep = path.includes('?') ? '&' : '?';
    do {
      const query = cursor === null ? '' : `&cursor=${encodeURIComponent(cursor)}`;
      /** @type {{ items: any[], nextCursor: string | null }} */
      const page = await this.api(`${path}${sep}limit=${PAGE_LIMIT}${query}`);
      items.push(...page.items);
      cursor = page.nextCursor;
    } while (cursor !== null);
    return items;
  }

  #retry() {
    const retryInMs = backoff(this.attempt, Math.random());
    this.attempt++;
    this.on.status({ state: 'lost', attempt: this.attempt, retryInMs });
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      void this.connect();
    }, retryInMs);
  }

  #closeSocket() {
    const socket = this.socket;
    this.socket = null;
    if (socket !== null && socket.readyState <= WebSocket.OPEN) socket.close(1000, 'reconnecting');
  }
}

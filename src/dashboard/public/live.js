// The page's link to the bridge: REST with the key as a Bearer header, /ws with it as ?apiKey=
// (SPEC §9), a fresh snapshot on every (re)connect, REST paging when the snapshot is truncated,
// and reconnects with backoff. No DOM: the page learns everything through the callbacks.

import { backoff, liveUrl } from './model.js';

const KEY_ITEM = 'wiihey-bridge.apiKey';
const PAGE_LIMIT = 1000; // the REST maximum (openapi.yaml listDevices)

export class AuthError extends Error {}

/**
 * @typedef {object} LiveCallbacks
 * @property {(devices: object[], info: { total: number, truncated: boolean }) => void} snapshot
 * @property {(devices: object[], done: boolean) => void} page   devices read from REST after a truncated snapshot
 * @property {(device: object, frame: object) => void} device     an update or silent frame
 * @property {(status: { state: 'connecting'|'live'|'loading'|'lost', attempt?: number, retryInMs?: number, total?: number }) => void} status
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

  /** REST, with the key when there is one; throws AuthError on 401. */
  async api(path) {
    const headers = { accept: 'application/json' };
    if (this.key) headers.authorization = `Bearer ${this.key}`;
    const res = await fetch(path, { headers, cache: 'no-store' });
    if (res.status === 401) throw new AuthError('unauthorized');
    if (!res.ok) throw new Error(`${path}: HTTP ${res.status}`);
    return res.json();
  }

  /** A key from the form: kept for this tab's session only. */
  useKey(key) {
    this.key = key;
    sessionStorage.setItem(KEY_ITEM, key);
    this.connect();
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
      default:
        break; // error frames answer client frames; the page sends none
    }
  }

  /** The snapshot held WS_SNAPSHOT_LIMIT devices of more: the rest from GET /devices, page by page. */
  async #fill(generation, total) {
    let cursor = null;
    this.on.status({ state: 'loading', total });
    try {
      do {
        const query = cursor === null ? '' : `&cursor=${encodeURIComponent(cursor)}`;
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

  #retry() {
    const retryInMs = backoff(this.attempt, Math.random());
    this.attempt++;
    this.on.status({ state: 'lost', attempt: this.attempt, retryInMs });
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.connect(), retryInMs);
  }

  #closeSocket() {
    const socket = this.socket;
    this.socket = null;
    if (socket !== null && socket.readyState <= WebSocket.OPEN) socket.close(1000, 'reconnecting');
  }
}

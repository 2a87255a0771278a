// The device detail: a modal <dialog> with the device's facts, its history (GET /devices/{id}/history)
// as a timeline of state periods and a battery chart (inline SVG built with DOM calls), and the raw
// attributes of its newest message.

import { byId, exactTime, fill, h, s, shortTime } from './dom.js';
import { batteryPercent, batterySeries, formatDuration, historyPeriods, LOW_BATTERY_PERCENT, position, relativeTime, signal, stateClass } from './model.js';

const W = 600; // SVG user units; the CSS scales the drawings to the dialog's width

/**
 * @import { Device, HistoryEntry } from '../../devices/types.js'
 * @import { Period } from './model.js'
 */

export class Detail {
  /** @param {(path: string) => Promise<any>} api  @param {(err: unknown) => void} onError */
  constructor(api, onError) {
    this.api = api;
    this.onError = onError;
    this.dialog = /** @type {HTMLDialogElement} */ (byId('detail'));
    /** @type {string | null} The device shown while the dialog is open. */
    this.deviceId = null;
    /** @type {Device | null} */
    this.device = null;
    /** @type {HistoryEntry[] | null} null: not read yet */
    this.history = null;
    this.loads = 0;
    byId('detail-close').addEventListener('click', () => this.dialog.close());
    // a click on the backdrop (the dialog element itself, outside its content) closes it too
    this.dialog.addEventListener('click', (event) => {
      if (event.target === this.dialog) this.dialog.close();
    });
    this.dialog.addEventListener('close', () => {
      this.deviceId = null;
    });
  }

  get open() {
    return this.dialog.open;
  }

  /** @param {Device} device */
  show(device) {
    this.deviceId = device.deviceId;
    this.device = device;
    this.history = null;
    fill(byId('detail-title'), 'Device ', h('span', { class: 'mono' }, device.deviceId));
    this.#facts();
    this.#charts();
    this.#attributes();
    if (!this.dialog.open) this.dialog.showModal();
    byId('detail-close').focus();
    void this.#load(device.deviceId);
  }

  /**
   * The device changed while shown: new facts, and its history read again.
   * @param {Device} device
   */
  update(device) {
    if (device.deviceId !== this.deviceId) return;
    this.device = device;
    this.#facts();
    this.#attributes();
    void this.#load(device.deviceId);
  }

  /** @param {string} deviceId */
  async #load(deviceId) {
    const load = ++this.loads;
    byId('detail').setAttribute('aria-busy', 'true');
    try {
      const history = await this.api(`/devices/${encodeURIComponent(deviceId)}/history?limit=1000`);
      if (load !== this.loads || deviceId !== this.deviceId) return;
      this.history = history.items;
      this.#charts();
    } catch (err) {
      if (load !== this.loads) return;
      fill(byId('detail-timeline'), h('p', { class: 'error' }, 'The history could not be read.'));
      this.onError(err);
    } finally {
      if (load === this.loads) byId('detail').removeAttribute('aria-busy');
    }
  }

  #facts() {
    const d = this.device;
    if (d === null) return;
    const now = Date.now();
    const pct = batteryPercent(d.batteryLevel);
    /** @param {string} iso */
    const when = (iso) => {
      const ms = Date.parse(iso);
      return [h('time', { datetime: iso }, exactTime(ms)), h('span', { class: 'muted' }, ` (${relativeTime(ms, now)})`)];
    };
    const meta = d.meta ?? null;
    const at = position(meta);
    const rows = [
      ['Name', meta?.name ?? '—'],
      ['Address', meta?.address ?? '—'],
      ['Zone', meta?.zone ?? '—'],
      ['Tags', meta !== null && meta.tags.length > 0 ? meta.tags.join(', ') : '—'],
      ['Location', at === null ? 'not located' : `${at[0]}, ${at[1]}`],
      ['State', h('span', { class: `badge ${stateClass(d.state)}` }, d.state), d.silent ? [' ', h('span', { class: 'badge silent-tag' }, 'Silent')] : null],
      ['Previous state', d.previousState ?? '—'],
      ['Battery', pct === null ? 'unknown' : `${pct} %${pct < LOW_BATTERY_PERCENT ? ' (low)' : ''}`],
      ['Signal', signal(d.csq).label],
      ['Last seen', when(d.lastSeenAt)],
      ['Last changed', when(d.lastChangedAt)],
      ['Received', when(d.receivedAt)],
      ['Messages', String(d.messages)],
      ['IMEI', d.imei ?? '—'],
      ['ICCID', d.iccid ?? '—'],
      ['App', d.appId ?? '—'],
    ];
    fill(byId('detail-facts'), rows.map(([name, ...value]) => h('div', null, h('dt', null, name), h('dd', null, ...value))));
  }

  #charts() {
    const timeline = byId('detail-timeline');
    const battery = byId('detail-battery');
    if (this.history === null) {
      fill(timeline, h('p', { class: 'muted' }, 'Loading the history…'));
      fill(battery);
      return;
    }
    const items = this.history;
    if (items.length === 0) {
      fill(timeline, h('p', { class: 'muted' }, 'No history kept for this device.'));
      fill(battery);
      return;
    }
    if (this.device === null) return;
    const until = Math.max(Math.floor(Date.now() / 1000), this.device.timestamp);
    fill(timeline, ...periodsView(historyPeriods(items, until)));
    fill(battery, batteryChart(batterySeries(items)));
  }

  #attributes() {
    if (this.device === null) return;
    const entries = Object.entries(this.device.attributes ?? {});
    fill(
      byId('detail-attributes'),
      entries.length === 0
        ? h('p', { class: 'muted' }, 'The newest message had no attributes.')
        : h(
          'table',
          { class: 'attributes' },
          h('caption', { class: 'sr-only' }, 'Attributes of the newest message'),
          h('thead', null, h('tr', null, h('th', { scope: 'col' }, 'Key'), h('th', { scope: 'col' }, 'Value'))),
          h('tbody', null, entries.map(([key, value]) => h('tr', null, h('th', { scope: 'row', class: 'mono' }, key), h('td', { class: 'mono' }, JSON.stringify(value))))),
        ),
    );
  }
}

/**
 * The periods as a bar of coloured spans (SVG) and, for every reader, as a list.
 * @param {Period[]} periods
 */
function periodsView(periods) {
  const oldest = periods[0];
  const newest = periods[periods.length - 1];
  if (oldest === undefined || newest === undefined) return [];
  const from = oldest.from;
  const to = newest.to;
  const span = Math.max(1, to - from);
  const x = (/** @type {number} */ t) => ((t - from) / span) * W;
  const svg = s('svg', { class: 'timeline', viewBox: `0 0 ${W} 46`, role: 'img', 'aria-label': `State timeline from ${shortTime(from * 1000)} to ${shortTime(to * 1000)}, ${periods.length} periods, listed below` });
  for (const p of periods) {
    const width = Math.max(1.5, x(p.to) - x(p.from));
    svg.append(
      s('rect', { x: x(p.from).toFixed(2), y: 4, width: width.toFixed(2), height: 22, class: `period ${stateClass(p.state)}` },
        s('title', null, `${p.state}: ${shortTime(p.from * 1000)} to ${shortTime(p.to * 1000)} (${formatDuration(p.to - p.from)})`)),
    );
  }
  svg.append(
    s('text', { x: 0, y: 42, class: 'axis' }, shortTime(from * 1000)),
    s('text', { x: W, y: 42, class: 'axis', 'text-anchor': 'end' }, shortTime(to * 1000)),
  );
  const list = h(
    'ol',
    { class: 'periods', reversed: true },
    periods
      .slice()
      .reverse()
      .map((p) =>
        h(
          'li',
          null,
          h('span', { class: `badge ${stateClass(p.state)}` }, p.state),
          ` ${shortTime(p.from * 1000)} → ${shortTime(p.to * 1000)}, ${formatDuration(p.to - p.from)}`,
          h('span', { class: 'muted' }, ` · ${p.messages} message${p.messages === 1 ? '' : 's'}`),
        ),
      ),
  );
  return [svg, list];
}

/** @param {{ t: number, pct: number }[]} series */
function batteryChart(series) {
  const oldest = series[0];
  const newest = series[series.length - 1];
  if (oldest === undefined || newest === undefined) return h('p', { class: 'muted' }, 'No battery readings in the history.');
  const H = 140;
  const top = 8;
  const bottom = 24;
  const left = 42;
  const from = oldest.t;
  const to = newest.t;
  const span = Math.max(1, to - from);
  const x = (/** @type {number} */ t) => (series.length === 1 ? (left + W) / 2 : left + ((t - from) / span) * (W - left - 6));
  const y = (/** @type {number} */ pct) => top + (1 - pct / 100) * (H - top - bottom);
  const svg = s('svg', { class: 'battery-chart', viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': `Battery from ${oldest.pct} % to ${newest.pct} % between ${shortTime(from * 1000)} and ${shortTime(to * 1000)}` });
  for (const pct of [0, 50, 100]) {
    svg.append(s('line', { x1: left, x2: W, y1: y(pct), y2: y(pct), class: 'grid' }), s('text', { x: left - 6, y: y(pct) + 4, class: 'axis', 'text-anchor': 'end' }, `${pct}%`));
  }
  svg.append(s('line', { x1: left, x2: W, y1: y(LOW_BATTERY_PERCENT), y2: y(LOW_BATTERY_PERCENT), class: 'threshold' }, s('title', null, `low battery: under ${LOW_BATTERY_PERCENT} %`)));
  svg.append(s('polyline', { points: series.map((p) => `${x(p.t).toFixed(1)},${y(p.pct).toFixed(1)}`).join(' '), class: 'line' }));
  for (const p of series) svg.append(s('circle', { cx: x(p.t).toFixed(1), cy: y(p.pct).toFixed(1), r: 3, class: 'point' }, s('title', null, `${p.pct} % at ${shortTime(p.t * 1000)}`)));
  svg.append(
    s('text', { x: left, y: H - 6, class: 'axis' }, shortTime(from * 1000)),
    s('text', { x: W, y: H - 6, class: 'axis', 'text-anchor': 'end' }, shortTime(to * 1000)),
  );
  return svg;
}

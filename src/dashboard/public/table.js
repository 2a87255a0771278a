// The fleet table's rows: one <tr> per device of the current page, kept by deviceId and updated in
// place, so that a row flashes when its device changes and keeps focus across live updates. A
// device with an active alarm (SPEC §12) carries a mark beside its state: a shape by severity, its
// colour, and its words for screen readers and on hover.

import { h, s, exactTime } from './dom.js';
import { alarmClass, alarmWords, severityClass } from './alarms.js';
import { batteryPercent, isLowBattery, LOW_BATTERY_PERCENT, relativeTime, signal, stateClass } from './model.js';

const FLASH_MS = 1600;

/**
 * @import { Device } from '../../devices/types.js'
 * @import { DeviceAlarm } from './alarms.js'
 * @typedef {{ id: HTMLElement, name: HTMLElement, state: HTMLElement, battery: HTMLElement, signal: HTMLElement, seen: HTMLElement, changed: HTMLElement }} Cells
 * @typedef {HTMLTableRowElement & { cells_: Cells, device_?: Device, alarm_?: string, flashedAt_?: number, flashTimer_?: number }} DeviceRow
 *   a row keeps its cells, the device it shows and its flash on itself
 */

export class FleetRows {
  /** @param {HTMLTableSectionElement} tbody */
  constructor(tbody) {
    this.tbody = tbody;
    /** @type {Map<string, DeviceRow>} */
    this.rows = new Map();
    /** @type {Map<string, number>} deviceId → the time (ms) its flash was asked for */
    this.flashes = new Map();
    /** @type {string | null} The row that Tab reaches (roving tabindex: one stop for the whole table). */
    this.focusId = null;
  }

  /**
   * Marks a device changed: its row flashes now, or when it next appears within the flash time.
   * @param {string} deviceId
   * @param {number} now
   */
  flash(deviceId, now) {
    this.flashes.set(deviceId, now);
  }

  /**
   * Shows `devices` (one page) in order.
   * @param {Device[]} devices
   * @param {number} now
   * @param {(deviceId: string) => DeviceAlarm | undefined} [alarmOf]   a device's active alarms
   */
  render(devices, now, alarmOf = () => undefined) {
    for (const [id, at] of this.flashes) if (now - at > FLASH_MS) this.flashes.delete(id);
    /** @type {Set<string>} */
    const keep = new Set();
    let i = 0;
    for (const device of devices) {
      keep.add(device.deviceId);
      let tr = this.rows.get(device.deviceId);
      if (tr === undefined) {
        tr = this.#row(device.deviceId);
        this.rows.set(device.deviceId, tr);
      }
      this.#update(tr, device, now, alarmOf(device.deviceId));
      if (this.tbody.children[i] !== tr) this.tbody.insertBefore(tr, this.tbody.children[i] ?? null);
      i++;
    }
    for (const [id, tr] of this.rows) {
      if (keep.has(id)) continue;
      tr.remove();
      this.rows.delete(id);
    }
    if (this.focusId === null || !keep.has(this.focusId)) this.focusId = devices[0]?.deviceId ?? null;
    for (const [id, tr] of this.rows) tr.tabIndex = id === this.focusId ? 0 : -1;
  }

  /** The rows in order, for keyboard moves. */
  ordered() {
    return /** @type {HTMLTableRowElement[]} */ ([...this.tbody.children]);
  }

  /**
   * @param {string} deviceId
   * @returns {DeviceRow}
   */
  #row(deviceId) {
    const tr = /** @type {DeviceRow} */ (h('tr', { class: 'device' }));
    tr.dataset.id = deviceId;
    tr.cells_ = {
      id: h('th', { scope: 'row' }, deviceId),
      name: h('td', { class: 'col-name' }),
      state: h('td', { class: 'col-state' }),
      battery: h('td', { class: 'col-battery' }),
      signal: h('td', { class: 'col-signal' }),
      seen: h('td', { class: 'col-seen' }),
      changed: h('td', { class: 'col-changed' }),
    };
    tr.append(...Object.values(tr.cells_));
    return tr;
  }

  /**
   * @param {DeviceRow} tr
   * @param {Device} d
   * @param {number} now
   * @param {DeviceAlarm | undefined} alarm
   */
  #update(tr, d, now, alarm) {
    const c = tr.cells_;
    const alarmKey = alarm === undefined ? '' : alarmWords(alarm);
    if (tr.device_ !== d || tr.alarm_ !== alarmKey) {
      tr.device_ = d;
      tr.alarm_ = alarmKey;
      tr.classList.toggle('silent', d.silent);
      tr.classList.toggle('low', isLowBattery(d));
      for (const cls of [...tr.classList]) if (cls === 'has-alarm' || cls.startsWith('alarm-')) tr.classList.remove(cls);
      if (alarm !== undefined) tr.classList.add(...alarmClass(alarm).split(' '));
      c.name.replaceChildren(...nameCell(d));
      c.state.replaceChildren(h('span', { class: `badge ${stateClass(d.state)}` }, d.state), ...(alarm === undefined ? [] : [' ', alarmMark(alarm, alarmKey)]));
      c.battery.replaceChildren(...battery(d.batteryLevel));
      c.signal.replaceChildren(bars(d.csq));
    }
    // relative times move with the clock: redrawn on every render
    const seen = timeCell(d.lastSeenAt, now);
    c.seen.replaceChildren(seen, ...(d.silent ? [' ', h('span', { class: 'badge silent-tag' }, 'Silent')] : []));
    c.changed.replaceChildren(timeCell(d.lastChangedAt, now));

    const asked = this.flashes.get(d.deviceId);
    if (asked !== undefined && tr.flashedAt_ !== asked) {
      tr.flashedAt_ = asked;
      tr.classList.remove('flash');
      void tr.offsetWidth; // restart the animation of a row that flashes again
      tr.classList.add('flash');
      clearTimeout(tr.flashTimer_);
      tr.flashTimer_ = setTimeout(() => tr.classList.remove('flash'), FLASH_MS);
    }
  }
}

/**
 * A device's alarm mark: an image by its role, named by its words (the shape and the colour come
 * from its severity's class).
 * @param {DeviceAlarm} alarm
 * @param {string} words   alarmWords(alarm)
 */
function alarmMark(alarm, words) {
  const count = alarm.alarms.length > 1 ? h('span', { class: 'alarm-n', 'aria-hidden': 'true' }, alarm.alarms.length) : null;
  return h('span', { class: `alarm-mark ${severityClass(alarm.severity)}`, role: 'img', 'aria-label': words, title: words }, count);
}

/**
 * The registry's name and zone (SPEC §11), as text.
 * @param {Device} d
 */
function nameCell(d) {
  const meta = d.meta ?? null;
  if (meta === null || (meta.name === null && meta.zone === null)) return [h('span', { class: 'muted' }, '—')];
  return [meta.name === null ? null : h('span', { class: 'name' }, meta.name), meta.zone === null ? null : h('span', { class: 'zone' }, meta.zone)].filter((n) => n !== null);
}

/** @param {number | null} level */
function battery(level) {
  const pct = batteryPercent(level);
  if (pct === null) return [h('span', { class: 'muted' }, 'unknown')];
  const cell = [h('meter', { min: 0, max: 100, low: LOW_BATTERY_PERCENT, high: 50, optimum: 100, value: pct, 'aria-hidden': 'true' }), h('span', { class: 'pct' }, `${pct} %`)];
  if (pct < LOW_BATTERY_PERCENT) cell.push(h('span', { class: 'badge low-tag' }, 'Low'));
  return cell;
}

/**
 * CSQ as four bars (an inline SVG), its reading in words for screen readers and on hover.
 * @param {number | null} csq
 */
export function bars(csq) {
  const sig = signal(csq);
  const svg = s('svg', { class: 'bars', viewBox: '0 0 20 16', width: 20, height: 16, 'aria-hidden': 'true' });
  for (let i = 0; i < 4; i++) {
    const height = 4 + i * 4;
    const on = sig.bars !== null && i < sig.bars;
    svg.append(s('rect', { x: i * 5, y: 16 - height, width: 4, height, rx: 1, class: on ? 'on' : 'off' }));
  }
  const text = sig.bars === null ? 'Signal unknown' : `Signal ${sig.bars} of 4 bars, ${sig.label}`;
  return h('span', { class: sig.bars === null ? 'signal unknown' : 'signal', title: text }, svg, h('span', { class: 'sr-only' }, text), sig.bars === null ? h('span', { class: 'muted', 'aria-hidden': 'true' }, ' ?') : null);
}

/**
 * @param {string} iso
 * @param {number} now
 */
function timeCell(iso, now) {
  const ms = Date.parse(iso);
  return h('time', { datetime: iso, title: exactTime(ms) }, relativeTime(ms, now));
}

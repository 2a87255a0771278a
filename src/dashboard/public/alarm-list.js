// SPEC §12: the alarm panel (index.html #alarms) and the count in the header (#alarm-count). One
// <li> per alarm, kept by alarmId and updated in place, so that a note being typed and the focus
// survive the frames that stream in; Acknowledge (with an optional note) and Clear POST to the
// bridge, and a refusal (a read-only key: 403 BRG_ERR_READ_ONLY_KEY) is said in words.
//
// Every string of an alarm (ids, names, addresses, notes) is text: built with dom.js's h().

import { byId, exactTime, fill, h } from './dom.js';
import { severityClass, severityLabel, typeLabel } from './alarms.js';
import { AuthError, ApiError } from './live.js';
import { relativeTime } from './model.js';

/**
 * @import { Alarm } from '../../devices/alarms.js'
 * @import { RegistryEntry } from '../../devices/types.js'
 * @import { Alarms } from './alarms.js'
 * @typedef {object} AlarmPanelOptions
 * @property {(path: string, body?: object) => Promise<any>} post   live.js Live.post
 * @property {() => void} changed   the alarms changed by the page's own hand: the table and the map follow
 * @property {(deviceId: string) => RegistryEntry | null} metaOf   the device's registry entry now, for an alarm raised before it had one
 * @property {(deviceId: string) => boolean} openDevice   opens the device's detail; false when the page does not know it
 * @property {() => void} refused   a 401: the key is no longer valid
 * @property {() => void} askKey   the operator wants to enter another key (one that may write)
 * @typedef {HTMLLIElement & { alarm_?: Alarm, parts_: { head: HTMLElement, when: HTMLElement, ack: HTMLElement, form: HTMLFormElement, note: HTMLInputElement, acknowledge: HTMLButtonElement, clear: HTMLButtonElement } }} AlarmRow
 */

/** Rows per group at first; "Show more" adds as many (thousands of alarms never mean thousands of rows). */
const PAGE = 100;
/** SPEC §12: a note of up to 1,000 characters. */
const NOTE_MAX = 1000;

export class AlarmPanel {
  /**
   * @param {Alarms} alarms
   * @param {AlarmPanelOptions} options
   */
  constructor(alarms, options) {
    this.alarms = alarms;
    this.options = options;
    /** @type {Map<string, AlarmRow>} */
    this.rows = new Map();
    /** @type {Set<string>} alarms with a POST under way */
    this.pending = new Set();
    this.limit = PAGE;
    this.lists = { active: byId('alarms-active'), cleared: byId('alarms-cleared') };
    this.message = byId('alarm-message');
    const panel = byId('alarms');
    panel.addEventListener('submit', (event) => {
      if (!(event.target instanceof HTMLFormElement) || !event.target.classList.contains('ack-form')) return;
      event.preventDefault();
      const row = this.#rowOf(event.target);
      if (row?.alarm_) void this.#acknowledge(row, row.parts_.note.value.trim());
    });
    panel.addEventListener('click', (event) => {
      if (!(event.target instanceof Element)) return;
      const button = event.target.closest('button');
      if (button === null) return;
      const row = this.#rowOf(button);
      if (button.classList.contains('clear') && row?.alarm_) void this.#clear(row);
      else if (button.classList.contains('alarm-device-id') && row?.alarm_) this.options.openDevice(row.alarm_.deviceId);
      else if (button.id === 'alarms-more') {
        this.limit += PAGE;
        this.render(Date.now());
      } else if (button.id === 'alarm-use-key') this.options.askKey();
    });
  }

  /**
   * Shows the alarms as they are now: the rows, the groups' counts and the header's count.
   * @param {number} now
   */
  render(now) {
    const { active, cleared } = this.alarms.ordered();
    /** @type {Set<string>} */
    const keep = new Set();
    this.#group(this.lists.active, active.slice(0, this.limit), keep, now);
    this.#group(this.lists.cleared, cleared.slice(0, this.limit), keep, now);
    for (const [id, row] of this.rows) {
      if (keep.has(id)) continue;
      row.remove();
      this.rows.delete(id);
    }
    const loaded = this.alarms.loaded;
    fill(byId('alarms-active-count'), `(${active.length.toLocaleString()})`);
    fill(byId('alarms-cleared-count'), `(${cleared.length.toLocaleString()})`);
    byId('alarms-active-empty').hidden = !loaded || active.length > 0;
    byId('alarms-cleared-empty').hidden = !loaded || cleared.length > 0;
    const hidden = Math.max(0, active.length - this.limit) + Math.max(0, cleared.length - this.limit);
    const more = byId('alarms-more');
    more.hidden = hidden === 0;
    if (hidden > 0) fill(more, `Show more (${hidden.toLocaleString()} not shown)`);
    const error = this.alarms.error;
    const problem = byId('alarms-problem');
    problem.hidden = error === null;
    if (error !== null) fill(problem, error instanceof AuthError ? 'The alarms could not be read: the API key was refused.' : 'The alarms could not be read. They are read again at the next reconnect.');
    this.#count();
  }

  /** The header: active alarms and unacknowledged ones, the worst severity as a data attribute (its colour and shape). */
  #count() {
    const link = byId('alarm-count');
    if (!this.alarms.loaded) return;
    if (this.alarms.error !== null && this.alarms.byId.size === 0) {
      // nothing read: no count at all rather than a reassuring zero
      delete link.dataset.active;
      delete link.dataset.unacknowledged;
      link.dataset.worst = 'none';
      fill(link, 'Alarms unavailable');
      return;
    }
    const c = this.alarms.counts();
    link.dataset.active = String(c.active);
    link.dataset.unacknowledged = String(c.unacknowledged);
    link.dataset.worst = c.worst ?? 'none';
    fill(
      link,
      h('span', { class: 'alarm-count-icon', 'aria-hidden': 'true' }),
      h('span', { class: 'n', id: 'alarm-count-active' }, c.active.toLocaleString()),
      c.active === 1 ? ' active alarm' : ' active alarms',
      h('span', { class: 'sep', 'aria-hidden': 'true' }, ' · '),
      h('span', { class: 'sr-only' }, ', '),
      h('span', { class: 'n', id: 'alarm-count-unacknowledged' }, c.unacknowledged.toLocaleString()),
      ' unacknowledged',
    );
  }

  /**
   * @param {HTMLElement} list
   * @param {Alarm[]} alarms
   * @param {Set<string>} keep
   * @param {number} now
   */
  #group(list, alarms, keep, now) {
    let i = 0;
    for (const alarm of alarms) {
      keep.add(alarm.alarmId);
      let row = this.rows.get(alarm.alarmId);
      if (row === undefined) {
        row = this.#row(alarm);
        this.rows.set(alarm.alarmId, row);
      }
      this.#update(row, alarm, now);
      // moved only when out of place: a row that keeps its place keeps its focus and its typed note
      if (list.children[i] !== row) list.insertBefore(row, list.children[i] ?? null);
      i++;
    }
    // rows beyond i: gone from the list (render() removes them) or moved to the other group (which takes them)
  }

  /**
   * @param {Alarm} alarm
   * @returns {AlarmRow}
   */
  #row(alarm) {
    const label = `${typeLabel(alarm.type)} at ${alarm.deviceId}`;
    const note = h('input', { class: 'ack-note', name: 'note', type: 'text', maxlength: NOTE_MAX, autocomplete: 'off', placeholder: 'Note (optional)', 'aria-label': `Note for ${label}` });
    const acknowledge = h('button', { type: 'submit', class: 'ack' }, 'Acknowledge');
    const form = h('form', { class: 'ack-form' }, note, acknowledge);
    const clear = h('button', { type: 'button', class: 'clear', 'aria-label': `Clear ${label}` }, 'Clear');
    const parts = { head: h('div', { class: 'alarm-head' }), when: h('div', { class: 'alarm-when' }), ack: h('div', { class: 'alarm-ack' }), form, note, acknowledge, clear };
    const li = /** @type {AlarmRow} */ (h('li', { class: 'alarm' }, h('div', { class: 'alarm-info' }, parts.head, parts.when), h('div', { class: 'alarm-actions' }, parts.ack, form, clear)));
    li.dataset.alarmId = alarm.alarmId;
    li.dataset.deviceId = alarm.deviceId;
    li.parts_ = parts;
    acknowledge.setAttribute('aria-label', `Acknowledge ${label}`);
    return li;
  }

  /**
   * @param {AlarmRow} li
   * @param {Alarm} alarm
   * @param {number} now
   */
  #update(li, alarm, now) {
    const p = li.parts_;
    const cleared = alarm.status === 'cleared';
    if (li.alarm_ !== alarm) {
      li.alarm_ = alarm;
      li.className = `alarm ${severityClass(alarm.severity)} ${cleared ? 'status-cleared' : 'status-active'}${alarm.acknowledged ? ' acked' : ''}`;
      li.dataset.status = alarm.status;
      li.dataset.severity = alarm.severity;
      li.dataset.acknowledged = String(alarm.acknowledged);
      const meta = alarm.meta ?? this.options.metaOf(alarm.deviceId);
      fill(
        p.head,
        h('span', { class: `sev ${severityClass(alarm.severity)}` }, severityLabel(alarm.severity)),
        ' ',
        h('span', { class: 'alarm-type' }, typeLabel(alarm.type)),
        cleared ? h('span', { class: 'alarm-status' }, 'Cleared') : null,
        ' ',
        h(
          'span',
          { class: 'alarm-device' },
          h('button', { type: 'button', class: 'alarm-device-id link mono', title: 'Open the device' }, alarm.deviceId),
          meta?.name ? h('span', { class: 'alarm-name' }, meta.name) : null,
          meta?.address ? h('span', { class: 'alarm-address' }, meta.address) : null,
        ),
      );
      p.form.hidden = alarm.acknowledged;
      p.clear.hidden = cleared;
    }
    // relative times move with the clock: redrawn on every render
    fill(
      p.when,
      'Raised ',
      timeOf(alarm.raisedAt, now),
      cleared && alarm.clearedAt !== null ? [' · cleared ', timeOf(alarm.clearedAt, now)] : null,
    );
    if (alarm.acknowledged) {
      fill(
        p.ack,
        h('span', { class: 'ack-state acked' }, 'Acknowledged'),
        alarm.acknowledgedAt === null ? null : [' ', timeOf(alarm.acknowledgedAt, now)],
        alarm.note ? [' ', h('q', { class: 'alarm-note' }, alarm.note)] : null,
      );
    } else fill(p.ack, h('span', { class: 'ack-state' }, 'Not acknowledged'));
    const busy = this.pending.has(alarm.alarmId);
    li.toggleAttribute('aria-busy', busy);
    p.acknowledge.disabled = busy;
    p.clear.disabled = busy;
    p.note.disabled = busy;
  }

  /**
   * @param {Element} el
   * @returns {AlarmRow | null}
   */
  #rowOf(el) {
    return /** @type {AlarmRow | null} */ (el.closest('li.alarm'));
  }

  /**
   * POST /alarms/{alarmId}/ack, with the note when there is one.
   * @param {AlarmRow} row
   * @param {string} note
   */
  async #acknowledge(row, note) {
    const alarm = /** @type {Alarm} */ (row.alarm_);
    const done = await this.#act(row, `/alarms/${encodeURIComponent(alarm.alarmId)}/ack`, note === '' ? {} : { note: note.slice(0, NOTE_MAX) }, 'acknowledge');
    if (done) row.parts_.note.value = '';
  }

  /**
   * POST /alarms/{alarmId}/clear.
   * @param {AlarmRow} row
   */
  async #clear(row) {
    const alarm = /** @type {Alarm} */ (row.alarm_);
    await this.#act(row, `/alarms/${encodeURIComponent(alarm.alarmId)}/clear`, undefined, 'clear');
  }

  /**
   * @param {AlarmRow} row
   * @param {string} path
   * @param {object | undefined} body
   * @param {'acknowledge' | 'clear'} verb
   * @returns {Promise<boolean>} whether the bridge took it
   */
  async #act(row, path, body, verb) {
    const alarm = /** @type {Alarm} */ (row.alarm_);
    const id = alarm.alarmId;
    if (this.pending.has(id)) return false;
    // the button is disabled while the POST is under way, which takes its focus: given back after
    const focused = row.contains(document.activeElement) ? /** @type {HTMLElement} */ (document.activeElement) : null;
    this.pending.add(id);
    this.render(Date.now());
    let done = false;
    try {
      /** @type {Alarm} */
      const answer = await this.options.post(path, body);
      done = true;
      this.#say(null);
      this.alarms.set(answer);
    } catch (err) {
      this.#refusal(err, verb, alarm);
    } finally {
      this.pending.delete(id);
    }
    this.render(Date.now());
    this.options.changed();
    if (focused !== null) this.#refocus(row, focused);
    return done;
  }

  /**
   * The focus back where it was, or, when that went (the form once acknowledged, Clear once
   * cleared), elsewhere in the row, or, when the alarm left the list, on the list's heading.
   * @param {AlarmRow} row
   * @param {HTMLElement} focused   what had it before the action
   */
  #refocus(row, focused) {
    if (document.activeElement !== document.body && document.activeElement !== null && !row.contains(document.activeElement)) return; // moved on meanwhile
    /** @param {HTMLElement} el */
    const usable = (el) => el.isConnected && !(/** @type {HTMLButtonElement} */ (el).disabled) && el.closest('[hidden]') === null;
    if (usable(focused)) {
      focused.focus();
      return;
    }
    if (row.isConnected) {
      const next = [row.parts_.note, row.parts_.clear].find(usable);
      if (next !== undefined) next.focus();
      else {
        row.tabIndex = -1;
        row.focus();
      }
    } else byId('alarms-title').focus();
  }

  /**
   * A refusal in words: a read-only key, a vanished alarm, a lost bridge. Never an exception.
   * @param {unknown} err
   * @param {'acknowledge' | 'clear'} verb
   * @param {Alarm} alarm
   */
  #refusal(err, verb, alarm) {
    const what = `${typeLabel(alarm.type).toLowerCase()} alarm of ${alarm.deviceId}`;
    if (err instanceof AuthError) {
      this.#say(`Could not ${verb} the ${what}: the API key was refused (401).`);
      this.options.refused();
      return;
    }
    if (err instanceof ApiError && err.code === 'BRG_ERR_READ_ONLY_KEY') {
      this.#say(`Could not ${verb} the ${what}: this API key may only read (403, BRG_ERR_READ_ONLY_KEY). Acknowledging and clearing need a key from API_KEYS.`, true);
      return;
    }
    if (err instanceof ApiError && err.status === 404) {
      this.#say(`Could not ${verb} the ${what}: the bridge no longer knows this alarm (404).`);
      return;
    }
    if (err instanceof ApiError) {
      this.#say(`Could not ${verb} the ${what}: the bridge refused (${err.status}${err.code ? `, ${err.code}` : ''}): ${err.message}`);
      return;
    }
    this.#say(`Could not ${verb} the ${what}: the bridge did not answer. Try again.`);
  }

  /**
   * @param {string | null} text   null: no message
   * @param {boolean} [offerKey]   a button to enter another key
   */
  #say(text, offerKey = false) {
    this.message.hidden = text === null;
    if (text === null) {
      this.message.replaceChildren();
      return;
    }
    fill(this.message, h('span', { class: 'alarm-message-text' }, text), offerKey ? [' ', h('button', { type: 'button', id: 'alarm-use-key' }, 'Use another key')] : null);
  }
}

/**
 * @param {string} iso
 * @param {number} now
 */
function timeOf(iso, now) {
  const ms = Date.parse(iso);
  return h('time', { datetime: iso, title: exactTime(ms) }, relativeTime(ms, now));
}

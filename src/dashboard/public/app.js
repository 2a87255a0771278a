// The dashboard page: holds every device by id, renders the filtered and sorted view one page at a
// time (10,000 devices never mean 10,000 rows in the DOM) and on the map (the same filtered set,
// located devices only), and wires the controls, the live link, the detail dialog and the alarms
// (SPEC §12: the list, the marks in the table and on the map, the count in the header) together.

import { byId, fill, h } from './dom.js';
import { AlarmPanel } from './alarm-list.js';
import { Alarms } from './alarms.js';
import { Detail } from './detail.js';
import { AuthError, Live } from './live.js';
import { FleetMap } from './map.js';
import { compareIds, filterDevices, isNewer, matchesUnseen, pageOf, position, sortDevices, summarize } from './model.js';
import { FleetRows } from './table.js';
import { UnseenDevices } from './unseen.js';

/**
 * @import { Device } from '../../devices/types.js'
 * @import { Filter, SortDir, SortKey, Summary } from './model.js'
 * @import { MetaFrame, Status } from './live.js'
 * @import { MapSettings } from './map.js'
 */

/** At most one re-sort of the fleet per this many ms while updates stream in. */
const RENDER_EVERY_MS = 250;

/** @type {Map<string, Device>} */
let devices = new Map();
let hadSnapshot = false;
/** @type {{ filter: Filter, sort: { key: SortKey, dir: SortDir }, page: number, pageSize: number }} */
const ui = {
  filter: { state: '', silent: '', lowBattery: false, search: '' },
  sort: { key: 'deviceId', dir: 'asc' },
  page: 1,
  pageSize: 100,
};
/** @type {Device[] | null} The filtered, sorted devices; null when it must be computed again. */
let view = null;
let knownStates = '';

const rows = new FleetRows(/** @type {HTMLTableSectionElement} */ (byId('rows')));
/** @type {HTMLElement | null} The marker that opened the detail: the focus goes back to it. */
let openedFrom = null;
const map = new FleetMap(byId('map'), (deviceId, marker) => {
  const device = devices.get(deviceId);
  if (device === undefined) return;
  openedFrom = marker;
  detail.show(device);
});
const live = new Live({
  snapshot(list) {
    const before = devices;
    devices = new Map();
    for (const d of list) {
      devices.set(d.deviceId, d);
      unseen.seen(d.deviceId);
    }
    // after a reconnect, what changed while the page was away flashes like a live update
    if (hadSnapshot) {
      const now = Date.now();
      for (const d of list) {
        const old = before.get(d.deviceId);
        if (old !== undefined && (old.timestamp !== d.timestamp || old.silent !== d.silent || old.state !== d.state)) rows.flash(d.deviceId, now);
      }
    }
    hadSnapshot = true;
    changed(true);
    void unseen.load((id) => devices.has(id)).then((current) => {
      if (current) changed(true);
    });
    // what happened to the alarms while the page was away: read afresh, the frames merged over it
    void loadAlarms();
  },
  page(list) {
    for (const d of list) {
      unseen.seen(d.deviceId);
      if (isNewer(d, devices.get(d.deviceId))) devices.set(d.deviceId, d);
    }
    changed(false);
  },
  device(device) {
    unseen.seen(device.deviceId);
    if (!isNewer(device, devices.get(device.deviceId))) return;
    devices.set(device.deviceId, device);
    rows.flash(device.deviceId, Date.now());
    detail.update(device);
    changed(false);
  },
  meta: applyMeta,
  alarm(frame) {
    if (alarms.apply(frame)) changed(false);
  },
  status: showStatus,
  needKey: askForKey,
});
/** SPEC §11: devices registered and never heard from, markers of their own. */
const unseen = new UnseenDevices((path) => live.all(path));
/** SPEC §12: the active alarms and the cleared ones not acknowledged yet. */
const alarms = new Alarms((path) => live.all(path));
const alarmPanel = new AlarmPanel(alarms, {
  post: (path, body) => live.post(path, body),
  changed: () => changed(false),
  metaOf: (deviceId) => devices.get(deviceId)?.meta ?? unseen.entries.get(deviceId) ?? null,
  openDevice(deviceId) {
    const device = devices.get(deviceId);
    if (device === undefined) return false;
    openedFrom = /** @type {HTMLElement | null} */ (document.activeElement);
    detail.show(device);
    return true;
  },
  refused: () => askForKey('refused'),
  askKey: () => askForKey('write'),
});
const detail = new Detail(
  (path) => live.api(path),
  (err) => {
    if (err instanceof AuthError) {
      detail.dialog.close();
      askForKey('refused');
    }
  },
);

// ---- the alarms (SPEC §12) ------------------------------------------------------------------------

/** GET /alarms, after every snapshot; a refused key asks for another. */
async function loadAlarms() {
  const current = await alarms.load();
  if (!current) return;
  if (alarms.error instanceof AuthError) askForKey('refused');
  changed(false);
}

// ---- the registry (SPEC §11) ---------------------------------------------------------------------

/**
 * A registry entry was set or deleted: the device takes its new meta (the marker moves, comes or
 * goes), or, for a device never heard from, the never-seen list follows.
 * @param {MetaFrame} frame
 */
function applyMeta(frame) {
  const { deviceId, device, meta } = frame;
  const known = devices.get(deviceId);
  if (device !== null || known !== undefined) {
    unseen.seen(deviceId);
    // the frame's device, or (when ours is newer) ours with the new entry
    const next = device !== null && isNewer(device, known) ? device : { ...(/** @type {Device} */ (known)), meta };
    devices.set(deviceId, next);
    detail.update(next);
  } else {
    unseen.set(deviceId, meta);
  }
  changed(false);
}

/** GET /dashboard/map.json: the tiles (MAP_TILE_URL), or none. */
async function loadMapSettings() {
  /** @type {MapSettings} */
  let settings = { tileUrl: null, tileAttribution: null };
  try {
    const res = await fetch('/dashboard/map.json', { cache: 'no-store' });
    if (res.ok) settings = await res.json();
  } catch {
    // no settings: no tiles, which needs nothing from anywhere
  }
  map.configure(settings);
}

// ---- rendering -------------------------------------------------------------------------------

let renderTimer = 0;
let renderFrame = 0;
let lastRender = 0;
/** The alarms' version the panel shows; -1: draw it again (the clock moved). */
let alarmsShown = -1;

/**
 * Something changed: render soon (now for the user's own actions, throttled for the stream).
 * @param {boolean} urgent
 */
function changed(urgent) {
  view = null;
  if (urgent) {
    clearTimeout(renderTimer);
    renderTimer = 0;
    cancelAnimationFrame(renderFrame);
    renderFrame = requestAnimationFrame(render);
    return;
  }
  if (renderTimer !== 0 || renderFrame !== 0) return;
  renderTimer = setTimeout(() => {
    renderTimer = 0;
    renderFrame = requestAnimationFrame(render);
  }, Math.max(0, lastRender + RENDER_EVERY_MS - performance.now()));
}

function render() {
  renderFrame = 0;
  lastRender = performance.now();
  const all = [...devices.values()];
  if (view === null) {
    view = sortDevices(filterDevices(all, ui.filter), ui.sort.key, ui.sort.dir);
    renderSummary(summarize(all));
    renderMap(view);
  }
  const now = Date.now();
  if (alarmsShown !== alarms.version) {
    alarmsShown = alarms.version;
    alarmPanel.render(now);
  }
  const page = pageOf(view, ui.page, ui.pageSize);
  ui.page = page.page;
  rows.render(page.rows, now, (id) => alarms.ofDevice(id));
  const empty = byId('empty');
  empty.hidden = page.total > 0 || !hadSnapshot;
  if (!empty.hidden) fill(empty, devices.size === 0 ? 'No device has reported yet.' : 'No device matches these filters.');
  fill(byId('range'), page.total === 0 ? 'No devices' : `${page.from.toLocaleString()}–${page.to.toLocaleString()} of ${page.total.toLocaleString()}`);
  fill(byId('page-of'), `Page ${page.page} of ${page.pages}`);
  setDisabled('first', page.page <= 1);
  setDisabled('prev', page.page <= 1);
  setDisabled('next', page.page >= page.pages);
  setDisabled('last', page.page >= page.pages);
  const shown = page.total === devices.size ? `${devices.size.toLocaleString()} devices` : `${page.total.toLocaleString()} of ${devices.size.toLocaleString()} devices`;
  fill(byId('caption-count'), shown);
}

/**
 * The map shows the table's filtered set, located devices only, and the never-seen registered ones
 * while no state, silence or battery filter is on.
 * @param {Device[]} shown
 */
function renderMap(shown) {
  const unseenShown = [...unseen.entries.values()].filter((e) => matchesUnseen(e, ui.filter));
  map.render(shown, unseenShown, (id) => alarms.ofDevice(id));
  if (unseen.loaded) map.settle(); // the first load is over: the map's first fit can be its last
  let located = unseenShown.reduce((n, e) => n + (position(e) === null ? 0 : 1), 0);
  for (const d of shown) if (position(d.meta) !== null) located++;
  fill(byId('map-count'), `· ${located.toLocaleString()} located`);
}

/**
 * @param {string} id
 * @param {boolean} disabled
 */
function setDisabled(id, disabled) {
  /** @type {HTMLButtonElement} */ (byId(id)).disabled = disabled;
}

/** The count buttons on top, updated in place while their set stays the same (a focused one keeps its focus). */
let chipKeys = '';
/** @param {Summary} summary */
function renderSummary(summary) {
  const f = ui.filter;
  /** @type {{ label: string, count: number, pressed: boolean, cls: string, state?: string }[]} */
  const chips = [
    { label: 'devices', count: summary.total, pressed: !f.state && !f.silent && !f.lowBattery && !f.search, cls: '' },
    ...summary.states.map(([state, count]) => ({ label: state, count, pressed: f.state === state, cls: 'chip-state', state })),
    { label: 'silent', count: summary.silent, pressed: f.silent === 'yes', cls: 'chip-silent' },
    { label: 'low battery', count: summary.lowBattery, pressed: f.lowBattery, cls: 'chip-low' },
  ];
  const list = byId('counts');
  const keys = JSON.stringify(chips.map((c) => [c.label, c.state ?? null]));
  if (keys === chipKeys) {
    chips.forEach((c, i) => {
      const button = list.children[i]?.firstElementChild; // <li><button><span class="count">
      const count = button?.firstElementChild;
      if (!button || !count) return;
      button.setAttribute('aria-pressed', String(c.pressed));
      count.textContent = c.count.toLocaleString();
    });
  } else {
    chipKeys = keys;
    const active = list.contains(document.activeElement) ? /** @type {HTMLElement} */ (document.activeElement) : null;
    const focused = active === null ? -1 : chips.findIndex((c) => c.label === active.dataset.count && c.state === active.dataset.state);
    fill(
      list,
      chips.map((c) => {
        const button = h('button', { type: 'button', class: `chip ${c.cls}`, 'aria-pressed': String(c.pressed), 'data-count': c.label }, h('span', { class: 'count' }, c.count.toLocaleString()), ' ', h('span', { class: 'label' }, c.label));
        if (c.state !== undefined) button.dataset.state = c.state;
        return h('li', null, button);
      }),
    );
    const button = list.children[focused]?.firstElementChild;
    if (button instanceof HTMLElement) button.focus();
  }
  // the state filter offers every state there is, and keeps the chosen one while it has no device
  const states = summary.states.map(([s]) => s).sort(compareIds);
  if (f.state && !states.includes(f.state)) states.push(f.state);
  const key = JSON.stringify(states);
  if (key !== knownStates) {
    knownStates = key;
    const select = /** @type {HTMLSelectElement} */ (byId('f-state'));
    fill(select, h('option', { value: '' }, 'All states'), states.map((s) => h('option', { value: s }, s)));
    select.value = f.state;
  }
}

// ---- status, banner, key form --------------------------------------------------------------------

/** @type {Status} */
let lastStatus = { state: 'connecting', attempt: 0 };

/** @param {Status} status */
function showStatus(status) {
  lastStatus = status;
  const banner = byId('banner');
  const text = byId('status');
  document.body.dataset.live = status.state;
  switch (status.state) {
    case 'live':
      banner.hidden = true;
      fill(text, 'Live');
      break;
    case 'loading':
      banner.hidden = true;
      fill(text, `Loading all ${status.total.toLocaleString()} devices…`);
      break;
    case 'connecting':
      fill(text, 'Connecting…');
      break;
    case 'lost':
      fill(byId('banner-text'), `Live connection lost. Reconnecting in ${Math.ceil(status.retryInMs / 1000)} s (attempt ${status.attempt})…`);
      banner.hidden = false;
      fill(text, 'Offline');
      break;
  }
}

/**
 * The key form: no key yet, a refused one, or (write) the operator wants one that may write
 * (SPEC §9: a key of API_READ_KEYS reads everything and writes nothing), keeping the current one
 * if they change their mind.
 * @param {'missing' | 'refused' | 'write'} problem
 */
function askForKey(problem) {
  const auth = byId('auth');
  const error = byId('key-error');
  const texts = {
    missing: '',
    refused: 'That API key was refused (401 Unauthorized). Check it and enter it again.',
    write: 'Acknowledging and clearing alarms need a key from API_KEYS: the current key may only read. Enter a key that may write.',
  };
  fill(error, texts[problem]);
  error.hidden = problem === 'missing';
  byId('key-cancel').hidden = problem !== 'write';
  auth.hidden = false;
  byId('main').hidden = true;
  byId('banner').hidden = true;
  fill(byId('status'), 'API key needed');
  const input = /** @type {HTMLInputElement} */ (byId('key'));
  input.value = '';
  input.focus();
}

byId('key-cancel').addEventListener('click', () => {
  byId('auth').hidden = true;
  byId('main').hidden = false;
  showStatus(lastStatus);
  byId('alarms-title').focus();
});

byId('key-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const key = /** @type {HTMLInputElement} */ (byId('key')).value.trim();
  if (!key) return;
  byId('auth').hidden = true;
  byId('main').hidden = false;
  live.useKey(key);
});

byId('retry').addEventListener('click', () => {
  void live.connect();
});

// ---- controls ------------------------------------------------------------------------------------

const controls = {
  state: /** @type {HTMLSelectElement} */ (byId('f-state')),
  silent: /** @type {HTMLSelectElement} */ (byId('f-silent')),
  lowBattery: /** @type {HTMLInputElement} */ (byId('f-low')),
  search: /** @type {HTMLInputElement} */ (byId('f-search')),
  pageSize: /** @type {HTMLSelectElement} */ (byId('f-size')),
};

/** @param {Partial<Filter>} patch */
function setFilter(patch) {
  Object.assign(ui.filter, patch);
  controls.state.value = ui.filter.state;
  controls.silent.value = ui.filter.silent;
  controls.lowBattery.checked = ui.filter.lowBattery;
  controls.search.value = ui.filter.search;
  ui.page = 1;
  changed(true);
}

byId('filters').addEventListener('submit', (event) => event.preventDefault());
controls.state.addEventListener('change', () => setFilter({ state: controls.state.value }));
// its options (index.html) are the values of Filter's silent
controls.silent.addEventListener('change', () => setFilter({ silent: /** @type {Filter['silent']} */ (controls.silent.value) }));
controls.lowBattery.addEventListener('change', () => setFilter({ lowBattery: controls.lowBattery.checked }));
controls.search.addEventListener('input', () => setFilter({ search: controls.search.value }));
controls.pageSize.addEventListener('change', () => {
  ui.pageSize = Number(controls.pageSize.value);
  ui.page = 1;
  changed(true);
});
byId('reset').addEventListener('click', () => setFilter({ state: '', silent: '', lowBattery: false, search: '' }));

byId('counts').addEventListener('click', (event) => {
  if (!(event.target instanceof Element)) return;
  const button = event.target.closest('button');
  if (!button) return;
  const label = button.dataset.count;
  if (button.dataset.state !== undefined) setFilter({ state: ui.filter.state === button.dataset.state ? '' : button.dataset.state });
  else if (label === 'silent') setFilter({ silent: ui.filter.silent === 'yes' ? '' : 'yes' });
  else if (label === 'low battery') setFilter({ lowBattery: !ui.filter.lowBattery });
  else setFilter({ state: '', silent: '', lowBattery: false, search: '' });
});

for (const th of /** @type {NodeListOf<HTMLTableCellElement>} */ (document.querySelectorAll('th[data-sort]'))) {
  th.querySelector('button')?.addEventListener('click', () => {
    const key = /** @type {SortKey} */ (th.dataset.sort); // index.html: the keys of SORT_KEYS
    ui.sort = { key, dir: ui.sort.key === key && ui.sort.dir === 'asc' ? 'desc' : 'asc' };
    for (const other of document.querySelectorAll('th[data-sort]')) {
      if (other === th) other.setAttribute('aria-sort', ui.sort.dir === 'asc' ? 'ascending' : 'descending');
      else other.removeAttribute('aria-sort');
    }
    ui.page = 1;
    changed(true);
  });
}

const pages = { first: () => 1, prev: () => ui.page - 1, next: () => ui.page + 1, last: () => Infinity };
for (const [id, to] of Object.entries(pages)) {
  byId(id).addEventListener('click', () => {
    ui.page = to();
    changed(true);
  });
}

// rows: a click or Enter opens the detail; arrows move between rows (one Tab stop for the table)
const tbody = byId('rows');
/** @param {HTMLElement} tr */
function openRow(tr) {
  const id = tr.dataset.id;
  const device = id === undefined ? undefined : devices.get(id);
  if (device === undefined) return;
  openedFrom = null;
  rows.focusId = device.deviceId;
  detail.show(device);
}
/** The device row an event happened in, if any. */
const rowOf = (/** @type {Event} */ event) =>
  event.target instanceof Element ? /** @type {HTMLTableRowElement | null} */ (event.target.closest('tr.device')) : null;
tbody.addEventListener('click', (event) => {
  const tr = rowOf(event);
  if (tr) openRow(tr);
});
tbody.addEventListener('keydown', (event) => {
  const tr = rowOf(event);
  if (!tr) return;
  const list = rows.ordered();
  const i = list.indexOf(tr);
  /** @type {Record<string, number>} */
  const moves = { ArrowDown: i + 1, ArrowUp: i - 1, Home: 0, End: list.length - 1, PageDown: i + 10, PageUp: i - 10 };
  const move = event.key in moves ? moves[event.key] : undefined;
  if (event.key === 'Enter' || event.key === ' ') {
    event.preventDefault();
    openRow(tr);
  } else if (move !== undefined) {
    event.preventDefault();
    const target = list[Math.min(list.length - 1, Math.max(0, move))];
    if (target === undefined) return;
    tr.tabIndex = -1;
    target.tabIndex = 0;
    rows.focusId = target.dataset.id ?? null;
    target.focus();
  }
});
tbody.addEventListener('focusin', (event) => {
  const tr = rowOf(event);
  if (tr) rows.focusId = tr.dataset.id ?? null;
});
detail.dialog.addEventListener('close', () => {
  const marker = openedFrom;
  openedFrom = null;
  if (marker !== null && marker.isConnected) {
    marker.focus();
    return;
  }
  const tr = rows.focusId === null ? undefined : rows.rows.get(rows.focusId);
  if (tr) tr.focus();
});

// relative times ("5 min ago") move with the clock
setInterval(() => {
  alarmsShown = -1;
  if (renderFrame === 0) renderFrame = requestAnimationFrame(render);
}, 15_000);

// the browser knows when its network comes back: no need to wait for the backoff then
window.addEventListener('online', () => {
  if (live.socket === null) void live.connect();
});

void loadMapSettings();
void live.connect();

// The map beside the table (SPEC §11): one marker per located device, by state and silence in
// colour and shape, and a ring by the severity of its active alarms (SPEC §12: the classes has-alarm
// alarm-<severity>, beside the state's mk-*), kept in step with the page's devices on every render.
// Leaflet and Leaflet.markercluster are the service's own copies (index.html loads them as the
// global L before the modules run); base tiles come only from MAP_TILE_URL (GET /dashboard/map.json),
// and without one the markers stand on a plain background: no request leaves this origin.
//
// Device text (ids, names, addresses, states) never meets an HTML parser: the icons are CSS
// classes (model.js markerClass), tooltips and popups are DOM nodes built with dom.js's h().

/* global L */
import { byId, h } from './dom.js';
import { alarmClass, alarmWords } from './alarms.js';
import { markerClass, position } from './model.js';

/**
 * @import { Device, RegistryEntry } from '../../devices/types.js'
 * @import { DeviceAlarm } from './alarms.js'
 * @typedef {{ tileUrl: string | null, tileAttribution: string | null }} MapSettings   GET /dashboard/map.json
 * @typedef {object} Pin   a marker and what it shows
 * @property {string} id
 * @property {L.Marker} marker
 * @property {string} cls   markerClass() and alarmClass()
 * @property {DeviceAlarm | undefined} alarm   the device's active alarms
 * @property {number} lat
 * @property {number} lng
 * @property {Device | null} device   null: registered, never heard from
 * @property {RegistryEntry} entry
 */

/** SPEC §11: markers cluster beyond about 500 (one DOM element each costs more from there on). */
export const CLUSTER_ABOVE = 500;

const ICON_PX = 22; // dashboard.css .mk
/** The closest zoom: a street of manholes (the tiles' own limit when MAP_TILE_URL is set). */
const MAX_ZOOM = 19;
/** @type {L.PopupOptions} clear of the zoom buttons when a popup pans the map to show itself */
const POPUP = { autoPanPaddingTopLeft: [56, 16], autoPanPaddingBottomRight: [16, 16] };
/** Where the view starts before any marker: the whole world, so that the scale reads sensibly. */
const WORLD = /** @type {L.LatLngTuple} */ ([20, 0]);

export class FleetMap {
  /**
   * @param {HTMLElement} el   the map's container
   * @param {(deviceId: string, marker: HTMLElement | null) => void} open   a click (or Enter) on a reporting device's marker
   */
  constructor(el, open) {
    this.el = el;
    this.open = open;
    // maxZoom of its own: without a tile layer the map has none, and markercluster needs one;
    // half zoom steps let the first fit fill the map better (tiles scale by √2 at most)
    this.map = L.map(el, { minZoom: 1, maxZoom: MAX_ZOOM, zoomSnap: 0.5, worldCopyJump: true }).setView(WORLD, 2);
    L.control.scale().addTo(this.map);
    // the hint (index.html) rides on the map as a control, above the scale (popups open upwards)
    overlay(byId('map-hint'), 'bottomleft').addTo(this.map);
    /** @type {Map<string, Pin>} by deviceId */
    this.pins = new Map();
    /** @type {Map<string, L.DivIcon>} one icon per class list, shared by every marker that looks alike */
    this.icons = new Map();
    /** @type {L.LayerGroup | import('leaflet').MarkerClusterGroup} */
    this.layer = L.layerGroup().addTo(this.map);
    this.clustered = false;
    /** Fit the view to the markers while the page loads, until the user moves the map. */
    this.autoFit = true;
    /** The first load is over: the next fit is the last. */
    this.settled = false;
    this.fitKey = '';
    for (const type of ['pointerdown', 'wheel', 'keydown']) {
      el.addEventListener(type, () => {
        this.autoFit = false;
      }, { passive: true });
    }
    // a map laid out while hidden (the key form) or resized with the window measures itself again
    new ResizeObserver(() => {
      this.map.invalidateSize();
      this.#fit();
    }).observe(el);
  }

  /**
   * Base tiles when MAP_TILE_URL is set; else a plain background and the hint (index.html #map-hint).
   * @param {MapSettings} settings
   */
  configure(settings) {
    const tiles = typeof settings.tileUrl === 'string' && settings.tileUrl !== '';
    if (tiles) {
      // the attribution is the operator's own setting (HTML, as tile providers write it), not device data
      L.tileLayer(/** @type {string} */ (settings.tileUrl), { attribution: settings.tileAttribution ?? '', maxZoom: MAX_ZOOM }).addTo(this.map);
    }
    this.el.classList.toggle('no-tiles', !tiles);
    byId('map-hint').hidden = tiles;
  }

  /**
   * Shows these devices (those with coordinates) and these never-seen registered ones, and only
   * them: new markers appear, changed ones take their new look and place, the rest go.
   * @param {Iterable<Device>} devices
   * @param {Iterable<RegistryEntry>} unseen
   * @param {(deviceId: string) => DeviceAlarm | undefined} [alarmOf]   a device's active alarms
   */
  render(devices, unseen, alarmOf = () => undefined) {
    /** @type {Set<string>} */
    const keep = new Set();
    /** @type {L.Marker[]} */
    const added = [];
    for (const device of devices) {
      const at = position(device.meta);
      if (at === null || device.meta === null) continue;
      keep.add(device.deviceId);
      this.#pin(device.deviceId, at, device, device.meta, alarmOf(device.deviceId), added);
    }
    for (const entry of unseen) {
      const at = position(entry);
      if (at === null || keep.has(entry.deviceId)) continue;
      keep.add(entry.deviceId);
      this.#pin(entry.deviceId, at, null, entry, undefined, added);
    }
    /** @type {L.Marker[]} */
    const removed = [];
    for (const [id, pin] of this.pins) {
      if (keep.has(id)) continue;
      removed.push(pin.marker);
      this.pins.delete(id);
    }
    const cluster = this.pins.size > CLUSTER_ABOVE;
    if (cluster !== this.clustered) {
      this.map.removeLayer(this.layer);
      this.clustered = cluster;
      this.layer = cluster ? this.#clusterGroup() : L.layerGroup();
      this.#add([...this.pins.values()].map((p) => p.marker));
      this.layer.addTo(this.map);
    } else {
      if (removed.length > 0) this.#remove(removed);
      if (added.length > 0) this.#add(added);
    }
    this.#fit();
  }

  /** The first load is over (the snapshot and the registered devices): one last fit, then the view stays. */
  settle() {
    this.settled = true;
    this.#fit();
  }

  /**
   * @param {string} id
   * @param {[number, number]} at
   * @param {Device | null} device
   * @param {RegistryEntry} entry
   * @param {DeviceAlarm | undefined} alarm
   * @param {L.Marker[]} added
   */
  #pin(id, at, device, entry, alarm, added) {
    const alarmed = alarmClass(alarm);
    const cls = alarmed === '' ? markerClass(device) : `${markerClass(device)} ${alarmed}`;
    let pin = this.pins.get(id);
    if (pin === undefined) {
      const marker = L.marker(at, { icon: this.#icon(cls), keyboard: true, riseOnHover: true });
      /** @type {Pin} */
      const made = { id, marker, cls, alarm, lat: at[0], lng: at[1], device, entry };
      pin = made;
      marker.on('add', () => this.#tag(made));
      const openDetail = () => {
        if (made.device !== null) this.open(made.id, marker.getElement() ?? null);
      };
      marker.on('click', openDetail);
      // Leaflet turns Enter on a focused marker into a keypress, not a click (popups listen to both)
      marker.on('keypress', (e) => {
        if (/** @type {L.LeafletKeyboardEvent} */ (e).originalEvent.key === 'Enter') openDetail();
      });
      marker.bindTooltip(() => tooltip(made), { direction: 'top', offset: [0, -ICON_PX / 2] });
      if (device === null) marker.bindPopup(() => popup(made), POPUP);
      this.pins.set(id, made);
      added.push(marker);
      return;
    }
    const words = alarm === undefined ? '' : alarmWords(alarm);
    if (pin.device === device && pin.entry === entry && pin.cls === cls && (pin.alarm === undefined ? '' : alarmWords(pin.alarm)) === words) return;
    const wasUnseen = pin.device === null;
    pin.device = device;
    pin.entry = entry;
    pin.alarm = alarm;
    if (wasUnseen !== (device === null)) {
      // a registered device that reports for the first time opens the detail from now on
      if (device === null) pin.marker.bindPopup(() => popup(/** @type {Pin} */ (pin)), POPUP);
      else pin.marker.unbindPopup();
    }
    if (pin.cls !== cls) {
      pin.cls = cls;
      pin.marker.setIcon(this.#icon(cls));
      if (this.layer instanceof L.MarkerClusterGroup) this.layer.refreshClusters(pin.marker);
    }
    if (pin.lat !== at[0] || pin.lng !== at[1]) {
      pin.lat = at[0];
      pin.lng = at[1];
      pin.marker.setLatLng(at); // a clustered marker moves to its new cluster (markercluster listens to 'move')
    }
    const tip = pin.marker.getTooltip();
    if (tip !== undefined && pin.marker.isTooltipOpen()) tip.update();
    this.#tag(pin);
  }

  /**
   * What a test or a screen reader finds on a marker's element: attributes, never markup.
   * @param {Pin} pin
   */
  #tag(pin) {
    const el = pin.marker.getElement();
    if (el === undefined) return;
    el.dataset.id = pin.id;
    el.dataset.lat = String(pin.lat);
    el.dataset.lng = String(pin.lng);
    el.setAttribute('aria-label', label(pin));
  }

  /** @param {string} cls */
  #icon(cls) {
    let icon = this.icons.get(cls);
    if (icon === undefined) {
      icon = L.divIcon({ className: cls, html: false, iconSize: [ICON_PX, ICON_PX] });
      this.icons.set(cls, icon);
    }
    return icon;
  }

  #clusterGroup() {
    return L.markerClusterGroup({
      chunkedLoading: true,
      showCoverageOnHover: false,
      // a cluster holding an open cover says so by a mark of its own, not by colour alone
      iconCreateFunction: (cluster) => {
        const markers = cluster.getAllChildMarkers();
        const open = markers.some((m) => /\bmk-open\b/.test(String(m.options.icon?.options.className)));
        const alarmed = markers.some((m) => /\bhas-alarm\b/.test(String(m.options.icon?.options.className)));
        const n = cluster.getChildCount();
        const size = n < 10 ? 'small' : n < 100 ? 'medium' : 'large';
        return L.divIcon({
          html: h('div', null, h('span', null, n.toLocaleString())),
          className: `marker-cluster marker-cluster-${size}${open ? ' mk-cluster-open' : ''}${alarmed ? ' cluster-alarm' : ''}`,
          iconSize: [40, 40],
        });
      },
    });
  }

  /** @param {L.Marker[]} markers */
  #add(markers) {
    if (this.layer instanceof L.MarkerClusterGroup) this.layer.addLayers(markers);
    else for (const m of markers) this.layer.addLayer(m);
  }

  /** @param {L.Marker[]} markers */
  #remove(markers) {
    if (this.layer instanceof L.MarkerClusterGroup) this.layer.removeLayers(markers);
    else for (const m of markers) this.layer.removeLayer(m);
  }

  #fit() {
    if (!this.autoFit || this.pins.size === 0 || this.el.clientWidth === 0) return;
    const bounds = L.latLngBounds([...this.pins.values()].map((p) => /** @type {L.LatLngTuple} */ ([p.lat, p.lng])));
    // clear of the controls in the corners (the zoom buttons; the hint and the scale)
    const [top = 0, bottom = 0] = ['.leaflet-top', '.leaflet-bottom'].map((corner) =>
      Math.max(0, ...[...this.el.querySelectorAll(corner)].map((el) => /** @type {HTMLElement} */ (el).offsetHeight)),
    );
    const key = `${bounds.toBBoxString()} ${top} ${bottom} ${this.el.clientWidth}x${this.el.clientHeight}`;
    if (key !== this.fitKey) {
      this.fitKey = key;
      this.map.fitBounds(bounds, { paddingTopLeft: [24, top + 12], paddingBottomRight: [24, bottom + 12], maxZoom: 16, animate: false });
    }
    if (this.settled) this.autoFit = false;
  }
}

/**
 * A static element of the page as a map control.
 * @param {HTMLElement} el
 * @param {L.ControlPosition} position
 */
function overlay(el, position) {
  // a click or a wheel on it is not a pan or a zoom of the map below
  L.DomEvent.disableClickPropagation(el);
  L.DomEvent.disableScrollPropagation(el);
  const Overlay = L.Control.extend({ onAdd: () => el });
  return new Overlay({ position });
}

/**
 * "MH-1, Elm St 3: open, silent": the marker's accessible name.
 * @param {Pin} pin
 */
function label(pin) {
  const name = [pin.id, pin.entry.name, pin.entry.address].filter(Boolean).join(', ');
  if (pin.device === null) return `${name}: registered, never seen`;
  const alarm = pin.alarm === undefined ? '' : `. ${alarmWords(pin.alarm)}`;
  return `${name}: ${pin.device.state}${pin.device.silent ? ', silent' : ''}${alarm}`;
}

/**
 * The name, the address and the state, as text nodes.
 * @param {Pin} pin
 */
function tooltip(pin) {
  const { entry, device } = pin;
  return h(
    'div',
    { class: 'mk-tip' },
    h('strong', { class: 'mk-tip-name' }, entry.name ?? pin.id),
    entry.name !== null ? h('span', { class: 'mk-tip-id mono' }, pin.id) : null,
    entry.address !== null ? h('span', { class: 'mk-tip-address' }, entry.address) : null,
    h('span', { class: 'mk-tip-state' }, device === null ? 'registered, never seen' : `${device.state}${device.silent ? ' · silent' : ''}`),
    pin.alarm === undefined ? null : h('span', { class: 'mk-tip-alarm' }, alarmWords(pin.alarm)),
  );
}

/**
 * A registered device that never reported has no detail to open: its entry, as text nodes.
 * @param {Pin} pin
 */
function popup(pin) {
  const { entry } = pin;
  /** @type {[string, string | null][]} */
  const facts = [
    ['Device', pin.id],
    ['Address', entry.address],
    ['Zone', entry.zone],
    ['Tags', entry.tags.length > 0 ? entry.tags.join(', ') : null],
  ];
  return h(
    'div',
    { class: 'mk-popup' },
    h('strong', { class: 'mk-popup-name' }, entry.name ?? pin.id),
    h('p', { class: 'muted' }, 'Registered, never seen: no message from this device yet.'),
    h('dl', null, facts.filter(([, v]) => v !== null).map(([k, v]) => h('div', null, h('dt', null, k), h('dd', null, v)))),
  );
}

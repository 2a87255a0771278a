// Types of model.js for the TypeScript side (tsconfig has no allowJs): the browser never loads this.
import type { Device, HistoryEntry } from '../../devices/types.js';

export type SortKey = 'deviceId' | 'state' | 'battery' | 'signal' | 'lastSeen' | 'lastChanged';
export type SortDir = 'asc' | 'desc';

export interface Filter {
  state: string;
  silent: '' | 'yes' | 'no';
  lowBattery: boolean;
  search: string;
}

export interface Signal {
  bars: 0 | 1 | 2 | 3 | 4 | null;
  dbm: number | null;
  label: string;
}

export interface Period {
  state: string;
  from: number;
  to: number | null;
  messages: number;
}

export interface Summary {
  total: number;
  states: [string, number][];
  silent: number;
  lowBattery: number;
}

export interface Page<T> {
  rows: T[];
  page: number;
  pages: number;
  from: number;
  to: number;
  total: number;
}

export const LOW_BATTERY_PERCENT: number;
export const NO_FILTER: Readonly<Filter>;
export const SORT_KEYS: Record<SortKey, ((d: Device) => string | number | null) | null>;
export function stateClass(state: string): string;
export function batteryPercent(level: number | null): number | null;
export function isLowBattery(device: Pick<Device, 'batteryLevel'>): boolean;
export function signal(csq: number | null): Signal;
export function formatDuration(seconds: number): string;
export function relativeTime(then: number, now: number): string;
export function compareIds(a: string, b: string): number;
export function sortDevices(devices: Device[], key: SortKey, dir: SortDir): Device[];
export function matches(device: Device, filter: Filter): boolean;
export function filterDevices(devices: Device[], filter: Filter): Device[];
export function summarize(devices: Device[]): Summary;
export function pageOf<T>(list: T[], page: number, size: number): Page<T>;
export function isNewer(candidate: Device, known: Device | undefined): boolean;
export function historyPeriods(items: Pick<HistoryEntry, 'timestamp' | 'state'>[], until: number): Period[];
export function batterySeries(items: Pick<HistoryEntry, 'timestamp' | 'batteryLevel'>[]): { t: number; pct: number }[];
export function backoff(attempt: number, random: number): number;
export function liveUrl(location: { protocol: string; host: string }, apiKey: string | null): string;

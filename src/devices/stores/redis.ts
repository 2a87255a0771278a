import { randomUUID } from 'node:crypto';
import { alarmEvent, metaEvent, silentEvent, updateEvent, type AlarmEvent, type DeviceEvent, type EventKind, type MetaEvent } from '../events.js';
import {
  acknowledge,
  applyChanges,
  clearByHand,
  DEFAULT_ALARM_SETTINGS,
  NO_ALARMS,
  nextOpenTimer,
  onMessage,
  onSilent,
  onTime,
  suppress,
  withActive,
  type Alarm,
  type AlarmChange,
  type AlarmSettings,
  type AlarmType,
  type AlarmTransition,
  type DeviceAlarms,
} from '../alarms.js';
import { apply, applyWithHistory, markSilent, withMeta, type Outcome } from '../rules.js';
import { sameEntry } from '../registry.js';
import {
  alarmMatches,
  deviceMatches,
  entryMatches,
  type AlarmPage,
  type AlarmQuery,
  type AlarmUpdate,
  type BatchItem,
  type DevicePage,
  type DeviceStore,
  type ListQuery,
  type RegistryPage,
  type RegistryQuery,
  type RegistryWrite,
  type LogRead,
  type SharedEventLog,
  type StoreOutcome,
  type StoreSummary,
  StoreUnavailableError,
} from '../store.js';
import type { Device, HistoryEntry, RegistryEntry } from '../types.js';
import { alarmJson, deviceJson } from '../wire.js';
import { webhookBody, webhookType, type Delivery } from '../outbox.js';
import { eventFromStored, storedAlarm, storedMeta } from '../stored-events.js';
import { Commit, DEVICE, fillTokens, hasToken, paddedSeqToken, runScript, seqToken, type CommitItem, type CommitResult, type RedisCommander } from './redis-commit.js';

// SPEC §8: the store of REDIS_URL, shared by every replica. Each write reads the devices it
// touches, decides with the pure rules (rules.ts, alarms.ts), and commits through one script
// guarded by each device's version (redis-commit.ts): the atomic rules of SPEC §8, the same
// decisions as the memory and SQLite stores (test/devices/store.contract.ts). Nothing is kept
// in this process but the options: another replica may have written anything since.
//
// Keys, under `prefix` (a hash per device holds what the rules read in one HMGET):
//   seq                   the newest seq handed out            id   the store id (webhook ids)
//   ev                    the event log: a stream, entry id <seq>-0 (SPEC §8), trimmed near its length
//   d:<id>                hash: v (version), dev (device JSON), al (uncleared alarms and hand-cleared
//                         types), cl (cleared alarms kept, oldest first), reg (registry entry)
//   h:<id>                list: history entries (JSON), newest first
//   ids, st:<state>, sil, zn:<zone>      sorted sets by id (score 0: byte order, rules.compareIds):
//                         every device, by state, the silent ones, by zone
//   bt                    sorted set: devices not silent, by timestamp (the silence sweep)
//   tm                    sorted set: open covers, by the time of their next alarm timer (the alarm sweep)
//   n                     hash of counters: devices, silent, s:<state>, A:<type>:<severity>, unack
//   rg, rz:<zone>, rl, ru registry entries by id: all, by zone, located, never seen
//   a:<alarmId>           an alarm (JSON)
//   aa, ac, ad:<id>       alarms by `<raisedAt>|<16-digit number>`: all, active, a device's
//   o:<delivery>, ob:<url>, ou   a pending webhook delivery (hash), due ones of a URL by time, the URLs

export interface RedisStoreOptions {
  /** A connected client (node-redis); the store sends commands and scripts through it. */
  client: RedisCommander;
  /**
   * SPEC §8: a second connection for the event log's blocking reads (XREAD BLOCK holds its
   * connection). With it the store is shared: it has a sharedLog, and the service follows it.
   */
  reader?: RedisCommander;
  /** Closes the clients, at close() (which ends a blocking read under way). */
  closeClient?: () => Promise<void>;
  /** Why Redis cannot be used now (its connection down), or an empty list: for /readyz. */
  problems?: () => string[];
  /**
   * SPEC §8: follow each write with WAITAOF (Redis 7.2 and later), so that it returns once Redis
   * has it on disk (redis-durability.ts says when).
   */
  waitAof?: boolean;
  /** Every key starts with it: several stores (tests, other bridges) may share one Redis. */
  prefix: string;
  historyLimit: number;
  /** EVENT_BUFFER: the events the stream keeps for replay (SPEC §8: trimmed to about this many). */
  eventBuffer: number;
  /** WEBHOOK_URLS: each stateChanged and silent event is enqueued for each, in its commit. */
  webhookUrls?: string[];
  /** SPEC §12 thresholds; the defaults of SPEC §6 when absent; null: no alarms (alarms off). */
  alarms?: AlarmSettings | null;
}

/** A cleared alarm a device keeps: its id, raisedAt (its index's key) and whether it is acknowledged. */
type Cleared = [alarmId: string, raisedAt: string, acknowledged: boolean];

/** What the rules need of one device, as read from its hash (and its history, when read). */
interface Slot {
  id: string;
  key: string;
  version: number;
  device: Device | undefined;
  alarms: DeviceAlarms;
  cleared: Cleared[];
  entry: RegistryEntry | null;
  /** Read only where a message may be late or a redelivery (the rare path). */
  history: HistoryEntry[] | null;
  /** The time of its next alarm timer (tm), as the state read implies. */
  timer: number | null;
}

/** An outcome whose seqs come from the commit. */
type Pending<T> = (result: CommitResult) => T;

/** A write that keeps finding its devices changed by others gives up after this many reads. */
const MAX_ROUNDS = 50;
/** Ids or alarms read per round trip when a list scans an index. */
const SCAN_CHUNK = 500;
/** Why a store refuses to go on once Redis lost its data (the seqs and webhook ids would start over). */
const GONE = 'the store this bridge opened is no longer in Redis (its data was lost or flushed): restart every replica';
/** History entries per RPUSH at most (Lua's unpack has a limit near 8,000 values). */
const PUSH_CHUNK = 1000;
/** Own events kept for the feed at most: a feed that falls behind parses the rest. */
const OWN_EVENTS = 20_000;
/** Where a stream is short of EVENT_BUFFER (0, say), replicas still need its recent entries to read. */
const MIN_STREAM_LENGTH = 1000;

function parseAlarms(json: string | null): DeviceAlarms {
  if (json === null) return NO_ALARMS;
  const stored = JSON.parse(json) as { active: DeviceAlarms['active']; suppressed: AlarmType[] };
  return { active: stored.active, suppressed: new Set(stored.suppressed) };
}

function alarmsText(alarms: DeviceAlarms): string | null {
  if (alarms.suppressed.size === 0 && Object.keys(alarms.active).length === 0) return null;
  return JSON.stringify({ active: alarms.active, suppressed: [...alarms.suppressed] });
}

/** The 16-digit number of an alarm id (`a42` → 0000000000000042), or its padded token. */
function paddedNumber(alarmId: string): string {
  const n = alarmId.slice(1);
  return hasToken(n) ? paddedSeqToken(Number(/~(\d+)~$/.exec(n)![1])) : n.padStart(16, '0');
}

/** An alarm's member in the alarm indexes: `<raisedAt>|<16 digits>`, in list order by text. */
function alarmMember(alarmId: string, raisedAt: string): string {
  return `${raisedAt}|${paddedNumber(alarmId)}`;
}

function alarmIdOf(member: string): string {
  return `a${Number(member.slice(member.indexOf('|') + 1))}`;
}

/** Raise order of cleared alarms: an alarm of the commit under way is newer than any stored one (among them: by event number). */
function raiseOrder(a: Cleared, b: Cleared): number {
  const key = (c: Cleared): [number, number] => (hasToken(c[0]) ? [1, Number(/~(\d+)~$/.exec(c[0])![1])] : [0, Number(c[0].slice(1))]);
  const [ka, na] = key(a);
  const [kb, nb] = key(b);
  return ka - kb || na - nb;
}

/** A delivery's id: the seq's 16 digits and the URL's index in three. */
function deliveryMember(id: number): string {
  return String(id).padStart(19, '0');
}

export class RedisStore implements DeviceStore {
  readonly storeId: string;
  readonly sharedLog?: SharedEventLog;
  readonly #c: RedisCommander;
  readonly #closeClient: (() => Promise<void>) | undefined;
  readonly #p: string;
  readonly #historyLimit: number;
  readonly #streamLength: number;
  readonly #webhookUrls: string[];
  readonly #settings: AlarmSettings | null;
  readonly #waitAof: boolean;
  /**
   * The events of this store's own commits, by seq, until the log brings them back: the feed
   * publishes these objects rather than parsing what it reads (a replica alone: every event).
   */
  readonly #own = new Map<number, DeviceEvent>();
  /** This store's name on the webhook deliveries it claims: only the claim's holder settles one. */
  readonly #claimer = randomUUID();
  /** Redis no longer holds this store (its data lost or flushed): nothing is written, and /readyz says so. */
  #gone = false;
  #closed = false;

  private constructor(options: RedisStoreOptions, storeId: string) {
    this.storeId = storeId;
    this.#c = unavailableOnFailure(options.client);
    this.#closeClient = options.closeClient;
    this.#p = options.prefix;
    this.#historyLimit = options.historyLimit;
    this.#streamLength = Math.max(options.eventBuffer, MIN_STREAM_LENGTH);
    this.#webhookUrls = options.webhookUrls ?? [];
    this.#settings = options.alarms === undefined ? DEFAULT_ALARM_SETTINGS : options.alarms;
    this.#waitAof = options.waitAof === true;
    const reader = options.reader === undefined ? undefined : unavailableOnFailure(options.reader);
    if (reader !== undefined) {
      const connection = options.problems ?? (() => []);
      this.sharedLog = {
        readAfter: (seq, limit, waitMs) => this.#readAfter(reader, seq, limit, waitMs),
        problems: () => [...(this.#gone ? [`redis: ${GONE}`] : []), ...connection()],
      };
    }
  }

  /** SPEC §8: the stream's entries after `seq` (XREAD BLOCK), or the gap where it no longer reaches back. */
  async #readAfter(reader: RedisCommander, seq: number, limit: number, waitMs: number): Promise<LogRead> {
    const stream = `${this.#p}ev`;
    // a log that started over under this replica (Redis lost its data) is no continuation of it
    if ((await this.#cmd('GET', `${this.#p}id`)) !== this.storeId) {
      this.#gone = true;
      // as unavailable: the feed waits (it must not skip what it cannot read), the API answers 503
      throw new StoreUnavailableError(GONE);
    }
    const reply = await reader.sendCommand(['XREAD', 'COUNT', String(limit), 'BLOCK', String(waitMs), 'STREAMS', stream, `${seq}-0`]);
    if (reply === null) {
      // nothing new for a while: a Redis that lost its data hands out seqs from 1 again, below ours
      const newest = await this.lastSeq();
      if (newest >= seq) return { kind: 'events', events: [] };
      this.#own.clear();
      const oldest = flatPairs(await this.#cmd('XRANGE', stream, '-', '+', 'COUNT', 1))[0] as string | undefined;
      return { kind: 'gap', next: oldest === undefined ? newest + 1 : Number(oldest.slice(0, oldest.indexOf('-'))) };
    }
    // what the feed has read is no longer needed (an event whose commit answered after the log brought it)
    for (const [seqKept] of this.#own) {
      if (seqKept > seq) break;
      this.#own.delete(seqKept);
    }
    const [, entries] = flatPairs(reply) as [string, [string, unknown][]];
    const events = (entries ?? []).map(([id, fields]) => {
      const own = this.#own.get(Number(id.slice(0, id.indexOf('-'))));
      if (own === undefined) return eventFromEntry(id, fields);
      this.#own.delete(own.seq);
      return own;
    });
    if (events.length > 0 && events[0]!.seq > seq + 1) {
      this.#own.clear();
      return { kind: 'gap', next: events[0]!.seq };
    }
    return { kind: 'events', events };
  }

  /** Opens the store in `client`'s Redis: its id is created once and kept (SPEC §5 webhook ids). */
  static async open(options: RedisStoreOptions): Promise<RedisStore> {
    const idKey = `${options.prefix}id`;
    await options.client.sendCommand(['SET', idKey, randomUUID().replaceAll('-', ''), 'NX']);
    const storeId = String(await options.client.sendCommand(['GET', idKey]));
    const store = new RedisStore(options, storeId);
    await store.#checkTimers();
    return store;
  }

  // --- keys

  #key(id: string): string {
    return `${this.#p}d:${id}`;
  }

  #cmd(...args: (string | number)[]): Promise<unknown> {
    return this.#c.sendCommand(args.map(String));
  }

  // --- reads of what a write decides on

  /** Reads the devices' hashes: one script call (a command per device costs node-redis more than Redis). */
  async #read(ids: Iterable<string>): Promise<Map<string, Slot>> {
    const list = [...new Set(ids)];
    const hashes = (await runScript(this.#c, READ_SCRIPT, [], list.map((id) => this.#key(id)))) as (string | null | false)[][];
    const slots = new Map<string, Slot>();
    for (const [i, id] of list.entries()) {
      // a nil in a Lua table reply comes back as null (or false, where the script kept it in the table)
      const [v, dev, al, cl, reg] = hashes[i]!.map((x) => (x === false || x === undefined ? null : x));
      const slot: Slot = {
        id,
        key: this.#key(id),
        version: v == null ? 0 : Number(v),
        device: dev == null ? undefined : (JSON.parse(dev) as Device),
        alarms: parseAlarms(al ?? null),
        cleared: cl == null ? [] : (JSON.parse(cl) as Cleared[]),
        entry: reg == null ? null : (JSON.parse(reg) as RegistryEntry),
        history: null,
        timer: null,
      };
      slot.timer = this.#timerOf(slot);
      slots.set(id, slot);
    }
    return slots;
  }

  /**
   * Reads the histories of these slots. Read after the hash: where another writer changed the
   * device in between, the commit's guard refuses what was decided on them.
   */
  async #readHistories(slots: Slot[]): Promise<void> {
    const lists = await Promise.all(slots.map((slot) => this.#cmd('LRANGE', `${this.#p}h:${slot.id}`, 0, -1) as Promise<string[]>));
    for (const [i, slot] of slots.entries()) slot.history = lists[i]!.map((e) => JSON.parse(e) as HistoryEntry);
  }

  #timerOf(slot: Slot): number | null {
    return this.#settings === null || slot.device === undefined ? null : nextOpenTimer(slot.device, slot.alarms, this.#settings);
  }

  /**
   * Runs writes in rounds until every one is stored: each round reads the devices of what is
   * left, `build` adds an item per write (or none: a duplicate), the commit runs, and the writes
   * whose device another writer changed meanwhile go to the next round.
   * `build` returns the item's index in the commit (or null) and what its outcome will be.
   */
  async #rounds<W, T>(
    writes: readonly W[],
    idOf: (w: W) => string,
    build: (commit: Commit, slot: Slot, w: W) => { item: number | null; outcome: Pending<T> },
    needsHistory: (writes: readonly W[], slots: Map<string, Slot>) => Set<string> = () => new Set(),
    extraRead?: (left: readonly W[]) => Promise<void>,
  ): Promise<T[]> {
    const outcomes = new Array<T>(writes.length);
    let left = writes.map((_, i) => i);
    for (let round = 0; left.length > 0; round++) {
      if (round === MAX_ROUNDS) throw new Error(`Redis store: ${left.length} writes found their devices changed by another writer ${MAX_ROUNDS} times`);
      const ws = left.map((i) => writes[i]!);
      const slots = await this.#read(ws.map(idOf));
      const history = needsHistory(ws, slots);
      if (history.size > 0) await this.#readHistories([...history].map((id) => slots.get(id)!));
      if (extraRead !== undefined) await extraRead(ws);
      const commit = new Commit();
      const built = left.map((i) => ({ i, ...build(commit, slots.get(idOf(writes[i]!))!, writes[i]!) }));
      let result: CommitResult;
      try {
        result = await commit.run(this.#c, { seq: `${this.#p}seq`, counts: `${this.#p}n`, id: `${this.#p}id` }, this.storeId);
      } catch (err) {
        if ((err as Error).message?.startsWith('WB_STORE_GONE')) this.#gone = true;
        throw err;
      }
      if (this.#waitAof && result.skipped.size < commit.items.length) await this.#fsynced();
      const next: number[] = [];
      for (const b of built) {
        if (b.item !== null && result.skipped.has(b.item)) next.push(b.i);
        else outcomes[b.i] = this.#keep(b.outcome(result));
      }
      left = next;
    }
    return outcomes;
  }

  /** WAITAOF 1 0: returns once the local AOF has every write before it (fsynced); throws when it has not within a second. */
  async #fsynced(): Promise<void> {
    const [local] = flatPairs(await this.#cmd('WAITAOF', 1, 0, 1000));
    if (Number(local) < 1) throw new Error('Redis did not fsync the write within a second (WAITAOF)');
  }

  /** Keeps the events of an outcome for the feed (only a shared store has one), at most OWN_EVENTS of them. */
  #keep<T>(outcome: T): T {
    if (this.sharedLog === undefined) return outcome;
    for (const event of eventsOf(outcome)) {
      this.#own.set(event.seq, event);
      if (this.#own.size > OWN_EVENTS) this.#own.delete(this.#own.keys().next().value!);
    }
    return outcome;
  }

  // --- DeviceStore

  async lastSeq(): Promise<number> {
    return Number((await this.#cmd('GET', `${this.#p}seq`)) ?? 0);
  }

  async apply(record: BatchItem['record'], receivedAt: string): Promise<StoreOutcome> {
    return (await this.applyBatch([{ record, receivedAt }]))[0]!;
  }

  async applyBatch(items: readonly BatchItem[]): Promise<StoreOutcome[]> {
    if (items.length === 0) return [];
    return this.#rounds(
      items,
      (w) => w.record.deviceId,
      (commit, slot, w) => this.#message(commit, slot, w),
      (ws, slots) => lateOrRedelivered(ws, slots),
    );
  }

  /** SPEC §4 for one message, on the device as the commit has it so far. */
  #message(commit: Commit, slot: Slot, { record, receivedAt }: BatchItem): { item: number | null; outcome: Pending<StoreOutcome> } {
    const current = slot.device;
    const meta = current === undefined ? slot.entry : null;
    const outcome: Outcome =
      slot.history === null ? apply(current, record, receivedAt, meta) : applyWithHistory(current, slot.history, record, receivedAt, this.#historyLimit, meta);
    if (outcome.kind === 'duplicate') return { item: null, outcome: () => ({ kind: 'duplicate' }) };
    if (outcome.kind === 'late' && slot.history === null) throw new Error('Redis store: a late message without its device history read');
    const item = this.#begin(commit, slot);
    const hkey = `${this.#p}h:${slot.id}`;
    if (slot.history === null) {
      item.op('LPUSH', hkey, JSON.stringify(outcome.entry));
      item.op('LTRIM', hkey, 0, this.#historyLimit - 1);
    } else {
      item.op('DEL', hkey);
      // in chunks: Lua's unpack takes about 8,000 values at most, and HISTORY_LIMIT may be 10,000
      const entries = slot.history.map((e) => JSON.stringify(e));
      for (let i = 0; i < entries.length; i += PUSH_CHUNK) item.op('RPUSH', hkey, ...entries.slice(i, i + PUSH_CHUNK));
    }
    if (outcome.kind === 'late') return { item: commit.items.length - 1, outcome: () => ({ kind: 'late' }) };

    const { device } = outcome;
    const id = slot.id;
    const json = deviceJson(device);
    item.device = json;
    item.op('HSET', slot.key, 'dev', DEVICE);
    if (current === undefined) {
      item.op('ZADD', `${this.#p}ids`, 0, id);
      item.op('ZADD', `${this.#p}st:${device.state}`, 0, id);
      item.count('devices', 1);
      item.count(`s:${device.state}`, 1);
      if (device.meta?.zone != null) item.op('ZADD', `${this.#p}zn:${device.meta.zone}`, 0, id);
      if (slot.entry !== null) item.op('ZREM', `${this.#p}ru`, id);
    } else {
      if (outcome.changed) {
        item.op('ZREM', `${this.#p}st:${current.state}`, id);
        item.op('ZADD', `${this.#p}st:${device.state}`, 0, id);
        item.count(`s:${current.state}`, -1);
        item.count(`s:${device.state}`, 1);
      }
      if (current.silent) {
        item.op('ZREM', `${this.#p}sil`, id);
        item.count('silent', -1);
      }
    }
    item.op('ZADD', `${this.#p}bt`, device.timestamp, id);
    slot.device = device;

    const k = commit.event();
    this.#log(item, k, 'update', json, outcome.previousState, outcome.changed);
    // the seq's token stands in for the seq in the webhook body (the script writes the number)
    this.#enqueue(item, k, updateEvent(token(k), device, outcome.previousState, outcome.changed), receivedAt, json);
    const alarms = this.#alarms(commit, item, slot, onMessage(current, device, slot.alarms, this.#settings), receivedAt, json);
    this.#finish(item, slot);
    const { previousState, changed } = outcome;
    return {
      item: commit.items.length - 1,
      outcome: (r) => {
        const event = updateEvent(r.seqOf(k), device, previousState, changed);
        event.wire.device = json;
        return { kind: 'update', event, alarms: alarms.map((a) => a(r)) };
      },
    };
  }

  /** Starts a device's item, guarded by the version the slot was read at; the slot moves on with it. */
  #begin(commit: Commit, slot: Slot): CommitItem {
    return commit.begin(slot.key, slot.version++);
  }

  /** The event in the stream, with the seq as its id (SPEC §8). */
  #log(item: CommitItem, k: number, kind: EventKind, stored: string, previousState: string | null = null, changed = false): void {
    const fields = ['k', kind, 'c', changed ? '1' : '0', 'j', stored === item.device ? DEVICE : stored];
    if (previousState !== null) fields.push('p', previousState);
    item.op('XADD', `${this.#p}ev`, 'MAXLEN', '~', this.#streamLength, `${seqToken(k)}-0`, ...fields);
  }

  /** SPEC §5: a delivery per webhook URL for an event that is a webhook. `event` carries the seq's token. */
  #enqueue(item: CommitItem, k: number, event: DeviceEvent, at: string, json?: string): void {
    if (this.#webhookUrls.length === 0) return;
    const type = webhookType(event);
    if (type === null) return;
    if (json !== undefined && event.kind !== 'alarm') event.wire.device = json;
    const body = webhookBody(event, type, at);
    for (const [u, url] of this.#webhookUrls.entries()) {
      // the delivery's id: the seq (16 digits, from the script) and the URL's index (3 digits)
      const member = `${paddedSeqToken(k)}${String(u).padStart(3, '0')}`;
      item.op('HSET', `${this.#p}o:${member}`, 'url', url, 'seq', seqToken(k), 'body', body, 'attempts', 0, 'next', 0);
      item.op('ZADD', `${this.#p}ob:${url}`, 0, member);
      item.op('SADD', `${this.#p}ou`, url);
    }
  }

  /** SPEC §12: rule changes applied to the slot, each transition written and an event. */
  #alarms(commit: Commit, item: CommitItem, slot: Slot, changes: readonly AlarmChange[], at: string, deviceText: string): Pending<AlarmEvent>[] {
    if (changes.length === 0) return [];
    const base = commit.nextK;
    const before = slot.alarms;
    // a raised alarm is named after the seq of its event, which the script hands out
    const { applied, after } = applyChanges(slot.id, before, changes, slot.device?.meta ?? null, at, (i) => `a${seqToken(base + i)}`);
    const active = { ...before.active };
    const pending: Pending<AlarmEvent>[] = [];
    for (const { transition, alarm } of applied) {
      const was = active[alarm.type];
      if (transition === 'cleared') delete active[alarm.type];
      else active[alarm.type] = alarm;
      pending.push(this.#alarmChanged(commit, item, slot, transition, alarm, was, at, deviceText));
    }
    slot.alarms = after;
    this.#saveAlarms(item, slot);
    return pending;
  }

  /** One alarm transition: the alarm, its indexes and counters, the event, its webhooks. `was`: the alarm before. */
  #alarmChanged(
    commit: Commit,
    item: CommitItem,
    slot: Slot,
    transition: AlarmTransition,
    alarm: Alarm,
    was: Alarm | undefined,
    at: string,
    deviceText: string,
  ): Pending<AlarmEvent> {
    const p = this.#p;
    const member = alarmMember(alarm.alarmId, alarm.raisedAt);
    const text = alarmJson(alarm);
    item.op('SET', `${p}a:${alarm.alarmId}`, text);
    switch (transition) {
      case 'raised':
        item.op('ZADD', `${p}aa`, 0, member);
        item.op('ZADD', `${p}ac`, 0, member);
        item.op('ZADD', `${p}ad:${slot.id}`, 0, member);
        item.count(`A:${alarm.type}:${alarm.severity}`, 1);
        item.count('unack', 1);
        break;
      case 'escalated':
        item.count(`A:${alarm.type}:${was!.severity}`, -1);
        item.count(`A:${alarm.type}:${alarm.severity}`, 1);
        break;
      case 'cleared':
        item.op('ZREM', `${p}ac`, member);
        item.count(`A:${alarm.type}:${alarm.severity}`, -1);
        slot.cleared = [...slot.cleared, [alarm.alarmId, alarm.raisedAt, alarm.acknowledged]];
        this.#trim(item, slot);
        break;
      case 'acknowledged':
        item.count('unack', -1);
        // the caller saves the slot's alarms
        if (alarm.status === 'cleared') slot.cleared = slot.cleared.map((c) => (c[0] === alarm.alarmId ? [c[0], c[1], true] : c));
        break;
    }
    const k = commit.event();
    this.#log(item, k, 'alarm', storedAlarm(transition, text, deviceText));
    const device = slot.device ?? null;
    this.#enqueue(item, k, alarmEvent(token(k), device, transition, alarm), at);
    return (r) => alarmEvent(r.seqOf(k), device, transition, hasToken(alarm.alarmId) ? { ...alarm, alarmId: fillTokens(alarm.alarmId, r.seqOf) } : alarm);
  }

  /** HISTORY_LIMIT cleared alarms per device at most, the oldest raised go first. */
  #trim(item: CommitItem, slot: Slot): void {
    if (slot.cleared.length <= this.#historyLimit) return;
    const sorted = [...slot.cleared].sort(raiseOrder);
    const gone = sorted.slice(0, sorted.length - this.#historyLimit);
    for (const [alarmId, raisedAt, acknowledged] of gone) {
      const member = alarmMember(alarmId, raisedAt);
      item.op('DEL', `${this.#p}a:${alarmId}`);
      item.op('ZREM', `${this.#p}aa`, member);
      item.op('ZREM', `${this.#p}ad:${slot.id}`, member);
      if (!acknowledged) item.count('unack', -1);
    }
    slot.cleared = sorted.slice(gone.length);
  }

  #saveAlarms(item: CommitItem, slot: Slot): void {
    const al = alarmsText(slot.alarms);
    if (al === null) item.op('HDEL', slot.key, 'al');
    else item.op('HSET', slot.key, 'al', al);
    if (slot.cleared.length === 0) item.op('HDEL', slot.key, 'cl');
    else item.op('HSET', slot.key, 'cl', JSON.stringify(slot.cleared));
  }

  /** The open cover's next alarm timer, where the item changed it. */
  #finish(item: CommitItem, slot: Slot): void {
    const timer = this.#timerOf(slot);
    if (timer === slot.timer) return;
    if (timer === null) item.op('ZREM', `${this.#p}tm`, slot.id);
    else item.op('ZADD', `${this.#p}tm`, timer, slot.id);
    slot.timer = timer;
  }

  async get(deviceId: string): Promise<Device | undefined> {
    const json = (await this.#cmd('HGET', this.#key(deviceId), 'dev')) as string | null;
    return json === null ? undefined : (JSON.parse(json) as Device);
  }

  async list(query: ListQuery): Promise<DevicePage> {
    const p = this.#p;
    const needle = query.q?.toLowerCase();
    // the narrowest index the query names; the other filters are checked on each device
    const index = query.zone !== undefined ? `${p}zn:${query.zone}` : query.state !== undefined ? `${p}st:${query.state}` : query.silent === true ? `${p}sil` : `${p}ids`;
    const keep = (d: Device): boolean => deviceMatches(d, query, needle);
    const load = (ids: string[]): Promise<(Device | undefined)[]> => this.#devices(ids);
    const { items, more } = await this.#scanLex(index, query.after, query.limit, load, keep);
    return { items, total: await this.#deviceTotal(query, index, load, keep), lastId: more ? items[items.length - 1]!.deviceId : null };
  }

  async #deviceTotal(query: ListQuery, index: string, load: (ids: string[]) => Promise<(Device | undefined)[]>, keep: (d: Device) => boolean): Promise<number> {
    const filters = [query.zone, query.state, query.silent, query.q].filter((f) => f !== undefined).length;
    if (filters === 0) return Number((await this.#cmd('ZCARD', index)) ?? 0);
    if (filters === 1 && query.q === undefined) {
      if (query.silent === false) return Number((await this.#cmd('HGET', `${this.#p}n`, 'devices')) ?? 0) - Number(await this.#cmd('ZCARD', `${this.#p}sil`));
      return Number(await this.#cmd('ZCARD', index));
    }
    return (await this.#scanLex(index, undefined, Infinity, load, keep)).items.length;
  }

  async #devices(ids: string[]): Promise<(Device | undefined)[]> {
    const texts = await Promise.all(ids.map((id) => this.#cmd('HGET', this.#key(id), 'dev') as Promise<string | null>));
    return texts.map((t) => (t === null ? undefined : (JSON.parse(t) as Device)));
  }

  /**
   * Walks a sorted set of ids in byte order after `after`, loading each chunk, keeping what
   * `keep` accepts: up to `limit`, and whether more follow.
   */
  async #scanLex<T>(
    index: string,
    after: string | undefined,
    limit: number,
    load: (ids: string[]) => Promise<(T | undefined)[]>,
    keep: (t: T) => boolean,
  ): Promise<{ items: T[]; more: boolean }> {
    const items: T[] = [];
    let from = after === undefined ? '-' : `(${after}`;
    for (;;) {
      const ids = (await this.#cmd('ZRANGE', index, from, '+', 'BYLEX', 'LIMIT', 0, SCAN_CHUNK)) as string[];
      if (ids.length === 0) return { items, more: false };
      const loaded = await load(ids);
      for (const t of loaded) {
        if (t === undefined || !keep(t)) continue;
        if (items.length === limit) return { items, more: true };
        items.push(t);
      }
      if (ids.length < SCAN_CHUNK) return { items, more: false };
      from = `(${ids[ids.length - 1]!}`;
    }
  }

  async history(deviceId: string, limit: number): Promise<HistoryEntry[] | undefined> {
    if (Number(await this.#cmd('HEXISTS', this.#key(deviceId), 'dev')) === 0) return undefined;
    if (limit <= 0) return [];
    const entries = (await this.#cmd('LRANGE', `${this.#p}h:${deviceId}`, 0, limit - 1)) as string[];
    return entries.map((e) => JSON.parse(e) as HistoryEntry);
  }

  async markSilent(cutoff: number, limit: number, markedAt: string): Promise<DeviceEvent[]> {
    if (limit <= 0) return [];
    const ids = (await this.#cmd('ZRANGE', `${this.#p}bt`, '-inf', `(${cutoff}`, 'BYSCORE', 'LIMIT', 0, limit)) as string[];
    const outcomes = await this.#rounds(
      ids,
      (id) => id,
      (commit, slot) => {
        const current = slot.device;
        // another replica's sweep, or a message, may have come first
        if (current === undefined || current.silent || current.timestamp >= cutoff) return { item: null, outcome: () => [] };
        const item = this.#begin(commit, slot);
        const device = markSilent(current);
        const json = deviceJson(device);
        item.device = json;
        item.op('HSET', slot.key, 'dev', DEVICE);
        item.op('ZREM', `${this.#p}bt`, slot.id);
        item.op('ZADD', `${this.#p}sil`, 0, slot.id);
        item.count('silent', 1);
        slot.device = device;
        const k = commit.event();
        this.#log(item, k, 'silent', json);
        this.#enqueue(item, k, silentEvent(token(k), device), markedAt, json);
        const alarms = this.#alarms(commit, item, slot, onSilent(device, slot.alarms, this.#settings), markedAt, json);
        this.#finish(item, slot);
        return {
          item: commit.items.length - 1,
          outcome: (r): DeviceEvent[] => {
            const event = silentEvent(r.seqOf(k), device);
            event.wire.device = json;
            return [event, ...alarms.map((a) => a(r))];
          },
        };
      },
    );
    return bySeq(outcomes.flat());
  }

  async sweepAlarms(nowSeconds: number, limit: number, at: string): Promise<AlarmEvent[]> {
    if (this.#settings === null || limit <= 0) return [];
    const ids = (await this.#cmd('ZRANGE', `${this.#p}tm`, '-inf', nowSeconds, 'BYSCORE', 'LIMIT', 0, limit)) as string[];
    const outcomes = await this.#rounds(
      ids,
      (id) => id,
      (commit, slot) => {
        const device = slot.device;
        const changes = device === undefined ? [] : onTime(device, slot.alarms, this.#settings, nowSeconds);
        if (changes.length === 0) {
          // its timer is stale (another replica's settings, say): put it where the rules say
          const item = this.#begin(commit, slot);
          slot.timer = Number.NaN;
          this.#finish(item, slot);
          return { item: commit.items.length - 1, outcome: () => [] };
        }
        const item = this.#begin(commit, slot);
        const alarms = this.#alarms(commit, item, slot, changes, at, deviceJson(device!));
        this.#finish(item, slot);
        return { item: commit.items.length - 1, outcome: (r) => alarms.map((a) => a(r)) };
      },
    );
    return bySeq(outcomes.flat());
  }

  async getAlarm(alarmId: string): Promise<Alarm | undefined> {
    const json = (await this.#cmd('GET', `${this.#p}a:${alarmId}`)) as string | null;
    return json === null ? undefined : (JSON.parse(json) as Alarm);
  }

  async listAlarms(query: AlarmQuery): Promise<AlarmPage> {
    const p = this.#p;
    const index = query.deviceId !== undefined ? `${p}ad:${query.deviceId}` : query.status === 'active' ? `${p}ac` : `${p}aa`;
    const keep = (a: Alarm): boolean => alarmMatches(a, query);
    const after = query.after === undefined ? undefined : alarmMember(query.after.alarmId, query.after.raisedAt);
    const { items, more } = await this.#scanNewest(index, after, query.limit, keep);
    const exact = Object.entries(query).filter(([k, v]) => v !== undefined && k !== 'limit' && k !== 'after').length;
    const indexOnly = exact === 0 || (exact === 1 && (query.deviceId !== undefined || query.status === 'active'));
    const total = indexOnly ? Number(await this.#cmd('ZCARD', index)) : (await this.#scanNewest(index, undefined, Infinity, keep)).items.length;
    return { items, total, last: more ? items[items.length - 1]! : null };
  }

  /** Walks an alarm index newest first (SPEC §12 list order) after the member `after`. */
  async #scanNewest(index: string, after: string | undefined, limit: number, keep: (a: Alarm) => boolean): Promise<{ items: Alarm[]; more: boolean }> {
    const items: Alarm[] = [];
    let from = after === undefined ? '+' : `(${after}`;
    for (;;) {
      const members = (await this.#cmd('ZRANGE', index, from, '-', 'BYLEX', 'REV', 'LIMIT', 0, SCAN_CHUNK)) as string[];
      if (members.length === 0) return { items, more: false };
      const texts = (await this.#cmd('MGET', ...members.map((m) => `${this.#p}a:${alarmIdOf(m)}`))) as (string | null)[];
      for (const t of texts) {
        if (t === null) continue;
        const alarm = JSON.parse(t) as Alarm;
        if (!keep(alarm)) continue;
        if (items.length === limit) return { items, more: true };
        items.push(alarm);
      }
      if (members.length < SCAN_CHUNK) return { items, more: false };
      from = `(${members[members.length - 1]!}`;
    }
  }

  async acknowledgeAlarm(alarmId: string, note: string | null, at: string): Promise<AlarmUpdate> {
    return this.#operatorChange(alarmId, 'acknowledged', (alarm) => acknowledge(alarm, note, at), at);
  }

  async clearAlarm(alarmId: string, at: string): Promise<AlarmUpdate> {
    return this.#operatorChange(alarmId, 'cleared', (alarm) => clearByHand(alarm, at), at);
  }

  /** An operator's change of one alarm, decided on the alarm as it is when its device is read. */
  async #operatorChange(alarmId: string, transition: AlarmTransition, change: (alarm: Alarm) => Alarm | null, at: string): Promise<AlarmUpdate> {
    const first = await this.getAlarm(alarmId);
    if (first === undefined) return { kind: 'unknown' };
    // read again after the device (the script's guard covers what the device's hash holds; the
    // alarm changes only with it): the alarm as of that version
    let alarm: Alarm | undefined = first;
    const [outcome] = await this.#rounds(
      [first.deviceId],
      (id) => id,
      (commit, slot): { item: number | null; outcome: Pending<AlarmUpdate> } => {
        if (alarm === undefined) return { item: null, outcome: () => ({ kind: 'unknown' }) };
        const before = alarm;
        const changed = change(before);
        if (changed === null) return { item: null, outcome: () => ({ kind: 'unchanged', alarm: before }) };
        const item = this.#begin(commit, slot);
        if (transition === 'cleared') slot.alarms = suppress(slot.alarms, before.type);
        else slot.alarms = withActive(slot.alarms, changed);
        const deviceText = slot.device === undefined ? 'null' : deviceJson(slot.device);
        const pending = this.#alarmChanged(commit, item, slot, transition, changed, before, at, deviceText);
        this.#saveAlarms(item, slot);
        this.#finish(item, slot);
        return { item: commit.items.length - 1, outcome: (r) => ({ kind: 'changed', event: pending(r) }) };
      },
      undefined,
      async () => {
        alarm = await this.getAlarm(alarmId);
      },
    );
    return outcome!;
  }

  async summary(): Promise<StoreSummary> {
    const p = this.#p;
    const [counters, entries, neverSeen] = await Promise.all([
      this.#cmd('HGETALL', `${p}n`),
      this.#cmd('ZCARD', `${p}rg`),
      this.#cmd('ZCARD', `${p}ru`),
    ]);
    const n = new Map<string, number>();
    const pairs = flatPairs(counters);
    for (let i = 0; i + 1 < pairs.length; i += 2) n.set(String(pairs[i]), Number(pairs[i + 1]));
    const byState: Record<string, number> = {};
    for (const [k, v] of n) if (k.startsWith('s:') && v !== 0) byState[k.slice(2)] = v;
    const byType = {} as StoreSummary['alarms']['byType'];
    const bySeverity = {} as StoreSummary['alarms']['bySeverity'];
    let active = 0;
    for (const type of ['cover_open', 'battery_low', 'silent'] as const) {
      bySeverity[type] = { warning: n.get(`A:${type}:warning`) ?? 0, major: n.get(`A:${type}:major`) ?? 0, critical: n.get(`A:${type}:critical`) ?? 0 };
      byType[type] = bySeverity[type].warning + bySeverity[type].major + bySeverity[type].critical;
      active += byType[type];
    }
    return {
      devices: n.get('devices') ?? 0,
      byState,
      silent: n.get('silent') ?? 0,
      registry: { entries: Number(entries), neverSeen: Number(neverSeen) },
      alarms: { active, unacknowledged: n.get('unack') ?? 0, byType, bySeverity },
    };
  }

  async recentEvents(limit: number): Promise<DeviceEvent[]> {
    if (limit <= 0) return [];
    const entries = (await this.#cmd('XREVRANGE', `${this.#p}ev`, '+', '-', 'COUNT', limit)) as [string, unknown][];
    return entries.reverse().map(([id, fields]) => eventFromEntry(id, fields));
  }

  async putEntries(entries: readonly RegistryEntry[], options: { keepExisting?: boolean } = {}): Promise<RegistryWrite> {
    const keep = options.keepExisting === true;
    type Written = { kind: 'created' | 'updated' | 'unchanged'; event: MetaEvent | null };
    const written = await this.#rounds(
      entries,
      (e) => e.deviceId,
      (commit, slot, entry): { item: number | null; outcome: Pending<Written> } => {
        const before = slot.entry;
        if (before !== null && (keep || sameEntry(before, entry))) return { item: null, outcome: () => ({ kind: 'unchanged', event: null }) };
        const event = this.#metaChanged(commit, slot, entry);
        return { item: commit.items.length - 1, outcome: (r) => ({ kind: before === null ? 'created' : 'updated', event: event(r) }) };
      },
    );
    const result: RegistryWrite = { created: 0, updated: 0, unchanged: 0, events: [] };
    for (const w of written) {
      result[w.kind]++;
      if (w.event !== null) result.events.push(w.event);
    }
    result.events.sort((a, b) => a.seq - b.seq);
    return result;
  }

  async deleteEntry(deviceId: string): Promise<MetaEvent | null> {
    const [event] = await this.#rounds(
      [deviceId],
      (id) => id,
      (commit, slot): { item: number | null; outcome: Pending<MetaEvent | null> } => {
        if (slot.entry === null) return { item: null, outcome: () => null };
        const event = this.#metaChanged(commit, slot, null);
        return { item: commit.items.length - 1, outcome: event };
      },
    );
    return event!;
  }

  /** SPEC §11: an entry set (or deleted: null), its indexes, the device's meta, the event. */
  #metaChanged(commit: Commit, slot: Slot, entry: RegistryEntry | null): Pending<MetaEvent> {
    const p = this.#p;
    const id = slot.id;
    const before = slot.entry;
    const item = this.#begin(commit, slot);
    if (entry === null) {
      item.op('HDEL', slot.key, 'reg');
      item.op('ZREM', `${p}rg`, id);
      item.op('ZREM', `${p}rl`, id);
      if (slot.device === undefined) item.op('ZREM', `${p}ru`, id);
    } else {
      item.op('HSET', slot.key, 'reg', JSON.stringify(entry));
      item.op('ZADD', `${p}rg`, 0, id);
      if (entry.latitude === null) item.op('ZREM', `${p}rl`, id);
      else item.op('ZADD', `${p}rl`, 0, id);
      if (slot.device === undefined) item.op('ZADD', `${p}ru`, 0, id);
    }
    const oldZone = before?.zone ?? null;
    const newZone = entry?.zone ?? null;
    if (oldZone !== newZone) {
      if (oldZone !== null) item.op('ZREM', `${p}rz:${oldZone}`, id);
      if (newZone !== null) item.op('ZADD', `${p}rz:${newZone}`, 0, id);
    }
    let device: Device | null = null;
    let json = 'null';
    if (slot.device !== undefined) {
      const deviceZone = slot.device.meta?.zone ?? null;
      device = withMeta(slot.device, entry);
      json = deviceJson(device);
      item.device = json;
      item.op('HSET', slot.key, 'dev', DEVICE);
      if (deviceZone !== newZone) {
        if (deviceZone !== null) item.op('ZREM', `${p}zn:${deviceZone}`, id);
        if (newZone !== null) item.op('ZADD', `${p}zn:${newZone}`, 0, id);
      }
      slot.device = device;
    }
    slot.entry = entry;
    const k = commit.event();
    this.#log(item, k, 'meta', storedMeta(id, json, entry));
    return (r) => {
      const event = metaEvent(r.seqOf(k), id, device, entry);
      event.wire.device = json;
      return event;
    };
  }

  async getEntry(deviceId: string): Promise<RegistryEntry | undefined> {
    const json = (await this.#cmd('HGET', this.#key(deviceId), 'reg')) as string | null;
    return json === null ? undefined : (JSON.parse(json) as RegistryEntry);
  }

  async listEntries(query: RegistryQuery): Promise<RegistryPage> {
    const p = this.#p;
    const index = query.zone !== undefined ? `${p}rz:${query.zone}` : query.seen === false ? `${p}ru` : query.located === true ? `${p}rl` : `${p}rg`;
    const keep = (i: { entry: RegistryEntry; device: Device | null }): boolean => entryMatches(i.entry, i.device, query);
    const load = async (ids: string[]) => {
      const rows = await Promise.all(ids.map((id) => this.#cmd('HMGET', this.#key(id), 'reg', 'dev') as Promise<(string | null)[]>));
      return rows.map(([reg, dev]) =>
        reg === null || reg === undefined ? undefined : { entry: JSON.parse(reg) as RegistryEntry, device: dev === null || dev === undefined ? null : (JSON.parse(dev) as Device) },
      );
    };
    const { items, more } = await this.#scanLex(index, query.after, query.limit, load, keep);
    const filters = [query.zone, query.seen, query.located === true ? true : undefined].filter((f) => f !== undefined).length;
    const indexOnly = filters === 0 || (filters === 1 && query.seen !== true);
    const total = indexOnly ? Number(await this.#cmd('ZCARD', index)) : (await this.#scanLex(index, undefined, Infinity, load, keep)).items.length;
    return { items, total, lastId: more ? items[items.length - 1]!.entry.deviceId : null };
  }

  // --- the outbox (SPEC §5)

  async dueDeliveries(url: string, now: number, limit: number): Promise<Delivery[]> {
    if (limit <= 0) return [];
    const members = (await this.#cmd('ZRANGE', `${this.#p}ob:${url}`, '-inf', now, 'BYSCORE', 'LIMIT', 0, limit)) as string[];
    const rows = await Promise.all(members.map((m) => this.#cmd('HMGET', `${this.#p}o:${m}`, 'url', 'seq', 'body', 'attempts', 'next') as Promise<(string | null)[]>));
    const due: Delivery[] = [];
    for (const [i, [u, seq, body, attempts, next]] of rows.entries()) {
      if (u === null || u === undefined) continue; // settled meanwhile
      due.push({ id: Number(members[i]), url: u, seq: Number(seq), body: body!, attempts: Number(attempts), nextAttemptAt: Number(next) });
    }
    return due;
  }

  async claimDeliveries(url: string, now: number, limit: number, leaseMs: number): Promise<Delivery[]> {
    if (limit <= 0) return [];
    const rows = (await runScript(this.#c, CLAIM_SCRIPT, [], [this.#p, url, String(now), String(limit), String(now + leaseMs), this.#claimer])) as (string | null)[][];
    return rows.map(([member, u, seq, body, attempts, next]) => ({
      id: Number(member),
      url: u!,
      seq: Number(seq),
      body: body!,
      attempts: Number(attempts),
      nextAttemptAt: Number(next),
    }));
  }

  async nextDueAt(url: string): Promise<number | null> {
    const first = flatPairs(await this.#cmd('ZRANGE', `${this.#p}ob:${url}`, 0, 0, 'WITHSCORES'));
    return first.length === 0 ? null : Number(first[1]);
  }

  async deliveryDone(id: number): Promise<void> {
    await runScript(this.#c, OUTBOX_SCRIPT, [], [this.#p, deliveryMember(id), this.#claimer, 'done']);
  }

  async deliveryRetry(id: number, attempts: number, nextAttemptAt: number): Promise<void> {
    await runScript(this.#c, OUTBOX_SCRIPT, [], [this.#p, deliveryMember(id), this.#claimer, 'retry', String(attempts), String(nextAttemptAt)]);
  }

  async pendingDeliveries(): Promise<number> {
    const urls = (await this.#cmd('SMEMBERS', `${this.#p}ou`)) as string[];
    const counts = await Promise.all(urls.map((u) => this.#cmd('ZCARD', `${this.#p}ob:${u}`)));
    return counts.reduce<number>((sum, n) => sum + Number(n), 0);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#closeClient?.();
  }

  /**
   * The alarm timers follow the alarm settings: when these changed since the timers were set
   * (or alarms were off), every open cover's timer is set again.
   */
  async #checkTimers(): Promise<void> {
    const p = this.#p;
    const want = this.#settings === null ? 'off' : JSON.stringify(this.#settings);
    if ((await this.#cmd('GET', `${p}as`)) === want) return;
    if (this.#settings !== null) {
      for (let from = '-'; ;) {
        const ids = (await this.#cmd('ZRANGE', `${p}st:open`, from, '+', 'BYLEX', 'LIMIT', 0, SCAN_CHUNK)) as string[];
        if (ids.length === 0) break;
        await this.#rounds(
          ids,
          (id) => id,
          (commit, slot) => {
            const item = this.#begin(commit, slot);
            slot.timer = Number.NaN;
            this.#finish(item, slot);
            return { item: commit.items.length - 1, outcome: () => null };
          },
        );
        if (ids.length < SCAN_CHUNK) break;
        from = `(${ids[ids.length - 1]!}`;
      }
    }
    await this.#cmd('SET', `${p}as`, want);
  }
}

/** The seq's token where an event object needs a number before the script has handed it out (webhook bodies). */
function token(k: number): number {
  return seqToken(k) as unknown as number;
}

function bySeq<T extends { seq: number }>(events: T[]): T[] {
  return events.sort((a, b) => a.seq - b.seq);
}

/**
 * The devices of a batch that need their history read: where a message is older than what the
 * device (as read, then as the batch's messages before it leave it) holds, or of its timestamp in
 * another state (a late message, or a redelivery the history may hold: rules.applyWithHistory).
 */
function lateOrRedelivered(items: readonly BatchItem[], slots: Map<string, Slot>): Set<string> {
  const need = new Set<string>();
  const newest = new Map<string, { timestamp: number; state: string }>();
  for (const { record } of items) {
    const id = record.deviceId;
    const current = newest.get(id) ?? slots.get(id)!.device;
    if (current !== undefined && (record.timestamp < current.timestamp || (record.timestamp === current.timestamp && record.state !== current.state))) need.add(id);
    if (current === undefined || record.timestamp > current.timestamp || (record.timestamp === current.timestamp && record.state !== current.state)) {
      newest.set(id, { timestamp: record.timestamp, state: record.state });
    }
  }
  return need;
}

/**
 * A reply of pairs as one flat list: RESP2 gives `[k, v, k, v]`, RESP3 (node-redis's default)
 * `[[k, v], …]` for scores and a map for hashes.
 */
function flatPairs(reply: unknown): unknown[] {
  if (reply instanceof Map) return [...reply].flat();
  if (Array.isArray(reply)) return reply.flat();
  if (reply !== null && typeof reply === 'object') return Object.entries(reply).flat();
  return [];
}

/** A stream entry (`<seq>-0`, its fields) as the event it records. */
export function eventFromEntry(id: string, fields: unknown): DeviceEvent {
  const f = new Map<string, string>();
  const pairs = flatPairs(fields);
  for (let i = 0; i + 1 < pairs.length; i += 2) f.set(String(pairs[i]), String(pairs[i + 1]));
  const seq = Number(id.slice(0, id.indexOf('-')));
  const kind = f.get('k') as EventKind;
  const stored = f.get('j')!;
  const event = eventFromStored(seq, kind, f.get('p') ?? null, f.get('c') === '1', stored);
  if (event.kind === 'update' || event.kind === 'silent') event.wire.device = stored;
  return event;
}

/**
 * Settles a delivery: done (deleted) or retry (attempts, next time, the claim released); nothing
 * when it is gone already, or when another replica holds its claim now (this one's claim ran out
 * during its attempt: the other's attempt settles it).
 */
const OUTBOX_SCRIPT = `
local key = ARGV[1] .. 'o:' .. ARGV[2]
local row = redis.call('HMGET', key, 'url', 'owner')
local url = row[1]
if not url then return 0 end
if row[2] and row[2] ~= ARGV[3] then return 0 end
if ARGV[4] == 'done' then
  redis.call('ZREM', ARGV[1] .. 'ob:' .. url, ARGV[2])
  redis.call('DEL', key)
else
  redis.call('HSET', key, 'attempts', ARGV[5], 'next', ARGV[6])
  redis.call('HDEL', key, 'owner')
  redis.call('ZADD', ARGV[1] .. 'ob:' .. url, ARGV[6], ARGV[2])
end
return 1
`;

/**
 * SPEC §8: takes a URL's due deliveries for one replica: each is put out of the due range until
 * the lease ends (its score; its own `next` stays what the schedule said), read and returned.
 */
const CLAIM_SCRIPT = `
local due = redis.call('ZRANGE', ARGV[1] .. 'ob:' .. ARGV[2], '-inf', ARGV[3], 'BYSCORE', 'LIMIT', 0, tonumber(ARGV[4]))
local out = {}
for _, member in ipairs(due) do
  local row = redis.call('HMGET', ARGV[1] .. 'o:' .. member, 'url', 'seq', 'body', 'attempts', 'next')
  if row[1] then
    redis.call('ZADD', ARGV[1] .. 'ob:' .. ARGV[2], ARGV[5], member)
    redis.call('HSET', ARGV[1] .. 'o:' .. member, 'owner', ARGV[6])
    out[#out + 1] = { member, row[1], row[2], row[3], row[4], row[5] }
  end
end
return out
`;

/**
 * The client, with its failures to reach Redis (a closed or lost connection, a server still
 * loading its data) as StoreUnavailableError: the API answers 503 for them. Redis's answers to
 * the command itself (NOSCRIPT, a wrong type) stay what they are.
 */
function unavailableOnFailure(client: RedisCommander): RedisCommander {
  return {
    sendCommand: (args) =>
      client.sendCommand(args).catch((err: unknown) => {
        const e = err as Error;
        const reply = e?.constructor?.name === 'ErrorReply' || e?.constructor?.name === 'SimpleError' || e?.constructor?.name === 'BlobError';
        if (reply && !e.message.startsWith('LOADING')) throw err;
        throw new StoreUnavailableError(`Redis cannot be reached: ${e?.message ?? String(err)}`, { cause: err });
      }),
  };
}

/** The hashes of the devices a write touches (v dev al cl reg each), in one call. */
const READ_SCRIPT = `
local out = {}
for i, key in ipairs(ARGV) do
  out[i] = redis.call('HMGET', key, 'v', 'dev', 'al', 'cl', 'reg')
end
return out
`;

/** The events an outcome of #rounds carries: a StoreOutcome, an event list, an AlarmUpdate, a RegistryWrite's parts. */
function eventsOf(outcome: unknown): DeviceEvent[] {
  if (outcome === null || typeof outcome !== 'object') return [];
  if (Array.isArray(outcome)) return outcome.filter((e): e is DeviceEvent => typeof (e as DeviceEvent)?.seq === 'number');
  const o = outcome as { kind?: string; event?: DeviceEvent | null; alarms?: DeviceEvent[]; seq?: number };
  if (typeof o.seq === 'number' && 'wire' in o) return [o as DeviceEvent];
  const events: DeviceEvent[] = [];
  if (o.event != null) events.push(o.event);
  if (o.alarms !== undefined) events.push(...o.alarms);
  return events;
}

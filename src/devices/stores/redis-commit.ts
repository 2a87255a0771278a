import { createHash, randomBytes } from 'node:crypto';

// SPEC §8: the one server-side script through which every write of the Redis store goes.
//
// The rules of SPEC §4 and §12 stay in TypeScript (rules.ts, alarms.ts: one language, one table of
// cases for every store). The store reads what a message needs, decides with those functions,
// and hands Redis a commit: for each message an item, guarded by its device's version, with the
// commands that store its effect. The script checks every guard first, then runs the commands
// of the items whose device did not change since it was read, in order, handing out the seqs
// as it goes; an item whose device changed is skipped, and so is every later item of that device.
// The store reads those devices again and decides again. So when two replicas receive the same
// message, one stores it and emits its event; the other finds it a duplicate (optimistic
// concurrency, the compare-and-set of a version, in one script).
//
// A seq is only known inside the script, yet the commands carry it: a stream entry's id, an
// alarm's id (`a<seq>`), a webhook body's `seq`. The store writes a token for each (Pending
// below), and the script fills in the seq. Tokens are control characters around a number, which
// no JSON text and no key the store builds can hold otherwise (JSON escapes control characters;
// device ids, zones and alarm ids refuse them).

/** How a command's argument names the seq of the commit's k-th event: `\x01k\x01`, or 16 digits zero-padded: `\x02k\x02`. */
const SEQ = '\x01';
const PADDED = '\x02';
/** An argument that stands for the item's device JSON (CommitItem.device), sent once for its several uses. */
export const DEVICE = '\x03';

export const COMMIT_SCRIPT = `
local commit = cjson.decode(ARGV[1])
local seqKey = commit[1]
local items = commit[2]
local countsKey = commit[3]
-- the store this process opened is still the one in Redis (not lost with Redis's data, nor flushed)
if redis.call('GET', commit[4]) ~= commit[5] then
  return redis.error_reply('WB_STORE_GONE the store this bridge opened is no longer in Redis (its data was lost or flushed): restart every replica')
end
local seq = tonumber(redis.call('GET', seqKey) or '0')
local first = seq
local run = {}
local version = {}
local dead = {}
local skipped = {}
for i, item in ipairs(items) do
  local key = item[1]
  local expect = tonumber(item[2])
  local ok = false
  if not dead[key] then
    local current = version[key]
    if current == nil then current = tonumber(redis.call('HGET', key, 'v') or '0') end
    if current == expect then
      ok = true
      version[key] = expect + 1
    else
      dead[key] = true
    end
  end
  if ok then run[#run + 1] = item else skipped[#skipped + 1] = i end
end
-- Redis does not undo a script that fails half-way (a bug, a key of the wrong type): what is
-- known once the guards are checked (the seqs, the counters) is written first, so that a failing
-- command can never leave the seq behind the stream, which would fail every later XADD. The
-- items before the failing command stay written; its own counters count it as if it had run
local assigned = {}
local counts = {}
for _, item in ipairs(run) do
  local firstK = tonumber(item[3])
  for k = firstK, firstK + tonumber(item[4]) - 1 do
    seq = seq + 1
    assigned[k] = seq
  end
  for _, op in ipairs(item[5]) do
    if op[2] == 'N' then counts[op[3]] = (counts[op[3]] or 0) + tonumber(op[4]) end
  end
end
if seq ~= first then redis.call('SET', seqKey, seq) end
for field, delta in pairs(counts) do
  if delta ~= 0 then redis.call('HINCRBY', countsKey, field, delta) end
end
local function fill(s)
  s = string.gsub(s, '\\1(%d+)\\1', function(k) return string.format('%d', assigned[tonumber(k)]) end)
  return (string.gsub(s, '\\2(%d+)\\2', function(k) return string.format('%016d', assigned[tonumber(k)]) end))
end
for _, item in ipairs(run) do
  local ops = item[5]
  local device = item[6]
  for o = 1, #ops do
    local op = ops[o]
    local flags = op[1]
    -- N: a counter's delta, summed and written above
    if op[2] ~= 'N' then
      -- flags: t, the op holds seq tokens to fill in; d, an argument that is just \\3 is the item's device JSON
      if flags ~= '' then
        for a = 2, #op do
          if op[a] == '\\3' then op[a] = device elseif string.find(flags, 't', 1, true) then op[a] = fill(op[a]) end
        end
      end
      redis.call(unpack(op, 2))
    end
  end
end
return { first, skipped }
`;

/** What sends a command and returns its reply (node-redis's sendCommand). */
export interface RedisCommander {
  sendCommand(args: string[]): Promise<unknown>;
}

const sha1 = (script: string): string => createHash('sha1').update(script).digest('hex');
const shas = new Map<string, string>();

/**
 * Runs a script by its SHA1 (EVALSHA); when the server does not know it (a restart, SCRIPT
 * FLUSH, a failover), by its text (EVAL), which loads it again.
 */
export async function runScript(client: RedisCommander, script: string, keys: readonly string[], args: readonly string[]): Promise<unknown> {
  let sha = shas.get(script);
  if (sha === undefined) shas.set(script, (sha = sha1(script)));
  const rest = [String(keys.length), ...keys, ...args];
  try {
    return await client.sendCommand(['EVALSHA', sha, ...rest]);
  } catch (err) {
    if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err;
    return client.sendCommand(['EVAL', script, ...rest]);
  }
}

// The tokens the store writes, printable and unguessable (a payload cannot hold them by chance
// or on purpose), turned into the script's control-character tokens by seal().
const NONCE = randomBytes(12).toString('base64url').replaceAll(/[-_]/g, 'x');
const TOKEN = new RegExp(`~${NONCE}([~+])(\\d+)~`, 'g');

/** The token of the commit's k-th event's seq, as text. */
export function seqToken(k: number): string {
  return `~${NONCE}~${k}~`;
}

/** The same, zero-padded to 16 digits where the script writes it (sorted sets ordered by text). */
export function paddedSeqToken(k: number): string {
  return `~${NONCE}+${k}~`;
}

/** Whether a text holds a token (an alarm id of a commit not run yet). */
export function hasToken(text: string): boolean {
  return text.includes(NONCE);
}

/** The text with each token put as the script reads it. */
function seal(text: string): string {
  return text.includes(NONCE) ? text.replace(TOKEN, (_, kind: string, k: string) => (kind === '~' ? `${SEQ}${k}${SEQ}` : `${PADDED}${k}${PADDED}`)) : text;
}

/** The text with each token replaced by its seq (what the script wrote, for the objects the store returns). */
export function fillTokens(text: string, seqOf: (k: number) => number): string {
  if (!text.includes(NONCE)) return text;
  return text.replace(TOKEN, (_, kind: string, k: string) => {
    const seq = String(seqOf(Number(k)));
    return kind === '~' ? seq : seq.padStart(16, '0');
  });
}

/** One guarded part of a commit: the writes of one message (or one change) to one device. */
export class CommitItem {
  readonly ops: string[][] = [];
  events = 0;
  /** The item's device JSON, sent once: an argument that is DEVICE stands for it. */
  device: string | null = null;
  /** Whether an op of the item writes its hash already (the version goes with it). */
  #versioned = false;
  constructor(
    /** The device's hash, whose `v` guards the item. */
    readonly key: string,
    /** The version the item was decided on. */
    readonly expect: number,
    /** The commit's number of this item's first event. */
    readonly firstK: number,
  ) {}

  /**
   * A command to run when the guard holds; its arguments may hold tokens. Kept as the script
   * takes it: a flag ('1': it holds tokens, to fill in), then the command and its arguments.
   */
  op(...args: (string | number)[]): void {
    let tokens = false;
    let device = false;
    const op = [''];
    for (const a of args) {
      if (typeof a === 'number') {
        op.push(String(a));
        continue;
      }
      if (a === DEVICE) device = true;
      const sealed = seal(a);
      if (sealed !== a) tokens = true;
      op.push(sealed);
    }
    op[0] = `${tokens ? 't' : ''}${device ? 'd' : ''}`;
    // the guard's version goes with the item's first write to its hash: no command of its own
    if (!this.#versioned && args[0] === 'HSET' && args[1] === this.key) {
      op.push('v', String(this.expect + 1));
      this.#versioned = true;
    }
    this.ops.push(op);
  }

  /** A counter of the hash `counters` moves by `delta` (summed in the script, written once per commit). */
  count(field: string, delta: number): void {
    this.ops.push(['', 'N', field, String(delta)]);
  }

  /** The ops as sent: with the version, where no op wrote the hash. */
  finished(): string[][] {
    return this.#versioned ? this.ops : [...this.ops, ['', 'HSET', this.key, 'v', String(this.expect + 1)]];
  }
}

export interface CommitResult {
  /** The items the script skipped (their device changed since it was read), by index. */
  skipped: ReadonlySet<number>;
  /** The seq the script gave the commit's k-th event (only for the items it ran). */
  seqOf(k: number): number;
}

/**
 * A commit under construction: items in order, each event numbered across the commit. begin()
 * starts an item; event() reserves the next event number for the current one.
 */
export class Commit {
  readonly items: CommitItem[] = [];
  #k = 0;

  begin(key: string, expect: number): CommitItem {
    const item = new CommitItem(key, expect, this.#k + 1);
    this.items.push(item);
    return item;
  }

  /** The next event's number (k), for the item begun last. */
  event(): number {
    this.items[this.items.length - 1]!.events++;
    return ++this.#k;
  }

  /** The number the next event() will give. */
  get nextK(): number {
    return this.#k + 1;
  }

  /** `idKey` must still hold `storeId`, or the script refuses (WB_STORE_GONE). */
  async run(client: RedisCommander, keys: { seq: string; counts: string; id: string }, storeId: string): Promise<CommitResult> {
    if (this.items.length === 0) return { skipped: new Set(), seqOf: () => Number.NaN };
    // one JSON argument, every value a string (Redis's cjson decodes it in C; no number is
    // rounded): far cheaper to send than an argument per value
    const items = this.items.map((item) => [item.key, String(item.expect), String(item.firstK), String(item.events), item.finished(), item.device ?? '']);
    const args = [JSON.stringify([keys.seq, items, keys.counts, keys.id, storeId])];
    const [first, skippedList] = (await runScript(client, COMMIT_SCRIPT, [], args)) as [number, number[] | Record<string, never>];
    // an empty Lua table comes back as an empty array (as a map, were it ever one: no index)
    const skipped = new Set(Array.isArray(skippedList) ? skippedList.map((i) => Number(i) - 1) : []);
    const seqs = new Map<number, number>();
    let seq = Number(first);
    for (const [i, item] of this.items.entries()) {
      if (skipped.has(i)) continue;
      for (let k = item.firstK; k < item.firstK + item.events; k++) seqs.set(k, ++seq);
    }
    return {
      skipped,
      seqOf: (k) => {
        const s = seqs.get(k);
        if (s === undefined) throw new Error(`no seq for event ${k} of a commit: its item was skipped`);
        return s;
      },
    };
  }
}

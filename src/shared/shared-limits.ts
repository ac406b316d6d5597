// A key's request rate, concurrency, token rate and token budgets, counted in Redis so that they
// hold across every instance of a fleet together (issue 13), by the same rules as one gateway's
// (src/auth/limits.ts, src/auth/budgets.ts), each check one Lua script on Redis's clock:
// - the request rate is one token bucket per key; `max_concurrent` a hash of leases (as the
//   slots are), renewed at each heartbeat, so a dead instance's jobs stop counting when theirs
//   run out;
// - budgets: per key, the settled tokens of the UTC day and month, and a hash of reservations
//   (each in-flight job's hold and what it has consumed so far, with an expiry its instance
//   renews). Admission reserves atomically; a stream sends what it consumed every quarter second
//   and learns what the rest of the fleet has used, so a fleet-wide crossing cuts it; settling
//   adds the real count. Budgets live as long as Redis does (restarts of every instance
//   included); a key Redis has no month for yet starts from this instance's ledger.
// While Redis is unreachable each instance enforces each key's limits on its own (as one
// gateway), and keeps what it settled to add when Redis answers again.
import type { KeyLimits } from '../auth/limits.js';
import { concurrencyLimited, KeyLimiter, rateLimited } from '../auth/limits.js';
import type { Budgets, Charge, KeyUsage } from '../auth/budgets.js';
import { exhaustedError as exhausted, noRoomLeft, reservedOut, TokenBudgets, tokenRateLimited, usedByKey } from '../auth/budgets.js';
import type { TokenLimits } from '../config/schema.js';
import { GatewayError } from '../errors.js';
import { dayOf, monthOf } from '../usage/period.js';
import type { UsageRow } from '../usage/store.js';
import type { SharedState } from './connection.js';

/** KEYS: rate bucket, concurrency leases. ARGV: requests per minute|'', burst|'', max concurrent|'', lease id, lease ms. */
const ADMIT_KEY = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local maxc = tonumber(ARGV[3])
if maxc then
  local held = redis.call('HGETALL', KEYS[2])
  local n = 0
  for i = 1, #held, 2 do
    if tonumber(held[i + 1]) <= now then redis.call('HDEL', KEYS[2], held[i]) else n = n + 1 end
  end
  if n >= maxc then return {1, tostring(n)} end
end
local rpm = tonumber(ARGV[1])
if rpm then
  local cap = tonumber(ARGV[2]) or rpm
  local perMs = rpm / 60000
  local tokens = tonumber(redis.call('HGET', KEYS[1], 'tokens') or tostring(cap))
  local at = tonumber(redis.call('HGET', KEYS[1], 'at') or tostring(now))
  tokens = math.min(cap, tokens + (now - at) * perMs)
  if tokens < 1 then return {2, tostring(math.ceil((1 - tokens) / perMs))} end
  redis.call('HSET', KEYS[1], 'tokens', string.format('%.17g', tokens - 1), 'at', now)
  redis.call('PEXPIRE', KEYS[1], math.ceil(cap / perMs) * 2 + 1000)
end
if maxc then
  redis.call('HSET', KEYS[2], ARGV[4], now + tonumber(ARGV[5]))
  redis.call('PEXPIRE', KEYS[2], tonumber(ARGV[5]) * 2)
end
return {0, ''}
`;

/** KEYS: leases. ARGV: lease ms, ids...: renew this instance's leases (of any kind kept as id -> expiry). */
const RENEW_LEASES = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for i = 2, #ARGV do
  if redis.call('HEXISTS', KEYS[1], ARGV[i]) == 1 then redis.call('HSET', KEYS[1], ARGV[i], now + tonumber(ARGV[1])) end
end
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[1]) * 2)
return 1
`;

// Budgets. The key's hash: day, dayUsed, month, monthUsed, level, at. Its reservations hash:
// id -> "held,consumed,expiry". Unseeded (no month yet): answered so the instance seeds it.
const BUDGET_COMMON = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function roll(today, month)
  if redis.call('HGET', KEYS[1], 'day') ~= today then redis.call('HSET', KEYS[1], 'day', today, 'dayUsed', 0) end
  if redis.call('HGET', KEYS[1], 'month') ~= month then redis.call('HSET', KEYS[1], 'month', month, 'monthUsed', 0) end
end
local function reservations(except)
  local all = redis.call('HGETALL', KEYS[2])
  local held, consumed = 0, 0
  for i = 1, #all, 2 do
    local _, _, h, c, e = string.find(all[i + 1], '^([^,]*),([^,]*),([^,]*)$')
    if tonumber(e) <= now then redis.call('HDEL', KEYS[2], all[i])
    elseif all[i] ~= except then
      held = held + tonumber(h)
      consumed = consumed + tonumber(c)
    end
  end
  return held, consumed
end
local function used()
  return tonumber(redis.call('HGET', KEYS[1], 'dayUsed') or '0'), tonumber(redis.call('HGET', KEYS[1], 'monthUsed') or '0')
end
`;

/**
 * KEYS: budget, reservations. ARGV: today, month, per day|'', per month|'', per minute|'',
 * prompt estimate, output estimate, reservation id, lease ms, seeded month (when seeding).
 * Returns {verdict, ...}: ok reserved dayUsed monthUsed othersConsumed | spent day|month |
 * reserved_out left | no_room left heldByOthers | rate waitS | unseeded.
 */
const BUDGET_ADMIT = `${BUDGET_COMMON}
if redis.call('HEXISTS', KEYS[1], 'month') == 0 then return {'unseeded'} end
roll(ARGV[1], ARGV[2])
local perDay, perMonth, perMinute = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local prompt, output = tonumber(ARGV[6]), tonumber(ARGV[7])
local held, consumed = reservations('')
local dayUsed, monthUsed = used()
local function over(limit, x) return limit ~= nil and x >= limit end
local function remaining(limit, x) if limit == nil then return -1 end return math.max(0, limit - x) end
local dayOver, monthOver = over(perDay, dayUsed + held), over(perMonth, monthUsed + held)
if dayOver or monthOver then
  if not over(perDay, dayUsed) and not over(perMonth, monthUsed) then
    local l1, l2 = remaining(perDay, dayUsed), remaining(perMonth, monthUsed)
    local left = l1
    if left < 0 or (l2 >= 0 and l2 < left) then left = l2 end
    return {'reserved_out', tostring(left)}
  end
  if monthOver or perDay == nil then return {'spent', 'month'} end
  return {'spent', 'day'}
end
local level = nil
if perMinute then
  level = tonumber(redis.call('HGET', KEYS[1], 'level') or tostring(perMinute))
  local at = tonumber(redis.call('HGET', KEYS[1], 'at') or tostring(now))
  level = math.min(perMinute, level + (now - at) * perMinute / 60000)
  redis.call('HSET', KEYS[1], 'level', string.format('%.17g', level), 'at', now)
  if level <= 0 then return {'rate', tostring(math.max(1, math.ceil((1 - level) * 60 / perMinute)))} end
end
local estimate = prompt + output
local l1, l2 = remaining(perDay, dayUsed + held), remaining(perMonth, monthUsed + held)
local left = l1
if left < 0 or (l2 >= 0 and l2 < left) then left = l2 end
local reserved = estimate
if left >= 0 and left < reserved then reserved = left end
if output > 0 and math.max(0, reserved - prompt) == 0 and left >= 0 then return {'no_room', tostring(left), tostring(held)} end
redis.call('HSET', KEYS[2], ARGV[8], reserved .. ',' .. prompt .. ',' .. (now + tonumber(ARGV[9])))
redis.call('PEXPIRE', KEYS[2], tonumber(ARGV[9]) * 2)
if level then redis.call('HSET', KEYS[1], 'level', string.format('%.17g', level - estimate)) end
return {'ok', tostring(reserved), tostring(dayUsed), tostring(monthUsed), tostring(consumed)}
`;

/** KEYS: budget, reservations. ARGV: today, month, id, held, consumed, lease ms. What the others use. */
const BUDGET_SYNC = `${BUDGET_COMMON}
roll(ARGV[1], ARGV[2])
if redis.call('HEXISTS', KEYS[2], ARGV[3]) == 1 then
  redis.call('HSET', KEYS[2], ARGV[3], ARGV[4] .. ',' .. ARGV[5] .. ',' .. (now + tonumber(ARGV[6])))
end
local _, consumed = reservations(ARGV[3])
local dayUsed, monthUsed = used()
return {tostring(dayUsed), tostring(monthUsed), tostring(consumed)}
`;

/** KEYS: budget, reservations. ARGV: today, month, id (or ''), total, estimate, rate limited (1|0), day of the usage. */
const BUDGET_SETTLE = `${BUDGET_COMMON}
roll(ARGV[1], ARGV[2])
if ARGV[3] ~= '' then redis.call('HDEL', KEYS[2], ARGV[3]) end
local total = tonumber(ARGV[4])
if ARGV[7] == ARGV[1] then redis.call('HINCRBY', KEYS[1], 'dayUsed', total) end
if string.sub(ARGV[7], 1, 7) == ARGV[2] then redis.call('HINCRBY', KEYS[1], 'monthUsed', total) end
if ARGV[6] == '1' and redis.call('HEXISTS', KEYS[1], 'level') == 1 then
  redis.call('HSET', KEYS[1], 'level', string.format('%.17g', tonumber(redis.call('HGET', KEYS[1], 'level')) - (total - tonumber(ARGV[5]))))
end
redis.call('PEXPIRE', KEYS[1], 40 * 86400 * 1000)
return 1
`;

/** KEYS: budget. ARGV: today, month, day used, month used: only when Redis has no month for the key. */
const BUDGET_SEED = `
if redis.call('HEXISTS', KEYS[1], 'month') == 1 then return 0 end
redis.call('HSET', KEYS[1], 'day', ARGV[1], 'dayUsed', ARGV[3], 'month', ARGV[2], 'monthUsed', ARGV[4])
redis.call('PEXPIRE', KEYS[1], 40 * 86400 * 1000)
return 1
`;

type Strings = string[];

interface LimitCommands {
  ogwAdmitKey(...args: (string | number)[]): Promise<[number, string]>;
  ogwRenewLeases(...args: (string | number)[]): Promise<number>;
  ogwBudgetAdmit(...args: (string | number)[]): Promise<Strings>;
  ogwBudgetSync(...args: (string | number)[]): Promise<Strings>;
  ogwBudgetSettle(...args: (string | number)[]): Promise<number>;
  ogwBudgetSeed(...args: (string | number)[]): Promise<number>;
}

function commands(shared: SharedState): LimitCommands {
  const c = shared.client;
  const define = (name: string, keys: number, lua: string) => {
    if (!(name in c)) c.defineCommand(name, { numberOfKeys: keys, lua });
  };
  define('ogwAdmitKey', 2, ADMIT_KEY);
  define('ogwRenewLeases', 1, RENEW_LEASES);
  define('ogwBudgetAdmit', 2, BUDGET_ADMIT);
  define('ogwBudgetSync', 2, BUDGET_SYNC);
  define('ogwBudgetSettle', 2, BUDGET_SETTLE);
  define('ogwBudgetSeed', 1, BUDGET_SEED);
  return c as unknown as LimitCommands;
}

/** The key limiter's fleet-wide twin: the same 429s, counted in Redis. */
export class SharedKeyLimiter {
  private readonly local = new KeyLimiter();
  private readonly cmd: LimitCommands;
  /** this instance's concurrency leases, by key */
  private readonly leases = new Map<string, Set<string>>();
  private next = 0;

  constructor(private readonly shared: SharedState) {
    this.cmd = commands(shared);
    shared.onTick(() => this.renew());
  }

  async admit(name: string, limits: KeyLimits): Promise<() => void> {
    if (limits.requestsPerMinute === undefined && limits.maxConcurrent === undefined) return () => {};
    if (!this.shared.up) return this.local.admit(name, limits);
    const id = `${this.shared.instance}:${(this.next++).toString(36)}`;
    const k = this.shared.key(`key:${name}:`);
    let verdict: number;
    let detail: string;
    try {
      [verdict, detail] = await this.cmd.ogwAdmitKey(`${k}rate`, `${k}jobs`, limits.requestsPerMinute ?? '', limits.burst ?? '', limits.maxConcurrent ?? '', id, this.shared.opts.leaseMs);
    } catch {
      return this.local.admit(name, limits);
    }
    if (Number(verdict) === 1) throw concurrencyLimited(name, detail);
    if (Number(verdict) === 2) throw rateLimited(name, limits.requestsPerMinute!, Math.max(1, Math.ceil(Number(detail) / 1000)));
    if (limits.maxConcurrent === undefined) return () => {};
    let mine = this.leases.get(name);
    if (!mine) {
      mine = new Set();
      this.leases.set(name, mine);
    }
    mine.add(id);
    let done = false;
    return () => {
      if (done) return;
      done = true;
      mine.delete(id);
      if (this.shared.up) void this.shared.client.hdel(`${k}jobs`, id).catch(() => {});
    };
  }

  private renew(): void {
    for (const [name, ids] of this.leases) {
      if (ids.size === 0) {
        this.leases.delete(name);
        continue;
      }
      void this.cmd.ogwRenewLeases(this.shared.key(`key:${name}:jobs`), this.shared.opts.leaseMs, ...ids).catch(() => {});
    }
  }
}

interface Reservation {
  readonly key: string;
  readonly id: string;
  held: number;
  consumed: number;
}

/** Token budgets and rates, fleet-wide: TokenBudgets' rules, its state in Redis. */
export class SharedBudgets implements Budgets {
  /** while Redis is unreachable (and for usage() before it answers) */
  private readonly local: TokenBudgets;
  private readonly cmd: LimitCommands;
  private readonly live = new Set<Reservation>();
  /** settled while Redis was away: added when it answers */
  private pending: { key: string; total: number; day: string }[] = [];
  /** the fleet's settled usage per key, as last seen */
  private readonly seen = new Map<string, KeyUsage>();
  private next = 0;

  constructor(
    private readonly shared: SharedState,
    /** this instance's ledger, this month: what seeds a key Redis knows nothing of */
    private readonly ledger: () => readonly UsageRow[],
    private readonly now: () => number = Date.now,
  ) {
    this.local = new TokenBudgets(now);
    this.cmd = commands(shared);
    shared.onTick(() => this.renew());
    shared.onUp(() => this.replay());
  }

  seed(rows: readonly UsageRow[]): void {
    this.local.seed(rows);
  }

  usage(name: string): KeyUsage {
    return this.seen.get(name) ?? this.local.usage(name);
  }

  async admit(name: string, limits: TokenLimits, promptEstimate: number, outputEstimate: number): Promise<Charge> {
    if (!this.shared.up) return this.local.admit(name, limits, promptEstimate, outputEstimate);
    const t = this.now();
    const today = dayOf(t);
    const month = monthOf(t);
    const id = `${this.shared.instance}:${(this.next++).toString(36)}`;
    const keys = [this.shared.key(`key:${name}:budget`), this.shared.key(`key:${name}:held`)];
    let r: Strings;
    try {
      const ask = () => this.cmd.ogwBudgetAdmit(...keys, today, month, limits.perDay ?? '', limits.perMonth ?? '', limits.perMinute ?? '', promptEstimate, outputEstimate, id, this.shared.opts.leaseMs);
      r = await ask();
      if (r[0] === 'unseeded') {
        const seed = usedByKey(this.ledger(), t).get(name) ?? { day: 0, month: 0 };
        await this.cmd.ogwBudgetSeed(keys[0]!, today, month, seed.day, seed.month);
        r = await ask();
      }
    } catch {
      return this.local.admit(name, limits, promptEstimate, outputEstimate);
    }
    const [verdict, a, b, c, d] = r.map(String);
    switch (verdict) {
      case 'spent':
        throw exhausted(name, limits, t, a === 'month');
      case 'reserved_out':
        throw reservedOut(name, a!);
      case 'no_room':
        throw noRoomLeft(name, limits, a!, promptEstimate, Number(b) > 0, t);
      case 'rate':
        throw tokenRateLimited(name, limits.perMinute!, Number(a));
      default:
    }
    const reserved = Number(a);
    this.seen.set(name, { day: Number(b), month: Number(c) });
    return this.charge(name, keys, id, limits, reserved, promptEstimate, outputEstimate, { dayUsed: Number(b), monthUsed: Number(c), others: Number(d) });
  }

  private charge(name: string, keys: string[], id: string, limits: TokenLimits, reserved: number, promptEstimate: number, outputEstimate: number, fleet: { dayUsed: number; monthUsed: number; others: number }): Charge {
    const res: Reservation = { key: name, id, held: reserved, consumed: promptEstimate };
    this.live.add(res);
    const estimate = promptEstimate + outputEstimate;
    let seen = 0;
    let settled = false;
    let exhaustedBy: GatewayError | undefined;
    let syncing = false;
    let lastSync = performance.now();
    const budgets = this;
    const sync = () => {
      if (syncing || !budgets.shared.up) return;
      syncing = true;
      lastSync = performance.now();
      const t = budgets.now();
      void budgets.cmd
        .ogwBudgetSync(...keys, dayOf(t), monthOf(t), id, res.held, res.consumed, budgets.shared.opts.leaseMs)
        .then((r) => {
          fleet.dayUsed = Number(r[0]);
          fleet.monthUsed = Number(r[1]);
          fleet.others = Number(r[2]);
          budgets.seen.set(name, { day: fleet.dayUsed, month: fleet.monthUsed });
        })
        .catch(() => {})
        .finally(() => (syncing = false));
    };
    return {
      add(tokens: number): boolean {
        if (settled) return true;
        seen += tokens;
        res.held = Math.max(reserved, promptEstimate + seen);
        res.consumed = promptEstimate + seen;
        if (exhaustedBy) return false;
        if (performance.now() - lastSync >= 250) sync();
        // what the key has really used, fleet-wide: settled, the others' jobs in flight, and this one
        const used = fleet.others + res.consumed;
        const dayOver = limits.perDay !== undefined && fleet.dayUsed + used > limits.perDay;
        const monthOver = limits.perMonth !== undefined && fleet.monthUsed + used > limits.perMonth;
        if (dayOver || monthOver) exhaustedBy = exhausted(name, limits, budgets.now(), monthOver);
        return exhaustedBy === undefined;
      },
      settle(prompt: number | undefined, completion: number | undefined) {
        const charged = { prompt: prompt ?? promptEstimate, completion: completion ?? seen };
        if (settled) return charged;
        settled = true;
        budgets.live.delete(res);
        budgets.settle(name, keys, id, charged.prompt + charged.completion, estimate, limits.perMinute !== undefined);
        return charged;
      },
      get exhausted() {
        return exhaustedBy;
      },
      outputReserved: Math.max(0, reserved - promptEstimate),
    };
  }

  private settle(name: string, keys: string[], id: string, total: number, estimate: number, rated: boolean): void {
    const t = this.now();
    const day = dayOf(t);
    const had = this.seen.get(name);
    if (had) this.seen.set(name, { day: had.day + total, month: had.month + total });
    const send = () => this.cmd.ogwBudgetSettle(...keys, day, monthOf(t), id, total, estimate, rated ? 1 : 0, day);
    if (!this.shared.up) {
      this.keep(name, total, day);
      return;
    }
    void send().catch(() => this.keep(name, total, day));
  }

  /** Settled while Redis is away: kept (bounded) to add when it answers. */
  private keep(key: string, total: number, day: string): void {
    if (this.pending.length < 100_000) this.pending.push({ key, total, day });
  }

  private replay(): void {
    const todo = this.pending;
    this.pending = [];
    const t = this.now();
    for (const p of todo) {
      const keys = [this.shared.key(`key:${p.key}:budget`), this.shared.key(`key:${p.key}:held`)];
      void this.cmd.ogwBudgetSettle(...keys, dayOf(t), monthOf(t), '', p.total, p.total, 0, p.day).catch(() => this.keep(p.key, p.total, p.day));
    }
  }

  private renew(): void {
    const t = this.now();
    for (const r of this.live) {
      void this.cmd
        .ogwBudgetSync(this.shared.key(`key:${r.key}:budget`), this.shared.key(`key:${r.key}:held`), dayOf(t), monthOf(t), r.id, r.held, r.consumed, this.shared.opts.leaseMs)
        .catch(() => {});
    }
  }
}

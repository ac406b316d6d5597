// Per-key token rate (tokens per minute, a bucket that may run into debt) and token budgets per
// UTC day and month. A job reserves an estimate before it is dispatched (its prompt at about 4
// bytes a token, and its output limit, or `budgets.output_estimate_tokens` when it sets none),
// never more than is left, and settles with the real count when it ends. Reservations decide
// admission: a burst is refused once they hold the whole budget. A job that cannot be cut while
// it runs (not streamed) is sent with its output limit lowered to what it reserved, so a burst of
// them cannot overshoot; a metered stream adds its tokens as they pass and is cut when what the
// key has really used (settled, plus what its jobs in flight have consumed so far) crosses the
// budget, not when other jobs' reservations do (issue 10.15). Prompt and completion tokens count alike.
import type { TokenLimits } from '../config/schema.js';
import { GatewayError } from '../errors.js';
import { dayOf, monthOf, nextDayStart, nextMonthStart } from '../usage/period.js';
import type { UsageRow } from '../usage/store.js';

interface KeyState {
  day: string;
  dayUsed: number;
  month: string;
  monthUsed: number;
  /** tokens held by jobs in flight: the larger of each one's reservation and what it generated */
  held: number;
  /** tokens jobs in flight have consumed so far (prompt estimate and what streamed) */
  consumed: number;
  /** the per-minute bucket (full until first used); below zero is debt that later jobs wait out */
  level: number | undefined;
  at: number;
}

/** One admitted job's account with its key's budgets. */
export interface Charge {
  /** Add tokens a stream generated. False once the key's day or month budget is crossed. */
  add(tokens: number): boolean;
  /** The job ended: charge what it used (reported counts, or else the estimate and what was seen). */
  settle(prompt: number | undefined, completion: number | undefined): { prompt: number; completion: number };
  /** why add() said no, for the stream's last line */
  readonly exhausted: GatewayError | undefined;
  /** the output tokens this job holds beyond its prompt: the most a job that cannot be cut may generate */
  readonly outputReserved: number;
}

export interface KeyUsage {
  readonly day: number;
  readonly month: number;
}

/** Token budgets as the admission stage sees them: this process's (TokenBudgets) or a fleet's (src/shared/). */
export interface Budgets {
  /** Start from what the ledger holds for this month (after a restart). */
  seed(rows: readonly UsageRow[]): void;
  /** Tokens this key has used today and this month (UTC), settled jobs only. */
  usage(name: string): KeyUsage;
  /** Admit a job, or throw 429: see TokenBudgets.admit. */
  admit(name: string, limits: TokenLimits, promptEstimate: number, outputEstimate: number): Charge | Promise<Charge>;
}

export class TokenBudgets implements Budgets {
  private readonly state = new Map<string, KeyState>();

  constructor(private readonly now: () => number = Date.now) {}

  /** Start from what the ledger holds for this month (after a restart). */
  seed(rows: readonly UsageRow[]): void {
    for (const [key, u] of usedByKey(rows, this.now())) {
      const s = this.of(key);
      s.monthUsed += u.month;
      s.dayUsed += u.day;
    }
  }

  /** Tokens this key has used today and this month (UTC), settled jobs only. */
  usage(name: string): KeyUsage {
    const s = this.state.get(name);
    if (!s) return { day: 0, month: 0 };
    this.roll(s);
    return { day: s.dayUsed, month: s.monthUsed };
  }

  /**
   * Admit a job of about `promptEstimate` prompt tokens and at most `outputEstimate` generated
   * ones, or throw 429 (budget_exhausted with the reset time, or token_rate_limited).
   */
  admit(name: string, limits: TokenLimits, promptEstimate: number, outputEstimate: number): Charge {
    const s = this.of(name);
    this.roll(s);
    const t = this.now();
    const spent = this.spent(name, s, limits, t);
    if (spent) throw spent;
    if (limits.perMinute !== undefined) {
      s.level = Math.min(limits.perMinute, (s.level ?? limits.perMinute) + ((t - s.at) * limits.perMinute) / 60_000);
      s.at = t;
      if (s.level <= 0) {
        const waitS = Math.max(1, Math.ceil(((1 - s.level) * 60) / limits.perMinute));
        throw tokenRateLimited(name, limits.perMinute, waitS);
      }
    }
    const estimate = promptEstimate + outputEstimate;
    // never hold more than is left: a job that asks for more still runs, and is cut (a stream) or
    // capped (anything else) at what it holds
    const left = Math.min(remaining(limits.perDay, s.dayUsed + s.held), remaining(limits.perMonth, s.monthUsed + s.held));
    const reserved = Math.min(estimate, left);
    const outputReserved = Math.max(0, reserved - promptEstimate);
    if (outputEstimate > 0 && outputReserved === 0 && left !== Infinity) {
      // nothing left for it to generate once its prompt is counted: it could only be cut at once
      throw noRoomLeft(name, limits, left, promptEstimate, s.held > 0, t);
    }
    s.held += reserved;
    s.consumed += promptEstimate;
    if (s.level !== undefined) s.level -= estimate;
    let holding = reserved;
    let consumed = promptEstimate;
    let seen = 0;
    let settled = false;
    let exhausted: GatewayError | undefined;
    const budgets = this;
    return {
      add(tokens: number): boolean {
        if (settled) return true;
        seen += tokens;
        const now = Math.max(reserved, promptEstimate + seen);
        s.held += now - holding;
        holding = now;
        s.consumed += tokens;
        consumed += tokens;
        if (exhausted) return false;
        budgets.roll(s);
        exhausted = budgets.crossed(name, s, limits, budgets.now());
        return exhausted === undefined;
      },
      settle(prompt: number | undefined, completion: number | undefined) {
        const charged = { prompt: prompt ?? promptEstimate, completion: completion ?? seen };
        if (settled) return charged;
        settled = true;
        s.held -= holding;
        s.consumed -= consumed;
        budgets.roll(s);
        const total = charged.prompt + charged.completion;
        s.dayUsed += total;
        s.monthUsed += total;
        // the bucket took the estimate; it owes (or is owed) the difference
        if (s.level !== undefined) s.level -= total - estimate;
        return charged;
      },
      get exhausted() {
        return exhausted;
      },
      outputReserved,
    };
  }

  private of(name: string): KeyState {
    let s = this.state.get(name);
    if (!s) {
      const t = this.now();
      s = { day: dayOf(t), dayUsed: 0, month: monthOf(t), monthUsed: 0, held: 0, consumed: 0, level: undefined, at: t };
      this.state.set(name, s);
    }
    return s;
  }

  private roll(s: KeyState): void {
    const t = this.now();
    const day = dayOf(t);
    if (day !== s.day) {
      s.day = day;
      s.dayUsed = 0;
    }
    const month = monthOf(t);
    if (month !== s.month) {
      s.month = month;
      s.monthUsed = 0;
    }
  }

  /** Before a job: the budget its key has spent or reserved in full, as the 429 to answer. */
  private spent(name: string, s: KeyState, limits: TokenLimits, t: number): GatewayError | undefined {
    const dayOver = over(limits.perDay, s.dayUsed + s.held, false);
    const monthOver = over(limits.perMonth, s.monthUsed + s.held, false);
    if (!dayOver && !monthOver) return undefined;
    if (!over(limits.perDay, s.dayUsed, false) && !over(limits.perMonth, s.monthUsed, false)) {
      // not spent: what is left is reserved by the key's jobs in flight, and frees as they end
      const left = Math.min(remaining(limits.perDay, s.dayUsed), remaining(limits.perMonth, s.monthUsed));
      return reservedOut(name, left);
    }
    return exhaustedError(name, limits, t, monthOver);
  }

  /** During a stream: what the key has really used (settled, and consumed in flight) is past a budget. */
  private crossed(name: string, s: KeyState, limits: TokenLimits, t: number): GatewayError | undefined {
    const dayOver = over(limits.perDay, s.dayUsed + s.consumed, true);
    const monthOver = over(limits.perMonth, s.monthUsed + s.consumed, true);
    if (!dayOver && !monthOver) return undefined;
    return exhaustedError(name, limits, t, monthOver);
  }
}

export function tokenRateLimited(name: string, perMinute: number, waitS: number): GatewayError {
  return new GatewayError('token_rate_limited', `key '${name}' is over its rate of ${perMinute} tokens per minute`, { retryAfterSeconds: waitS });
}

/** What is left of the budget is held by the key's jobs in flight. */
export function reservedOut(name: string, left: number | string): GatewayError {
  return new GatewayError('budget_exhausted', `key '${name}' has ${left} tokens of its budget left, all reserved by its jobs in flight; try again when they end`, { retryAfterSeconds: 1 });
}

/** Too little is left for this job's prompt and any answer (`held`: jobs in flight hold some, and may give it back soon). */
export function noRoomLeft(name: string, limits: TokenLimits, left: number | string, promptEstimate: number, held: boolean, t: number): GatewayError {
  return new GatewayError('budget_exhausted', `key '${name}' has ${left} tokens of its budget left, not enough for this job's prompt (about ${promptEstimate}) and any answer`, {
    retryAfterSeconds: held ? 1 : Math.max(1, Math.ceil(((limits.perDay !== undefined ? nextDayStart(t) : nextMonthStart(t)) - t) / 1000)),
  });
}

/** Tokens each key used today and this month (UTC, at `t`), summed from ledger rows. */
export function usedByKey(rows: readonly UsageRow[], t: number): Map<string, KeyUsage> {
  const today = dayOf(t);
  const month = monthOf(t);
  const out = new Map<string, { day: number; month: number }>();
  for (const r of rows) {
    if (!r.day.startsWith(month)) continue;
    const u = out.get(r.key) ?? { day: 0, month: 0 };
    const n = r.promptTokens + r.completionTokens;
    u.month += n;
    if (r.day === today) u.day += n;
    out.set(r.key, u);
  }
  return out;
}

/** The 429 for a spent budget: the month's when `month` (or when there is no day budget), else the day's. */
export function exhaustedError(name: string, limits: TokenLimits, t: number, month: boolean): GatewayError {
  const [what, limit, resets] = month || limits.perDay === undefined ? ['this month', limits.perMonth!, nextMonthStart(t)] : ['today', limits.perDay, nextDayStart(t)];
  return new GatewayError('budget_exhausted', `key '${name}' has used its budget of ${limit} tokens for ${what} (UTC); it resets at ${new Date(resets).toISOString()}`, {
    retryAfterSeconds: Math.max(1, Math.ceil((resets - t) / 1000)),
  });
}

/** Before a job: nothing left to hold. During a stream (`crossing`): more held than the budget allows. */
function over(limit: number | undefined, usedAndHeld: number, crossing: boolean): boolean {
  return limit !== undefined && (crossing ? usedAndHeld > limit : usedAndHeld >= limit);
}

function remaining(limit: number | undefined, used: number): number {
  return limit === undefined ? Infinity : Math.max(0, limit - used);
}

// TokenBudgets on a clock the test moves: reservations, settling, the UTC day and month
// rollover, the token bucket's debt, and seeding from the ledger.
import t from 'tap';
import { TokenBudgets } from '../dist/src/auth/budgets.js';
import { GatewayError } from '../dist/src/errors.js';

const limits = (perDay?: number, perMonth?: number, perMinute?: number) => ({ perDay, perMonth, perMinute });

t.test('a day budget: reservations count while jobs run, the real count when they end, zero again at 00:00 UTC', async (t) => {
  let now = Date.UTC(2026, 10, 23, 23, 59, 0);
  const b = new TokenBudgets(() => now);
  const a = b.admit('k', limits(100), 30, 30);
  const c = b.admit('k', limits(100), 30, 0);
  const d = b.admit('k', limits(100), 30, 0);
  t.throws(() => b.admit('k', limits(100), 1, 0), { code: 'budget_exhausted' }, '60 + 30 held, then the last 10: nothing left to hold');
  t.same(c.settle(20, 5), { prompt: 20, completion: 5 });
  t.same(d.settle(0, 0), { prompt: 0, completion: 0 }, 'a job that never ran costs nothing');
  t.equal(b.usage('k').day, 25);
  t.notOk(a.add(50), '30 + 50 seen of a job that held 60: 25 used + 80 held is over 100');
  t.match(a.exhausted, { code: 'budget_exhausted' });
  t.same(a.settle(30, 50), { prompt: 30, completion: 50 });
  t.equal(b.usage('k').day, 105);
  const err = (() => {
    try {
      b.admit('k', limits(100), 1, 0);
    } catch (e) {
      return e as GatewayError;
    }
    return undefined;
  })();
  t.match(err, { code: 'budget_exhausted', message: "key 'k' has used its budget of 100 tokens for today (UTC); it resets at 2026-11-24T00:00:00.000Z", retryAfterSeconds: 60 });
  now += 61_000;
  t.same(b.usage('k'), { day: 0, month: 105 }, 'a new day; the month goes on');
  t.doesNotThrow(() => b.admit('k', limits(100), 1, 0));
});

t.test('add() says stop once the budget is crossed, and a stream is charged what it got', async (t) => {
  const b = new TokenBudgets(() => Date.UTC(2026, 10, 23, 12));
  const job = b.admit('k', limits(undefined, 50), 10, 0);
  let tokens = 0;
  while (job.add(1)) tokens++;
  t.equal(tokens, 40, '10 prompt + 40 completion fit; the 41st crosses');
  t.match(job.exhausted, { code: 'budget_exhausted', message: /for this month \(UTC\); it resets at 2026-12-01T00:00:00\.000Z/ });
  t.same(job.settle(undefined, undefined), { prompt: 10, completion: 41 }, 'no counts reported: the estimate and what was seen');
  t.same(b.usage('k'), { day: 51, month: 51 });
});

t.test('token rate: a full bucket to start, debt that later jobs wait out', async (t) => {
  let now = Date.UTC(2026, 10, 23, 12);
  const b = new TokenBudgets(() => now);
  b.admit('k', limits(undefined, undefined, 60), 10, 0).settle(10, 80);
  t.throws(() => b.admit('k', limits(undefined, undefined, 60), 10, 0), { code: 'token_rate_limited', retryAfterSeconds: 31 }, '30 tokens of debt at 60 a minute');
  now += 31_000;
  t.doesNotThrow(() => b.admit('k', limits(undefined, undefined, 60), 10, 0), 'paid off');
});

t.test('seeded from the ledger: this month only, today apart', async (t) => {
  const b = new TokenBudgets(() => Date.UTC(2026, 10, 23, 12));
  const row = (day: string, key: string, p: number, c: number) => ({ day, key, model: 'm', requests: 1, promptTokens: p, completionTokens: c, errors: 0 });
  b.seed([row('2026-10-31', 'k', 1000, 1000), row('2026-11-01', 'k', 10, 20), row('2026-11-23', 'k', 1, 2), row('2026-11-23', 'j', 5, 5)]);
  t.same(b.usage('k'), { day: 3, month: 33 });
  t.same(b.usage('j'), { day: 10, month: 10 });
  t.same(b.usage('nobody'), { day: 0, month: 0 });
});

// The usage ledger's batch: counted in place per day, key and model, written in one go, kept for
// the next try when a write fails, and split at midnight UTC.
import t from 'tap';
import { pino } from 'pino';
import { UsageLedger } from '../dist/src/usage/ledger.js';
import { MemoryUsageStore, type UsageRow } from '../dist/src/usage/store.js';

/** A store whose next write fails (a full disk, a locked file). */
class FlakyStore extends MemoryUsageStore {
  failNext = false;
  override add(rows: readonly UsageRow[]): void {
    if (this.failNext) {
      this.failNext = false;
      throw new Error('disk I/O error');
    }
    super.add(rows);
  }
}

t.test('a failed write keeps the batch; the next write has it all, merged with what came since', async (t) => {
  let now = Date.UTC(2026, 10, 23, 23, 59, 59);
  const store = new FlakyStore();
  const ledger = new UsageLedger(store, 60_000, pino({ level: 'silent' }), () => now);
  t.teardown(() => ledger.close());
  ledger.record({ key: 'app', model: 'm', promptTokens: 10, completionTokens: 5, error: false });
  ledger.record({ key: 'app', model: 'm', promptTokens: 1, completionTokens: 0, error: true });
  store.failNext = true;
  t.equal(ledger.flush(), 0, 'nothing written');
  t.same(store.rows(), []);
  t.same(ledger.rows(), [{ day: '2026-11-23', key: 'app', model: 'm', requests: 2, promptTokens: 11, completionTokens: 5, errors: 1 }], 'still counted');
  ledger.record({ key: 'app', model: 'm', promptTokens: 4, completionTokens: 4, error: false });
  now += 1_000; // past midnight UTC
  ledger.record({ key: 'app', model: 'm', promptTokens: 2, completionTokens: 2, error: false });
  t.equal(ledger.flush(), 2, 'one row per day');
  t.same(store.rows(), [
    { day: '2026-11-23', key: 'app', model: 'm', requests: 3, promptTokens: 15, completionTokens: 9, errors: 1 },
    { day: '2026-11-24', key: 'app', model: 'm', requests: 1, promptTokens: 2, completionTokens: 2, errors: 0 },
  ]);
  const fresh = new UsageLedger(new MemoryUsageStore(), 60_000, pino({ level: 'silent' }), () => now);
  t.teardown(() => fresh.close());
  fresh.record({ key: 'app', model: 'm', promptTokens: 1, completionTokens: 1, error: false });
  const before = fresh.rows();
  fresh.record({ key: 'app', model: 'm', promptTokens: 1, completionTokens: 1, error: false });
  t.equal(before[0]!.requests, 1, 'a row handed out does not change as the batch counts on');
  ledger.record({ key: 'app', model: 'm', promptTokens: 1, completionTokens: 1, error: false });
  t.same(ledger.totalsByKey().get('app'), { key: 'app', requests: 2, promptTokens: 3, completionTokens: 3, errors: 0 }, 'today is the new day: its stored row and the batch');
});

// The usage ledger: per key, model and UTC day, the requests, tokens and errors. Requests add to
// an in-memory batch; a timer writes the batch to the store (SQLite) every `usage.flush_seconds`,
// so the request path never touches the disk. A failed write keeps the batch for the next try.
import type { Logger } from 'pino';
import { dayOf, nextDayStart } from './period.js';
import { addRows, matches, rowId, sortRows, type UsageFilter, type UsageRow, type UsageStore } from './store.js';

export interface UsageEvent {
  readonly key: string;
  readonly model: string;
  readonly promptTokens: number;
  readonly completionTokens: number;
  readonly error: boolean;
}

/** A row of the batch: counted into in place, one object per day, key and model. */
type Counts = { -readonly [K in keyof UsageRow]: UsageRow[K] };

export class UsageLedger {
  private pending = new Map<string, Counts>();
  private readonly timer: NodeJS.Timeout;
  private closed = false;
  /** today (UTC), worked out again only when the day ends: record() runs for every request */
  private day = '';
  private dayEnds = 0;

  constructor(
    readonly store: UsageStore,
    flushMs: number,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {
    this.timer = setInterval(() => this.flush(), flushMs);
    this.timer.unref();
  }

  private today(): string {
    const t = this.now();
    if (t >= this.dayEnds) {
      this.day = dayOf(t);
      this.dayEnds = nextDayStart(t);
    }
    return this.day;
  }

  record(e: UsageEvent): void {
    const day = this.today();
    const id = rowId({ day, key: e.key, model: e.model });
    let row = this.pending.get(id);
    if (!row) {
      row = { day, key: e.key, model: e.model, requests: 0, promptTokens: 0, completionTokens: 0, errors: 0 };
      this.pending.set(id, row);
    }
    row.requests++;
    row.promptTokens += e.promptTokens;
    row.completionTokens += e.completionTokens;
    if (e.error) row.errors++;
  }

  /** Write the batch. Returns the number of rows written. */
  flush(): number {
    if (this.pending.size === 0) return 0;
    const batch = this.pending;
    this.pending = new Map();
    try {
      this.store.add([...batch.values()]);
      return batch.size;
    } catch (err) {
      // keep it for the next try, merged with whatever came since
      for (const [id, r] of batch) {
        const had = this.pending.get(id);
        this.pending.set(id, had ? { ...addRows(r, had) } : r);
      }
      this.log.error({ err: (err as Error).message, rows: batch.size }, 'usage ledger: write failed; will retry');
      return 0;
    }
  }

  /** What the store holds plus the batch not yet written. */
  rows(filter: UsageFilter = {}): UsageRow[] {
    const merged = new Map<string, UsageRow>();
    for (const r of this.store.rows(filter)) merged.set(rowId(r), r);
    for (const [id, r] of this.pending) {
      if (!matches(r, filter)) continue;
      const had = merged.get(id);
      // a copy: the batch's rows go on counting
      merged.set(id, had ? addRows(had, r) : { ...r });
    }
    return sortRows([...merged.values()]);
  }

  /** Usage per key since a day (`YYYY-MM-DD`, UTC; default today), all models and days together. */
  totalsByKey(since = this.today()): Map<string, Omit<UsageRow, 'day' | 'model'>> {
    const out = new Map<string, Omit<UsageRow, 'day' | 'model'>>();
    for (const r of this.rows({ since })) {
      const had = out.get(r.key);
      out.set(r.key, {
        key: r.key,
        requests: (had?.requests ?? 0) + r.requests,
        promptTokens: (had?.promptTokens ?? 0) + r.promptTokens,
        completionTokens: (had?.completionTokens ?? 0) + r.completionTokens,
        errors: (had?.errors ?? 0) + r.errors,
      });
    }
    return out;
  }

  /** Write what is left and close the store. */
  close(): void | Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    this.flush();
    return this.store.close();
  }
}

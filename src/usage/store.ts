// Where usage is kept: per key, model and UTC day, the requests, prompt and completion tokens
// and errors. The gateway adds to it in batches (UsageLedger); `ollama-gateway usage` and the
// budgets read it. Behind this interface so that a shared store (Redis, Postgres) can serve
// several gateway instances later; today there is SQLite (a file) and memory.

export interface UsageRow {
  /** `YYYY-MM-DD`, UTC */
  readonly day: string;
  /** the key's name; '' in open mode (no keys configured) */
  readonly key: string;
  readonly model: string;
  readonly requests: number;
  readonly promptTokens: number;
  readonly completionTokens: number;
  readonly errors: number;
}

export interface UsageFilter {
  /** first day included, `YYYY-MM-DD` */
  readonly since?: string | undefined;
  readonly key?: string | undefined;
}

export interface UsageStore {
  /** Add these counts to what is stored (rows for the same day, key and model add up). */
  add(rows: readonly UsageRow[]): void;
  /** Stored rows, oldest day first, then key, then model. */
  rows(filter?: UsageFilter): UsageRow[];
  /** (a store that writes in the background resolves when what it holds is written, or given up) */
  close(): void | Promise<void>;
}

export function matches(r: UsageRow, filter: UsageFilter): boolean {
  return (filter.since === undefined || r.day >= filter.since) && (filter.key === undefined || r.key === filter.key);
}

export function rowId(r: Pick<UsageRow, 'day' | 'key' | 'model'>): string {
  return `${r.day}\u0000${r.key}\u0000${r.model}`;
}

export function addRows(a: UsageRow, b: UsageRow): UsageRow {
  return {
    day: a.day,
    key: a.key,
    model: a.model,
    requests: a.requests + b.requests,
    promptTokens: a.promptTokens + b.promptTokens,
    completionTokens: a.completionTokens + b.completionTokens,
    errors: a.errors + b.errors,
  };
}

export function sortRows(rows: UsageRow[]): UsageRow[] {
  return rows.sort((x, y) => (x.day < y.day ? -1 : x.day > y.day ? 1 : x.key < y.key ? -1 : x.key > y.key ? 1 : x.model < y.model ? -1 : x.model > y.model ? 1 : 0));
}

/** Usage kept in this process only: lost on restart (no `usage.path`). */
export class MemoryUsageStore implements UsageStore {
  private readonly byId = new Map<string, UsageRow>();

  add(rows: readonly UsageRow[]): void {
    for (const r of rows) {
      const id = rowId(r);
      const had = this.byId.get(id);
      this.byId.set(id, had ? addRows(had, r) : r);
    }
  }

  rows(filter: UsageFilter = {}): UsageRow[] {
    const out = [...this.byId.values()].filter((r) => matches(r, filter));
    return sortRows(out);
  }

  close(): void {}
}

// The usage ledger in PostgreSQL, shared by every instance of a fleet (issue 13). Each instance
// writes its batches as upserts that add (`ON CONFLICT ... DO UPDATE SET n = n + excluded.n`),
// so two instances never overwrite each other's counts. The request path and the status page
// never wait for the database: the store keeps a copy of this month's rows (every instance's,
// read again every 5 s, not after each batch) and answers reads from it; writes go out in the
// background.
// When PostgreSQL is unreachable, rows wait (bounded: past `MAX_UNWRITTEN` the oldest are
// dropped and counted) and are written when it answers again.
import pg from 'pg';
import type { Logger } from 'pino';
import { monthStartDay } from './period.js';
import { addRows, matches, rowId, sortRows, type UsageFilter, type UsageRow, type UsageStore } from './store.js';
import { redactUrl } from '../url-credentials.js';

const TABLE = 'ogw_usage';

const CREATE = `CREATE TABLE IF NOT EXISTS ${TABLE} (
  day text NOT NULL,
  key text NOT NULL,
  model text NOT NULL,
  requests bigint NOT NULL DEFAULT 0,
  prompt_tokens bigint NOT NULL DEFAULT 0,
  completion_tokens bigint NOT NULL DEFAULT 0,
  errors bigint NOT NULL DEFAULT 0,
  PRIMARY KEY (day, key, model)
)`;

const UPSERT = `INSERT INTO ${TABLE} (day, key, model, requests, prompt_tokens, completion_tokens, errors)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::bigint[], $7::bigint[])
ON CONFLICT (day, key, model) DO UPDATE SET
  requests = ${TABLE}.requests + EXCLUDED.requests,
  prompt_tokens = ${TABLE}.prompt_tokens + EXCLUDED.prompt_tokens,
  completion_tokens = ${TABLE}.completion_tokens + EXCLUDED.completion_tokens,
  errors = ${TABLE}.errors + EXCLUDED.errors`;

/** Rows (per day, key and model) kept for a database that does not answer, at most. */
export const MAX_UNWRITTEN = 100_000;

interface DbRow {
  day: string;
  key: string;
  model: string;
  requests: string;
  prompt_tokens: string;
  completion_tokens: string;
  errors: string;
}

function fromDb(r: DbRow): UsageRow {
  return { day: r.day, key: r.key, model: r.model, requests: Number(r.requests), promptTokens: Number(r.prompt_tokens), completionTokens: Number(r.completion_tokens), errors: Number(r.errors) };
}

/** Read rows straight from the database (`ollama-gateway usage`). */
export async function queryUsage(url: string, filter: UsageFilter): Promise<UsageRow[]> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5_000 });
  await client.connect();
  try {
    await client.query(CREATE);
    const res = await client.query<DbRow>(`SELECT * FROM ${TABLE} WHERE day >= $1 AND ($2::text IS NULL OR key = $2)`, [filter.since ?? '0000-00-00', filter.key ?? null]);
    return sortRows(res.rows.map(fromDb));
  } finally {
    await client.end();
  }
}

export interface PostgresStoreEvents {
  /** rows dropped because the database did not answer for too long */
  readonly dropped?: (rows: number) => void;
}

export class PostgresUsageStore implements UsageStore {
  private readonly pool: pg.Pool;
  /** this month's rows, every instance's: what reads are answered from */
  private copy = new Map<string, UsageRow>();
  /** added here, not yet in the database */
  private unwritten = new Map<string, UsageRow>();
  /** being written now (in the copy already) */
  private writing: Map<string, UsageRow> | undefined;
  private readonly timer: NodeJS.Timeout;
  private chain: Promise<void> = Promise.resolve();
  private reachable = true;
  private closed = false;
  private created = false;

  constructor(
    private readonly url: string,
    private readonly log: Logger,
    private readonly events: PostgresStoreEvents = {},
    refreshMs = 5_000,
  ) {
    this.pool = new pg.Pool({ connectionString: url, max: 2, connectionTimeoutMillis: 3_000, idleTimeoutMillis: 30_000 });
    this.pool.on('error', () => {});
    this.timer = setInterval(() => void this.run(() => this.sync(true)), refreshMs);
    this.timer.unref();
  }

  /** Create the table if it is not there and read this month's rows (the start waits for it, a bounded time). */
  async open(): Promise<void> {
    await this.run(() => this.sync(true));
  }

  /** Rows not yet in the database. */
  get pending(): number {
    return this.unwritten.size + (this.writing?.size ?? 0);
  }

  add(rows: readonly UsageRow[]): void {
    for (const r of rows) {
      const id = rowId(r);
      const had = this.unwritten.get(id);
      this.unwritten.set(id, had ? addRows(had, r) : r);
      const seen = this.copy.get(id);
      this.copy.set(id, seen ? addRows(seen, r) : r);
    }
    this.bound();
    // (the copy has them already; the month is read again on the refresh timer, not per batch)
    void this.run(() => this.sync(false));
  }

  rows(filter: UsageFilter = {}): UsageRow[] {
    return sortRows([...this.copy.values()].filter((r) => matches(r, filter)));
  }

  close(): Promise<void> {
    if (this.closed) return this.chain;
    this.closed = true;
    clearInterval(this.timer);
    return this.run(() => this.sync(false)).then(() => this.pool.end());
  }

  /** One database task at a time, in order. */
  private run(task: () => Promise<void>): Promise<void> {
    this.chain = this.chain.then(task).catch(() => {});
    return this.chain;
  }

  /** Write what waits; with `refresh`, then read the month again (with the others' rows) and keep what is still unwritten on top. */
  private async sync(refresh: boolean): Promise<void> {
    if (!this.created) {
      try {
        await this.pool.query(CREATE);
        this.created = true;
      } catch (err) {
        this.unreachable(err);
        return;
      }
    }
    if (this.unwritten.size > 0) {
      const batch = this.unwritten;
      this.writing = batch;
      this.unwritten = new Map();
      const rows = [...batch.values()];
      try {
        await this.pool.query(UPSERT, [rows.map((r) => r.day), rows.map((r) => r.key), rows.map((r) => r.model), rows.map((r) => r.requests), rows.map((r) => r.promptTokens), rows.map((r) => r.completionTokens), rows.map((r) => r.errors)]);
        this.writing = undefined;
      } catch (err) {
        for (const [id, r] of batch) {
          const had = this.unwritten.get(id);
          this.unwritten.set(id, had ? addRows(r, had) : r);
        }
        this.writing = undefined;
        this.bound();
        this.unreachable(err);
        return;
      }
      this.answered();
    }
    if (!refresh) return;
    let fresh: UsageRow[];
    try {
      fresh = (await this.pool.query<DbRow>(`SELECT * FROM ${TABLE} WHERE day >= $1`, [monthStartDay(Date.now())])).rows.map(fromDb);
    } catch (err) {
      this.unreachable(err);
      return;
    }
    this.answered();
    const copy = new Map(fresh.map((r) => [rowId(r), r]));
    for (const [id, r] of this.unwritten) {
      const had = copy.get(id);
      copy.set(id, had ? addRows(had, r) : r);
    }
    this.copy = copy;
  }

  private answered(): void {
    if (this.reachable) return;
    this.reachable = true;
    this.log.info({ postgres: redactUrl(this.url) }, 'usage ledger: PostgreSQL reachable again; waiting rows written');
  }

  private unreachable(err: unknown): void {
    if (!this.reachable) return;
    this.reachable = false;
    this.log.warn({ postgres: redactUrl(this.url), err: (err as Error).message, unwritten: this.pending }, 'usage ledger: PostgreSQL unreachable; rows wait and are written when it answers');
  }

  /** Past the bound, the oldest days' rows go (and are counted). */
  private bound(): void {
    const over = this.unwritten.size - MAX_UNWRITTEN;
    if (over <= 0) return;
    const oldest = [...this.unwritten.entries()].sort((a, b) => (a[1].day < b[1].day ? -1 : 1)).slice(0, over);
    for (const [id] of oldest) this.unwritten.delete(id);
    this.events.dropped?.(over);
    this.log.error({ dropped: over }, 'usage ledger: PostgreSQL unreachable too long; oldest unwritten rows dropped');
  }
}

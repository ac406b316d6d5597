// The usage ledger in an SQLite file. The driver is better-sqlite3 (an optional dependency,
// built for the Node it was installed with); where it is missing or built for another Node,
// Node's own node:sqlite (Node 22.13 and later) takes its place. Both are synchronous: the
// ledger calls them in batches, never per request.
import { createRequire } from 'node:module';
import { type UsageFilter, type UsageRow, type UsageStore } from './store.js';

interface Statement {
  run(...params: unknown[]): unknown;
  all(...params: unknown[]): unknown[];
}

interface Database {
  exec(sql: string): void;
  prepare(sql: string): Statement;
  close(): void;
}

const require = createRequire(import.meta.url);

/** Which driver opened the file: 'better-sqlite3' or 'node:sqlite'. */
export type SqliteDriver = 'better-sqlite3' | 'node:sqlite';

function open(path: string): { db: Database; driver: SqliteDriver } {
  let first: unknown;
  try {
    const BetterSqlite = require('better-sqlite3') as new (path: string) => Database;
    return { db: new BetterSqlite(path), driver: 'better-sqlite3' };
  } catch (err) {
    first = err;
    if (!isLoadFailure(err)) throw err;
  }
  let sqlite: { DatabaseSync: new (path: string) => Database } | undefined;
  // Node 22 calls node:sqlite experimental and says so on stderr as it loads: the gateway has
  // chosen it knowingly, so that one warning is left out of the operator's logs
  const emitWarning = process.emitWarning;
  process.emitWarning = ((warning: string | Error, ...rest: unknown[]) => {
    if (String(warning).includes('SQLite is an experimental feature')) return;
    (emitWarning as (w: string | Error, ...r: unknown[]) => void).call(process, warning, ...rest);
  }) as typeof process.emitWarning;
  try {
    sqlite = require('node:sqlite') as { DatabaseSync: new (path: string) => Database };
  } catch {
    throw new Error(`no SQLite driver: better-sqlite3 did not load (${(first as Error).message.split('\n')[0]}) and this Node (${process.version}) has no node:sqlite; run npm ci with this Node, or use Node 22.13 or later`);
  } finally {
    process.emitWarning = emitWarning;
  }
  return { db: new sqlite.DatabaseSync(path), driver: 'node:sqlite' };
}

/** better-sqlite3 absent or built for another Node, as opposed to a file it cannot open. */
function isLoadFailure(err: unknown): boolean {
  const code = (err as { code?: unknown }).code;
  const msg = err instanceof Error ? err.message : '';
  return code === 'MODULE_NOT_FOUND' || code === 'ERR_DLOPEN_FAILED' || /NODE_MODULE_VERSION|bindings file|Could not locate/.test(msg);
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS usage (
  day TEXT NOT NULL,
  key TEXT NOT NULL,
  model TEXT NOT NULL,
  requests INTEGER NOT NULL DEFAULT 0,
  prompt_tokens INTEGER NOT NULL DEFAULT 0,
  completion_tokens INTEGER NOT NULL DEFAULT 0,
  errors INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (day, key, model)
) WITHOUT ROWID;
PRAGMA user_version = 1;
`;

interface DbRow {
  day: string;
  key: string;
  model: string;
  requests: number;
  prompt_tokens: number;
  completion_tokens: number;
  errors: number;
}

export class SqliteUsageStore implements UsageStore {
  private readonly db: Database;
  readonly driver: SqliteDriver;
  private readonly upsert: Statement;

  constructor(readonly path: string) {
    const { db, driver } = open(path);
    this.db = db;
    this.driver = driver;
    try {
      // WAL: `ollama-gateway usage` reads while the gateway writes, neither waits for the other
      db.exec('PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 5000;');
      db.exec(SCHEMA);
      this.upsert = db.prepare(
        `INSERT INTO usage (day, key, model, requests, prompt_tokens, completion_tokens, errors) VALUES (?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (day, key, model) DO UPDATE SET
           requests = requests + excluded.requests,
           prompt_tokens = prompt_tokens + excluded.prompt_tokens,
           completion_tokens = completion_tokens + excluded.completion_tokens,
           errors = errors + excluded.errors`,
      );
    } catch (err) {
      db.close();
      throw err;
    }
  }

  add(rows: readonly UsageRow[]): void {
    if (rows.length === 0) return;
    // one transaction per batch: one fsync, and a reader never sees half a batch
    this.db.exec('BEGIN IMMEDIATE');
    try {
      for (const r of rows) this.upsert.run(r.day, r.key, r.model, r.requests, r.promptTokens, r.completionTokens, r.errors);
      this.db.exec('COMMIT');
    } catch (err) {
      // SQLite has already rolled back after some failures (a full disk: SQLITE_FULL); a second
      // ROLLBACK would then fail with "cannot rollback" and hide the cause
      try {
        this.db.exec('ROLLBACK');
      } catch {
        // no transaction was left open
      }
      throw err;
    }
  }

  rows(filter: UsageFilter = {}): UsageRow[] {
    const where: string[] = [];
    const params: string[] = [];
    if (filter.since !== undefined) {
      where.push('day >= ?');
      params.push(filter.since);
    }
    if (filter.key !== undefined) {
      where.push('key = ?');
      params.push(filter.key);
    }
    const sql = `SELECT day, key, model, requests, prompt_tokens, completion_tokens, errors FROM usage${where.length ? ` WHERE ${where.join(' AND ')}` : ''} ORDER BY day, key, model`;
    return (this.db.prepare(sql).all(...params) as DbRow[]).map((raw) => ({
      day: raw.day,
      key: raw.key,
      model: raw.model,
      requests: Number(raw.requests),
      promptTokens: Number(raw.prompt_tokens),
      completionTokens: Number(raw.completion_tokens),
      errors: Number(raw.errors),
    }));
  }

  close(): void {
    this.db.close();
  }
}

// The usage ledger in PostgreSQL (issue 13): several instances write into one table with upserts
// that add, so the rows add up exactly to the requests sent; `ollama-gateway usage` and the
// status page read them; rows wait while PostgreSQL is away and are written when it is back.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import pg from 'pg';
import t from 'tap';
import { hashKey } from '../dist/src/auth/keys.js';
import { chat, configFile, post, startGateway, startSims, until } from './helpers.js';
import { startPostgres } from './services.js';

const BIN = new URL('../bin/ollama-gateway.js', import.meta.url).pathname;
const APP = 'ogw_pg-app-000000000000000000000000';
const OTHER = 'ogw_pg-other-1111111111111111111111';

interface Totals {
  requests: number;
  prompt: number;
  completion: number;
}

async function tableTotals(url: string): Promise<Record<string, Totals>> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    const r = await c.query<{ key: string; requests: string; prompt: string; completion: string }>(
      'SELECT key, sum(requests) AS requests, sum(prompt_tokens) AS prompt, sum(completion_tokens) AS completion FROM ogw_usage GROUP BY key',
    );
    return Object.fromEntries(r.rows.map((x) => [x.key, { requests: Number(x.requests), prompt: Number(x.prompt), completion: Number(x.completion) }]));
  } finally {
    await c.end();
  }
}

/** What the answers themselves said they used, per key. */
function expected(replies: { key: string; body: { prompt_eval_count: number; eval_count: number } }[]): Record<string, Totals> {
  const out: Record<string, Totals> = {};
  for (const r of replies) {
    const e = (out[r.key] ??= { requests: 0, prompt: 0, completion: 0 });
    e.requests++;
    e.prompt += r.body.prompt_eval_count;
    e.completion += r.body.eval_count;
  }
  return out;
}

async function send(url: string, key: string, secret: string, n: number) {
  const replies = await Promise.all(
    Array.from({ length: n }, async (_, i) => {
      const r = await post(url, '/api/chat', chat(`${key} ${i} ${'x'.repeat(i)}`, { stream: false }), { headers: { authorization: `Bearer ${secret}` } });
      if (r.status !== 200) throw new Error(`status ${r.status}: ${r.text}`);
      return { key, body: r.json<{ prompt_eval_count: number; eval_count: number }>() };
    }),
  );
  return replies;
}

t.test('two instances write into one PostgreSQL: the rows add up exactly to the requests sent', async (t) => {
  const db = await startPostgres(t);
  const [sim] = await startSims(t, 1, { ttftMs: 0, tokenMs: 0, tokens: 4, parallel: 64 });
  const file = configFile(
    t,
    `backends: [{url: "${sim!.url}"}]\nslots_per_backend: 64\nusage: {postgres_url: "${db.url}", flush_seconds: 0.05}\nkeys:\n  - {name: app, sha256: "${hashKey(APP)}"}\n  - {name: other, sha256: "${hashKey(OTHER)}", admin: true}\n`,
  );
  const a = await startGateway(t, [], {}, { file, backendsFromFile: true });
  const b = await startGateway(t, [], {}, { file, backendsFromFile: true });
  const replies = [...(await Promise.all([send(a.url, 'app', APP, 40), send(b.url, 'app', APP, 25), send(b.url, 'other', OTHER, 15)])).flat()];
  // A's status page shows what B wrote, once A has read the table again
  await until(
    () => {
      const k = (a.gateway.statusReport().keys as { name: string; requests: number }[]).find((x) => x.name === 'app');
      return k?.requests === 65;
    },
    "A's status counts B's requests too",
    10_000,
  );
  await a.gateway.stop(0);
  await b.gateway.stop(0);
  t.same(await tableTotals(db.url), expected(replies), 'requests and tokens per key, exactly');

  const { stdout } = await promisify(execFile)(process.execPath, [BIN, 'usage', '--postgres', db.url, '--json']);
  const rows = JSON.parse(stdout) as { key: string; requests: number }[];
  t.equal(
    rows.filter((r) => r.key === 'app').reduce((n, r) => n + r.requests, 0),
    65,
    '`ollama-gateway usage --postgres` reads them',
  );
});

t.test('PostgreSQL away: rows wait (and say so on /metrics), then are written when it is back', async (t) => {
  const db = await startPostgres(t);
  const [sim] = await startSims(t, 1, { ttftMs: 0, tokenMs: 0, tokens: 4, parallel: 64 });
  const file = configFile(t, `backends: [{url: "${sim!.url}"}]\nslots_per_backend: 64\nusage: {postgres_url: "${db.url}", flush_seconds: 0.05}\nkeys:\n  - {name: app, sha256: "${hashKey(APP)}", admin: true}\n`);
  const a = await startGateway(t, [], {}, { file, backendsFromFile: true });
  const before = await send(a.url, 'app', APP, 10);
  await db.stop();
  const during = await send(a.url, 'app', APP, 20);
  await until(() => a.logs.lines.some((l) => /PostgreSQL unreachable/.test(String(l['msg']))), 'one warning');
  const m = (await a.gateway.metrics.render()).body;
  t.match(m, /ollama_gateway_usage_rows_unwritten [1-9]/, 'rows waiting, on /metrics');
  t.match(m, /ollama_gateway_usage_rows_dropped_total 0\n/, 'none dropped');
  await db.start();
  await until(() => a.logs.lines.some((l) => /PostgreSQL reachable again/.test(String(l['msg']))), 'written when it is back', 15_000);
  const after = await send(a.url, 'app', APP, 5);
  await a.gateway.stop(0);
  t.same(await tableTotals(db.url), expected([...before, ...during, ...after]), 'nothing lost across the outage');
});

t.test('usage.path and usage.postgres_url together are a config error', async (t) => {
  const file = configFile(t, `backends: [{url: "http://127.0.0.1:1"}]\nusage: {path: /tmp/x.db, postgres_url: "postgres://gw@127.0.0.1:1/postgres"}\n`);
  const r = await promisify(execFile)(process.execPath, [BIN, 'check-config', file]).catch((e: { stdout: string; stderr: string; code: number }) => e);
  t.equal((r as { code?: number }).code, 1);
  t.match((r as { stderr: string }).stderr, /usage\.postgres_url.*either an SQLite file \(usage\.path\) or PostgreSQL/);
});

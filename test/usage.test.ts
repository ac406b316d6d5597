// The usage ledger: per key, model and day in an SQLite file, written in batches, read back by
// `ollama-gateway usage`, and kept across restarts (budgets go on from it).
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { hashKey } from '../dist/src/auth/keys.js';
import { loadConfig } from '../dist/src/config/load.js';
import { Gateway } from '../dist/src/gateway.js';
import { dayOf } from '../dist/src/usage/period.js';
import { SqliteUsageStore } from '../dist/src/usage/sqlite.js';
import { chat, post, startSims } from './helpers.js';
import { pino } from 'pino';

const run = promisify(execFile);
const BIN = new URL('../bin/ollama-gateway.js', import.meta.url).pathname;
const APP = 'ogw_usage-app-0000000000000000000';
const BOT = 'ogw_usage-bot-1111111111111111111';
const ADMIN = 'ogw_usage-admin-222222222222222222';

function workspace(t: Parameters<typeof startSims>[0]) {
  const dir = mkdtempSync(join(tmpdir(), 'gw-usage-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

async function gatewayWithLedger(file: string, simUrl: string): Promise<Gateway> {
  const config = loadConfig({ file, env: {}, flags: { backends: `sim=${simUrl}`, listen: '127.0.0.1:0', healthIntervalSeconds: '30' } });
  return Gateway.start({ config, logger: pino({ level: 'silent' }) });
}

function configFile(dir: string, appLimits = ''): string {
  const file = join(dir, 'gateway.yaml');
  writeFileSync(
    file,
    `backends: [{url: "http://127.0.0.1:1"}]\nusage: {path: "${join(dir, 'usage.db')}", flush_seconds: 60}\nkeys:\n` +
      `  - {name: app, sha256: "${hashKey(APP)}", models: ["llama3*"]${appLimits}}\n` +
      `  - {name: bot, sha256: "${hashKey(BOT)}"}\n` +
      `  - {name: ops, sha256: "${hashKey(ADMIN)}", admin: true}\n`,
  );
  return file;
}

const as = (key: string) => ({ headers: { authorization: `Bearer ${key}` } });

t.test('the ledger keeps requests, tokens and errors per key and model across a restart', async (t) => {
  const [sim] = await startSims(t, 1, { ttftMs: 0, tokenMs: 0, tokens: 4 });
  const dir = workspace(t);
  const file = configFile(dir);
  const first = await gatewayWithLedger(file, sim!.url);
  t.teardown(() => first.stop(0));
  t.equal((await post(first.url, '/api/chat', chat('a', { stream: false }), as(APP))).status, 200);
  t.equal((await post(first.url, '/api/chat', chat('b'), as(APP))).status, 200);
  t.equal((await post(first.url, '/api/chat', chat('c', { model: 'qwen2.5:0.5b' }), as(APP))).status, 403, 'a forbidden model: an error on the ledger');
  t.equal((await post(first.url, '/v1/chat/completions', chat('d', { stream: true }), as(BOT))).status, 200);
  t.equal((await post(first.url, '/api/chat', chat('e'), { headers: { authorization: 'Bearer nope' } })).status, 401, 'no valid key: no ledger row');
  // nothing written yet (batches every 60 s here), but the status page counts the batch too
  const ledger = new SqliteUsageStore(join(dir, 'usage.db'));
  t.same(ledger.rows(), [], 'no row on disk before the batch is written');
  ledger.close();
  await first.stop(0);

  const second = await gatewayWithLedger(file, sim!.url);
  t.teardown(() => second.stop(0));
  const today = dayOf(Date.now());
  const status = await fetch(`${second.url}/status.json`, as(ADMIN)).then((r) => r.json() as Promise<{ keys: Record<string, unknown>[] }>);
  t.same(
    status.keys.map((k) => [k['name'], k['requests'], k['prompt_tokens'], k['completion_tokens'], k['errors']]),
    [
      ['app', 3, 22, 8, 1],
      ['bot', 1, 11, 4, 0],
      ['ops', 0, 0, 0, 0],
    ],
    'usage today, read back after the restart',
  );
  t.same(second.budgets.usage('app'), { day: 30, month: 30 }, 'budgets go on from the ledger');
  t.equal((await post(second.url, '/api/chat', chat('f', { stream: false }), as(BOT))).status, 200);
  const later = await fetch(`${second.url}/status.json`, as(ADMIN)).then((r) => r.json() as Promise<{ keys: Record<string, unknown>[] }>);
  t.same(
    later.keys.map((k) => [k['name'], k['requests'], k['tokens_month']]),
    [
      ['app', 3, 30],
      ['bot', 2, 30],
      ['ops', 0, 0],
    ],
    'this month\'s tokens count what came after the restart too (a key without budgets included)',
  );

  // the CLI reads the file: what the running gateway has not written yet (bot's last job) is not in it
  const { stdout } = await run(process.execPath, [BIN, 'usage', '-c', file, '--json']);
  t.same(JSON.parse(stdout), [
    { day: today, key: 'app', model: 'llama3.2:latest', requests: 2, prompt_tokens: 22, completion_tokens: 8, errors: 0 },
    { day: today, key: 'app', model: 'qwen2.5:0.5b', requests: 1, prompt_tokens: 0, completion_tokens: 0, errors: 1 },
    { day: today, key: 'bot', model: 'llama3.2:latest', requests: 1, prompt_tokens: 11, completion_tokens: 4, errors: 0 },
  ]);
  const table = (await run(process.execPath, [BIN, 'usage', '--db', join(dir, 'usage.db'), '--key', 'bot', '--since', '7d'])).stdout.split('\n');
  t.match(table[0], /^DAY\s+KEY\s+MODEL\s+REQUESTS\s+PROMPT\s+COMPLETION\s+TOTAL\s+ERRORS$/);
  t.match(table[1], new RegExp(`^${today}\\s+bot\\s+llama3\\.2:latest\\s+1\\s+11\\s+4\\s+15\\s+0$`));
  t.match(table[2], /^total\s+1\s+11\s+4\s+15\s+0$/);
  t.equal(table.length, 4, 'header, one row, total (and the last newline)');
});

t.test('a spent budget stays spent after a restart', async (t) => {
  const [sim] = await startSims(t, 1, { ttftMs: 0, tokenMs: 0, tokens: 30 });
  const dir = workspace(t);
  const file = configFile(dir, ', tokens_per_day: 40');
  const first = await gatewayWithLedger(file, sim!.url);
  t.teardown(() => first.stop(0));
  t.equal((await post(first.url, '/api/chat', chat('a', { stream: false }), as(APP))).status, 200, 'capped at what it reserved, about 31 tokens: what is left cannot pay for another prompt');
  await first.stop(0);
  const second = await gatewayWithLedger(file, sim!.url);
  t.teardown(() => second.stop(0));
  const again = await post(second.url, '/api/chat', chat('b', { stream: false }), as(APP));
  t.equal(again.status, 429);
  t.match(again.json(), { error: /has [0-9] tokens of its budget left, not enough for this job's prompt/ }, 'the ledger remembered what was used');
});

t.test('usage command: clear errors without a ledger or with a bad --since', async (t) => {
  const dir = workspace(t);
  const fail = (args: string[]) => run(process.execPath, [BIN, 'usage', ...args], { env: { ...process.env, GATEWAY_USAGE_PATH: '', GATEWAY_CONFIG: '' } }).then(() => ({ code: 0, stderr: '' }), (e: { code: number; stderr: string }) => e);
  t.match(await fail([]), { code: 2, stderr: /no ledger: give --db <file> or --postgres <url>, or -c <config> with usage.path or usage.postgres_url set/ });
  t.match(await fail(['--db', join(dir, 'none.db')]), { code: 1, stderr: /no usage ledger at .*none\.db/ });
  t.match(await fail(['--db', join(dir, 'none.db'), '--since', 'yesterday']), { code: 2, stderr: /--since: expected YYYY-MM-DD or Nd/ });
});

t.test('a ledger that cannot be opened stops the start with one clear line', async (t) => {
  const dir = workspace(t);
  const res = await run(process.execPath, [BIN, 'serve', '--backends', 'http://127.0.0.1:1', '--listen', '127.0.0.1:0', '--usage-path', join(dir, 'missing', 'dir', 'usage.db')]).then(
    () => ({ code: 0, stderr: '' }),
    (e: { code: number; stderr: string }) => e,
  );
  t.equal(res.code, 1);
  t.match(res.stderr, /^error: usage\.path: cannot open the usage ledger .*missing\/dir\/usage\.db: /);
  t.equal(res.stderr.trim().split('\n').length, 1, 'one line, no stack trace');
});

t.test('/metrics counts requests by key name', async (t) => {
  const [sim] = await startSims(t, 1, { ttftMs: 0, tokenMs: 0, tokens: 2 });
  const dir = workspace(t);
  const g = await gatewayWithLedger(configFile(dir), sim!.url);
  t.teardown(() => g.stop(0));
  await post(g.url, '/api/chat', chat('a', { stream: false }), as(BOT));
  const text = await fetch(`${g.url}/metrics`, as(ADMIN)).then((r) => r.text());
  t.match(text, /ollama_gateway_requests_total\{route="\/api\/chat",status="200",model="llama3\.2:latest",key="bot"\} 1/);
});

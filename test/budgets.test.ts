// Token budgets and rates: reserve before dispatch, settle with the real counts, cut a stream
// that crosses its key's budget (final error line or SSE event, upstream aborted, the generated
// tokens charged), 429s with their reset time; and OpenAI streams asked for their usage.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import OpenAI from 'openai';
import t from 'tap';
import { hashKey } from '../dist/src/auth/keys.js';
import { loadConfig } from '../dist/src/config/load.js';
import type { SimulatorOptions } from '../dist/src/simulator/simulator.js';
import { chat, post, settled, startGateway, startSims } from './helpers.js';

const APP = 'ogw_budget-app-0000000000000000000';
const auth = { authorization: `Bearer ${APP}` };

async function metered(t: Parameters<typeof startSims>[0], limits: string, sim: SimulatorOptions, extra = '') {
  const [s] = await startSims(t, 1, { ttftMs: 0, ...sim });
  const dir = mkdtempSync(join(tmpdir(), 'gw-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'gateway.yaml');
  writeFileSync(file, `backends: [{url: "http://127.0.0.1:1"}]\n${extra}keys:\n  - {name: app, sha256: "${hashKey(APP)}", ${limits}}\n`);
  return { sim: s!, file, ...(await startGateway(t, [s!], {}, { file })) };
}

function nextUtcMidnight(): string {
  const d = new Date();
  return new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate() + 1)).toISOString();
}

t.test('a stream that crosses its day budget is cut with a final error line, the backend stops, the tokens are charged', async (t) => {
  const { url, sim, gateway, logs } = await metered(t, 'tokens_per_day: 60', { tokens: 500, tokenMs: 2 });
  const res = await post(url, '/api/chat', chat('hello'), { headers: { ...auth, 'x-request-id': 'cut' } });
  t.equal(res.status, 200);
  const lines = res.text.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  const last = lines.at(-1)!;
  t.match(last, { error: /used its budget of 60 tokens for today \(UTC\); it resets at / }, 'the last line says why');
  const content = lines.filter((l) => l['message'] !== undefined);
  t.ok(content.length > 10 && content.length < 60, `cut after ${content.length} of 500 tokens`);
  t.notOk(lines.some((l) => l['done'] === true), 'no final chunk: the answer is not complete');
  await sim.waitFor(() => sim.stats.cancelled === 1);
  t.ok(sim.stats.tokensSent < 500, `the backend stopped generating (${sim.stats.tokensSent} tokens sent)`);
  const line = await logs.requestLine('cut');
  t.match(line, { status: 200, code: 'budget_exhausted', key: 'app' });
  const charged = (line['prompt_tokens'] as number) + (line['completion_tokens'] as number);
  t.ok(charged > 60 && charged < 80, `charged ${charged}: the budget and the last few tokens, no more`);
  t.equal(gateway.budgets.usage('app').day, charged);

  const next = await post(url, '/api/chat', chat('again', { stream: false }), { headers: auth });
  t.equal(next.status, 429);
  t.match(next.json(), { error: `key 'app' has used its budget of 60 tokens for today (UTC); it resets at ${nextUtcMidnight()}` });
  const retry = Number(next.headers['retry-after']);
  t.ok(retry >= 1 && retry <= 86_400, `Retry-After ${retry} s: until midnight UTC`);
  t.equal(sim.stats.requests, 1, 'the refused job never reached the backend');
  await settled(gateway);
});

t.test('an OpenAI stream is cut with an SSE error event; its month budget answers 429 in OpenAI\'s shape', async (t) => {
  const { url, sim, gateway } = await metered(t, 'tokens_per_month: 50', { tokens: 500, tokenMs: 2 });
  const res = await post(url, '/v1/chat/completions', chat('hello', { stream: true }), { headers: auth });
  t.equal(res.status, 200);
  const events = res.text.split('\n\n').filter((e) => e.startsWith('data: '));
  t.match(JSON.parse(events.at(-1)!.slice(6)), { error: { code: 'budget_exhausted', message: /tokens for this month \(UTC\)/ } });
  t.notOk(res.text.includes('[DONE]'), 'no [DONE]: the answer is not complete');
  await sim.waitFor(() => sim.stats.cancelled === 1);
  const next = await post(url, '/v1/chat/completions', chat('again'), { headers: auth });
  t.equal(next.status, 429);
  t.match(next.json(), { error: { code: 'budget_exhausted', type: 'api_error', message: /resets at \d{4}-\d{2}-01T00:00:00\.000Z/ } });
  await settled(gateway);
});

t.test('a burst of concurrent jobs overshoots the budget by at most about one job', async (t) => {
  // each job: about 11 prompt + 30 completion tokens; eight at once against a budget of 100
  const { url, sim, gateway } = await metered(t, 'tokens_per_day: 100', { tokens: 30, tokenMs: 10, parallel: 8 }, 'slots_per_backend: 8\n');
  const replies = await Promise.all(Array.from({ length: 8 }, (_, i) => post(url, '/api/chat', chat(`job ${i}`, { options: { num_predict: 30 } }), { headers: auth })));
  const refused = replies.filter((r) => r.status === 429).length;
  const cut = replies.filter((r) => r.status === 200 && r.text.includes('"error"')).length;
  const whole = replies.filter((r) => r.status === 200 && r.text.includes('"done":true')).length;
  t.ok(refused > 0, `${refused} refused before dispatch (their reservations did not fit)`);
  t.equal(refused + cut + whole, 8);
  const used = gateway.budgets.usage('app').day;
  t.ok(used >= 100 && used <= 141, `${used} tokens charged against a budget of 100 (one job is about 41)`);
  t.ok(sim.stats.requests <= 8 - refused);
  await settled(gateway);
});

t.test('token rate: a key over its tokens per minute waits (429 token_rate_limited with Retry-After)', async (t) => {
  const { url, gateway } = await metered(t, 'tokens_per_minute: 30', { tokens: 30, tokenMs: 0 });
  const first = await post(url, '/api/chat', chat('hi', { stream: false }), { headers: auth });
  t.equal(first.status, 200, 'the first job runs: the bucket was full');
  const second = await post(url, '/api/chat', chat('hi', { stream: false }), { headers: auth });
  t.equal(second.status, 429);
  t.match(second.json(), { error: "key 'app' is over its rate of 30 tokens per minute" });
  const retry = Number(second.headers['retry-after']);
  // the first job used 41 tokens: 11 of debt at 30 a minute is about 24 s
  t.ok(retry >= 20 && retry <= 60, `Retry-After ${retry} s: the debt the first job ran up`);
  await settled(gateway);
});

t.test('OpenAI streams are asked for usage; the client that did not ask never sees that chunk', async (t) => {
  const [sim] = await startSims(t, 1, { ttftMs: 0, tokenMs: 0, tokens: 5 });
  const { url, logs } = await startGateway(t, [sim!]);
  const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'unused' });
  const plain = await client.chat.completions.create({ model: 'llama3.2', messages: [{ role: 'user', content: 'hi' }], stream: true }, { headers: { 'x-request-id': 'plain' } });
  const chunks = [];
  for await (const c of plain) chunks.push(c);
  t.ok(chunks.length >= 5);
  t.notOk(chunks.some((c) => c.usage), 'no usage chunk reached the client');
  t.ok(chunks.every((c) => c.choices.length > 0), 'every chunk has its choice');
  t.same(sim!.seen.at(-1)!.streamOptions, { include_usage: true }, 'the backend was asked for usage');
  t.match(await logs.requestLine('plain'), { prompt_tokens: 11, completion_tokens: 5 });

  const asked = await client.chat.completions.create({ model: 'llama3.2', messages: [{ role: 'user', content: 'hi' }], stream: true, stream_options: { include_usage: true } });
  const withUsage = [];
  for await (const c of asked) withUsage.push(c);
  t.match(withUsage.at(-1), { choices: [], usage: { prompt_tokens: 11, completion_tokens: 5 } }, 'a client that asked gets its usage chunk');
});

t.test('a reload changes a key\'s budget without forgetting what it has used', async (t) => {
  const { url, gateway, sim, file } = await metered(t, 'tokens_per_day: 60', { tokens: 30, tokenMs: 0 });
  t.equal((await post(url, '/api/chat', chat('a', { stream: false }), { headers: auth })).status, 200);
  t.equal(gateway.budgets.usage('app').day, 41, 'about 11 prompt and 30 completion tokens');
  const reload = (limits: string) => {
    writeFileSync(file, `backends: [{url: "http://127.0.0.1:1"}]\nkeys:\n  - {name: app, sha256: "${hashKey(APP)}", ${limits}}\n`);
    gateway.reload(loadConfig({ file, env: {}, flags: { backends: `sim1=${sim.url}`, listen: '127.0.0.1:0' } }));
  };
  reload('tokens_per_day: 40');
  const refused = await post(url, '/api/chat', chat('b', { stream: false }), { headers: auth });
  t.equal(refused.status, 429, 'a lower budget: the 41 tokens already used are over it');
  t.match(refused.json(), { error: /budget of 40 tokens for today/ });
  reload('tokens_per_day: 1000');
  t.equal((await post(url, '/api/chat', chat('c', { stream: false }), { headers: auth })).status, 200, 'a higher one: on again');
  t.equal(gateway.budgets.usage('app').day, 82, 'the count went on across both reloads');
});

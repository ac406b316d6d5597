// API keys: stored as digests, presented as Bearer or X-Api-Key, never forwarded, never logged;
// models by glob; an admin role for management, metrics and status.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Ollama } from 'ollama';
import OpenAI from 'openai';
import t from 'tap';
import { request } from 'undici';
import { hashKey } from '../dist/src/auth/keys.js';
import { chat, get, post, startGateway, startSims } from './helpers.js';

const BIN = new URL('../bin/ollama-gateway.js', import.meta.url).pathname;
const APP = 'ogw_app-key-for-tests-0123456789';
const ADMIN = 'ogw_admin-key-for-tests-9876543210';

async function keyed(t: Parameters<typeof startSims>[0], extra = '') {
  const [sim] = await startSims(t, 1, { ttftMs: 0, tokenMs: 1, tokens: 3 });
  const dir = mkdtempSync(join(tmpdir(), 'gw-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'gateway.yaml');
  writeFileSync(
    file,
    `backends: [{url: "http://127.0.0.1:1"}]\nmanagement: {enabled: true}\n${extra}keys:\n  - name: app\n    sha256: ${hashKey(APP)}\n    models: ["llama3*", "nomic-*"]\n  - name: ops\n    sha256: ${hashKey(ADMIN)}\n    admin: true\n`,
  );
  return { sim: sim!, ...(await startGateway(t, [sim!], {}, { file })) };
}

t.test('no key or an unknown key: 401 in each API\'s shape; /healthz stays open', async (t) => {
  const { url, sim } = await keyed(t);
  const none = await post(url, '/api/chat', chat('x'));
  t.equal(none.status, 401);
  t.equal(none.headers['www-authenticate'], 'Bearer');
  t.match(none.json(), { error: /valid API key is required/ });
  const wrong = await post(url, '/v1/chat/completions', chat('x'), { headers: { authorization: 'Bearer nope' } });
  t.equal(wrong.status, 401);
  t.match(wrong.json(), { error: { code: 'unauthorized', type: 'api_error' } });
  t.equal((await get(url, '/api/tags')).status, 401, 'the catalog too');
  t.equal((await get(url, '/healthz')).status, 200);
  t.equal(sim.stats.requests, 0);
});

t.test('Bearer or X-Api-Key; the key never reaches the backend; logs name the key, never show it', async (t) => {
  const { url, sim, logs } = await keyed(t);
  const bearer = await post(url, '/api/chat', chat('a', { stream: false }), { headers: { authorization: `Bearer ${APP}`, 'x-request-id': 'with-key' } });
  t.equal(bearer.status, 200);
  const header = await post(url, '/api/chat', chat('b', { stream: false }), { headers: { 'x-api-key': APP } });
  t.equal(header.status, 200);
  for (const r of sim.seen.filter((x) => x.path === '/api/chat')) {
    t.equal(r.headers['authorization'], undefined, 'no Authorization upstream');
    t.equal(r.headers['x-api-key'], undefined, 'no X-Api-Key upstream');
  }
  t.match(await logs.requestLine('with-key'), { key: 'app', status: 200 });
  t.notMatch(logs.raw.join('\n'), APP, 'the key is in no log line');
  t.notMatch(logs.raw.join('\n'), ADMIN);
});

t.test('models by glob: 403 for a model the key may not use', async (t) => {
  const { url } = await keyed(t);
  const h = { authorization: `Bearer ${APP}` };
  t.equal((await post(url, '/api/embed', { model: 'nomic-embed-text', input: 'x' }, { headers: h })).status, 200);
  const denied = await post(url, '/api/chat', chat('x', { model: 'qwen2.5:0.5b' }), { headers: h });
  t.equal(denied.status, 403);
  t.match(denied.json(), { error: "key 'app' may not use model 'qwen2.5:0.5b'" });
  const showDenied = await post(url, '/api/show', { model: 'qwen2.5:0.5b' }, { headers: h });
  t.equal(showDenied.status, 403);
  t.equal((await post(url, '/api/chat', chat('x', { model: 'qwen2.5:0.5b', stream: false }), { headers: { authorization: `Bearer ${ADMIN}` } })).status, 200, 'the admin key may use any model');
});

t.test('admin only: management and /metrics, unless made public; /status.json by key', async (t) => {
  const { url } = await keyed(t);
  const app = { authorization: `Bearer ${APP}` };
  const ops = { authorization: `Bearer ${ADMIN}` };
  t.equal((await post(url, '/api/pull', { model: 'phi4' }, { headers: app })).status, 403);
  t.equal((await post(url, '/api/pull', { model: 'phi4', stream: false }, { headers: ops })).status, 200);
  const m = await request(`${url}/metrics`, { headers: app });
  t.equal(m.statusCode, 403);
  await m.body.dump();
  const m2 = await request(`${url}/metrics`, { headers: ops });
  t.equal(m2.statusCode, 200);
  t.match(await m2.body.text(), /ollama_gateway_requests_total\{route="\/api\/pull",status="200"/);
  // the page holds no data (it signs in); its data needs a key: an admin's sees the fleet, any other its own
  t.equal((await get(url, '/status')).status, 200, 'the page itself, to sign in on');
  t.equal((await get(url, '/status.json')).status, 401, 'its data needs a key');
  const own = await request(`${url}/status.json`, { headers: app });
  const mine = (await own.body.json()) as { view: string; key: { name: string }; backends?: unknown };
  t.match(mine, { view: 'key', key: { name: 'app' } }, "a key that is not an admin's sees its own usage and limits");
  t.notOk('backends' in mine && Array.isArray(mine.backends), 'and no backend details');
  const all = await request(`${url}/status.json`, { headers: ops });
  t.match(await all.body.json(), { view: 'fleet', backends: [{ url: /^http/ }] }, 'an admin key sees the fleet');
});

t.test('public metrics and status for scrapers, when configured', async (t) => {
  const { url } = await keyed(t, 'auth: {public_metrics: true, public_status: true}\n');
  t.equal((await get(url, '/metrics')).status, 200);
  t.equal((await get(url, '/status.json')).status, 200);
  t.equal((await post(url, '/api/chat', chat('x'))).status, 401, 'the API still needs a key');
});

t.test('the real clients send their key as Bearer and work', async (t) => {
  const { url } = await keyed(t);
  const ollama = new Ollama({ host: url, headers: { Authorization: `Bearer ${APP}` } });
  t.ok((await ollama.list()).models.length > 0);
  const openai = new OpenAI({ baseURL: `${url}/v1`, apiKey: APP, maxRetries: 0 });
  const r = await openai.chat.completions.create({ model: 'llama3.2', messages: [{ role: 'user', content: 'hi' }] });
  t.equal(r.choices[0]?.message.content, 'The sky is');
  const bad = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'wrong', maxRetries: 0 });
  const err = await bad.models.list().then(() => undefined, (e: unknown) => e);
  t.ok(err instanceof OpenAI.AuthenticationError, 'a typed AuthenticationError');
});

t.test('hash-key and new-key', async (t) => {
  const run = promisify(execFile);
  const { stdout } = await run(process.execPath, [BIN, 'hash-key', 'abc']);
  t.equal(stdout.trim(), 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
  const made = (await run(process.execPath, [BIN, 'new-key', '--name', 'ci'])).stdout;
  const key = /^key:\s+(\S+)/m.exec(made)![1]!;
  const digest = /^sha256: (\S+)/m.exec(made)![1]!;
  t.match(key, /^ogw_[A-Za-z0-9_-]{43}$/, '32 random bytes');
  t.equal(hashKey(key), digest);
  t.match(made, /keys:\n {2}- name: ci\n {4}sha256: [0-9a-f]{64}/);
});

t.test('per-key request rate (burst, then per minute) and concurrency cap: 429 with Retry-After', async (t) => {
  const [sim] = await startSims(t, 1, { ttftMs: 0, tokenMs: 0, tokens: 2, parallel: 4 });
  const dir = mkdtempSync(join(tmpdir(), 'gw-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'gateway.yaml');
  writeFileSync(
    file,
    `backends: [{url: "http://127.0.0.1:1"}]\nkeys:\n  - {name: app, sha256: "${hashKey(APP)}", requests_per_minute: 6, burst: 2}\n  - {name: one, sha256: "${hashKey(ADMIN)}", max_concurrent: 1}\n`,
  );
  const { url } = await startGateway(t, [sim!], { slotsPerBackend: '4' }, { file });
  const app = { authorization: `Bearer ${APP}` };
  t.equal((await post(url, '/api/chat', chat('1', { stream: false }), { headers: app })).status, 200);
  t.equal((await post(url, '/api/chat', chat('2', { stream: false }), { headers: app })).status, 200);
  const limited = await post(url, '/api/chat', chat('3', { stream: false }), { headers: app });
  t.equal(limited.status, 429, 'the burst of 2 is spent');
  t.equal(limited.headers['retry-after'], '10', 'one request every 10 s at 6 a minute');
  t.match(limited.json(), { error: "key 'app' is over its rate of 6 requests per minute" });
  const openaiShape = await post(url, '/v1/chat/completions', chat('4'), { headers: app });
  t.match(openaiShape.json(), { error: { code: 'rate_limited' } });
  t.equal((await get(url, '/api/tags')).status, 401, 'catalog calls need a key but are not rate limited');

  sim!.hold();
  const one = { authorization: `Bearer ${ADMIN}` };
  const first = post(url, '/api/chat', chat('held', { stream: false }), { headers: one });
  await sim!.waitFor(() => sim!.waitingAtGate === 1);
  const second = await post(url, '/api/chat', chat('second', { stream: false }), { headers: one });
  t.equal(second.status, 429);
  t.match(second.json(), { error: /already has 1 job/ });
  sim!.release();
  t.equal((await first).status, 200);
  t.equal((await post(url, '/api/chat', chat('after', { stream: false }), { headers: one })).status, 200, 'the slot of the key is back');
});

// The simulator must be as strict as a real Ollama server, or tests against it prove nothing.
import t from 'tap';
import { request } from 'undici';
import { chat, get, post, startSims } from './helpers.js';

t.test('routes, methods, content types and statuses as Ollama serves them', async (t) => {
  const [sim] = await startSims(t, 1, { ttftMs: 0, tokenMs: 0, tokens: 3 });
  const url = sim!.url;
  const root = await get(url, '/');
  t.same([root.status, root.headers['content-type'], root.text], [200, 'text/plain; charset=utf-8', 'Ollama is running']);
  const head = await request(`${url}/`, { method: 'HEAD' });
  t.equal(head.statusCode, 200);
  t.equal(await head.body.text(), '');
  t.match((await get(url, '/api/version')).json(), { version: /^\d+\.\d+\.\d+$/ });
  const missing = await get(url, '/api/nope');
  t.same([missing.status, missing.text, missing.headers['content-type']], [404, '404 page not found', 'text/plain; charset=utf-8']);
  const wrongMethod = await get(url, '/api/chat');
  t.same([wrongMethod.status, wrongMethod.text], [405, '405 method not allowed']);
  const tags = await get(url, '/api/tags');
  t.equal(tags.headers['content-type'], 'application/json; charset=utf-8');
  t.match(tags.json(), { models: [{ name: 'llama3.2:latest', model: 'llama3.2:latest', digest: /^[0-9a-f]{64}$/, details: { format: 'gguf' } }] });
  t.same((await get(url, '/api/ps')).json(), { models: [] }, 'nothing loaded yet');
  await post(url, '/api/generate', { model: 'llama3.2', prompt: 'hi', stream: false });
  t.match((await get(url, '/api/ps')).json(), { models: [{ name: 'llama3.2:latest', expires_at: String, size_vram: Number }] }, 'loaded after use');
  const models = await get(url, '/v1/models');
  t.equal(models.headers['content-type'], 'application/json');
  t.match(models.json(), { object: 'list', data: [{ id: 'llama3.2:latest', object: 'model', owned_by: 'library' }] });
  t.equal((await get(url, '/v1/models/llama3.2')).status, 200);
  t.match((await get(url, '/v1/models/nope')).json(), { error: { type: 'not_found_error' } });
  t.match((await post(url, '/api/show', { model: 'llama3.2' })).json(), { capabilities: ['completion', 'tools'], details: { family: 'llama' } });
});

t.test('stream defaults: on for native routes, off for /v1', async (t) => {
  const [sim] = await startSims(t, 1, { ttftMs: 0, tokenMs: 0, tokens: 3 });
  const native = await post(sim!.url, '/api/chat', chat('x'));
  t.equal(native.headers['content-type'], 'application/x-ndjson');
  const lines = native.text.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  t.equal(lines.length, 4);
  t.match(lines[0], { model: 'llama3.2', created_at: String, message: { role: 'assistant', content: 'The' }, done: false });
  t.match(lines[3], { done: true, done_reason: 'stop', total_duration: Number, load_duration: Number, prompt_eval_count: Number, eval_count: 3, eval_duration: Number });
  t.same(Object.keys(lines[3]!), ['model', 'created_at', 'message', 'done', 'done_reason', 'total_duration', 'load_duration', 'prompt_eval_count', 'prompt_eval_duration', 'eval_count', 'eval_duration'], 'Go struct field order');
  const whole = await post(sim!.url, '/api/generate', { model: 'llama3.2', prompt: 'x', stream: false });
  t.equal(whole.headers['content-type'], 'application/json; charset=utf-8');
  t.match(whole.json(), { response: 'The sky is', done: true, context: Array });
  const openai = await post(sim!.url, '/v1/chat/completions', chat('x'));
  t.match(openai.json(), { object: 'chat.completion', choices: [{ message: { content: 'The sky is' }, finish_reason: 'stop' }], usage: { completion_tokens: 3 } });
  const sse = await post(sim!.url, '/v1/chat/completions', chat('x', { stream: true }));
  const events = sse.text.split('\n\n').filter(Boolean);
  t.equal(events[events.length - 1], 'data: [DONE]');
  t.notMatch(sse.text, /usage/, 'usage only when asked');
  const withUsage = await post(sim!.url, '/v1/chat/completions', chat('x', { stream: true, stream_options: { include_usage: true } }));
  t.match(withUsage.text, /"choices":\[\],"usage":\{"prompt_tokens":\d+,"completion_tokens":3/);
  const limited = await post(sim!.url, '/api/chat', chat('x', { stream: false, options: { num_predict: 2 } }));
  t.match(limited.json(), { done_reason: 'length', eval_count: 2 });
});

t.test('errors as Ollama writes them', async (t) => {
  const [sim] = await startSims(t, 1);
  const unknown = await post(sim!.url, '/api/chat', chat('x', { model: 'foo' }));
  t.same([unknown.status, unknown.json()], [404, { error: "model 'foo' not found" }]);
  const embedUnknown = await post(sim!.url, '/api/embed', { model: 'foo', input: 'x' });
  t.same(embedUnknown.json(), { error: 'model "foo" not found, try pulling it first' });
  t.same((await post(sim!.url, '/api/chat', { messages: [] })).json(), { error: 'model is required' });
  t.equal((await post(sim!.url, '/api/chat', '{bad')).status, 400);
  t.match((await post(sim!.url, '/v1/chat/completions', chat('x', { model: 'foo' }))).json(), { error: { message: "model 'foo' not found", type: 'not_found_error', param: null, code: null } });
  t.match((await post(sim!.url, '/api/chat', chat('x', { model: 'nomic-embed-text' }))).json(), { error: /does not support chat/ });
});

t.test('parallel limit: extra requests wait inside, and the counters see it', async (t) => {
  const [sim] = await startSims(t, 1, { parallel: 2, ttftMs: 0, tokenMs: 0, tokens: 1 });
  sim!.hold();
  const jobs = [1, 2, 3].map((i) => post(sim!.url, '/api/chat', chat(`j${i}`, { stream: false })));
  await sim!.waitFor(() => sim!.stats.active === 3 && sim!.waitingAtGate === 2);
  t.equal(sim!.stats.maxActive, 3, 'three open at the server');
  t.equal(sim!.waitingAtGate, 2, 'only two generating (the third waits for a parallel slot)');
  sim!.release();
  await Promise.all(jobs);
  t.equal(sim!.stats.completed, 3);
});

t.test('a client that leaves stops the generation', async (t) => {
  const [sim] = await startSims(t, 1, { ttftMs: 0, tokenMs: 10, tokens: 1000 });
  const ac = new AbortController();
  const res = await request(`${sim!.url}/api/chat`, { method: 'POST', body: JSON.stringify(chat('x')), signal: ac.signal });
  for await (const _ of res.body) break;
  ac.abort();
  await sim!.waitFor(() => sim!.stats.cancelled === 1);
  const sent = sim!.stats.tokensSent;
  await new Promise((r) => setTimeout(r, 50));
  t.equal(sim!.stats.tokensSent, sent, 'no token after the client left');
});

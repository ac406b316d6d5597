// One catalog for the fleet, and model-aware routing, seen through real sockets and the real
// client libraries (ollama-js, openai-node): they must not notice the gateway.
import { Ollama } from 'ollama';
import OpenAI from 'openai';
import t from 'tap';
import { chat, get, post, settled, startGateway, startSims } from './helpers.js';
import { Simulator } from '../dist/src/simulator/simulator.js';

async function fleet(t: Parameters<typeof startSims>[0]) {
  const a = await Simulator.start({ models: ['llama3.2:latest', 'nomic-embed-text:latest'], ttftMs: 0, tokenMs: 1, tokens: 6, version: '0.13.5' });
  const b = await Simulator.start({ models: ['qwen2.5:0.5b', 'llama3.2:latest'], ttftMs: 0, tokenMs: 1, tokens: 6, version: '0.12.3' });
  const c = await Simulator.start({ models: ['phi4:14b'], ttftMs: 0, tokenMs: 1, tokens: 6, version: 'v0.14.0-rc1' });
  t.teardown(() => Promise.all([a, b, c].map((s) => s.stop())));
  return [a, b, c] as const;
}

t.test('the catalog is the union of the fleet, in each API\'s shape', async (t) => {
  const sims = await fleet(t);
  const { url, gateway } = await startGateway(t, [...sims]);
  const tags = (await get(url, '/api/tags')).json<{ models: { name: string }[] }>();
  t.same(tags.models.map((m) => m.name).sort(), ['llama3.2:latest', 'nomic-embed-text:latest', 'phi4:14b', 'qwen2.5:0.5b'], 'each model once');
  const version = await get(url, '/api/version');
  t.same(version.json(), { version: '0.12.3' }, 'the lowest version in the fleet');
  const models = await get(url, '/v1/models');
  t.equal(models.headers['content-type'], 'application/json');
  t.match(models.json(), { object: 'list', data: [{ object: 'model', owned_by: 'library' }] });
  t.equal(models.json<{ data: unknown[] }>().data.length, 4);
  t.equal((await get(url, '/v1/models/qwen2.5:0.5b')).status, 200);
  const missing = await get(url, '/v1/models/nope');
  t.equal(missing.status, 404);
  t.match(missing.json(), { error: { message: "model 'nope' not found", type: 'not_found_error' } });
  t.same((await get(url, '/api/ps')).json(), { models: [] });
  await post(url, '/api/chat', chat('warm it', { model: 'qwen2.5:0.5b', stream: false }));
  await gateway.catalogs.refresh(gateway.registry.byName('sim2')!);
  t.match((await get(url, '/api/ps')).json(), { models: [{ name: 'qwen2.5:0.5b' }] }, 'loaded models show up');
  t.equal(sims.reduce((n, s) => n + (s.stats.byPath['/api/tags'] ?? 0), 0) >= 3, true, 'the catalog comes from polls');
  const polls = sims[0].stats.byPath['/api/tags'];
  await get(url, '/api/tags');
  t.equal(sims[0].stats.byPath['/api/tags'], polls, 'answering /api/tags asks no backend');
});

t.test('a job goes only to a backend that holds its model; no holder at all is a 404 at once', async (t) => {
  const [a, b, c] = await fleet(t);
  const { url, gateway } = await startGateway(t, [a, b, c]);
  for (let i = 0; i < 4; i++) t.equal((await post(url, '/api/chat', chat(`q${i}`, { model: 'qwen2.5:0.5b', stream: false }))).status, 200);
  t.equal(b.stats.requests, 4, 'qwen lives only on the second backend');
  await Promise.all([0, 1, 2, 3].map((i) => post(url, '/api/generate', { model: 'llama3.2', prompt: `l${i}`, stream: false })));
  t.equal(c.stats.requests, 0, 'llama3.2 never goes to the box without it');
  t.ok(a.stats.requests > 0 && b.stats.requests > 4, 'and is shared between the two that hold it');
  const chatMissing = await post(url, '/api/chat', chat('x', { model: 'nope' }));
  t.same([chatMissing.status, chatMissing.json()], [404, { error: "model 'nope' not found" }]);
  const embedMissing = await post(url, '/api/embed', { model: 'nope', input: 'x' });
  t.same(embedMissing.json(), { error: 'model "nope" not found, try pulling it first' });
  const openaiMissing = await post(url, '/v1/chat/completions', chat('x', { model: 'nope' }));
  t.match(openaiMissing.json(), { error: { message: "model 'nope' not found", type: 'not_found_error', code: 'model_not_found' } });
  t.equal(a.stats.requests + b.stats.requests + c.stats.requests, 8, 'no backend saw the unknown model');
  const show = await post(url, '/api/show', { model: 'phi4:14b' });
  t.equal(show.status, 200, '/api/show reaches the backend that holds the model');
  t.equal(c.stats.byPath['/api/show'], 1);
  await settled(gateway);
});

t.test('waiters for a model take only slots of backends that hold it', async (t) => {
  const [a, b] = await fleet(t);
  a.hold();
  b.hold();
  const { url, gateway } = await startGateway(t, [a, b]);
  const first = post(url, '/api/chat', chat('on b', { model: 'qwen2.5:0.5b', stream: false }));
  await b.waitFor(() => b.waitingAtGate === 1);
  const second = post(url, '/api/chat', chat('waits for b', { model: 'qwen2.5:0.5b', stream: false }));
  const other = post(url, '/api/chat', chat('llama on a', { model: 'llama3.2', stream: false }));
  await a.waitFor(() => a.waitingAtGate === 1);
  t.equal(gateway.dispatcher.queueDepth, 1, 'the second qwen job waits: only b holds qwen');
  a.release();
  await other;
  t.equal(gateway.dispatcher.queueDepth, 1, 'a free slot on a backend without the model does not take it');
  b.release();
  t.same([(await first).status, (await second).status], [200, 200]);
  t.equal(a.seen.filter((r) => r.tag?.includes('b')).length, 0);
  await settled(gateway);
});

t.test('a backend that lost a model: its catalog is polled again and the job goes elsewhere', async (t) => {
  const [a, b] = await fleet(t);
  const { url, gateway, logs } = await startGateway(t, [a, b]);
  a.models.delete('llama3.2:latest'); // deleted behind the gateway's back
  for (let i = 0; i < 2; i++) {
    const r = await post(url, '/api/chat', chat(`x${i}`, { stream: false }), { headers: { 'x-request-id': `lost-${i}` } });
    t.equal(r.status, 200);
  }
  t.ok(logs.requests().some((l) => l['attempts'] === 2 && l['backend'] === 'sim2'), 'one went to sim1 first, then to sim2');
  await gateway.catalogs.refresh(gateway.registry.byName('sim1')!);
  t.equal(gateway.registry.byName('sim1')!.serves('llama3.2'), false, 'the new poll shows it gone');
  await settled(gateway);
});

t.test('the ollama client library cannot tell the gateway from Ollama', async (t) => {
  const [a, b] = await fleet(t);
  const { url } = await startGateway(t, [a, b]);
  const ollama = new Ollama({ host: url });
  const list = await ollama.list();
  t.same(list.models.map((m) => m.name).sort(), ['llama3.2:latest', 'nomic-embed-text:latest', 'qwen2.5:0.5b']);
  let text = '';
  let final: { done: boolean; eval_count?: number } | undefined;
  for await (const part of await ollama.chat({ model: 'llama3.2', messages: [{ role: 'user', content: 'hi' }], stream: true })) {
    text += part.message.content;
    if (part.done) final = part;
  }
  t.equal(text, 'The sky is blue because of');
  t.match(final, { done: true, eval_count: 6 });
  const gen = await ollama.generate({ model: 'qwen2.5:0.5b', prompt: 'hi' });
  t.equal(gen.response, 'The sky is blue because of');
  const emb = await ollama.embed({ model: 'nomic-embed-text', input: ['a', 'b'] });
  t.equal(emb.embeddings.length, 2);
  const ps = await ollama.ps();
  t.type(ps.models, Array);
  const show = await ollama.show({ model: 'qwen2.5:0.5b' });
  t.match(show, { details: { family: 'qwen' } });
  const err = await ollama.chat({ model: 'nope', messages: [{ role: 'user', content: 'x' }] }).then(() => undefined, (e: unknown) => e);
  t.match(err, { status_code: 404, error: "model 'nope' not found" }, 'a ResponseError with Ollama\'s words');
});

t.test('the openai client library cannot tell the gateway from Ollama', async (t) => {
  const [a, b] = await fleet(t);
  const { url } = await startGateway(t, [a, b]);
  const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'unused', maxRetries: 0 });
  const stream = await client.chat.completions.create({ model: 'llama3.2', stream: true, stream_options: { include_usage: true }, messages: [{ role: 'user', content: 'hi' }] });
  let text = '';
  let usage: OpenAI.CompletionUsage | undefined | null;
  for await (const chunk of stream) {
    text += chunk.choices[0]?.delta.content ?? '';
    if (chunk.usage) usage = chunk.usage;
  }
  t.equal(text, 'The sky is blue because of');
  t.match(usage, { completion_tokens: 6 });
  const models = await client.models.list();
  t.same(models.data.map((m) => m.id).sort(), ['llama3.2:latest', 'nomic-embed-text:latest', 'qwen2.5:0.5b']);
  const emb = await client.embeddings.create({ model: 'nomic-embed-text', input: 'hello' });
  t.equal(emb.data.length, 1);
  const err = await client.chat.completions.create({ model: 'nope', messages: [{ role: 'user', content: 'x' }] }).then(() => undefined, (e: unknown) => e);
  t.ok(err instanceof OpenAI.NotFoundError, 'a typed NotFoundError');
  t.match(err, { status: 404, message: /model 'nope' not found/ });
});

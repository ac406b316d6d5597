// Ollama's load and unload requests through the gateway (issue 15.2), with the real `ollama`
// client: `keep_alive: 0` with nothing to generate (what `ollama stop` and Open WebUI's unload
// send) goes at once, without a slot, to every backend that has the model loaded, and answers as
// Ollama does; a preload is a job for one backend; /api/ps shows both at once, not at the next poll.
import { Ollama } from 'ollama';
import t from 'tap';
import { chat, get, post, settled, startGateway, startSims, until } from './helpers.js';

t.test('an unload goes at once to every backend that has the model loaded, while every slot is busy', async (t) => {
  const sims = await startSims(t, 2, { ttftMs: 0, tokenMs: 1, tokens: 3 });
  const { url, gateway } = await startGateway(t, sims, { queueSize: '10' });
  const ollama = new Ollama({ host: url });
  // load the model on both boxes, then fill both slots and queue one more job
  await Promise.all([post(url, '/api/chat', chat('a', { stream: false })), post(url, '/api/chat', chat('b', { stream: false }))]);
  t.ok(sims.every((s) => s.stats.loads === 1), 'the model is loaded on both');
  for (const s of sims) s.hold();
  const busy = [0, 1, 2].map((i) => post(url, '/api/chat', chat(`busy ${i}`, { stream: false })));
  await until(() => gateway.dispatcher.queueDepth === 1, 'both slots busy, one job waiting');
  const answer = await ollama.generate({ model: 'llama3.2', prompt: '', keep_alive: 0 });
  t.match(answer, { model: 'llama3.2', response: '', done: true, done_reason: 'unload' }, 'answered as Ollama does');
  t.same(sims.map((s) => s.stats.unloads), [1, 1], 'both backends unloaded it, with no slot free');
  t.equal(gateway.dispatcher.queueDepth, 1, 'it did not wait behind the queued job');
  const ps = (await get(url, '/api/ps')).json<{ models: { name: string }[] }>();
  t.notOk(ps.models.some((m) => m.name === 'llama3.2:latest'), '/api/ps no longer lists it');
  t.ok(gateway.registry.all.every((b) => !b.catalog.hasLoaded('llama3.2')), 'nor does the warm-first view');
  const viaChat = await ollama.chat({ model: 'llama3.2', messages: [], keep_alive: 0 });
  t.match(viaChat, { message: { role: 'assistant', content: '' }, done: true, done_reason: 'unload' }, 'a message-less chat unloads too');
  for (const s of sims) s.release();
  await Promise.all(busy);
  await settled(gateway);
});

t.test('a preload is one job, for one backend, and shows in /api/ps at once', async (t) => {
  const sims = await startSims(t, 2, { ttftMs: 0, tokenMs: 1, tokens: 3 });
  const { url, gateway } = await startGateway(t, sims);
  const ollama = new Ollama({ host: url });
  const before = (await get(url, '/api/ps')).json<{ models: unknown[] }>();
  t.equal(before.models.length, 0);
  const answer = await ollama.generate({ model: 'qwen2.5:0.5b', prompt: '' });
  t.match(answer, { model: 'qwen2.5:0.5b', done: true, done_reason: 'load' });
  t.equal(sims[0]!.stats.loads + sims[1]!.stats.loads, 1, 'loaded on one backend');
  const ps = (await get(url, '/api/ps')).json<{ models: { name: string }[] }>();
  t.same(ps.models.map((m) => m.name), ['qwen2.5:0.5b'], 'in /api/ps without waiting for a poll');
  const loadedOn = gateway.registry.all.find((b) => b.catalog.hasLoaded('qwen2.5:0.5b'))!;
  const r = await post(url, '/api/chat', chat('after the preload', { model: 'qwen2.5:0.5b', stream: false }));
  t.equal(r.status, 200);
  t.equal(sims.find((s) => s.url === loadedOn.url)!.seen.some((x) => x.tag === 'after the preload'), true, 'the next job goes where it is loaded');
  await settled(gateway);
});

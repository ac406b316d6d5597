// OpenAI-compatible backends (vLLM, llama.cpp's server, LM Studio) beside Ollama ones: their
// catalog comes from /v1/models, their health from their own route, and only /v1 jobs go there.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import OpenAI from 'openai';
import t from 'tap';
import { chat, get, post, settled, startGateway, until } from './helpers.js';
import { Simulator } from '../dist/src/simulator/simulator.js';

async function mixedFleet(t: { teardown(fn: () => unknown): void }) {
  const ollama = await Simulator.start({ models: ['llama3.2:latest'], ttftMs: 0, tokenMs: 1, tokens: 4 });
  const vllm = await Simulator.start({ flavor: 'openai', models: ['meta-llama/Llama-3.1-8B-Instruct', 'llama3.2:latest'], ttftMs: 0, tokenMs: 1, tokens: 4 });
  t.teardown(() => Promise.all([ollama.stop(), vllm.stop()]));
  const dir = mkdtempSync(join(tmpdir(), 'gw-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'gateway.yaml');
  writeFileSync(file, `backends:\n  - url: ${ollama.url}\n    name: box\n  - url: ${vllm.url}\n    name: vllm\n    type: openai\n    health_path: /health\n`);
  const fx = await startGateway(t, [], {}, { file, backendsFromFile: true });
  return { ollama, vllm, ...fx };
}

t.test('the catalog: /v1/models lists both kinds, /api/tags only what /api/chat can reach', async (t) => {
  const { url, vllm } = await mixedFleet(t);
  const ids = (await get(url, '/v1/models')).json<{ data: { id: string }[] }>().data.map((m) => m.id).sort();
  t.same(ids, ['llama3.2:latest', 'meta-llama/Llama-3.1-8B-Instruct']);
  const tags = (await get(url, '/api/tags')).json<{ models: { name: string }[] }>().models.map((m) => m.name);
  t.same(tags, ['llama3.2:latest']);
  t.ok((vllm.stats.byPath['/health'] ?? 0) >= 1, 'probed on its own health route');
  t.equal(vllm.stats.byPath['/api/tags'], undefined, 'never asked for an Ollama route');
});

t.test('native jobs never go to an OpenAI-compatible backend, even when the Ollama one is busy', async (t) => {
  const { url, gateway, ollama, vllm } = await mixedFleet(t);
  ollama.hold();
  const first = post(url, '/api/chat', chat('a', { stream: false }));
  await ollama.waitFor(() => ollama.waitingAtGate === 1);
  const second = post(url, '/api/chat', chat('b', { stream: false }));
  await until(() => gateway.dispatcher.queueDepth === 1, 'second waits for the Ollama box');
  t.equal(vllm.stats.requests, 0);
  ollama.release();
  t.same([(await first).status, (await second).status], [200, 200]);
  const only = await post(url, '/api/chat', chat('x', { model: 'meta-llama/Llama-3.1-8B-Instruct' }));
  t.equal(only.status, 404, 'a model only an OpenAI-compatible server holds is not on /api');
  await settled(gateway);
});

t.test('/v1 jobs for its models reach it, and the openai client works through the gateway', async (t) => {
  const { url, vllm, ollama } = await mixedFleet(t);
  const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'x', maxRetries: 0 });
  const res = await client.chat.completions.create({ model: 'meta-llama/Llama-3.1-8B-Instruct', messages: [{ role: 'user', content: 'hi' }] });
  t.equal(res.choices[0]?.message.content, 'The sky is blue');
  t.equal(vllm.stats.requests, 1);
  await Promise.all([0, 1, 2, 3].map(() => client.chat.completions.create({ model: 'llama3.2', messages: [{ role: 'user', content: 'hi' }] })));
  t.ok(ollama.stats.requests > 0, 'a model both hold is shared on /v1');
});

// Model aliases: OpenAI-minded clients ask for `gpt-4o-mini` and get the fleet's llama, under
// the name they asked for.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import OpenAI from 'openai';
import t from 'tap';
import { ModelRename } from '../dist/src/relay/model-rename.js';
import { chat, get, post, startGateway, startSims } from './helpers.js';

async function aliased(t: Parameters<typeof startSims>[0]) {
  const [sim] = await startSims(t, 1, { ttftMs: 0, tokenMs: 1, tokens: 5 });
  const dir = mkdtempSync(join(tmpdir(), 'gw-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'gateway.yaml');
  writeFileSync(file, `backends: [{url: "http://127.0.0.1:1"}]\naliases:\n  gpt-4o-mini: llama3.2\n  ghost: not-in-the-fleet\n`);
  return { sim: sim!, ...(await startGateway(t, [sim!], {}, { file })) };
}

t.test('the backend gets the target, the client sees the alias, streamed or not', async (t) => {
  const { url, sim } = await aliased(t);
  const streamed = await post(url, '/api/chat', chat('hi', { model: 'gpt-4o-mini' }));
  const lines = streamed.text.trim().split('\n').map((l) => JSON.parse(l) as { model: string; done: boolean });
  t.equal(lines.length, 6);
  t.ok(lines.every((l) => l.model === 'gpt-4o-mini'), 'every chunk names the alias');
  t.equal(sim.seen.find((r) => r.path === '/api/chat')!.model, 'llama3.2', 'the backend was asked for the target');
  const whole = await post(url, '/api/generate', { model: 'gpt-4o-mini', prompt: 'x', stream: false });
  t.match(whole.json(), { model: 'gpt-4o-mini', done: true });
  const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'x', maxRetries: 0 });
  const res = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] });
  t.equal(res.model, 'gpt-4o-mini');
  const stream = await client.chat.completions.create({ model: 'gpt-4o-mini', stream: true, messages: [{ role: 'user', content: 'hi' }] });
  for await (const chunk of stream) t.equal(chunk.model, 'gpt-4o-mini');
});

t.test('aliases are listed beside their targets; an alias to nothing is a 404 under its own name', async (t) => {
  const { url } = await aliased(t);
  const ids = (await get(url, '/v1/models')).json<{ data: { id: string }[] }>().data.map((m) => m.id);
  t.ok(ids.includes('gpt-4o-mini') && ids.includes('llama3.2:latest'));
  t.notOk(ids.includes('ghost'), 'an alias whose target nobody serves is not listed');
  t.match((await get(url, '/v1/models/gpt-4o-mini')).json(), { id: 'gpt-4o-mini', object: 'model' });
  t.ok((await get(url, '/api/tags')).json<{ models: { name: string }[] }>().models.some((m) => m.name === 'gpt-4o-mini'));
  const ghost = await post(url, '/v1/chat/completions', chat('x', { model: 'ghost' }));
  t.equal(ghost.status, 404);
  t.match(ghost.json(), { error: { message: "model 'ghost' not found" } });
});

t.test('the rename survives any chunk split', async (t) => {
  const text = '{"model":"llama3.2","response":"a","done":false}\n{"model":"llama3.2","response":"","done":true}\n';
  const want = text.replaceAll('"model":"llama3.2"', '"model":"gpt-4o-mini"');
  for (let cut = 0; cut <= text.length; cut++) {
    const r = new ModelRename('llama3.2', 'gpt-4o-mini');
    const out = Buffer.concat([r.push(Buffer.from(text.slice(0, cut))), r.push(Buffer.from(text.slice(cut))), r.flush() ?? Buffer.alloc(0)]).toString();
    t.equal(out, want, `split at ${cut}`);
  }
});

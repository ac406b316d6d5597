// Model names as Ollama matches them (issue 15.7): without regard to case, and `/v1/models/:id`
// echoing the id as asked; a key's globs match the same way.
import OpenAI from 'openai';
import t from 'tap';
import { hashKey } from '../dist/src/auth/keys.js';
import { chat, configFile, get, post, settled, startGateway, startSims } from './helpers.js';

const KEY = 'ogw_model-names-key-0123456789abc';

t.test('a model asked for in another case is the same model, routed, allowed and listed as Ollama does', async (t) => {
  const [sim] = await startSims(t, 1, { ttftMs: 0, tokenMs: 0, tokens: 2 });
  const file = configFile(t, `backends: [{url: "${sim!.url}"}]\nkeys:\n  - {name: app, sha256: "${hashKey(KEY)}", models: ["llama3*"]}\n`);
  const { url, gateway } = await startGateway(t, [sim!], {}, { file, backendsFromFile: true });
  const auth = { authorization: `Bearer ${KEY}` };
  const upper = await post(url, '/api/chat', chat('case', { model: 'Llama3.2', stream: false }), { headers: auth });
  t.equal(upper.status, 200, '"Llama3.2" is llama3.2:latest, as in Ollama');
  t.equal(upper.json<{ model: string }>().model, 'Llama3.2', 'answered under the name asked');
  t.equal((await post(url, '/api/chat', chat('case', { model: 'LLAMA3.2:LATEST', stream: false }), { headers: auth })).status, 200, 'the key\'s llama3* glob matches it too');
  t.equal((await post(url, '/api/chat', chat('case', { model: 'QWEN2.5:0.5b', stream: false }), { headers: auth })).status, 403, 'and still refuses what it does not allow');
  const byId = await new OpenAI({ baseURL: `${url}/v1`, apiKey: KEY }).models.retrieve('llama3.2');
  t.equal(byId.id, 'llama3.2', '/v1/models/:id echoes the id as asked');
  const tags = (await get(url, '/api/tags')).status;
  t.equal(tags, 401, '(the catalog needs the key)');
  await settled(gateway);
});

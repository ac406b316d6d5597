// Catalogs per key (issue 12.3): a key is shown the models it may use, aliases judged by their
// target, and gets 404 for a model it may not see; an admin or an open gateway sees all.
import OpenAI from 'openai';
import t from 'tap';
import { hashKey } from '../dist/src/auth/keys.js';
import { configFile, get, startGateway, startSims } from './helpers.js';
import { request } from 'undici';

const APP = 'ogw_catalog-key-app-0123456789ab';
const OPS = 'ogw_catalog-key-ops-0123456789ab';

t.test('/api/tags, /api/ps and /v1/models list to each key what it may use', async (t) => {
  const [sim] = await startSims(t, 1, { ttftMs: 0, tokenMs: 0, tokens: 2 });
  const file = configFile(
    t,
    `backends: [{url: "${sim!.url}"}]\naliases: {fast: "llama3.2:latest", llama3-cheap: "qwen2.5:0.5b"}\n` +
      `keys:\n  - {name: app, sha256: "${hashKey(APP)}", models: ["llama3*"]}\n  - {name: ops, sha256: "${hashKey(OPS)}", admin: true}\n`,
  );
  const { url } = await startGateway(t, [sim!], {}, { file, backendsFromFile: true });
  const tags = async (key: string) => {
    const r = await request(`${url}/api/tags`, { headers: { authorization: `Bearer ${key}` } });
    return ((await r.body.json()) as { models: { name: string }[] }).models.map((m) => m.name).sort();
  };
  t.same(await tags(APP), ['fast', 'llama3.2:latest'], 'its llama3* models, and the alias whose target it may use; not the alias that only matches by name');
  t.same(await tags(OPS), ['fast', 'llama3-cheap', 'llama3.2:latest', 'nomic-embed-text:latest', 'qwen2.5:0.5b'], 'a key for every model sees all');
  const openai = new OpenAI({ baseURL: `${url}/v1`, apiKey: APP, maxRetries: 0 });
  t.same((await openai.models.list()).data.map((m) => m.id).sort(), ['fast', 'llama3.2:latest']);
  t.equal((await openai.models.retrieve('llama3.2')).id, 'llama3.2');
  t.ok((await openai.models.retrieve('qwen2.5:0.5b').catch((e: unknown) => e)) instanceof OpenAI.NotFoundError, 'a model it may not use is not there for it');
  await request(`${url}/api/chat`, { method: 'POST', headers: { authorization: `Bearer ${OPS}` }, body: JSON.stringify({ model: 'qwen2.5:0.5b', messages: [{ role: 'user', content: 'x' }], stream: false }) }).then((r) => r.body.dump());
  const ps = async (key: string) => ((await (await request(`${url}/api/ps`, { headers: { authorization: `Bearer ${key}` } })).body.json()) as { models: { name: string }[] }).models.map((m) => m.name);
  t.same(await ps(OPS), ['qwen2.5:0.5b'], 'loaded, as an admin sees it');
  t.same(await ps(APP), [], 'and not for a key that may not use it');
  t.equal((await get(url, '/api/tags')).status, 401);
});

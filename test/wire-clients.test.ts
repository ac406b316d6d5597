// The real clients through the gateway on what a model does beyond text (issue 15.9): tool calls
// and thinking with `ollama` (native NDJSON), tool calls with `openai` (SSE and whole), under an
// alias too (the answer is renamed chunk by chunk, tool-call chunks included), and embeddings in
// the openai client's default encoding (base64), which must decode to the backend's own vector.
import { Ollama } from 'ollama';
import OpenAI from 'openai';
import t from 'tap';
import { configFile, settled, startGateway, startSims } from './helpers.js';

const weather = {
  type: 'function' as const,
  function: {
    name: 'get_weather',
    description: 'The weather in a city',
    parameters: { type: 'object', properties: { city: { type: 'string', description: 'the city' } }, required: ['city'] },
  },
};

t.test('ollama: a tool call and thinking, streamed and whole, through the gateway', async (t) => {
  const [sim] = await startSims(t, 1, { ttftMs: 0, tokenMs: 1, tokens: 5 });
  const { url, gateway } = await startGateway(t, [sim!]);
  const ollama = new Ollama({ host: url });
  const whole = await ollama.chat({ model: 'llama3.2', messages: [{ role: 'user', content: 'Is it raining? use get_weather' }], tools: [weather] });
  t.match(whole.message.tool_calls, [{ function: { name: 'get_weather', arguments: { city: 'Paris' } } }], 'the whole answer carries the tool call');
  const calls: unknown[] = [];
  for await (const part of await ollama.chat({ model: 'llama3.2', stream: true, messages: [{ role: 'user', content: 'Is it raining? use get_weather' }], tools: [weather] })) {
    calls.push(...(part.message.tool_calls ?? []));
  }
  t.match(calls, [{ function: { name: 'get_weather', arguments: { city: 'Paris' } } }], 'the stream carries it in one chunk');

  let thinking = '';
  let content = '';
  for await (const part of await ollama.chat({ model: 'llama3.2', stream: true, think: true, messages: [{ role: 'user', content: 'Why is the sky blue?' }] })) {
    thinking += part.message.thinking ?? '';
    content += part.message.content;
  }
  t.equal(thinking, 'The user asks about the sky. Rayleigh scattering explains it.', 'the thinking arrives before the answer');
  t.match(content, /^The sky is blue/);
  await settled(gateway);
});

t.test('openai: tool calls streamed and whole, under an alias; embeddings in the default base64 encoding', async (t) => {
  const [sim] = await startSims(t, 1, { ttftMs: 0, tokenMs: 1, tokens: 5 });
  const file = configFile(t, `backends: [{url: "${sim!.url}"}]\naliases:\n  gpt-4o-mini: llama3.2\n`);
  const { url, gateway } = await startGateway(t, [sim!], {}, { file, backendsFromFile: true });
  const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'unused', maxRetries: 0 });
  const messages = [{ role: 'user' as const, content: 'Is it raining? use get_weather' }];
  const whole = await client.chat.completions.create({ model: 'gpt-4o-mini', messages, tools: [weather] });
  t.equal(whole.model, 'gpt-4o-mini', 'the alias is echoed');
  t.equal(whole.choices[0]?.finish_reason, 'tool_calls');
  t.match(whole.choices[0]?.message.tool_calls, [{ type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } }]);

  const stream = await client.chat.completions.create({ model: 'gpt-4o-mini', messages, tools: [weather], stream: true });
  const names: string[] = [];
  let args = '';
  let finish: string | null | undefined;
  const models = new Set<string>();
  for await (const chunk of stream) {
    models.add(chunk.model);
    for (const c of chunk.choices[0]?.delta.tool_calls ?? []) {
      if (c.function?.name) names.push(c.function.name);
      args += c.function?.arguments ?? '';
    }
    finish = chunk.choices[0]?.finish_reason ?? finish;
  }
  t.same(names, ['get_weather']);
  t.same(JSON.parse(args), { city: 'Paris' });
  t.equal(finish, 'tool_calls');
  t.same([...models], ['gpt-4o-mini'], 'every chunk, the tool call too, under the alias');

  // the client asks for base64 unless told otherwise, and decodes it: the vector must be the backend's
  const viaClient = await client.embeddings.create({ model: 'nomic-embed-text', input: 'hello' });
  const native = (await (await fetch(`${url}/api/embed`, { method: 'POST', body: JSON.stringify({ model: 'nomic-embed-text', input: 'hello' }) })).json()) as { embeddings: number[][] };
  const got = viaClient.data[0]!.embedding;
  const want = native.embeddings[0]!;
  t.equal(got.length, want.length, `${want.length} dimensions`);
  t.ok(got.some((x) => x !== 0), 'not zeros');
  t.ok(got.every((x, i) => Math.abs(x - want[i]!) < 1e-6), 'the same vector as /api/embed gives (float32 precision)');
  await settled(gateway);
});

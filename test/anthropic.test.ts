// Anthropic Messages (/v1/messages: Claude Code and the Anthropic SDK; Ollama serves it) through
// the gateway, with the real @anthropic-ai/sdk (issue 15.3): the gateway's own errors in
// Anthropic's shape, a backend failure mid-stream as an `event: error` the SDK raises (not a
// cut answer that looks whole), and token counts read for logs, the ledger and budgets.
import Anthropic from '@anthropic-ai/sdk';
import t from 'tap';
import { hashKey } from '../dist/src/auth/keys.js';
import { configFile, settled, startGateway, startSims } from './helpers.js';

const KEY = 'ogw_anthropic-test-key-0123456789';

t.test('messages, streamed and not, through the gateway as from Ollama; token counts read', async (t) => {
  // 40 tokens: the stream's last KiB no longer holds message_start, where its input tokens are
  const [sim] = await startSims(t, 1, { ttftMs: 0, tokenMs: 1, tokens: 40 });
  const { url, gateway, logs } = await startGateway(t, [sim!]);
  const client = new Anthropic({ baseURL: url, apiKey: 'unused', maxRetries: 0 });
  const whole = await client.messages.create({ model: 'llama3.2', max_tokens: 100, messages: [{ role: 'user', content: 'whole' }] }, { headers: { 'x-request-id': 'msg-whole' } });
  t.equal(whole.type, 'message');
  t.match(whole.content[0], { type: 'text', text: /The sky/ });
  t.match(await logs.requestLine('msg-whole'), { status: 200, completion_tokens: 40, prompt_tokens: 12 });
  const stream = client.messages.stream({ model: 'llama3.2', max_tokens: 100, messages: [{ role: 'user', content: 'streamed' }] }, { headers: { 'x-request-id': 'msg-stream' } });
  let text = '';
  stream.on('text', (d) => (text += d));
  const final = await stream.finalMessage();
  t.match(text, /^The sky is blue/);
  t.equal(final.usage.output_tokens, 40);
  const line = await logs.requestLine('msg-stream');
  // (the gateway's own estimate, 4 bytes of body a token, would say 26)
  t.match(line, { status: 200, completion_tokens: 40, prompt_tokens: 12 }, 'input tokens from message_start, output from message_delta');
  t.type(line['ttfb_ms'], 'number');
  t.equal(gateway.ledger.totalsByKey().get('')?.completionTokens, 80, 'the ledger counted both');
  await settled(gateway);
});

t.test("the gateway's own errors in Anthropic's shape, as the SDK types them", async (t) => {
  const [sim] = await startSims(t, 1, { ttftMs: 0, tokenMs: 1, tokens: 3 });
  const file = configFile(t, `backends: [{url: "${sim!.url}"}]\nkeys:\n  - {name: app, sha256: "${hashKey(KEY)}", models: ["llama3*"]}\n`);
  const { url } = await startGateway(t, [sim!], {}, { file, backendsFromFile: true });
  const ask = (apiKey: string, model: string) => new Anthropic({ baseURL: url, apiKey, maxRetries: 0 }).messages.create({ model, max_tokens: 10, messages: [{ role: 'user', content: 'x' }] });
  const unauthorized = await ask('wrong', 'llama3.2').catch((e: unknown) => e);
  t.ok(unauthorized instanceof Anthropic.AuthenticationError, 'a bad key is an AuthenticationError');
  t.match((unauthorized as InstanceType<typeof Anthropic.APIError>).error, { type: 'error', error: { type: 'authentication_error', message: /API key/ } });
  const forbidden = await ask(KEY, 'qwen2.5:0.5b').catch((e: unknown) => e);
  t.ok(forbidden instanceof Anthropic.PermissionDeniedError, 'a model outside the key is a PermissionDeniedError');
  const missing = await ask(KEY, 'llama3-nope').catch((e: unknown) => e);
  t.ok(missing instanceof Anthropic.NotFoundError, 'a model no backend holds is a NotFoundError');
  t.match((missing as InstanceType<typeof Anthropic.APIError>).error, { type: 'error', error: { type: 'not_found_error' }, request_id: /./ });
});

t.test('a backend that dies mid-stream: the SDK raises an error instead of taking a cut answer for a whole one', async (t) => {
  const [sim] = await startSims(t, 1, { ttftMs: 0, tokenMs: 2, tokens: 20 });
  const { url, gateway } = await startGateway(t, [sim!]);
  sim!.setFaults({ killAfterTokens: 4 });
  const client = new Anthropic({ baseURL: url, apiKey: 'unused', maxRetries: 0 });
  const stream = client.messages.stream({ model: 'llama3.2', max_tokens: 100, messages: [{ role: 'user', content: 'cut' }] });
  let text = '';
  stream.on('text', (d) => (text += d));
  const outcome = await stream.finalMessage().then(
    () => 'completed',
    (err: unknown) => err,
  );
  t.not(outcome, 'completed', 'the cut stream is not a whole message');
  t.ok(outcome instanceof Anthropic.APIError, `an APIError (${String(outcome)})`);
  t.match(String(outcome), /connection lost|failed/);
  t.match(text, /^The sky is blue$/, 'the tokens before the cut arrived');
  await settled(gateway);
});

t.test('tool use, streamed and whole, as the SDK reads it from Ollama (issue 15.9)', async (t) => {
  const [sim] = await startSims(t, 1, { ttftMs: 0, tokenMs: 1, tokens: 5 });
  const { url, gateway } = await startGateway(t, [sim!]);
  const client = new Anthropic({ baseURL: url, apiKey: 'unused', maxRetries: 0 });
  const tools = [{ name: 'get_weather', description: 'The weather in a city', input_schema: { type: 'object' as const, properties: { city: { type: 'string' } }, required: ['city'] } }];
  const messages = [{ role: 'user' as const, content: 'Is it raining in Paris? use get_weather' }];
  const whole = await client.messages.create({ model: 'llama3.2', max_tokens: 100, tools, messages });
  t.equal(whole.stop_reason, 'tool_use');
  t.match(whole.content, [{ type: 'tool_use', name: 'get_weather', input: { city: 'Paris' } }]);
  const stream = client.messages.stream({ model: 'llama3.2', max_tokens: 100, tools, messages });
  const final = await stream.finalMessage();
  t.equal(final.stop_reason, 'tool_use', 'the stream ends as a tool use, whole (message_stop seen)');
  t.match(final.content, [{ type: 'tool_use', name: 'get_weather', input: { city: 'Paris' } }], 'its input assembled from the JSON delta');
  await settled(gateway);
});

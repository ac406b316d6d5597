// OpenAI Responses (/v1/responses: Codex and the openai client; Ollama serves it) through the
// gateway, with the real `openai` client against a simulator that writes Ollama's Responses wire
// (issue 15.4): token counts read from `usage` for the log, the ledger and the metrics; a stream
// is whole only when it ends with `response.completed`, however long that last event is; a
// backend failure mid-stream ends with the API's own terminal `response.failed` event.
import OpenAI from 'openai';
import t from 'tap';
import { get, settled, startGateway, startSims } from './helpers.js';

t.test('responses, whole and streamed, as from Ollama; token counts read from usage', async (t) => {
  // 300 tokens: the final response.completed event repeats the whole text, far beyond the tail the
  // gateway keeps, so its name is not in the stream's last KiB
  const [sim] = await startSims(t, 1, { ttftMs: 0, tokenMs: 0, tokens: 300 });
  const { url, gateway, logs } = await startGateway(t, [sim!]);
  const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'unused', maxRetries: 0 });
  const whole = await client.responses.create({ model: 'llama3.2', input: 'whole' }, { headers: { 'x-request-id': 'resp-whole' } });
  t.equal(whole.status, 'completed');
  t.match(whole.output_text, /^The sky is blue/);
  t.match(await logs.requestLine('resp-whole'), { status: 200, prompt_tokens: 12, completion_tokens: 300 });

  const stream = await client.responses.create({ model: 'llama3.2', input: 'streamed', stream: true }, { headers: { 'x-request-id': 'resp-stream' } });
  let text = '';
  let last = '';
  for await (const event of stream) {
    if (event.type === 'response.output_text.delta') text += event.delta;
    last = event.type;
  }
  t.equal(last, 'response.completed', 'the stream ends as the backend ended it, with nothing added');
  t.match(text, /^The sky is blue/);
  const line = await logs.requestLine('resp-stream');
  t.match(line, { status: 200, prompt_tokens: 12, completion_tokens: 300 }, 'input and output tokens from response.completed');
  t.notOk(line['code'], 'no error code: the long final event was seen');
  t.equal(gateway.ledger.totalsByKey().get('')?.completionTokens, 600, 'the ledger counted both');
  // a Responses stream is a streamed generation: its time to first token is measured
  const metrics = (await get(url, '/metrics')).text;
  t.match(metrics, /gen_ai_server_time_to_first_token_seconds_count\{[^}]*\} 1\b/, 'TTFT recorded for the stream');
  await settled(gateway);
});

t.test('a backend that dies mid-stream: the stream ends with response.failed, not a silence the client takes for an answer', async (t) => {
  const [sim] = await startSims(t, 1, { ttftMs: 0, tokenMs: 2, tokens: 20 });
  const { url, gateway, logs } = await startGateway(t, [sim!]);
  sim!.setFaults({ killAfterTokens: 4 });
  const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'unused', maxRetries: 0 });
  const stream = await client.responses.create({ model: 'llama3.2', input: 'cut', stream: true }, { headers: { 'x-request-id': 'resp-cut' } });
  let text = '';
  let last: { type: string; response?: { status?: string; error?: { code?: string } | null } } | undefined;
  for await (const event of stream) {
    if (event.type === 'response.output_text.delta') text += event.delta;
    last = event as typeof last;
  }
  t.equal(last?.type, 'response.failed', 'the last event is the terminal response.failed');
  t.match(last?.response, { status: 'failed', error: { code: 'upstream_failed' } });
  t.equal(text, 'The sky is blue', 'the tokens before the cut arrived');
  t.match(await logs.requestLine('resp-cut'), { status: 200, code: 'upstream_failed' });
  await settled(gateway);
});

t.test('a backend that ends a Responses stream without response.completed: the gateway says it was cut', async (t) => {
  const [sim] = await startSims(t, 1, { ttftMs: 0, tokenMs: 1, tokens: 5 });
  const { url, gateway, logs } = await startGateway(t, [sim!]);
  sim!.setFaults({ noFinalChunk: true });
  const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'unused', maxRetries: 0 });
  const stream = await client.responses.create({ model: 'llama3.2', input: 'short', stream: true }, { headers: { 'x-request-id': 'resp-short' } });
  const types: string[] = [];
  for await (const event of stream) types.push(event.type);
  t.equal(types.at(-1), 'response.failed', 'a stream without its end gets the terminal failure');
  t.notOk(types.includes('response.completed'));
  t.match(await logs.requestLine('resp-short'), { code: 'upstream_failed' });
  await settled(gateway);
});

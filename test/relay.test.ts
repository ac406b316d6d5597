// The streaming relay: bytes identical to what the backend sent, chunk by chunk, headers
// cleaned both ways, backpressure from a slow client, and mid-stream failures.
import t from 'tap';
import { request } from 'undici';
import { chat, post, rawConnect, startGateway, startSims, until, sleep } from './helpers.js';

t.test('the client gets exactly the bytes the backend sent: NDJSON, SSE and plain JSON', async (t) => {
  const [sim] = await startSims(t, 1, { ttftMs: 0, tokenMs: 1, tokens: 15, record: true });
  const { url } = await startGateway(t, [sim!]);
  const cases: [string, string, unknown][] = [
    ['ndjson-chat', '/api/chat', chat('hello')],
    ['ndjson-generate', '/api/generate', { model: 'llama3.2', prompt: 'hello' }],
    ['sse', '/v1/chat/completions', chat('hello', { stream: true, stream_options: { include_usage: true } })],
    ['json', '/api/chat', chat('hello', { stream: false })],
    ['embed', '/api/embed', { model: 'nomic-embed-text', input: ['a', 'b'] }],
  ];
  for (const [id, path, body] of cases) {
    const reply = await post(url, path, body, { headers: { 'x-request-id': id } });
    t.equal(reply.status, 200, `${id}: 200`);
    const sent = Buffer.concat(sim!.recorded.get(id) ?? []).toString('utf8');
    t.ok(sent.length > 0, `${id}: the backend recorded its answer`);
    t.equal(reply.text, sent, `${id}: identical bytes`);
  }
});

t.test('content types pass unchanged and chunks arrive as they are made, not at the end', async (t) => {
  const [sim] = await startSims(t, 1, { ttftMs: 0, tokenMs: 0, tokens: 5 });
  const { url } = await startGateway(t, [sim!]);
  sim!.hold();
  const res = await (async () => {
    const p = request(`${url}/api/chat`, { method: 'POST', body: JSON.stringify(chat('x')) });
    await sim!.waitFor(() => sim!.waitingAtGate === 1);
    sim!.releaseOne();
    return p;
  })();
  t.equal(res.headers['content-type'], 'application/x-ndjson');
  const lines: string[] = [];
  let buf = '';
  for await (const chunk of res.body) {
    buf += String(chunk);
    let nl: number;
    while ((nl = buf.indexOf('\n')) !== -1) {
      lines.push(buf.slice(0, nl));
      buf = buf.slice(nl + 1);
    }
  }
  t.equal(lines.length, 6, 'five tokens and the final chunk, one per line');
  t.match(JSON.parse(lines[5]!), { done: true, done_reason: 'stop', eval_count: 5 });
  sim!.release();
  const sse = await request(`${url}/v1/chat/completions`, { method: 'POST', body: JSON.stringify(chat('x', { stream: true })) });
  t.equal(sse.headers['content-type'], 'text/event-stream');
  await sse.body.text();
});

t.test('hop-by-hop headers stripped both ways; the client Host never reaches the backend', async (t) => {
  const [sim] = await startSims(t, 1, { ttftMs: 0, tokenMs: 0, tokens: 1 });
  const { url } = await startGateway(t, [sim!]);
  const s = await rawConnect(url);
  const body = JSON.stringify(chat('hi', { stream: false }));
  s.write(
    `POST /api/chat HTTP/1.1\r\nHost: evil.example.com\r\nConnection: keep-alive, X-Secret-Hop\r\nX-Secret-Hop: 1\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\nX-Custom: kept\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`,
  );
  const text = await new Promise<string>((resolve) => {
    let out = '';
    s.on('data', (d) => {
      out += String(d);
      if (out.includes('"done":true')) resolve(out);
    });
  });
  s.destroy();
  t.match(text, /^HTTP\/1\.1 200 OK/);
  const seen = sim!.seen.find((r) => r.path === '/api/chat')!;
  t.equal(seen.headers['host'], `127.0.0.1:${sim!.port}`, 'Host names the backend');
  t.equal(seen.headers['x-secret-hop'], undefined, 'a header named in Connection is dropped');
  t.equal(seen.headers['te'], undefined);
  t.not(seen.headers['keep-alive'], 'timeout=5');
  t.equal(seen.headers['x-custom'], 'kept', 'end-to-end headers pass');
  t.ok(seen.headers['x-request-id'], 'the request id goes upstream');
  t.equal(seen.headers['x-forwarded-for'], '127.0.0.1');
});

t.test('request ids: honoured when given, generated otherwise, echoed back', async (t) => {
  const [sim] = await startSims(t, 1, { ttftMs: 0, tokenMs: 0, tokens: 1 });
  const { url, logs } = await startGateway(t, [sim!]);
  const given = await post(url, '/api/chat', chat('a', { stream: false }), { headers: { 'x-request-id': 'abc-123' } });
  t.equal(given.headers['x-request-id'], 'abc-123');
  const made = await post(url, '/api/chat', chat('b', { stream: false }));
  t.match(made.headers['x-request-id'], /^[0-9a-f-]{36}$/);
  const line = await logs.requestLine('abc-123');
  t.match(line, { method: 'POST', path: '/api/chat', model: 'llama3.2', backend: 'sim1', status: 200, prompt_tokens: Number, completion_tokens: 1, attempts: 1 });
  t.type(line['duration_ms'], 'number');
  t.type(line['ttfb_ms'], 'number');
  t.type(line['queue_ms'], 'number');
  t.equal(logs.requests().filter((l) => l['req_id'] === 'abc-123').length, 1, 'exactly one line per request');
  t.notMatch(logs.raw.join('\n'), /"a"|The sky|Rayleigh/, 'neither the prompt nor the answer is logged');
});

t.test('a slow client slows the backend down instead of filling the gateway memory', async (t) => {
  const tokens = 300_000;
  const [sim] = await startSims(t, 1, { ttftMs: 0, tokenMs: 0, tokens, parallel: 2 });
  const { url, gateway } = await startGateway(t, [sim!], { slotsPerBackend: '2' });
  // undici stops reading the socket once its body buffer is full and nobody consumes it
  const res = await request(`${url}/api/chat`, { method: 'POST', body: JSON.stringify(chat('flood')) });
  t.equal(res.statusCode, 200);
  // wait until the backend stops making progress: the whole chain is full
  let last = -1;
  while (sim!.stats.tokensSent !== last) {
    last = sim!.stats.tokensSent;
    await sleep(150);
  }
  t.ok(last < tokens / 2, `the backend was held back (${last} of ${tokens} tokens sent while the client read nothing)`);
  t.equal(gateway.registry.all[0]!.inFlight, 1);
  // the stalled reader holds up nobody else: another client streams through at full speed
  const other = await post(url, '/api/chat', chat('neighbour', { options: { num_predict: 20 } }));
  t.equal(other.text.trim().split('\n').length, 21, 'a neighbour on the same gateway gets its whole stream meanwhile');
  const text = await res.body.text();
  const lines = text.split('\n').filter(Boolean);
  t.equal(lines.length, tokens + 1, 'every token and the final chunk arrive once the client reads');
  t.match(JSON.parse(lines[lines.length - 1]!), { done: true, eval_count: tokens });
  await until(() => gateway.registry.all[0]!.inFlight === 0, 'slot freed');
});

t.test('backend dies mid-stream: a final {"error"} line, the slot freed', async (t) => {
  const [sim] = await startSims(t, 1, { ttftMs: 0, tokenMs: 1, tokens: 50 });
  sim!.setFaults({ killAfterTokens: 3 });
  const { url, gateway, logs } = await startGateway(t, [sim!]);
  const reply = await post(url, '/api/chat', chat('x'), { headers: { 'x-request-id': 'killed' } });
  t.equal(reply.status, 200);
  const lines = reply.text.trim().split('\n');
  t.equal(lines.length, 4, 'three tokens and an error line');
  t.match(JSON.parse(lines[3]!), { error: /connection lost mid-response/ });
  t.notOk(reply.text.includes('"done":true'), 'never a fabricated done');
  t.match(await logs.requestLine('killed'), { status: 200, code: 'upstream_failed' });
  await until(() => gateway.registry.all[0]!.inFlight === 0, 'slot freed');
});

t.test('SSE stream cut mid-way: a final data event with an OpenAI error object', async (t) => {
  const [sim] = await startSims(t, 1, { ttftMs: 0, tokenMs: 1, tokens: 50 });
  sim!.setFaults({ killAfterTokens: 2 });
  const { url } = await startGateway(t, [sim!]);
  const reply = await post(url, '/v1/chat/completions', chat('x', { stream: true }));
  const events = reply.text.split('\n\n').filter(Boolean);
  t.equal(events.length, 3);
  t.match(JSON.parse(events[2]!.slice('data: '.length)), { error: { type: 'api_error', code: 'upstream_failed' } });
});

t.test('backend idle mid-stream: the idle timeout fires and the client gets an error line', async (t) => {
  const [sim] = await startSims(t, 1, { ttftMs: 0, tokenMs: 1, tokens: 50 });
  sim!.setFaults({ hangAfterTokens: 2 });
  const { url } = await startGateway(t, [sim!], { idleTimeoutSeconds: '0.3' });
  const reply = await post(url, '/api/chat', chat('x'));
  const lines = reply.text.trim().split('\n');
  t.equal(lines.length, 3);
  t.match(JSON.parse(lines[2]!), { error: /went silent/ });
  await sim!.waitFor(() => sim!.stats.cancelled === 1);
  t.pass('the backend saw the connection closed');
});

t.test('backend answers 500: the client gets it with the backend\'s own message', async (t) => {
  const [sim] = await startSims(t, 1);
  sim!.setFaults({ status500: true });
  const { url } = await startGateway(t, [sim!]);
  const reply = await post(url, '/api/chat', chat('x'));
  t.equal(reply.status, 500);
  t.match(reply.json(), { error: /llama runner process has terminated/ });
});

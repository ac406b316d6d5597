// The HTTP front against bad input: every bad request gets a clear JSON error and the gateway
// stays up. Large bodies are parsed in a worker thread and forwarded byte for byte.
import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { chat, get, post, rawConnect, readAll, startGateway, startSims } from './helpers.js';

t.test('malformed JSON: 400 with a JSON error, in each API\'s shape, and the gateway stays up', async (t) => {
  const [sim] = await startSims(t, 1);
  const { url } = await startGateway(t, [sim!]);
  const native = await post(url, '/api/chat', '{"model": "llama3.2", "messages": [');
  t.equal(native.status, 400);
  t.equal(native.headers['content-type'], 'application/json; charset=utf-8');
  t.match(native.json(), { error: /invalid JSON/ });
  const openai = await post(url, '/v1/chat/completions', 'not json');
  t.equal(openai.status, 400);
  t.match(openai.json(), { error: { type: 'invalid_request_error', code: 'bad_json' } });
  const notObject = await post(url, '/api/generate', '[1,2]');
  t.equal(notObject.status, 400);
  t.match(notObject.json(), { error: 'request body must be a JSON object' });
  const empty = await post(url, '/api/generate', '');
  t.equal(empty.status, 400);
  t.equal(sim!.stats.requests, 0, 'nothing bad reached the backend');
  t.equal((await post(url, '/api/chat', chat('ok', { stream: false }))).status, 200, 'still serving');
});

t.test('unknown path: 404 page not found as text/plain, as gin answers; HEAD where Ollama has no HEAD: 405', async (t) => {
  const [sim] = await startSims(t, 1);
  const { url } = await startGateway(t, [sim!]);
  const r = await get(url, '/nope');
  t.equal(r.status, 404);
  t.equal(r.text, '404 page not found');
  t.equal(r.headers['content-type'], 'text/plain; charset=utf-8');
  for (const path of ['/', '/api/tags', '/api/version']) t.equal((await request(url + path, { method: 'HEAD' })).statusCode, 200, `HEAD ${path}`);
  for (const path of ['/api/ps', '/v1/models']) {
    const head = await request(url + path, { method: 'HEAD' });
    await head.body.dump();
    t.equal(head.statusCode, 405, `HEAD ${path} is 405, as Ollama answers`);
  }
});

t.test('oversize body: 413 before it is read, declared or chunked', async (t) => {
  const [sim] = await startSims(t, 1);
  const { url, logs } = await startGateway(t, [sim!], { maxBodyBytes: '2048' });
  const big = JSON.stringify(chat('x'.repeat(4000)));
  const declared = await post(url, '/api/chat', big, { headers: { 'x-request-id': 'big' } });
  t.equal(declared.status, 413);
  t.match(declared.json(), { error: /larger than the limit of 2048 bytes/ });
  t.equal(declared.headers['connection'], 'close', 'the connection closes rather than reading the rest');
  t.match(await logs.requestLine('big'), { status: 413, code: 'body_too_large' });

  // chunked: no Content-Length, the limit trips while reading
  const s = await rawConnect(url);
  const out = readAll(s);
  s.write('POST /api/chat HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n');
  for (let i = 0; i < 3; i++) s.write(`400\r\n${'a'.repeat(1024)}\r\n`);
  const text = await out;
  t.match(text, /^HTTP\/1\.1 413/);
  t.equal(sim!.stats.requests, 0);
  t.equal((await post(url, '/api/chat', chat('ok', { stream: false }))).status, 200, 'still serving');
});

t.test('raw protocol abuse: smuggling, huge headers, slow headers, short bodies', async (t) => {
  const [sim] = await startSims(t, 1);
  const { url } = await startGateway(t, [sim!]);
  const send = async (raw: string) => {
    const s = await rawConnect(url);
    const out = readAll(s);
    s.write(raw);
    return out;
  };
  const smuggle = await send('POST /api/chat HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /api/tags HTTP/1.1\r\nHost: x\r\n\r\n');
  t.match(smuggle, /^HTTP\/1\.1 400/, 'Content-Length with Transfer-Encoding is refused');
  t.notMatch(smuggle, /models/, 'the smuggled request was not served');
  const huge = await send(`GET /api/tags HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(64 * 1024)}\r\n\r\n`);
  t.match(huge, /^HTTP\/1\.1 431/);
  const garbage = await send('HELLO\r\n\r\n');
  t.match(garbage, /^HTTP\/1\.1 400/);
  // a body shorter than its Content-Length, then the client gives up
  const s = await rawConnect(url);
  s.write('POST /api/chat HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"model":');
  await new Promise((r) => setTimeout(r, 50));
  s.destroy();
  t.equal(sim!.stats.requests, 0);
  t.equal((await get(url, '/healthz')).status, 200, 'still serving');
});

t.test('headers sent one byte at a time: the header timeout closes the connection', async (t) => {
  const [sim] = await startSims(t, 1);
  const dir = mkdtempSync(join(tmpdir(), 'gw-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'gateway.yaml');
  writeFileSync(file, 'backends: [{url: "http://127.0.0.1:1"}]\nlimits:\n  request_header_timeout_seconds: 0.3\n');
  const { url } = await startGateway(t, [sim!], {}, { file });
  const s = await rawConnect(url);
  const out = readAll(s);
  const line = 'GET /api/tags HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa';
  let i = 0;
  const drip = setInterval(() => {
    if (i < line.length && !s.destroyed) s.write(line[i++]!);
  }, 20);
  const text = await out;
  clearInterval(drip);
  t.match(text, /^HTTP\/1\.1 408/, 'answered 408 and closed');
  t.ok(i < line.length, 'before the headers were complete');
});

t.test('large bodies are parsed in a worker thread and forwarded byte for byte', async (t) => {
  const [sim] = await startSims(t, 1, { ttftMs: 0, tokenMs: 0, tokens: 1 });
  const { url, gateway } = await startGateway(t, [sim!], { maxBodyBytes: String(16 * 1024 * 1024) });
  const image = Buffer.alloc(3 * 1024 * 1024, 7).toString('base64');
  const body = JSON.stringify({ model: 'llama3.2', stream: false, messages: [{ role: 'user', content: 'look', images: [image] }] });
  let seenLength = -1;
  sim!.once('request', (r: { headers: Record<string, string> }) => (seenLength = Number(r.headers['content-length'])));
  const r = await post(url, '/api/chat', body);
  t.equal(r.status, 200);
  t.equal(gateway.inspector.offloaded, 1, 'went through the worker');
  t.equal(seenLength, Buffer.byteLength(body), 'the backend got every byte');
  const bad = await post(url, '/api/chat', body.slice(0, -5));
  t.equal(bad.status, 400, 'a large malformed body is a 400 too');
  t.equal(gateway.inspector.offloaded, 2);
  t.match(bad.json(), { error: /invalid JSON/ });
});

t.test('a model-less body is forwarded: the backend gives its own answer', async (t) => {
  const [sim] = await startSims(t, 1);
  const { url } = await startGateway(t, [sim!]);
  const res = await request(`${url}/api/chat`, { method: 'POST', body: JSON.stringify({ messages: [] }) });
  t.equal(res.statusCode, 400);
  t.same(await res.body.json(), { error: 'model is required' });
});

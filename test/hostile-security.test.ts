// The holes a hostile test found in the front (issue 10, points 1 to 6): percent-encoded paths,
// case-variant JSON keys, aliases past a key's globs, credentials in backend URLs, fields of any
// size in logs and errors, and /healthz details. Each case failed on the code before the fix.
import t from 'tap';
import { request } from 'undici';
import { hashKey } from '../dist/src/auth/keys.js';
import { loadConfig } from '../dist/src/config/load.js';
import { normalizePath } from '../dist/src/front/normalize-path.js';
import { chat, configFile, get, post, rawConnect, readAll, settled, startGateway, startSims, until } from './helpers.js';

const APP = 'ogw_hostile-app-key-0123456789abcdef';
const ADMIN = 'ogw_hostile-admin-key-0123456789abcdef';


const keysYaml = (appModels: string) =>
  `keys:\n  - name: app\n    sha256: ${hashKey(APP)}\n    models: ${appModels}\n  - name: ops\n    sha256: ${hashKey(ADMIN)}\n    admin: true\n`;
const app = { authorization: `Bearer ${APP}` };
const admin = { authorization: `Bearer ${ADMIN}` };

t.test('path normalization: decoded as Go decodes it, dot segments and // collapsed, bad escapes refused', async (t) => {
  t.same(normalizePath('/api/chat'), { ok: true, path: '/api/chat', wire: '/api/chat' });
  t.same(normalizePath('/api/%63hat'), { ok: true, path: '/api/chat', wire: '/api/chat' });
  t.same(normalizePath('//api//chat/'), { ok: true, path: '/api/chat', wire: '/api/chat' });
  t.same(normalizePath('/api/x/../%2e%2E/api/pull'), { ok: true, path: '/api/pull', wire: '/api/pull' });
  t.same(normalizePath('/api%2Fdelete'), { ok: true, path: '/api/delete', wire: '/api/delete' });
  t.same(normalizePath('/v1/models/a%20b%3Fc'), { ok: true, path: '/v1/models/a b?c', wire: '/v1/models/a%20b%3Fc' });
  t.same(normalizePath('/api/blobs/sha256:ab%40'), { ok: true, path: '/api/blobs/sha256:ab@', wire: '/api/blobs/sha256:ab@' });
  t.match(normalizePath('/api/%zzchat'), { ok: false });
  t.match(normalizePath('/api/%ff%fe'), { ok: false });
  t.match(normalizePath('/api/%00chat'), { ok: false });
});

t.test('percent-encoded generation routes take a slot, meet the key\'s globs and reach the backend as the normalized path', async (t) => {
  const [sim] = await startSims(t, 1, { ttftMs: 0, tokenMs: 1, tokens: 3, parallel: 8 });
  const file = configFile(t, `backends: [{url: "${sim!.url}"}]\nslots_per_backend: 1\n${keysYaml('["llama3*"]')}`);
  const { url, gateway, logs } = await startGateway(t, [sim!], {}, { file, backendsFromFile: true });
  sim!.hold();
  const a = post(url, '/api/%63hat', chat('a'), { headers: app });
  const b = post(url, '/v1/chat/%63ompletions', chat('b', { stream: true }), { headers: app });
  await until(() => gateway.dispatcher.queueDepth === 1, 'the second waits for the one slot');
  await sim!.waitFor(() => sim!.stats.active === 1);
  t.equal(sim!.stats.active, 1, 'one job in flight on a one-slot backend');
  sim!.release();
  const [ra, rb] = await Promise.all([a, b]);
  t.equal(ra.status, 200);
  t.equal(rb.status, 200);
  t.same(
    sim!.seen.filter((r) => r.tag === 'a' || r.tag === 'b').map((r) => r.path).sort(),
    ['/api/chat', '/v1/chat/completions'],
    'the backend was sent the normalized path',
  );
  t.equal(sim!.stats.maxActive, 1, 'never more than the slots');
  const forbidden = await post(url, '/api/%63hat', chat('q', { model: 'qwen2.5:0.5b' }), { headers: app, });
  t.equal(forbidden.status, 403, 'the key\'s globs hold on the encoded path');
  const pull = await post(url, '/api/%70ull', { model: 'llama3.2' }, { headers: app });
  t.equal(pull.status, 403, 'management stays off');
  t.match(pull.json(), { error: /management|admin/ });
  const del = await request(`${url}/api/x/..//%64elete`, { method: 'DELETE', headers: { ...admin, 'content-type': 'application/json' }, body: '{"model":"llama3.2"}' });
  t.equal(del.statusCode, 403, 'dot segments and escapes do not reach delete');
  await del.body.dump();
  t.equal(sim!.stats.byPath['/api/pull'] ?? 0, 0);
  t.equal(sim!.stats.byPath['/api/delete'] ?? 0, 0);
  const bad = await post(url, '/api/%zzchat', chat('x'), { headers: { ...app, 'x-request-id': 'bad-path' } });
  t.equal(bad.status, 400);
  t.match(bad.json(), { error: /percent-escape/ });
  t.match(await logs.requestLine('bad-path'), { status: 400, code: 'bad_path' });
  const usage = gateway.ledger.totalsByKey().get('app');
  t.equal(usage?.requests, 3, 'the encoded generations are in the ledger (two served, one refused)');
  await settled(gateway);
});

t.test('case-variant JSON keys: two spellings of a decided field are refused, one spelling is read as Go reads it', async (t) => {
  const [sim] = await startSims(t, 1, { ttftMs: 0, tokenMs: 1, tokens: 3 });
  const file = configFile(t, `backends: [{url: "${sim!.url}"}]\n${keysYaml('["llama3*"]')}`);
  const { url, gateway } = await startGateway(t, [sim!], {}, { file, backendsFromFile: true });
  const twice = await post(url, '/api/chat', '{"model":"llama3.2","Model":"qwen2.5:0.5b","messages":[]}', { headers: app });
  t.equal(twice.status, 400);
  t.match(twice.json(), { error: /spells the field 'model' twice/ });
  const openai = await post(url, '/v1/chat/completions', '{"model":"llama3.2","MODEL":"qwen2.5:0.5b","messages":[]}', { headers: app });
  t.equal(openai.status, 400);
  t.match(openai.json(), { error: { code: 'bad_request' } });
  const kelvin = await post(url, '/api/generate', '{"model":"llama3.2","prompt":"x","stream":true,"\u017ftream":false}', { headers: app });
  t.equal(kelvin.status, 400, 'the long s folds to s, as in Go');
  const upper = await post(url, '/api/chat', '{"MODEL":"qwen2.5:0.5b","messages":[]}', { headers: app });
  t.equal(upper.status, 403, '`MODEL` alone is the model, and the key may not use it');
  const show = await post(url, '/api/show', '{"model":"llama3.2","mOdel":"qwen2.5:0.5b"}', { headers: app });
  t.equal(show.status, 400, 'every route the gateway reads');
  t.equal(sim!.seen.filter((r) => r.path === '/api/chat' || r.path === '/v1/chat/completions').length, 0, 'none reached the backend');
  await settled(gateway);
});

t.test('aliases are judged by their target: a glob that matches an alias name opens no other model', async (t) => {
  const [sim] = await startSims(t, 1, { ttftMs: 0, tokenMs: 1, tokens: 3 });
  const file = configFile(
    t,
    `backends: [{url: "${sim!.url}"}]\naliases: {llama3-fast: "qwen2.5:0.5b", small: "qwen2.5:0.5b", chat: "llama3.2"}\n` +
      `keys:\n  - {name: app, sha256: "${hashKey(APP)}", models: ["llama3*", "small"]}\n`,
  );
  const { url, gateway } = await startGateway(t, [sim!], {}, { file, backendsFromFile: true });
  const through = await post(url, '/api/chat', chat('x', { model: 'llama3-fast', stream: false }), { headers: app });
  t.equal(through.status, 403, 'llama3-fast matches llama3* but runs qwen, which the key may not use');
  t.match(through.json(), { error: /may not use model 'llama3-fast'/ });
  t.equal((await post(url, '/api/chat', chat('x', { model: 'chat', stream: false }), { headers: app })).status, 200, 'an alias whose target the key may use');
  t.equal((await post(url, '/api/chat', chat('x', { model: 'small', stream: false }), { headers: app })).status, 200, 'an alias the key names itself');
  t.equal((await post(url, '/api/chat', chat('x', { model: 'qwen2.5:0.5b', stream: false }), { headers: app })).status, 403, 'but not its target by name');
  await settled(gateway);
});

t.test('credentials in a backend URL go as Basic auth on generations, probes and catalog polls, and never into a message', async (t) => {
  const [sim] = await startSims(t, 1, { ttftMs: 0, tokenMs: 1, tokens: 3 });
  const u = new URL(sim!.url);
  const withCreds = `http://gw:s%40cret@${u.host}`;
  const { url, gateway } = await startGateway(t, [sim!], { backends: `box=${withCreds}` });
  const expected = `Basic ${Buffer.from('gw:s@cret').toString('base64')}`;
  t.equal((await post(url, '/api/chat', chat('creds', { stream: false }))).status, 200);
  const byPath = (p: string) => sim!.seen.filter((r) => r.path === p);
  t.equal(byPath('/api/chat')[0]?.headers['authorization'], expected, 'generation');
  t.ok(byPath('/').length > 0 && byPath('/').every((r) => r.headers['authorization'] === expected), 'probes');
  t.ok(byPath('/api/tags').length > 0 && byPath('/api/tags').every((r) => r.headers['authorization'] === expected), 'catalog polls');
  t.equal(gateway.healthReport().backends[0]!.url.includes('cret'), false);
  let message = '';
  try {
    loadConfig({ env: {}, flags: { backends: `${withCreds},${withCreds}` } });
  } catch (err) {
    message = (err as Error).message;
  }
  t.match(message, /is already backend 1/, 'the duplicate is refused');
  t.notMatch(message, /s%40cret|s@cret/, 'without the password in the message');
  await settled(gateway);
});

t.test('a huge model name, path or header is capped in the answer and the log line', async (t) => {
  const [sim] = await startSims(t, 1, { ttftMs: 0, tokenMs: 1, tokens: 3 });
  const { url, logs } = await startGateway(t, [sim!]);
  const name = 'm'.repeat(2_000_000);
  const reply = await post(url, '/api/chat', chat('x', { model: name }), { headers: { 'x-request-id': 'huge-model' } });
  t.equal(reply.status, 404);
  t.ok(reply.text.length < 2048, `the 404 body is short (${reply.text.length} bytes)`);
  const line = logs.raw.find((l) => l.includes('"huge-model"'))!;
  t.ok(line.length < 4096, `the log line is short (${line.length} bytes)`);
  const s = await rawConnect(url);
  const out = readAll(s);
  s.end(`GET /${'p'.repeat(12_000)} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
  const text = await out;
  t.match(text, /^HTTP\/1\.1 404/);
  t.ok(text.length < 2048, 'a long unknown path is capped in the 404');
});

t.test('/healthz: status and counts for anyone, backend details for an admin key (or when made public)', async (t) => {
  const [sim] = await startSims(t, 1, { ttftMs: 0, tokenMs: 1, tokens: 3 });
  const file = configFile(t, `backends: [{url: "${sim!.url}"}]\n${keysYaml('["*"]')}`);
  const { url } = await startGateway(t, [sim!], {}, { file, backendsFromFile: true });
  const open = await get(url, '/healthz');
  t.equal(open.status, 200);
  t.same(open.json(), { status: 'ok', backends: { total: 1, up: 1 }, queue: { depth: 0, size: 100 }, in_flight: 0 });
  t.notMatch(open.text, /127\.0\.0\.1/, 'no URL');
  const appView = await request(`${url}/healthz`, { headers: app });
  t.notMatch(await appView.body.text(), /127\.0\.0\.1/, 'nor for a key that is not admin');
  const adminView = await request(`${url}/healthz`, { headers: admin });
  const details = (await adminView.body.json()) as { backends: { url: string; last_error: unknown }[] };
  t.equal(details.backends[0]!.url, sim!.url, 'an admin key sees the details');
  const publicFile = configFile(t, `backends: [{url: "${sim!.url}"}]\nauth: {public_health_details: true}\n${keysYaml('["*"]')}`);
  const pub = await startGateway(t, [sim!], {}, { file: publicFile, backendsFromFile: true });
  t.match((await get(pub.url, '/healthz')).json(), { backends: [{ url: sim!.url }] }, 'auth.public_health_details shows them to all');
});

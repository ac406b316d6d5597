// Cross-origin requests as Ollama answers them (issue 15.1), on every route the gateway serves:
// its own catalog answers, dispatched generations and passed-through calls; preflights answered
// before any key is asked for; origins outside the allowed list refused with an empty 403; and
// a real browser (headless Chromium) listing the fleet's models from a local web page.
import { createServer } from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { request } from 'undici';
import { hashKey } from '../dist/src/auth/keys.js';
import { launch } from './browser.js';
import { chat, startGateway, startSims } from './helpers.js';

const KEY = 'ogw_cors-test-key-0123456789abcdef';

async function call(url: string, path: string, init: { method?: string; headers?: Record<string, string>; body?: string } = {}) {
  const res = await request(url + path, { method: (init.method ?? 'GET') as 'GET', headers: init.headers ?? {}, ...(init.body ? { body: init.body } : {}) });
  const text = await res.body.text();
  return { status: res.statusCode, headers: res.headers, text };
}

t.test('allowed origins get Access-Control-Allow-Origin on every route; others an empty 403', async (t) => {
  const [sim] = await startSims(t, 1, { ttftMs: 0, tokenMs: 0, tokens: 2 });
  const { url } = await startGateway(t, [sim!]);
  const local = { origin: 'http://localhost:5173' };
  for (const path of ['/', '/api/tags', '/api/ps', '/api/version', '/v1/models', '/v1/models/llama3.2']) {
    const r = await call(url, path, { headers: local });
    t.equal(r.status, 200, path);
    t.equal(r.headers['access-control-allow-origin'], 'http://localhost:5173', `${path} names the origin`);
    t.equal(r.headers['vary'], 'Origin');
  }
  const gen = await call(url, '/api/chat', { method: 'POST', headers: { ...local, 'content-type': 'application/json' }, body: JSON.stringify(chat('cors', { stream: false })) });
  t.equal(gen.status, 200);
  t.equal(gen.headers['access-control-allow-origin'], 'http://localhost:5173', 'a generation too');
  const seen = sim!.seen.find((r) => r.tag === 'cors')!;
  t.equal(seen.headers['origin'], undefined, 'the gateway decided: the backend is not asked again');
  for (const origin of ['http://127.0.0.1:3000', 'https://0.0.0.0', 'app://obsidian.md', 'file://', 'tauri://localhost', 'vscode-webview://abc']) {
    t.equal((await call(url, '/api/tags', { headers: { origin } })).headers['access-control-allow-origin'], origin, `${origin} is one of Ollama's defaults`);
  }
  const evil = await call(url, '/api/tags', { headers: { origin: 'https://evil.example' } });
  t.equal(evil.status, 403);
  t.equal(evil.text, '', 'empty, as Ollama answers');
  const evilGen = await call(url, '/api/chat', { method: 'POST', headers: { origin: 'https://evil.example', 'content-type': 'application/json' }, body: JSON.stringify(chat('evil')) });
  t.equal(evilGen.status, 403, 'a web page elsewhere cannot drive the fleet');
  t.equal(sim!.seen.filter((r) => r.tag === 'evil').length, 0);
  t.equal((await call(url, '/api/tags', { headers: { origin: 'chrome-extension://abcdef' } })).status, 403, 'extensions need cors.origins, as with OLLAMA_ORIGINS');
  const u = new URL(url);
  const same = await call(url, '/api/tags', { headers: { origin: `http://${u.host}` } });
  t.equal(same.status, 200);
  t.equal(same.headers['access-control-allow-origin'], undefined, 'the gateway\'s own origin is not a cross-origin request');
});

t.test('preflights are answered before any key is asked for; cors.origins adds origins, * allows all', async (t) => {
  const [sim] = await startSims(t, 1, { ttftMs: 0, tokenMs: 0, tokens: 2 });
  const dir = mkdtempSync(join(tmpdir(), 'gw-cors-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'gateway.yaml');
  writeFileSync(file, `backends: [{url: "${sim!.url}"}]\ncors: {origins: ["chrome-extension://*", "https://ui.example.org"]}\nkeys:\n  - {name: app, sha256: "${hashKey(KEY)}"}\n`);
  const { url } = await startGateway(t, [sim!], {}, { file, backendsFromFile: true });
  const pre = await call(url, '/api/chat', { method: 'OPTIONS', headers: { origin: 'chrome-extension://abcdef', 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization,content-type' } });
  t.equal(pre.status, 204, 'no key needed for a preflight');
  t.equal(pre.headers['access-control-allow-origin'], 'chrome-extension://abcdef');
  t.match(pre.headers['access-control-allow-methods'], /POST/);
  t.match(pre.headers['access-control-allow-headers'], /Authorization/);
  t.match(pre.headers['access-control-allow-headers'], /X-Stainless-Os/);
  t.equal(pre.headers['access-control-max-age'], '43200');
  const keyed = await call(url, '/api/tags', { headers: { origin: 'https://ui.example.org', authorization: `Bearer ${KEY}` } });
  t.equal(keyed.status, 200);
  t.equal(keyed.headers['access-control-allow-origin'], 'https://ui.example.org');
  const unkeyed = await call(url, '/api/tags', { headers: { origin: 'https://ui.example.org' } });
  t.equal(unkeyed.status, 401, 'the key is still needed for the request itself');
  t.equal(unkeyed.headers['access-control-allow-origin'], 'https://ui.example.org', 'and the browser can read why');
  const star = await startGateway(t, [sim!], { corsOrigins: '*' });
  const any = await call(star.url, '/api/tags', { headers: { origin: 'https://anything.example' } });
  t.equal(any.headers['access-control-allow-origin'], '*');
});

t.test('a local web page in Chromium lists the fleet\'s models through the gateway; a page from another origin cannot', async (t) => {
  const browser = await launch(t);
  if (!browser) return;
  const [sim] = await startSims(t, 1, { ttftMs: 0, tokenMs: 0, tokens: 2 });
  const { url } = await startGateway(t, [sim!]);
  // the gateway answers on 127.0.0.1; the page comes from localhost (allowed) or [::1] (not)
  const gatewayPort = new URL(url).port;
  const page = `<!doctype html><script>fetch('http://127.0.0.1:${gatewayPort}/api/tags').then(r => r.json()).then(j => { document.title = 'models:' + j.models.length }, e => { document.title = 'failed' })</script>`;
  const site = createServer((_req, res) => res.writeHead(200, { 'content-type': 'text/html' }).end(page));
  await new Promise<void>((resolve) => site.listen(0, '::', () => resolve()));
  t.teardown(() => new Promise((resolve) => site.close(resolve)));
  const port = (site.address() as { port: number }).port;
  const tab = await browser.newPage();
  await tab.goto(`http://localhost:${port}/`);
  await tab.waitForFunction('document.title !== ""', undefined, { timeout: 10_000 });
  t.match(await tab.title(), /^models:[1-9]/, 'from http://localhost:<port>, the catalog is readable');
  await tab.goto(`http://[::1]:${port}/`);
  await tab.waitForFunction('document.title !== ""', undefined, { timeout: 10_000 });
  t.equal(await tab.title(), 'failed', 'from an origin Ollama would not allow, the browser is refused');
});

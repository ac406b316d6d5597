// The status page in a real browser: headless Chromium (Debian's package) driven by
// playwright-core, against a gateway with simulated backends under light load. CI installs
// Chromium (.ci/run); elsewhere, without it, this test says so and skips.
import { existsSync, mkdirSync } from 'node:fs';
import t from 'tap';
import { launch } from './browser.js';
import { chat, configFile, post, startGateway, startSims, until } from './helpers.js';
import { startRedis } from './services.js';
import { hashKey } from '../dist/src/auth/keys.js';

const SHOTS = new URL('../test-results/', import.meta.url).pathname;
const APP = 'ogw_status-app-000000000000000000000';
const ADMIN = 'ogw_status-admin-11111111111111111111';

t.test('the status page shows the fleet as it is', async (t) => {
  const browser = await launch(t);
  if (!browser) return;
  const sims = await startSims(t, 2, { ttftMs: 0, tokenMs: 20, tokens: 100 });
  sims[1]!.setFaults({ probeFails: true });
  const { url, gateway } = await startGateway(t, sims);
  for (let i = 0; i < gateway.config.health.unhealthyAfter; i++) await gateway.health.probeOnce(gateway.registry.byName('sim2')!);
  // light load: a few short answers in the history, one long stream in flight
  for (let i = 0; i < 3; i++) {
    await post(url, '/api/chat', chat(`h${i}`, { stream: false, options: { num_predict: 3 } }));
    gateway.history.sample();
  }
  const streaming = post(url, '/api/chat', chat('long'));
  await sims[0]!.waitFor(() => sims[0]!.stats.tokensSent > 2);
  await gateway.catalogs.refresh(gateway.registry.byName('sim1')!); // the next /api/ps poll

  const page = await browser.newPage({ viewport: { width: 1100, height: 700 } });
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(`${url}/status`);
  await page.waitForFunction('document.querySelectorAll("#backends tr").length === 2');
  const rows = await page.$$eval('#backends tr', (trs) => trs.map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent?.trim() ?? '')));
  t.match(rows[0]![0], /^sim1http:\/\/127\.0\.0\.1:\d+$/, 'name and URL');
  t.same(rows[0]!.slice(1, 4), ['up', '1 / 1', 'llama3.2:latest'], 'sim1: up, one of one slot busy, its loaded model');
  t.match(rows[1]![1], /^downsince \d{1,2}:\d\d:\d\d\s?[AP]?M?\S/, 'sim2: down, since when, and why');
  t.match(await page.textContent('#backends tr:nth-child(2) .why'), /\S/, 'the reason it is down');
  t.same(rows[1]!.slice(2, 4), ['0 / 1', '—'], 'sim2: nothing in flight, and no loaded models listed for a box that is down');
  t.match(await page.textContent('#meta'), /1 of 2 backends up · 1 in flight · 0 of 100 queued · v\d+\.\d+\.\d+ on Node v\d+.* · up \d+ s · config loaded \d/);
  t.equal(await page.locator('#rpm polyline').count(), 2, 'requests and errors drawn');
  t.match(await page.textContent('#rpm-legend'), /requests.*errors \(4xx and 5xx/, 'with a legend');
  t.match(await page.textContent('#rpm .t0'), /\d{1,2}:\d\d:\d\d/, 'and a time axis');
  t.equal(await page.locator('#queue polyline').count(), 1);
  t.match(await page.textContent('#flows'), /nobody waits/);
  const usage = await page.$$eval('#keys tr', (trs) => trs.map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent?.trim() ?? '')));
  t.same(usage, [['open (no keys)', '3', '33', '9', '0', '—']], 'usage today: the three short answers (the stream is still going)');
  mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: `${SHOTS}status.png`, fullPage: true });
  t.ok(existsSync(`${SHOTS}status.png`), 'screenshot saved in test-results/status.png');
  t.same(errors, [], 'no script errors');
  await streaming;
});

t.test('with keys: the page (for an admin) shows each key\'s usage today and its day budget', async (t) => {
  const browser = await launch(t);
  if (!browser) return;
  const sims = await startSims(t, 1, { ttftMs: 0, tokenMs: 0, tokens: 4 });
  const file = configFile(t, `backends: [{url: "http://127.0.0.1:1"}]\nkeys:\n  - {name: app, sha256: "${hashKey(APP)}", tokens_per_day: 100}\n  - {name: ops, sha256: "${hashKey(ADMIN)}", admin: true}\n`);
  const { url } = await startGateway(t, sims, {}, { file });
  for (const p of ['a', 'b']) t.equal((await post(url, '/api/chat', chat(p, { stream: false }), { headers: { authorization: `Bearer ${APP}` } })).status, 200);

  const page = await browser.newPage({ viewport: { width: 1100, height: 700 }, extraHTTPHeaders: { authorization: `Bearer ${ADMIN}` } });
  await page.goto(`${url}/status`);
  await page.waitForFunction('document.querySelectorAll("#keys tr").length === 2');
  const usage = await page.$$eval('#keys tr', (trs) => trs.map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent?.trim() ?? '')));
  t.same(usage, [
    ['app', '2', '22', '8', '0', '30 / 100'],
    ['ops', '0', '0', '0', '0', '—'],
  ]);
  t.equal(await page.locator('#keys .bar i').getAttribute('style'), 'width:30%', 'the budget bar shows the share used');
  mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: `${SHOTS}status-keys.png`, fullPage: true });
});

t.test('with keys: the page asks for a key; an admin key sees the fleet, any other its own usage, queue and limits', async (t) => {
  const browser = await launch(t);
  if (!browser) return;
  const sims = await startSims(t, 1, { ttftMs: 0, tokenMs: 0, tokens: 4 });
  const file = configFile(t, `backends: [{url: "${sims[0]!.url}"}]\nkeys:\n  - {name: app, sha256: "${hashKey(APP)}", tokens_per_day: 1000, requests_per_minute: 60}\n  - {name: ops, sha256: "${hashKey(ADMIN)}", admin: true}\n`);
  const { url, logs } = await startGateway(t, sims, {}, { file, backendsFromFile: true });
  t.equal((await post(url, '/api/chat', chat('a', { stream: false }), { headers: { authorization: `Bearer ${APP}` } })).status, 200);

  const page = await browser.newPage({ viewport: { width: 1100, height: 700 } });
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(`${url}/status`);
  await page.waitForSelector('#signin:not([hidden])');
  t.match(await page.textContent('#meta'), /sign in/);
  // a wrong key: refused, and asked again
  await page.fill('#key', 'ogw_not-a-key');
  await page.click('#signin button');
  await page.waitForFunction('document.getElementById("meta").textContent.includes("not accepted")');
  // the admin key: the fleet
  await page.fill('#key', ADMIN);
  await page.click('#signin button');
  await page.waitForSelector('#fleet:not([hidden])');
  await page.waitForFunction('document.querySelectorAll("#keys tr").length === 2');
  t.match(await page.textContent('#backends'), new RegExp(`up\\b`), 'the admin sees the backends');
  t.ok((await page.textContent('#backends'))!.includes(sims[0]!.url), 'with their URLs');
  t.notOk(page.url().includes(ADMIN), 'the key is in no URL');
  await page.reload();
  await page.waitForSelector('#fleet:not([hidden])');
  t.pass('still signed in after a reload (the tab keeps the key for its session)');
  await page.click('#signout');
  await page.waitForSelector('#signin:not([hidden])');
  t.equal(await page.evaluate('sessionStorage.length'), 0, 'signing out forgets the key');
  // a key that is not an admin's: its own figures, nothing of the fleet's insides
  await page.fill('#key', APP);
  await page.click('#signin button');
  await page.waitForSelector('#mine:not([hidden])');
  const mine = await page.$$eval('#mykey tr', (trs) => Object.fromEntries(trs.map((tr) => [tr.querySelector('th')?.textContent, tr.querySelector('td')?.textContent])));
  t.match(mine, { 'requests today': '1', 'day budget': '1000', 'requests per minute': '60', 'your jobs waiting now': '0' });
  t.match(await page.textContent('#meta'), /signed in as app · the fleet: 1 of 1 backends up/);
  t.notOk((await page.content()).includes(sims[0]!.url), 'no backend URL on the page, not even hidden from the admin view before');
  t.ok(await page.locator('#fleet').isHidden(), 'no fleet tables');
  mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: `${SHOTS}status-signed-in-key.png`, fullPage: true });
  t.notOk(logs.raw.some((l) => l.includes(APP) || l.includes(ADMIN)), "no key in any log line");
  t.same(errors, [], 'no script errors');
});

t.test('with instances sharing Redis: the page says how many, and says so when Redis is gone', async (t) => {
  const browser = await launch(t);
  if (!browser) return;
  const redis = await startRedis(t);
  const sims = await startSims(t, 1, { ttftMs: 0, tokenMs: 0, tokens: 2 });
  const a = await startGateway(t, sims, { redisUrl: redis.url });
  await startGateway(t, sims, { redisUrl: redis.url });
  await until(() => a.gateway.shared!.instances === 2, 'A has seen B');
  const page = await browser.newPage();
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(`${a.url}/status`);
  await page.waitForFunction('/sharing slots/.test(document.querySelector("#meta").textContent)');
  t.match(await page.textContent('#meta'), /one of 2 instance\(s\) sharing slots and queue through Redis/);
  await redis.stop();
  await until(() => !a.gateway.shared!.up, 'A sees Redis gone');
  await page.waitForSelector('#shared-down', { timeout: 10_000 });
  t.match(await page.textContent('#meta'), /Redis unreachable: this instance runs on its share of the slots/);
  t.same(errors, [], 'no script errors');
});

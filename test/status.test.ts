// The status page and its JSON. (Drawn in a real browser: see issue 6; here, what it is fed.)
import t from 'tap';
import { chat, get, post, startGateway, startSims } from './helpers.js';

t.test('/status is a small self-contained page; /status.json feeds it', async (t) => {
  const sims = await startSims(t, 2, { ttftMs: 0, tokenMs: 1, tokens: 8 });
  const { url, gateway } = await startGateway(t, sims);
  const page = await get(url, '/status');
  t.equal(page.status, 200);
  t.equal(page.headers['content-type'], 'text/html; charset=utf-8');
  t.ok(page.text.length < 12 * 1024, `a few KB (${page.text.length} bytes)`);
  t.match(page.text, /fetch\('status\.json'/);
  t.notMatch(page.text, /<script src=/, 'no external script');
  gateway.history.sample();
  for (let i = 0; i < 5; i++) await post(url, '/api/chat', chat(`s${i}`));
  await post(url, '/api/chat', chat('x', { model: 'missing' }));
  gateway.history.sample();
  const s = (await get(url, '/status.json')).json<{
    status: string;
    backends: { name: string; healthy: boolean; in_flight: number; slots: number; loaded: string[]; tokens_per_second: number }[];
    queue: { depth: number; size: number };
    history: { requests: number; errors: number; queueDepth: number }[];
  }>();
  t.equal(s.status, 'ok');
  t.same(
    s.backends.map((b) => [b.name, b.healthy, b.in_flight, b.slots]),
    [
      ['sim1', true, 0, 1],
      ['sim2', true, 0, 1],
    ],
  );
  t.ok(s.backends.some((b) => b.tokens_per_second > 0), 'tokens per second per backend');
  t.equal(s.history.length, 2);
  t.equal(s.history[1]!.requests, 6, 'requests in the last interval');
  // (issue 12.2) the chart counts errors as the key table and the ledger do: a 404 is one
  t.equal(s.history[1]!.errors, 1, 'the 404 counts as an error, as the key table counts it');
  t.equal((await get(url, '/status.json')).json<{ keys: { errors: number }[] }>().keys[0]!.errors, 1, 'the key table agrees');
  t.same(s.queue, { depth: 0, size: 100 });
});

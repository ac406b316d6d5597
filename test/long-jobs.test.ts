// A job runs on one backend, never on two (issue 15.6): a non-streamed answer that takes longer
// than timeouts.headers_seconds is not cut and re-run elsewhere (its headers come only with the
// whole answer), and a header timeout on a generation is not retried on another backend while
// the first may still be working on it.
import { Ollama } from 'ollama';
import t from 'tap';
import { chat, post, settled, startGateway, startSims } from './helpers.js';

t.test('a long non-streamed job is answered once, by one backend, past the header timeout', async (t) => {
  const sims = await startSims(t, 2, { ttftMs: 1200, tokenMs: 1, tokens: 4 });
  const { url, gateway } = await startGateway(t, sims, { headersTimeoutSeconds: '0.3' });
  // the ollama client's generate is not streamed unless asked
  const answer = await new Ollama({ host: url }).generate({ model: 'llama3.2', prompt: 'long one' });
  t.equal(answer.done, true);
  t.equal(answer.response, 'The sky is blue');
  const ran = sims.filter((s) => s.seen.some((r) => r.tag === 'long one')).length;
  t.equal(ran, 1, 'it ran on one backend only');
  await settled(gateway);
});

t.test('a streamed generation whose first token is late is answered 504 by the one backend, not re-run on another', async (t) => {
  const sims = await startSims(t, 2, { ttftMs: 1200, tokenMs: 1, tokens: 4 });
  const { url, gateway } = await startGateway(t, sims, { headersTimeoutSeconds: '0.3' });
  const r = await post(url, '/api/chat', chat('late stream'));
  t.equal(r.status, 504);
  t.match(r.json(), { error: /no response headers in time/ });
  t.equal(sims.filter((s) => s.seen.some((x) => x.tag === 'late stream')).length, 1, 'only one backend ever got it');
  await settled(gateway);
});

// The README's first command: the demo must start, print its URL, and stream.
import { spawn } from 'node:child_process';
import t from 'tap';
import { chat, get, post } from './helpers.js';

const BIN = new URL('../bin/ollama-gateway.js', import.meta.url).pathname;

t.test('ollama-gateway demo: prints a URL that streams through simulated backends', async (t) => {
  const child = spawn(process.execPath, [BIN, 'demo', '--listen', '127.0.0.1:0', '--backends', '2'], { stdio: ['ignore', 'pipe', 'pipe'] });
  t.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  let out = '';
  const url = await new Promise<string>((resolve, reject) => {
    child.stdout.on('data', (d) => {
      out += String(d);
      const m = /the gateway at (http:\/\/\S+),/.exec(out);
      if (m && out.includes('Press Ctrl-C')) resolve(m[1]!);
    });
    child.once('exit', (code) => reject(new Error(`demo exited ${code}: ${out}`)));
  });
  const reply = await post(url, '/api/chat', chat('Why is the sky blue?'));
  t.equal(reply.status, 200);
  t.equal(reply.headers['content-type'], 'application/x-ndjson');
  t.ok(reply.text.trim().split('\n').length > 10, 'a streamed answer, line by line');
  t.match((await get(url, '/healthz')).json(), { status: 'ok', backends: [{ name: 'gpu1' }, { name: 'gpu2' }] });
  // what the banner promises: with two backends of one slot, of five at once two stream and three wait
  t.match(out, /Send five at once: 2 stream at once, the rest wait their turn/);
  const t0 = performance.now();
  const firstTokens = await Promise.all(
    Array.from({ length: 5 }, async () => {
      const res = await fetch(`${url}/api/generate`, { method: 'POST', body: JSON.stringify({ model: 'llama3.2', prompt: 'hi' }) });
      const reader = res.body!.getReader();
      await reader.read();
      const at = performance.now() - t0;
      while (!(await reader.read()).done);
      return at;
    }),
  );
  const sorted = [...firstTokens].sort((a, b) => a - b);
  t.ok(sorted[2]! > sorted[1]! + 1000, `two start at once, the others after a whole answer (${sorted.map((x) => Math.round(x)).join(', ')} ms)`);
  // the terminal gets one readable line per request, not JSON objects
  const requestLines = out.split('\n').filter((l) => l.includes('request'));
  t.ok(requestLines.some((l) => /^\[\d\d:\d\d:\d\d\.\d{3}\] INFO.*: request \{.*"status":200/.test(l)), `one pretty line per request (${requestLines[0]})`);
  t.notOk(out.split('\n').some((l) => l.startsWith('{"level"')), 'no raw JSON log lines in the demo');
  child.kill('SIGINT');
  const code = await new Promise((r) => child.once('exit', r));
  t.equal(code, 0, 'Ctrl-C stops it cleanly');
});

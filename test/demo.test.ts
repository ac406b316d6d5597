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
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
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
  child.kill('SIGINT');
  const code = await new Promise((r) => child.once('exit', r));
  t.equal(code, 0, 'Ctrl-C stops it cleanly');
});

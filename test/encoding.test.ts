// Compressed request bodies (issue 15.4): Codex sends zstd, and Ollama decodes it; the gateway
// decodes gzip, deflate, br and (where Node has it) zstd, holds the size limit on the decoded
// bytes, and sends the backend the plain body.
import * as zlib from 'node:zlib';
import t from 'tap';
import { request } from 'undici';
import { chat, settled, startGateway, startSims } from './helpers.js';

type Encoder = (b: Buffer) => Buffer;
const zstd = (zlib as unknown as { zstdCompressSync?: Encoder }).zstdCompressSync;

async function send(url: string, encoding: string, body: Buffer) {
  const res = await request(`${url}/api/chat`, { method: 'POST', headers: { 'content-type': 'application/json', 'content-encoding': encoding }, body });
  return { status: res.statusCode, text: await res.body.text() };
}

t.test('gzip, deflate, br and zstd bodies are decoded and sent on plain; the limit holds on the decoded size', async (t) => {
  const [sim] = await startSims(t, 1, { ttftMs: 0, tokenMs: 0, tokens: 2 });
  const { url, gateway } = await startGateway(t, [sim!], { maxBodyBytes: '65536' });
  const plain = (tag: string) => Buffer.from(JSON.stringify(chat(tag, { stream: false })));
  const encoders: [string, Encoder][] = [
    ['gzip', zlib.gzipSync],
    ['deflate', zlib.deflateSync],
    ['br', zlib.brotliCompressSync],
  ];
  for (const [name, encode] of encoders) {
    const r = await send(url, name, encode(plain(`enc ${name}`)));
    t.equal(r.status, 200, name);
    const seen = sim!.seen.find((x) => x.tag === `enc ${name}`);
    t.ok(seen, `the backend read the ${name} body`);
    t.equal(seen?.headers['content-encoding'], undefined, 'and got it plain');
  }
  const z = await send(url, 'zstd', zstd ? zstd(plain('enc zstd')) : plain('enc zstd'));
  if (zstd) t.equal(z.status, 200, `zstd on ${process.version}`);
  else {
    t.equal(z.status, 415, `zstd on ${process.version}: a clear 415`);
    t.match(z.text, /zstd needs Node 22\.15 or later/);
  }
  const bomb = zlib.gzipSync(Buffer.from(JSON.stringify(chat('x'.repeat(1_000_000)))));
  t.ok(bomb.length < 65536, `a ${bomb.length}-byte gzip body that decodes to a megabyte`);
  t.equal((await send(url, 'gzip', bomb)).status, 413, 'the limit holds on the decoded bytes');
  t.equal((await send(url, 'gzip', Buffer.from('not gzip at all'))).status, 400, 'a body that is not what it says');
  const unknown = await send(url, 'compress', plain('x'));
  t.equal(unknown.status, 415);
  t.match(unknown.text, /not one the gateway decodes/);
  await settled(gateway);
});

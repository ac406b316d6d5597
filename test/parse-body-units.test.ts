// The body's bytes as text: read as TextDecoder reads them (a leading BOM dropped, each bad byte
// sequence one U+FFFD), however malformed, so a model name is the same wherever it is read.
import t from 'tap';
import { parseBody } from '../dist/src/inspect/parse-body.js';

const decoder = new TextDecoder('utf-8', { fatal: false, ignoreBOM: false });

function expected(bytes: Uint8Array): { ok: boolean; model?: unknown } {
  try {
    const v = JSON.parse(decoder.decode(bytes)) as { model?: unknown };
    return { ok: true, model: v.model };
  } catch {
    return { ok: false };
  }
}

t.test('a leading byte-order mark is dropped, as TextDecoder drops it', async (t) => {
  const body = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('{"model":"llama3.2"}')]);
  const out = parseBody(body);
  t.ok(out.ok);
  if (out.ok) t.equal(out.facts.model, 'llama3.2');
  // from a view into a larger buffer too (a body sliced out of a pooled one)
  const pooled = Buffer.concat([Buffer.from('xxxx'), body, Buffer.from('yy')]);
  const view = pooled.subarray(4, 4 + body.length);
  const again = parseBody(view);
  t.ok(again.ok);
  if (again.ok) t.equal(again.facts.model, 'llama3.2');
});

t.test('any bytes inside a model name read as TextDecoder reads them', async (t) => {
  let seed = 7;
  const rnd = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
  // bytes that make malformed UTF-8: lone continuations, truncated and overlong sequences, surrogates
  const pick = [0x80, 0xbf, 0xc0, 0xc1, 0xc2, 0xdf, 0xe0, 0xed, 0xef, 0xf0, 0xf4, 0xf5, 0xff, 0xa0, 0x41, 0x9f];
  const differ: string[] = [];
  for (let i = 0; i < 2000; i++) {
    const n = 1 + Math.floor(rnd() * 8);
    const name = Buffer.from(Array.from({ length: n }, () => pick[Math.floor(rnd() * pick.length)]!));
    const body = Buffer.concat([Buffer.from('{"model":"'), name, Buffer.from('"}')]);
    const want = expected(body);
    const got = parseBody(body);
    if (got.ok !== want.ok || (got.ok && got.facts.model !== want.model)) differ.push(name.toString('hex'));
  }
  t.same(differ, [], 'every name reads the same');
});

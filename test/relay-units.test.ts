// Pure pieces of the relay: stream-end detection across any chunk split, token counts from tails.
import t from 'tap';
import { StreamEndCheck } from '../dist/src/relay/stream-end.js';
import { TokenTap } from '../dist/src/relay/token-tap.js';

t.test('"done":true is found wherever the chunks split it', async (t) => {
  const stream = Buffer.from('{"response":"hi","done":false}\n{"model":"x","response":"","done":true,"eval_count":3}\n');
  for (let cut = 0; cut <= stream.length; cut++) {
    const c = new StreamEndCheck('ndjson');
    c.push(stream.subarray(0, cut));
    c.push(stream.subarray(cut));
    t.equal(c.verdict(''), 'complete', `split at ${cut}`);
  }
  const cut = new StreamEndCheck('ndjson');
  cut.push(Buffer.from('{"done":false}\n{"done":tr'));
  t.equal(cut.verdict('{"done":false}\n{"done":tr'), 'cut_short');
  const own = new StreamEndCheck('ndjson');
  own.push(Buffer.from('{"done":false}\n{"error":"boom"}\n'));
  t.equal(own.verdict('{"done":false}\n{"error":"boom"}\n'), 'backend_error');
  const sse = new StreamEndCheck('sse');
  t.equal(sse.verdict('data: {"x":1}\n\ndata: [DONE]\n\n'), 'complete');
  t.equal(sse.verdict('data: {"x":1}\n\n'), 'cut_short');
});

t.test('token counts from the tail, Ollama or OpenAI, however the stream was chunked', async (t) => {
  const ollama = `${'{"message":{"content":"x"},"done":false}\n'.repeat(200)}{"done":true,"context":[${'1,'.repeat(3000)}1],"prompt_eval_count":27,"prompt_eval_duration":5,"eval_count":200,"eval_duration":9}\n`;
  const tap = new TokenTap();
  for (let i = 0; i < ollama.length; i += 97) tap.push(Buffer.from(ollama.slice(i, i + 97)));
  t.same(tap.counts(), { prompt: 27, completion: 200 });
  const openai = 'data: {"choices":[],"usage":{"prompt_tokens":11,"completion_tokens":4,"total_tokens":15}}\n\ndata: [DONE]\n\n';
  const tap2 = new TokenTap();
  tap2.push(Buffer.from(openai));
  t.same(tap2.counts(), { prompt: 11, completion: 4 });
  t.same(new TokenTap().counts(), { prompt: undefined, completion: undefined });
});

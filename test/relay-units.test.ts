// Pure pieces of the relay: stream-end detection across any chunk split, token counts from tails.
import t from 'tap';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { StreamEndCheck } from '../dist/src/relay/stream-end.js';
import { TokenTap } from '../dist/src/relay/token-tap.js';
import { ModelRename } from '../dist/src/relay/model-rename.js';
import { chain } from '../dist/src/relay/chunk-transform.js';
import { UsageChunkDrop } from '../dist/src/relay/usage-drop.js';

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

t.test("an Anthropic answer's input tokens from its first event, once the tail no longer holds it", async (t) => {
  const start = 'event: message_start\ndata: {"type":"message_start","message":{"usage":{"input_tokens":12,"output_tokens":0}}}\n\n';
  const delta = 'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"tok"}}\n\n';
  const end = 'event: message_delta\ndata: {"type":"message_delta","usage":{"output_tokens":40}}\n\nevent: message_stop\ndata: {"type":"message_stop"}\n\n';
  const chunks = [start, ...Array.from({ length: 40 }, () => delta), end];
  const anthropic = new TokenTap(true);
  for (const c of chunks) anthropic.push(Buffer.from(c));
  t.same(anthropic.counts(), { prompt: 12, completion: 40 });
  // any other answer keeps no head: its counts are all at its end
  const other = new TokenTap();
  for (const c of chunks) other.push(Buffer.from(c));
  t.same(other.counts(), { prompt: undefined, completion: 40 });
});

t.test('the usage chunk the client did not ask for is dropped, wherever the chunks split it', async (t) => {
  const content = 'data: {"choices":[{"delta":{"content":"\\"choices\\":[] and \\"usage\\": in text"}}],"model":"llama3.2"}\n\n';
  const usage = 'data: {"choices":[],"model":"llama3.2","usage":{"prompt_tokens":11,"completion_tokens":4}}\n\n';
  const stream = `${content}${content}${usage}data: [DONE]\n\n`;
  const want = `${content}${content}data: [DONE]\n\n`;
  for (let cut = 0; cut <= stream.length; cut++) {
    const d = new UsageChunkDrop();
    const out = [d.push(Buffer.from(stream.slice(0, cut))), d.push(Buffer.from(stream.slice(cut))), d.flush() ?? Buffer.alloc(0)];
    t.equal(Buffer.concat(out).toString(), want, `split at ${cut}`);
  }
  // whole events pass at once: nothing is held back when a chunk ends on an event boundary
  const d = new UsageChunkDrop();
  t.equal(d.push(Buffer.from(content)).toString(), content);
  // chained with an alias rename, both apply
  const both = chain(new UsageChunkDrop(), new ModelRename('llama3.2', 'gpt-4o-mini'))!;
  const out = Buffer.concat([both.push(Buffer.from(stream)), both.flush() ?? Buffer.alloc(0)]).toString();
  t.equal(out, want.replaceAll('"model":"llama3.2"', '"model":"gpt-4o-mini"'));
});

t.test('stream meter: one token per NDJSON line or SSE data event', async (t) => {
  const { eventsIn } = await import('../dist/src/relay/stream-meter.js');
  t.equal(eventsIn(Buffer.from('{"a":1}\n{"a":2}\n{"a'), 'ndjson'), 2);
  t.equal(eventsIn(Buffer.from('data: {}\n\ndata: {}\n\n'), 'sse'), 2);
  t.equal(eventsIn(Buffer.from('{"a":1}\n'), 'other'), 0);
});

t.test('"done":true split over three chunks, and the token tail across any chunk sizes', async (t) => {
  const stream = Buffer.from('{"response":"hi","done":false}\n{"model":"x","response":"","done":true,"eval_count":3}\n');
  const missed: string[] = [];
  for (let a = 0; a <= stream.length; a++) {
    for (let b = a; b <= stream.length; b++) {
      const c = new StreamEndCheck('ndjson');
      for (const part of [stream.subarray(0, a), stream.subarray(a, b), stream.subarray(b)]) c.push(part);
      if (c.verdict('') !== 'complete') missed.push(`${a}/${b}`);
    }
  }
  t.same(missed, [], 'found at every pair of cuts');
  const text = Array.from({ length: 3000 }, (_, i) => String.fromCharCode(97 + (i % 26))).join('') + '{"prompt_eval_count":7,"eval_count":9}\n';
  for (const size of [1, 7, 100, 1023, 1024, 1025, 5000]) {
    const tap = new TokenTap();
    for (let i = 0; i < text.length; i += size) tap.push(Buffer.from(text.slice(i, i + size)));
    t.equal(tap.tail(), text.slice(-1024), `the last 1 KiB with ${size}-byte chunks`);
    t.same(tap.counts(), { prompt: 7, completion: 9 });
  }
  const short = new TokenTap();
  short.push(Buffer.from('{"eval_count":2}'));
  t.equal(short.tail(), '{"eval_count":2}', 'a stream shorter than the ring');
});

t.test('a Responses stream is whole when its last event is response.completed, wherever the chunks cut it', async (t) => {
  const tail = (s: string) => s.slice(-1024);
  const stream =
    'event: response.created\ndata: {"type":"response.created"}\n\n' +
    'event: response.output_text.delta\ndata: {"delta":"event: response.completed\\n","type":"response.output_text.delta"}\n\n' +
    `event: response.completed\ndata: {"response":{"output":"${'x'.repeat(3000)}"},"type":"response.completed"}\n\n`;
  for (const size of [1, 7, 23, 64, stream.length]) {
    const c = new StreamEndCheck('responses');
    for (let at = 0; at < stream.length; at += size) c.push(Buffer.from(stream.slice(at, at + size)));
    t.equal(c.verdict(tail(stream)), 'complete', `in chunks of ${size}`);
  }
  // the name inside a data line's JSON is no event
  const cut = new StreamEndCheck('responses');
  cut.push(Buffer.from(stream.slice(0, stream.indexOf('event: response.completed\ndata'))));
  t.equal(cut.verdict(''), 'cut_short', 'cut before the last event: an "event:" inside data is not one');
  const failed = new StreamEndCheck('responses');
  failed.push(Buffer.from('event: response.created\ndata: {}\n\nevent: response.failed\ndata: {"type":"response.failed"}\n\n'));
  t.equal(failed.verdict(''), 'backend_error', "the backend's own failure");
});

t.test("what open streams keep does not hold Node's shared 8 KiB buffer slabs alive", async (t) => {
  // Node cuts small Buffer.allocUnsafe and Buffer.from results out of shared 8 KiB slabs, which
  // live as long as any slice: a stream's kept bytes cut from them, among its chunk frames (cut
  // from the same slabs and dead once written), would hold a whole slab per stream
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  const settle = async () => {
    for (let i = 0; i < 3; i++) {
      gc();
      await new Promise((r) => setImmediate(r));
    }
  };
  await settle();
  const before = process.memoryUsage().arrayBuffers;
  const streams: { tap: TokenTap; end: StreamEndCheck; rename: ModelRename; usage: UsageChunkDrop }[] = [];
  const line = Buffer.from('{"message":{"content":"tok"},"done":false}\n');
  // each ends inside what its transform must see whole: a cut needle, an event not yet ended
  const cutName = Buffer.from('{"model":"lla');
  const cutEvent = Buffer.from('data: {"choices":[{"delta":{"content":"tok"}}]}');
  for (let i = 0; i < 2000; i++) {
    const s = { tap: new TokenTap(true), end: new StreamEndCheck('ndjson'), rename: new ModelRename('llama3.2', 'm'), usage: new UsageChunkDrop() };
    // the frames of this stream's first chunks, written and dropped
    for (let f = 0; f < 40; f++) Buffer.allocUnsafe(200).fill(f);
    s.tap.push(line);
    s.end.push(line);
    s.rename.push(cutName);
    s.usage.push(cutEvent);
    streams.push(s);
  }
  await settle();
  const held = process.memoryUsage().arrayBuffers - before;
  // its own bytes are ~2 KiB a stream (4 MiB); a slab a stream would be 16 MiB or more
  t.ok(held < 8 * 2 ** 20, `2,000 streams hold ${(held / 2 ** 20).toFixed(1)} MiB of buffers`);
  // (and what they hold is still theirs)
  const whole = streams.every((x) => x.tap.tail() === line.toString('latin1') && x.rename.flush()?.toString() === '"model":"lla' && x.usage.flush()?.toString() === cutEvent.toString());
  t.ok(whole, 'each stream still holds its own bytes');
});

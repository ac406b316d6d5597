// Images and transcriptions run on the GPU: they are jobs like any other (issue 15.5), each
// holding a slot, routed to a backend that holds their model (read from a multipart body too),
// never beside the slots; with the real openai client.
import OpenAI, { toFile } from 'openai';
import t from 'tap';
import { settled, startGateway, startSims, until } from './helpers.js';

t.test('image generations and transcriptions take a slot, queue when none is free, and reach a backend that holds their model', async (t) => {
  const [sim] = await startSims(t, 1, { ttftMs: 0, tokenMs: 0, tokens: 2, parallel: 8 });
  const { url, gateway, logs } = await startGateway(t, [sim!], { slotsPerBackend: '1' });
  const openai = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'unused', maxRetries: 0 });
  sim!.hold();
  const image = openai.images.generate({ model: 'llama3.2', prompt: 'a blue sky' });
  await sim!.waitFor(() => sim!.waitingAtGate === 1);
  const audio = openai.audio.transcriptions.create({ model: 'llama3.2', file: await toFile(Buffer.alloc(200_000, 1), 'sky.wav') });
  await until(() => gateway.dispatcher.queueDepth === 1, 'the transcription waits for the one slot');
  t.equal(sim!.stats.active, 1, 'one GPU job at a time on a one-slot backend');
  sim!.release();
  const [img, text] = await Promise.all([image, audio]);
  t.equal(img.data?.length, 1);
  t.equal(text.text, 'The sky is blue.');
  t.equal(sim!.stats.maxActive, 1, 'never more than the slots');
  const lines = logs.requests().filter((l) => l['path'] === '/v1/audio/transcriptions' || l['path'] === '/v1/images/generations');
  t.same(lines.map((l) => l['model']).sort(), ['llama3.2', 'llama3.2'], 'the model read from JSON and from the multipart body');
  const missing = await openai.audio.transcriptions.create({ model: 'whisper-nope', file: await toFile(Buffer.alloc(10), 'a.wav') }).catch((e: unknown) => e);
  t.ok(missing instanceof OpenAI.NotFoundError, 'a model no backend holds is 404 before any slot');
  await settled(gateway);
});

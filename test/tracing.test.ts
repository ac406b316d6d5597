// OpenTelemetry traces (issue 12.7), received by a local OTLP/HTTP endpoint as a collector would:
// a server span per request under the client's traceparent, with the GenAI conventions'
// attributes; child spans for the wait for a slot and each try at a backend, whose traceparent the
// backend gets; never the prompt or the answer; and nothing at all when tracing is off.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import t, { type Test } from 'tap';
import { chat, post, settled, startGateway, startSims } from './helpers.js';

interface OtlpValue { stringValue?: string; intValue?: string | number; doubleValue?: number; boolValue?: boolean }
interface OtlpSpan { traceId: string; spanId: string; parentSpanId?: string; name: string; kind: number; attributes: { key: string; value: OtlpValue }[]; status?: { code?: number } }

/** A collector's OTLP/HTTP traces endpoint: every span it was sent, and the raw bodies. */
async function receiver(t: Test): Promise<{ url: string; spans: OtlpSpan[]; bodies: string[] }> {
  const spans: OtlpSpan[] = [];
  const bodies: string[] = [];
  const server: Server = createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      bodies.push(body);
      const doc = JSON.parse(body) as { resourceSpans: { scopeSpans: { spans: OtlpSpan[] }[] }[] };
      for (const rs of doc.resourceSpans) for (const ss of rs.scopeSpans) spans.push(...ss.spans);
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/traces`, spans, bodies };
}

const attr = (s: OtlpSpan, key: string) => {
  const v = s.attributes.find((a) => a.key === key)?.value;
  return v === undefined ? undefined : (v.stringValue ?? (v.intValue !== undefined ? Number(v.intValue) : (v.doubleValue ?? v.boolValue)));
};

t.test('a traced generation: the client is the parent, the backend the child of a try, the GenAI attributes set', async (t) => {
  const collector = await receiver(t);
  const [sim] = await startSims(t, 1, { ttftMs: 0, tokenMs: 1, tokens: 7 });
  const { url, gateway } = await startGateway(t, [sim!], { tracingEndpoint: collector.url });
  const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
  const parent = '00f067aa0ba902b7';
  const secret = 'the secret prompt nobody may read';
  const r = await post(url, '/api/chat', chat(secret), { headers: { traceparent: `00-${traceId}-${parent}-01`, 'x-request-id': 'traced-1' } });
  t.equal(r.status, 200);
  await settled(gateway);
  await gateway.tracing!.flush();
  const server = collector.spans.find((s) => s.name === 'POST /api/chat');
  t.ok(server, 'the request has its server span');
  t.equal(server!.traceId, traceId, "in the client's trace");
  t.equal(server!.parentSpanId, parent, "under the client's span");
  t.equal(server!.kind, 2, 'a server span');
  t.match(
    Object.fromEntries(['http.request.method', 'http.response.status_code', 'gen_ai.operation.name', 'gen_ai.request.model', 'gen_ai.usage.input_tokens', 'gen_ai.usage.output_tokens', 'gateway.request_id', 'gateway.backend'].map((k) => [k, attr(server!, k)])),
    { 'http.request.method': 'POST', 'http.response.status_code': 200, 'gen_ai.operation.name': 'chat', 'gen_ai.request.model': 'llama3.2', 'gen_ai.usage.output_tokens': 7, 'gateway.request_id': 'traced-1', 'gateway.backend': 'sim1' },
  );
  t.type(attr(server!, 'gen_ai.usage.input_tokens'), 'number');
  t.ok((attr(server!, 'gen_ai.server.time_to_first_token') as number) > 0, 'time to first token, in seconds');
  const queue = collector.spans.find((s) => s.name === 'gateway.queue');
  const upstream = collector.spans.find((s) => s.name === 'POST sim1');
  t.equal(queue?.parentSpanId, server!.spanId, 'the wait for a slot is a child span');
  t.equal(upstream?.parentSpanId, server!.spanId, 'the try at the backend is a child span');
  t.equal(upstream?.kind, 3, 'a client span');
  t.equal(attr(upstream!, 'http.response.status_code'), 200);
  const seen = sim!.seen.find((s) => s.path === '/api/chat')!;
  t.equal(seen.headers['traceparent'], `00-${traceId}-${upstream!.spanId}-01`, "the backend's traceparent is the try's span");
  t.notOk(collector.bodies.some((b) => b.includes(secret) || b.includes('The sky')), 'neither the prompt nor the answer left in a span');
});

t.test('a failed request is an error span; without an endpoint nothing is traced and the client traceparent goes through', async (t) => {
  const collector = await receiver(t);
  const [sim] = await startSims(t, 1, { ttftMs: 0, tokenMs: 1, tokens: 3 });
  const traced = await startGateway(t, [sim!], { tracingEndpoint: collector.url });
  t.equal((await post(traced.url, '/api/chat', chat('x', { model: 'nope' }))).status, 404);
  await settled(traced.gateway);
  await traced.gateway.tracing!.flush();
  const failed = collector.spans.find((s) => s.name === 'POST /api/chat');
  t.equal(failed?.status?.code, 2, 'status ERROR');
  t.equal(attr(failed!, 'error.type'), 'model_not_found');

  const plain = await startGateway(t, [sim!]);
  t.equal(plain.gateway.tracing, undefined, 'no endpoint: no tracer');
  const tp = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
  t.equal((await post(plain.url, '/api/chat', chat('y', { stream: false }), { headers: { traceparent: tp } })).status, 200);
  t.equal(sim!.seen.filter((s) => s.path === '/api/chat').at(-1)!.headers['traceparent'], tp, "the client's traceparent reaches the backend untouched");
});

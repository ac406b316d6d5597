// A request's log line is serialized by the accounting stage itself (one JSON.stringify), not by
// pino's per-key serializer: it must be exactly the line pino would have written, with the
// logger's level label, time, pid and child bindings, whatever the facts hold.
import t from 'tap';
import { pino, type Logger } from 'pino';
import { Writable } from 'node:stream';
import { Outcome, type RequestFacts } from '../dist/src/accounting/outcome.js';
import { logRequest, requestLineFields } from '../dist/src/accounting/log-line.js';
import type { ErrorCode } from '../dist/src/errors.js';
import { createLogger } from '../dist/src/log/logger.js';

class Lines extends Writable {
  readonly all: string[] = [];
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: () => void): void {
    this.all.push(chunk.toString('utf8'));
    cb();
  }
}

function facts(over: Partial<RequestFacts> = {}): RequestFacts {
  return { id: 'r-1', method: 'POST', path: '/api/chat', model: 'llama3.2', backend: 'gpu1', key: undefined, flow: undefined, queueMs: 12.3456, ttfbMs: 40.001, durationMs: 512.129, bytesIn: 81, bytesOut: 282, attempts: 1, ...over };
}

function outcome(status: number, code?: ErrorCode, tokens?: [number, number]): Outcome {
  const o = new Outcome();
  if (code !== undefined) o.failed(code, status);
  else o.status = status;
  if (tokens) {
    o.promptTokens = tokens[0];
    o.completionTokens = tokens[1];
  }
  return o;
}

/** What pino itself writes for the same fields (the line as it was before). */
function pinoLine(log: Logger, r: RequestFacts, o: Outcome): void {
  log[o.status >= 500 && o.status !== 503 ? 'warn' : 'info'](requestLineFields(r, o), 'request');
}

const cases: [string, RequestFacts, Outcome][] = [
  ['a finished job', facts(), outcome(200, undefined, [11, 3])],
  ['a key, a flow, a code', facts({ key: 'team-a', flow: 'team-a/nb', model: 'qwen3:8b' }), outcome(429, 'rate_limited')],
  ['a 5xx (warn)', facts({ backend: undefined }), outcome(502, 'upstream_unreachable')],
  ['a 503 (info)', facts({ queueMs: undefined, ttfbMs: undefined }), outcome(503, 'queue_timeout')],
  ['quotes, control characters, non-ASCII and a lone surrogate in a model name', facts({ model: 'a"b\\c\n\u0001é模型\ud800' }), outcome(404, 'model_not_found')],
  ['no model, no backend', facts({ model: undefined, backend: undefined, path: '/api/tags', method: 'GET', attempts: 0 }), outcome(401, 'unauthorized')],
];

t.test("the line is pino's own, byte for byte", async (t) => {
  const fixedTime = () => ',"time":"2026-12-02T08:00:00.123Z"';
  for (const [name, r, o] of cases) {
    const ours = new Lines();
    const theirs = new Lines();
    const opts = { level: 'info', base: { pid: 4242 }, timestamp: fixedTime, formatters: { level: (label: string) => ({ level: label }) } };
    logRequest(pino(opts, ours), r, o);
    pinoLine(pino(opts, theirs), r, o);
    t.equal(ours.all.join(''), theirs.all.join(''), name);
    t.doesNotThrow(() => JSON.parse(ours.all.join('')), `${name}: valid JSON`);
  }
  // a child logger's bindings, and pino's numeric levels when no formatter is given
  const ours = new Lines();
  const theirs = new Lines();
  logRequest(pino({ timestamp: fixedTime }, ours).child({ instance: 'gw-2' }), facts(), outcome(200));
  pinoLine(pino({ timestamp: fixedTime }, theirs).child({ instance: 'gw-2' }), facts(), outcome(200));
  t.equal(ours.all.join(''), theirs.all.join(''), 'a child logger: its bindings, numeric levels');
});

t.test("the gateway's own logger: its time and pid, and nothing below its level", async (t) => {
  const out = new Lines();
  logRequest(createLogger({ level: 'info', destination: out }), facts(), outcome(200, undefined, [5, 7]));
  const line = JSON.parse(out.all.join('')) as Record<string, unknown>;
  t.match(line, { level: 'info', pid: process.pid, req_id: 'r-1', status: 200, queue_ms: 12.35, prompt_tokens: 5, completion_tokens: 7, msg: 'request' });
  t.match(line['time'], /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  t.ok(Math.abs(Date.parse(line['time'] as string) - Date.now()) < 5000, 'the time is now');
  const quiet = new Lines();
  logRequest(createLogger({ level: 'warn', destination: quiet }), facts(), outcome(200));
  t.same(quiet.all, [], 'an info line is not written at level warn');
  logRequest(createLogger({ level: 'warn', destination: quiet }), facts(), outcome(500, 'internal_error'));
  t.equal(quiet.all.length, 1, 'a warn line is');
});

// The relay stage: a backend's answer to the client, chunk by chunk as it arrives (no
// re-chunking, no buffering), with backpressure both ways (a client that reads slowly pauses the
// upstream read; undici's idle timer does not run while paused). The taps (token counts, the
// end-of-stream check, a metered key's budget, the gap histogram) see each chunk once, as it
// passes. Once headers are out a failure can no longer change the status, so it becomes the
// stream's own last word: an NDJSON `{"error": ...}` line (Ollama's convention), an SSE `data:`
// event with an OpenAI error object, Anthropic's `event: error`, or, for a plain body, a cut
// connection so the client cannot take a truncated answer for a whole one.
import type { ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Backend } from '../backends/backend.js';
import type { Charge } from '../auth/budgets.js';
import type { Cancellation } from '../cancel.js';
import { flavorOf, type ApiFlavor } from '../api-flavor.js';
import { GatewayError, toAnthropicBody, toOpenAIBody } from '../errors.js';
import type { RequestContext } from '../front/context.js';
import { downstreamHeaders } from '../front/headers.js';
import type { BodySink, Upstream } from '../forward/upstream.js';
import type { ChunkTransform } from './chunk-transform.js';
import { StreamEndCheck, expectedEnd } from './stream-end.js';
import { eventsIn } from './stream-meter.js';
import { streamKind, type StreamKind } from './stream-kind.js';
import { TokenTap } from './token-tap.js';

export interface RelayOptions {
  /** a stop's drain deadline: when it fires the answer ends with `shutting_down` (the upstream call listens) */
  readonly stop: Cancellation;
  /** where a stream's inter-chunk gaps go (metrics) */
  readonly gapObserver?: ((backend: string, model: string | undefined) => (seconds: number) => void) | undefined;
}

const CRLF = 0x0d0a;

/** `<hex length>\r\n<chunk>\r\n` in one buffer (small ones come from Node's buffer pool). */
function chunkFrame(chunk: Buffer): Buffer {
  const hex = chunk.length.toString(16);
  const frame = Buffer.allocUnsafe(hex.length + 4 + chunk.length);
  frame.write(hex, 0, 'latin1');
  frame.writeUInt16BE(CRLF, hex.length);
  chunk.copy(frame, hex.length + 2);
  frame.writeUInt16BE(CRLF, frame.length - 2);
  return frame;
}

/**
 * The client side of one answer, as the upstream's body sink. The first chunk goes through the
 * response, so that Node sends the headers and that chunk in one packet (the client's time to
 * first token). After it, a chunked response (every stream) is written straight to its socket,
 * one HTTP/1.1 chunk frame per upstream chunk: one write, where ServerResponse.write makes four
 * corked ones and a writev, allocating for each. `res.end()` still writes the last chunk.
 * Anything else goes through the response as usual.
 */
class ClientRelay implements BodySink {
  bytes = 0;
  /** performance.now() when the first body byte was written to the client */
  firstByteAt: number | undefined;
  /** the last byte written was a newline (so an error line starts on a line of its own) */
  atLineStart = true;
  private socket: Socket | undefined;
  private started = false;
  private lastAt = 0;
  private waitingOn: NodeJS.EventEmitter | undefined;
  private readonly onDrain = (): void => {
    this.waitingOn = undefined;
    this.up.resume();
  };

  constructor(
    private readonly res: ServerResponse,
    private readonly up: Upstream,
    private readonly end: StreamEndCheck | undefined,
    private readonly transform: ChunkTransform | undefined,
    private readonly gaps: ((seconds: number) => void) | undefined,
    /** a metered key's stream: its events counted as they pass, and cut when the budget is spent */
    private readonly charge: Charge | undefined,
    private readonly kind: StreamKind,
    /** token counts, read from the bytes as they pass */
    readonly tap: TokenTap,
  ) {}

  data(chunk: Buffer): boolean {
    // the clock is read only when something needs it: the first byte, or the gap histogram
    if (this.firstByteAt === undefined) {
      this.firstByteAt = this.lastAt = performance.now();
    } else if (this.gaps) {
      const now = performance.now();
      this.gaps((now - this.lastAt) / 1000);
      this.lastAt = now;
    }
    this.bytes += chunk.length;
    this.tap.push(chunk);
    this.end?.push(chunk);
    const out = this.transform ? this.transform.push(chunk) : chunk;
    let go = true;
    if (out.length > 0) {
      this.atLineStart = out[out.length - 1] === 0x0a;
      go = this.write(out);
    }
    const charge = this.charge;
    if (charge && !charge.add(eventsIn(chunk, this.kind))) {
      const spent = charge.exhausted;
      // (not from inside undici's data callback: the cut settles the relay with the budget's error)
      if (spent) {
        queueMicrotask(() => this.up.stop(spent));
        return false;
      }
    }
    if (!go) {
      this.waitingOn = this.socket ?? this.res;
      this.waitingOn.once('drain', this.onDrain);
    }
    return go;
  }

  private write(out: Buffer): boolean {
    const socket = this.socket;
    if (socket) return socket.destroyed || socket.write(chunkFrame(out));
    const res = this.res;
    const ok = res.write(out);
    if (!this.started) {
      this.started = true;
      const s = res.socket;
      // (a pipelined response waiting its turn has no socket yet: it stays on the slow path)
      if (res.chunkedEncoding && s !== null && !s.destroyed && res.req.method !== 'HEAD') this.socket = s;
    }
    return ok;
  }

  /** What the transform held back, at the end. */
  flush(): void {
    const rest = this.transform?.flush();
    if (rest && rest.length > 0) {
      this.atLineStart = rest[rest.length - 1] === 0x0a;
      this.write(rest);
    }
  }

  detach(): void {
    this.waitingOn?.off('drain', this.onDrain);
    this.waitingOn = undefined;
  }
}

/**
 * Relay `up`, the answer `b` gave, to the client. Sets what it learns on the request: the status
 * the client got, the bytes and first byte, the tokens, and the code of a final error line.
 * Throws only `client_closed` (the front then logs 499); every other failure is told to the client.
 */
export async function relayAnswer(ctx: RequestContext, b: Backend, up: Upstream, opts: RelayOptions): Promise<void> {
  const { res, outcome, facts } = ctx;
  outcome.status = up.statusCode;
  outcome.backendStatus = up.statusCode;
  const headers = downstreamHeaders(up.headers, ctx.id);
  // a rewritten answer may change length: let it go out chunked
  if (ctx.transform) delete headers['content-length'];
  res.writeHead(up.statusCode, headers);
  const ct = up.headers['content-type'];
  const kind = streamKind(Array.isArray(ct) ? ct[0] : ct);
  const endKind = up.statusCode === 200 ? expectedEnd(ctx.path, kind) : undefined;
  const endCheck = endKind ? new StreamEndCheck(endKind) : undefined;
  outcome.streamed = endKind !== undefined;
  const gaps = outcome.streamed ? opts.gapObserver?.(b.name, facts.model) : undefined;
  const grammar = grammarOf(ctx.path);
  // (an Anthropic answer says its input tokens first: its tap keeps the first bytes too)
  const relay = new ClientRelay(res, up, endCheck, ctx.transform, gaps, outcome.streamed ? ctx.charge : undefined, kind, new TokenTap(grammar === 'anthropic'));
  outcome.phase = 'streaming';
  try {
    // (a deadline that passes from here on is heard by the upstream call, which cuts the backend
    // and fails the pipe with shutting_down; one that passed already is said now)
    if (opts.stop.aborted) throw stopped();
    await up.pipe(relay);
    relay.flush();
    if (endCheck && endCheck.verdict(relay.tap.tail()) === 'cut_short') {
      const ge = new GatewayError('upstream_failed', `backend ${b.name} ended the stream without its final chunk`);
      outcome.failed(ge.code, 0);
      endWithError(res, kind, ge, relay.atLineStart, grammar);
    } else {
      res.end();
    }
  } catch (err) {
    const ge = err instanceof GatewayError ? err : new GatewayError('internal_error', 'internal gateway error', { cause: err });
    if (ge.code === 'client_closed') throw ge;
    // the relay stopped before the backend did (a spent budget, a stop): the cut stopped its GPU
    up.stop(ge);
    outcome.failed(ge.code, 0);
    if (ge.code === 'upstream_failed') b.failure('traffic', ge.message);
    endWithError(res, kind, ge, relay.atLineStart, grammar);
  } finally {
    relay.detach();
    facts.bytesOut = relay.bytes;
    if (relay.firstByteAt !== undefined) facts.ttfbMs = relay.firstByteAt - ctx.start;
    const counts = relay.tap.counts();
    outcome.promptTokens = counts.prompt;
    outcome.completionTokens = counts.completion;
  }
}

function stopped(): GatewayError {
  return new GatewayError('shutting_down', 'the gateway stopped before this answer was complete (its drain deadline passed)');
}

/** A stream's grammar for its last word: an API's error shape, or OpenAI Responses' own events. */
export type StreamGrammar = ApiFlavor | 'responses';

export function grammarOf(path: string): StreamGrammar {
  return path === '/v1/responses' ? 'responses' : flavorOf(path);
}

/**
 * End a response whose headers are already out after an upstream failure, in the stream's own
 * grammar: Ollama's final `{"error"}` line, OpenAI's error object as a `data:` event,
 * Anthropic's `event: error` (an unnamed event is ignored by the Anthropic SDK, which would take
 * a cut answer for a whole one), or the Responses API's terminal `response.failed` event (what
 * Codex and the openai client end a failed turn on).
 */
export function endWithError(res: ServerResponse, kind: StreamKind, err: GatewayError, atLineStart: boolean, grammar: StreamGrammar = 'openai'): void {
  if (res.destroyed) return;
  const sep = atLineStart ? '' : '\n';
  if (kind === 'ndjson') {
    res.end(`${sep}${JSON.stringify({ error: err.message })}\n`);
  } else if (kind === 'sse' && grammar === 'anthropic') {
    res.end(`${sep}event: error\ndata: ${JSON.stringify(toAnthropicBody(err))}\n\n`);
  } else if (kind === 'sse' && grammar === 'responses') {
    const failed = { type: 'response.failed', response: { object: 'response', status: 'failed', error: { code: err.code, message: err.message } } };
    res.end(`${sep}event: response.failed\ndata: ${JSON.stringify(failed)}\n\n`);
  } else if (kind === 'sse') {
    res.end(`${sep}data: ${JSON.stringify(toOpenAIBody(err))}\n\n`);
  } else {
    res.destroy();
  }
}

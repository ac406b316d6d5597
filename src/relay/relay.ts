// Relaying a response body chunk by chunk as it arrives: no re-chunking, no buffering, and
// backpressure both ways (a client that reads slowly pauses the upstream read; undici's idle
// timer does not run while paused). Once headers are out a failure can no longer change the
// status, so it becomes the stream's own last word: an NDJSON `{"error": ...}` line (Ollama's
// convention), an SSE `data:` event with an OpenAI error object, or, for a plain body, a cut
// connection so the client cannot take a truncated answer for a whole one.
import type { ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Readable } from 'node:stream';
import { GatewayError, toAnthropicBody, toOpenAIBody, type ApiFlavor } from '../errors.js';
import type { Cancellation } from '../http/cancel.js';
import type { ChunkTransform } from './chunk-transform.js';
import type { StreamEndCheck } from './stream-end.js';
import type { TokenTap } from './token-tap.js';

export interface RelayProgress {
  bytes: number;
  /** performance.now() when the first body byte was written to the client */
  firstByteAt: number | undefined;
  /** the last byte written was a newline (so an error line starts on a line of its own) */
  atLineStart: boolean;
}

export interface RelayHooks {
  /** sees every upstream chunk (token counts at the end) */
  readonly tap: TokenTap;
  /** sees every upstream chunk (did the stream end with its final chunk?) */
  readonly end?: StreamEndCheck | undefined;
  /** changes what the client gets (alias rename, dropped usage chunk) */
  readonly transform?: ChunkTransform | undefined;
  /** the gap before each chunk, in seconds */
  readonly gaps?: ((seconds: number) => void) | undefined;
  /** after each chunk is written: an error stops the relay there (a spent token budget) */
  readonly meter?: ((chunk: Buffer) => Error | undefined) | undefined;
  /** when this fires (a stop's drain deadline), the relay stops with `shutting_down` */
  readonly stop?: Cancellation | undefined;
}

/**
 * Where relayed bytes go. The first chunk goes through the response, so that Node sends the
 * headers and that chunk in one packet (the client's time to first token). After it, a chunked
 * response (every stream) is written straight to its socket, one HTTP/1.1 chunk frame per
 * upstream chunk: one write, where ServerResponse.write makes four corked ones and a writev,
 * allocating for each. `res.end()` still writes the last chunk. Anything else goes through the
 * response as usual.
 */
interface Sink {
  write(chunk: Buffer): boolean;
  /** emits 'drain' when a write that returned false has gone out */
  drainer(): NodeJS.EventEmitter;
}

function sinkFor(res: ServerResponse): Sink {
  let socket: Socket | undefined;
  let started = false;
  return {
    write(chunk: Buffer): boolean {
      if (socket) return socket.destroyed || socket.write(chunkFrame(chunk));
      const ok = res.write(chunk);
      if (!started) {
        started = true;
        const s = res.socket;
        // (a pipelined response waiting its turn has no socket yet: it stays on the slow path)
        if (res.chunkedEncoding && s !== null && !s.destroyed && res.req.method !== 'HEAD') socket = s;
      }
      return ok;
    },
    drainer: () => socket ?? res,
  };
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

export function relayBody(src: Readable, res: ServerResponse, progress: RelayProgress, hooks: RelayHooks): Promise<void> {
  const { tap, end, transform, gaps, meter, stop } = hooks;
  const sink = sinkFor(res);
  return new Promise<void>((resolve, reject) => {
    if (stop?.aborted) {
      reject(stopped());
      return;
    }
    let last: number | undefined;
    const onData = (chunk: Buffer) => {
      if (progress.firstByteAt === undefined) progress.firstByteAt = performance.now();
      if (gaps) {
        const now = performance.now();
        if (last !== undefined) gaps((now - last) / 1000);
        last = now;
      }
      progress.bytes += chunk.length;
      tap.push(chunk);
      end?.push(chunk);
      const out = transform ? transform.push(chunk) : chunk;
      progress.atLineStart = out.length > 0 ? out[out.length - 1] === 0x0a : progress.atLineStart;
      if (out.length > 0 && !sink.write(out)) {
        src.pause();
        waitingOn = sink.drainer();
        waitingOn.once('drain', onDrain);
      }
      const stop = meter?.(chunk);
      if (stop) finish(stop);
    };
    let waitingOn: NodeJS.EventEmitter | undefined;
    const onDrain = () => {
      waitingOn = undefined;
      src.resume();
    };
    const unstop = stop?.onCancel(() => finish(stopped()));
    const finish = (err?: Error) => {
      unstop?.();
      src.off('data', onData);
      src.off('end', onEnd);
      src.off('error', onError);
      waitingOn?.off('drain', onDrain);
      if (err) reject(err);
      else resolve();
    };
    const onEnd = () => {
      const rest = transform?.flush();
      if (rest && rest.length > 0) sink.write(rest);
      finish();
    };
    const onError = (err: Error) => finish(err);
    src.on('data', onData);
    src.once('end', onEnd);
    src.once('error', onError);
  });
}

function stopped(): GatewayError {
  return new GatewayError('shutting_down', 'the gateway stopped before this answer was complete (its drain deadline passed)');
}

export type StreamKind = 'ndjson' | 'sse' | 'other';

export function streamKind(contentType: string | undefined): StreamKind {
  if (!contentType) return 'other';
  if (contentType.includes('ndjson')) return 'ndjson';
  if (contentType.includes('text/event-stream')) return 'sse';
  return 'other';
}

/**
 * End a response whose headers are already out after an upstream failure, in the stream's own
 * grammar: Ollama's final `{"error"}` line, OpenAI's error object as a `data:` event, or
 * Anthropic's `event: error` (an unnamed event is ignored by the Anthropic SDK, which would take
 * a cut answer for a whole one).
 */
export function endWithError(res: ServerResponse, kind: StreamKind, err: GatewayError, atLineStart: boolean, flavor: ApiFlavor = 'openai'): void {
  if (res.destroyed) return;
  const sep = atLineStart ? '' : '\n';
  if (kind === 'ndjson') {
    res.end(`${sep}${JSON.stringify({ error: err.message })}\n`);
  } else if (kind === 'sse' && flavor === 'anthropic') {
    res.end(`${sep}event: error\ndata: ${JSON.stringify(toAnthropicBody(err))}\n\n`);
  } else if (kind === 'sse') {
    res.end(`${sep}data: ${JSON.stringify(toOpenAIBody(err))}\n\n`);
  } else {
    res.destroy();
  }
}

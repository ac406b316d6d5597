// Reading a request body under a size limit. A declared Content-Length over the limit is refused
// before a byte is read; a chunked body is refused as soon as it crosses the limit. Either way
// the rest is never kept in memory. All bodies together are bounded too (`BodyMemory`): a flood
// of large slow uploads gets 503 body_memory_full, never an out-of-memory.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { GatewayError } from '../errors.js';

const EMPTY = Buffer.alloc(0);

/** The request body bytes held in memory by every request at once, against one bound. */
export class BodyMemory {
  used = 0;
  constructor(public limit: number) {}

  take(n: number): boolean {
    if (this.used + n > this.limit) return false;
    this.used += n;
    return true;
  }

  give(n: number): void {
    this.used -= n;
  }
}

/** What reading a body needs of the request: the message, its response (whose end frees the bytes) and the shared bound. */
export interface BodySource {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly bodies: BodyMemory;
}

export function readBody(src: BodySource, maxBytes: number): Promise<Buffer> {
  const { req, res, bodies } = src;
  const declared = req.headers['content-length'];
  if (declared !== undefined && Number(declared) > maxBytes) {
    return Promise.reject(tooLarge(maxBytes));
  }
  // bytes count against the bound as they arrive, so a client that declares much and sends
  // little holds nothing
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let total = 0;
    // the bytes stay held until the answer is over (a retry sends them again)
    res.once('close', () => bodies.give(total));
    const done = (err: unknown, body?: Buffer) => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
      req.off('close', onClose);
      if (err) {
        chunks.length = 0;
        req.pause();
        reject(err);
      } else resolve(body!);
    };
    const onData = (chunk: Buffer) => {
      if (total + chunk.length > maxBytes) return done(tooLarge(maxBytes));
      if (!bodies.take(chunk.length)) return done(memoryFull(bodies));
      chunks.push(chunk);
      total += chunk.length;
    };
    const onEnd = () => {
      done(undefined, chunks.length === 0 ? EMPTY : chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, total));
    };
    const onError = (err: Error) => done(new GatewayError('client_closed', `client closed the request while sending its body: ${err.message}`));
    const onClose = () => {
      if (!req.complete) done(new GatewayError('client_closed', 'client closed the request while sending its body'));
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
    req.on('close', onClose);
  });
}

function memoryFull(bodies: BodyMemory): GatewayError {
  return new GatewayError('body_memory_full', `the request bodies being read already hold ${bodies.limit} bytes (limits.max_buffered_body_bytes); try again shortly`);
}

function tooLarge(maxBytes: number): GatewayError {
  return new GatewayError('body_too_large', `request body is larger than the limit of ${maxBytes} bytes`);
}

// Reading a request body under a size limit. A declared Content-Length over the limit is refused
// before a byte is read; a chunked body is refused as soon as it crosses the limit. Either way
// the rest is never kept in memory.
import type { IncomingMessage } from 'node:http';
import { GatewayError } from '../errors.js';

const EMPTY = Buffer.alloc(0);

export function readBody(req: IncomingMessage, maxBytes: number): Promise<Buffer> {
  const declared = req.headers['content-length'];
  if (declared !== undefined && Number(declared) > maxBytes) {
    return Promise.reject(tooLarge(maxBytes));
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let total = 0;
    const done = (err: unknown, body?: Buffer) => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
      req.off('close', onClose);
      if (err) reject(err);
      else resolve(body!);
    };
    const onData = (chunk: Buffer) => {
      total += chunk.length;
      if (total > maxBytes) {
        chunks.length = 0;
        req.pause();
        done(tooLarge(maxBytes));
        return;
      }
      chunks.push(chunk);
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

function tooLarge(maxBytes: number): GatewayError {
  return new GatewayError('body_too_large', `request body is larger than the limit of ${maxBytes} bytes`);
}

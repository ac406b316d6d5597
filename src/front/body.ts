// Reading a request body under a size limit. A declared Content-Length over the limit is refused
// before a byte is read; a chunked body is refused as soon as it crosses the limit. Either way
// the rest is never kept in memory. All bodies together are bounded too (`BodyMemory`): a flood
// of large slow uploads gets 503 body_memory_full, never an out-of-memory.
import type { IncomingMessage, ServerResponse } from 'node:http';
import * as zlib from 'node:zlib';
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

type Decoder = (b: Buffer, o: zlib.ZlibOptions) => Buffer;

/** node:zlib's zstd, where this Node has it (22.15 and later) */
const zstd = (zlib as unknown as { zstdDecompressSync?: Decoder }).zstdDecompressSync;

const DECODERS: Readonly<Record<string, Decoder | undefined>> = {
  gzip: zlib.gunzipSync,
  'x-gzip': zlib.gunzipSync,
  deflate: zlib.inflateSync,
  br: zlib.brotliDecompressSync as Decoder,
  zstd,
};

/**
 * A body sent compressed (`Content-Encoding`: Codex sends zstd, as Ollama accepts), decoded, with
 * the size limit held on the decoded bytes too; the backend is sent it plain. An encoding this
 * Node cannot decode is 415.
 */
export function decodeBody(req: IncomingMessage, body: Buffer, maxBytes: number): Buffer {
  const header = req.headers['content-encoding'];
  if (header === undefined || body.length === 0) return body;
  let out = body;
  // several encodings apply in the order listed: undo them from the last
  for (const coding of header.split(',').map((c) => c.trim().toLowerCase()).filter((c) => c !== '' && c !== 'identity').reverse()) {
    const decode = DECODERS[coding];
    if (!decode) {
      const why = coding === 'zstd' ? `zstd needs Node 22.15 or later (this is ${process.version})` : `'${coding.slice(0, 32)}' is not one the gateway decodes (gzip, deflate, br, zstd)`;
      throw new GatewayError('unsupported_encoding', `request body encoding ${why}`);
    }
    try {
      out = decode(out, { maxOutputLength: maxBytes });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE' || err instanceof RangeError) throw tooLarge(maxBytes);
      throw new GatewayError('bad_request', `request body is not valid ${coding}: ${(err as Error).message}`);
    }
  }
  return out;
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
      const raw = chunks.length === 0 ? EMPTY : chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, total);
      let body: Buffer;
      try {
        body = decodeBody(req, raw, maxBytes);
      } catch (err) {
        done(err);
        return;
      }
      done(undefined, body);
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

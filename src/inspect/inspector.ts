// Small bodies are parsed inline (a worker round trip costs more than the parse); bodies above
// the threshold go to a piscina pool of worker threads.
import { Piscina } from 'piscina';
import { GatewayError } from '../errors.js';
import { parseBody, type BodyFacts, type ParseOptions, type ParseOutcome } from './parse-body.js';
import type { InspectResult, InspectTask } from './worker.js';

export interface InspectOptions {
  /** worker threads; 0 parses everything inline */
  readonly workers: number;
  readonly workerThresholdBytes: number;
}

export class Inspector {
  private readonly pool: Piscina<InspectTask, InspectResult> | undefined;
  private readonly threshold: number;
  /** how many bodies went to a worker (tests and metrics) */
  offloaded = 0;

  constructor(opts: InspectOptions) {
    this.threshold = opts.workerThresholdBytes;
    this.pool =
      opts.workers > 0
        ? new Piscina<InspectTask, InspectResult>({
            filename: new URL('./worker.js', import.meta.url).href,
            // started with the first large body, not at start-up: a worker thread is ~11 MB of
            // memory that a gateway whose bodies are all small never needs
            minThreads: 0,
            maxThreads: opts.workers,
            idleTimeout: 60_000,
          })
        : undefined;
  }

  /** Resolves with the body's facts and the body itself (the same bytes, maybe in a new Buffer). */
  async inspect(body: Buffer, opts: ParseOptions = {}): Promise<{ facts: BodyFacts; body: Buffer }> {
    if (!this.pool || body.length < this.threshold) {
      const outcome = parseBody(body, opts);
      return { facts: unwrap(outcome), body: outcome.ok && outcome.rewritten ? Buffer.from(outcome.rewritten) : body };
    }
    // move the bytes to the worker and back instead of copying them twice
    const own = body.byteOffset === 0 && body.buffer.byteLength === body.length && body.buffer instanceof ArrayBuffer ? body.buffer : copy(body);
    this.offloaded++;
    const res = await this.pool.run({ bytes: own, opts }, { transferList: [own] });
    return { facts: unwrap(res.outcome), body: Buffer.from(res.bytes) };
  }

  async close(): Promise<void> {
    await this.pool?.destroy();
  }
}

function copy(b: Buffer): ArrayBuffer {
  const ab = new ArrayBuffer(b.length);
  new Uint8Array(ab).set(b);
  return ab;
}

function unwrap(o: ParseOutcome): BodyFacts {
  if (o.ok) return o.facts;
  throw new GatewayError(o.code, o.message);
}

// Per-request state: the id, the client-gone token (fired when the client goes away before
// the answer is complete), and the facts the request's one log line reports.
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { RequestRecord } from '../log/request-log.js';
import type { ApiKey } from '../auth/keys.js';
import type { Charge } from '../auth/budgets.js';
import type { ChunkTransform } from '../relay/chunk-transform.js';
import { CancelToken, type Cancellation } from './cancel.js';

const ID_OK = /^[\w.:@/+=-]{1,128}$/;

export class RequestContext {
  readonly id: string;
  readonly start = performance.now();
  readonly path: string;
  private readonly gone = new CancelToken();
  readonly record: RequestRecord;
  /** the API key the request presented (undefined in open mode) */
  key: ApiKey | undefined;
  /** what the answer needs changed on its way (an alias's name, a usage chunk the client did not ask for) */
  transform: ChunkTransform | undefined;
  /** the job's account with its key's token budgets (metered keys only) */
  charge: Charge | undefined;
  /** where the request is: for the phase a client left in */
  phase: 'front' | 'queued' | 'upstream' | 'streaming' = 'front';
  /** the answer is a streamed generation (NDJSON or SSE on a dispatched route) */
  streamed = false;
  /** sees the gap before each chunk of a streamed generation, in seconds */
  gapObserver: ((seconds: number) => void) | undefined;

  constructor(
    readonly req: IncomingMessage,
    readonly res: ServerResponse,
  ) {
    const given = req.headers['x-request-id'];
    this.id = typeof given === 'string' && ID_OK.test(given) ? given : randomUUID();
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    this.path = q === -1 ? url : url.slice(0, q);
    this.record = {
      id: this.id,
      method: req.method ?? 'GET',
      path: this.path,
      model: undefined,
      backend: undefined,
      key: undefined,
      flow: undefined,
      status: 0,
      code: undefined,
      queueMs: undefined,
      ttfbMs: undefined,
      durationMs: 0,
      bytesIn: 0,
      bytesOut: 0,
      attempts: 0,
      promptTokens: undefined,
      completionTokens: undefined,
    };
    res.once('close', () => {
      if (!res.writableFinished) this.gone.cancel();
    });
  }

  /** Fires when the client goes away before the response is complete. */
  get clientGoneSignal(): Cancellation {
    return this.gone;
  }

  get clientGone(): boolean {
    return this.gone.aborted;
  }
}

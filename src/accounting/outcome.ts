// What became of a request, as a value: each stage sets the part it knows (the front its status
// when it answers an error, the forward stage the backend's status, the relay the code a stream
// ended with and the tokens it carried), and the accounting stage alone reads it to charge the
// key, flag the ledger row and pick the log level. Billing never reads a log field.
import type { ErrorCode } from '../errors.js';

/** Where a request was when it ended (a client that left: in which phase). */
export type Phase = 'front' | 'queued' | 'upstream' | 'streaming';

export class Outcome {
  /** the HTTP status the client got; 499 once it has gone away */
  status = 0;
  /** the gateway's error code: the error it answered, the final error line of a stream, or `client_closed` */
  code: ErrorCode | undefined;
  phase: Phase = 'front';
  /** the answer is a streamed generation (NDJSON or SSE on a dispatched route) */
  streamed = false;
  /** the status the (last tried) backend answered with, once its headers came */
  backendStatus: number | undefined;
  /** the backend's token counts (as it reported them, or as the relay counted them) */
  promptTokens: number | undefined;
  completionTokens: number | undefined;

  /** The gateway answered with this error (or, after headers, ended the stream with it). */
  failed(code: ErrorCode, status: number): void {
    this.code = code;
    if (status !== 0) this.status = status;
  }

  /** The client went away before the answer was whole. */
  clientLeft(): void {
    this.code ??= 'client_closed';
    this.status = 499;
  }

  /**
   * A backend answered 200: the one case a job is charged for what it used (its counts, or what
   * the relay saw), even when the client left or the stream broke on the way. A job that never
   * ran, or that the backend refused, costs nothing.
   */
  get charged(): boolean {
    return this.backendStatus === 200;
  }

  /** A ledger error: any status of 400 and up, or an answer that ended with an error; a client that left is not one. */
  get isError(): boolean {
    if (this.status === 499) return this.code !== undefined && this.code !== 'client_closed';
    return this.code !== undefined || this.status >= 400;
  }
}

/** What a request's one log line reports beside its outcome: routing facts and figures only. */
export interface RequestFacts {
  readonly id: string;
  readonly method: string;
  /** the normalized path, clipped */
  readonly path: string;
  model: string | undefined;
  backend: string | undefined;
  /** the API key's name (never the key) */
  key: string | undefined;
  /** the fairness identity when it is more than the key (a key's user) */
  flow: string | undefined;
  /** milliseconds spent waiting for a slot */
  queueMs: number | undefined;
  /** milliseconds from arrival to the first byte sent to the client */
  ttfbMs: number | undefined;
  durationMs: number;
  bytesIn: number;
  bytesOut: number;
  attempts: number;
}

// One try at one backend: send the request, hear the response headers, then hand its body, chunk
// by chunk as undici's parser yields it, to one sink. Built on undici's `dispatch()` with a
// handler: no Readable, no 'data' events, no promise per chunk between the backend's socket and
// the client's (issue 11.2). Every way this can fail becomes a GatewayError, marked retryable
// when nothing has reached the client (so another backend may take the job). The client leaving
// and a stop's deadline stay wired to the upstream until the body ends, so a client that leaves
// mid-stream cuts the backend's connection and its GPU stops.
import type { IncomingHttpHeaders } from 'node:http';
import type { Dispatcher } from 'undici';
import type { Backend, PendingAttempt } from '../backends/backend.js';
import { GatewayError, describeError } from '../errors.js';
import type { Cancellation } from '../cancel.js';

export interface UpstreamRequest {
  readonly method: string;
  readonly path: string;
  readonly headers: Record<string, string | string[]>;
  readonly body: Buffer | undefined;
  /**
   * A generation: once sent, the backend may be working on it, so a header timeout is not
   * retried elsewhere (a job must never run on two backends at once); a backend that has hung
   * is taken out by its probes, and what it holds without a byte yet goes elsewhere then.
   */
  readonly generation?: boolean;
  /** wait this long for response headers (0: no limit; undefined: the pool's) */
  readonly headersTimeoutMs?: number;
}

/** Where a response body goes. */
export interface BodySink {
  /** One chunk, as the backend's framing delivered it: false holds the rest until `Upstream.resume()`. */
  data(chunk: Buffer): boolean;
}

/** A response whose headers have come: its body is read once, by `pipe` or `discard`. */
export interface Upstream {
  readonly statusCode: number;
  readonly headers: IncomingHttpHeaders;
  /** Send the body to `sink`; settles when it has ended (or failed, as a GatewayError). */
  pipe(sink: BodySink): Promise<void>;
  /** Let held chunks flow again (the sink's client drained). */
  readonly resume: () => void;
  /** Read and drop the body (an answer not relayed, before a retry); never fails. */
  discard(): Promise<void>;
  /** Cut the backend's connection; `pipe` fails with `err`. */
  stop(err: GatewayError): void;
}

const UNREACHABLE = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ETIMEDOUT',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_SOCKET',
  'UND_ERR_CLOSED',
  'UND_ERR_DESTROYED',
]);

function errCode(err: unknown): string | undefined {
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 4; e = e.cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && code !== 'UND_ERR_ABORTED') return code;
  }
  return undefined;
}

/** A body not relayed is read to its end to keep the connection, up to this; past it, cut. */
const DISCARD_MAX_BYTES = 256 * 1024;

const DROP: BodySink = { data: () => true };

type Cut = 'client' | 'redispatch' | 'deadline' | 'stop';

/** The undici handler of one try, and the response it becomes. */
class UpstreamCall implements Dispatcher.DispatchHandler, Upstream, PendingAttempt {
  statusCode = 0;
  headers: IncomingHttpHeaders = {};
  private controller: Dispatcher.DispatchController | undefined;
  private cutBy: Cut | undefined;
  private cutError: Error | undefined;
  private redispatchReason = '';
  private headed = false;
  private headWaiter: { resolve: (u: Upstream) => void; reject: (e: GatewayError) => void } | undefined;
  private sink: BodySink | undefined;
  /** chunks that came before a sink was given (the first one may share a read with the headers) */
  private held: Buffer[] | undefined;
  private discarded = 0;
  private ended = false;
  private failure: GatewayError | undefined;
  private endWaiter: { resolve: () => void; reject: (e: GatewayError) => void } | undefined;
  private readonly unlisten: (() => void)[] = [];
  readonly resume = (): void => this.controller?.resume();

  constructor(
    private readonly backend: Backend,
    private readonly req: UpstreamRequest,
    clientGone: Cancellation,
    deadline: Cancellation | undefined,
  ) {
    this.unlisten.push(clientGone.onCancel(() => this.cut('client', new Error('client closed'))));
    if (deadline) this.unlisten.push(deadline.onCancel(() => this.cut('deadline', new Error('drain deadline'))));
    backend.pending.add(this);
  }

  start(via: Dispatcher): Promise<Upstream> {
    const head = new Promise<Upstream>((resolve, reject) => {
      this.headWaiter = { resolve, reject };
    });
    const req = this.req;
    via.dispatch(
      {
        method: req.method as Dispatcher.HttpMethod,
        path: req.path,
        headers: req.headers,
        body: req.body ?? null,
        ...(req.headersTimeoutMs !== undefined ? { headersTimeout: req.headersTimeoutMs } : {}),
      },
      this,
    );
    return head;
  }

  /** (PendingAttempt) the backend went down before it answered: send the job elsewhere */
  redispatch(reason: string): void {
    this.redispatchReason = reason;
    this.cut('redispatch', new Error(reason));
  }

  stop(err: GatewayError): void {
    this.cut('stop', err);
  }

  private cut(by: Cut, err: Error): void {
    if (this.ended || this.failure) return;
    this.cutBy ??= by;
    this.cutError ??= err;
    // before undici has started the request there is nothing to abort yet: onRequestStart does it
    this.controller?.abort(err);
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    if (this.cutError) controller.abort(this.cutError);
  }

  onResponseStart(_c: Dispatcher.DispatchController, statusCode: number, headers: IncomingHttpHeaders): void {
    this.statusCode = statusCode;
    this.headers = headers;
    this.headed = true;
    this.backend.pending.delete(this);
    this.headWaiter?.resolve(this);
    this.headWaiter = undefined;
  }

  onResponseData(c: Dispatcher.DispatchController, chunk: Buffer): void {
    const sink = this.sink;
    if (sink === undefined) {
      (this.held ??= []).push(chunk);
      return;
    }
    if (sink === DROP) {
      this.discarded += chunk.length;
      if (this.discarded > DISCARD_MAX_BYTES) c.abort(new Error('discarded'));
      return;
    }
    if (!sink.data(chunk)) c.pause();
  }

  onResponseEnd(): void {
    this.ended = true;
    this.finish();
    this.endWaiter?.resolve();
  }

  onResponseError(_c: Dispatcher.DispatchController, err: Error): void {
    const ge = this.classify(err);
    this.failure = ge;
    this.finish();
    if (this.headWaiter) {
      this.headWaiter.reject(ge);
      this.headWaiter = undefined;
    }
    this.endWaiter?.reject(ge);
  }

  private finish(): void {
    for (const f of this.unlisten) f();
    this.unlisten.length = 0;
    this.backend.pending.delete(this);
  }

  pipe(sink: BodySink): Promise<void> {
    this.sink = sink;
    const held = this.held;
    this.held = undefined;
    if (held) {
      let go = true;
      for (const chunk of held) go = sink.data(chunk) && go;
      if (!go) this.controller?.pause();
    }
    if (this.ended) return Promise.resolve();
    if (this.failure) return Promise.reject(this.failure);
    return new Promise<void>((resolve, reject) => {
      this.endWaiter = { resolve, reject };
    });
  }

  discard(): Promise<void> {
    this.held = undefined;
    return this.pipe(DROP).catch(() => undefined);
  }

  private classify(err: unknown): GatewayError {
    const beforeHeaders = !this.headed;
    const by = this.cutBy;
    if (by === 'stop' && err instanceof GatewayError) return err;
    if (by === 'client') return new GatewayError('client_closed', 'client closed the request', { cause: err });
    if (by === 'deadline') {
      return beforeHeaders
        ? new GatewayError('shutting_down', 'the gateway stopped before the backend answered (its drain deadline passed)', { cause: err })
        : new GatewayError('shutting_down', 'the gateway stopped before this answer was complete (its drain deadline passed)', { cause: err });
    }
    if (by === 'redispatch') return new GatewayError('upstream_unreachable', this.redispatchReason, { cause: err, retryable: beforeHeaders });
    if (err instanceof GatewayError) return err;
    const code = errCode(err);
    const detail = `${this.backend.name}: ${describeError(err)}`;
    if (code === 'UND_ERR_HEADERS_TIMEOUT') {
      return new GatewayError('upstream_timeout', `backend sent no response headers in time (${detail})`, { cause: err, retryable: beforeHeaders && this.req.generation !== true });
    }
    if (code === 'UND_ERR_BODY_TIMEOUT') return new GatewayError('upstream_idle_timeout', `backend went silent mid-response (${detail})`, { cause: err });
    if (code !== undefined && UNREACHABLE.has(code)) {
      return beforeHeaders
        ? new GatewayError('upstream_unreachable', `backend unreachable (${detail})`, { cause: err, retryable: true })
        : new GatewayError('upstream_failed', `backend connection lost mid-response (${detail})`, { cause: err });
    }
    return new GatewayError('upstream_failed', `backend failed (${detail})`, { cause: err, retryable: false });
  }
}

/**
 * Send `req` to `backend` through `via` (its generation pool, or its pool for everything else);
 * settles when the response headers are in.
 */
export function sendUpstream(
  backend: Backend,
  via: Dispatcher,
  req: UpstreamRequest,
  clientGone: Cancellation,
  /** a stop's drain deadline: a request still waiting for headers then is answered 503 */
  deadline?: Cancellation,
): Promise<Upstream> {
  if (clientGone.aborted) return Promise.reject(new GatewayError('client_closed', 'client closed the request'));
  return new UpstreamCall(backend, req, clientGone, deadline).start(via);
}

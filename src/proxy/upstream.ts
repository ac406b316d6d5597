// One try at one backend: send the request, wait for the response headers. Every way this can
// fail becomes a GatewayError, marked retryable when nothing has reached the client (so another
// backend may take the job). The abort signal stays wired to the upstream until `done()`, so a
// client that leaves mid-stream cuts the backend's connection and its GPU stops.
import type { IncomingHttpHeaders } from 'node:http';
import type { Dispatcher } from 'undici';
import type { Backend, PendingAttempt } from '../backends/backend.js';
import { describeError } from '../backends/health-checker.js';
import { GatewayError } from '../errors.js';
import { CancelToken, type Cancellation } from '../http/cancel.js';

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

export interface UpstreamResponse {
  readonly statusCode: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: Dispatcher.ResponseData['body'];
  /** stop listening for the client leaving: call when the response is over */
  done(): void;
  /** why the upstream body failed, as a GatewayError */
  classify(err: unknown): GatewayError;
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

export async function sendUpstream(
  backend: Backend,
  via: Dispatcher,
  req: UpstreamRequest,
  clientGone: Cancellation,
  /** a stop's drain deadline: a request still waiting for headers then is answered 503 */
  deadline?: Cancellation,
): Promise<UpstreamResponse> {
  // undici listens for 'abort' on this emitter, and cuts the upstream connection when it fires
  const ac = new CancelToken();
  let abortedBy: 'client' | 'redispatch' | 'deadline' | undefined;
  let redispatchReason = '';
  if (clientGone.aborted) throw new GatewayError('client_closed', 'client closed the request');
  const stopClient = clientGone.onCancel(() => {
    abortedBy ??= 'client';
    ac.cancel();
  });
  const stopDeadline = deadline?.onCancel(() => {
    abortedBy ??= 'deadline';
    ac.cancel();
  });
  const done = () => {
    stopClient();
    stopDeadline?.();
  };
  const pending: PendingAttempt = {
    redispatch: (reason) => {
      abortedBy ??= 'redispatch';
      redispatchReason = reason;
      ac.cancel();
    },
  };
  backend.pending.add(pending);

  const classify = (err: unknown, beforeHeaders: boolean): GatewayError => {
    if (err instanceof GatewayError) return err;
    if (abortedBy === 'client') return new GatewayError('client_closed', 'client closed the request', { cause: err });
    if (abortedBy === 'deadline') return new GatewayError('shutting_down', 'the gateway stopped before the backend answered (its drain deadline passed)', { cause: err });
    if (abortedBy === 'redispatch') return new GatewayError('upstream_unreachable', redispatchReason, { cause: err, retryable: beforeHeaders });
    const code = errCode(err);
    const detail = `${backend.name}: ${describeError(err)}`;
    if (code === 'UND_ERR_HEADERS_TIMEOUT') {
      return new GatewayError('upstream_timeout', `backend sent no response headers in time (${detail})`, { cause: err, retryable: beforeHeaders && req.generation !== true });
    }
    if (code === 'UND_ERR_BODY_TIMEOUT') return new GatewayError('upstream_idle_timeout', `backend went silent mid-response (${detail})`, { cause: err });
    if (code !== undefined && UNREACHABLE.has(code)) {
      return beforeHeaders
        ? new GatewayError('upstream_unreachable', `backend unreachable (${detail})`, { cause: err, retryable: true })
        : new GatewayError('upstream_failed', `backend connection lost mid-response (${detail})`, { cause: err });
    }
    return new GatewayError('upstream_failed', `backend failed (${detail})`, { cause: err, retryable: false });
  };

  try {
    const res = await via.request({
      method: req.method as Dispatcher.HttpMethod,
      path: req.path,
      headers: req.headers,
      body: req.body,
      signal: ac,
      ...(req.headersTimeoutMs !== undefined ? { headersTimeout: req.headersTimeoutMs } : {}),
    });
    return { statusCode: res.statusCode, headers: res.headers, body: res.body, done, classify: (err) => classify(err, false) };
  } catch (err) {
    done();
    throw classify(err, true);
  } finally {
    backend.pending.delete(pending);
  }
}

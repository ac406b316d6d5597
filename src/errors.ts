// Every failure the gateway itself produces is a GatewayError: a stable code, an HTTP status and
// a message. One place (toOllamaBody / toOpenAIBody) turns it into each API's own error shape, so
// that real clients (ollama-js, openai-node, Open WebUI) parse our errors as they parse a server's.
import type { ApiFlavor } from './api-flavor.js';

export interface ErrorSpec {
  readonly status: number;
  /** Seconds for a Retry-After header, when a retry later makes sense. */
  readonly retryAfter?: boolean;
  readonly description: string;
}

// The README's error table is checked against this registry by a test: change both together.
export const ERRORS = {
  bad_json: { status: 400, description: 'The request body is not valid JSON.' },
  bad_path: { status: 400, description: 'The request path cannot be normalized (a malformed percent-escape, bytes that are not UTF-8, a control character).' },
  bad_request: { status: 400, description: 'The request body is missing, or JSON but not an object.' },
  unauthorized: { status: 401, description: 'No API key, or one the gateway does not know (`Authorization: Bearer` or `X-Api-Key`).' },
  admin_only: { status: 403, description: 'The route needs a key flagged `admin`.' },
  model_forbidden: { status: 403, description: 'The key may not use this model (`keys[].models`).' },
  origin_forbidden: { status: 403, description: 'A browser request from an origin that `cors.origins` (and Ollama\'s defaults: localhost, 127.0.0.1, 0.0.0.0, app://, file://, tauri://, vscode-webview://) does not allow; empty body, as Ollama answers.' },
  management_disabled: { status: 403, description: 'Model management (pull, push, create, copy, delete, blobs) is off: `management.enabled`.' },
  not_found: { status: 404, description: 'No such route on the gateway: `404 page not found` as text/plain, as Ollama (gin) answers.' },
  backend_not_found: { status: 404, description: '`X-Gateway-Backend` names no backend in rotation.' },
  model_not_found: { status: 404, description: 'No backend in the fleet holds the requested model.' },
  method_not_allowed: { status: 405, description: 'A gateway route asked with the wrong method (the admin routes take POST).' },
  body_too_large: { status: 413, description: 'The request body is larger than `limits.max_body_bytes`.' },
  unsupported_encoding: { status: 415, description: 'The request body\'s `Content-Encoding` is not one the gateway decodes (gzip, deflate, br, and zstd on Node 22.15 or later).' },
  rate_limited: { status: 429, retryAfter: true, description: 'The key is over its request rate (`keys[].requests_per_minute`, `burst`).' },
  key_queue_full: { status: 429, retryAfter: true, description: 'The key already has `keys[].max_queued` jobs waiting for a slot.' },
  concurrency_limited: { status: 429, retryAfter: true, description: 'The key already has `keys[].max_concurrent` jobs queued or running.' },
  token_rate_limited: { status: 429, retryAfter: true, description: 'The key is over its token rate (`keys[].tokens_per_minute`); Retry-After says when it may go on.' },
  budget_exhausted: { status: 429, retryAfter: true, description: 'The key has spent its token budget (`keys[].tokens_per_day` or `tokens_per_month`); the message and Retry-After say when it resets (00:00 UTC). Mid-stream this is the final error line.' },
  client_closed: { status: 499, description: 'The client went away before the answer was complete (logged, never seen by the client).' },
  internal_error: { status: 500, description: 'A bug in the gateway: the request failed, the gateway stays up.' },
  upstream_unreachable: { status: 502, description: 'No backend could be reached (connection refused or reset on every try).' },
  upstream_failed: { status: 502, description: 'The backend failed while answering; mid-stream this becomes a final error line.' },
  body_memory_full: { status: 503, retryAfter: true, description: 'The request bodies being read already hold `limits.max_buffered_body_bytes` of memory.' },
  queue_full: { status: 503, retryAfter: true, description: 'Every slot is busy and the wait queue is at `queue.size`.' },
  queue_timeout: { status: 503, retryAfter: true, description: 'The request waited `queue.max_wait_seconds` without getting a slot.' },
  no_healthy_backend: { status: 503, retryAfter: true, description: 'No backend is in rotation: all are failing their health checks.' },
  shutting_down: { status: 503, retryAfter: true, description: 'The gateway is draining for a stop or a restart.' },
  upstream_timeout: { status: 504, description: 'The backend sent no response headers within `timeouts.headers_seconds`.' },
  upstream_idle_timeout: { status: 504, description: 'The backend sent nothing for `timeouts.idle_seconds` in the middle of a response.' },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERRORS;

export class GatewayError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  /** True when nothing reached the client and nothing reached a GPU: another backend may take it. */
  readonly retryable: boolean;

  /** seconds for Retry-After when this error knows better than the default */
  readonly retryAfterSeconds: number | undefined;

  constructor(code: ErrorCode, message: string, options: { cause?: unknown; retryable?: boolean; retryAfterSeconds?: number } = {}) {
    super(message, { cause: options.cause });
    this.name = 'GatewayError';
    this.code = code;
    this.status = ERRORS[code].status;
    this.retryable = options.retryable ?? false;
    this.retryAfterSeconds = options.retryAfterSeconds;
  }

  get retryAfter(): boolean {
    const spec: ErrorSpec = ERRORS[this.code];
    return spec.retryAfter === true;
  }
}

export function isGatewayError(err: unknown): err is GatewayError {
  return err instanceof GatewayError;
}


/** Ollama's native shape: `{"error": "..."}` (api/types.go StatusError). */
export function toOllamaBody(err: GatewayError): { error: string } {
  return { error: err.message };
}

export interface OpenAIErrorBody {
  error: { message: string; type: string; param: null; code: string };
}

/** OpenAI's shape, with Ollama's own choice of `type` per status (middleware/openai.go). */
export function toOpenAIBody(err: GatewayError): OpenAIErrorBody {
  const type = err.status === 400 || err.status === 413 ? 'invalid_request_error' : err.status === 404 ? 'not_found_error' : 'api_error';
  return { error: { message: err.message, type, param: null, code: err.code } };
}

export interface AnthropicErrorBody {
  type: 'error';
  error: { type: string; message: string };
  request_id?: string;
}

/** Anthropic's shape, as Ollama's Messages route writes it (middleware/anthropic.go), with its error types per status. */
export function toAnthropicBody(err: GatewayError, requestId?: string): AnthropicErrorBody {
  const s = err.status;
  const type =
    s === 400 ? 'invalid_request_error'
    : s === 401 ? 'authentication_error'
    : s === 403 ? 'permission_error'
    : s === 404 ? 'not_found_error'
    : s === 413 ? 'request_too_large'
    : s === 429 ? 'rate_limit_error'
    : s === 503 ? 'overloaded_error'
    : 'api_error';
  return { type: 'error', error: { type, message: err.message }, ...(requestId ? { request_id: requestId } : {}) };
}

export function errorBody(err: GatewayError, flavor: ApiFlavor, requestId?: string): string {
  return JSON.stringify(flavor === 'openai' ? toOpenAIBody(err) : flavor === 'anthropic' ? toAnthropicBody(err, requestId) : toOllamaBody(err));
}

/** A thrown thing in one line, for a log field or an error message: its code, message and cause. */
export function describeError(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    const cause = err.cause instanceof Error ? `: ${err.cause.message}` : '';
    return typeof code === 'string' ? `${code} ${err.message}${cause}` : `${err.message}${cause}`;
  }
  return String(err);
}

/** What to tell a client that wants to retry later, in seconds. */
export const RETRY_AFTER_SECONDS = 1;

// The HTTP front: node:http with tight limits on what a client may send before we answer
// (header size, header time), one handler that routes, answers errors in the API's own shape,
// and writes each request's one log line when it ends.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import type { GatewayConfig } from '../config/schema.js';
import { flavorOf } from '../api-flavor.js';
import { GatewayError, errorBody, isGatewayError } from '../errors.js';
import { RequestContext } from './context.js';
import { BodyMemory } from './body.js';
import { Cors } from './cors.js';
import { classifyRoute, type RouteKind } from './routes.js';
import { clip } from '../text/clip.js';

export interface FrontHandlers {
  dispatched(ctx: RequestContext): Promise<void>;
  passthrough(ctx: RequestContext): Promise<void>;
  management(ctx: RequestContext): Promise<void>;
  /** the gateway's own routes (`/healthz`, `/metrics`) */
  gateway(ctx: RequestContext): void | Promise<void>;
  /** the fleet's catalog (`/api/tags`, `/v1/models`, ...) */
  catalog(ctx: RequestContext): void;
  /** true once a stop has begun: new requests get 503 */
  draining(): boolean;
  /** who may do this: sets ctx.key, or throws 401/403 */
  authorize(ctx: RequestContext, route: RouteKind): void;
  /** a request arrived (its trace begins) */
  began(ctx: RequestContext): void;
  /** the request is over: the accounting stage (its charge, log line, ledger row, metrics) */
  ended(ctx: RequestContext): void;
}

export function createFront(cfg: GatewayConfig, handlers: FrontHandlers, log: Logger): Server {
  const bodies = new BodyMemory(cfg.limits.maxBufferedBodyBytes);
  const cors = new Cors(cfg.cors.origins);
  const server = createServer(
    {
      maxHeaderSize: cfg.limits.maxHeaderBytes,
      headersTimeout: cfg.limits.requestHeaderTimeoutMs,
      // the whole request (headers and body) must arrive within this; answers may take longer
      requestTimeout: Math.max(cfg.limits.requestHeaderTimeoutMs, 300_000),
      connectionsCheckingInterval: 1_000,
      keepAliveTimeout: 65_000,
      noDelay: true,
      requireHostHeader: false,
    },
    (req, res) => void handle(req, res, handlers, log, cfg, bodies, cors),
  );
  // past it, a new connection is closed at once (a slowloris flood cannot take every file descriptor)
  server.maxConnections = cfg.limits.maxConnections;
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => onClientError(err, socket, log));
  return server;
}

async function handle(req: IncomingMessage, res: ServerResponse, h: FrontHandlers, log: Logger, cfg: GatewayConfig, bodies: BodyMemory, cors: Cors): Promise<void> {
  const ctx = new RequestContext(req, res, bodies);
  res.setHeader('x-request-id', ctx.id);
  h.began(ctx);
  try {
    const crossOrigin = cors.apply(req, res);
    if (crossOrigin === 'forbidden') throw new GatewayError('origin_forbidden', 'origin not allowed (cors.origins)');
    if (crossOrigin === 'preflight') {
      ctx.outcome.status = 204;
      res.writeHead(204, { 'content-length': 0 });
      res.end();
      return;
    }
    if (h.draining()) throw new GatewayError('shutting_down', 'the gateway is shutting down');
    if (ctx.badPath !== undefined) throw new GatewayError('bad_path', `the request path holds ${ctx.badPath}`);
    const route = classifyRoute(ctx.method, ctx.path);
    h.authorize(ctx, route);
    switch (route) {
      case 'gateway':
        await h.gateway(ctx);
        break;
      case 'catalog':
        h.catalog(ctx);
        break;
      case 'dispatch':
        await h.dispatched(ctx);
        break;
      case 'passthrough':
        await h.passthrough(ctx);
        break;
      case 'management':
        await h.management(ctx);
        break;
      case 'not_found':
        throw new GatewayError('not_found', `404 page not found: ${clip(ctx.path)}`);
    }
  } catch (err) {
    const ge = isGatewayError(err) ? err : new GatewayError('internal_error', 'internal gateway error', { cause: err });
    if (ge.code === 'internal_error') log.error({ req_id: ctx.id, err }, 'internal error');
    sendError(ctx, ge, cfg);
  } finally {
    h.ended(ctx);
  }
}

function sendError(ctx: RequestContext, err: GatewayError, cfg: GatewayConfig): void {
  const { res } = ctx;
  if (err.code === 'client_closed' || ctx.clientGone) {
    ctx.outcome.failed(err.code, 0);
    ctx.outcome.clientLeft();
    return;
  }
  ctx.outcome.failed(err.code, res.headersSent ? 0 : err.status);
  if (res.headersSent) {
    // nothing honest can be said on a response already under way
    res.destroy();
    return;
  }
  // as Ollama's CORS middleware aborts: the status alone; and an unknown path as gin answers it
  const plain = err.code === 'not_found';
  const body = err.code === 'origin_forbidden' ? '' : plain ? '404 page not found' : errorBody(err, flavorOf(ctx.path), ctx.id);
  const headers: Record<string, string | number> = {
    'content-type': plain ? 'text/plain; charset=utf-8' : 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(body),
  };
  if (err.retryAfter) headers['retry-after'] = err.retryAfterSeconds ?? cfg.queue.retryAfterSeconds;
  if (err.code === 'unauthorized') headers['www-authenticate'] = 'Bearer';
  // an unread body must not be read into memory: close the connection instead of draining it
  const unreadBody = !ctx.req.complete && (ctx.req.headers['content-length'] !== undefined || ctx.req.headers['transfer-encoding'] !== undefined);
  if (err.code === 'body_too_large' || err.code === 'shutting_down' || unreadBody) headers['connection'] = 'close';
  if (unreadBody || err.code === 'body_too_large') lingeringClose(ctx.req, cfg.limits.lingerMs);
  ctx.facts.ttfbMs = performance.now() - ctx.start;
  ctx.facts.bytesOut = Buffer.byteLength(body);
  res.writeHead(err.status, headers);
  res.end(ctx.method === 'HEAD' ? undefined : body);
}

/**
 * The answer goes out before the client has sent its whole body (413, 401, ...). Node ends a
 * `Connection: close` response by destroying the socket as soon as the answer is written; with
 * the client's unread bytes still arriving, the kernel then resets the connection, and a client
 * still writing (Node's fetch, Python requests) sees a broken pipe instead of the answer (issue
 * 10.13). As nginx's lingering close does: end our side, read and drop what still comes for at
 * most `ms`, then close.
 */
function lingeringClose(req: IncomingMessage, ms: number): void {
  const socket = req.socket as Socket & { destroySoon?: () => void };
  if (ms <= 0 || socket.destroyed) return;
  socket.destroySoon = () => {
    socket.end();
    const timer = setTimeout(() => socket.destroy(), ms);
    timer.unref();
    socket.once('end', () => {
      clearTimeout(timer);
      socket.destroy();
    });
    socket.once('close', () => clearTimeout(timer));
    req.on('data', discard);
    req.resume();
    socket.resume();
  };
}

function discard(): void {}

const CLIENT_ERRORS: Record<string, [number, string]> = {
  HPE_HEADER_OVERFLOW: [431, 'Request Header Fields Too Large'],
  ERR_HTTP_REQUEST_TIMEOUT: [408, 'Request Timeout'],
  ERR_HTTP_HEADERS_TIMEOUT: [408, 'Request Timeout'],
};

function onClientError(err: NodeJS.ErrnoException, socket: Socket, log: Logger): void {
  log.debug({ code: err.code, remote: socket.remoteAddress }, 'malformed request');
  if (!socket.writable || err.code === 'ECONNRESET') {
    socket.destroy();
    return;
  }
  const [status, text] = CLIENT_ERRORS[err.code ?? ''] ?? [400, 'Bad Request'];
  const body = JSON.stringify({ error: `${text.toLowerCase()}: ${err.code ?? 'malformed request'}` });
  socket.end(
    `HTTP/1.1 ${status} ${text}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}

// Answers the gateway writes itself (health, catalog), with their byte counts recorded.
import type { RequestContext } from './context.js';

export function sendBody(ctx: RequestContext, status: number, body: string, contentType: string): void {
  const bytes = Buffer.byteLength(body);
  ctx.outcome.status = status;
  ctx.facts.bytesOut = ctx.method === 'HEAD' ? 0 : bytes;
  ctx.facts.ttfbMs = performance.now() - ctx.start;
  ctx.res.writeHead(status, { 'content-type': contentType, 'content-length': bytes });
  ctx.res.end(ctx.method === 'HEAD' ? undefined : body);
}

/** JSON as gin writes it on native routes; `/v1` routes say plain `application/json`. */
export function sendJson(ctx: RequestContext, status: number, value: unknown): void {
  const type = ctx.path.startsWith('/v1/') ? 'application/json' : 'application/json; charset=utf-8';
  sendBody(ctx, status, JSON.stringify(value), type);
}

// Header hygiene for a proxy (RFC 9110 §7.6.1, as Go's httputil.ReverseProxy does it): hop-by-hop
// headers are stripped both ways, and so is every header the Connection header names. The
// client's Host never goes upstream: a loopback-bound Ollama answers 403 to a foreign Host.
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';

const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

// Not hop-by-hop, but the gateway sets these itself on the way up. Origin: the gateway has
// decided the request's CORS itself (http/cors.ts); the backend's own policy must not refuse
// what the gateway allowed.
// Content-Encoding: a compressed body is decoded on the way in and sent plain (http/body.ts).
const NOT_FORWARDED_UP = new Set(['host', 'content-length', 'expect', 'x-request-id', 'x-gateway-backend', 'origin', 'content-encoding']);

// The backend's CORS answer: the gateway gives its own.
const NOT_FORWARDED_DOWN = new Set([
  'access-control-allow-origin',
  'access-control-allow-methods',
  'access-control-allow-headers',
  'access-control-allow-credentials',
  'access-control-expose-headers',
  'access-control-max-age',
]);

function connectionTokens(h: IncomingHttpHeaders): Set<string> | undefined {
  const c = h['connection'];
  if (!c) return undefined;
  // what nearly every client and backend sends names only hop-by-hop headers, stripped anyway
  if (c === 'keep-alive' || c === 'close' || c === 'Keep-Alive' || c === 'Close') return undefined;
  const value = Array.isArray(c) ? c.join(',') : c;
  return new Set(value.split(',').map((t) => t.trim().toLowerCase()).filter(Boolean));
}

export function upstreamHeaders(
  h: IncomingHttpHeaders,
  opts: { requestId: string; bodyLength: number | undefined; remoteAddress: string | undefined; stripCredentials?: boolean },
): Record<string, string | string[]> {
  const named = connectionTokens(h);
  const out: Record<string, string | string[]> = {};
  for (const k in h) {
    const v = h[k];
    if (v === undefined || HOP_BY_HOP.has(k) || NOT_FORWARDED_UP.has(k) || named?.has(k)) continue;
    // the gateway's own API keys never go upstream
    if (opts.stripCredentials && (k === 'authorization' || k === 'x-api-key')) continue;
    out[k] = v;
  }
  out['x-request-id'] = opts.requestId;
  if (opts.bodyLength !== undefined) out['content-length'] = String(opts.bodyLength);
  if (opts.remoteAddress) {
    const prior = h['x-forwarded-for'];
    out['x-forwarded-for'] = prior ? `${Array.isArray(prior) ? prior.join(', ') : prior}, ${opts.remoteAddress}` : opts.remoteAddress;
  }
  return out;
}

export function downstreamHeaders(h: IncomingHttpHeaders, requestId: string): OutgoingHttpHeaders {
  const named = connectionTokens(h);
  const out: OutgoingHttpHeaders = {};
  for (const k in h) {
    const v = h[k];
    if (v === undefined || HOP_BY_HOP.has(k) || NOT_FORWARDED_DOWN.has(k) || named?.has(k)) continue;
    out[k] = v;
  }
  out['x-request-id'] = requestId;
  return out;
}

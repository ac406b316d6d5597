// Cross-origin requests, answered as Ollama answers them (gin-contrib/cors as Ollama configures
// it in server/routes.go), on every route the gateway serves, its own and the fleet's alike, so a
// browser extension or a local web UI that may talk to Ollama may talk to the gateway:
// - no Origin, or the gateway's own origin (`http://` + Host): not a cross-origin request;
// - an origin not allowed: 403 with an empty body, whatever the route (a web page elsewhere
//   cannot drive the fleet from a visitor's browser);
// - a preflight (OPTIONS): 204 with the allowed methods and headers, before any key is asked
//   for (browsers send none on a preflight);
// - anything else: `Access-Control-Allow-Origin` (the origin itself, and `Vary: Origin`; `*`
//   when `*` is allowed).
// Allowed: `cors.origins` (as OLLAMA_ORIGINS: exact origins, or one `*` as a wildcard), then
// Ollama's defaults: http(s)://localhost, 127.0.0.1 and 0.0.0.0 on any port, app://, file://,
// tauri://, vscode-webview:// and vscode-file://. The gateway is the one that decides: the
// Origin header is not sent upstream, and the backend's own CORS headers are not passed back.
import type { IncomingMessage, ServerResponse } from 'node:http';

const DEFAULTS: readonly string[] = [
  ...['localhost', '127.0.0.1', '0.0.0.0'].flatMap((h) => [`http://${h}`, `https://${h}`, `http://${h}:*`, `https://${h}:*`]),
  'app://*',
  'file://*',
  'tauri://*',
  'vscode-webview://*',
  'vscode-file://*',
];

const ALLOW_METHODS = 'GET,POST,PUT,PATCH,DELETE,HEAD,OPTIONS';
const ALLOW_HEADERS = [
  'Authorization',
  'Content-Type',
  'User-Agent',
  'Accept',
  'X-Requested-With',
  // the OpenAI SDKs'
  'Openai-Beta',
  'X-Stainless-Arch',
  'X-Stainless-Async',
  'X-Stainless-Custom-Poll-Interval',
  'X-Stainless-Helper-Method',
  'X-Stainless-Lang',
  'X-Stainless-Os',
  'X-Stainless-Package-Version',
  'X-Stainless-Poll-Helper',
  'X-Stainless-Retry-Count',
  'X-Stainless-Runtime',
  'X-Stainless-Runtime-Version',
  'X-Stainless-Timeout',
].join(',');
/** 12 hours, gin-contrib/cors's default */
const MAX_AGE = '43200';

export type CorsVerdict = 'not_cors' | 'allowed' | 'forbidden' | 'preflight';

export class Cors {
  private readonly exact = new Set<string>();
  private readonly wildcards: [string, string][] = [];
  private readonly any: boolean;

  constructor(extra: readonly string[]) {
    const all = [...extra, ...DEFAULTS].map((o) => o.trim().toLowerCase()).filter((o) => o !== '');
    this.any = all.includes('*');
    for (const o of all) {
      const star = o.indexOf('*');
      if (star === -1) this.exact.add(o);
      else this.wildcards.push([o.slice(0, star), o.slice(star + 1)]);
    }
  }

  allows(origin: string): boolean {
    if (this.any) return true;
    const o = origin.toLowerCase();
    if (this.exact.has(o)) return true;
    return this.wildcards.some(([pre, post]) => o.length >= pre.length + post.length && o.startsWith(pre) && o.endsWith(post));
  }

  /** Sets the response's CORS headers; says what to do with the request. */
  apply(req: IncomingMessage, res: ServerResponse): CorsVerdict {
    const origin = req.headers['origin'];
    if (origin === undefined || origin === '') return 'not_cors';
    const host = req.headers['host'];
    if (origin === `http://${host}` || origin === `https://${host}`) return 'not_cors';
    if (!this.allows(origin)) return 'forbidden';
    if (this.any) res.setHeader('access-control-allow-origin', '*');
    else {
      res.setHeader('access-control-allow-origin', origin);
      res.setHeader('vary', 'Origin');
    }
    if (req.method !== 'OPTIONS') return 'allowed';
    res.setHeader('access-control-allow-methods', ALLOW_METHODS);
    res.setHeader('access-control-allow-headers', ALLOW_HEADERS);
    res.setHeader('access-control-max-age', MAX_AGE);
    return 'preflight';
  }
}

// Per-request state: the id, the client-gone token (fired when the client goes away before
// the answer is complete), the facts the request's one log line reports, and its outcome.
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Outcome, type RequestFacts } from '../accounting/outcome.js';
import type { ApiKey } from '../auth/keys.js';
import type { Charge } from '../auth/budgets.js';
import type { RequestTrace } from '../tracing/tracing.js';
import type { ChunkTransform } from '../relay/chunk-transform.js';
import { CancelToken, type Cancellation } from '../cancel.js';
import { normalizePath } from './normalize-path.js';
import { clip } from '../text/clip.js';
import type { BodyMemory } from './body.js';
import type { Socket } from 'node:net';

/**
 * The requests open on each connection. A client may pipeline several requests and then close
 * the connection: Node tells only the response being written that its socket closed, so the
 * rest (queued or running) would run to completion and hold their slots (issue 10.7). One
 * listener per connection cancels every request still open on it.
 */
const openOn = new WeakMap<Socket, Set<CancelToken>>();

function watch(socket: Socket, gone: CancelToken): () => void {
  let open = openOn.get(socket);
  if (!open) {
    const set = new Set<CancelToken>();
    open = set;
    openOn.set(socket, set);
    socket.once('close', () => {
      for (const g of set) g.cancel();
      set.clear();
    });
  }
  const set = open;
  set.add(gone);
  return () => set.delete(gone);
}

const ID_OK = /^[\w.:@/+=-]{1,128}$/;

export class RequestContext {
  readonly id: string;
  readonly start = performance.now();
  /** the path as the backend will route on it (decoded, dot segments and `//` collapsed) */
  readonly path: string;
  /** what goes upstream: the normalized path, re-encoded, and the query as it came */
  readonly upstreamPath: string;
  /** why the path cannot be normalized (the request is refused), if it cannot */
  readonly badPath: string | undefined;
  private readonly gone = new CancelToken();
  /** what the log line reports: set by the stage that learns each */
  readonly facts: RequestFacts;
  /** what became of it (status, code, phase, tokens): read by the accounting stage alone */
  readonly outcome = new Outcome();
  /** the API key the request presented (undefined in open mode) */
  key: ApiKey | undefined;
  /** what the answer needs changed on its way (an alias's name, a usage chunk the client did not ask for) */
  transform: ChunkTransform | undefined;
  /** the request's spans, when tracing is on */
  trace: RequestTrace | undefined;
  /** the job's account with its key's token budgets (metered keys only) */
  charge: Charge | undefined;

  constructor(
    readonly req: IncomingMessage,
    readonly res: ServerResponse,
    /** the bound on all request bodies held at once */
    readonly bodies: BodyMemory,
  ) {
    const given = req.headers['x-request-id'];
    this.id = typeof given === 'string' && ID_OK.test(given) ? given : randomUUID();
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const raw = q === -1 ? url : url.slice(0, q);
    const n = normalizePath(raw);
    if (n.ok) {
      this.path = n.path;
      this.upstreamPath = n.wire === raw ? url : q === -1 ? n.wire : n.wire + url.slice(q);
      this.badPath = undefined;
    } else {
      this.path = raw;
      this.upstreamPath = url;
      this.badPath = n.reason;
    }
    this.facts = {
      id: this.id,
      method: req.method ?? 'GET',
      path: clip(this.path),
      model: undefined,
      backend: undefined,
      key: undefined,
      flow: undefined,
      queueMs: undefined,
      ttfbMs: undefined,
      durationMs: 0,
      bytesIn: 0,
      bytesOut: 0,
      attempts: 0,
    };
    const unwatch = req.socket.destroyed ? undefined : watch(req.socket, this.gone);
    if (!unwatch) this.gone.cancel();
    res.once('close', () => {
      unwatch?.();
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

  get method(): string {
    return this.facts.method;
  }
}

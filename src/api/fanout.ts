// Pull and delete without `X-Gateway-Backend`: every healthy Ollama backend gets it. A pull
// streams every backend's progress as it comes (each line tagged with its backend), then one
// final `{"status":"success"}` once all are done, or an `{"error"}` naming the ones that failed;
// ollama-js stops at the first success line, so the backends' own are held back. A delete
// succeeds when at least one backend held the model and none failed.
import type { ServerResponse } from 'node:http';
import type { Backend } from '../backends/backend.js';
import { describeError } from '../errors.js';
import { GatewayError } from '../errors.js';
import { CancelToken } from '../cancel.js';
import type { RequestContext } from '../front/context.js';
import { sendJson } from '../front/respond.js';

type Headers = Record<string, string | string[]>;

async function* ndjsonLines(body: AsyncIterable<Buffer>): AsyncGenerator<string> {
  let rest = '';
  for await (const chunk of body) {
    rest += chunk.toString('utf8');
    let nl: number;
    while ((nl = rest.indexOf('\n')) !== -1) {
      const line = rest.slice(0, nl).trim();
      rest = rest.slice(nl + 1);
      if (line) yield line;
    }
  }
  if (rest.trim()) yield rest.trim();
}

function write(res: ServerResponse, text: string): Promise<void> {
  if (res.write(text)) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.once('drain', done);
    res.once('close', done);
  });
}

/** A backend of the fleet a fleet-wide pull did not reach, and why (down, drained, leaving). */
export interface Skipped {
  readonly name: string;
  readonly why: string;
}

export async function pullEverywhere(ctx: RequestContext, targets: readonly Backend[], headers: Headers, body: Buffer, stream: boolean, skipped: readonly Skipped[] = []): Promise<void> {
  const cut = new CancelToken();
  const stopListening = ctx.clientGoneSignal.onCancel(() => cut.cancel());
  const errors: string[] = [];
  if (stream) {
    ctx.outcome.status = 200;
    ctx.res.writeHead(200, { 'content-type': 'application/x-ndjson' });
  }
  try {
    await Promise.all(
      targets.map(async (b) => {
        try {
          const up = await b.aux.request({ method: 'POST', path: '/api/pull', headers, body, signal: cut });
          if (up.statusCode !== 200) {
            errors.push(`${b.name}: ${up.statusCode} ${(await up.body.text()).trim()}`);
            return;
          }
          for await (const line of ndjsonLines(up.body)) {
            let o: Record<string, unknown>;
            try {
              o = JSON.parse(line) as Record<string, unknown>;
            } catch {
              continue;
            }
            if (typeof o['error'] === 'string') errors.push(`${b.name}: ${o['error']}`);
            else if (o['status'] !== 'success' && stream) await write(ctx.res, `${JSON.stringify({ ...o, backend: b.name })}\n`);
          }
        } catch (err) {
          if (!cut.aborted) errors.push(`${b.name}: ${describeError(err)}`);
        }
      }),
    );
  } finally {
    stopListening();
  }
  if (ctx.clientGone) throw new GatewayError('client_closed', 'client closed the request');
  // a box out of rotation did not get it: the answer says so rather than a plain success
  const missed = skipped.length === 0 ? {} : { skipped: skipped.map((x) => x.name) };
  const final = errors.length === 0 ? { status: 'success', ...missed } : { error: `pull failed on ${errors.join('; ')}` };
  if (stream) {
    for (const x of skipped) await write(ctx.res, `${JSON.stringify({ status: `skipped ${x.name} (${x.why}): pull there when it is back`, backend: x.name })}\n`);
    ctx.res.end(`${JSON.stringify(final)}\n`);
  } else if (errors.length === 0) {
    sendJson(ctx, 200, final);
  } else {
    throw new GatewayError('upstream_failed', final.error ?? 'pull failed');
  }
}

export async function deleteEverywhere(ctx: RequestContext, targets: readonly Backend[], headers: Headers, body: Buffer, model: string): Promise<void> {
  const results = await Promise.all(
    targets.map(async (b) => {
      try {
        const up = await b.aux.request({ method: 'DELETE', path: '/api/delete', headers, body });
        const text = (await up.body.text()).trim();
        return { b, status: up.statusCode, text };
      } catch (err) {
        return { b, status: 0, text: describeError(err) };
      }
    }),
  );
  const deleted = results.filter((r) => r.status === 200);
  const failed = results.filter((r) => r.status !== 200 && r.status !== 404);
  if (failed.length > 0) throw new GatewayError('upstream_failed', `delete failed on ${failed.map((r) => `${r.b.name}: ${r.status || ''} ${r.text}`.trim()).join('; ')}`);
  if (deleted.length === 0) throw new GatewayError('model_not_found', `model '${model}' not found`);
  ctx.outcome.status = 200;
  ctx.res.writeHead(200, { 'content-length': 0 });
  ctx.res.end();
}

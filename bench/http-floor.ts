// A second floor: the least a relay built on the gateway's own libraries can do (node:http in
// front, undici's Pool.dispatch() behind, each body chunk written to the client socket as a
// chunk frame, backpressure both ways), with nothing else: no routing, keys, queue, taps or
// logs. Between the bare byte copier (node-floor.ts, no HTTP parsing at all) and this, the cost
// is the libraries'; above this, it is the gateway's own.
//   node dist/bench/http-floor.js <listen port> <backend url>
// With several backend URLs (comma-separated) it is the floor of a queue instead: each backend
// takes one job at a time, and the jobs that find none free wait in one FIFO (an array), handed
// to the first backend that frees: the least a Node queue in front of one-slot backends costs.
import { createServer } from 'node:http';
import type { Socket } from 'node:net';
import { Pool, type Dispatcher } from 'undici';

const port = Number(process.argv[2] ?? 18096);
const urls = (process.argv[3] ?? 'http://127.0.0.1:11434').split(',');
const queueing = urls.length > 1;
const pools = urls.map((u) => new Pool(u, { connections: queueing ? 1 : 100_000, pipelining: 1 }));
const free: Pool[] = queueing ? [...pools] : [];
const waiting: ((pool: Pool) => void)[] = [];
let waitingHead = 0;

/** Runs the job at a free backend now, or when one frees (FIFO); without a queue, at once. */
function withSlot(job: (pool: Pool, done: () => void) => void): void {
  if (!queueing) return job(pools[0]!, () => {});
  const done = (pool: Pool) => () => {
    const next = waitingHead < waiting.length ? waiting[waitingHead++] : undefined;
    if (waitingHead > 1024 && waitingHead * 2 > waiting.length) {
      waiting.splice(0, waitingHead);
      waitingHead = 0;
    }
    if (next) next(pool);
    else free.push(pool);
  };
  const pool = free.pop();
  const start = (p: Pool) => job(p, done(p));
  if (pool) start(pool);
  else waiting.push(start);
}

function frame(chunk: Buffer): Buffer {
  const hex = chunk.length.toString(16);
  const f = Buffer.allocUnsafe(hex.length + 4 + chunk.length);
  f.write(hex, 0, 'latin1');
  f.writeUInt16BE(0x0d0a, hex.length);
  chunk.copy(f, hex.length + 2);
  f.writeUInt16BE(0x0d0a, f.length - 2);
  return f;
}

createServer({ noDelay: true, keepAliveTimeout: 65_000 }, (req, res) => {
  const parts: Buffer[] = [];
  req.on('data', (d: Buffer) => parts.push(d));
  req.on('end', () => {
    const body = Buffer.concat(parts);
    let socket: Socket | undefined;
    let controller: Dispatcher.DispatchController | undefined;
    // a client that leaves cuts the backend's connection (as any relay must)
    res.once('close', () => {
      if (!res.writableFinished) controller?.abort(new Error('client closed'));
    });
    withSlot((pool, done) => {
    const handler: Dispatcher.DispatchHandler = {
      // (undici takes a handler for its new API only when it has onRequestStart)
      onRequestStart(c) {
        controller = c;
      },
      onResponseStart(_c, status, headers) {
        const out: Record<string, string | string[]> = {};
        for (const name of ['content-type', 'content-length']) {
          const v = headers[name];
          if (v !== undefined) out[name] = v;
        }
        res.writeHead(status, out);
      },
      onResponseData(c, chunk) {
        if (res.destroyed) return;
        const ok = socket ? socket.write(frame(chunk)) : res.write(chunk);
        if (!socket && res.chunkedEncoding && res.socket) socket = res.socket;
        if (!ok) {
          c.pause();
          (socket ?? res).once('drain', () => c.resume());
        }
      },
      onResponseEnd: () => {
        res.end();
        done();
      },
      onResponseError: () => {
        res.destroy();
        done();
      },
    };
    pool.dispatch({ method: req.method as Dispatcher.HttpMethod, path: req.url ?? '/', headers: { 'content-type': 'application/json' }, body }, handler);
    });
  });
}).listen(port, '127.0.0.1', () => process.send?.('ready'));
process.on('SIGTERM', () => process.exit(0)); // (so that --cpu-prof writes its profile)

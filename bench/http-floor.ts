// A second floor: the least a relay built on the gateway's own libraries can do (node:http in
// front, undici's Pool.dispatch() behind, each body chunk written to the client socket as a
// chunk frame, backpressure both ways), with nothing else: no routing, keys, queue, taps or
// logs. Between the bare byte copier (node-floor.ts, no HTTP parsing at all) and this, the cost
// is the libraries'; above this, it is the gateway's own.
//   node dist/bench/http-floor.js <listen port> <backend url>
import { createServer } from 'node:http';
import type { Socket } from 'node:net';
import { Pool, type Dispatcher } from 'undici';

const port = Number(process.argv[2] ?? 18096);
const pool = new Pool(process.argv[3] ?? 'http://127.0.0.1:11434', { connections: 100_000, pipelining: 1 });

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
    const handler: Dispatcher.DispatchHandler = {
      // (undici takes a handler for its new API only when it has onRequestStart)
      onRequestStart(c) {
        controller = c;
      },
      onResponseStart(_c, status, headers) {
        const ct = headers['content-type'];
        res.writeHead(status, ct === undefined ? {} : { 'content-type': ct });
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
      onResponseEnd: () => res.end(),
      onResponseError: () => res.destroy(),
    };
    pool.dispatch({ method: req.method as Dispatcher.HttpMethod, path: req.url ?? '/', headers: { 'content-type': 'application/json' }, body }, handler);
  });
}).listen(port, '127.0.0.1', () => process.send?.('ready'));

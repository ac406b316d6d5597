// A third floor, between the other two: node:http in front, as in the gateway, but no HTTP
// client behind it. Each backend connection is a plain socket; the request goes up as one write,
// and the answer's bytes come back as they came: the backend's own chunk frames copied to the
// client socket unparsed (only their sizes are read, to find where the answer ends), a
// fixed-length body written through the response. Beside http-floor.ts (node:http + undici), it
// says what undici's parsing of the answer costs; beside node-floor.ts (no HTTP at all), what
// node:http in front costs. No routing, keys, queue, taps or logs.
//   node dist/bench/frames-floor.js <listen port> <backend url>
import { createServer } from 'node:http';
import { connect, type Socket } from 'node:net';

const port = Number(process.argv[2] ?? 18097);
const backend = new URL(process.argv[3] ?? 'http://127.0.0.1:11434');
const idle: Socket[] = [];
const HEAD_END = Buffer.from('\r\n\r\n');

function upstream(): Socket {
  const kept = idle.pop();
  if (kept) return kept;
  const s = connect({ host: backend.hostname, port: Number(backend.port), noDelay: true });
  s.on('error', () => s.destroy());
  s.on('close', () => {
    const at = idle.indexOf(s);
    if (at >= 0) idle.splice(at, 1);
  });
  return s;
}

const CONTENT_LENGTH = /\r\ncontent-length: *([^\r]*)/i;
const CONTENT_TYPE = /\r\ncontent-type: *([^\r]*)/i;

/** Where the last (zero-size) chunk's size line begins in `d`, reading chunk sizes across reads; -1 until it comes. */
class ChunkEnd {
  private inSize = true;
  private size = 0;
  private left = 0;
  find(d: Buffer): number {
    // (a size line begun in the last read is taken to begin here: the backends write a frame at once)
    let lineAt = this.inSize ? 0 : -1;
    let i = 0;
    while (i < d.length) {
      if (this.inSize) {
        const c = d[i++]!;
        if (c === 0x0a) {
          if (this.size === 0) return lineAt;
          this.inSize = false;
          this.left = this.size + 2;
          this.size = 0;
        } else if (c !== 0x0d) {
          this.size = this.size * 16 + (c <= 0x39 ? c - 0x30 : (c | 0x20) - 0x57);
        }
      } else {
        const n = Math.min(this.left, d.length - i);
        i += n;
        this.left -= n;
        if (this.left === 0) {
          this.inSize = true;
          lineAt = i;
        }
      }
    }
    return -1;
  }
}

createServer({ noDelay: true, keepAliveTimeout: 65_000 }, (req, res) => {
  const parts: Buffer[] = [];
  req.on('data', (d: Buffer) => parts.push(d));
  req.on('end', () => {
    const body = Buffer.concat(parts);
    const up = upstream();
    up.write(Buffer.concat([Buffer.from(`${req.method} ${req.url} HTTP/1.1\r\nhost: ${backend.host}\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\n\r\n`, 'latin1'), body]));
    let head: Buffer | undefined = Buffer.alloc(0);
    let chunked: ChunkEnd | undefined;
    let lengthLeft = 0;
    let client: Socket | undefined;
    const done = (keep: boolean) => {
      up.off('data', onData);
      res.off('close', onClose);
      if (keep && !up.destroyed) idle.push(up);
      else up.destroy();
      res.end();
    };
    const onClose = () => {
      if (!res.writableFinished) done(false);
    };
    res.once('close', onClose);
    const onData = (d: Buffer) => {
      if (head !== undefined) {
        head = head.length === 0 ? d : Buffer.concat([head, d]);
        const at = head.indexOf(HEAD_END);
        if (at < 0) return;
        const text = head.toString('latin1', 0, at).trimStart();
        const rest = head.subarray(at + 4);
        head = undefined;
        const length = CONTENT_LENGTH.exec(text)?.[1];
        const type = CONTENT_TYPE.exec(text)?.[1];
        const out: Record<string, string> = {};
        if (type !== undefined) out['content-type'] = type;
        if (length !== undefined) out['content-length'] = length;
        res.writeHead(Number(text.slice(9, 12)), out);
        if (length !== undefined) {
          lengthLeft = Number(length);
        } else {
          chunked = new ChunkEnd();
          res.flushHeaders();
          client = res.socket ?? undefined;
        }
        if (rest.length === 0) return;
        d = rest;
      }
      if (chunked && client) {
        const end = chunked.find(d);
        const pass = end < 0 ? d : d.subarray(0, end);
        const ok = pass.length === 0 || client.write(pass);
        if (end >= 0) return done(true);
        if (!ok) {
          up.pause();
          client.once('drain', () => up.resume());
        }
        return;
      }
      lengthLeft -= d.length;
      const ok = res.write(d);
      if (lengthLeft <= 0) return done(true);
      if (!ok) {
        up.pause();
        res.once('drain', () => up.resume());
      }
    };
    up.on('data', onData);
  });
}).listen(port, '127.0.0.1', () => process.send?.('ready'));
process.on('SIGTERM', () => process.exit(0));

import { pino } from 'pino';
import { writeSync, openSync, write } from 'node:fs';
const line = { req_id: '07a55e9c-ceef-4a86-ae47-2422d43b8f33', method: 'POST', path: '/api/chat', model: 'llama3.2', backend: '127.0.0.1:40103', status: 200, queue_ms: 0, ttfb_ms: 3.28, duration_ms: 5.14, bytes_in: 81, bytes_out: 282, attempts: 1, prompt_tokens: 11, completion_tokens: 3 };
const N = 100000;
const fd = openSync(process.argv[2] ?? '/dev/null', 'a');
let n = 0;
const noop = { write(s) { n += s.length; } };
const batchSync = { parts: [], len: 0, write(s) { this.parts.push(s); this.len += s.length; if (this.len >= 32768) { writeSync(fd, this.parts.join('')); this.parts = []; this.len = 0; } } };
const batchStr = { buf: '', write(s) { this.buf += s; if (this.buf.length >= 32768) { writeSync(fd, this.buf); this.buf = ''; } } };
let writing = false;
const batchAsync = { buf: '', write(s) { this.buf += s; if (!writing && this.buf.length >= 32768) { writing = true; const b = this.buf; this.buf = ''; write(fd, b, () => { writing = false; }); } } };
for (const [name, d] of Object.entries({ noop, batchSync, batchStr, batchAsync })) {
  const log = pino({ level: 'info', base: { pid: process.pid }, formatters: { level: (l) => ({ level: l }) } }, d);
  let best = 1e9;
  for (let round = 0; round < 3; round++) {
    const c0 = process.cpuUsage();
    for (let i = 0; i < N; i++) { log.info({ ...line, status: 200 + (i & 1) }, 'request'); if ((i & 63) === 0) await new Promise((r) => setImmediate(r)); }
    await new Promise((r) => setTimeout(r, 50));
    const c = process.cpuUsage(c0); best = Math.min(best, (c.user + c.system) / N);
  }
  console.log(`${name}: ${best.toFixed(2)} us cpu/line`);
}
process.exit(0);

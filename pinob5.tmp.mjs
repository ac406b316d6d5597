import { createLogger } from './dist/src/log/logger.js';
import { logRequest } from './dist/src/accounting/log-line.js';
const log = createLogger({ level: 'info', destination: '/dev/null' });
const variants = { root: log };
try { variants.childNoRedact = log.child({}, { redact: [] }); } catch (e) { console.log('child redact []', e.message); }
const r = { id: '07a55e9c-ceef-4a86-ae47-2422d43b8f33', method: 'POST', path: '/api/chat', model: 'llama3.2', backend: '127.0.0.1:40103', key: undefined, flow: undefined, queueMs: 0.0123, ttfbMs: 3.2812, durationMs: 5.1444, bytesIn: 81, bytesOut: 282, attempts: 1 };
const o = { status: 200, code: undefined, promptTokens: 11, completionTokens: 3 };
const N = 200000;
for (let k = 0; k < 2; k++) for (const [name, l] of Object.entries(variants)) {
  const c0 = process.cpuUsage();
  for (let i = 0; i < N; i++) { logRequest(l, r, o); if ((i & 63) === 0) await new Promise((res) => setImmediate(res)); }
  const c = process.cpuUsage(c0);
  console.log(name, ((c.user + c.system) / N).toFixed(2), 'us/line');
}
process.exit(0);

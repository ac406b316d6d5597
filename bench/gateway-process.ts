// The gateway under test, in a process of its own, with its event-loop delay measured from the
// inside (monitorEventLoopDelay) and reported over IPC. Logs go to /dev/null through pino as in
// production, so their cost is counted (BENCH_GATEWAY_LOG=file keeps them, e.g. to read each
// request's own ttfb_ms beside what the client measured).
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { getHeapSpaceStatistics } from 'node:v8';
import { loadConfig } from '../src/config/load.js';
import { Gateway } from '../src/gateway.js';
import { createLogger } from '../src/log/logger.js';

const flags = JSON.parse(process.argv[2] ?? '{}') as Record<string, string>;
const file = process.argv[3];
const config = loadConfig({ env: {}, flags, ...(file ? { file } : {}) });
const logger = createLogger({ level: 'info', destination: process.env['BENCH_GATEWAY_LOG'] ?? '/dev/null' });
const gateway = await Gateway.start({ config, logger });
// when each queued job left the queue because its client went (epoch ms, high resolution)
const queueCancels: number[] = [];
gateway.dispatcher.on((e) => {
  if (e === 'cancelled_queued') queueCancels.push(performance.timeOrigin + performance.now());
});
// the event-loop delay, sampled every millisecond from the first 'reset' on: only the scenarios
// that report it ask, because its timer wakes the loop ~800 times a second, which a gateway in
// service does not pay (prom-client's own monitor samples every 10 ms)
const eld = monitorEventLoopDelay({ resolution: 1 });

// BENCH_ALLOC_PROF=file: a sampling profile of every allocation, short-lived ones included
// (what the young-generation collector has to clean up), written when the gateway stops
const allocProf = process.env['BENCH_ALLOC_PROF'];
let session: Session | undefined;
if (allocProf) {
  session = new Session();
  session.connect();
  await session.post('HeapProfiler.startSampling', { samplingInterval: 4096, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true });
}

process.on('message', (m: { type: string }) => {
  if (m.type === 'reset') {
    eld.enable();
    eld.reset();
    process.send!({ type: 'reset' });
  } else if (m.type === 'stats') {
    // with --expose-gc, count only what is alive: garbage waiting for a collection is not memory per stream
    const gc = (globalThis as { gc?: () => void }).gc;
    gc?.();
    const mem = process.memoryUsage();
    process.send!({
      live: mem.heapUsed + mem.external,
      type: 'stats',
      eld: { p50: eld.percentile(50) / 1e6, p99: eld.percentile(99) / 1e6, max: eld.max / 1e6, mean: eld.mean / 1e6 },
      rss: mem.rss,
      offloaded: gateway.inspector.offloaded,
      // where the memory is: each V8 heap space's committed size (MiB), beside rss
      spaces: Object.fromEntries(getHeapSpaceStatistics().map((x) => [x.space_name, Math.round(x.physical_space_size / 1048576)])),
      arrayBuffers: Math.round(mem.arrayBuffers / 1048576),
    });
  } else if (m.type === 'queue-cancels') {
    process.send!({ type: 'queue-cancels', at: queueCancels.splice(0) });
  } else if (m.type === 'stop') {
    void (async () => {
      if (session && allocProf) {
        const { profile } = await session.post('HeapProfiler.stopSampling');
        writeFileSync(allocProf, JSON.stringify(profile));
      }
      await gateway.stop(0);
      process.exit(0);
    })();
  }
});
process.send!({ type: 'ready', url: gateway.url });

// `ollama-gateway demo`: the real gateway in front of three simulated Ollama servers on
// loopback, so anyone without a GPU can watch it stream, queue and spread work.
import type { Logger } from 'pino';
import { loadConfig } from './config/load.js';
import { Gateway } from './gateway.js';
import { Simulator } from './simulator/simulator.js';

export interface DemoOptions {
  readonly listen: string;
  readonly backends: number;
  readonly logger?: Logger;
}

export interface Demo {
  readonly gateway: Gateway;
  readonly simulators: Simulator[];
  stop(): Promise<void>;
}

export async function startDemo(opts: DemoOptions): Promise<Demo> {
  const simulators = await Promise.all(
    Array.from({ length: opts.backends }, () => Simulator.start({ ttftMs: 300, tokenMs: 60, tokens: 40, models: ['llama3.2:latest', 'qwen2.5:0.5b', 'nomic-embed-text:latest'] })),
  );
  const config = loadConfig({
    env: {},
    flags: {
      backends: simulators.map((s, i) => `gpu${i + 1}=${s.url}`).join(','),
      listen: opts.listen,
      queueSize: '20',
      maxQueueWaitSeconds: '30',
      healthIntervalSeconds: '2',
    },
  });
  const gateway = await Gateway.start({ config, ...(opts.logger ? { logger: opts.logger } : {}) });
  return {
    gateway,
    simulators,
    async stop() {
      await gateway.stop(2_000);
      await Promise.all(simulators.map((s) => s.stop()));
    },
  };
}

export function demoBanner(d: Demo): string {
  const url = d.gateway.url;
  return [
    '',
    `ollama-gateway demo: the gateway at ${url}, in front of ${d.simulators.length} simulated Ollama servers (one slot each):`,
    ...d.simulators.map((s, i) => `  gpu${i + 1}  ${s.url}`),
    '',
    'Stream a chat (one token per line, as Ollama sends it):',
    `  curl -N ${url}/api/chat -d '{"model":"llama3.2","messages":[{"role":"user","content":"Why is the sky blue?"}]}'`,
    'The same through the OpenAI-compatible API:',
    `  curl -N ${url}/v1/chat/completions -d '{"model":"llama3.2","stream":true,"messages":[{"role":"user","content":"hi"}]}'`,
    `Send five at once: ${d.simulators.length === 3 ? 'three stream at once while two wait their turn' : `${d.simulators.length} stream at once, the rest wait their turn`} (one line per job):`,
    `  for i in 1 2 3 4 5; do curl -s -o /dev/null -w "job $i: first token after %{time_starttransfer}s, done after %{time_total}s\\n" ${url}/api/generate -d '{"model":"llama3.2","prompt":"hi"}' & done; wait`,
    'Fleet health:',
    `  curl ${url}/healthz`,
    '',
    'Press Ctrl-C to stop.',
    '',
  ].join('\n');
}

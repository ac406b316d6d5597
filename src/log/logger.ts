// The process logger: pino, JSON lines on stdout. A leaf module: imports nothing of the gateway.
// Lines are written in batches (at least 32 KiB, or every 250 ms, whichever comes first) rather
// than one write(2) per line: at thousands of requests a second, per-line writes cost the
// gateway several percent of its CPU. line-batcher.ts writes them, and says why the batching is
// not pino.destination's.
import { pino, type Logger, type DestinationStream, type LevelWithSilent } from 'pino';
import { createRequire } from 'node:module';
import { LineBatcher, logDescriptor } from './line-batcher.js';

export type { Logger };

export interface LoggerOptions {
  readonly level: LevelWithSilent;
  /** where lines go: a stream (tests collect lines), a file path, or stdout when absent */
  readonly destination?: DestinationStream | string;
  /** json (one JSON object a line, for journald and log shippers) or pretty (for a terminal) */
  readonly format?: 'json' | 'pretty';
  /** pretty lines with their fields on the same line (the demo's terminal) */
  readonly singleLine?: boolean;
  /** fields pretty lines leave out (the demo leaves out the start-up line's whole config) */
  readonly hide?: readonly string[];
}

const FLUSH_EVERY_MS = 250;
const BATCH_CHARS = 32 * 1024;

/** pino-pretty, loaded only for a terminal's pretty lines (it is ~6 MB of memory a service never needs). */
function prettyStream(singleLine: boolean, hide: readonly string[]): DestinationStream {
  const { PinoPretty } = createRequire(import.meta.url)('pino-pretty') as typeof import('pino-pretty');
  return PinoPretty({ colorize: process.stdout.isTTY === true, translateTime: 'SYS:HH:MM:ss.l', ignore: ['pid', 'hostname', ...hide].join(','), sync: true, singleLine });
}

/**
 * pino's isoTime (`,"time":"2026-12-02T05:30:12.345Z"`) without formatting a Date each line: the
 * text up to the second is made once a second, the milliseconds added to it.
 */
let second = -1;
let prefix = '';
function isoTime(): string {
  const now = Date.now();
  const s = Math.floor(now / 1000);
  if (s !== second) {
    second = s;
    prefix = `,"time":"${new Date(s * 1000).toISOString().slice(0, 20)}`;
  }
  const ms = now - s * 1000;
  return `${prefix}${ms < 10 ? '00' : ms < 100 ? '0' : ''}${ms}Z"`;
}

export function createLogger(opts: LoggerOptions): Logger {
  let dest: DestinationStream;
  if (opts.format === 'pretty' && (opts.destination === undefined || typeof opts.destination === 'string')) {
    dest = prettyStream(opts.singleLine === true, opts.hide ?? []);
  } else if (opts.destination === undefined || typeof opts.destination === 'string') {
    dest = new LineBatcher(logDescriptor(opts.destination), { batchChars: BATCH_CHARS, flushEveryMs: FLUSH_EVERY_MS });
  } else {
    dest = opts.destination;
  }
  return pino(
    {
      level: opts.level,
      base: { pid: process.pid },
      timestamp: isoTime,
      // belt and braces: nothing named like a secret or a payload may ever be printed
      redact: { paths: ['authorization', 'headers.authorization', 'prompt', 'messages', 'body'], censor: '[redacted]' },
      formatters: { level: (label) => ({ level: label }) },
    },
    dest,
  );
}
